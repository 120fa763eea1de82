// Convolutions: 3x3 through cuDNN, 1x1 through cuBLAS (an NHWC 1x1 conv is the
// GEMM Y[rows, Cout] = X[rows, Cin] W^T).
//
// Weights arrive in PyTorch KCRS order, possibly with the edge channel as the
// last input channel. Each call packs the data-channel taps into KRSC (cuDNN's
// channels-last filter, which every NHWC algorithm accepts) in a scratch
// buffer; the edge channel is handled as on the CPU: its forward contribution is
// the sum of the edge taps that fall on the padding, added at border pixels (fused
// with the affine + ReLU of conv_fwd_affine), and its filter gradient sums dy over
// those border pixels in double, in the CPU's order, so it is bit-identical.
//
// Per shape and precision a plan keeps the descriptors and, per operation, the
// algorithm chosen once, on its first call, from cuDNN's heuristics: the first
// deterministic one whose workspace fits and that runs, so repeated runs give the
// same bits. One workspace serves every plan and grows only when a new plan needs
// more; scratch buffers grow likewise, so a training step with known shapes
// allocates nothing.
//
// Precision: fp32 restricts cuDNN to FMA kernels (its default math would allow
// TF32 on Ampere and later) and cuBLAS to pedantic fp32; tf32 allows tensor cores
// on fp32 data; bf16 converts operands to bf16 scratch copies and accumulates in
// fp32 (cuBLAS writes fp32 directly; cuDNN's bf16 configuration stores a bf16
// result, which is widened to fp32 by the kernel that applies edge and affine).
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ew_math.h"
#include "cuda_internal.h"

enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_W = 2 };

#define WORKSPACE_CAP ((size_t)1 << 30)

typedef __nv_bfloat16 bf16;

typedef struct {
    int algo;
    cudnnMathType_t math;
    size_t ws;
} choice;

struct cuda_conv_plan {
    bk_conv d;
    glow_precision prec; // the precision computed in (bf16 may fall back to tf32)
    int gemm; // 1x1: cuBLAS, no cuDNN descriptors
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd[3];
    glow_precision key_prec; // the precision asked for (the cache key)
    choice ch[3];            // the algorithm of each op,
    int chosen[3];           // once chosen (1)
    int nb;      // border pixels (edge only)
    int *border; // device: their indices i*W + j, in the CPU's row-major order
    cuda_conv_plan *next;
};

// ---- kernels ----

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void from_f(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }

// The KCRS index (cin + e input channels, kk taps) of element i of the KRSC
// filter of the cin data channels.
__device__ __forceinline__ size_t kcrs_of_krsc(size_t i, int cin, int e, int kk)
{
    int c = (int)(i % cin);
    size_t r = i / cin;
    int t = (int)(r % kk);
    int o = (int)(r / kk);
    return ((size_t)o * (cin + e) + c) * kk + t;
}

// KCRS with cin + e input channels -> KRSC with the cin data channels
template <typename T>
__global__ void k_pack_w(const float *w, T *wp, int cout, int cin, int e, int kk)
{
    size_t n = (size_t)cout * kk * cin;
    GRID_STRIDE(i, n) from_f(&wp[i], w[kcrs_of_krsc(i, cin, e, kk)]);
}

// KRSC gradient -> the data-channel part of the KCRS gradient
template <typename T>
__global__ void k_unpack_dw(const T *dwp, float *dw, int cout, int cin, int e, int kk)
{
    size_t n = (size_t)cout * kk * cin;
    GRID_STRIDE(i, n) dw[kcrs_of_krsc(i, cin, e, kk)] = to_f(dwp[i]);
}

