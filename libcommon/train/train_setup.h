/* glow-train's start, between its options and the training loop (train_loop.h):
 * the effective config from a config file, the checkpoint resumed or fine-tuned
 * from and the command line; the device; the data, given or recorded in the run
 * directory (run_data.h) and checked against that record; the agreement of the
 * processes of a run on several. */
#ifndef GLOW_TRAIN_SETUP_H
#define GLOW_TRAIN_SETUP_H

#include <stdint.h>

#include "backend/comm.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "device/device.h"
#include "dist/dist.h"
#include "model/checkpoint.h"
#include "run_data.h"
#include "train_loop.h"

/* What the command line says about the config. */
typedef struct {
    const char *config;    /* -c FILE, or NULL */
    const char *resume;    /* --resume RUN|CKPT, or NULL */
    const char *init;      /* --init CKPT, or NULL */
    char *const *sets;     /* --set KEY=VALUE ... */
    int nsets;
    long steps;            /* --steps N; 0: not given */
    int has_seed;
    uint64_t seed;
    const char *device;    /* --device D, or NULL */
} glow_train_cli;

/* The effective config into cfg, and *cfg_name the source messages name (the
 * file, or the checkpoint). With a checkpoint ck (resume or init, read from
 * ck_path) the model is the checkpoint's: the model section of a config file, when
 * it has one, must equal it, and a --set of a model key that would change it is an
 * error naming that --set; the train section is the file's, else the checkpoint's
 * train_config (the defaults for a checkpoint without one). --steps N on a resume
 * is this session's end alone (*session_steps; the run keeps train.steps),
 * elsewhere it sets train.steps. Returns 0, or an exit status (EXIT_BADINPUT,
 * EXIT_USAGE for a malformed --set) with err set. */
int glow_train_make_config(const glow_train_cli *a, const glow_checkpoint *ck, const char *ck_path,
                           glow_run_config *cfg, const char **cfg_name, long *session_steps,
                           glow_error *err);

/* This process's device for cfg->train.device; when it came from the config (no
 * --device) and there is no GPU, the message names the config and says to use
 * --device cpu. Returns 0 or -1 with err set. */
int glow_train_device(const glow_dist *d, const glow_train_cli *a, const glow_run_config *cfg,
                      const char *cfg_name, glow_device *dev, glow_error *err);

/* Open a data set (what: "training" or "validation") from n inputs (none or "-":
 * standard input, held in memory within the memory budget, base/mem_budget.h,
 * its records held to the model's shape before decompression, with a note on
 * stderr unless quiet) and check that it fits the model (this process's share of
 * the labels).
 * Returns 0 with *out set, or an exit status with err set (EXIT_USAGE: a stream
 * that cannot feed several processes or comes from a terminal). */
int glow_train_open_data(int n, char **inputs, const char *what, int quiet,
                         const glow_run_config *cfg, const glow_dist *dist, dataset **out,
                         glow_error *err);

/* Which data a run opens: given on the command line, else what its run directory
 * recorded (run_data.h), else standard input. */
typedef struct {
    glow_run_data rec;     /* the record of the run resumed */
    int has_rec;
    char *rec_file;        /* its path, for messages */
    int ntrain, nval;
    char **train, **val;   /* to open (pointing into the command line or rec) */
    int train_recorded, val_recorded; /* taken from the record */
} glow_data_plan;

/* src_dir: the directory of the run resumed (NULL when not resuming). Returns 0,
 * or an exit status with err set: EXIT_BADINPUT for a malformed data.json,
 * EXIT_USAGE for a recorded stream and a terminal on standard input. */
int glow_train_plan_data(const char *src_dir, int ntrain, char **train, int nval, char **val,
                         glow_data_plan *p, glow_error *err);
/* The record of the data opened (for data.json), checked against the run's record
 * when there is one: data that differs is an error saying how, unless new_data
 * (then *val_changed tells whether the validation set is another). Returns 0, or
 * -1 with err set. */
int glow_train_check_data(const glow_data_plan *p, dataset *train, dataset *val, int new_data,
                          glow_run_data *out, int *val_changed, glow_error *err);
void glow_data_plan_free(glow_data_plan *p);

/* Every process must train the same model on the same data with the same build
 * (build: its version and parts, as text): compared at the start (dist.h
 * glow_dist_agree). Returns 0, or -1 with err naming the first difference. */
int glow_train_agree(glow_comm *comm, const glow_run_config *cfg, const char *mode, int64_t step,
                     const dataset *train, const dataset *val, const char *build, glow_error *err);

/* A decision of rank 0 that every process follows: rank 0's *code and err reach
 * every process (with one process nothing happens). */
void glow_train_share(glow_comm *comm, int *code, glow_error *err);
/* The same, then when code is not 0: rank 0 prints the message and every
 * process exits with code. */
void glow_train_settle(glow_comm *comm, int code, glow_error *err);

/* Rank 0, once every check has passed: make run_dir the run's. Unless resuming in
 * place, a run already there (glow_run_dir_check_new allowed it: --force) is moved
 * aside, said on stderr; then config.yml, the lock and data.json (record).
 * Returns 0, or -1 with err set. */
int glow_train_open_run_dir(const char *run_dir, int in_place, const glow_run_config *cfg,
                            const glow_run_data *record, glow_error *err);

/* The line glow-train starts with: "training from step 0 to 20 on cpu, 200
 * training images, batch 8" ("resuming ...", "(this session; the run ends at
 * step N)", the processes of a run on several). Returns buf. */
const char *glow_train_start_text(const glow_trainer *t, const char *mode, const char *dev, char *buf,
                                  size_t n);

#endif
