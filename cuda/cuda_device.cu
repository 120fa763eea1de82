// Device discovery for --device: how many GPUs, and a one-line reason when none
// can be used (no driver, driver too old, no device). C interface.
#include <cuda_runtime.h>
#include <stdio.h>

#include "cuda_device.h"

extern "C" int glow_cuda_device_count(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why)
            snprintf(why, why_len, "%s", cudaGetErrorString(e));
        cudaGetLastError(); // clear the sticky error for later calls
        return 0;
    }
    if (n == 0 && why)
        snprintf(why, why_len, "no CUDA device found");
    return n;
}

extern "C" int glow_cuda_device_name(int dev, char *buf, size_t len)
{
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess)
        return -1;
    snprintf(buf, len, "%s (sm_%d%d, %.0f GiB)", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return 0;
}