__global__ void k_to_bf16(const float *x, bf16 *y, size_t n)
{
    GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void k_from_bf16(const bf16 *x, float *y, size_t n, int accumulate)
{
    GRID_STRIDE(i, n)
    {
        float v = __bfloat162float(x[i]);
        y[i] = accumulate ? y[i] + v : v;
    }
}

// y = post(yc): + edge taps at border pixels (when w is given), then the affine
// (when logs is given, as on the CPU; a null bias is zero) with the CPU's clamp, in
// the CPU's order of operations.
template <typename T>
__global__ void k_post(const T *yc, float *y, size_t rows, int h, int wd, int cout, int cin,
                       const float *w, const float *bias, const float *logs, int relu)
{
    const size_t n = rows * cout;
    const float lo = relu ? 0.0f : -INFINITY;
    GRID_STRIDE(i, n)
    {
        int o = (int)(i % cout);
        size_t r = i / cout;
        int pix = (int)(r % ((size_t)h * wd));
        int pi = pix / wd, pj = pix % wd;
        float v = to_f(yc[i]);
        if (w && (pi == 0 || pj == 0 || pi == h - 1 || pj == wd - 1)) {
            const float *we = w + ((size_t)o * (cin + 1) + cin) * 9;
            float s = 0;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int yy = pi + ky - 1, xx = pj + kx - 1;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= wd)
                        s += we[ky * 3 + kx];
                }
            v += s;
        }
        if (logs) {
            v = ew_actnorm_fwd(v, bias ? bias[o] : 0.0f, ew_actnorm_scale(logs[o]));
            v = v > lo ? v : lo;
        }
        y[i] = v;
    }
}

// S[p, o] = sum over images (in order, in double) of dy at border pixel p
__global__ void k_edge_sum(const float *dy, const int *border, int nb, int nimg, size_t hw,
                           int cout, double *S)
{
    const size_t n = (size_t)nb * cout;
    GRID_STRIDE(i, n)
    {
        int o = (int)(i % cout);
        int p = (int)(i / cout);
        double s = 0;
        for (int m = 0; m < nimg; m++)
            s += dy[((size_t)m * hw + border[p]) * cout + o];
        S[i] = s;
    }
}

// each edge tap collects, in border order, the pixels where it falls on the padding
__global__ void k_edge_taps(const double *S, const int *border, int nb, int h, int wd, int cout,
                            int cin, float *dw)
{
    const size_t n = (size_t)cout * 9;
    GRID_STRIDE(i, n)
    {
        int t = (int)(i % 9);
        int o = (int)(i / 9);
        int ky = t / 3, kx = t % 3;
        double acc = 0;
        for (int p = 0; p < nb; p++) {
            int yy = border[p] / wd + ky - 1, xx = border[p] % wd + kx - 1;
            if (yy >= 0 && yy < h && xx >= 0 && xx < wd)
                continue;
            acc += S[(size_t)p * cout + o];
        }
        dw[((size_t)o * (cin + 1) + cin) * 9 + t] = (float)acc;
    }
}

// ---- plans ----

static cudnnMathType_t math_of(glow_precision p)
{
    switch (p) {
    case PRECISION_TF32:
        return CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    case PRECISION_BF16:
        return CUDNN_TENSOR_OP_MATH;
    default:
        return CUDNN_FMA_MATH;
    }
}

// (Re)describe the tensors in data type dt.
static void describe(cuda_conv_plan *p, cudnnDataType_t dt)
{
    const bk_conv *d = &p->d;
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, dt, d->n, d->cin, d->h,
                                           d->w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, dt, d->n, d->cout, d->h,
                                           d->w));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, dt, CUDNN_TENSOR_NHWC, d->cout, d->cin, 3, 3));
}

