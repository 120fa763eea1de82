/* Sample grids and reconstructions written while a model trains
 * (RUN_DIR/samples/, docs/configs.md train.sample_every):
 *
 *   samples/step-NNNNNNN.png   for each temperature of train.sample_temperatures,
 *                              in that order, a block of the first min(B, 32)
 *                              images of a batch of B = train.batch_size samples,
 *                              8 to a row; the blocks are set apart by a wider gap
 *   samples/recon-NNNNNNN.png  the first min(B, 8) validation images (top row) and
 *                              their reconstructions, encode then decode (below)
 *
 * The noise is the same at every step (seed train.seed, images 0..B-1, labels i
 * mod n_classes: glow-sample --seed S -t T gives the same images of the same
 * weights), so the grids of successive steps show the same draws as the model
 * learns, and a rerun writes the same bytes. Encoding takes each sub-pixel at the
 * centre of its quantisation bin, as glow-encode does. Images of 1 channel are
 * gray PNGs, of 3 RGB; other channel counts have no grid. */
#ifndef GLOW_TRAIN_SAMPLES_H
#define GLOW_TRAIN_SAMPLES_H

#include <stdint.h>

#include "config/train_config.h"
#include "data/dataset.h"
#include "model/model.h"

typedef struct {
    glow_config mc;
    int batch;              /* images per model call (the training batch: its buffers) */
    int shown;              /* sample images shown per temperature */
    glow_number_list temps;
    uint64_t seed;
    uint8_t *px;            /* a batch of images */
    int32_t *labels;
    int n_recon;            /* validation images reconstructed; 0: none */
    uint8_t *recon_px;      /* a batch: those images, the rest copies of the last */
    int32_t *recon_labels;
    float *noise, *x;       /* bin centres; decoded images */
    float **z;              /* one latent array per level */
    int L;
    uint64_t mem;           /* bytes reserved in the memory budget (base/mem_budget.h) */
} glow_sampler;

/* Can images of this model be drawn as PNG (1 or 3 channels)? */
int glow_sampler_drawable(const glow_config *mc);

/* Set up for model mc and batch size batch; the reconstructions take the first
 * images of val in stored order (val NULL: none; val is rewound after). The
 * buffers are reserved in the memory budget. Returns 0, or -1 with err set
 * (reading val, or over the budget). */
int glow_sampler_init(glow_sampler *s, const glow_config *mc, int batch,
                      const glow_number_list *temps, uint64_t seed, dataset *val,
                      glow_error *err);

/* Draw with the model's current weights and write the grids of step into
 * run_dir/samples/ (created), each atomically. names gets the files written,
 * relative to run_dir, separated by a space. Returns 0, or -1 with err set. */
int glow_sampler_write(glow_sampler *s, glow_model *m, const char *run_dir, int64_t step,
                       char *names, size_t names_len, glow_error *err);

void glow_sampler_free(glow_sampler *s);

#endif
