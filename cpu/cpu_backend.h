/* The CPU backend: oneDNN for convolutions, OpenMP loops for everything else. */
#ifndef GLOW_CPU_BACKEND_H
#define GLOW_CPU_BACKEND_H

#include "backend/backend.h"

backend *cpu_backend_new(glow_error *err);

/* Sets b's name and every slot to the CPU backend's functions; b->impl is left
 * alone (cpu_backend_new sets it). For cpu_backend_new and tests. */
void cpu_backend_fill_table(backend *b);

#endif
