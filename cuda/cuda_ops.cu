// Data movement, actnorm and coupling ops of the CUDA backend: the semantics of
// cpu/cpu_ops.c, with the element-wise math of ew_math.h and the deterministic
// two-pass sums of cuda_reduce.cuh.
#include "backend/ew_math.h"
#include "base/rng.h"
#include "cuda_internal.h"
#include "cuda_reduce.cuh"

// ---- data movement ----

__global__ void k_copy_cols(float *dst, int ldd, const float *src, int lds, size_t rows,
                            int cols, int accumulate)
{
    GRID_STRIDE(i, rows * (size_t)cols)
    {
        size_t r = i / (size_t)cols;
        int j = (int)(i % (size_t)cols);
        float v = src[r * lds + j];
        if (accumulate)
            dst[r * ldd + j] += v;
        else
            dst[r * ldd + j] = v;
    }
}

void cuda_copy_cols(backend *b, float *dst, int ldd, const float *src, int lds, size_t rows,
                    int cols, int accumulate)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)(cols > 0 ? cols : 0);
    if (n == 0)
        return;
    if (!accumulate && ldd == cols && lds == cols) {
        // one block, with the CPU's memmove semantics: overlapping ranges (undefined
        // for cudaMemcpyAsync) go through a bounce buffer, as in cuda_copy
        const size_t bytes = n * sizeof(float);
        if (dst == src)
            return;
        if (dst < src + n && src < dst + n) {
            float *tmp = (float *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_AUX, bytes);
            CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
            src = tmp;
        }
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        return;
    }
    LAUNCH(ctx, n, k_copy_cols, dst, ldd, src, lds, rows, cols, accumulate);
}

__global__ void k_axpy(float *dst, const float *src, size_t n, float alpha)
{
    GRID_STRIDE(i, n) dst[i] += alpha * src[i];
}

void cuda_axpy(backend *b, float *dst, const float *src, size_t n, float alpha)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n)
        LAUNCH(ctx, n, k_axpy, dst, src, n, alpha);
}

__global__ void k_add_scalar(float *x, size_t n, float v)
{
    GRID_STRIDE(i, n) x[i] += v;
}

void cuda_add_scalar(backend *b, float *x, size_t n, float v)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n)
        LAUNCH(ctx, n, k_add_scalar, x, n, v);
}

__global__ void k_scale(float *x, size_t n, float s)
{
    GRID_STRIDE(i, n) x[i] *= s;
}

void cuda_scale(backend *b, float *x, size_t n, float s)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n)
        LAUNCH(ctx, n, k_scale, x, n, s);
}

// One thread per element of the big side: pixel (b, i, j), channel ch is channel
// ch*4 + (i&1)*2 + (j&1) of pixel (b, i/2, j/2) on the small side.
__global__ void k_squeeze(const float *src, int lds, float *dst, int ldd, int n, int h,
                          int w, int c, int to_small)
{
    const size_t total = (size_t)n * h * w * c;
    const int h2 = h / 2, w2 = w / 2;
    GRID_STRIDE(e, total)
    {
        int ch = (int)(e % (size_t)c);
        size_t big = e / (size_t)c;
        int j = (int)(big % (size_t)w);
        size_t t = big / (size_t)w;
        int i = (int)(t % (size_t)h);
        size_t img = t / (size_t)h;
        size_t small = (img * h2 + i / 2) * w2 + j / 2;
        int off = (i & 1) * 2 + (j & 1);
        if (to_small)
            dst[small * ldd + ch * 4 + off] = src[big * lds + ch];
        else
            dst[big * ldd + ch] = src[small * lds + ch * 4 + off];
    }
}

static void squeeze_dir(backend *b, const float *src, int lds, float *dst, int ldd, int n,
                        int h, int w, int c, int to_small)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t total = (size_t)n * h * w * c;
    if (total)
        LAUNCH(ctx, total, k_squeeze, src, lds, dst, ldd, n, h, w, c, to_small);
}

void cuda_squeeze(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                  int w, int c)
{
    squeeze_dir(b, src, lds, dst, ldd, n, h, w, c, 1);
}

