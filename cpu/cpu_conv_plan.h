/* A convolution's pass made ready to run chunk by chunk (cpu_conv.c), for passes
 * that run several layers chunk by chunk (cpu_net.c). The chunks are fixed by the
 * shape alone: plans whose cpu_plan_chunks and cpu_plan_chunk_images agree cover
 * the same images in chunk c. */
#ifndef GLOW_CPU_CONV_PLAN_H
#define GLOW_CPU_CONV_PLAN_H

#include "cpu_internal.h"

typedef struct cpu_plan cpu_plan;

/* y = relu?((conv(x, w) + bias) * exp(3 logs)) (no affine when logs is NULL) */
cpu_plan *cpu_plan_fwd(cpu_ctx *ctx, const bk_conv *d, const float *x, const float *w, const float *bias,
                       const float *logs, int relu, float *y);
/* dx (+)= conv^T(dy) */
cpu_plan *cpu_plan_bwd_data(cpu_ctx *ctx, const bk_conv *d, const float *dy, const float *w, float *dx,
                            int accumulate);
/* dw = dL/dw, written by cpu_plan_finish */
cpu_plan *cpu_plan_bwd_filter(cpu_ctx *ctx, const bk_conv *d, const float *x, const float *dy, float *dw);

int cpu_plan_chunks(const cpu_plan *p);
int cpu_plan_chunk_images(const cpu_plan *p);
/* whether the chunks are worth a parallel region */
int cpu_plan_parallel(const cpu_plan *p);
/* Plans of one shape share their primitive's buffers (weights, taps, partials):
 * of two such plans of one kind, the second's setup overwrites the first's. */
int cpu_plan_same_buffers(const cpu_plan *p, const cpu_plan *q);
/* chunk c on the calling thread */
void cpu_plan_run_chunk(const cpu_plan *p, int c);
/* after every chunk: the filter gradient's partials added, a data gradient's tmp
 * added; frees p */
void cpu_plan_finish(cpu_plan *p);
/* frees p without finishing it (its output is left as it was) */
void cpu_plan_discard(cpu_plan *p);
/* every chunk (in parallel), then the finish */
void cpu_plan_run(cpu_plan *p);

#endif