static cuda_conv_plan *get_plan(cuda_ctx *ctx, const bk_conv *d)
{
    for (cuda_conv_plan *p = ctx->convs; p; p = p->next)
        if (p->key_prec == ctx->precision && memcmp(&p->d, d, sizeof *d) == 0)
            return p;
    if ((d->k != 1 && d->k != 3) || (d->edge && d->k != 3) || d->n < 1 || d->h < 1 ||
        d->w < 1 || d->cin < 1 || d->cout < 1 ||
        (double)d->n * d->h * d->w * (d->cin > d->cout ? d->cin : d->cout) > 2147483647.0)
        glow_die(1, "backend: convolution n=%d h=%d w=%d cin=%d cout=%d k=%d edge=%d is not "
                    "supported",
                 d->n, d->h, d->w, d->cin, d->cout, d->k, d->edge);
    cuda_conv_plan *p = (cuda_conv_plan *)xcalloc(1, sizeof *p);
    p->d = *d;
    p->key_prec = p->prec = ctx->precision;
    p->gemm = d->k == 1;
    if (!p->gemm) {
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
        CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
        CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
        describe(p, p->prec == PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT);
        for (int op = 0; op < 3; op++) {
            CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd[op]));
            CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd[op], 1, 1, 1, 1, 1, 1,
                                                        CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT));
        }
    }
    if (d->edge) {
        int *pix = (int *)xcalloc((size_t)2 * (d->h + d->w), sizeof *pix);
        for (int i = 0; i < d->h; i++)
            for (int j = 0; j < d->w; j++)
                if (i == 0 || j == 0 || i == d->h - 1 || j == d->w - 1)
                    pix[p->nb++] = i * d->w + j;
        CUDA_CHECK(cudaMalloc(&p->border, (size_t)p->nb * sizeof *pix));
        CUDA_CHECK(cudaMemcpy(p->border, pix, (size_t)p->nb * sizeof *pix,
                              cudaMemcpyHostToDevice));
        free(pix);
    }
    p->next = ctx->convs;
    ctx->convs = p;
    return p;
}

// Workspace bytes of op with algorithm a under the descriptor's math type, or
// (size_t)-1 when cuDNN refuses that combination.
static size_t ws_query(cuda_ctx *ctx, cuda_conv_plan *p, int op, int a)
{
    size_t ws = 0;
    cudnnStatus_t st;
    if (op == OP_FWD)
        st = cudnnGetConvolutionForwardWorkspaceSize(ctx->cudnn, p->xd, p->wd, p->cd[op], p->yd,
                                                     (cudnnConvolutionFwdAlgo_t)a, &ws);
    else if (op == OP_BWD_DATA)
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->cudnn, p->wd, p->yd, p->cd[op],
                                                          p->xd,
                                                          (cudnnConvolutionBwdDataAlgo_t)a, &ws);
    else
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
            ctx->cudnn, p->xd, p->yd, p->cd[op], p->wd, (cudnnConvolutionBwdFilterAlgo_t)a, &ws);
    return st == CUDNN_STATUS_SUCCESS ? ws : (size_t)-1;
}

// Heuristic candidates of op, best first: algorithm, math type, determinism
// (none when cuDNN has no heuristics for the configuration: the caller's
// fallbacks are then tried).
typedef struct {
    int algo;
    cudnnMathType_t math;
    int deterministic;
} candidate;

// The candidates of cuDNN's answer r[0..got) (any of its three perf types).
template <typename Perf>
static int candidates_of(const Perf *r, int got, candidate *out)
{
    for (int i = 0; i < got; i++)
        out[i] = {r[i].status == CUDNN_STATUS_SUCCESS ? (int)r[i].algo : -1, r[i].mathType,
                  r[i].determinism == CUDNN_DETERMINISTIC};
    return got;
}

static int heuristics(cuda_ctx *ctx, cuda_conv_plan *p, int op, candidate *out, int cap)
{
    int got = 0;
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[16];
        if (cudnnGetConvolutionForwardAlgorithm_v7(ctx->cudnn, p->xd, p->wd, p->cd[op], p->yd,
                                                   cap, &got, r) != CUDNN_STATUS_SUCCESS)
            return 0;
        return candidates_of(r, got, out);
    }
    if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[16];
        if (cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx->cudnn, p->wd, p->yd, p->cd[op], p->xd,
                                                        cap, &got, r) != CUDNN_STATUS_SUCCESS)
            return 0;
        return candidates_of(r, got, out);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t r[16];
    if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx->cudnn, p->xd, p->yd, p->cd[op], p->wd,
                                                      cap, &got, r) != CUDNN_STATUS_SUCCESS)
        return 0;
    return candidates_of(r, got, out);
}

