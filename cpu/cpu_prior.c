/* Priors, class embedding and class head of the CPU backend. */
#include <math.h>
#include <stdlib.h>

#include "backend/ew_math.h"
#include "base/rng.h"
#include "cpu_internal.h"

/* Index of mean and logs of channel j in a prior's h row of 2c values. */
static inline void prior_idx(bk_prior_layout lay, int c, int j, int *im, int *il)
{
    if (lay == BK_INTERLEAVED) {
        *im = 2 * j;
        *il = 2 * j + 1;
    } else {
        *im = j;
        *il = c + j;
    }
}

void cpu_gauss_logp(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                    int n, size_t rows_per_image, int c, float *logp)
{
    (void)b;
    const size_t cpi = cpu_chunks_per_image(rows_per_image), nch = (size_t)n * cpi;
    double *part = xcalloc(nch, sizeof *part);
#pragma omp parallel for schedule(static) if (n * rows_per_image * (size_t)c > CPU_PAR_EXP)
    for (size_t k = 0; k < nch; k++) {
        size_t r0, r1;
        cpu_image_chunk(k, cpi, rows_per_image, &r0, &r1);
        double acc = 0;
        for (size_t r = r0; r < r1; r++)
            for (int j = 0; j < c; j++) {
                int im, il;
                prior_idx(lay, c, j, &im, &il);
                const float *hp = h + r * 2 * c;
                acc += ew_gauss_logp(z[r * ldz + j], hp[im], hp[il]);
            }
        part[k] = acc;
    }
    cpu_image_sums_add(part, n, cpi, logp);
    free(part);
}

void cpu_gauss_bwd(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                   size_t rows, int c, float g, float *dz, int lddz, int accumulate, float *dh)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        const float *hp = h + r * 2 * c;
        float *dhp = dh + r * 2 * c;
        for (int j = 0; j < c; j++) {
            int im, il;
            prior_idx(lay, c, j, &im, &il);
            float d = ew_gauss_bwd(z[r * ldz + j], hp[im], hp[il], g, &dhp[im], &dhp[il]);
            if (accumulate)
                dz[r * lddz + j] += d;
            else
                dz[r * lddz + j] = d;
        }
    }
}

void cpu_gauss_sample(backend *b, const float *h, bk_prior_layout lay, int n,
                      size_t rows_per_image, int c, float temperature, uint64_t seed,
                      uint64_t stream, uint64_t first, float *z, int ldz)
{
    (void)b;
    const size_t rows = (size_t)n * rows_per_image;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        size_t img = r / rows_per_image, pr = r % rows_per_image;
        const float *hp = h + r * 2 * c;
        for (int j = 0; j < c; j++) {
            int im, il;
            prior_idx(lay, c, j, &im, &il);
            uint64_t idx = ((first + img) * rows_per_image + pr) * (uint64_t)c + (uint64_t)j;
            float eps = rng_normal_at(seed, stream, idx);
            z[r * ldz + j] = hp[im] + expf(hp[il]) * eps * temperature;
        }
    }
}

void cpu_gauss_to_eps(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                      size_t rows, int c, float *eps, int lde)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        const float *hp = h + r * 2 * c;
        for (int j = 0; j < c; j++) {
            int im, il;
            prior_idx(lay, c, j, &im, &il);
            eps[r * lde + j] = ew_gauss_to_eps(z[r * ldz + j], hp[im], hp[il]);
        }
    }
}

void cpu_gauss_from_eps(backend *b, const float *eps, int lde, const float *h,
                        bk_prior_layout lay, size_t rows, int c, float temperature, float *z,
                        int ldz)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        const float *hp = h + r * 2 * c;
        for (int j = 0; j < c; j++) {
            int im, il;
            prior_idx(lay, c, j, &im, &il);
            z[r * ldz + j] = ew_gauss_from_eps(eps[r * lde + j], hp[im], hp[il], temperature);
        }
    }
}

void cpu_yemb_fwd(backend *b, float *h, int n, size_t rows_per_image, int c, int n_classes,
                  const int32_t *labels, const float *w, const float *bias, const float *logs)
{
    (void)b;
    for (int i = 0; i < n; i++) {
        int y = labels[i];
        float *add = xmalloc((size_t)c * sizeof *add);
        for (int j = 0; j < c; j++)
            add[j] = (w[(size_t)j * n_classes + y] + bias[j]) * ew_actnorm_scale(logs[j]);
        for (size_t r = 0; r < rows_per_image; r++)
            for (int j = 0; j < c; j++)
                h[((size_t)i * rows_per_image + r) * c + j] += add[j];
        free(add);
    }
}

