/* Data movement, actnorm and coupling ops of the CPU backend. Reductions go
 * through fixed chunks of CPU_RED_ROWS rows combined in chunk order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ew_math.h"
#include "base/rng.h"
#include "cpu_internal.h"

void cpu_copy_cols(backend *b, float *dst, int ldd, const float *src, int lds, size_t rows,
                   int cols, int accumulate)
{
    (void)b;
    if (!accumulate && ldd == cols && lds == cols) {
        if (rows)
            memmove(dst, src, rows * (size_t)cols * sizeof(float));
        return;
    }
    /* a copy of a few columns per row is a loop, not a memmove call per row */
#pragma omp parallel for schedule(static) if (rows * (size_t)cols > CPU_PAR_MEM)
    for (size_t r = 0; r < rows; r++) {
        float *d = dst + r * ldd;
        const float *s = src + r * lds;
        if (accumulate)
            for (int j = 0; j < cols; j++)
                d[j] += s[j];
        else if (cols < 16)
            for (int j = 0; j < cols; j++)
                d[j] = s[j];
        else
            memmove(d, s, (size_t)cols * sizeof(float));
    }
}

void cpu_axpy(backend *b, float *dst, const float *src, size_t n, float alpha)
{
    (void)b;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MEM)
    for (size_t i = 0; i < n; i++)
        dst[i] += alpha * src[i];
}

void cpu_add_scalar(backend *b, float *x, size_t n, float v)
{
    (void)b;
    for (size_t i = 0; i < n; i++)
        x[i] += v;
}

void cpu_scale(backend *b, float *x, size_t n, float s)
{
    (void)b;
#pragma omp parallel for schedule(static) if (n > CPU_PAR_MEM)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

/* One loop for both directions: the pixel (n, i, j, c) of the big side is channel
 * c*4 + dy*2 + dx of pixel (n, i/2, j/2) on the small side. */
static void squeeze_dir(const float *src, int lds, float *dst, int ldd, int n, int h, int w,
                        int c, int to_small)
{
    const int h2 = h / 2, w2 = w / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * h * w * c > CPU_PAR_MEM)
    for (int b = 0; b < n; b++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                size_t big = ((size_t)b * h + i) * w + j;
                size_t small = ((size_t)b * h2 + i / 2) * w2 + j / 2;
                int off = (i & 1) * 2 + (j & 1);
                if (to_small) {
                    const float *s = src + big * lds;
                    float *d = dst + small * ldd + off;
                    for (int ch = 0; ch < c; ch++)
                        d[ch * 4] = s[ch];
                } else {
                    const float *s = src + small * lds + off;
                    float *d = dst + big * ldd;
                    for (int ch = 0; ch < c; ch++)
                        d[ch] = s[ch * 4];
                }
            }
}

void cpu_squeeze(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                 int w, int c)
{
    (void)b;
    squeeze_dir(src, lds, dst, ldd, n, h, w, c, 1);
}

void cpu_unsqueeze(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                   int w, int c)
{
    (void)b;
    squeeze_dir(src, lds, dst, ldd, n, h, w, c, 0);
}

void cpu_gather_channels(backend *b, const float *x, float *y, size_t rows, int c,
                         const int32_t *perm)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_MEM)
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < c; j++)
            y[r * c + j] = x[r * c + perm[j]];
}

void cpu_dequantize(backend *b, const uint8_t *img, const float *noise, uint64_t seed,
                    uint64_t first, int n_bits, int n, int c, int h, int w, float *x)
{
    (void)b;
    const size_t D = (size_t)c * h * w, hw = (size_t)h * w;
    const float inv_bins = 1.0f / (float)(1 << n_bits);
#pragma omp parallel for schedule(static) if (n * D > CPU_PAR_EXP) /* a counter-based draw per value */
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < D; j++) {
            size_t idx = (size_t)i * D + j;
            float u = noise ? noise[idx]
                            : rng_uniform_at(seed, RNG_STREAM_DEQUANT, (first + i) * D + j) * inv_bins;
            size_t ch = j / hw, p = j % hw;
            x[((size_t)i * hw + p) * c + ch] = ew_dequant(img[idx], n_bits, u);
        }
}

void cpu_actnorm_fwd(backend *b, const float *x, int ldx, float *y, int ldy, size_t rows,
                     int c, const float *bias, const float *logs, int relu)
{
    (void)b;
    float *s = cpu_actnorm_scales(logs, c);
    const float lo = relu ? 0.0f : -INFINITY;
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_MEM)
    for (size_t r = 0; r < rows; r++) {
        const float *xp = x + r * ldx;
        float *yp = y + r * ldy;
#pragma omp simd
        for (int j = 0; j < c; j++) {
            float v = ew_actnorm_fwd(xp[j], bias[j], s[j]);
            yp[j] = v > lo ? v : lo;
        }
    }
    free(s);
}

