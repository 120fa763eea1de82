/* --times FILE of the tools that run a checkpoint's model over batches
 * (glow-bpd, glow-sample, glow-encode, glow-decode): one JSON line per batch,
 *   {"batch":1,"images":64,"seconds":0.412,"cpu_seconds":0.801,"images_per_s":155.3}
 * where a batch's time runs from the end of the one before it (the first: from
 * glow_batch_times_start), so reading its input and writing its output count.
 * cpu_seconds is the process's CPU time over the same span, all threads. The
 * first batches carry one-time costs (primitives built, memory first touched):
 * a steady rate is the median of the later ones, as glow-train's log.jsonl
 * gives per step (bench/run_bench.py reads both). The file appears whole when
 * the tool succeeds (base/atomic_file.h), never half-written. */
#ifndef GLOW_BATCH_TIMES_H
#define GLOW_BATCH_TIMES_H

#include <stdint.h>

#include "base/atomic_file.h"
#include "base/util.h"

typedef struct {
    atomic_file af;
    int on;             /* a FILE was given */
    uint64_t batches;   /* marked so far */
    double wall, cpu;   /* at the last start or mark */
} glow_batch_times;

/* path NULL: off (every call below does nothing). Else opens the file's
 * temporary name: 0, or -1 with err set ("PATH: reason"). */
int glow_batch_times_open(glow_batch_times *t, const char *path, glow_error *err);
/* The clock of the next batch starts now (before a loop over batches). */
void glow_batch_times_start(glow_batch_times *t);
/* A batch of `images` images ended now: its line, and the next one's clock
 * starts. Returns 0, or -1 with err set when the line cannot be written. */
int glow_batch_times_mark(glow_batch_times *t, uint64_t images, glow_error *err);
/* Commit the file (0, or -1 with err set); abort removes it. */
int glow_batch_times_commit(glow_batch_times *t, glow_error *err);
void glow_batch_times_abort(glow_batch_times *t);

#endif
