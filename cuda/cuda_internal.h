/* Shared between the CUDA backend's files (C++ only). Every op runs on the
 * backend's one stream; kernels use grid-stride loops so any grid size is right.
 * Nothing is allocated per call: buffers an op needs come from cuda_scratch(),
 * which grows only when a larger size is first asked for (a new batch shape). */
#ifndef GLOW_CUDA_INTERNAL_H
#define GLOW_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <type_traits>

#include "backend/backend.h"
#include "backend/precision.h"

typedef struct cuda_conv_plan cuda_conv_plan; /* cuda_conv.cu: per-shape cuDNN state */

/* Grow-only device scratch buffers, one per purpose. A buffer holds nothing from
 * one op to the next (ops run in stream order), so the two users of CONV_AUX
 * never meet. */
enum {
    CUDA_SCRATCH_CONV_W = 0, /* the filter as the convolution takes it (packed), or dw
                                before unpacking */
    CUDA_SCRATCH_CONV_AUX,   /* conv: the edge gradient's border sums; copy: overlap bounce */
    CUDA_SCRATCH_CONV_X,     /* a conv input (or dx) as the convolution takes it: bf16
                                values, NCHW, or bf16 (1x1) */
    CUDA_SCRATCH_CONV_Y,     /* a conv output (or dy) likewise */
    CUDA_SCRATCH_CONV_COL,   /* the im2col matrix of the cuBLAS fallback */
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
    cudaEvent_t ev[2];  /* timing the convolution algorithms (cuda_conv.cu) */
    cuda_conv_plan *convs;
} cuda_ctx;

static inline cuda_ctx *cuda_ctx_of(backend *b) { return (cuda_ctx *)b->impl; }

/* "progname: cuda: CALL failed: REASON (file:line)", then exit 1. */
[[noreturn]] void cuda_fail(const char *call, const char *reason, const char *file, int line);

/* A library call that must return `ok`; `why` names its status. */
#define CUDA_CHECK_STATUS_(type, ok, why, call, text)                                      \
    do {                                                                                   \
        type st_ = (call);                                                                 \
        if (st_ != (ok))                                                                   \
            cuda_fail(text, why(st_), __FILE__, __LINE__);                                 \
    } while (0)
#define CUDA_CHECK(call)                                                                   \
    CUDA_CHECK_STATUS_(cudaError_t, cudaSuccess, cudaGetErrorString, call, #call)
#define CUDNN_CHECK(call)                                                                  \
    CUDA_CHECK_STATUS_(cudnnStatus_t, CUDNN_STATUS_SUCCESS, cudnnGetErrorString, call, #call)
#define CUBLAS_CHECK(call)                                                                 \
    CUDA_CHECK_STATUS_(cublasStatus_t, CUBLAS_STATUS_SUCCESS, cublasGetStatusString, call, #call)
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

/* The loop of a grid-stride kernel: i runs over [0, n) in steps of the grid. */
#define GRID_STRIDE(i, n)                                                                  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);                \
         i += (size_t)gridDim.x * blockDim.x)

/* Every launch is on the backend's stream and checked. LAUNCH_GRID: a given grid
 * and block (a template kernel with several arguments goes in parentheses);
 * LAUNCH: a grid-stride kernel over n elements. */
#define LAUNCH_GRID(ctx, grid, block, kernel, ...)                                         \
    do {                                                                                   \
        kernel<<<(grid), (block), 0, (ctx)->stream>>>(__VA_ARGS__);                         \
        CUDA_LAUNCH_CHECK(ctx);                                                            \
    } while (0)
#define LAUNCH(ctx, n, kernel, ...)                                                        \
    LAUNCH_GRID(ctx, cuda_grid((ctx), (n), CUDA_BLOCK), CUDA_BLOCK, kernel, __VA_ARGS__)

/* A device buffer of at least `bytes` for purpose `slot` (CUDA_SCRATCH_*), kept
 * and reused; reallocated (after a device sync) only when it must grow. */
void *cuda_scratch(cuda_ctx *ctx, int slot, size_t bytes); /* cuda_context.cu */

/* Every slot's function, cuda_<slot> with the slot's type (backend.h):
 * cuda_backend.cu (memory), cuda_conv.cu (convolutions), cuda_ops.cu (data
 * movement, actnorm, coupling), cuda_prior.cu (priors, class embedding and
 * head), cuda_optim.cu. Kernels are named k_<what>. */
#define CUDA_DECLARE_SLOT(slot) std::remove_pointer_t<decltype(backend::slot)> cuda_##slot;
BACKEND_SLOTS(CUDA_DECLARE_SLOT)
#undef CUDA_DECLARE_SLOT

void cuda_conv_release(cuda_ctx *ctx); /* cuda_conv.cu */

#endif
