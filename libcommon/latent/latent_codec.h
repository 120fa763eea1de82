/* Images to latents and back through a loaded model: the loops of glow-encode,
 * glow-decode and glow-latent random (docs/model.md section 10.8, docs/formats.md
 * "The latent stream"). Each reads its input record by record and writes records
 * of a fixed number of latents or images (latent_per_record, and glow-sample's
 * rule for images), so the output does not depend on the batch size. */
#ifndef GLOW_LATENT_CODEC_H
#define GLOW_LATENT_CODEC_H

#include <stdint.h>
#include <stdio.h>

#include "data/latent_stream.h"
#include "model/model_load.h"

/* Called after each batch with the count so far (may be NULL). */
typedef void (*latent_progress_fn)(void *ctx, uint64_t done);

typedef struct {
    latent_layout layout;  /* LATENT_EPS (standardised) or LATENT_Z */
    int noise;             /* random dequantisation noise from (seed, image index);
                              else the centre of each quantisation bin */
    uint64_t seed;
    int batch;             /* images per model call */
    uint64_t limit;        /* 0: every image */
    FILE *bpd;             /* per-image bpd as TSV (index, bpd, label), or NULL */
    latent_progress_fn progress;
    void *ctx;
} latent_encode_opts;

/* The images of the shard files or folders in inputs (standard input when there
 * are none) to a latent stream on out. *count gets the images encoded. Returns 0,
 * or -1 with err set ("FILE: ..." for bad input, "OUT: ..." for a failed write:
 * out_name names out). */
int latent_encode(glow_loaded_model *lm, int ninputs, char **inputs, const latent_encode_opts *o,
                  FILE *out, const char *out_name, uint64_t *count, glow_error *err);

typedef struct {
    int batch;     /* latents per model call */
    long cls;      /* >= 0: decode every latent as this class (class-conditional models) */
    latent_progress_fn progress;
    void *ctx;
} latent_decode_opts;

/* A latent stream to uint8 images (the shard stream) on out, refusing latents of
 * another model (ckpt names the checkpoint in messages); a stream made with other
 * weights of the same model is decoded after a warning. */
int latent_decode(glow_loaded_model *lm, const char *ckpt, latent_reader *in,
                  const latent_decode_opts *o, FILE *out, const char *out_name, uint64_t *count,
                  glow_error *err);

typedef struct {
    uint64_t n;
    float temperature;
    uint64_t seed;
    long cls;  /* >= 0: every latent of this class; else class i mod n_classes */
    int batch;
} latent_random_opts;

/* n standardised latents drawn as glow-sample draws its noise (the same seed,
 * image index and temperature, t = T, labels as glow-sample gives them), so that
 * decoding them gives glow-sample's images. */
int latent_random(glow_loaded_model *lm, const latent_random_opts *o, FILE *out,
                  const char *out_name, glow_error *err);

#endif
