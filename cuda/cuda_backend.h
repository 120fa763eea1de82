/* C entry point of the CUDA backend (cuda_backend.cu). */
#ifndef GLOW_CUDA_BACKEND_H
#define GLOW_CUDA_BACKEND_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
/* The backend of GPU `device`; NULL with a one-line reason in err when it cannot be
 * used (no driver, driver too old, no such device, compute capability below 8.0). */
backend *cuda_backend_new(int device, glow_error *err);
/* Sets b's name and every slot to the CUDA backend's functions without touching a
 * device (b->impl is left alone; cuda_backend_new sets it): for cuda_backend_new,
 * and for tests on machines without a GPU. */
void cuda_backend_fill_table(backend *b);
#ifdef __cplusplus
}
#endif

#endif