void cuda_unsqueeze(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                    int w, int c)
{
    squeeze_dir(b, src, lds, dst, ldd, n, h, w, c, 0);
}

__global__ void k_gather_channels(const float *x, float *y, size_t rows, int c,
                                  const int32_t *perm)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        y[i] = x[r * c + perm[j]];
    }
}

void cuda_gather_channels(backend *b, const float *x, float *y, size_t rows, int c,
                          const int32_t *perm)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c;
    if (n)
        LAUNCH(ctx, n, k_gather_channels, x, y, rows, c, perm);
}

// One thread per NCHW input element; writes the NHWC position.
__global__ void k_dequantize(const uint8_t *img, const float *noise, uint64_t seed,
                             uint64_t first, int n_bits, int n, int c, size_t hw,
                             float *x)
{
    const size_t D = (size_t)c * hw, total = (size_t)n * D;
    const float inv_bins = 1.0f / (float)(1 << n_bits);
    GRID_STRIDE(idx, total)
    {
        size_t i = idx / D, j = idx % D;
        float u = noise ? noise[idx]
                        : rng_uniform_at(seed, RNG_STREAM_DEQUANT, (first + i) * D + j) * inv_bins;
        size_t ch = j / hw, p = j % hw;
        x[(i * hw + p) * c + ch] = ew_dequant(img[idx], n_bits, u);
    }
}

void cuda_dequantize(backend *b, const uint8_t *img, const float *noise, uint64_t seed,
                     uint64_t first, int n_bits, int n, int c, int h, int w, float *x)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t total = (size_t)n * c * h * w;
    if (total)
        LAUNCH(ctx, total, k_dequantize, img, noise, seed, first, n_bits, n, c,
               (size_t)h * w, x);
}

// ---- actnorm ----

__global__ void k_actnorm_fwd(const float *x, int ldx, float *y, int ldy, size_t rows,
                              int c, const float *bias, const float *logs, int relu)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        const float lo = relu ? 0.0f : -INFINITY;
        float v = ew_actnorm_fwd(x[r * ldx + j], bias[j], ew_actnorm_scale(logs[j]));
        y[r * ldy + j] = v > lo ? v : lo;
    }
}

void cuda_actnorm_fwd(backend *b, const float *x, int ldx, float *y, int ldy, size_t rows,
                      int c, const float *bias, const float *logs, int relu)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c;
    if (n)
        LAUNCH(ctx, n, k_actnorm_fwd, x, ldx, y, ldy, rows, c, bias, logs, relu);
}

__global__ void k_actnorm_inv(const float *y, int ldy, float *x, int ldx, size_t rows,
                              int c, const float *bias, const float *logs)
{
    GRID_STRIDE(i, rows * (size_t)c)
    {
        size_t r = i / (size_t)c;
        int j = (int)(i % (size_t)c);
        x[r * ldx + j] = ew_actnorm_inv(y[r * ldy + j], bias[j], ew_actnorm_scale(logs[j]));
    }
}

void cuda_actnorm_inv(backend *b, const float *y, int ldy, float *x, int ldx, size_t rows,
                      int c, const float *bias, const float *logs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c;
    if (n)
        LAUNCH(ctx, n, k_actnorm_inv, y, ldy, x, ldx, rows, c, bias, logs);
}

// Per element: g masked by y > 0 under relu, dx = g s written in place of dy when
// they alias (each element is read and written by the same thread), and the two
// per-channel sums g s and g y.
struct actnorm_bwd_elem {
    const float *dy;
    int lddy;
    const float *y;
    int ldy;
    float *dx;
    int lddx;
    const float *logs;
    int relu;
    __device__ void operator()(size_t r, int j, float *v) const
    {
        float yv = y[r * ldy + j];
        const float thr = relu ? 0.0f : -INFINITY;
        float g = yv > thr ? dy[r * lddy + j] : 0.0f;
        float d = g * ew_actnorm_scale(logs[j]);
        dx[r * lddx + j] = d;
        v[0] = d;
        v[1] = g * yv;
    }
};

struct actnorm_bwd_fin {
    float *dbias, *dlogs;
    __device__ void operator()(int, int j, const double *s) const
    {
        dbias[j] = (float)s[0];
        dlogs[j] = (float)(3.0 * s[1]);
    }
};

