/* What glow-train reports: RUN_DIR/log.jsonl (one JSON object per line, flushed
 * line by line and appended across resumed sessions) and stderr (a progress line
 * rewritten in place when stderr is a terminal, else a plain line per log
 * interval; nothing routine under --quiet). */
#ifndef GLOW_TRAIN_LOG_H
#define GLOW_TRAIN_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

/* model.levels is at most 10 (config/config_keys.c): the per-level numbers of a
 * log line fit fixed arrays */
#define GLOW_LOG_MAX_LEVELS 10

typedef struct {
    FILE *f;
    char *path;
    int tty, quiet;
    int progress_shown; /* a progress line without newline is on the terminal */
    double progress_at; /* when it was last drawn */
    int write_failed;
    int silent;         /* nothing at all: the processes of a run other than rank 0 */
    double val_bpd, val_bpd_ema; /* the last validation, shown on progress lines; NAN: none */
} glow_train_log;

/* Averages over one log interval. */
typedef struct {
    long step, total_steps;
    int64_t images;       /* images seen so far */
    double loss, bpd, lr, grad_norm;
    double images_per_s;
    double seconds;       /* training time of all sessions */
    int has_inv_error;    /* train.memory invert: */
    double inv_error;     /* the largest relative error of a step input the backward
                             passes of the interval rebuilt (glow_model_inv_error) */
    int n_levels;         /* and the largest of each level (inv_level[0..n_levels-1]) */
    const double *inv_level;
} glow_train_stats;

int glow_train_log_open(glow_train_log *lg, const char *run_dir, int quiet, glow_error *err);
/* A log that writes and prints nothing (glow_train_log_close is harmless on it):
 * in a run on several processes, rank 0 alone logs, and the others report their
 * own errors by glow_warn or glow_die. */
void glow_train_log_silent(glow_train_log *lg);
void glow_train_log_close(glow_train_log *lg);

/* One log.jsonl line made of the given JSON members ("\"step\":3,\"x\":1"). */
void glow_train_log_json(glow_train_log *lg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A JSON number, or null when not finite (JSON has no NaN or infinity). */
const char *glow_json_num(char buf[32], double v);

/* The interval line: log.jsonl, and stderr unless quiet or a terminal (which
 * has the progress line instead). */
void glow_train_log_stats(glow_train_log *lg, const glow_train_stats *s);
/* The in-place progress line (terminal only; redrawn at most 10 times a
 * second, and always for the last step). */
void glow_train_log_progress(glow_train_log *lg, long step, long total, double bpd,
                             double images_per_s, double eta_s);
/* "glow-train: message" on stderr, after ending any progress line; with
 * routine, nothing under --quiet. */
void glow_train_log_msg(glow_train_log *lg, int routine, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