static void grow_workspace(cuda_ctx *ctx, size_t bytes)
{
    if (bytes <= ctx->workspace_bytes)
        return;
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    if (ctx->workspace)
        CUDA_CHECK(cudaFree(ctx->workspace));
    ctx->workspace = NULL;
    CUDA_CHECK(cudaMalloc(&ctx->workspace, bytes));
    ctx->workspace_bytes = bytes;
}

static const char *const op_names[3] = {"cudnnConvolutionForward",
                                        "cudnnConvolutionBackwardData",
                                        "cudnnConvolutionBackwardFilter"};

// One cuDNN call of op with its chosen (or a candidate) algorithm: forward reads
// x, w and writes y; data gradient reads y (dy), w and writes x (dx, beta: keep);
// filter gradient reads x, y (dy) and writes w (dw).
static cudnnStatus_t exec_op(cuda_ctx *ctx, cuda_conv_plan *p, int op, const choice *c,
                             const void *x, const void *y, const void *w, void *out, float beta)
{
    const float one = 1.0f;
    if (op == OP_FWD)
        return cudnnConvolutionForward(ctx->cudnn, &one, p->xd, x, p->wd, w, p->cd[op],
                                       (cudnnConvolutionFwdAlgo_t)c->algo, ctx->workspace, c->ws,
                                       &beta, p->yd, out);
    if (op == OP_BWD_DATA)
        return cudnnConvolutionBackwardData(ctx->cudnn, &one, p->wd, w, p->yd, y, p->cd[op],
                                            (cudnnConvolutionBwdDataAlgo_t)c->algo,
                                            ctx->workspace, c->ws, &beta, p->xd, out);
    return cudnnConvolutionBackwardFilter(ctx->cudnn, &one, p->xd, x, p->yd, y, p->cd[op],
                                          (cudnnConvolutionBwdFilterAlgo_t)c->algo,
                                          ctx->workspace, c->ws, &beta, p->wd, out);
}

