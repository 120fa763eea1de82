// The CUDA emulator's cuda_runtime.h: the part of the CUDA runtime API and of the
// device language that the backend uses, for g++ (C++17) on the host. Kernels run
// on the host, each block's threads as fibers (test/emu/emu_fiber.cpp); device
// memory is host memory tracked by the emulator (test/emu/emu_runtime.cpp).
// Included first into every emulated .cu file (-include), as nvcc does. Only the
// launch syntax kernel<<<...>>>(...) and __shared__ declarations need the source
// rewriter (test/emu/rewrite.py); docs/cuda-emulation.md has the whole story.
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H

#ifndef __cplusplus
#error "the CUDA emulator's headers are C++ (compile the .cu files with g++)"
#endif

// The code sees what nvcc's host pass shows it (__CUDA_ARCH__ stays undefined:
// device-only branches are not taken).
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#define GLOW_CUDA_EMULATOR 1
#define CUDART_VERSION 13000

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "driver_types.h"

// ---- execution-space qualifiers ----
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __constant__
#define __managed__
// __shared__ never reaches the compiler: rewrite.py turns each declaration into a
// per-block allocation. One left over is an error here.
#define __shared__ static_assert(false, "__shared__ left in the source: run test/emu/rewrite.py");

// ---- vector types ----
struct uint3 {
    unsigned int x, y, z;
};
struct int2 {
    int x, y;
};
struct float2 {
    float x, y;
};
struct float4 {
    float x, y, z, w;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
        : x(vx), y(vy), z(vz)
    {
    }
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---- the runtime API ----
extern "C" {
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaDeviceReset(void);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t error);
const char *cudaGetErrorName(cudaError_t error);

cudaError_t cudaMalloc(void **ptr, size_t size);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMallocHost(void **ptr, size_t size);
cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream);
cudaError_t cudaMemset(void *ptr, int value, size_t count);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream);
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *ptr);

cudaError_t cudaStreamCreate(cudaStream_t *stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int *flags);

// events: ordering as on CUDA; no timing (cudaEventElapsedTime reports 0 ms)
cudaError_t cudaEventCreate(cudaEvent_t *event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
cudaError_t cudaEventDestroy(cudaEvent_t event);
}

// The templates of the real header, so that cudaMalloc(&int_ptr, n) compiles.
template <class T>
inline cudaError_t cudaMalloc(T **ptr, size_t size)
{
    return ::cudaMalloc(reinterpret_cast<void **>(ptr), size);
}
template <class T>
inline cudaError_t cudaMallocHost(T **ptr, size_t size)
{
    return ::cudaMallocHost(reinterpret_cast<void **>(ptr), size);
}
template <class T>
inline cudaError_t cudaHostAlloc(T **ptr, size_t size, unsigned int flags)
{
    return ::cudaHostAlloc(reinterpret_cast<void **>(ptr), size, flags);
}

// ---- device built-ins ----
namespace emu {
extern uint3 g_thread_idx, g_block_idx;
extern dim3 g_block_dim, g_grid_dim;
void syncthreads(const char *file, int line);
void threadfence();
} // namespace emu

#define threadIdx (static_cast<const ::uint3 &>(::emu::g_thread_idx))
#define blockIdx (static_cast<const ::uint3 &>(::emu::g_block_idx))
#define blockDim (static_cast<const ::dim3 &>(::emu::g_block_dim))
#define gridDim (static_cast<const ::dim3 &>(::emu::g_grid_dim))
#define __syncthreads() ::emu::syncthreads(__FILE__, __LINE__)
#define __threadfence() ::emu::threadfence()
#define __threadfence_block() ::emu::threadfence()
static constexpr int warpSize = 32;

// Atomics: threads run one at a time, so a plain read-modify-write is atomic.
#define EMU_ATOMICS(T)                                                                     \
    inline T atomicAdd(T *a, T v)                                                          \
    {                                                                                      \
        T old = *a;                                                                        \
        *a = old + v;                                                                      \
        return old;                                                                        \
    }                                                                                      \
    inline T atomicExch(T *a, T v)                                                         \
    {                                                                                      \
        T old = *a;                                                                        \
        *a = v;                                                                            \
        return old;                                                                        \
    }                                                                                      \
    inline T atomicMax(T *a, T v)                                                          \
    {                                                                                      \
        T old = *a;                                                                        \
        *a = old < v ? v : old;                                                            \
        return old;                                                                        \
    }                                                                                      \
    inline T atomicMin(T *a, T v)                                                          \
    {                                                                                      \
        T old = *a;                                                                        \
        *a = v < old ? v : old;                                                            \
        return old;                                                                        \
    }
EMU_ATOMICS(int)
EMU_ATOMICS(unsigned int)
EMU_ATOMICS(unsigned long long)
EMU_ATOMICS(float)
EMU_ATOMICS(double)
#undef EMU_ATOMICS
inline int atomicCAS(int *a, int cmp, int v)
{
    int old = *a;
    if (old == cmp)
        *a = v;
    return old;
}
inline unsigned int atomicCAS(unsigned int *a, unsigned int cmp, unsigned int v)
{
    unsigned int old = *a;
    if (old == cmp)
        *a = v;
    return old;
}
inline unsigned long long atomicCAS(unsigned long long *a, unsigned long long cmp,
                                    unsigned long long v)
{
    unsigned long long old = *a;
    if (old == cmp)
        *a = v;
    return old;
}
template <class T>
inline T __ldg(const T *p)
{
    return *p;
}

// Fast-math intrinsics: host math (the GPU's approximations are not modelled).
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }

#include "emu/launch.h"

#endif
