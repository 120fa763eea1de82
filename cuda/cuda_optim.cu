// Optimizer updates, sum of squares and EMA of the CUDA backend (cpu/cpu_optim.c
// semantics). The sum of squares is reduced in double in fixed chunks and a fixed
// final order, so it is the same on every run.
#include <math.h>

#include "backend/ew_math.h"
#include "cuda_internal.h"
#include "cuda_reduce.cuh"

__global__ void k_adam(float *p, const float *g, float *m, float *v, size_t n, float lr,
                       float beta1, float beta2, float eps, float bc1, float sbc2)
{
    GRID_STRIDE(i, n)
    {
        float mi = m[i], vi = v[i];
        p[i] = ew_adam(p[i], g[i], &mi, &vi, lr, beta1, beta2, eps, bc1, sbc2);
        m[i] = mi;
        v[i] = vi;
    }
}

void cuda_adam(backend *b, float *p, const float *g, float *m, float *v, size_t n, float lr,
               float beta1, float beta2, float eps, long t)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    // bias corrections on the host in double, rounded once, as the CPU does
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
    const float sbc2 = (float)sqrt(1.0 - pow(beta2, (double)t));
    LAUNCH(ctx, n, k_adam, p, g, m, v, n, lr, beta1, beta2, eps, bc1, sbc2);
}

__global__ void k_adamax(float *p, const float *g, float *m, float *u, size_t n, float lr,
                         float beta1, float beta2, float eps, float bc1)
{
    GRID_STRIDE(i, n)
    {
        float mi = m[i], ui = u[i];
        p[i] = ew_adamax(p[i], g[i], &mi, &ui, lr, beta1, beta2, eps, bc1);
        m[i] = mi;
        u[i] = ui;
    }
}

void cuda_adamax(backend *b, float *p, const float *g, float *m, float *u, size_t n, float lr,
                 float beta1, float beta2, float eps, long t)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
    LAUNCH(ctx, n, k_adamax, p, g, m, u, n, lr, beta1, beta2, eps, bc1);
}

// Chunks of SUMSQ_CHUNK elements, one block each; then one block sums the chunk
// partials in a fixed tree.
#define SUMSQ_CHUNK 8192

__global__ void k_sumsq_partial(const float *x, size_t n, double *part)
{
    __shared__ double buf[RED_BLOCK];
    const size_t i0 = (size_t)blockIdx.x * SUMSQ_CHUNK;
    size_t i1 = i0 + SUMSQ_CHUNK;
    if (i1 > n)
        i1 = n;
    double acc = 0;
    for (size_t i = i0 + threadIdx.x; i < i1; i += RED_BLOCK) {
        double v = x[i];
        acc += v * v;
    }
    buf[threadIdx.x] = acc;
    red_block_tree(buf);
    if (threadIdx.x == 0)
        part[blockIdx.x] = buf[0];
}

__global__ void k_sumsq_final(const double *part, size_t nparts, double *out)
{
    __shared__ double buf[RED_BLOCK];
    const double s = red_block_sum(part, nparts, buf);
    if (threadIdx.x == 0)
        *out = s;
}

double cuda_sumsq(backend *b, const float *x, size_t n)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return 0.0;
    const size_t nparts = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS3, (nparts + 1) * sizeof(double));
    LAUNCH_GRID(ctx, (unsigned)nparts, RED_BLOCK, k_sumsq_partial, x, n, part);
    LAUNCH_GRID(ctx, 1, RED_BLOCK, k_sumsq_final, part, nparts, part + nparts);
    double *host = (double *)ctx->host_scratch;
    CUDA_CHECK(cudaMemcpyAsync(host, part + nparts, sizeof(double), cudaMemcpyDeviceToHost,
                               ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    return *host;
}

__global__ void k_ema(float *e, const float *p, size_t n, float decay)
{
    GRID_STRIDE(i, n) e[i] = decay * e[i] + (1.0f - decay) * p[i];
}

void cuda_ema(backend *b, float *e, const float *p, size_t n, float decay)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    LAUNCH(ctx, n, k_ema, e, p, n, decay);
}
