/* The latent stream: latents of a Glow model as records of the shard stream
 * (shard.h, flag bit 1), one record per batch, for glow-encode, glow-decode and
 * glow-latent. docs/formats.md "The latent stream" is the user-facing
 * description; the layout of a record's body (after its labels):
 *
 *   off size field
 *     0    8 tag "GLOWLATN"
 *     8    4 prefix size (160)
 *    12    4 layout: 1 = eps (standardised latents), 2 = z (raw latents)
 *    16    8 model: the identity of the model the latents belong to
 *    24    8 weights: a fingerprint of the weights that made them (0: none)
 *    32    4 levels L, 1..10
 *    36    4 reserved, must be 0
 *    40  120 ten (C, H, W) uint32 triples: the latent of each level, level 0
 *            first (the z2 of each split), the top last; unused triples 0
 *   160   4n t: one float32 factor per latent (the latent is t * v)
 *  +4n  4nD v: D = c*h*w float32 values per latent: the levels' latents in
 *            level order, each in C, H, W order
 *
 * Every integer and float is little-endian. The header's c x h x w is the model's
 * image shape, whose D values the levels' latents hold between them. */
#ifndef GLOW_LATENT_STREAM_H
#define GLOW_LATENT_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

#define LATENT_TAG "GLOWLATN"
#define LATENT_MAX_LEVELS 10

typedef enum { LATENT_EPS = 1, LATENT_Z = 2 } latent_layout;

/* What every record of one latent stream shares. */
typedef struct {
    latent_layout layout;
    uint64_t model;
    int levels;
    uint32_t lat[LATENT_MAX_LEVELS][3]; /* C, H, W of each level's latent */
    uint32_t c, h, w;                   /* the model's image shape */
} latent_info;

/* D: values per latent (c*h*w). */
static inline size_t latent_dims(const latent_info *i) { return (size_t)i->c * i->h * i->w; }
/* Values of level l's latent. */
static inline size_t latent_level_size(const latent_info *i, int l)
{
    return (size_t)i->lat[l][0] * i->lat[l][1] * i->lat[l][2];
}
const char *latent_layout_name(latent_layout l);
/* 1 when two streams' latents can be combined (same layout, model and shapes). */
int latent_info_equal(const latent_info *a, const latent_info *b);

/* One record in memory: n latents. */
typedef struct {
    uint32_t n;
    uint64_t weights; /* the record's weights fingerprint */
    int32_t *labels;  /* n, or NULL */
    float *t;         /* n factors */
    float *v;         /* n * D values, latent by latent */
} latent_record;
void latent_record_free(latent_record *r);

/* ---- Reading ---- */

/* The files in order as one stream (standard input when there are none, and for
 * "-"). Every record must be a latent record of the first one's layout, model,
 * shapes and presence of labels. */
typedef struct latent_reader latent_reader;
latent_reader *latent_reader_open(int nfiles, char **files);
/* The next record (freed by the caller with latent_record_free): 1, 0 at the end,
 * -1 with err "FILE: record N: reason" (N counts from 1 within FILE). */
int latent_reader_next(latent_reader *r, latent_record *rec, glow_error *err);
/* The stream's description and labels, valid after the first record. */
const latent_info *latent_reader_info(const latent_reader *r);
int latent_reader_has_labels(const latent_reader *r);
/* The stream's name for messages: its first file, or "standard input". */
const char *latent_reader_name(const latent_reader *r);
/* The file and record number of the record last returned (NULL before the first). */
const char *latent_reader_where(const latent_reader *r, uint64_t *record);
void latent_reader_close(latent_reader *r);

/* ---- Writing ---- */

/* Latents one at a time, written as records of at most per_record latents (a
 * record is written when full and by latent_writer_flush), so the records of a
 * stream do not depend on how the latents were computed. */
typedef struct latent_writer latent_writer;
latent_writer *latent_writer_new(FILE *f, const latent_info *info, uint64_t weights,
                                 int labels, uint32_t per_record);
/* v: D values; label ignored without labels. Returns 0 or -1 with err set. */
int latent_writer_put(latent_writer *w, int32_t label, float t, const float *v,
                      glow_error *err);
int latent_writer_flush(latent_writer *w, glow_error *err);
/* Frees w (a partly filled record is dropped: flush first). */
void latent_writer_free(latent_writer *w);

/* Latents per record that writers aim for: at most 256 and 64 MiB of values. */
uint32_t latent_per_record(size_t dims);

#endif
