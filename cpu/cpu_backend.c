/* The CPU backend's memory functions and its table. Backend memory is host memory
 * here, 64-byte aligned for the vector units and oneDNN. */
#include "cpu_backend.h"

#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

void *cpu_alloc(backend *b, size_t bytes)
{
    (void)b;
    size_t n = (bytes + 63) / 64 * 64;
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64))
        glow_die(1, "backend: out of memory (%zu bytes)", bytes);
    memset(p, 0, n);
    return p;
}

void cpu_free(backend *b, void *p)
{
    (void)b;
    free(p);
}

/* host memory is all there is: as alloc */
void *cpu_host_alloc(backend *b, size_t bytes) { return cpu_alloc(b, bytes); }

void cpu_host_free(backend *b, void *p) { cpu_free(b, p); }

void cpu_copy(backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes)
        memmove(dst, src, bytes);
}

/* host memory both sides: upload and download are copies */
void cpu_upload(backend *b, void *dst, const void *host, size_t bytes)
{
    cpu_copy(b, dst, host, bytes);
}

void cpu_download(backend *b, void *host, const void *src, size_t bytes)
{
    cpu_copy(b, host, src, bytes);
}

void cpu_fill(backend *b, float *dst, float v, size_t n)
{
    (void)b;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MEM)
    for (size_t i = 0; i < n; i++)
        dst[i] = v;
}

int cpu_set_precision(backend *b, glow_precision p, glow_error *err)
{
    (void)b;
    if (p == PRECISION_FP32)
        return 0;
    glow_errorf(err, "--precision %s: the CPU backend computes in fp32 only (tf32 and bf16 "
                     "need --device cuda)", glow_precision_name(p));
    return -1;
}

void cpu_destroy(backend *b)
{
    cpu_ctx *ctx = b->impl;
    cpu_conv_release(ctx);
    dnnl_stream_destroy(ctx->stream);
    dnnl_engine_destroy(ctx->eng);
    free(ctx);
    free(b);
}

void cpu_backend_fill_table(backend *b)
{
    b->name = "cpu";
#define CPU_SET_SLOT(slot) b->slot = cpu_##slot;
    BACKEND_SLOTS(CPU_SET_SLOT)
#undef CPU_SET_SLOT
}

backend *cpu_backend_new(glow_error *err)
{
    cpu_ctx *ctx = xcalloc(1, sizeof *ctx);
    if (dnnl_engine_create(&ctx->eng, dnnl_cpu, 0) != dnnl_success ||
        dnnl_stream_create(&ctx->stream, ctx->eng, dnnl_stream_default_flags) != dnnl_success) {
        glow_errorf(err, "cpu backend: cannot create the oneDNN CPU engine");
        if (ctx->eng)
            dnnl_engine_destroy(ctx->eng);
        free(ctx);
        return NULL;
    }
    backend *b = xcalloc(1, sizeof *b);
    cpu_backend_fill_table(b);
    b->impl = ctx;
    return b;
}
