// Priors, class embedding and class head of the CUDA backend: the semantics of
// cpu/cpu_prior.c. Per-image and per-class sums are deterministic (cuda_reduce.cuh
// or one thread summing in a fixed order); the head's small matrix work (n images
// x k classes x c channels) is done in double like the CPU.
#include "backend/ew_math.h"
#include "base/rng.h"
#include "cuda_internal.h"
#include "cuda_reduce.cuh"

// Positions of mean and logs of channel j in a prior's h row of 2c values.
__device__ __forceinline__ void prior_idx(bk_prior_layout lay, int c, int j, int *im, int *il)
{
    if (lay == BK_INTERLEAVED) {
        *im = 2 * j;
        *il = 2 * j + 1;
    } else {
        *im = j;
        *il = c + j;
    }
}

struct gauss_logp_elem {
    const float *z;
    int ldz;
    const float *h;
    bk_prior_layout lay;
    int c;
    __device__ float operator()(size_t r, int j) const
    {
        int im, il;
        prior_idx(lay, c, j, &im, &il);
        const float *hp = h + r * 2 * (size_t)c;
        return ew_gauss_logp(z[r * ldz + j], hp[im], hp[il]);
    }
};

void cuda_gauss_logp(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                     int n, size_t rows_per_image, int c, float *logp)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n <= 0 || c <= 0 || rows_per_image == 0)
        return;
    gauss_logp_elem f = {z, ldz, h, lay, c};
    seg_sum(ctx, CUDA_SCRATCH_OPS0, f, n, rows_per_image, c, logp);
}

__global__ void k_gauss_bwd(const float *z, int ldz, const float *h, bk_prior_layout lay,
                            size_t rows, int c, float g, float *dz, int lddz, int accumulate,
                            float *dh)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        int im, il;
        prior_idx(lay, c, j, &im, &il);
        const float *hp = h + r * 2 * (size_t)c;
        float *dhp = dh + r * 2 * (size_t)c;
        float dm, dl;
        float d = ew_gauss_bwd(z[r * ldz + j], hp[im], hp[il], g, &dm, &dl);
        dhp[im] = dm;
        dhp[il] = dl;
        if (accumulate)
            dz[r * lddz + j] += d;
        else
            dz[r * lddz + j] = d;
    }
}

void cuda_gauss_bwd(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                    size_t rows, int c, float g, float *dz, int lddz, int accumulate, float *dh)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c;
    if (n)
        LAUNCH(ctx, n, k_gauss_bwd, z, ldz, h, lay, rows, c, g, dz, lddz, accumulate, dh);
}

__global__ void k_gauss_sample(const float *h, bk_prior_layout lay, size_t rows,
                               size_t rows_per_image, int c, float temperature,
                               uint64_t seed, uint64_t stream, uint64_t first, float *z,
                               int ldz)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        size_t img = r / rows_per_image, pr = r % rows_per_image;
        int im, il;
        prior_idx(lay, c, j, &im, &il);
        const float *hp = h + r * 2 * (size_t)c;
        uint64_t idx = ((first + img) * rows_per_image + pr) * (uint64_t)c + (uint64_t)j;
        float eps = rng_normal_at(seed, stream, idx);
        z[r * ldz + j] = hp[im] + expf(hp[il]) * eps * temperature;
    }
}

void cuda_gauss_sample(backend *b, const float *h, bk_prior_layout lay, int n,
                       size_t rows_per_image, int c, float temperature, uint64_t seed,
                       uint64_t stream, uint64_t first, float *z, int ldz)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t rows = (size_t)(n > 0 ? n : 0) * rows_per_image;
    if (rows && c > 0)
        LAUNCH(ctx, rows * (size_t)c, k_gauss_sample, h, lay, rows, rows_per_image, c,
               temperature, seed, stream, first, z, ldz);
}

