/* A run directory of glow-train (README "glow-train", docs/checkpoints.md "A run
 * directory"):
 *
 *   config.yml                  the effective config
 *   data.json                   the training and validation data (run_data.h)
 *   checkpoint.safetensors      the latest checkpoint
 *   best.safetensors            the checkpoint of the best validation bpd so far
 *   checkpoints/step-NNNNNNN.safetensors   every train.keep_every steps
 *   samples/step-NNNNNNN.png, samples/recon-NNNNNNN.png   (train_samples.h)
 *   log.jsonl                   one JSON object per line (train_log.h)
 *   .lock                       held (flock) by the glow-train training in it
 *
 * Every file is written atomically; best and the numbered checkpoints are further
 * names (hard links, or copies) of checkpoint.safetensors as saved at their step.
 * Rank 0 of a run on several processes alone writes here. */
#ifndef GLOW_RUN_DIR_H
#define GLOW_RUN_DIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/run_config.h"

/* Where a run starts from and where it goes. With resume (a run directory or a
 * checkpoint file): its checkpoint, and the run directory out, else resume's
 * own directory. Without: the checkpoint init (NULL: none) and out. Caller
 * frees both. */
void glow_run_dir_paths(const char *resume, const char *out, const char *init, char **ck_path,
                        char **run_dir);

/* What a directory holds. */
typedef struct {
    int exists;           /* the path exists (a directory or not) */
    int holds_run;        /* it has a checkpoint, config.yml or log.jsonl of a run */
    int has_checkpoint;   /* checkpoint.safetensors whose header reads */
    int64_t step;         /* its step (-1 without a checkpoint) */
    long run_steps;       /* its train_config's steps (0: unknown or epochs) */
    char name[128];       /* its run name, or "" */
    long busy_pid;        /* > 0: a glow-train of this pid holds the directory's lock */
} glow_run_info;

/* Look without changing anything (the checkpoint's header only). */
void glow_run_dir_inspect(const char *dir, glow_run_info *ri);
/* "the run tiny at step 22 of 100" (what glow_run_dir_inspect found). */
void glow_run_dir_describe(const glow_run_info *ri, char *buf, size_t n);

/* May a new run go into dir? Yes when it does not exist or holds no run. When it
 * holds one: without force -1, err naming the run, its step, --resume and
 * --force; with force 0 (glow_run_dir_move_aside is then to move it). Always -1
 * when another glow-train trains in it now. */
int glow_run_dir_check_new(const char *dir, int force, glow_error *err);
/* Rename dir to the first free DIR.old-N (N = 1, 2, ...), which *moved gets
 * (caller frees). Returns 0, or -1 with err set. */
int glow_run_dir_move_aside(const char *dir, char **moved, glow_error *err);

/* Hold dir/.lock (flock, released when the process ends) so that no second
 * glow-train trains in dir at the same time. Returns the descriptor, or -1 with
 * err set when another process holds it; a filesystem without locks gives -2
 * and no error. */
int glow_run_dir_lock(const char *dir, glow_error *err);

/* Create dir (and its parents), remove the temporary files of writers no longer
 * running (glow_run_dir_remove_stale), and write dir/config.yml atomically.
 * Returns 0, or -1 with err set. */
int glow_run_dir_prepare(const char *dir, const glow_run_config *cfg, glow_error *err);

/* Remove the temporary files (".NAME.tmp.PID") of the run's own files whose
 * writer PID no longer runs (a kill -9 during a save), in dir and its
 * checkpoints/ and samples/. Returns how many were removed. */
int glow_run_dir_remove_stale(const char *dir);

/* ---- the checkpoints of a run ---- */

/* dir/checkpoints/step-NNNNNNN.safetensors (caller frees). */
char *glow_run_dir_numbered(const char *dir, int64_t step);
/* Keep the checkpoint ckpt (just saved at step) as a numbered one, then remove
 * the oldest numbered ones beyond the newest keep_last (0: keep all); *pruned
 * gets how many went. Returns 0, or -1 with err set. */
int glow_run_dir_keep(const char *dir, const char *ckpt, int64_t step, long keep_last,
                      int *pruned, glow_error *err);
/* dir/best.safetensors becomes the checkpoint ckpt. Returns 0, or -1. */
int glow_run_dir_set_best(const char *dir, const char *ckpt, glow_error *err);

/* One checkpoint of a run directory, from its header. */
typedef struct {
    char *file;           /* relative to the run directory */
    int ok;               /* the header reads; else why says what is wrong */
    char why[1100];
    int64_t step;
    int64_t val_step;     /* the step of the last validation before it; -1: none */
    double val_bpd, val_bpd_ema; /* of that validation; NAN when absent */
    size_t size;          /* bytes */
    int best;             /* best.safetensors (or a name of the same file) */
} glow_run_ckpt;

/* The checkpoints of dir: checkpoint.safetensors, best.safetensors, then the
 * numbered ones by step. Returns how many (0: none), or -1 with err set when dir
 * is not a directory. Free with glow_run_ckpts_free. */
int glow_run_dir_list(const char *dir, glow_run_ckpt **out, glow_error *err);
void glow_run_ckpts_free(glow_run_ckpt *c, int n);
/* The listing glow-ckpt RUN_DIR prints: a line naming the run, then one line per
 * checkpoint with its step, the validation bpd of its step (weights, EMA) and its
 * size; with json one JSON object ({"run", "name", "checkpoints": [{"file", "step",
 * "val_bpd", "val_bpd_ema", "bytes", "best"}]}, null for what is absent). Returns
 * 0, or -1 with err set (not a run directory, or one without checkpoints). */
int glow_run_dir_report(const char *dir, int json, FILE *out, glow_error *err);

#endif
