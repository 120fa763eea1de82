/* glow-prep's pipeline: the list of inputs (prep_items.h) put in order, decoded
 * by threads into images of one shape, and written to the sinks (prep_output.h)
 * strictly in list order, so the bytes never depend on the thread count.
 *
 * Decoding threads take chunks of the list; the caller's thread takes the
 * results chunk by chunk in order, reports bad images, and writes. */
#ifndef GLOW_PREP_PIPELINE_H
#define GLOW_PREP_PIPELINE_H

#include <stdint.h>

#include "base/util.h"

#include "prep_items.h"
#include "prep_output.h"

/* Default shard file size with -o: this many bytes of pixels. */
#define PREP_SHARD_FILE_BYTES ((uint64_t)64 << 20)

typedef struct {
    int channels;            /* every image converted to this many (1 or 3) */
    int crop;                /* centre-crop to a square first */
    int size_w, size_h;      /* then resize to this (0: keep the size) */
    int pad;                 /* then add this many zero pixels on every side; negative:
                              * take -pad pixels off every side (undoing an earlier pad) */
    int jobs;                /* decoding threads */
    int strict;              /* the first bad image stops the run */
    uint64_t shard_size;     /* images per shard file; 0: PREP_SHARD_FILE_BYTES of pixels */
    /* A bad image, in list order: its name (prep_item_name) and why it is bad. */
    void (*bad)(void *ctx, const char *name, const char *why);
    /* After each chunk: images taken so far, of total. */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
} prep_pipeline;

typedef struct {
    uint64_t skipped;        /* bad images reported */
    uint32_t c, h, w;        /* the shape of the images written (0 before the first) */
} prep_pipeline_result;

/* The order of the items: 0..n-1, shuffled with seed when asked, cut to limit
 * (0: no limit). *n is set to the images kept. Caller frees. */
uint32_t *prep_order(const prep_inputs *in, int shuffle, uint64_t seed, uint64_t limit,
                     uint32_t *n);

/* The train side of --split F over n images: round(F*n), the rest going to val.
 * A side left empty is an error naming the counts (F 0: no split, every image
 * train). Returns 0, or -1 with err set. */
int prep_split_count(double split, uint32_t n, uint64_t *ntrain, glow_error *err);

/* The channels of the output: forced (when not 0), else 3 when any image file
 * is among the first n of order or there are no arrays, else the first array's. */
int prep_output_channels(const prep_inputs *in, const uint32_t *order, uint32_t n, int forced);

/* Decode items order[0..n) and write them: positions below ntrain to train, the
 * rest to val. The sinks are started at the first good image (its shape) and
 * left open for the caller to finish or abort. Returns 0 when every item was
 * taken, 1 when a bad image stopped the run under strict, or -1 when writing
 * (or starting a thread) failed, with err set. */
int prep_pipeline_run(const prep_pipeline *pp, const prep_inputs *in, const uint32_t *order,
                      uint32_t n, uint64_t ntrain, prep_writer *wr, prep_sink *train,
                      prep_sink *val, prep_pipeline_result *res, glow_error *err);

#endif
