/* The `train:` section of a configuration file (docs/configs.md): how a model is
 * trained, as opposed to what the model is (glow_config.h). Range checks and the
 * JSON form are in run_config.h, parsing and overrides in yaml_config.h, all driven
 * by the one table of keys (config_keys.h). */
#ifndef GLOW_TRAIN_CONFIG_H
#define GLOW_TRAIN_CONFIG_H

#include <stdint.h>

#include "backend/precision.h"
#include "glow_config.h"

/* train.optimizer: torch.optim.Adam or torch.optim.Adamax (train/optim.h). */
typedef enum { OPTIM_ADAM = 0, OPTIM_ADAMAX = 1 } glow_optimizer;

/* train.memory: what the forward pass keeps for the backward pass (docs/model.md
 * section 11). store: every flow step's activations; recompute: each step's input,
 * its coupling network run again in the backward pass; invert: what the levels
 * hand on, each step's input rebuilt from its output by the inverse. */
typedef enum { MEMORY_STORE = 0, MEMORY_RECOMPUTE = 1, MEMORY_INVERT = 2 } glow_memory_mode;

/* train.lr_decay: how the rate falls over the run after rising through the warm-up
 * (glow_lr_at): not at all, linearly, or along half a cosine, to lr * lr_final. */
typedef enum { LR_DECAY_NONE = 0, LR_DECAY_LINEAR = 1, LR_DECAY_COSINE = 2 } glow_lr_decay;

/* A short list of numbers (train.sample_temperatures): YAML [0.7, 1.0] or one
 * number. */
#define GLOW_NUMBER_LIST_MAX 8
typedef struct {
    int n;
    double v[GLOW_NUMBER_LIST_MAX];
} glow_number_list;

/* batch_size and init_batch are per process: with R GPUs each process draws
 * batch_size images per step, so a step consumes batch_size * R images. warmup and
 * epochs count images of all processes together (as the official code's
 * n_processed does), so they mean the same data whatever R is. */
typedef struct {
    int batch_size;           /* images per step per process */
    glow_optimizer optimizer;
    double lr;                /* peak learning rate, reached after the warm-up */
    double beta1, beta2;      /* Adam / Adamax moment decays */
    glow_lr_decay lr_decay;   /* the rate's fall over the run (glow_lr_at) */
    double lr_final;          /* where it ends, as a fraction of lr */
    long warmup;              /* images (all processes): lr rises linearly from 0 to lr
                                 over this many; 0 = none */
    long warmup_steps;        /* the same in optimizer steps, whatever the number of
                                 processes; at most one of the two is set */
    double grad_clip;         /* max global gradient L2 norm; 0 = no clipping */
    double ema_decay;         /* exponential moving average of the weights; 0 = none */
    int init_batch;           /* images for data-dependent actnorm init; 0 = automatic
                                 (glow_train_init_batch) */
    /* Run length: exactly one of the two is > 0 in a valid config. */
    long steps;
    double epochs;            /* passes over the training set */
    long checkpoint_every;    /* steps between checkpoints; 0 = only at the end */
    long keep_every;          /* steps between numbered checkpoints kept in
                                 RUN_DIR/checkpoints/; 0 = none */
    long keep_last;           /* numbered checkpoints kept (the newest); 0 = all */
    long sample_every;        /* steps between sample grids in RUN_DIR/samples/ (and at
                                 the end); 0 = none */
    glow_number_list sample_temperatures; /* one row block of samples each */
    long val_every;           /* steps between validation passes; 0 = none */
    long log_every;           /* steps between log lines; 0 = none */
    uint64_t seed;            /* every random stream (rng.h) derives from it */
    glow_precision precision;
    glow_memory_mode memory;  /* train.memory */
    int memory_every;         /* invert: also keep the input of every memory_every-th step
                                 of a level (0: only the levels' inputs and outputs) */
    double memory_max_error;  /* invert: stop when a rebuilt step input is off by more
                                 than this (relative RMS error; 0: never) */
    char device[32];          /* cpu, cuda, cuda:N or auto; resolved by glow_device_resolve */
} glow_train_config;

/* Defaults of docs/configs.md. steps and epochs are 0 (unset): a config must
 * choose one. */
void glow_train_config_default(glow_train_config *t);

/* The init batch to use: t->init_batch when set, else the official code's rule of
 * 256 images at 32x32 scaled down by pixel count (64 at 64x64, 4 at 256x256), so
 * that the init pass costs about the same memory at every image size. */
int glow_train_init_batch(const glow_train_config *t, const glow_config *model);

/* The learning rate of optimizer step `step` (1 the first) of a run of run_steps
 * steps, whose images up to and including it number `after`: lr times the warm-up
 * ramp (linear over train.warmup images or train.warmup_steps steps) times the
 * decay at the run's progress, max(step / run_steps, clock) clamped to [0, 1].
 * clock is the fraction of a time limit spent (glow-train --time-limit), or 0: a
 * run cut by the clock still ends its decay. Without a decay the progress does
 * not matter. */
double glow_lr_at(const glow_train_config *t, int64_t after, int64_t step, long run_steps, double clock);

/* "adam" or "adamax" -> the optimizer; -1 for anything else. */
int glow_optimizer_parse(const char *name, glow_optimizer *o);
const char *glow_optimizer_name(glow_optimizer o);

#endif
