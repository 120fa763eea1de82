/* Optimizer updates, sum of squares and EMA over flat parameter arrays. */
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
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ew_adam(p[i], g[i], &m[i], &v[i], lr, beta1, beta2, eps, bc1, sbc2);
}

void cpu_adamax(backend *b, float *p, const float *g, float *m, float *u, size_t n, float lr,
                float beta1, float beta2, float eps, long t)
{
    (void)b;
    const float bc1 = (float)(1.0 - pow(beta1, (double)t));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        p[i] = ew_adamax(p[i], g[i], &m[i], &u[i], lr, beta1, beta2, eps, bc1);
}

#define SUMSQ_CHUNK 4096

double cpu_sumsq(backend *b, const float *x, size_t n)
{
    (void)b;
    size_t nch = (n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK;
    double *part = xcalloc(nch, sizeof *part);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t k = 0; k < nch; k++) {
        size_t i1 = (k + 1) * SUMSQ_CHUNK < n ? (k + 1) * SUMSQ_CHUNK : n;
        double s = 0;
        for (size_t i = k * SUMSQ_CHUNK; i < i1; i++)
            s += (double)x[i] * x[i];
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
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++)
        e[i] = decay * e[i] + (1.0f - decay) * p[i];
}
