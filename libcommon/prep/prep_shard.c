/* glow-prep shard-stream input: the images of shard files, of folders of them
 * (data/shard.h, shard_dir_list: searched recursively) and of a stream on
 * standard input, loaded whole into one array per input like the IDX and CIFAR
 * data files, so they can be subset, shuffled, split, resized, padded and
 * re-sharded like any other input. uint8 image records of 1 or 3 channels; the
 * labels are kept. Every record's images are reserved in the memory budget before
 * they are copied. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem_budget.h"
#include "base/path.h"
#include "data/shard.h"
#include "prep_kinds.h"

/* Largest shard input held (pixels), as for the other data files. */
#define SHARD_INPUT_MAX_BYTES ((uint64_t)8 << 30)

/* ---- standard input, peeked at ----
 * prep_detect reads the first bytes of standard input to tell a shard stream from
 * a list; the readers then read them again through prep_stdin(in). The state
 * lives in the inputs (in->peek, freed with them). */
static ssize_t peek_read(void *c, char *buf, size_t size)
{
    prep_peek *p = c;
    size_t k = 0;
    while (k < size && p->pos < p->n)
        buf[k++] = (char)p->head[p->pos++];
    if (k < size && !feof(p->src))
        k += fread(buf + k, 1, size - k, p->src);
    if (k == 0 && ferror(p->src))
        return -1;
    return (ssize_t)k;
}

static prep_peek *stdin_peek(prep_inputs *in)
{
    if (in->peek)
        return in->peek;
    prep_peek *p = xcalloc(1, sizeof *p);
    p->src = stdin;
    p->n = fread(p->head, 1, sizeof p->head, stdin);
    cookie_io_functions_t io = {peek_read, NULL, NULL, NULL};
    p->f = fopencookie(p, "r", io);
    if (!p->f)
        glow_die(1, "standard input: %s", strerror(errno));
    in->peek = p;
    return p;
}

FILE *prep_stdin(prep_inputs *in)
{
    return stdin_peek(in)->f;
}

int prep_stdin_is_shard(prep_inputs *in)
{
    prep_peek *p = stdin_peek(in);
    return p->n == 8 && !memcmp(p->head, SHARD_MAGIC, 8);
}

/* ---- the input kind ---- */

static int add_one(prep_inputs *in, const char *path, glow_error *err)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : path;
    shard_reader *r = is_stdin ? shard_reader_from_file(prep_stdin(in), name)
                               : shard_reader_open(path, err);
    if (!r)
        return -1;
    prep_array a = {xstrdup(name), 0, 0, 0, 0, NULL};
    int32_t *labels = NULL;
    int has_labels = -1, rc = 0;
    uint64_t held = 0;
    shard_record rec;
    int got;
    while ((got = shard_reader_next(r, &rec, err)) == 1) {
        uint64_t nrec = shard_reader_records(r);
        if (rec.dtype != SHARD_U8) {
            glow_errorf(err, "%s: record %llu: float32 images; glow-prep reads uint8 shards",
                        name, (unsigned long long)nrec);
            rc = -1;
        } else if (rec.c != 1 && rec.c != 3) {
            glow_errorf(err, "%s: record %llu: %u channels; glow-prep reads 1 or 3", name,
                        (unsigned long long)nrec, rec.c);
            rc = -1;
        } else if (has_labels >= 0 && has_labels != (rec.labels != NULL)) {
            glow_errorf(err, "%s: record %llu: %s labels, the records before it %s", name,
                        (unsigned long long)nrec, rec.labels ? "has" : "has no",
                        rec.labels ? "have none" : "have labels");
            rc = -1;
        }
        uint64_t img = (uint64_t)rec.c * rec.h * rec.w;
        uint64_t bytes = (uint64_t)rec.n * (img + sizeof(int32_t) + sizeof(prep_item));
        if (rc == 0 && ((uint64_t)a.n + rec.n > UINT32_MAX ||
                        ((uint64_t)a.n + rec.n) * img > SHARD_INPUT_MAX_BYTES)) {
            glow_errorf(err, "%s: record %llu: more than %llu GiB of images in one input",
                        name, (unsigned long long)nrec,
                        (unsigned long long)(SHARD_INPUT_MAX_BYTES >> 30));
            rc = -1;
        }
        if (rc == 0) {
            char what[600];
            snprintf(what, sizeof what, "%s: record %llu: %u images of %ux%ux%u", name,
                     (unsigned long long)nrec, rec.n, rec.c, rec.h, rec.w);
            rc = glow_mem_reserve(bytes, what, err);
        }
        if (rc != 0) {
            shard_record_free(&rec);
            break;
        }
        held += bytes;
        has_labels = rec.labels != NULL;
        a.c = (int)rec.c;
        a.h = (int)rec.h;
        a.w = (int)rec.w;
        a.data = xrealloc(a.data, (size_t)((a.n + rec.n) * img));
        memcpy(a.data + (size_t)a.n * img, rec.data, (size_t)(rec.n * img));
        if (rec.labels) {
            labels = xrealloc(labels, (size_t)(a.n + rec.n) * sizeof *labels);
            memcpy(labels + a.n, rec.labels, rec.n * sizeof *labels);
        }
        a.n += rec.n;
        shard_record_free(&rec);
    }
    if (got < 0)
        rc = -1;
    shard_reader_close(r);
    in->mem += held; /* released with the inputs, also on error */
    if (rc == 0 && a.n == 0) {
        glow_errorf(err, "%s: a shard stream without images", name);
        rc = -1;
    }
    if (rc == 0)
        rc = prep_set_labels(in, name, has_labels == 1, err);
    if (rc != 0) {
        free(a.name);
        free(a.data);
        free(labels);
        return -1;
    }
    uint32_t ai = prep_push_array(in, a);
    for (uint32_t i = 0; i < a.n; i++)
        prep_push(in, NULL, ai, i, labels ? labels[i] : -1);
    free(labels);
    return 0;
}

int prep_add_shard(prep_inputs *in, const char *path, glow_error *err)
{
    if (strcmp(path, "-") == 0 || !glow_is_dir(path))
        return add_one(in, path, err);
    char **files;
    int n;
    if (shard_dir_list(path, &files, &n, err) != 0)
        return -1;
    int rc = 0;
    if (n == 0) {
        glow_errorf(err, "%s: no shard files (*.glow) in this directory", path);
        rc = -1;
    }
    for (int i = 0; i < n && rc == 0; i++)
        rc = add_one(in, files[i], err);
    shard_dir_list_free(files, n);
    return rc;
}
