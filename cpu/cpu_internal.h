/* Shared between the CPU backend's files. */
#ifndef GLOW_CPU_INTERNAL_H
#define GLOW_CPU_INTERNAL_H

#include <dnnl.h>

#include "backend/backend.h"

typedef struct conv_prim conv_prim;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    conv_prim *convs; /* primitives cached by shape */
} cpu_ctx;

/* Rows per chunk of a deterministic reduction: fixed, whatever the thread count. */
#define CPU_RED_ROWS 64

_Noreturn void cpu_fail(const char *what, dnnl_status_t st);

void cpu_conv_init(backend *b);
void cpu_conv_release(cpu_ctx *ctx);
void cpu_ops_init(backend *b);
void cpu_prior_init(backend *b);
void cpu_optim_init(backend *b);

#endif
