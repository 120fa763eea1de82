/* libFuzzer harness: the shard record reader (data/shard.c) on any bytes, as a
 * stream of records read to its end or its first error, with the expectation
 * every reader of known shapes sets (pngcat's 1 or 3 channels). Memory is held
 * to a 64 MiB budget, so a record declaring more is refused, never allocated.
 * Then the same bytes as glow-prep's standard input (prep/prep_shard.c: peeked
 * at, recognised, a shard stream loaded into an array, or else a list). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/mem_budget.h"
#include "data/shard.h"
#include "prep/prep_inputs.h"

/* glow-prep - on these bytes: the items it holds are the images it read */
static void prep_stdin_input(const uint8_t *data, size_t size)
{
    FILE *saved = stdin, *in_mem = fmemopen((void *)data, size ? size : 1, "rb");
    if (!in_mem)
        return;
    if (!size)
        fgetc(in_mem);
    stdin = in_mem;
    prep_inputs in;
    prep_inputs_init(&in);
    prep_options o = {PREP_AUTO, "/root", NULL, 0, 1, 1};
    glow_error err;
    if (prep_inputs_add(&in, "-", &o, &err) == 0 && in.narrays == 1) {
        const prep_array *a = &in.arrays[0];
        if (a->n != in.n || (a->c != 1 && a->c != 3) || !a->h || !a->w)
            __builtin_trap(); /* one item per image of the one array */
    }
    prep_inputs_free(&in);
    stdin = saved;
    fclose(in_mem);
}

static int expect(void *ctx, const shard_record *hdr, int has_labels, glow_error *err)
{
    (void)ctx;
    (void)has_labels;
    if (hdr->c == 2) { /* some reader refuses some shapes */
        glow_errorf(err, "2 channels");
        return -1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once++)
        glow_mem_set_limit(64u << 20);
    FILE *f = fmemopen((void *)data, size ? size : 1, "rb");
    if (!f)
        return 0;
    if (!size)
        fgetc(f); /* an empty stream */
    shard_reader *r = shard_reader_from_file(f, "fuzz");
    shard_reader_expect(r, expect, NULL);
    shard_record rec;
    glow_error err;
    int rc;
    uint64_t sum = 0;
    while ((rc = shard_reader_next(r, &rec, &err)) == 1) {
        size_t n = shard_record_elems(&rec) * shard_dtype_size(rec.dtype);
        const uint8_t *p = rec.data;
        for (size_t i = 0; i < n; i += 4096) /* touch what was returned */
            sum += p[i];
        if (rec.labels)
            sum += (uint32_t)rec.labels[rec.n - 1];
        shard_record_free(&rec);
    }
    if (rc < 0 && strncmp(err.msg, "fuzz: record ", 13) != 0)
        __builtin_trap(); /* every error names the stream and the record */
    shard_reader_close(r);
    fclose(f);
    if (glow_mem_reserved() != 0)
        __builtin_trap(); /* the reader gave back what it reserved */
    prep_stdin_input(data, size);
    if (glow_mem_reserved() != 0)
        __builtin_trap(); /* so did glow-prep's inputs */
    return (int)(sum & 0);
}
