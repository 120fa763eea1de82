/* The coupling network f (docs/model.md section 3) in one pass over the batch's
 * chunks: each chunk of images goes through all three layers on one thread, so a
 * chunk's activations (a few hundred KiB) are still in the core's cache when the
 * next layer reads them, where a pass per layer reads each from memory
 * (bench/conv_ops --cold: A128's convolutions take 1.5x the CPU time with cold
 * caches), and a pass costs one parallel region instead of three (forward) or
 * nine (backward).
 *
 * The chunks are the convolutions' own (cpu_conv_plan.h), so the convolutions'
 * bits are those of the layers run one by one. The actnorms' parameter gradients
 * are summed over CPU_RED_ROWS-row pieces of each chunk, in order: the same
 * pieces as actnorm_bwd's whenever a chunk's rows are a multiple of CPU_RED_ROWS
 * (every level of the benchmark configs), and fixed by the shape in any case. */
#include <stdlib.h>
#include <string.h>

#include "backend/net_layers.h"
#include "cpu_conv_plan.h"

static int same_shape(const bk_conv *a, const bk_conv *b) { return !memcmp(a, b, sizeof *a); }

/* Whether two plans' chunks cover the same images. */
static int chunks_agree(const cpu_plan *p, const cpu_plan *q)
{
    return cpu_plan_chunks(p) == cpu_plan_chunks(q) && cpu_plan_chunk_images(p) == cpu_plan_chunk_images(q);
}

static int same_chunks(cpu_plan *const *p, int n)
{
    for (int k = 1; k < n; k++)
        if (!chunks_agree(p[0], p[k]))
            return 0;
    return 1;
}

void cpu_net_fwd(backend *b, const bk_net *n, const float *x, float *a1, float *a2, float *h)
{
    /* conv1 and conv3 of one shape (C/2 = width = f's outputs, tiny models) share
     * their primitive's buffers: one after the other */
    if (same_shape(&n->c[0], &n->c[2])) {
        bk_net_fwd_layers(b, n, x, a1, a2, h);
        return;
    }
    cpu_ctx *ctx = b->impl;
    const float *in[3] = {x, a1, a2};
    float *out[3] = {a1, a2, h};
    cpu_plan *f[3];
    for (int k = 0; k < 3; k++)
        f[k] = cpu_plan_fwd(ctx, &n->c[k], in[k], n->w[k], n->bias[k], n->logs[k], k < 2, out[k]);
    if (!same_chunks(f, 3)) {
        for (int k = 0; k < 3; k++)
            cpu_plan_run(f[k]);
        return;
    }
    const int nchunk = cpu_plan_chunks(f[1]);
#pragma omp parallel for schedule(dynamic, 1) if (cpu_plan_parallel(f[1]))
    for (int c = 0; c < nchunk; c++)
        for (int k = 0; k < 3; k++)
            cpu_plan_run_chunk(f[k], c);
    for (int k = 0; k < 3; k++)
        cpu_plan_finish(f[k]);
}

void cpu_net_bwd(backend *b, const bk_net *n, const float *x, const float *a1, const float *a2,
                 const float *h, float *g_h, float *g_a2, float *g_a1, float *g_x, float *const dw[3],
                 float *const dbias[3], float *const dlogs[3])
{
    const float *in[3] = {x, a1, a2}, *out[3] = {a1, a2, h};
    float *g_out[3] = {g_a1, g_a2, g_h};
    if (same_shape(&n->c[0], &n->c[2])) {
        bk_net_bwd_layers(b, n, x, a1, a2, h, g_h, g_a2, g_a1, g_x, dw, dbias, dlogs);
        return;
    }
    cpu_ctx *ctx = b->impl;
    cpu_plan *bd[3], *bf[3];
    for (int k = 0; k < 3; k++) {
        bd[k] = cpu_plan_bwd_data(ctx, &n->c[k], g_out[k], n->w[k], k ? g_out[k - 1] : g_x, 0);
        bf[k] = cpu_plan_bwd_filter(ctx, &n->c[k], in[k], g_out[k], dw[k]);
    }
    if (!same_chunks(bd, 3)) {
        for (int k = 0; k < 3; k++)
            cpu_plan_discard(bd[k]), cpu_plan_discard(bf[k]);
        bk_net_bwd_layers(b, n, x, a1, a2, h, g_h, g_a2, g_a1, g_x, dw, dbias, dlogs);
        return;
    }
    /* a filter gradient runs in the chunk loop when its chunks are the loop's
     * (wide weights take larger chunks, conv_ops: their partials cost less),
     * else over the whole batch after it */
    int in_loop[3];
    for (int k = 0; k < 3; k++)
        in_loop[k] = chunks_agree(bd[0], bf[k]);
    const int nchunk = cpu_plan_chunks(bd[0]), cn = cpu_plan_chunk_images(bd[0]);
    const size_t hw = (size_t)n->c[0].h * n->c[0].w, rows = (size_t)n->c[0].n * hw;
    /* CPU_RED_ROWS-row pieces per chunk, and in the last one (fewer images, maybe) */
    const size_t pieces = ((size_t)cn * hw + CPU_RED_ROWS - 1) / CPU_RED_ROWS;
    const size_t last = (rows - (size_t)(nchunk - 1) * cn * hw + CPU_RED_ROWS - 1) / CPU_RED_ROWS;
    float *part[3], *s[3];
    for (int k = 0; k < 3; k++) {
        part[k] = xmalloc((size_t)nchunk * pieces * 2 * n->c[k].cout * sizeof(float));
        s[k] = cpu_actnorm_scales(n->logs[k], n->c[k].cout);
    }
#pragma omp parallel for schedule(dynamic, 1) if (cpu_plan_parallel(bd[1]))
    for (int c = 0; c < nchunk; c++) {
        const size_t r0 = (size_t)c * cn * hw, r1 = r0 + (size_t)cn * hw < rows ? r0 + (size_t)cn * hw : rows;
        for (int k = 2; k >= 0; k--) {
            const int co = n->c[k].cout;
            for (size_t q = 0; r0 + q * CPU_RED_ROWS < r1; q++) {
                const size_t q0 = r0 + q * CPU_RED_ROWS, q1 = q0 + CPU_RED_ROWS < r1 ? q0 + CPU_RED_ROWS : r1;
                cpu_actnorm_bwd_rows(g_out[k], co, out[k], co, g_out[k], co, q0, q1, co, s[k], k < 2,
                                     part[k] + ((size_t)c * pieces + q) * 2 * co);
            }
            if (in_loop[k])
                cpu_plan_run_chunk(bf[k], c);
            cpu_plan_run_chunk(bd[k], c);
        }
    }
    for (int k = 0; k < 3; k++) {
        cpu_actnorm_bwd_sums(part[k], (size_t)(nchunk - 1) * pieces + last, n->c[k].cout, dbias[k], dlogs[k]);
        if (in_loop[k])
            cpu_plan_finish(bf[k]);
        else
            cpu_plan_run(bf[k]);
        cpu_plan_finish(bd[k]);
        free(part[k]);
        free(s[k]);
    }
}