void cpu_actnorm_inv(backend *b, const float *y, int ldy, float *x, int ldx, size_t rows,
                     int c, const float *bias, const float *logs)
{
    (void)b;
    float *s = cpu_actnorm_scales(logs, c);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > CPU_PAR_MEM)
    for (size_t r = 0; r < rows; r++) {
        const float *yp = y + r * ldy;
        float *xp = x + r * ldx;
#pragma omp simd
        for (int j = 0; j < c; j++)
            xp[j] = ew_actnorm_inv(yp[j], bias[j], s[j]);
    }
    free(s);
}

void cpu_actnorm_bwd_rows(const float *dy, int lddy, const float *y, int ldy, float *dx, int lddx,
                          size_t r0, size_t r1, int c, const float *s, int relu, float *part)
{
    float *pb = part, *pl = part + c;
    /* with relu, dy only passes where the output is positive */
    const float thr = relu ? 0.0f : -INFINITY;
    for (int j = 0; j < c; j++)
        pb[j] = pl[j] = 0.0f;
    for (size_t r = r0; r < r1; r++) {
        const float *g = dy + r * lddy, *yp = y + r * ldy;
        float *d = dx + r * lddx;
#pragma omp simd
        for (int j = 0; j < c; j++) {
            float gj = yp[j] > thr ? g[j] : 0.0f;
            float dj = gj * s[j];
            pb[j] += dj;
            pl[j] += gj * yp[j];
            d[j] = dj;
        }
    }
}

void cpu_actnorm_bwd_sums(const float *part, size_t nch, int c, float *dbias, float *dlogs)
{
    /* each channel's sums over the pieces in piece order, a piece's row of 2c
     * partials at a time: vector adds over contiguous values, where a loop over the
     * pieces per channel reads one value per 2c (the same adds in the same order,
     * so the same bits); on the calling thread: a few microseconds at the largest */
    const size_t c2 = 2 * (size_t)c;
    double *acc = xcalloc(c2, sizeof *acc);
    for (size_t k = 0; k < nch; k++) {
        const float *pk = part + k * c2;
#pragma omp simd
        for (size_t j = 0; j < c2; j++)
            acc[j] += pk[j];
    }
    for (int j = 0; j < c; j++) {
        dbias[j] = (float)acc[j];
        dlogs[j] = (float)(3.0 * acc[c + j]);
    }
    free(acc);
}

void cpu_actnorm_bwd(backend *b, const float *dy, int lddy, const float *y, int ldy,
                     float *dx, int lddx, size_t rows, int c, const float *logs, int relu,
                     float *dbias, float *dlogs)
{
    (void)b;
    const size_t nch = (rows + CPU_RED_ROWS - 1) / CPU_RED_ROWS;
    float *part = xmalloc(nch * 2 * (size_t)c * sizeof *part);
    float *s = cpu_actnorm_scales(logs, c);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 32768)
    for (size_t k = 0; k < nch; k++) {
        size_t r1 = (k + 1) * CPU_RED_ROWS < rows ? (k + 1) * CPU_RED_ROWS : rows;
        cpu_actnorm_bwd_rows(dy, lddy, y, ldy, dx, lddx, k * CPU_RED_ROWS, r1, c, s, relu, part + k * 2 * c);
    }
    cpu_actnorm_bwd_sums(part, nch, c, dbias, dlogs);
    free(s);
    free(part);
}

void cpu_actnorm_ddi(backend *b, const float *x, int ldx, size_t rows, int c, float *bias,
                     float *logs)
{
    (void)b;
    const size_t nch = (rows + CPU_RED_ROWS - 1) / CPU_RED_ROWS;
    double *part = xcalloc(nch * (size_t)c, sizeof *part);
    double *mean = xcalloc((size_t)c, sizeof *mean);
    for (int pass = 0; pass < 2; pass++) {
        memset(part, 0, nch * (size_t)c * sizeof *part);
#pragma omp parallel for schedule(static) if (rows * (size_t)c > 32768)
        for (size_t k = 0; k < nch; k++) {
            double *p = part + k * c;
            size_t r1 = (k + 1) * CPU_RED_ROWS < rows ? (k + 1) * CPU_RED_ROWS : rows;
            for (size_t r = k * CPU_RED_ROWS; r < r1; r++)
                for (int j = 0; j < c; j++) {
                    double v = (double)x[r * ldx + j] - (pass ? mean[j] : 0.0);
                    p[j] += pass ? v * v : v;
                }
        }
        for (int j = 0; j < c; j++) {
            double s = 0;
            for (size_t k = 0; k < nch; k++)
                s += part[k * c + j];
            s /= (double)rows;
            if (pass == 0) {
                mean[j] = s;
                bias[j] = (float)-s;
            } else {
                logs[j] = (float)(log(1.0 / (sqrt(s) + 1e-6)) / 3.0);
            }
        }
    }
    free(mean);
    free(part);
}

