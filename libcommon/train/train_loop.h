/* The training loop of glow-train: a model, its optimizer and EMA on a backend,
 * fed by a dataset, writing checkpoints and the log of a run directory.
 *
 * Everything that decides the numbers is a function of the checkpointed state
 * (parameters, optimizer moments and step, EMA, images seen, data position), so
 * a run stopped and resumed gives the same bits as one run straight through:
 * the data order is a function of (seed, epoch), the dequantisation noise of an
 * image is indexed by the images seen before it, and the learning rate by the
 * images seen too.
 *
 * On several processes (docs/distributed.md) each one holds the whole model and
 * trains on its slice of every global batch: a step takes batch_size images per
 * process, batch_size * R in all, the global batch being the next images of the
 * one data order, process r taking images r*batch_size.. of it. The gradients are
 * averaged over processes (comm allreduce, in a fixed order), so every process
 * takes the same optimizer step and the parameters stay equal, which is checked
 * (a checksum of parameters, moments and EMA) at the start, every check_every
 * steps and at the end. Decisions are taken together: a step is skipped when the
 * global loss or the averaged gradient is not finite, and the run stops after the
 * same step on every process when any of them got SIGINT or SIGTERM or reached
 * the time limit. Rank 0 alone runs the data-dependent init (the others receive
 * its parameters), writes checkpoints and the log; validation is split over the
 * processes. With one process (the single communicator) this is the training of
 * one process exactly. */
#ifndef GLOW_TRAIN_LOOP_H
#define GLOW_TRAIN_LOOP_H

#include <signal.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/comm.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "optim.h"
#include "train_log.h"
#include "train_samples.h"
#include "train_state.h"

/* The dequantisation noise of validation images: one seed for every run and
 * checkpoint, so validation numbers compare across them. */
#define GLOW_VAL_NOISE_SEED 0x56414cULL

typedef struct {
    glow_run_config cfg;   /* effective config */
    char *run_dir, *ckpt_path;
    backend *b;
    glow_model *m;
    glow_optim *opt;
    float *ema, *swap;     /* backend arrays of the trained parameters; NULL without EMA */
    size_t n_trained;
    dataset *train, *val;  /* val may be NULL */
    uint8_t *px;           /* one batch of images and labels, reused every step */
    int32_t *labels;
    glow_checkpoint ck;    /* the host tensors checkpoints are written from */
    int ck_ready;
    glow_train_progress p;
    long run_steps;        /* the run's length: train.steps, or its epochs over this data */
    long total_steps;      /* where this session stops: run_steps unless the caller
                              sets another (glow-train --resume --steps N) */
    int max_bad_steps;
    int64_t last_saved_step; /* -1: none in this session */
    glow_train_log log;
    double session_start, seconds_base;
    double time_limit;     /* seconds of this session after which the run ends as if
                              done (saved, validated); 0 = none */
    double clock;          /* the fraction of time_limit spent before this step, for
                              train.lr_decay (0 without a limit) */
    glow_comm *comm;       /* the processes of the run; NULL: this one alone */
    long check_every;      /* steps between checks that every process holds the same
                              parameters (several processes); 0 = start and end only */
    int error_everywhere;  /* the last error is the same on every process (a decision
                              taken together): rank 0 alone needs to report it */
    /* A test hook (docs/distributed.md): GLOW_TEST_PERTURB=RANK:STEP adds 1e-3 to
     * the first parameter of process RANK after step STEP, which the next check
     * must catch. -1: none. */
    int perturb_rank;
    long perturb_step;
    /* The last validation (carried over from the checkpoint resumed): its step (-1:
     * none), the bpd of the weights and of their EMA (NAN without EMA). */
    int64_t val_step;
    double val_bpd, val_bpd_ema;
    /* best.safetensors: the best validation bpd so far (of the EMA weights when
     * there is an EMA, else of the weights; INFINITY: none yet), and whether the
     * last validation improved on it and awaits its save. */
    double best_bpd;
    int best_pending;
    /* Sample grids (rank 0, train.sample_every > 0, 1 or 3 channels). */
    glow_sampler sampler;
    int sampling;
    int64_t sampled_at;
    uint64_t mem;          /* bytes reserved in the memory budget (optimizer, EMA, batch) */
} glow_trainer;

/* Default of check_every. */
#define GLOW_CHECK_EVERY 1000

/* Steps of a run: train.steps, or its epochs over n_images with batch_size
 * images on each of processes. */
long glow_train_run_length(const glow_train_config *tc, uint64_t n_images, int processes);
/* Does training cfg fit the memory budget (base/mem_budget.h)? The model and its
 * activations for the training and the init batch (model.h glow_model_mem), the
 * optimizer and EMA state, the host copies a checkpoint is written from and the
 * batch buffer, all from the config before anything is allocated; host_backend:
 * the backend's memory is host memory (the CPU). Returns 0, or -1 with err saying
 * what the run would need. The allocations themselves are reserved as they are
 * made. */
int glow_trainer_plan(const glow_run_config *cfg, int host_backend, glow_error *err);

/* Fill in the fixed parts; datasets, log and backend are set by the caller. */
void glow_trainer_setup(glow_trainer *t, const glow_run_config *cfg, const char *run_dir);

/* Fresh parameters (seed), data-dependent init on the first init-batch images,
 * zeroed optimizer. Returns 0 or -1 with err set. */
int glow_trainer_start_scratch(glow_trainer *t, glow_error *err);
/* Continue a checkpoint with its optimizer state, EMA, step and data position. */
int glow_trainer_start_resume(glow_trainer *t, const glow_checkpoint *ck, const char *path,
                              glow_error *err);
/* Fine-tune: the checkpoint's weights (or its EMA weights), a new optimizer and
 * schedule, no data-dependent init. */
int glow_trainer_start_init(glow_trainer *t, const glow_checkpoint *ck, const char *path,
                            int use_ema, glow_error *err);

/* Train to total_steps, or until time_limit seconds of this session have
 * passed (the step under way finishes first). *stop becomes a signal number when one arrives: the
 * current step finishes, a checkpoint is saved and the loop returns 128 + signal.
 * Returns 0 when done, 1 on failure (err set), or 128 + signal. */
int glow_trainer_run(glow_trainer *t, volatile sig_atomic_t *stop, glow_error *err);

/* Mean validation bpd over the val set, of the weights or (ema, when there is
 * an EMA) of their moving average. */
int glow_trainer_validate(glow_trainer *t, int ema, double *bpd, glow_error *err);
/* Write RUN_DIR/checkpoint.safetensors (atomic), then, on rank 0, its further
 * names: best.safetensors when the last validation (at this step) was the best so
 * far, checkpoints/step-NNNNNNN.safetensors when step is a multiple of
 * train.keep_every (pruned to train.keep_last). Returns 0, 1 when the parameters
 * are not finite (nothing written, the last checkpoint kept) or -1 on a write
 * error. */
int glow_trainer_save(glow_trainer *t, glow_error *err);
/* Write the sample grids of this step (train_samples.h; rank 0, when sampling).
 * Returns 0, or -1 with err set. */
int glow_trainer_sample(glow_trainer *t, glow_error *err);

void glow_trainer_free(glow_trainer *t);

#endif
