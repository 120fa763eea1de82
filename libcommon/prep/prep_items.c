/* The items of glow-prep's inputs and the bookkeeping every input kind shares. */
#include "prep_items.h"

#include "base/mem_budget.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void prep_inputs_init(prep_inputs *in)
{
    memset(in, 0, sizeof *in);
    in->labels = -1;
}

void prep_inputs_free(prep_inputs *in)
{
    for (size_t i = 0; i < in->n; i++)
        free(in->items[i].path);
    free(in->items);
    for (uint32_t i = 0; i < in->narrays; i++) {
        free(in->arrays[i].name);
        free(in->arrays[i].data);
    }
    free(in->arrays);
    for (int i = 0; i < in->nclasses; i++)
        free(in->classes[i]);
    free(in->classes);
    if (in->peek) {
        fclose(in->peek->f); /* the peeking stream only; standard input stays open */
        free(in->peek);
    }
    glow_mem_release(in->mem);
    memset(in, 0, sizeof *in);
}

void prep_push(prep_inputs *in, char *path, uint32_t array, uint32_t index, int32_t label)
{
    if (in->n == in->cap) {
        in->cap = in->cap ? 2 * in->cap : 1024;
        in->items = xrealloc(in->items, in->cap * sizeof *in->items);
    }
    in->items[in->n++] = (prep_item){path, array, index, label};
}

uint32_t prep_push_array(prep_inputs *in, prep_array a)
{
    in->arrays = xrealloc(in->arrays, (in->narrays + 1) * sizeof *in->arrays);
    in->arrays[in->narrays] = a;
    return in->narrays++;
}

int prep_set_labels(prep_inputs *in, const char *path, int has_labels, glow_error *err)
{
    if (in->labels >= 0 && in->labels != has_labels) {
        glow_errorf(err, "%s: %s labels but the inputs before it %s", path,
                    has_labels ? "has" : "has no", has_labels ? "have none" : "have labels");
        return -1;
    }
    in->labels = has_labels;
    return 0;
}

int prep_bad_entry(prep_inputs *in, const prep_options *opt, glow_error *err, const char *fmt, ...)
{
    glow_error e;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    if (opt->strict) {
        *err = e;
        return -1;
    }
    glow_warn("%s", e.msg);
    in->bad_lines++;
    return 0;
}

void prep_item_name(const prep_inputs *in, const prep_item *it, char *buf, size_t len)
{
    if (it->path)
        snprintf(buf, len, "%s", it->path);
    else
        snprintf(buf, len, "%s: image %u", in->arrays[it->array].name, it->index + 1);
}
