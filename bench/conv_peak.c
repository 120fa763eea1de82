/* The machine's convolution peak: GFLOP/s of big oneDNN fp32 convolutions
 * (forward, in oneDNN's preferred layouts), for a 3x3 and a 1x1 shape of width
 * 512 at 16x16, run two ways: one call over the whole batch with oneDNN's own
 * threading, and one single-thread call per OpenMP thread on its share of the
 * batch, each with its own stream (how cpu/cpu_conv.c runs). The best of these is
 * the ceiling the model's convolutions are compared with in make bench.
 * Usage: conv_peak [--iters N]   (best of N timed calls after one warm-up)
 * A second line gives the same per CPU second of the process, times the thread
 * count: what the threads would do with the cores to themselves. On a machine
 * that other processes share, the wall-clock figure falls with their load and
 * this one much less (waiting threads sleep: the tools wait passively), so make
 * bench compares CPU-time rates with it. A third line names the instruction set
 * oneDNN's kernels use here. */
#include <dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "tool/tool.h"

#define DN(call)                                                              \
    do {                                                                      \
        dnnl_status_t st_ = (call);                                           \
        if (st_ != dnnl_success)                                              \
            glow_die(1, "oneDNN %s failed (status %d)", #call, (int)st_);     \
    } while (0)

static dnnl_memory_t make_mem(dnnl_engine_t eng, const dnnl_memory_desc_t *md)
{
    dnnl_memory_t m;
    DN(dnnl_memory_create(&m, md, eng, DNNL_MEMORY_ALLOCATE));
    void *p;
    DN(dnnl_memory_get_data_handle(m, &p));
    memset(p, 0, dnnl_memory_desc_get_size(md));
    float *f = p;
    size_t n = dnnl_memory_desc_get_size(md) / sizeof(float);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return m;
}

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_t m[3];
    dnnl_stream_t s;
} conv_call;

static void make_call(dnnl_engine_t eng, conv_call *c, int n, int ch, int hw, int k)
{
    dnnl_dims_t xd = {n, ch, hw, hw}, wd = {ch, ch, k, k}, st = {1, 1}, pad = {k / 2, k / 2};
    dnnl_memory_desc_t x, w, y;
    DN(dnnl_memory_desc_init_by_tag(&x, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&y, 4, xd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &x, &w,
                                          NULL, &y, st, pad, pad));
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL));
    DN(dnnl_primitive_create(&c->prim, pd));
    c->m[0] = make_mem(eng, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0));
    c->m[1] = make_mem(eng, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0));
    c->m[2] = make_mem(eng, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0));
    dnnl_primitive_desc_destroy(pd);
    DN(dnnl_stream_create(&c->s, eng, dnnl_stream_default_flags));
}

static void exec_call(conv_call *c)
{
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, c->m[0]}, {DNNL_ARG_WEIGHTS, c->m[1]}, {DNNL_ARG_DST, c->m[2]}};
    DN(dnnl_primitive_execute(c->prim, c->s, 3, args));
    DN(dnnl_stream_wait(c->s));
}

static void free_call(conv_call *c)
{
    dnnl_primitive_destroy(c->prim);
    for (int i = 0; i < 3; i++)
        dnnl_memory_destroy(c->m[i]);
    dnnl_stream_destroy(c->s);
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* GFLOP/s of n images of ch -> ch channels, k x k, at hw x hw: best of iters;
 * *per_cpu: the best GFLOP per CPU second times the thread count.
 * per_thread: nt single-thread calls of n/nt images in parallel. */
static double bench(dnnl_engine_t eng, int n, int ch, int hw, int k, int iters, int per_thread, double *per_cpu)
{
    int nt = per_thread ? omp_get_max_threads() : 1;
    conv_call *c = calloc((size_t)nt, sizeof *c);
    int saved = omp_get_max_threads();
    if (per_thread)
        omp_set_num_threads(1); /* primitives made for one thread */
    for (int t = 0; t < nt; t++)
        make_call(eng, &c[t], n / nt, ch, hw, k);
    omp_set_num_threads(saved);
    double best = 1e30, best_cpu = 1e30;
    for (int i = 0; i <= iters; i++) {
        double t0 = now_seconds(), c0 = cpu_seconds();
        if (per_thread) {
#pragma omp parallel for schedule(static, 1) num_threads(nt)
            for (int t = 0; t < nt; t++)
                exec_call(&c[t]);
        } else
            exec_call(&c[0]);
        double t = now_seconds() - t0, c = cpu_seconds() - c0;
        if (i > 0 && t < best)
            best = t;
        if (i > 0 && c < best_cpu)
            best_cpu = c;
    }
    for (int t = 0; t < nt; t++)
        free_call(&c[t]);
    free(c);
    double gflop = 2.0 * (n / nt * nt) * ch * ch * k * k * hw * hw * 1e-9;
    *per_cpu = gflop / best_cpu * saved;
    return gflop / best;
}

int main(int argc, char **argv)
{
    /* passive: a spinning thread's CPU time is counted late (tool.h) */
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP | GLOW_TOOL_OMP_PASSIVE);
    int iters = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
        else
            glow_die(2, "usage: conv_peak [--iters N]");
    }
    if (iters < 1)
        iters = 1;
    dnnl_engine_t eng;
    DN(dnnl_engine_create(&eng, dnnl_cpu, 0));
    double g[2][2], gc[2][2];
    for (int pt = 0; pt < 2; pt++) {
        g[pt][0] = bench(eng, 16, 512, 16, 3, iters, pt, &gc[pt][0]);
        g[pt][1] = bench(eng, 32, 512, 16, 1, iters, pt, &gc[pt][1]);
    }
    printf("conv peak (%d threads): 3x3 512->512 16x16 batch 16: %.0f GFLOP/s, 1x1 512->512 16x16 batch 32: "
           "%.0f GFLOP/s (one call: %.0f, %.0f; one call per thread: %.0f, %.0f)\n",
           omp_get_max_threads(), g[0][0] > g[1][0] ? g[0][0] : g[1][0], g[0][1] > g[1][1] ? g[0][1] : g[1][1],
           g[0][0], g[0][1], g[1][0], g[1][1]);
    printf("conv peak per CPU second x %d threads: 3x3 %.0f GFLOP/s, 1x1 %.0f GFLOP/s\n", omp_get_max_threads(),
           gc[0][0] > gc[1][0] ? gc[0][0] : gc[1][0], gc[0][1] > gc[1][1] ? gc[0][1] : gc[1][1]);
    const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    const char *name = isa == dnnl_cpu_isa_avx512_core_amx    ? "avx512_core_amx"
                       : isa == dnnl_cpu_isa_avx512_core_bf16 ? "avx512_core_bf16"
                       : isa == dnnl_cpu_isa_avx512_core_vnni ? "avx512_core_vnni"
                       : isa == dnnl_cpu_isa_avx512_core      ? "avx512_core"
                       : isa == dnnl_cpu_isa_avx2_vnni        ? "avx2_vnni"
                       : isa == dnnl_cpu_isa_avx2             ? "avx2"
                       : isa == dnnl_cpu_isa_avx              ? "avx"
                       : isa == dnnl_cpu_isa_sse41            ? "sse41"
                                                              : "other";
    printf("oneDNN ISA: %s\n", name);
    dnnl_engine_destroy(eng);
    return 0;
}