// Chooses op's algorithm once per plan: from the heuristics, best first, the
// first deterministic one whose workspace fits and that runs a trial call on
// scratch tensors (the workspace query does not catch every unsupported
// combination). A bf16 plan that nothing runs for falls back to tf32 with a
// warning; an fp32 or tf32 one is fatal.
static void ensure_op(cuda_ctx *ctx, cuda_conv_plan *p, int op)
{
    if (p->chosen[op] > 0)
        return;
    const bk_conv *d = &p->d;
    const cudnnMathType_t want = math_of(p->prec);
    candidate c[16 + 2];
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[op], want));
    int n = heuristics(ctx, p, op, c, 16);
    // the deterministic algorithm every configuration has, in case the
    // heuristics offer none that fits
    int fallback = op == OP_FWD        ? (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
                   : op == OP_BWD_DATA ? (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
                                       : (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
    c[n++] = {fallback, want, 1};
    c[n++] = {fallback, CUDNN_FMA_MATH, 1};

    // zeroed trial operands x, y, w
    const size_t es = p->prec == PRECISION_BF16 ? sizeof(bf16) : sizeof(float);
    const size_t rows = (size_t)d->n * d->h * d->w;
    const size_t tbytes[3] = {rows * d->cin * es, rows * d->cout * es,
                              (size_t)d->cout * d->cin * 9 * es};
    void *t[3];
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMalloc(&t[i], tbytes[i]));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMemsetAsync(t[i], 0, tbytes[i], ctx->stream));
    void *const tx = t[0], *const ty = t[1], *const tw = t[2];
    void *out = op == OP_FWD ? ty : op == OP_BWD_DATA ? tx : tw;
    cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
    for (int i = 0; i < n; i++) {
        if (c[i].algo < 0 || !c[i].deterministic)
            continue;
        // fp32 must not run tensor-core (TF32) kernels, whatever math the
        // heuristics would have picked
        choice ch = {c[i].algo, p->prec == PRECISION_FP32 ? CUDNN_FMA_MATH : c[i].math, 0};
        CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[op], ch.math));
        ch.ws = ws_query(ctx, p, op, ch.algo);
        if (ch.ws == (size_t)-1 || ch.ws > WORKSPACE_CAP)
            continue;
        grow_workspace(ctx, ch.ws);
        st = exec_op(ctx, p, op, &ch, tx, ty, tw, out, 0.0f);
        if (st == CUDNN_STATUS_SUCCESS) {
            p->ch[op] = ch;
            p->chosen[op] = 1;
            break;
        }
        // refusals are 2xxx (bad parameter) and 3xxx (not supported); anything
        // else is a real failure
        if ((int)st / 1000 != 2 && (int)st / 1000 != 3)
            break;
    }
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaFree(t[i]));
    if (p->chosen[op] > 0)
        return;
    if (p->prec == PRECISION_BF16 && ((int)st / 1000 == 2 || (int)st / 1000 == 3)) {
        glow_warn("cuda: cuDNN has no bf16 convolution for n=%d h=%d w=%d cin=%d cout=%d; "
                  "computing it in tf32",
                  d->n, d->h, d->w, d->cin, d->cout);
        p->prec = PRECISION_TF32;
        describe(p, CUDNN_DATA_FLOAT);
        for (int k = 0; k < 3; k++)
            p->chosen[k] = 0;
        ensure_op(ctx, p, op);
        return;
    }
    char why[256];
    snprintf(why, sizeof why,
             "%s; no deterministic algorithm runs for n=%d h=%d w=%d cin=%d cout=%d in %s",
             cudnnGetErrorString(st), d->n, d->h, d->w, d->cin, d->cout,
             glow_precision_name(p->prec));
    cuda_fail(op_names[op], why, __FILE__, __LINE__);
}

// The chosen algorithm of op on real operands; ensure_op has run.
static void run_op(cuda_ctx *ctx, cuda_conv_plan *p, int op, const void *x, const void *y,
                   const void *w, void *out, float beta)
{
    cudnnStatus_t st = exec_op(ctx, p, op, &p->ch[op], x, y, w, out, beta);
    if (st != CUDNN_STATUS_SUCCESS)
        cuda_fail(op_names[op], cudnnGetErrorString(st), __FILE__, __LINE__);
}

// ---- helpers ----

static const bf16 *to_bf16(cuda_ctx *ctx, int slot, const float *x, size_t n)
{
    bf16 *y = (bf16 *)cuda_scratch(ctx, slot, n * sizeof(bf16));
    LAUNCH(ctx, n, k_to_bf16, x, y, n);
    return y;
}

// The data-channel taps of w in KRSC (k = 3) or [cout, cin] (k = 1), as T.
template <typename T>
static const T *pack_w(cuda_ctx *ctx, int slot, const bk_conv *d, const float *w)
{
    const int kk = d->k * d->k;
    size_t n = (size_t)d->cout * d->cin * kk;
    T *wp = (T *)cuda_scratch(ctx, slot, n * sizeof(T));
    LAUNCH(ctx, n, k_pack_w<T>, w, wp, d->cout, d->cin, d->edge ? 1 : 0, kk);
    return wp;
}

static size_t rows_of(const bk_conv *d) { return (size_t)d->n * d->h * d->w; }