__global__ void k_gauss_to_eps(const float *z, int ldz, const float *h, bk_prior_layout lay,
                               size_t rows, int c, float *eps, int lde)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        int im, il;
        prior_idx(lay, c, j, &im, &il);
        const float *hp = h + r * 2 * (size_t)c;
        eps[r * lde + j] = ew_gauss_to_eps(z[r * ldz + j], hp[im], hp[il]);
    }
}

void cuda_gauss_to_eps(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                       size_t rows, int c, float *eps, int lde)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)(c > 0 ? c : 0);
    if (n)
        LAUNCH(ctx, n, k_gauss_to_eps, z, ldz, h, lay, rows, c, eps, lde);
}

// The expression of k_gauss_sample with the normal read instead of drawn (the
// same contraction into an FMA), so that the same normal gives the same z.
__global__ void k_gauss_from_eps(const float *eps, int lde, const float *h, bk_prior_layout lay,
                                 size_t rows, int c, float temperature, float *z, int ldz)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        int im, il;
        prior_idx(lay, c, j, &im, &il);
        const float *hp = h + r * 2 * (size_t)c;
        z[r * ldz + j] = ew_gauss_from_eps(eps[r * lde + j], hp[im], hp[il], temperature);
    }
}

void cuda_gauss_from_eps(backend *b, const float *eps, int lde, const float *h,
                         bk_prior_layout lay, size_t rows, int c, float temperature, float *z,
                         int ldz)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)(c > 0 ? c : 0);
    if (n)
        LAUNCH(ctx, n, k_gauss_from_eps, eps, lde, h, lay, rows, c, temperature, z, ldz);
}

// ---- class embedding ----

__global__ void k_yemb_fwd(float *h, size_t rows_per_image, size_t total, int c,
                           int n_classes, const int32_t *labels, const float *w,
                           const float *bias, const float *logs)
{
    GRID_STRIDE(i, total)
    {
        int j = (int)(i % (size_t)c);
        size_t img = i / (size_t)c / rows_per_image;
        int y = labels[img];
        h[i] += (w[(size_t)j * n_classes + y] + bias[j]) * ew_actnorm_scale(logs[j]);
    }
}

void cuda_yemb_fwd(backend *b, float *h, int n, size_t rows_per_image, int c, int n_classes,
                   const int32_t *labels, const float *w, const float *bias, const float *logs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t total = (size_t)(n > 0 ? n : 0) * rows_per_image * (size_t)(c > 0 ? c : 0);
    if (total)
        LAUNCH(ctx, total, k_yemb_fwd, h, rows_per_image, total, c, n_classes, labels, w,
               bias, logs);
}

// Dense [rows, c] values as float terms of col_sum.
struct dense_elem {
    const float *x;
    int c;
    __device__ void operator()(size_t r, int j, float *v) const { v[0] = x[r * (size_t)c + j]; }
};

// Writes the per-(image, channel) sums (divided by `div`) to out[seg * c + j].
struct store_fin {
    double *out;
    int c;
    double div;
    __device__ void operator()(int seg, int j, const double *s) const
    {
        out[(size_t)seg * c + j] = s[0] / div;
    }
};

