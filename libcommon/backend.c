#include "backend.h"

#include "cpu_backend.h"

backend *backend_get(glow_device_kind kind, int index, glow_error *err)
{
    if (kind == DEVICE_CPU)
        return cpu_backend_new(err);
    glow_errorf(err, "cuda:%d: this build contains only the CPU backend; the CUDA backend "
                     "is not part of it",
                index);
    return NULL;
}

void backend_release(backend *b)
{
    if (b)
        b->destroy(b);
}
