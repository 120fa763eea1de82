/* What a training run keeps in its checkpoint beyond the weights, and the model
 * comparison that decides whether a checkpoint fits a config.
 *
 * The trainer's own metadata keys (docs/checkpoints.md "anything else"):
 *   data_epoch, data_offset  where the next batch starts in the data order (dataset.h)
 *   optim_steps              optimizer updates taken (steps minus skipped ones): Adam's t
 *   train_seconds            training time of all sessions together
 *   name, description        the run config's top-level keys */
#ifndef GLOW_TRAIN_STATE_H
#define GLOW_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "config/yaml_config.h"
#include "model/checkpoint.h"

typedef struct {
    int64_t step, images_seen;
    uint64_t data_epoch, data_offset;
    long optim_steps;
    double train_seconds;
} glow_train_progress;

/* Store progress and the run config's name, description and train section. */
void glow_train_state_put(glow_checkpoint *ck, const glow_run_config *cfg,
                          const glow_train_progress *p);

/* The training state a checkpoint carries beyond the model, as --resume will use
 * it: data_epoch, data_offset and optim_steps non-negative integers (optim_steps
 * at most step), train_seconds a number >= 0, train_config (when present) a valid
 * train section whose optimizer is the optimizer state's. Reports each problem
 * ("FILE: metadata KEY: reason") through fn; returns their number. glow-ckpt
 * --verify and --export-weights, and glow_train_progress_get (--resume), run it. */
int glow_train_state_check(const glow_checkpoint *ck, const char *path, glow_problem_fn fn,
                           void *ctx);

/* Read the progress back (absent keys: data position from images_seen over
 * n_images, optimizer steps = steps, no time). Returns 0 or -1 with err naming
 * the checkpoint and the key. */
int glow_train_progress_get(const glow_checkpoint *ck, const char *path, uint64_t n_images,
                            glow_train_progress *p, glow_error *err);

/* Can a run with train config tc resume ck: optimizer state of tc's optimizer?
 * Returns 0, or -1 with err naming the checkpoint and saying what to do instead. */
int glow_train_state_resumable(const glow_checkpoint *ck, const char *path,
                               const glow_train_config *tc, glow_error *err);

/* The run config a checkpoint was trained with: its model, train_config JSON,
 * name and description. Returns 0 or -1 with err set (no or bad train_config). */
int glow_train_config_from_checkpoint(const glow_checkpoint *ck, const char *path,
                                      glow_run_config *cfg, glow_error *err);

#endif
