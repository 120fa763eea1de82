// Optimizer updates, sum of squares and EMA of the CUDA backend (cpu/cpu_optim.c
// semantics). The sum of squares is reduced in double in fixed chunks and a fixed
// final order, so it is the same on every run.
#include <math.h>

#include "backend/ew_math.h"
#include "cuda_internal.h"
#include "cuda_reduce.cuh"

#define GRID_STRIDE(i, n)                                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);          \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void adam_kernel(float *p, const float *g, float *m, float *v, size_t n, float lr,
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

static void adam(backend *b, float *p, const float *g, float *m, float *v, size_t n, float lr,
                 float beta1, float beta2, float eps, long t)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    // bias corrections on the host in double, rounded once, as the CPU does
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
    const float sbc2 = (float)sqrt(1.0 - pow(beta2, (double)t));
    adam_kernel<<<cuda_grid(ctx, n, CUDA_BLOCK), CUDA_BLOCK, 0, ctx->stream>>>(
        p, g, m, v, n, lr, beta1, beta2, eps, bc1, sbc2);
    CUDA_LAUNCH_CHECK(ctx);
}

__global__ void adamax_kernel(float *p, const float *g, float *m, float *u, size_t n, float lr,
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

static void adamax(backend *b, float *p, const float *g, float *m, float *u, size_t n, float lr,
                   float beta1, float beta2, float eps, long t)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
    adamax_kernel<<<cuda_grid(ctx, n, CUDA_BLOCK), CUDA_BLOCK, 0, ctx->stream>>>(
        p, g, m, u, n, lr, beta1, beta2, eps, bc1);
    CUDA_LAUNCH_CHECK(ctx);
}

// Chunks of SUMSQ_CHUNK elements, one block each; then one block sums the chunk
// partials in a fixed tree.
#define SUMSQ_CHUNK 8192

__global__ void sumsq_partial_kernel(const float *x, size_t n, double *part)
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

__global__ void sumsq_final_kernel(const double *part, size_t nparts, double *out)
{
    __shared__ double buf[RED_BLOCK];
    double acc = 0;
    for (size_t k = threadIdx.x; k < nparts; k += RED_BLOCK)
        acc += part[k];
    buf[threadIdx.x] = acc;
    red_block_tree(buf);
    if (threadIdx.x == 0)
        *out = buf[0];
}

static double sumsq(backend *b, const float *x, size_t n)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return 0.0;
    const size_t nparts = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS3, (nparts + 1) * sizeof(double));
    sumsq_partial_kernel<<<(unsigned)nparts, RED_BLOCK, 0, ctx->stream>>>(x, n, part);
    CUDA_LAUNCH_CHECK(ctx);
    sumsq_final_kernel<<<1, RED_BLOCK, 0, ctx->stream>>>(part, nparts, part + nparts);
    CUDA_LAUNCH_CHECK(ctx);
    double *host = (double *)ctx->host_scratch;
    CUDA_CHECK(cudaMemcpyAsync(host, part + nparts, sizeof(double), cudaMemcpyDeviceToHost,
                               ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    return *host;
}

__global__ void ema_kernel(float *e, const float *p, size_t n, float decay)
{
    GRID_STRIDE(i, n) e[i] = decay * e[i] + (1.0f - decay) * p[i];
}

static void ema(backend *b, float *e, const float *p, size_t n, float decay)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n == 0)
        return;
    ema_kernel<<<cuda_grid(ctx, n, CUDA_BLOCK), CUDA_BLOCK, 0, ctx->stream>>>(e, p, n, decay);
    CUDA_LAUNCH_CHECK(ctx);
}

void cuda_optim_init(backend *b)
{
    b->adam = adam;
    b->adamax = adamax;
    b->sumsq = sumsq;
    b->ema = ema;
}
