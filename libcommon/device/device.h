/* --device cpu|cuda|cuda:N|auto, resolved once at start-up. */
#ifndef GLOW_DEVICE_H
#define GLOW_DEVICE_H

#include "backend/backend.h"
#include "base/util.h"

typedef enum { DEVICE_CPU = 0, DEVICE_CUDA = 1 } glow_device_kind;

typedef struct {
    glow_device_kind kind;
    int index; /* GPU ordinal for DEVICE_CUDA */
} glow_device;

/* Parse and check availability. "auto" is the first GPU when one can be used, else
 * the CPU. "cuda" without a usable GPU (or a build without CUDA) is an error whose
 * message says why. Returns 0 or -1 with err set. */
int glow_device_resolve(const char *spec, glow_device *dev, glow_error *err);
/* Check a --device value's form (cpu, auto, cuda, cuda:N) without looking for a
 * GPU. Returns 0 or -1 with err set. */
int glow_device_spec_check(const char *spec, glow_error *err);

/* "cpu" or "cuda:N" */
const char *glow_device_str(const glow_device *dev, char *buf, size_t len);
/* Was this build compiled with the CUDA backend? */
int glow_device_cuda_built(void);

/* The backend of a device (registry.c). DEVICE_CUDA is an error in a build without
 * it. */
backend *backend_get(glow_device_kind kind, int index, glow_error *err);
void backend_release(backend *b);

#endif
