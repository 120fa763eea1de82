/* Shared between the CPU backend's files. */
#ifndef GLOW_CPU_INTERNAL_H
#define GLOW_CPU_INTERNAL_H

#include <dnnl.h>

#include "backend/backend.h"
#include "backend/ew_math.h"
#include "base/util.h"

typedef struct conv_prim conv_prim;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    conv_prim *convs; /* primitives cached by shape */
} cpu_ctx;

/* Rows per chunk of a deterministic reduction: fixed, whatever the thread count. */
#define CPU_RED_ROWS 64

/* Elements below which a memory-bound loop (a copy, an add, a fill) runs on the
 * calling thread: with the passive wait policy, which the tools choose on a busy
 * machine, waking the other threads for a parallel region costs tens of us here
 * (60-90 us measured on the development VM; bench/README.md, "Load"), as much as
 * copying ~1 MiB; with the short spin they choose on a quiet one, little. */
#define CPU_PAR_MEM (1u << 18)

/* The same for a loop with an exponential or a logarithm per element (the
 * coupling layers, the Gaussian priors, the dequantization's draws): ~25 ns an
 * element on one thread, so 4096 of them take several times a parallel region's
 * start. At 16384 (the bound before), A128's couplings (4096-16384 values each)
 * all ran on the calling thread while the other core idled: model_bench A128
 * forward+backward 4.3-4.7 -> 4.2-4.3 ms/image with 8192, as with 2048, which
 * wakes the other thread for more regions (context switches, a wake-up costs more
 * on a virtual machine). */
#define CPU_PAR_EXP 4096

/* "progname: backend: oneDNN WHAT failed (status N)", then exit 1. */
_Noreturn void cpu_fail(const char *what, dnnl_status_t st); /* cpu_conv.c */

/* A oneDNN call that must succeed. */
#define DN(call)                      \
    do {                              \
        dnnl_status_t st_ = (call);   \
        if (st_ != dnnl_success)      \
            cpu_fail(#call, st_);     \
    } while (0)

/* Every slot's function, cpu_<slot> with the slot's type (backend.h): cpu_backend.c
 * (memory), cpu_conv.c (convolutions), cpu_ops.c (data movement, actnorm,
 * coupling), cpu_prior.c (priors, class embedding and head), cpu_optim.c. */
#define CPU_DECLARE_SLOT(slot) __typeof__(*((backend *)0)->slot) cpu_##slot;
BACKEND_SLOTS(CPU_DECLARE_SLOT)
#undef CPU_DECLARE_SLOT

void cpu_conv_release(cpu_ctx *ctx);

/* Deterministic per-image sums: image i's rows are cut into cpi chunks of
 * CPU_RED_ROWS (the last one shorter); chunk k of the whole batch is rows
 * [*r0, *r1) of image k / cpi, and part[k] its partial sum. */
static inline size_t cpu_chunks_per_image(size_t rows_per_image)
{
    return (rows_per_image + CPU_RED_ROWS - 1) / CPU_RED_ROWS;
}

static inline void cpu_image_chunk(size_t k, size_t cpi, size_t rows_per_image, size_t *r0,
                                   size_t *r1)
{
    size_t img = k / cpi;
    *r0 = img * rows_per_image + (k % cpi) * CPU_RED_ROWS;
    *r1 = *r0 + CPU_RED_ROWS;
    if (*r1 > (img + 1) * rows_per_image)
        *r1 = (img + 1) * rows_per_image;
}

/* out[i] += the sum of image i's partials, in chunk order, for i < n */
static inline void cpu_image_sums_add(const double *part, int n, size_t cpi, float *out)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (size_t k = 0; k < cpi; k++)
            s += part[(size_t)i * cpi + k];
        out[i] += (float)s;
    }
}

/* actnorm_bwd in pieces (cpu_ops.c): one reduction chunk, rows [r0, r1) (at most
 * CPU_RED_ROWS), its dx and its partial sums part[0:c] (dbias) and part[c:2c] (the
 * sum of g y, for dlogs); s the scales; then the gradients from nch such
 * partials, added in order. */
void cpu_actnorm_bwd_rows(const float *dy, int lddy, const float *y, int ldy, float *dx, int lddx,
                          size_t r0, size_t r1, int c, const float *s, int relu, float *part);
void cpu_actnorm_bwd_sums(const float *part, size_t nch, int c, float *dbias, float *dlogs);

/* The per-channel scales exp(3 logs) of an actnorm, c of them (the caller frees). */
static inline float *cpu_actnorm_scales(const float *logs, int c)
{
    float *s = xmalloc((size_t)c * sizeof *s);
    for (int j = 0; j < c; j++)
        s[j] = ew_actnorm_scale(logs[j]);
    return s;
}

#endif
