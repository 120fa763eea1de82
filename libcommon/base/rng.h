/* The project's one random number generator: Philox4x32-10 (Salmon et al., 2011),
 * counter-based, so the value at any position is a pure function of
 * (seed, stream, index). That makes results independent of thread count and lets
 * the CPU and CUDA backends draw the very same numbers.
 *
 * Streams separate independent uses (data shuffle, dequantisation noise, init,
 * sampling); the index counts draws within a stream. */
#ifndef GLOW_RNG_H
#define GLOW_RNG_H

#include <stdint.h>

#include <math.h>

#include "hd.h"

/* One Philox4x32-10 block: four 32-bit words for a 128-bit counter and 64-bit key. */
GLOW_HD void philox4x32(uint32_t ctr[4], uint32_t key0, uint32_t key1)
{
    const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)M0 * ctr[0];
        uint64_t p1 = (uint64_t)M1 * ctr[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ ctr[1] ^ key0;
        uint32_t n2 = hi0 ^ ctr[3] ^ key1;
        ctr[0] = n0; ctr[1] = lo1; ctr[2] = n2; ctr[3] = lo0;
        key0 += W0; key1 += W1;
    }
}

/* The i-th 32-bit word of stream `stream` under `seed`. */
GLOW_HD uint32_t rng_u32_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t c[4] = {(uint32_t)(i >> 2), (uint32_t)(i >> 34), (uint32_t)stream,
                     (uint32_t)(stream >> 32)};
    philox4x32(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    return c[i & 3];
}

/* Uniform in [0, 1) with 24 random bits (exact in float32). */
GLOW_HD float rng_uniform_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    return (float)(rng_u32_at(seed, stream, i) >> 8) * (1.0f / 16777216.0f);
}

/* Standard normal from draws 2i and 2i+1 (Box-Muller, computed in double so the
 * host and the device agree to the last bit of the float result). */
GLOW_HD float rng_normal_at(uint64_t seed, uint64_t stream, uint64_t i)
{
    uint32_t a = rng_u32_at(seed, stream, 2 * i), b = rng_u32_at(seed, stream, 2 * i + 1);
    double u1 = ((double)a + 1.0) * (1.0 / 4294967296.0); /* (0, 1] */
    double u2 = (double)b * (1.0 / 4294967296.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* A sequential generator on top: a position in a stream. Its whole state is three
 * integers, which checkpoints store to resume the exact sequence. */
typedef struct {
    uint64_t seed, stream, index;
} glow_rng;

static inline glow_rng rng_make(uint64_t seed, uint64_t stream)
{
    glow_rng r = {seed, stream, 0};
    return r;
}
static inline uint32_t rng_next_u32(glow_rng *r) { return rng_u32_at(r->seed, r->stream, r->index++); }
static inline double rng_next_double(glow_rng *r) /* [0, 1), 53 bits */
{
    uint64_t hi = rng_next_u32(r) >> 5, lo = rng_next_u32(r) >> 6;
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}
/* Uniform integer in [0, n) without modulo bias. */
static inline uint32_t rng_next_below(glow_rng *r, uint32_t n)
{
    uint32_t limit = (uint32_t)(-n) % n; /* 2^32 mod n */
    for (;;) {
        uint32_t x = rng_next_u32(r);
        if (x >= limit)
            return x % n;
    }
}
static inline double rng_next_normal(glow_rng *r)
{
    double u1 = (rng_next_u32(r) + 1.0) * (1.0 / 4294967296.0);
    double u2 = rng_next_u32(r) * (1.0 / 4294967296.0);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
/* Fisher-Yates shuffle of an index array. */
static inline void rng_shuffle_u32(glow_rng *r, uint32_t *a, uint32_t n)
{
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = rng_next_below(r, i);
        uint32_t t = a[i - 1]; a[i - 1] = a[j]; a[j] = t;
    }
}

/* Named streams, so two uses never share numbers. */
enum {
    RNG_STREAM_DATA_ORDER = 1,
    RNG_STREAM_DEQUANT = 2,
    RNG_STREAM_INIT = 3,
    RNG_STREAM_SAMPLE = 4,
    RNG_STREAM_SPLIT = 5,
    RNG_STREAM_TEST = 99
};

#endif