void cpu_sum_into(backend *b, const float *v, int c, float factor, float *ld, int n)
{
    (void)b;
    double s = 0;
    for (int j = 0; j < c; j++)
        s += v[j];
    for (int i = 0; i < n; i++)
        ld[i] += (float)(factor * s);
}

void cpu_coupling_fwd(backend *b, int affine, const float *x2, int ldx, const float *h,
                      float *y2, int ldy, int n, size_t rows_per_image, int c2, float *logdet)
{
    (void)b;
    const size_t cpi = cpu_chunks_per_image(rows_per_image), nch = (size_t)n * cpi;
    double *part = xcalloc(nch, sizeof *part);
#pragma omp parallel for schedule(static) if (n * rows_per_image * (size_t)c2 > CPU_PAR_EXP)
    for (size_t k = 0; k < nch; k++) {
        size_t r0, r1;
        cpu_image_chunk(k, cpi, rows_per_image, &r0, &r1);
        double acc = 0;
        for (size_t r = r0; r < r1; r++) {
            const float *xp = x2 + r * ldx;
            float *yp = y2 + r * ldy;
            if (affine) {
                const float *hp = h + r * 2 * c2;
                for (int j = 0; j < c2; j++) {
                    /* ew_coupling_scale and ew_coupling_logscale with their one
                     * exponential shared: the same bits */
                    const float a = hp[2 * j + 1] + 2.0f;
                    float s, ls;
                    if (a >= 0) {
                        const float e = expf(-a);
                        s = 1.0f / (1.0f + e);
                        ls = -log1pf(e);
                    } else {
                        const float e = expf(a);
                        s = e / (1.0f + e);
                        ls = a - log1pf(e);
                    }
                    yp[j] = (xp[j] + hp[2 * j]) * s;
                    acc += ls;
                }
            } else {
                const float *hp = h + r * c2;
                for (int j = 0; j < c2; j++)
                    yp[j] = xp[j] + hp[j];
            }
        }
        part[k] = acc;
    }
    if (affine)
        cpu_image_sums_add(part, n, cpi, logdet);
    free(part);
}

void cpu_coupling_inv(backend *b, int affine, const float *y2, int ldy, const float *h,
                      float *x2, int ldx, size_t rows, int c2)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c2 > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        const float *yp = y2 + r * ldy;
        float *xp = x2 + r * ldx;
        if (affine) {
            const float *hp = h + r * 2 * c2;
            for (int j = 0; j < c2; j++)
                xp[j] = yp[j] / ew_coupling_scale(hp[2 * j + 1]) - hp[2 * j];
        } else {
            const float *hp = h + r * c2;
            for (int j = 0; j < c2; j++)
                xp[j] = yp[j] - hp[j];
        }
    }
}

void cpu_coupling_bwd(backend *b, int affine, const float *dy2, int lddy, const float *y2,
                      int ldy, const float *h, float *dx2, int lddx, float *dh, size_t rows,
                      int c2, float g_logdet)
{
    (void)b;
#pragma omp parallel for schedule(static) if (rows * (size_t)c2 > CPU_PAR_EXP)
    for (size_t r = 0; r < rows; r++) {
        const float *g = dy2 + r * lddy, *yp = y2 + r * ldy;
        float *dxp = dx2 + r * lddx;
        if (affine) {
            const float *hp = h + r * 2 * c2;
            float *dhp = dh + r * 2 * c2;
            for (int j = 0; j < c2; j++) {
                float s = ew_coupling_scale(hp[2 * j + 1]);
                dxp[j] = ew_affine_bwd(g[j], yp[j], s, g_logdet, &dhp[2 * j], &dhp[2 * j + 1]);
            }
        } else {
            float *dhp = dh + r * c2;
            for (int j = 0; j < c2; j++) {
                float v = g[j];
                dhp[j] = v;
                dxp[j] = v;
            }
        }
    }
}
