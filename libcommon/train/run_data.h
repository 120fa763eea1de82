/* The data a run trains and validates on, recorded in RUN_DIR/data.json so that
 * `glow-train --resume RUN_DIR` needs nothing else, and so that data given again
 * can be checked to be the same (docs/checkpoints.md "A run directory"):
 *
 *   {"train": {"inputs": ["/abs/data/train"], "images": 60000, "shape": [1, 32, 32],
 *              "labels": true, "crc_images": 1024, "crc32": "1c291ca3"},
 *    "val": {...} or null}
 *
 * inputs are the shard files and folders as absolute paths ("-": a stream on
 * standard input); crc32 is the CRC-32 (zlib's) of the first crc_images images in
 * stored order (their pixels, then their labels as little-endian int32 when the set
 * has labels): a fingerprint that tells the same data, wherever it moved, from
 * other data of the same size. */
#ifndef GLOW_RUN_DATA_H
#define GLOW_RUN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "data/dataset.h"

typedef struct {
    int n_inputs;
    char **inputs;        /* absolute paths, or "-" */
    uint64_t images;
    uint32_t c, h, w;
    int labels;
    uint64_t crc_images;  /* images the CRC covers */
    uint32_t crc32;
} glow_data_print;

/* The record of one set: d opened from inputs (d is read from its first image and
 * rewound; crc_images 0 takes the default: up to 1024 images and 4 MiB). Returns
 * 0, or -1 with err set (a read error). */
int glow_data_print_make(dataset *d, int n, char *const *inputs, uint64_t crc_images,
                         glow_data_print *p, glow_error *err);
/* Are a and b the same data (count, shape, labels and CRC; not the paths)? When
 * not, why says how they differ: "150 images of 1x8x8 where the run has 50 images
 * of 1x8x8" or "the first 50 images differ (CRC-32 ... where the run has ...)". */
int glow_data_print_same(const glow_data_print *a, const glow_data_print *b, char *why,
                         size_t n);
/* "50 images of 1x8x8 with labels from /abs/s8.glow" */
void glow_data_print_describe(const glow_data_print *p, char *buf, size_t n);
void glow_data_print_free(glow_data_print *p);
void glow_data_print_copy(glow_data_print *dst, const glow_data_print *src);

typedef struct {
    int has_train, has_val;
    glow_data_print train, val;
} glow_run_data;

/* Read dir/data.json. Returns 1 when read, 0 when the file does not exist (a run
 * from before data.json), -1 with err naming the file when it is malformed. */
int glow_run_data_read(const char *dir, glow_run_data *rd, glow_error *err);
/* Write dir/data.json atomically. Returns 0, or -1 with err set. */
int glow_run_data_write(const char *dir, const glow_run_data *rd, glow_error *err);
void glow_run_data_free(glow_run_data *rd);

#endif
