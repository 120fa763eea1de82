// The CUDA backend object: device selection, handles, memory, and the op table.
// Backend memory is device memory from cudaMalloc (never managed memory); the
// model allocates its buffers once per batch shape, so steady-state steps do no
// allocation. Every op is queued on the backend's one stream; download waits.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_backend.h"
#include "cuda_internal.h"

void *cuda_alloc(backend *b, size_t bytes)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = (bytes + 255) / 256 * 256;
    if (n == 0)
        n = 256;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        cudaGetLastError();
        cudaMemGetInfo(&free_b, &total_b);
        fprintf(stderr,
                "%s: cuda: cudaMalloc(%zu bytes) failed: %s (%zu MiB free of %zu MiB on "
                "cuda:%d; try a smaller batch)\n",
                glow_progname(), bytes, cudaGetErrorString(e), free_b >> 20, total_b >> 20,
                ctx->device);
        exit(1);
    }
    CUDA_CHECK(cudaMemsetAsync(p, 0, n, ctx->stream));
    return p;
}

void cuda_free(backend *b, void *p)
{
    if (!p)
        return;
    // queued work may still use p; cudaFree alone would not wait for a
    // non-blocking stream
    CUDA_CHECK(cudaStreamSynchronize(cuda_ctx_of(b)->stream));
    CUDA_CHECK(cudaFree(p));
}

// Page-locked host memory: transfers from and to it run at the bus's speed.
void *cuda_host_alloc(backend *b, size_t bytes)
{
    (void)b;
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        fprintf(stderr, "%s: cuda: cudaMallocHost(%zu bytes) failed: %s\n", glow_progname(), bytes,
                cudaGetErrorString(e));
        exit(1);
    }
    memset(p, 0, bytes);
    return p;
}

void cuda_host_free(backend *b, void *p)
{
    (void)b;
    if (p)
        CUDA_CHECK(cudaFreeHost(p));
}

// Upload and download are synchronous: the host buffer may be reused or freed
// as soon as they return.
static void copy_host(backend *b, void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (!bytes)
        return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
}

void cuda_upload(backend *b, void *dst, const void *host, size_t bytes)
{
    copy_host(b, dst, host, bytes, cudaMemcpyHostToDevice);
}

void cuda_download(backend *b, void *host, const void *src, size_t bytes)
{
    copy_host(b, host, src, bytes, cudaMemcpyDeviceToHost);
}

void cuda_copy(backend *b, void *dst, const void *src, size_t bytes)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (!bytes || dst == src)
        return;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        // memmove semantics, as on the CPU: overlapping device copies are undefined
        void *tmp = cuda_scratch(ctx, CUDA_SCRATCH_CONV_AUX, bytes);
        CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        src = tmp;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
}

__global__ void k_fill(float *dst, float v, size_t n)
{
    GRID_STRIDE(i, n) dst[i] = v;
}

void cuda_fill(backend *b, float *dst, float v, size_t n)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (!n)
        return;
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    if (bits == 0) {
        CUDA_CHECK(cudaMemsetAsync(dst, 0, n * sizeof(float), ctx->stream));
        return;
    }
    LAUNCH(ctx, n, k_fill, dst, v, n);
}

int cuda_set_precision(backend *b, glow_precision p, glow_error *err)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (p != PRECISION_FP32 && p != PRECISION_TF32 && p != PRECISION_BF16) {
        glow_errorf(err, "cuda:%d: unknown precision %d", ctx->device, (int)p);
        return -1;
    }
    // fp32 must stay IEEE fp32: the default math mode would let an
    // NVIDIA_TF32_OVERRIDE or a future default switch sgemm to TF32
    cublasMath_t m = p == PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                         : CUBLAS_PEDANTIC_MATH;
    if (p == PRECISION_BF16)
        m = CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(ctx->cublas, m));
    ctx->precision = p;
    return 0;
}

void cuda_destroy(backend *b)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    cuda_conv_release(ctx);
    for (int i = 0; i < CUDA_SCRATCH_COUNT; i++)
        if (ctx->scratch[i])
            CUDA_CHECK(cudaFree(ctx->scratch[i]));
    if (ctx->workspace)
        CUDA_CHECK(cudaFree(ctx->workspace));
    if (ctx->host_scratch)
        CUDA_CHECK(cudaFreeHost(ctx->host_scratch));
    for (int i = 0; i < 2; i++)
        CUDA_CHECK(cudaEventDestroy(ctx->ev[i]));
    CUBLAS_CHECK(cublasDestroy(ctx->cublas));
    CUDNN_CHECK(cudnnDestroy(ctx->cudnn));
    CUDA_CHECK(cudaStreamDestroy(ctx->stream));
    free(ctx);
    free(b);
}