void cuda_actnorm_bwd(backend *b, const float *dy, int lddy, const float *y, int ldy,
                      float *dx, int lddx, size_t rows, int c, const float *logs, int relu,
                      float *dbias, float *dlogs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    actnorm_bwd_elem f = {dy, lddy, y, ldy, dx, lddx, logs, relu};
    actnorm_bwd_fin fin = {dbias, dlogs};
    col_sum<2>(ctx, CUDA_SCRATCH_OPS0, f, fin, 1, rows, c);
}

// Data-dependent init: the mean in one pass (float terms summed in double, as
// the CPU does), then the mean square about it with double terms, which the
// generic col_sum (float terms) would round, so it has its own kernel.
struct ddi_mean_elem {
    const float *x;
    int ldx;
    __device__ void operator()(size_t r, int j, float *v) const { v[0] = x[r * ldx + j]; }
};

__global__ void k_ddi_sq_partial(const float *x, int ldx, const double *mean, size_t rows,
                                 int c, size_t rows_per_chunk, double *part)
{
    __shared__ double buf[COL_TY][COL_TX];
    const size_t k = blockIdx.x;
    const int j = blockIdx.y * COL_TX + threadIdx.x;
    const size_t r0 = k * rows_per_chunk;
    size_t r1 = r0 + rows_per_chunk;
    if (r1 > rows)
        r1 = rows;
    double acc = 0;
    if (j < c)
        for (size_t r = r0 + threadIdx.y; r < r1; r += COL_TY) {
            double d = (double)x[r * ldx + j] - mean[j];
            acc += d * d;
        }
    buf[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < c) {
        double s = buf[0][threadIdx.x];
        for (int t = 1; t < COL_TY; t++)
            s += buf[t][threadIdx.x];
        part[k * (size_t)c + j] = s;
    }
}

struct ddi_mean_fin {
    double *mean;
    float *bias;
    double inv_rows;
    __device__ void operator()(int, int j, const double *s) const
    {
        double m = s[0] * inv_rows;
        mean[j] = m;
        bias[j] = (float)-m;
    }
};

// logs from the sum of squared deviations (the partials' final sum of cuda_reduce.cuh)
struct ddi_logs_fin {
    float *logs;
    double inv_rows;
    __device__ void operator()(int, int j, const double *s) const
    {
        logs[j] = (float)(log(1.0 / (sqrt(s[0] * inv_rows) + 1e-6)) / 3.0);
    }
};

void cuda_actnorm_ddi(backend *b, const float *x, int ldx, size_t rows, int c, float *bias,
                      float *logs)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (c <= 0 || rows == 0)
        return;
    double *mean = (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS1, (size_t)c * sizeof(double));
    const double inv_rows = 1.0 / (double)rows;
    ddi_mean_elem f = {x, ldx};
    ddi_mean_fin fin = {mean, bias, inv_rows};
    col_sum<1>(ctx, CUDA_SCRATCH_OPS0, f, fin, 1, rows, c);

    const size_t rpc = col_rows_per_chunk(rows), chunks = red_chunks(rows, rpc);
    double *part =
        (double *)cuda_scratch(ctx, CUDA_SCRATCH_OPS2, chunks * (size_t)c * sizeof(double));
    LAUNCH_GRID(ctx, col_grid(chunks, c), col_block(), k_ddi_sq_partial, x, ldx, mean, rows, c,
                rpc, part);
    col_final<1>(ctx, part, 1, c, chunks, ddi_logs_fin{logs, inv_rows});
}

// ld[i] += factor * sum(v) for every image: one block, the sum in double in order.
__global__ void k_sum_into(const float *v, int c, float factor, float *ld, int n)
{
    __shared__ float add;
    if (threadIdx.x == 0) {
        double s = 0;
        for (int j = 0; j < c; j++)
            s += v[j];
        add = (float)(factor * s);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        ld[i] += add;
}

void cuda_sum_into(backend *b, const float *v, int c, float factor, float *ld, int n)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    if (n <= 0)
        return;
    LAUNCH_GRID(ctx, 1, CUDA_BLOCK, k_sum_into, v, c, factor, ld, n);
}

