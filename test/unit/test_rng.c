/* The counter-based RNG: known Philox4x32-10 answers (Random123's known-answer
 * vectors), position independence, and sane distributions. */
#include <stdlib.h>

#include "base/rng.h"
#include "check.h"

int main(void)
{
    /* Random123 kat_vectors: philox4x32 10 rounds, counter 0 key 0. */
    uint32_t c[4] = {0, 0, 0, 0};
    philox4x32(c, 0, 0);
    CHECK(c[0] == 0x6627e8d5u && c[1] == 0xe169c58du && c[2] == 0xbc57ac4cu && c[3] == 0x9b00dbd8u);
    /* counter all ones, key all ones */
    uint32_t d[4] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    philox4x32(d, 0xffffffffu, 0xffffffffu);
    CHECK(d[0] == 0x408f276du && d[1] == 0x41c83b0eu && d[2] == 0xa20bc7c6u && d[3] == 0x6d5451fdu);

    /* A sequential generator gives the values of the stateless function. */
    glow_rng r = rng_make(42, 7);
    int same = 1;
    for (uint64_t i = 0; i < 100; i++)
        same &= rng_next_u32(&r) == rng_u32_at(42, 7, i);
    CHECK(same);
    /* Different streams differ. */
    CHECK(rng_u32_at(42, 7, 0) != rng_u32_at(42, 8, 0));

    /* Uniform mean, normal mean and variance on 200k draws. */
    double su = 0, sn = 0, sn2 = 0;
    const int N = 200000;
    int in_range = 1;
    for (int i = 0; i < N; i++) {
        float u = rng_uniform_at(1, 2, (uint64_t)i);
        in_range &= u >= 0.0f && u < 1.0f;
        su += u;
        double z = rng_normal_at(1, 3, (uint64_t)i);
        sn += z;
        sn2 += z * z;
    }
    CHECK(in_range);
    CHECK_NEAR(su / N, 0.5, 0.005);
    CHECK_NEAR(sn / N, 0.0, 0.01);
    CHECK_NEAR(sn2 / N, 1.0, 0.02);

    /* Shuffle is a permutation and depends on the seed only. */
    uint32_t a[100], b[100];
    for (uint32_t i = 0; i < 100; i++)
        a[i] = b[i] = i;
    glow_rng r1 = rng_make(5, RNG_STREAM_DATA_ORDER), r2 = rng_make(5, RNG_STREAM_DATA_ORDER);
    rng_shuffle_u32(&r1, a, 100);
    rng_shuffle_u32(&r2, b, 100);
    CHECK(memcmp(a, b, sizeof a) == 0);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[a[i]]++;
        moved += a[i] != (uint32_t)i;
    }
    int perm = 1;
    for (int i = 0; i < 100; i++)
        perm &= seen[i] == 1;
    CHECK(perm);
    CHECK(moved > 50);
    return check_summary();
}