// C[m, n] (column-major, ldc) = op(A) op(B) + beta C; A and B are fp32, or bf16
// when bf, C is fp32.
static void gemm(cuda_ctx *ctx, int bf, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                 int k, const void *a, int lda, const void *b, int ldb, float beta, float *c,
                 int ldc)
{
    const float alpha = 1.0f;
    if (bf)
        CUBLAS_CHECK(cublasGemmEx(ctx->cublas, ta, tb, m, n, k, &alpha, a, CUDA_R_16BF, lda, b,
                                  CUDA_R_16BF, ldb, &beta, c, CUDA_R_32F, ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasSgemm(ctx->cublas, ta, tb, m, n, k, &alpha, (const float *)a, lda,
                                 (const float *)b, ldb, &beta, c, ldc));
}

// ---- the four operations ----

static void conv_fwd_post(backend *b, const bk_conv *d, const float *x, const float *w,
                          const float *bias, const float *logs, int relu, float *y)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    cuda_conv_plan *p = get_plan(ctx, d);
    if (!p->gemm)
        ensure_op(ctx, p, OP_FWD);
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d), nx = rows * d->cin, ny = rows * d->cout;
    const void *yc = y; // the convolution's own output, before edge and affine
    const void *xa = bf ? (const void *)to_bf16(ctx, CUDA_SCRATCH_BF16_X, x, nx) : x;
    if (p->gemm) {
        // Y^T (cout x rows) = W (cout x cin, stored as its transpose) X^T
        const void *wa = bf ? (const void *)pack_w<bf16>(ctx, CUDA_SCRATCH_BF16_W, d, w) : w;
        gemm(ctx, bf, CUBLAS_OP_T, CUBLAS_OP_N, d->cout, (int)rows, d->cin, wa, d->cin, xa,
             d->cin, 0.0f, y, d->cout);
    } else {
        const void *wp;
        void *out = y;
        if (bf) {
            wp = pack_w<bf16>(ctx, CUDA_SCRATCH_BF16_W, d, w);
            out = cuda_scratch(ctx, CUDA_SCRATCH_BF16_Y, ny * sizeof(bf16));
            yc = out;
        } else {
            wp = pack_w<float>(ctx, CUDA_SCRATCH_CONV_W, d, w);
        }
        run_op(ctx, p, OP_FWD, xa, NULL, wp, out, 0.0f);
    }
    const float *we = d->edge ? w : NULL;
    if (bf && !p->gemm)
        LAUNCH(ctx, ny, k_post<bf16>, (const bf16 *)yc, y, rows, d->h, d->w, d->cout, d->cin, we,
               bias, logs, relu);
    else if (we || logs)
        LAUNCH(ctx, ny, k_post<float>, (const float *)yc, y, rows, d->h, d->w, d->cout, d->cin, we,
               bias, logs, relu);
}

void cuda_conv_fwd(backend *b, const bk_conv *d, const float *x, const float *w, float *y)
{
    conv_fwd_post(b, d, x, w, NULL, NULL, 0, y);
}

void cuda_conv_fwd_affine(backend *b, const bk_conv *d, const float *x, const float *w,
                          const float *bias, const float *logs, int relu, float *y)
{
    conv_fwd_post(b, d, x, w, bias, logs, relu, y);
}