void cpu_yemb_bwd(backend *b, const float *dh, int n, size_t rows_per_image, int c,
                  int n_classes, const int32_t *labels, const float *w, const float *bias,
                  const float *logs, float *dw, float *dbias, float *dlogs)
{
    (void)b;
    for (size_t i = 0; i < (size_t)c * n_classes; i++)
        dw[i] = 0;
#pragma omp parallel for schedule(static) if (c > 64)
    for (int j = 0; j < c; j++) {
        float s = ew_actnorm_scale(logs[j]);
        double db = 0, dl = 0;
        for (int i = 0; i < n; i++) {
            double sum = 0;
            for (size_t r = 0; r < rows_per_image; r++)
                sum += dh[((size_t)i * rows_per_image + r) * c + j];
            int y = labels[i];
            float e = w[(size_t)j * n_classes + y] + bias[j];
            dw[(size_t)j * n_classes + y] += (float)(sum * s);
            db += sum * s;
            dl += 3.0 * sum * e * s;
        }
        dbias[j] = (float)db;
        dlogs[j] = (float)dl;
    }
}

/* logits of image i into out[k] */
static void head_logits(const float *z, int i, size_t rpi, int c, int k, const float *w,
                        const float *bias, const float *logs, double *pooled, double *out)
{
    for (int j = 0; j < c; j++) {
        double s = 0;
        for (size_t r = 0; r < rpi; r++)
            s += z[((size_t)i * rpi + r) * c + j];
        pooled[j] = s / (double)rpi;
    }
    for (int q = 0; q < k; q++) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += (double)w[(size_t)q * c + j] * pooled[j];
        out[q] = (s + bias[q]) * exp(3.0 * logs[q]);
    }
}

/* softmax of logits in place; returns the cross-entropy against y */
static double softmax_ce(double *l, int k, int y)
{
    double m = l[0];
    for (int q = 1; q < k; q++)
        if (l[q] > m)
            m = l[q];
    double s = 0;
    for (int q = 0; q < k; q++)
        s += exp(l[q] - m);
    double ce = log(s) + m - l[y];
    for (int q = 0; q < k; q++)
        l[q] = exp(l[q] - m) / s;
    return ce;
}

void cpu_head_fwd(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                  const int32_t *labels, const float *w, const float *bias, const float *logs,
                  float *ce)
{
    (void)b;
    double *pooled = xmalloc((size_t)c * sizeof *pooled), *l = xmalloc((size_t)k * sizeof *l);
    for (int i = 0; i < n; i++) {
        head_logits(z, i, rows_per_image, c, k, w, bias, logs, pooled, l);
        ce[i] = (float)softmax_ce(l, k, labels[i]);
    }
    free(pooled);
    free(l);
}

void cpu_head_bwd(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                  const int32_t *labels, const float *w, const float *bias, const float *logs,
                  float g, float *dz, float *dw, float *dbias, float *dlogs)
{
    (void)b;
    double *pooled = xmalloc((size_t)c * sizeof *pooled), *l = xmalloc((size_t)k * sizeof *l);
    double *gw = xcalloc((size_t)k * c, sizeof *gw), *gb = xcalloc((size_t)k, sizeof *gb);
    double *gl = xcalloc((size_t)k, sizeof *gl), *dp = xmalloc((size_t)c * sizeof *dp);
    for (int i = 0; i < n; i++) {
        head_logits(z, i, rows_per_image, c, k, w, bias, logs, pooled, l);
        softmax_ce(l, k, labels[i]);
        for (int j = 0; j < c; j++)
            dp[j] = 0;
        for (int q = 0; q < k; q++) {
            double s = exp(3.0 * logs[q]);
            double dlogit = g * (l[q] - (q == labels[i] ? 1.0 : 0.0));
            double pre = bias[q];
            for (int j = 0; j < c; j++)
                pre += (double)w[(size_t)q * c + j] * pooled[j];
            gl[q] += dlogit * 3.0 * pre * s;
            double dpre = dlogit * s;
            gb[q] += dpre;
            for (int j = 0; j < c; j++) {
                gw[(size_t)q * c + j] += dpre * pooled[j];
                dp[j] += dpre * w[(size_t)q * c + j];
            }
        }
        for (size_t r = 0; r < rows_per_image; r++)
            for (int j = 0; j < c; j++)
                dz[((size_t)i * rows_per_image + r) * c + j] += (float)(dp[j] / (double)rows_per_image);
    }
    for (size_t i = 0; i < (size_t)k * c; i++)
        dw[i] = (float)gw[i];
    for (int q = 0; q < k; q++) {
        dbias[q] = (float)gb[q];
        dlogs[q] = (float)gl[q];
    }
    free(pooled);
    free(l);
    free(gw);
    free(gb);
    free(gl);
    free(dp);
}
