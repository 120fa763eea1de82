/* The CPU backend's memory functions and its table. Backend memory is host memory
 * here, 64-byte aligned for the vector units and oneDNN. */
#include "cpu_backend.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

static void *cpu_alloc(backend *b, size_t bytes)
{
    (void)b;
    size_t n = (bytes + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64))
        glow_die(1, "backend: out of memory (%zu bytes)", bytes);
    memset(p, 0, n);
    return p;
}

static void cpu_free(backend *b, void *p)
{
    (void)b;
    free(p);
}

static void cpu_copy(backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes)
        memmove(dst, src, bytes);
}

static void cpu_fill(backend *b, float *dst, float v, size_t n)
{
    (void)b;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        dst[i] = v;
}

static int cpu_set_precision(backend *b, glow_precision p, glow_error *err)
{
    (void)b;
    if (p == PRECISION_FP32)
        return 0;
    glow_errorf(err, "--precision %s: the CPU backend computes in fp32 only (tf32 and bf16 "
                     "need --device cuda)", glow_precision_name(p));
    return -1;
}

static void cpu_destroy(backend *b)
{
    cpu_ctx *ctx = b->impl;
    cpu_conv_release(ctx);
    dnnl_stream_destroy(ctx->stream);
    dnnl_engine_destroy(ctx->eng);
    free(ctx);
    free(b);
}

backend *cpu_backend_new(glow_error *err)
{
    cpu_ctx *ctx = xcalloc(1, sizeof *ctx);
    if (dnnl_engine_create(&ctx->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&ctx->stream, ctx->eng, dnnl_stream_default_flags) != dnnl_success) {
        glow_errorf(err, "cpu backend: cannot create the oneDNN CPU engine");
        free(ctx);
        return NULL;
    }
    backend *b = xcalloc(1, sizeof *b);
    b->name = "cpu";
    b->impl = ctx;
    b->alloc = cpu_alloc;
    b->free = cpu_free;
    b->upload = cpu_copy;
    b->download = cpu_copy;
    b->copy = cpu_copy;
    b->fill = cpu_fill;
    b->destroy = cpu_destroy;
    b->set_precision = cpu_set_precision;
    cpu_conv_init(b);
    cpu_ops_init(b);
    cpu_prior_init(b);
    cpu_optim_init(b);
    return b;
}
