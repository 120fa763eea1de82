// The CUDA emulator's cuda_bf16.h: __nv_bfloat16 as 16 bits with the GPU's
// conversions (round to nearest even; NaN to the canonical 0x7fff).
#ifndef EMU_CUDA_BF16_H
#define EMU_CUDA_BF16_H

#include "cuda_runtime.h"
#include "emu/numeric.h"

struct __nv_bfloat16 {
    unsigned short __x;
    __nv_bfloat16() = default;
    __nv_bfloat16(float f) : __x(::emu::bf16_bits(f)) {}
    __nv_bfloat16(double f) : __x(::emu::bf16_bits((float)f)) {}
    operator float() const { return ::emu::bf16_to_f32(__x); }
};
typedef __nv_bfloat16 nv_bfloat16;

inline __nv_bfloat16 __float2bfloat16_rn(float f)
{
    __nv_bfloat16 h;
    h.__x = ::emu::bf16_bits(f);
    return h;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return ::emu::bf16_to_f32(h.__x); }

#endif
