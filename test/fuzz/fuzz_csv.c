/* libFuzzer harness: glow-prep's text inputs (prep/prep_text.c), the seed's meta
 * CSV and lists of paths, from any bytes on standard input (as `glow-prep -`
 * reads them): recognised by the first line, then read as a CSV and as a list.
 * Nothing is decoded: the items are the paths and labels read. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "prep/prep_inputs.h"

static void read_as(const uint8_t *data, size_t size, prep_format f)
{
    FILE *saved = stdin, *in_mem = fmemopen((void *)data, size ? size : 1, "rb");
    if (!in_mem)
        return;
    if (!size)
        fgetc(in_mem);
    stdin = in_mem;
    prep_inputs in;
    prep_inputs_init(&in);
    prep_options o = {f, "/root", NULL, 0, 1, 1}; /* strict: no message per line */
    glow_error err;
    if (prep_inputs_add(&in, "-", &o, &err) == 0)
        for (size_t i = 0; i < in.n; i++)
            if (!in.items[i].path || in.items[i].path[0] != '/')
                __builtin_trap(); /* every entry is a path under --root */
    prep_inputs_free(&in);
    stdin = saved;
    fclose(in_mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_as(data, size, PREP_AUTO);
    read_as(data, size, PREP_CSV);
    read_as(data, size, PREP_LIST);
    return 0;
}
