// The CUDA emulator's cuda_fp16.h: __half as IEEE binary16 with the GPU's
// conversions (round to nearest even, overflow to inf, subnormals kept).
#ifndef EMU_CUDA_FP16_H
#define EMU_CUDA_FP16_H

#include "cuda_runtime.h"
#include "emu/numeric.h"

struct __half {
    unsigned short __x;
    __half() = default;
    __half(float f) : __x(::emu::f16_bits(f)) {}
    __half(double f) : __x(::emu::f16_bits((float)f)) {}
    operator float() const { return ::emu::f16_to_f32(__x); }
};
typedef __half half;

inline __half __float2half_rn(float f)
{
    __half h;
    h.__x = ::emu::f16_bits(f);
    return h;
}
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float __half2float(__half h) { return ::emu::f16_to_f32(h.__x); }

#endif
