/* GLOW_HD marks functions compiled both by gcc (host) and by nvcc (host and
 * device), so that element-wise math is written once for both backends. */
#ifndef GLOW_HD_H
#define GLOW_HD_H
#ifdef __CUDACC__
#define GLOW_HD __host__ __device__ __forceinline__
#else
#define GLOW_HD static inline
#endif
#endif
