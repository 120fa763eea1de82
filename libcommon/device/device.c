#include "device.h"

#include <stdio.h>
#include <string.h>

#ifndef GLOW_HAVE_CUDA
#define GLOW_HAVE_CUDA 0
#endif

#if GLOW_HAVE_CUDA
#include "cuda/cuda_device.h"
#else
/* A build without CUDA: there is never a GPU to use. This is the only place
 * where the two builds differ. */
static int glow_cuda_device_count(char *why, size_t len)
{
    snprintf(why, len, "this build has no CUDA backend (built without nvcc/cuDNN; rebuild with CUDA=1)");
    return 0;
}
#endif

int glow_device_spec_check(const char *spec, glow_error *err)
{
    long idx;
    if (strcmp(spec, "cpu") == 0 || strcmp(spec, "auto") == 0 || strcmp(spec, "cuda") == 0)
        return 0;
    if (strncmp(spec, "cuda:", 5) == 0 && parse_long(spec + 5, 0, 1023, &idx) == 0)
        return 0;
    glow_errorf(err, "--device %s: expected cpu, cuda, cuda:N or auto", spec);
    return -1;
}

int glow_device_cuda_built(void) { return GLOW_HAVE_CUDA; }

int glow_device_resolve(const char *spec, glow_device *dev, glow_error *err)
{
    char why[256] = "";
    dev->kind = DEVICE_CPU;
    dev->index = 0;
    if (strcmp(spec, "cpu") == 0)
        return 0;
    if (strcmp(spec, "auto") == 0) {
        if (glow_cuda_device_count(why, sizeof why) > 0)
            dev->kind = DEVICE_CUDA;
        return 0;
    }
    if (strncmp(spec, "cuda", 4) == 0 && (spec[4] == '\0' || spec[4] == ':')) {
        long idx = 0;
        if (spec[4] == ':' && parse_long(spec + 5, 0, 1023, &idx) != 0) {
            glow_errorf(err, "--device %s: expected cuda:N with N a GPU number", spec);
            return -1;
        }
        int n = glow_cuda_device_count(why, sizeof why);
        if (n == 0) {
            glow_errorf(err, "--device %s: no usable GPU: %s; use --device cpu", spec, why);
            return -1;
        }
        if (idx >= n) {
            glow_errorf(err, "--device %s: only %d GPU%s present", spec, n, n == 1 ? "" : "s");
            return -1;
        }
        dev->kind = DEVICE_CUDA;
        dev->index = (int)idx;
        return 0;
    }
    glow_errorf(err, "--device %s: expected cpu, cuda, cuda:N or auto", spec);
    return -1;
}

const char *glow_device_str(const glow_device *dev, char *buf, size_t len)
{
    if (dev->kind == DEVICE_CPU)
        snprintf(buf, len, "cpu");
    else
        snprintf(buf, len, "cuda:%d", dev->index);
    return buf;
}