// ---- coupling ----

// Affine forward: writes y2 and returns log s for the per-image log-determinant.
struct coupling_fwd_elem {
    const float *x2;
    int ldx;
    const float *h;
    float *y2;
    int ldy;
    int c2;
    __device__ float operator()(size_t r, int j) const
    {
        const float *hp = h + r * 2 * (size_t)c2;
        float raw = hp[2 * j + 1];
        y2[r * ldy + j] = (x2[r * ldx + j] + hp[2 * j]) * ew_coupling_scale(raw);
        return ew_coupling_logscale(raw);
    }
};

__global__ void k_coupling_add(const float *x2, int ldx, const float *h, float *y2, int ldy,
                               size_t rows, int c2, float sign)
{
    GRID_STRIDE(i, rows * (size_t)c2)
    {
        size_t r = i / (size_t)c2;
        int j = (int)(i % (size_t)c2);
        y2[r * ldy + j] = x2[r * ldx + j] + sign * h[i];
    }
}

void cuda_coupling_fwd(backend *b, int affine, const float *x2, int ldx, const float *h,
                       float *y2, int ldy, int n, size_t rows_per_image, int c2, float *logdet)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t rows = (size_t)n * rows_per_image;
    if (rows == 0 || c2 <= 0)
        return;
    if (affine) {
        coupling_fwd_elem f = {x2, ldx, h, y2, ldy, c2};
        seg_sum(ctx, CUDA_SCRATCH_OPS0, f, n, rows_per_image, c2, logdet);
    } else {
        LAUNCH(ctx, rows * (size_t)c2, k_coupling_add, x2, ldx, h, y2, ldy, rows, c2, 1.0f);
    }
}

__global__ void k_coupling_inv_affine(const float *y2, int ldy, const float *h, float *x2,
                                      int ldx, size_t rows, int c2)
{
    GRID_STRIDE(i, rows * (size_t)c2)
    {
        size_t r = i / (size_t)c2;
        int j = (int)(i % (size_t)c2);
        const float *hp = h + r * 2 * (size_t)c2;
        x2[r * ldx + j] = y2[r * ldy + j] / ew_coupling_scale(hp[2 * j + 1]) - hp[2 * j];
    }
}

void cuda_coupling_inv(backend *b, int affine, const float *y2, int ldy, const float *h,
                       float *x2, int ldx, size_t rows, int c2)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c2;
    if (n == 0)
        return;
    if (affine)
        LAUNCH(ctx, n, k_coupling_inv_affine, y2, ldy, h, x2, ldx, rows, c2);
    else
        LAUNCH(ctx, n, k_coupling_add, y2, ldy, h, x2, ldx, rows, c2, -1.0f);
}

__global__ void k_coupling_bwd(int affine, const float *dy2, int lddy, const float *y2,
                               int ldy, const float *h, float *dx2, int lddx, float *dh,
                               size_t rows, int c2, float g_logdet)
{
    GRID_STRIDE(i, rows * (size_t)c2)
    {
        size_t r = i / (size_t)c2;
        int j = (int)(i % (size_t)c2);
        float g = dy2[r * lddy + j];
        if (affine) {
            size_t hb = r * 2 * (size_t)c2 + 2 * (size_t)j;
            float s = ew_coupling_scale(h[hb + 1]);
            float dshift, draw;
            dx2[r * lddx + j] = ew_affine_bwd(g, y2[r * ldy + j], s, g_logdet, &dshift, &draw);
            dh[hb] = dshift;
            dh[hb + 1] = draw;
        } else {
            dh[i] = g;
            dx2[r * lddx + j] = g;
        }
    }
}

void cuda_coupling_bwd(backend *b, int affine, const float *dy2, int lddy, const float *y2,
                       int ldy, const float *h, float *dx2, int lddx, float *dh, size_t rows,
                       int c2, float g_logdet)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    size_t n = rows * (size_t)c2;
    if (n)
        LAUNCH(ctx, n, k_coupling_bwd, affine, dy2, lddy, y2, ldy, h, dx2, lddx, dh, rows,
               c2, g_logdet);
}
