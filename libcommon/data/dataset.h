/* Training and evaluation data: batches of uint8 images (and labels) from shard
 * files or from a stream.
 *
 * Shard files are read one at a time (a data set larger than memory trains): each
 * epoch visits the files in a seeded random order and the images of each file in a
 * seeded random order, and batches run on across file boundaries. A stream (stdin
 * or a pipe) cannot be re-read, so it is held in memory whole, up to a limit.
 *
 * The order is a pure function of (seed, epoch), so a position (epoch, images
 * consumed in that epoch) is the whole state needed to resume exactly. */
#ifndef GLOW_DATASET_H
#define GLOW_DATASET_H

#include <stdint.h>

#include "shard.h"

typedef struct dataset dataset;

typedef struct {
    uint32_t c, h, w;
    int has_labels;
    uint64_t n_images;   /* total images in one epoch */
    int from_stream;     /* held in memory */
} dataset_info;

/* Open the inputs: shard files or directories of shard files (every *.glow in
 * them); none or "-" is standard input, read whole into memory (at most
 * mem_limit bytes; past it the error points to `glow-prep -o DIR`). Counting the
 * images of files reads their record headers only. */
dataset *dataset_open(int ninputs, char **inputs, uint64_t mem_limit, glow_error *err);
/* The same, with a stream's records held to fn (shard_reader_expect: the shape the
 * caller will need) before they are decompressed. Every byte held in memory (a
 * stream's images, a file's images, records as they are read) is reserved in the
 * memory budget first (base/mem_budget.h); mem_limit 0 leaves the limit to it. */
dataset *dataset_open_expect(int ninputs, char **inputs, uint64_t mem_limit, shard_expect_fn fn,
                             void *ctx, glow_error *err);
const dataset_info *dataset_get_info(const dataset *d);
/* What the data is, as text to compare between the processes of a run: the count
 * and shape, then each file's name (without its folder) and image count, one a
 * line. The caller frees it. */
char *dataset_fingerprint(const dataset *d);

/* Sequential reading for evaluation: the images in stored order, `max` at a time.
 * Returns images read (0 at the end), or -1 with err set. */
int dataset_read_seq(dataset *d, uint32_t max, uint8_t *pixels, int32_t *labels, glow_error *err);
/* Restart sequential reading at the first image (for repeated validation passes). */
void dataset_rewind(dataset *d);
/* Sequential reading from the index-th image in stored order (0 is the first; the
 * files before it are passed by their counts, not read): one process's share of a
 * validation pass. */
void dataset_seq_seek(dataset *d, uint64_t index);

/* Shuffled training batches. Positions the reader at (epoch, offset): the next
 * batch starts at the offset-th image of that epoch's order. */
int dataset_seek(dataset *d, uint64_t seed, uint64_t epoch, uint64_t offset, glow_error *err);
/* Fills `n` images into pixels (n*c*h*w bytes) and labels (n, or NULL); crosses
 * into the next epoch when this one ends. Returns 0 or -1 with err set. */
int dataset_next_batch(dataset *d, uint32_t n, uint8_t *pixels, int32_t *labels, glow_error *err);
/* One process's slice of a batch of several processes: consumes the next `total`
 * images of the order and fills images first..first+n-1 of them (process r of R
 * with batch B: total = B*R, first = r*B, n = B). Files none of whose images are in
 * the slice are not read. dataset_next_batch(n) is dataset_next_slice(n, 0, n).
 * Returns 0 or -1 with err set. */
int dataset_next_slice(dataset *d, uint64_t total, uint64_t first, uint32_t n, uint8_t *pixels,
                       int32_t *labels, glow_error *err);
/* Where the next batch starts. */
void dataset_position(const dataset *d, uint64_t *epoch, uint64_t *offset);

void dataset_close(dataset *d);

#endif
