/* The curves of training runs, read from their log.jsonl (train_log.h), and
 * their plot: a gnuplot script with the data inline, run through gnuplot's
 * pngcairo (or svg) terminal (glow-plot, README "glow-plot"). */
#ifndef GLOW_TRAIN_CURVES_H
#define GLOW_TRAIN_CURVES_H

#include <stddef.h>

#include "base/util.h"

/* Points (step, value), in step order. */
typedef struct {
    int n, cap;
    double *x, *y;
} glow_series;

typedef struct {
    char *name;                 /* the label: the run directory as given */
    char *log;                  /* the file read */
    glow_series train_bpd, lr, grad_norm, images_per_s; /* the interval lines */
    glow_series val_bpd, val_bpd_ema;                   /* the validation lines */
    int truncated;              /* the last line was cut short (a run killed mid-write) */
} glow_run_curves;

/* Read RUN/log.jsonl (run: a run directory, or a log file). Each line must be a
 * JSON object with an integer "step". Training lines ("loss", not "skipped")
 * give train_bpd, lr, grad_norm and images_per_s; validation lines val_bpd and
 * val_bpd_ema (a log of an earlier version marks an EMA validation with "ema":
 * true). When a session starts ("start") at an earlier step than the log
 * reached (a resume from an older checkpoint), the points after that step are
 * dropped: they were trained again. A last line without its newline that does not
 * parse is dropped (truncated). Returns 0, or -1 with err "FILE: line N: why"
 * (or "FILE: no training or validation lines"). */
int glow_curves_read(const char *run, glow_run_curves *c, glow_error *err);
void glow_curves_free(glow_run_curves *c);

typedef struct {
    int svg;            /* the svg terminal instead of pngcairo */
    int width, height;  /* pixels */
} glow_plot_opts;

/* A gnuplot script drawing n runs in four panels against the step: bits per
 * dimension (training, validation, validation of the EMA weights; log scale),
 * learning rate, gradient norm (log scale), images per second; one colour per
 * run, a legend and axis labels; its output goes to standard output. Caller
 * frees. */
char *glow_plot_script(const glow_run_curves *runs, int n, const glow_plot_opts *o);

/* Run gnuplot (GLOW_GNUPLOT, else gnuplot on PATH) on script with its standard
 * output on out_fd. Returns 0, or -1 with err set (gnuplot missing, or its own
 * first error line). */
int glow_plot_run(const char *script, int out_fd, glow_error *err);

#endif
