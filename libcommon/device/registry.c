/* --device -> a backend: the one place that knows every backend. */
#include "device.h"

#include "cpu/cpu_backend.h"

#ifndef GLOW_HAVE_CUDA
#define GLOW_HAVE_CUDA 0
#endif

#if GLOW_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

backend *backend_get(glow_device_kind kind, int index, glow_error *err)
{
    if (kind == DEVICE_CPU)
        return cpu_backend_new(err);
#if GLOW_HAVE_CUDA
    return cuda_backend_new(index, err);
#else
    glow_errorf(err, "cuda:%d: this build contains only the CPU backend; the CUDA backend "
                     "is not part of it",
                index);
    return NULL;
#endif
}

void backend_release(backend *b)
{
    if (b)
        b->destroy(b);
}
