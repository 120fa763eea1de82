/* The CPU backend: oneDNN for convolutions, OpenMP loops for everything else. */
#ifndef GLOW_CPU_BACKEND_H
#define GLOW_CPU_BACKEND_H

#include "backend/backend.h"

backend *cpu_backend_new(glow_error *err);

#endif
