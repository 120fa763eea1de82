#include "batch_times.h"

#include <stdio.h>
#include <time.h>

/* the process's CPU time, all threads */
static double cpu_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
        return 0.0;
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int glow_batch_times_open(glow_batch_times *t, const char *path, glow_error *err)
{
    *t = (glow_batch_times){0};
    if (!path)
        return 0;
    if (atomic_open(&t->af, path, err) != 0)
        return -1;
    t->on = 1;
    glow_batch_times_start(t);
    return 0;
}

void glow_batch_times_start(glow_batch_times *t)
{
    if (!t->on)
        return;
    t->wall = now_seconds();
    t->cpu = cpu_seconds();
}

int glow_batch_times_mark(glow_batch_times *t, uint64_t images, glow_error *err)
{
    if (!t->on)
        return 0;
    double wall = now_seconds(), cpu = cpu_seconds();
    double dw = wall - t->wall, dc = cpu - t->cpu;
    t->batches++;
    if (fprintf(t->af.f,
                "{\"batch\":%llu,\"images\":%llu,\"seconds\":%.6f,\"cpu_seconds\":%.6f,"
                "\"images_per_s\":%.3f}\n",
                (unsigned long long)t->batches, (unsigned long long)images, dw, dc,
                dw > 0 ? (double)images / dw : 0.0) < 0) {
        glow_errorf(err, "%s: write failed", t->af.path);
        return -1;
    }
    t->wall = wall;
    t->cpu = cpu;
    return 0;
}

int glow_batch_times_commit(glow_batch_times *t, glow_error *err)
{
    if (!t->on)
        return 0;
    t->on = 0;
    return atomic_commit(&t->af, err);
}

void glow_batch_times_abort(glow_batch_times *t)
{
    if (!t->on)
        return;
    t->on = 0;
    atomic_abort(&t->af);
}
