/* The convolutions of one training step, shape by shape, through the CPU backend:
 * for each convolution of a benchmark config (docs/model.md section 3: a coupling
 * network's conv1 3x3, conv2 1x1, conv3 3x3; the invconv 1x1; the split and top
 * priors' 3x3), the best time of its forward (with the fused actnorm where the
 * model fuses one), data-gradient and filter-gradient calls and the GFLOP/s they
 * reach, and the step's total for the convolutions (each shape times the number
 * of times a step runs it), and of its forward calls alone. A tool for finding
 * which convolutions are slow, and make bench's measure of what the convolutions
 * alone allow (bench/README.md).
 * Usage: conv_ops [A128|A512|B] [--iters N] [--cpu] [--cold] [--shape N,H,W,CIN,COUT,K,EDGE ...]
 * (--shape: only the shapes given; --cold: the caches flushed before each timed call) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "device/device.h"
#include "tool/tool.h"

#include "bench/bench_configs.h"


/* With --cpu, the process's CPU time instead of the wall clock: the work of all
 * threads, which other processes on a shared machine disturb less (divide by the
 * thread count for a wall-clock estimate). */
static int use_cpu_time;

static double clock_now(void)
{
    if (!use_cpu_time)
        return now_seconds();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* With --cold, every timed call starts with the caches holding other data (a
 * 64 MiB buffer written just before): as in a training step, where a convolution's
 * operands were last touched several layers ago, not by the same call a moment ago. */
static int cold;
static void flush_caches(void)
{
    static volatile char *junk;
    enum { JUNK = 64 << 20 };
    if (!junk)
        junk = xmalloc(JUNK);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < JUNK; i += 64)
        junk[i] = (char)i;
}

static double best_of(int iters, void (*f)(void *), void *arg)
{
    f(arg); /* primitive creation, first touch */
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        if (cold)
            flush_caches();
        double t0 = clock_now();
        f(arg);
        double t = clock_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

typedef struct {
    backend *b;
    bk_conv d;
    float *x, *w, *y, *dy, *dx, *dw, *bias, *logs;
    int affine;
} job;

static void do_fwd(void *a)
{
    job *j = a;
    if (j->affine)
        j->b->conv_fwd_affine(j->b, &j->d, j->x, j->w, j->bias, j->logs, j->d.k == 1 || j->d.cout > 64,
                              j->y);
    else
        j->b->conv_fwd(j->b, &j->d, j->x, j->w, j->y);
}
static void do_bwd_data(void *a)
{
    job *j = a;
    j->b->conv_bwd_data(j->b, &j->d, j->dy, j->w, j->dx, 0);
}
static void do_bwd_filter(void *a)
{
    job *j = a;
    j->b->conv_bwd_filter(j->b, &j->d, j->x, j->dy, j->dw);
}

static float *rnd(backend *b, size_t n, unsigned seed)
{
    float *h = xmalloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        h[i] = (float)(seed >> 8) / 16777216.0f - 0.5f;
    }
    float *d = b->alloc(b, n * sizeof *d);
    b->upload(b, d, h, n * sizeof *d);
    free(h);
    return d;
}

static double total, fwd_total; /* seconds of one training step's convolutions, and of their forward calls */

static void run_shape(backend *b, const char *what, bk_conv d, int affine, int per_step, int iters)
{
    job j = {b, d, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, affine};
    const size_t P = (size_t)d.n * d.h * d.w, nw = (size_t)d.cout * (d.cin + d.edge) * d.k * d.k;
    j.x = rnd(b, P * d.cin, 1);
    j.dx = rnd(b, P * d.cin, 2);
    j.y = rnd(b, P * d.cout, 3);
    j.dy = rnd(b, P * d.cout, 4);
    j.w = rnd(b, nw, 5);
    j.dw = rnd(b, nw, 6);
    j.bias = rnd(b, (size_t)d.cout, 7);
    j.logs = rnd(b, (size_t)d.cout, 8);
    double tf = best_of(iters, do_fwd, &j), td = best_of(iters, do_bwd_data, &j),
           tw = best_of(iters, do_bwd_filter, &j);
    double fl = 2.0 * P * d.cout * (d.cin + d.edge) * d.k * d.k * 1e-9;
    printf("%-9s n%-3d %2dx%-2d %4d%s -> %4d k%d  x%-3d  fwd %7.3f ms %4.0f  bwd-data %7.3f ms %4.0f  "
           "bwd-filter %7.3f ms %4.0f GFLOP/s\n",
           what, d.n, d.h, d.w, d.cin, d.edge ? "+e" : "  ", d.cout, d.k, per_step, 1e3 * tf, fl / tf,
           1e3 * td, fl / td, 1e3 * tw, fl / tw);
    fflush(stdout);
    total += per_step * (tf + td + tw);
    fwd_total += per_step * tf;
    b->free(b, j.x);
    b->free(b, j.dx);
    b->free(b, j.y);
    b->free(b, j.dy);
    b->free(b, j.w);
    b->free(b, j.dw);
    b->free(b, j.bias);
    b->free(b, j.logs);
}

