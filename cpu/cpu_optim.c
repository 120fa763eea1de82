/* Optimizer updates, sum of squares and EMA over flat parameter arrays. The
 * updates are element-wise loops over several arrays, vectorised (this file is
 * compiled with -fno-math-errno: sqrtf of a second moment, never negative, sets
 * no errno, and without the flag its errno path keeps the loop scalar: Adam took
 * 3.8% of config B's training step, bench/README.md); a vector's square root and
 * division round as the scalar ones do, so the bits are the same. */
#include <math.h>
#include <stdlib.h>

#include "backend/ew_math.h"
#include "cpu_internal.h"

void cpu_adam(backend *b, float *p, const float *g, float *m, float *v, size_t n, float lr,
              float beta1, float beta2, float eps, long t)
{
    (void)b;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
    const float sbc2 = (float)sqrt(1.0 - pow(beta2, (double)t));
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ew_adam(p[i], g[i], &m[i], &v[i], lr, beta1, beta2, eps, bc1, sbc2);
}

void cpu_adamax(backend *b, float *p, const float *g, float *m, float *u, size_t n, float lr,
                float beta1, float beta2, float eps, long t)
{
    (void)b;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ew_adamax(p[i], g[i], &m[i], &u[i], lr, beta1, beta2, eps, bc1);
}

#define SUMSQ_CHUNK 4096
#define SUMSQ_LANES 8

double cpu_sumsq(backend *b, const float *x, size_t n)
{
    (void)b;
    size_t nch = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = xcalloc(nch, sizeof *part);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = 0; k < nch; k++) {
        const size_t i0 = k * SUMSQ_CHUNK, i1 = i0 + SUMSQ_CHUNK < n ? i0 + SUMSQ_CHUNK : n;
        /* SUMSQ_LANES sums of every SUMSQ_LANES-th value, added in lane order at the
         * end: vector adds instead of one chain of dependent ones, in a fixed order */
        double lane[SUMSQ_LANES] = {0};
        size_t i = i0;
        for (; i + SUMSQ_LANES <= i1; i += SUMSQ_LANES)
            for (int j = 0; j < SUMSQ_LANES; j++)
                lane[j] += (double)x[i + j] * x[i + j];
        for (; i < i1; i++)
            lane[0] += (double)x[i] * x[i];
        double s = 0;
        for (int j = 0; j < SUMSQ_LANES; j++)
            s += lane[j];
        part[k] = s;
    }
    double s = 0;
    for (size_t k = 0; k < nch; k++)
        s += part[k];
    free(part);
    return s;
}

void cpu_ema(backend *b, float *e, const float *p, size_t n, float decay)
{
    (void)b;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        e[i] = decay * e[i] + (1.0f - decay) * p[i];
}
