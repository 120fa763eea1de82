// The CUDA emulator's number formats: bf16, fp16 and tf32 rounding of fp32 values,
// as the GPU's conversions do them (round to nearest even; fp16 overflows to inf
// above 65504 and keeps subnormals down to 2^-24; tf32 keeps fp32's range and 10
// mantissa bits). Used by cuda_bf16.h, cuda_fp16.h and the cuBLAS/cuDNN stand-ins.
#ifndef EMU_NUMERIC_H
#define EMU_NUMERIC_H

#include <cstdint>
#include <cstring>

namespace emu {

inline uint32_t f32_bits(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float f32_from_bits(uint32_t u)
{
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// fp32 -> bf16 bits, round to nearest even; NaN -> the canonical 0x7fff.
inline uint16_t bf16_bits(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return 0x7fff;
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

inline float bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

inline float round_bf16(float f) { return bf16_to_f32(bf16_bits(f)); }

// fp32 -> tf32 (still stored as fp32), round to nearest even on 10 mantissa bits.
inline float round_tf32(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return f; // inf, NaN
    u += 0xfffu + ((u >> 13) & 1u);
    u &= ~0x1fffu;
    return f32_from_bits(u);
}

// fp32 -> IEEE binary16 bits, round to nearest even.
inline uint16_t f16_bits(float f)
{
    const uint32_t u = f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u); // NaN
    if (a >= 0x477ff000u)                  // >= 65520 rounds to inf
        return (uint16_t)(sign | 0x7c00u);
    if (a < 0x33000000u) // < 2^-25: rounds to zero
        return sign;
    int e = (int)(a >> 23) - 127; // unbiased exponent
    uint32_t m = (a & 0x7fffffu) | 0x800000u; // 24-bit significand
    if (e < -14) {
        // subnormal: value = m * 2^(e-23); in units of 2^-24: m >> (-e - 1)
        int shift = -e - 1; // 14 .. 24
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q); // q may carry into the smallest normal: still right
    }
    uint32_t q = m >> 13, rem = m & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u)))
        q++;
    uint32_t h = ((uint32_t)(e + 15) << 10) + (q - 0x400u); // q in [0x400, 0x800]
    return (uint16_t)(sign | h);
}

inline float f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)
        return f32_from_bits(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        if (m == 0)
            return f32_from_bits(sign);
        float v = (float)m * (1.0f / 16777216.0f); // m * 2^-24, exact
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

inline float round_f16(float f) { return f16_to_f32(f16_bits(f)); }

} // namespace emu

#endif
