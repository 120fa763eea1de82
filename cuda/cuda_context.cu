// What every file of the CUDA backend shares at run time: failing with the CUDA
// call named, and the grow-only scratch buffers of the context.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_internal.h"

void cuda_fail(const char *call, const char *reason, const char *file, int line)
{
    fprintf(stderr, "%s: cuda: %s failed: %s (%s:%d)\n", glow_progname(), call, reason, file,
            line);
    exit(1);
}

void *cuda_scratch(cuda_ctx *ctx, int slot, size_t bytes)
{
    if (bytes <= ctx->scratch_bytes[slot] && ctx->scratch[slot])
        return ctx->scratch[slot];
    size_t n = (bytes + 255) / 256 * 256;
    if (n == 0)
        n = 256;
    if (ctx->scratch[slot]) {
        // the old buffer may still be read by queued work
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
        CUDA_CHECK(cudaFree(ctx->scratch[slot]));
        ctx->scratch[slot] = NULL;
    }
    CUDA_CHECK(cudaMalloc(&ctx->scratch[slot], n));
    ctx->scratch_bytes[slot] = n;
    return ctx->scratch[slot];
}