void cuda_conv_bwd_data(backend *b, const bk_conv *d, const float *dy, const float *w,
                        float *dx, int accumulate)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    cuda_conv_plan *p = get_plan(ctx, d);
    if (!p->gemm)
        ensure_op(ctx, p, OP_BWD_DATA);
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d), nx = rows * d->cin, ny = rows * d->cout;
    const float beta = accumulate ? 1.0f : 0.0f;
    const void *dya = bf ? (const void *)to_bf16(ctx, CUDA_SCRATCH_BF16_Y, dy, ny) : dy;
    if (p->gemm) {
        // dX^T (cin x rows) = W^T (cin x cout, stored as W) dY^T
        const void *wa = bf ? (const void *)pack_w<bf16>(ctx, CUDA_SCRATCH_BF16_W, d, w) : w;
        gemm(ctx, bf, CUBLAS_OP_N, CUBLAS_OP_N, d->cin, (int)rows, d->cout, wa, d->cin, dya,
             d->cout, beta, dx, d->cin);
        return;
    }
    if (!bf) {
        const float *wp = pack_w<float>(ctx, CUDA_SCRATCH_CONV_W, d, w);
        run_op(ctx, p, OP_BWD_DATA, NULL, dy, wp, dx, beta);
        return;
    }
    const bf16 *wp = pack_w<bf16>(ctx, CUDA_SCRATCH_BF16_W, d, w);
    bf16 *dxb = (bf16 *)cuda_scratch(ctx, CUDA_SCRATCH_BF16_X, nx * sizeof(bf16));
    run_op(ctx, p, OP_BWD_DATA, NULL, dya, wp, dxb, 0.0f);
    LAUNCH(ctx, nx, k_from_bf16, dxb, dx, nx, accumulate);
}

void cuda_conv_bwd_filter(backend *b, const bk_conv *d, const float *x, const float *dy,
                          float *dw)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    cuda_conv_plan *p = get_plan(ctx, d);
    if (!p->gemm)
        ensure_op(ctx, p, OP_BWD_W);
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d), nx = rows * d->cin, ny = rows * d->cout;
    const void *xa = x, *dya = dy;
    if (bf) {
        xa = to_bf16(ctx, CUDA_SCRATCH_BF16_X, x, nx);
        dya = to_bf16(ctx, CUDA_SCRATCH_BF16_Y, dy, ny);
    }
    if (p->gemm) {
        // dW^T (cin x cout) = X^T (cin x rows) dY (rows x cout)
        gemm(ctx, bf, CUBLAS_OP_N, CUBLAS_OP_T, d->cin, d->cout, (int)rows, xa, d->cin, dya,
             d->cout, 0.0f, dw, d->cin);
        return;
    }
    const size_t nw = (size_t)d->cout * d->cin * 9;
    void *dwp = bf ? cuda_scratch(ctx, CUDA_SCRATCH_BF16_W, nw * sizeof(bf16))
                   : cuda_scratch(ctx, CUDA_SCRATCH_CONV_W, nw * sizeof(float));
    run_op(ctx, p, OP_BWD_W, xa, dya, NULL, dwp, 0.0f);
    const int e = d->edge ? 1 : 0;
    if (bf)
        LAUNCH(ctx, nw, k_unpack_dw<bf16>, (const bf16 *)dwp, dw, d->cout, d->cin, e, 9);
    else
        LAUNCH(ctx, nw, k_unpack_dw<float>, (const float *)dwp, dw, d->cout, d->cin, e, 9);
    if (!d->edge)
        return;
    double *S = (double *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_AUX,
                                       (size_t)p->nb * d->cout * sizeof(double));
    const size_t ns = (size_t)p->nb * d->cout;
    LAUNCH(ctx, ns, k_edge_sum, dy, p->border, p->nb, d->n, (size_t)d->h * d->w, d->cout, S);
    const size_t nt = (size_t)d->cout * 9;
    LAUNCH(ctx, nt, k_edge_taps, S, p->border, p->nb, d->h, d->w, d->cout, d->cin, dw);
}

void cuda_conv_release(cuda_ctx *ctx)
{
    cuda_conv_plan *p = ctx->convs;
    while (p) {
        cuda_conv_plan *next = p->next;
        if (!p->gemm) {
            for (int op = 0; op < 3; op++)
                CUDNN_CHECK(cudnnDestroyConvolutionDescriptor(p->cd[op]));
            CUDNN_CHECK(cudnnDestroyFilterDescriptor(p->wd));
            CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->yd));
            CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->xd));
        }
        if (p->border)
            CUDA_CHECK(cudaFree(p->border));
        free(p);
        p = next;
    }
    ctx->convs = NULL;
}