// Creation problems are reported, not fatal: --device auto and the tests fall
// back or skip with the reason.
static int open_device(cuda_ctx *ctx, int device, glow_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        glow_errorf(err, "cuda:%d: no usable GPU: %s", device, cudaGetErrorString(e));
        return -1;
    }
    if (device < 0 || device >= n) {
        glow_errorf(err, "cuda:%d: only %d GPU%s present", device, n, n == 1 ? "" : "s");
        return -1;
    }
    cudaDeviceProp prop;
    if ((e = cudaGetDeviceProperties(&prop, device)) != cudaSuccess ||
        (e = cudaSetDevice(device)) != cudaSuccess) {
        cudaGetLastError();
        glow_errorf(err, "cuda:%d: %s", device, cudaGetErrorString(e));
        return -1;
    }
    if (prop.major < 8) {
        glow_errorf(err, "cuda:%d: %s has compute capability %d.%d; this build needs 8.0 or "
                         "newer",
                    device, prop.name, prop.major, prop.minor);
        return -1;
    }
    size_t v = cudnnGetVersion();
    if (v / 10000 != CUDNN_MAJOR) {
        glow_errorf(err, "cuda:%d: cuDNN %zu.%zu found at run time, built for %d.x", device,
                    v / 10000, v / 100 % 100, CUDNN_MAJOR);
        return -1;
    }
    ctx->device = device;
    ctx->sm_count = prop.multiProcessorCount;
    if ((e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        cudaGetLastError();
        glow_errorf(err, "cuda:%d: cannot create a stream: %s", device, cudaGetErrorString(e));
        return -1;
    }
    cudnnStatus_t ds = cudnnCreate(&ctx->cudnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        glow_errorf(err, "cuda:%d: cuDNN cannot start: %s", device, cudnnGetErrorString(ds));
        cudaStreamDestroy(ctx->stream);
        return -1;
    }
    cublasStatus_t bs = cublasCreate(&ctx->cublas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        glow_errorf(err, "cuda:%d: cuBLAS cannot start: %s", device, cublasGetStatusString(bs));
        cudnnDestroy(ctx->cudnn);
        cudaStreamDestroy(ctx->stream);
        return -1;
    }
    CUDNN_CHECK(cudnnSetStream(ctx->cudnn, ctx->stream));
    CUBLAS_CHECK(cublasSetStream(ctx->cublas, ctx->stream));
    CUBLAS_CHECK(cublasSetPointerMode(ctx->cublas, CUBLAS_POINTER_MODE_HOST));
    if ((e = cudaMallocHost(&ctx->host_scratch, CUDA_HOST_SCRATCH_BYTES)) != cudaSuccess) {
        cudaGetLastError();
        glow_errorf(err, "cuda:%d: cannot allocate pinned host memory: %s", device,
                    cudaGetErrorString(e));
        ctx->host_scratch = NULL;
        cublasDestroy(ctx->cublas);
        cudnnDestroy(ctx->cudnn);
        cudaStreamDestroy(ctx->stream);
        return -1;
    }
    if ((e = cudaEventCreate(&ctx->ev[0])) != cudaSuccess ||
        (e = cudaEventCreate(&ctx->ev[1])) != cudaSuccess) {
        cudaGetLastError();
        glow_errorf(err, "cuda:%d: cannot create events: %s", device, cudaGetErrorString(e));
        if (ctx->ev[0])
            cudaEventDestroy(ctx->ev[0]);
        cudaFreeHost(ctx->host_scratch);
        cublasDestroy(ctx->cublas);
        cudnnDestroy(ctx->cudnn);
        cudaStreamDestroy(ctx->stream);
        return -1;
    }
    return 0;
}

extern "C" void cuda_backend_fill_table(backend *b)
{
    b->name = "cuda";
#define CUDA_SET_SLOT(slot) b->slot = cuda_##slot;
    BACKEND_SLOTS(CUDA_SET_SLOT)
#undef CUDA_SET_SLOT
}

extern "C" backend *cuda_backend_new(int device, glow_error *err)
{
    cuda_ctx *ctx = (cuda_ctx *)xcalloc(1, sizeof *ctx);
    if (open_device(ctx, device, err) != 0) {
        free(ctx);
        return NULL;
    }
    const char *sync = getenv("GLOW_CUDA_SYNC");
    ctx->sync = sync && strcmp(sync, "1") == 0;
    backend *b = (backend *)xcalloc(1, sizeof *b);
    cuda_backend_fill_table(b);
    b->impl = ctx;
    if (cuda_set_precision(b, PRECISION_FP32, err) != 0) {
        cuda_destroy(b);
        return NULL;
    }
    return b;
}