// One thread per channel, images in order (the CPU's order, so dw's float
// accumulation over images of one class matches it).
__global__ void k_yemb_bwd(const double *sums, int n, int c, int n_classes,
                           const int32_t *labels, const float *w, const float *bias,
                           const float *logs, float *dw, float *dbias, float *dlogs)
{
    GRID_STRIDE(jj, (size_t)c)
    {
        int j = (int)jj;
        float s = ew_actnorm_scale(logs[j]);
        for (int q = 0; q < n_classes; q++)
            dw[(size_t)j * n_classes + q] = 0.0f;
        double db = 0, dl = 0;
        for (int i = 0; i < n; i++) {
            double sum = sums[(size_t)i * c + j];
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

void cuda_yemb_bwd(backend *b, const float *dh, int n, size_t rows_per_image, int c,
                   int n_classes, const int32_t *labels, const float *w, const float *bias,
                   const float *logs, float *dw, float *dbias, float *dlogs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (c <= 0)
        return;
    if (n <= 0 || rows_per_image == 0) {
        CUDA_CHECK(cudaMemsetAsync(dw, 0, (size_t)c * n_classes * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(dbias, 0, (size_t)c * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(dlogs, 0, (size_t)c * sizeof(float), ctx->stream));
        return;
    }
    double *sums = (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS1, (size_t)n * c * sizeof(double));
    dense_elem f = {dh, c};
    store_fin fin = {sums, c, 1.0};
    col_sum<1>(ctx, CUDA_SCRATCH_OPS0, f, fin, n, rows_per_image, c);
    LAUNCH(ctx, (size_t)c, k_yemb_bwd, sums, n, c, n_classes, labels, w, bias, logs, dw,
           dbias, dlogs);
}

// ---- class head ----

// One block per image: logits (double) into l[i k ..], then thread 0 turns them
// into the softmax and the cross-entropy. With `pre`, also stores bias + w pooled
// (summed in the CPU's order: bias first) for the backward pass.
__global__ void k_head_logits(const double *pooled, int c, int k, const int32_t *labels,
                              const float *w, const float *bias, const float *logs,
                              double *l, double *pre, float *ce)
{
    const int i = blockIdx.x;
    const double *pp = pooled + (size_t)i * c;
    double *li = l + (size_t)i * k;
    for (int q = threadIdx.x; q < k; q += blockDim.x) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += (double)w[(size_t)q * c + j] * pp[j];
        li[q] = (s + bias[q]) * exp(3.0 * logs[q]);
        if (pre) {
            double p = bias[q];
            for (int j = 0; j < c; j++)
                p += (double)w[(size_t)q * c + j] * pp[j];
            pre[(size_t)i * k + q] = p;
        }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double m = li[0];
        for (int q = 1; q < k; q++)
            if (li[q] > m)
                m = li[q];
        double s = 0;
        for (int q = 0; q < k; q++)
            s += exp(li[q] - m);
        int y = labels[i];
        if (ce)
            ce[i] = (float)(log(s) + m - li[y]);
        for (int q = 0; q < k; q++)
            li[q] = exp(li[q] - m) / s;
    }
}

// Per image and class: dpre = dlogit s and the log-scale term dlogit 3 pre s.
__global__ void k_head_dpre(const double *prob, const double *pre, int n, int k,
                            const int32_t *labels, const float *logs, float g, double *dpre,
                            double *dl)
{
    GRID_STRIDE(t, (size_t)n * k)
    {
        size_t i = t / (size_t)k;
        int q = (int)(t % (size_t)k);
        double s = exp(3.0 * logs[q]);
        double dlogit = g * (prob[t] - (q == labels[i] ? 1.0 : 0.0));
        dl[t] = dlogit * 3.0 * pre[t] * s;
        dpre[t] = dlogit * s;
    }
}

// dw[q, j] = sum_i dpre[i, q] pooled[i, j]; dbias, dlogs summed over images in order
// (by the thread of j = 0, which also runs when there are no channels).
__global__ void k_head_params(const double *dpre, const double *dl, const double *pooled,
                              int n, int c, int k, float *dw, float *dbias, float *dlogs)
{
    const int cc = c > 0 ? c : 1;
    GRID_STRIDE(t, (size_t)k * cc)
    {
        int q = (int)(t / (size_t)cc), j = (int)(t % (size_t)cc);
        if (c > 0) {
            double s = 0;
            for (int i = 0; i < n; i++)
                s += dpre[(size_t)i * k + q] * pooled[(size_t)i * c + j];
            dw[t] = (float)s;
        }
        if (j == 0) {
            double gb = 0, gl = 0;
            for (int i = 0; i < n; i++) {
                gb += dpre[(size_t)i * k + q];
                gl += dl[(size_t)i * k + q];
            }
            dbias[q] = (float)gb;
            dlogs[q] = (float)gl;
        }
    }
}

// dp[i, j] = sum_q dpre[i, q] w[q, j], then / rows_per_image as the CPU rounds it.
__global__ void k_head_dpool(const double *dpre, const float *w, int n, int c, int k,
                             double rpi, float *dpool)
{
    GRID_STRIDE(t, (size_t)n * c)
    {
        size_t i = t / (size_t)c;
        int j = (int)(t % (size_t)c);
        double s = 0;
        for (int q = 0; q < k; q++)
            s += dpre[i * k + q] * w[(size_t)q * c + j];
        dpool[t] = (float)(s / rpi);
    }
}

__global__ void k_head_dz(const float *dpool, size_t rows_per_image, int c, size_t total,
                          float *dz)
{
    GRID_STRIDE(t, total)
    {
        int j = (int)(t % (size_t)c);
        size_t img = t / (size_t)c / rows_per_image;
        dz[t] += dpool[img * c + j];
    }
}

// Pooled means of z per image and channel into scratch slot OPS1 (first n c doubles
// of the returned buffer; the rest, `extra` doubles, is the caller's).
static double *head_pool(cuda_ctx *ctx, const float *z, int n, size_t rows_per_image, int c,
                         size_t extra)
{
    double *buf = (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS1,
                                         ((size_t)n * c + extra) * sizeof(double));
    dense_elem f = {z, c};
    store_fin fin = {buf, c, (double)rows_per_image};
    col_sum<1>(ctx, CUDA_SCRATCH_OPS0, f, fin, n, rows_per_image, c);
    return buf;
}

void cuda_head_fwd(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                   const int32_t *labels, const float *w, const float *bias, const float *logs,
                   float *ce)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n <= 0 || k <= 0)
        return;
    double *pooled = head_pool(ctx, z, n, rows_per_image, c, (size_t)n * k);
    double *l = pooled + (size_t)n * c;
    LAUNCH_GRID(ctx, (unsigned)n, 128, k_head_logits, pooled, c, k, labels, w, bias, logs, l, NULL,
                ce);
}

void cuda_head_bwd(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                   const int32_t *labels, const float *w, const float *bias, const float *logs,
                   float g, float *dz, float *dw, float *dbias, float *dlogs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (k <= 0)
        return;
    // c = 0 (no channels): the logits are the bias alone, and dbias, dlogs are
    // still written, as on the CPU
    if (n <= 0) {
        if (c > 0)
            CUDA_CHECK(cudaMemsetAsync(dw, 0, (size_t)k * c * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(dbias, 0, (size_t)k * sizeof(float), ctx->stream));
        CUDA_CHECK(cudaMemsetAsync(dlogs, 0, (size_t)k * sizeof(float), ctx->stream));
        return;
    }
    const size_t nk = (size_t)n * k;
    double *pooled = head_pool(ctx, z, n, rows_per_image, c, 4 * nk);
    double *prob = pooled + (size_t)n * c, *pre = prob + nk, *dpre = pre + nk, *dl = dpre + nk;
    float *dpool = (float *)cuda_scratch(ctx, CUDA_SCRATCH_OPS2, (size_t)n * c * sizeof(float));
    LAUNCH_GRID(ctx, (unsigned)n, 128, k_head_logits, pooled, c, k, labels, w, bias, logs, prob,
                pre, NULL);
    LAUNCH(ctx, nk, k_head_dpre, prob, pre, n, k, labels, logs, g, dpre, dl);
    LAUNCH(ctx, (size_t)k * (c > 0 ? c : 1), k_head_params, dpre, dl, pooled, n, c, k, dw, dbias,
           dlogs);
    if (c <= 0)
        return;
    LAUNCH(ctx, (size_t)n * c, k_head_dpool, dpre, w, n, c, k, (double)rows_per_image,
           dpool);
    const size_t total = (size_t)n * rows_per_image * c;
    if (total)
        LAUNCH(ctx, total, k_head_dz, dpool, rows_per_image, c, total, dz);
}
