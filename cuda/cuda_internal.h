/* Shared between the CUDA backend's files (C++ only). Every op runs on the
 * backend's one stream; kernels use grid-stride loops so any grid size is right.
 * Nothing is allocated per call: buffers an op needs come from cuda_scratch(),
 * which grows only when a larger size is first asked for (a new batch shape). */
#ifndef GLOW_CUDA_INTERNAL_H
#define GLOW_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "backend/backend.h"
#include "backend/precision.h"

typedef struct cuda_conv_plan cuda_conv_plan; /* cuda_conv.cu: per-shape cuDNN state */

/* Grow-only device scratch buffers, one per purpose, so two users never share. */
enum {
    CUDA_SCRATCH_CONV_W = 0, /* data-channel weights packed out of an edge filter */
    CUDA_SCRATCH_CONV_AUX,   /* conv: per-shape temporaries (border map, dw without edge) */
    CUDA_SCRATCH_BF16_X,     /* bf16 copy of a conv input */
    CUDA_SCRATCH_BF16_W,     /* bf16 copy of a conv filter (or its gradient) */
    CUDA_SCRATCH_BF16_Y,     /* bf16 conv output (or output gradient) */
    CUDA_SCRATCH_OPS0,       /* free for cuda_ops.cu / cuda_prior.cu / cuda_optim.cu */
    CUDA_SCRATCH_OPS1,
    CUDA_SCRATCH_OPS2,
    CUDA_SCRATCH_OPS3,
    CUDA_SCRATCH_COUNT
};

#define CUDA_HOST_SCRATCH_BYTES 4096 /* pinned host memory for small results (sumsq) */

typedef struct {
    int device;
    int sm_count;
    int sync; /* GLOW_CUDA_SYNC=1: synchronise after every launch (error attribution) */
    glow_precision precision;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *workspace; /* cuDNN workspace, shared by every conv; grows on new shapes */
    size_t workspace_bytes;
    void *scratch[CUDA_SCRATCH_COUNT];
    size_t scratch_bytes[CUDA_SCRATCH_COUNT];
    void *host_scratch; /* pinned, CUDA_HOST_SCRATCH_BYTES */
    cuda_conv_plan *convs;
} cuda_ctx;

static inline cuda_ctx *cuda_ctx_of(backend *b) { return (cuda_ctx *)b->impl; }

/* "progname: cuda: CALL failed: REASON (file:line)", then exit 1. */
[[noreturn]] void cuda_fail(const char *call, const char *reason, const char *file, int line);

#define CUDA_CHECK(call)                                                                   \
    do {                                                                                   \
        cudaError_t st_ = (call);                                                          \
        if (st_ != cudaSuccess)                                                            \
            cuda_fail(#call, cudaGetErrorString(st_), __FILE__, __LINE__);                 \
    } while (0)
#define CUDNN_CHECK(call)                                                                  \
    do {                                                                                   \
        cudnnStatus_t st_ = (call);                                                        \
        if (st_ != CUDNN_STATUS_SUCCESS)                                                   \
            cuda_fail(#call, cudnnGetErrorString(st_), __FILE__, __LINE__);                \
    } while (0)
#define CUBLAS_CHECK(call)                                                                 \
    do {                                                                                   \
        cublasStatus_t st_ = (call);                                                       \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                  \
            cuda_fail(#call, cublasGetStatusString(st_), __FILE__, __LINE__);              \
    } while (0)
/* After every kernel launch: launch errors always, execution errors at once
 * when GLOW_CUDA_SYNC=1 (otherwise at the next synchronising call). */
#define CUDA_LAUNCH_CHECK(ctx)                                                             \
    do {                                                                                   \
        cudaError_t st_ = cudaGetLastError();                                              \
        if (st_ != cudaSuccess)                                                            \
            cuda_fail("kernel launch", cudaGetErrorString(st_), __FILE__, __LINE__);       \
        if ((ctx)->sync) {                                                                 \
            st_ = cudaStreamSynchronize((ctx)->stream);                                    \
            if (st_ != cudaSuccess)                                                        \
                cuda_fail("kernel", cudaGetErrorString(st_), __FILE__, __LINE__);          \
        }                                                                                  \
    } while (0)

#define CUDA_BLOCK 256

/* Blocks for n elements at `block` threads each (grid-stride kernels): enough to
 * fill the device, never more than needed, at least 1. */
static inline unsigned cuda_grid(const cuda_ctx *ctx, size_t n, unsigned block)
{
    size_t need = (n + block - 1) / block;
    size_t cap = (size_t)(ctx->sm_count > 0 ? ctx->sm_count : 1) * 32;
    if (need > cap)
        need = cap;
    return need ? (unsigned)need : 1u;
}

/* A device buffer of at least `bytes` for purpose `slot` (CUDA_SCRATCH_*), kept
 * and reused; reallocated (after a device sync) only when it must grow. */
void *cuda_scratch(cuda_ctx *ctx, int slot, size_t bytes); /* cuda_context.cu */

/* Filled by cuda_conv.cu (J: cuda_ops.cu, cuda_prior.cu, cuda_optim.cu). */
void cuda_conv_init(backend *b);
void cuda_conv_release(cuda_ctx *ctx);
void cuda_ops_init(backend *b);
void cuda_prior_init(backend *b);
void cuda_optim_init(backend *b);

#endif
