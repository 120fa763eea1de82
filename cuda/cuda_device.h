/* C interface of the CUDA device queries (cuda_device.cu). */
#ifndef GLOW_CUDA_DEVICE_H
#define GLOW_CUDA_DEVICE_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif
/* Number of usable GPUs; 0 with a reason in `why` when there is none. */
int glow_cuda_device_count(char *why, size_t why_len);
int glow_cuda_device_name(int dev, char *buf, size_t len);
#ifdef __cplusplus
}
#endif
#endif