int main(int argc, char **argv)
{
    /* passive: with --cpu it counts CPU time, which Linux counts late for a
     * spinning thread (tool.h) */
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP | GLOW_TOOL_OMP_PASSIVE);
    int iters = 5;
    const bench_cfg *bc = &configs[0];
    bk_conv shapes[32];
    int nshapes = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc && nshapes < 32) {
            bk_conv *d = &shapes[nshapes++];
            if (sscanf(argv[++i], "%d,%d,%d,%d,%d,%d,%d", &d->n, &d->h, &d->w, &d->cin, &d->cout, &d->k,
                       &d->edge) != 7)
                glow_die(2, "--shape N,H,W,CIN,COUT,K,EDGE");
            continue;
        }
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
            continue;
        }
        if (strcmp(argv[i], "--cpu") == 0) {
            use_cpu_time = 1;
            continue;
        }
        if (strcmp(argv[i], "--cold") == 0) {
            cold = 1;
            continue;
        }
        int found = 0;
        for (size_t k = 0; k < sizeof configs / sizeof *configs; k++)
            if (strcmp(argv[i], configs[k].name) == 0)
                bc = &configs[k], found = 1;
        if (!found)
            glow_die(2, "usage: conv_ops [A128|A512|B] [--iters N] [--cpu] [--cold] [--shape N,H,W,CIN,COUT,K,EDGE ...]");
    }
    glow_error err;
    backend *b = backend_get(DEVICE_CPU, 0, &err);
    if (!b)
        glow_die(1, "%s", err.msg);
    if (nshapes) {
        for (int i = 0; i < nshapes; i++)
            run_shape(b, "shape", shapes[i], 1, 1, iters);
        backend_release(b);
        return 0;
    }
    const int n = bc->batch, Wd = bc->width, K = bc->steps;
    printf("%s: batch %d, width %d, %d levels of %d steps; best of %d (%s%s)\n", bc->name, n, Wd, bc->levels,
           K, iters, use_cpu_time ? "process CPU time: GFLOP/s per busy core" : "wall clock",
           cold ? ", caches flushed before each call" : "");
    for (int l = 0; l < bc->levels; l++) {
        const int C = 4 * bc->c0 << l, H = bc->hw >> (l + 1);
        run_shape(b, "conv1", (bk_conv){n, H, H, C / 2, Wd, 3, 1}, 1, K, iters);
        run_shape(b, "conv2", (bk_conv){n, H, H, Wd, Wd, 1, 0}, 1, K, iters);
        run_shape(b, "conv3", (bk_conv){n, H, H, Wd, C, 3, 1}, 1, K, iters);
        run_shape(b, "invconv", (bk_conv){n, H, H, C, C, 1, 0}, 0, K, iters);
        if (l < bc->levels - 1)
            run_shape(b, "split", (bk_conv){n, H, H, C / 2, C, 3, 1}, 1, 1, iters);
        else
            run_shape(b, "top", (bk_conv){n, H, H, 2 * C, 2 * C, 3, 1}, 1, 1, iters);
    }
    printf("convolutions of one training step (forward, data and filter gradients): %.1f ms\n", 1e3 * total);
    /* evaluation's convolutions; sampling runs the same ones (the inverse pass
     * runs each coupling network forward, the invconv by its inverse's weights) */
    printf("forward convolutions (evaluation, sampling): %.1f ms\n", 1e3 * fwd_total);
    backend_release(b);
    return 0;
}
