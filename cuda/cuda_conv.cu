// Convolutions: 3x3 through cuDNN, 1x1 through cuBLAS (an NHWC 1x1 conv is the
// GEMM Y[rows, Cout] = X[rows, Cin] W^T).
//
// Weights arrive in PyTorch KCRS order, possibly with the edge channel as the
// last input channel. Each call packs the data-channel taps into the filter the
// chosen algorithm takes, in a scratch buffer; the edge channel is handled as on
// the CPU: its forward contribution is the sum of the edge taps that fall on the
// padding, added at border pixels (fused with the affine + ReLU of
// conv_fwd_affine), and its filter gradient sums dy over those border pixels in
// double, in the CPU's order, so it is bit-identical.
//
// Per shape and precision a plan keeps the descriptors and, per operation, the
// way it runs, chosen once on its first call. The ways, in order (the first that
// has a deterministic algorithm wins, so repeated runs give the same bits):
//   1. cuDNN on NHWC tensors with a KRSC filter (the backend's own layout);
//   2. cuDNN on NCHW tensors with a KCRS filter: the operands transposed by
//      kernels, the output transposed back in the kernel that applies edge,
//      affine and ReLU (no extra pass);
//   each first with the precision's preferred math (tf32, bf16: tensor cores),
//   then FMA math, which keeps fp32 semantics too;
//   3. im2col + cuBLAS GEMM in row chunks: our own kernels, deterministic for
//      every shape (the last resort, slower).
// Within a cuDNN way, the deterministic candidates of the heuristics whose
// workspace fits are tried on zeroed scratch tensors and the ones that run are
// timed with events (up to TIMED_MAX); the fastest is kept. One workspace serves
// every plan and grows only when a new plan needs more; scratch buffers grow
// likewise, so a training step with known shapes allocates nothing. When no way
// runs, the error names the operation, the shape, the precision and what each
// way answered.
//
// Precision (precision.h): fp32 restricts cuDNN to FMA kernels (its default math
// would allow TF32 on Ampere and later) and cuBLAS to pedantic fp32; tf32 allows
// tensor cores on fp32 data (CUDNN_TENSOR_OP_MATH, never ..._ALLOW_CONVERSION,
// which may convert to fp16 and lose fp32's range); bf16 rounds the operands to
// bf16 and accumulates and stores in fp32 on both paths: cuBLAS takes bf16
// operands and writes fp32, cuDNN gets fp32 tensors holding the bf16-rounded
// values (exact in tf32, so tensor-op math multiplies them exactly) and writes fp32.
#include <cuda_bf16.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ew_math.h"
#include "backend/net_layers.h"
#include "cuda_internal.h"

enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_W = 2 };
// how an op of a 3x3 plan runs (the order they are tried in)
enum { LAY_NHWC = 0, LAY_NCHW = 1, LAY_GEMM = 2 };
// the filter layouts the ways take: KRSC (NHWC, im2col forward), KCRS (NCHW),
// and [cin][tap][cout] with the taps reversed (im2col data gradient)
enum { PACK_KRSC = 0, PACK_KCRS = 1, PACK_TRANS = 2 };

#define WORKSPACE_CAP ((size_t)1 << 30)
#define TIMED_MAX 3                      // deterministic candidates timed per way
#define COL_CHUNK_BYTES ((size_t)64 << 20) // the im2col matrix of one chunk of rows

typedef __nv_bfloat16 bf16;

typedef struct {
    int lay;              // LAY_*
    int algo;             // cuDNN's (LAY_NHWC, LAY_NCHW)
    cudnnMathType_t math;
    size_t ws;
} choice;

struct cuda_conv_plan {
    bk_conv d;
    glow_precision prec; // the precision asked for (the cache key)
    int gemm;            // 1x1: cuBLAS, no cuDNN descriptors
    cudnnTensorDescriptor_t xd[2], yd[2]; // per cuDNN layout (LAY_NHWC, LAY_NCHW)
    cudnnFilterDescriptor_t wd[2];
    cudnnConvolutionDescriptor_t cd[3];
    choice ch[3];  // the way of each op,
    int chosen[3]; // once chosen (1)
    int nb;           // border pixels (edge only)
    int *border;      // device: their indices i*W + j, in the CPU's row-major order
    int *border_host; // the host copy it is uploaded from (kept until the plan goes)
    cuda_conv_plan *next;
};

// ---- kernels ----

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(bf16 v) { return __bfloat162float(v); }
__device__ __forceinline__ void from_f(float *p, float v) { *p = v; }
__device__ __forceinline__ void from_f(bf16 *p, float v) { *p = __float2bfloat16_rn(v); }
// an operand as the precision takes it: v, or v rounded to bf16 (bf)
__device__ __forceinline__ float operand(float v, int bf)
{
    return bf ? __bfloat162float(__float2bfloat16_rn(v)) : v;
}

// The KCRS index (cin + e input channels, kk taps) of element i of the packed
// filter of the cin data channels, in layout `mode`.
__device__ __forceinline__ size_t kcrs_of(size_t i, int mode, int cout, int cin, int e, int kk)
{
    int o, c, t;
    if (mode == PACK_KRSC) {
        c = (int)(i % cin);
        size_t r = i / cin;
        t = (int)(r % kk);
        o = (int)(r / kk);
    } else if (mode == PACK_KCRS) {
        t = (int)(i % kk);
        size_t r = i / kk;
        c = (int)(r % cin);
        o = (int)(r / cin);
    } else { // PACK_TRANS: [c][kk - 1 - t][o]
        o = (int)(i % cout);
        size_t r = i / cout;
        t = kk - 1 - (int)(r % kk);
        c = (int)(r / kk);
    }
    return ((size_t)o * (cin + e) + c) * kk + t;
}

// KCRS with cin + e input channels -> the data channels in layout mode, as T
// (bf: rounded to bf16 values)
template <typename T>
__global__ void k_pack_w(const float *w, T *wp, int cout, int cin, int e, int kk, int mode, int bf)
{
    size_t n = (size_t)cout * kk * cin;
    GRID_STRIDE(i, n) from_f(&wp[i], operand(w[kcrs_of(i, mode, cout, cin, e, kk)], bf));
}

// a gradient in layout mode (KRSC or KCRS) -> the data-channel part of the KCRS gradient
__global__ void k_unpack_dw(const float *dwp, float *dw, int cout, int cin, int e, int kk, int mode)
{
    size_t n = (size_t)cout * kk * cin;
    GRID_STRIDE(i, n) dw[kcrs_of(i, mode, cout, cin, e, kk)] = dwp[i];
}

__global__ void k_to_bf16(const float *x, bf16 *y, size_t n)
{
    GRID_STRIDE(i, n) y[i] = __float2bfloat16_rn(x[i]);
}

// y = x rounded to bf16 values (fp32)
__global__ void k_round_bf16(const float *x, float *y, size_t n)
{
    GRID_STRIDE(i, n) y[i] = operand(x[i], 1);
}

// NHWC [n][hw][c] -> NCHW [n][c][hw] (bf: rounded to bf16 values)
__global__ void k_to_nchw(const float *x, float *y, int n, size_t hw, int c, int bf)
{
    const size_t total = (size_t)n * hw * c;
    GRID_STRIDE(i, total)
    {
        size_t p = i % hw, r = i / hw;
        int ch = (int)(r % c);
        size_t img = r / c;
        y[i] = operand(x[(img * hw + p) * c + ch], bf);
    }
}

// NCHW -> NHWC; accumulate: y +=
__global__ void k_from_nchw(const float *x, float *y, int n, size_t hw, int c, int accumulate)
{
    const size_t total = (size_t)n * hw * c;
    GRID_STRIDE(i, total)
    {
        int ch = (int)(i % c);
        size_t r = i / c, p = r % hw, img = r / hw;
        float v = x[(img * c + ch) * hw + p];
        y[i] = accumulate ? y[i] + v : v;
    }
}

// col[r - r0][t * c + ch] = x at pixel r moved by tap t (ky - 1, kx - 1), 0 off the
// image, for the rows r0 .. r0 + nr of NHWC x [rows, c]
__global__ void k_im2col(const float *x, float *col, size_t r0, size_t nr, int h, int wd, int c)
{
    const size_t total = nr * 9 * (size_t)c, hw = (size_t)h * wd;
    GRID_STRIDE(i, total)
    {
        int ch = (int)(i % c);
        size_t q = i / c;
        int t = (int)(q % 9);
        size_t r = r0 + q / 9, img = r / hw;
        int pix = (int)(r % hw), yy = pix / wd + t / 3 - 1, xx = pix % wd + t % 3 - 1;
        col[i] = yy >= 0 && yy < h && xx >= 0 && xx < wd
                     ? x[((img * h + yy) * wd + xx) * (size_t)c + ch]
                     : 0.0f;
    }
}

// y = post(yc), yc in NHWC or (nchw) NCHW: + edge taps at border pixels (when w is
// given; bf: the taps rounded to bf16 values, as the other taps), then the affine
// (when logs is given, as on the CPU; a null bias is zero) with the CPU's clamp, in
// the CPU's order of operations. yc may be y (NHWC).
__global__ void k_post(const float *yc, int nchw, float *y, size_t rows, int h, int wd, int cout,
                       int cin, const float *w, int bf, const float *bias, const float *logs,
                       int relu)
{
    const size_t n = rows * cout, hw = (size_t)h * wd;
    const float lo = relu ? 0.0f : -INFINITY;
    GRID_STRIDE(i, n)
    {
        int o = (int)(i % cout);
        size_t r = i / cout;
        int pix = (int)(r % hw);
        int pi = pix / wd, pj = pix % wd;
        float v = nchw ? yc[((r / hw) * cout + o) * hw + pix] : yc[i];
        if (w && (pi == 0 || pj == 0 || pi == h - 1 || pj == wd - 1)) {
            const float *we = w + ((size_t)o * (cin + 1) + cin) * 9;
            float s = 0;
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++) {
                    int yy = pi + ky - 1, xx = pj + kx - 1;
                    if (yy < 0 || yy >= h || xx < 0 || xx >= wd)
                        s += operand(we[ky * 3 + kx], bf);
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

// S[p, o] = sum over images (in order, in double) of dy at border pixel p (bf: dy
// rounded to bf16 values, as the convolution takes it)
__global__ void k_edge_sum(const float *dy, const int *border, int nb, int nimg, size_t hw,
                           int cout, int bf, double *S)
{
    const size_t n = (size_t)nb * cout;
    GRID_STRIDE(i, n)
    {
        int o = (int)(i % cout);
        int p = (int)(i / cout);
        double s = 0;
        for (int m = 0; m < nimg; m++)
            s += operand(dy[((size_t)m * hw + border[p]) * cout + o], bf);
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

static const char *const op_names[3] = {"cudnnConvolutionForward",
                                        "cudnnConvolutionBackwardData",
                                        "cudnnConvolutionBackwardFilter"};
static const char *const op_words[3] = {"forward", "data gradient", "filter gradient"};
static const char *const lay_names[3] = {"NHWC", "NCHW", "im2col + cuBLAS"};

static const char *math_name(cudnnMathType_t m)
{
    switch (m) {
    case CUDNN_TENSOR_OP_MATH:
        return "tensor-op";
    case CUDNN_FMA_MATH:
        return "FMA";
    default:
        return "other";
    }
}

static cuda_conv_plan *get_plan(cuda_ctx *ctx, const bk_conv *d)
{
    for (cuda_conv_plan *p = ctx->convs; p; p = p->next)
        if (p->prec == ctx->precision && memcmp(&p->d, d, sizeof *d) == 0)
            return p;
    if ((d->k != 1 && d->k != 3) || (d->edge && d->k != 3) || d->n < 1 || d->h < 1 ||
        d->w < 1 || d->cin < 1 || d->cout < 1 ||
        (double)d->n * d->h * d->w * (d->cin > d->cout ? d->cin : d->cout) > 2147483647.0)
        glow_die(1, "backend: convolution n=%d h=%d w=%d cin=%d cout=%d k=%d edge=%d is not "
                    "supported",
                 d->n, d->h, d->w, d->cin, d->cout, d->k, d->edge);
    cuda_conv_plan *p = (cuda_conv_plan *)xcalloc(1, sizeof *p);
    p->d = *d;
    p->prec = ctx->precision;
    p->gemm = d->k == 1;
    if (!p->gemm) {
        // fp32 tensors in every precision (bf16 holds bf16 values in them)
        for (int l = 0; l < 2; l++) {
            const cudnnTensorFormat_t f = l == LAY_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
            CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd[l]));
            CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd[l]));
            CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd[l]));
            CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->xd[l], f, CUDNN_DATA_FLOAT, d->n, d->cin,
                                                   d->h, d->w));
            CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->yd[l], f, CUDNN_DATA_FLOAT, d->n, d->cout,
                                                   d->h, d->w));
            CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd[l], CUDNN_DATA_FLOAT, f, d->cout, d->cin,
                                                   3, 3));
        }
        for (int op = 0; op < 3; op++) {
            CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd[op]));
            CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd[op], 1, 1, 1, 1, 1, 1,
                                                        CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT));
        }
    }
    if (d->edge) {
        // uploaded in the stream's order from a host copy that lives as long as the
        // plan: the kernels of this stream that read it come after the copy
        p->border_host = (int *)xcalloc((size_t)2 * (d->h + d->w), sizeof *p->border_host);
        for (int i = 0; i < d->h; i++)
            for (int j = 0; j < d->w; j++)
                if (i == 0 || j == 0 || i == d->h - 1 || j == d->w - 1)
                    p->border_host[p->nb++] = i * d->w + j;
        const size_t bytes = (size_t)p->nb * sizeof *p->border_host;
        CUDA_CHECK(cudaMalloc(&p->border, bytes));
        CUDA_CHECK(cudaMemcpyAsync(p->border, p->border_host, bytes, cudaMemcpyHostToDevice,
                                   ctx->stream));
    }
    p->next = ctx->convs;
    ctx->convs = p;
    return p;
}

// Workspace bytes of op with algorithm a in layout lay under the descriptor's math
// type, or (size_t)-1 when cuDNN refuses that combination (*st: its answer).
static size_t ws_query(cuda_ctx *ctx, cuda_conv_plan *p, int op, int lay, int a,
                       cudnnStatus_t *out)
{
    size_t ws = 0;
    cudnnStatus_t st;
    if (op == OP_FWD)
        st = cudnnGetConvolutionForwardWorkspaceSize(ctx->cudnn, p->xd[lay], p->wd[lay], p->cd[op],
                                                     p->yd[lay], (cudnnConvolutionFwdAlgo_t)a, &ws);
    else if (op == OP_BWD_DATA)
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(ctx->cudnn, p->wd[lay], p->yd[lay],
                                                          p->cd[op], p->xd[lay],
                                                          (cudnnConvolutionBwdDataAlgo_t)a, &ws);
    else
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx->cudnn, p->xd[lay], p->yd[lay],
                                                            p->cd[op], p->wd[lay],
                                                            (cudnnConvolutionBwdFilterAlgo_t)a, &ws);
    *out = st;
    return st == CUDNN_STATUS_SUCCESS ? ws : (size_t)-1;
}

// Heuristic candidates of op, best first: algorithm (-1: refused) and determinism
// (none when cuDNN has no heuristics for the configuration: the caller's fallback
// algorithm is then tried).
typedef struct {
    int algo;
    int deterministic;
} candidate;

// The candidates of cuDNN's answer r[0..got) (any of its three perf types).
template <typename Perf>
static int candidates_of(const Perf *r, int got, candidate *out)
{
    for (int i = 0; i < got; i++)
        out[i] = {r[i].status == CUDNN_STATUS_SUCCESS ? (int)r[i].algo : -1,
                  r[i].determinism == CUDNN_DETERMINISTIC};
    return got;
}

static int heuristics(cuda_ctx *ctx, cuda_conv_plan *p, int op, int lay, candidate *out, int cap)
{
    int got = 0;
    if (op == OP_FWD) {
        cudnnConvolutionFwdAlgoPerf_t r[16];
        if (cudnnGetConvolutionForwardAlgorithm_v7(ctx->cudnn, p->xd[lay], p->wd[lay], p->cd[op],
                                                   p->yd[lay], cap, &got, r) != CUDNN_STATUS_SUCCESS)
            return 0;
        return candidates_of(r, got, out);
    }
    if (op == OP_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t r[16];
        if (cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx->cudnn, p->wd[lay], p->yd[lay],
                                                        p->cd[op], p->xd[lay], cap, &got,
                                                        r) != CUDNN_STATUS_SUCCESS)
            return 0;
        return candidates_of(r, got, out);
    }
    cudnnConvolutionBwdFilterAlgoPerf_t r[16];
    if (cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx->cudnn, p->xd[lay], p->yd[lay], p->cd[op],
                                                      p->wd[lay], cap, &got,
                                                      r) != CUDNN_STATUS_SUCCESS)
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

// One cuDNN call of op with a choice of a cuDNN layout: forward reads x, w and
// writes y; data gradient reads y (dy), w and writes x (dx, beta: keep); filter
// gradient reads x, y (dy) and writes w (dw).
static cudnnStatus_t exec_op(cuda_ctx *ctx, cuda_conv_plan *p, int op, const choice *c,
                             const void *x, const void *y, const void *w, void *out, float beta)
{
    const float one = 1.0f;
    const int l = c->lay;
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[op], c->math));
    if (op == OP_FWD)
        return cudnnConvolutionForward(ctx->cudnn, &one, p->xd[l], x, p->wd[l], w, p->cd[op],
                                       (cudnnConvolutionFwdAlgo_t)c->algo, ctx->workspace, c->ws,
                                       &beta, p->yd[l], out);
    if (op == OP_BWD_DATA)
        return cudnnConvolutionBackwardData(ctx->cudnn, &one, p->wd[l], w, p->yd[l], y, p->cd[op],
                                            (cudnnConvolutionBwdDataAlgo_t)c->algo,
                                            ctx->workspace, c->ws, &beta, p->xd[l], out);
    return cudnnConvolutionBackwardFilter(ctx->cudnn, &one, p->xd[l], x, p->yd[l], y, p->cd[op],
                                          (cudnnConvolutionBwdFilterAlgo_t)c->algo,
                                          ctx->workspace, c->ws, &beta, p->wd[l], out);
}

// ---- the im2col + cuBLAS way ----

// C[m, n] (column-major, ldc) = op(A) op(B) + beta C, fp32 (the handle's math
// mode: pedantic fp32, or tf32)
static cublasStatus_t sgemm(cuda_ctx *ctx, cublasOperation_t ta, cublasOperation_t tb, int m,
                            int n, int k, const float *a, int lda, const float *b, int ldb,
                            float beta, float *c, int ldc)
{
    const float alpha = 1.0f;
    return cublasSgemm(ctx->cublas, ta, tb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc);
}

// Rows of one im2col chunk of c channels.
static size_t col_rows(const bk_conv *d, int c)
{
    const size_t rows = (size_t)d->n * d->h * d->w;
    size_t r = COL_CHUNK_BYTES / ((size_t)9 * c * sizeof(float));
    return r < 1 ? 1 : r > rows ? rows : r;
}

// op as GEMMs over im2col chunks (rows in a fixed order, so deterministic): the
// forward y = col(x) Wk^T (Wk KRSC [cout][9 cin]); the data gradient
// dx (+)= col(dy) Wt^T (Wt [cin][9 cout], the taps reversed); the filter gradient
// dWk = sum over chunks of dy^T col(x). Operands NHWC, already in the precision's
// values. The first refused GEMM's status, or success.
static cublasStatus_t gemm_op(cuda_ctx *ctx, const bk_conv *d, int op, const float *x,
                              const float *dy, const float *wp, float *out, float beta)
{
    const size_t rows = (size_t)d->n * d->h * d->w;
    const int cin = op == OP_BWD_DATA ? d->cout : d->cin; // channels of the im2col input
    const int cout = op == OP_BWD_DATA ? d->cin : d->cout;
    const float *in = op == OP_BWD_DATA ? dy : x;
    const size_t step = col_rows(d, cin);
    float *col = (float *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_COL, step * 9 * cin * sizeof(float));
    const int kc = 9 * cin;
    for (size_t r0 = 0; r0 < rows; r0 += step) {
        const size_t nr = rows - r0 < step ? rows - r0 : step;
        LAUNCH(ctx, nr * kc, k_im2col, in, col, r0, nr, d->h, d->w, cin);
        cublasStatus_t st;
        if (op == OP_BWD_W)
            // dWk^T (9cin x cout, column-major) (+)= col^T (9cin x nr) dy (nr x cout)
            st = sgemm(ctx, CUBLAS_OP_N, CUBLAS_OP_T, kc, cout, (int)nr, col, kc, dy + r0 * cout,
                       cout, r0 ? 1.0f : 0.0f, out, kc);
        else
            // Y^T (cout x nr) = W (cout x 9cin, stored as its transpose) col^T
            st = sgemm(ctx, CUBLAS_OP_T, CUBLAS_OP_N, cout, (int)nr, kc, wp, kc, col, kc, beta,
                       out + r0 * cout, cout);
        if (st != CUBLAS_STATUS_SUCCESS)
            return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}

// ---- choosing the way of an op ----

// Times one call of c on the trial operands: the elapsed time of the stream
// between two events (ms), or -1 when it does not run (*st: cuDNN's refusal).
static float time_candidate(cuda_ctx *ctx, cuda_conv_plan *p, int op, const choice *c,
                            void *const t[3], cudnnStatus_t *st)
{
    void *out = op == OP_FWD ? t[1] : op == OP_BWD_DATA ? t[0] : t[2];
    // an untimed first call: cuDNN refuses here what the workspace query let
    // through, and loads its kernels
    *st = exec_op(ctx, p, op, c, t[0], t[1], t[2], out, 0.0f);
    if (*st != CUDNN_STATUS_SUCCESS)
        return -1;
    CUDA_CHECK(cudaEventRecord(ctx->ev[0], ctx->stream));
    *st = exec_op(ctx, p, op, c, t[0], t[1], t[2], out, 0.0f);
    CUDA_CHECK(cudaEventRecord(ctx->ev[1], ctx->stream));
    CUDA_CHECK(cudaEventSynchronize(ctx->ev[1]));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, ctx->ev[0], ctx->ev[1]));
    return *st == CUDNN_STATUS_SUCCESS ? ms : -1;
}

// One cuDNN way (layout, math) for op: the fastest of its deterministic candidates
// that run, into *best; for the message, the number of deterministic candidates
// and the last refusal.
static int try_cudnn(cuda_ctx *ctx, cuda_conv_plan *p, int op, int lay, cudnnMathType_t math,
                     void *const t[3], choice *best, int *tried, const char **refusal)
{
    candidate c[16 + 1];
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[op], math));
    int n = heuristics(ctx, p, op, lay, c, 16);
    // the deterministic algorithm every configuration has, in case the heuristics
    // offer none that fits
    c[n++] = {op == OP_FWD        ? (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
              : op == OP_BWD_DATA ? (int)CUDNN_CONVOLUTION_BWD_DATA_ALGO_1
                                  : (int)CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1,
              1};
    int ran = 0;
    float best_ms = 0;
    for (int i = 0; i < n && ran < TIMED_MAX; i++) {
        if (c[i].algo < 0 || !c[i].deterministic)
            continue;
        int seen = 0;
        for (int j = 0; j < i; j++)
            seen |= c[j].algo == c[i].algo && c[j].deterministic;
        if (seen)
            continue;
        choice ch = {lay, c[i].algo, math, 0};
        CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd[op], math));
        cudnnStatus_t st;
        ++*tried;
        ch.ws = ws_query(ctx, p, op, lay, ch.algo, &st);
        if (ch.ws == (size_t)-1) {
            *refusal = cudnnGetErrorString(st);
            continue;
        }
        if (ch.ws > WORKSPACE_CAP) {
            *refusal = "a workspace over 1 GiB";
            continue;
        }
        grow_workspace(ctx, ch.ws);
        const float ms = time_candidate(ctx, p, op, &ch, t, &st);
        if (ms < 0) {
            // refusals are 2xxx (bad parameter) and 3xxx (not supported); anything
            // else is a real failure
            if ((int)st / 1000 != 2 && (int)st / 1000 != 3)
                cuda_fail(op_names[op], cudnnGetErrorString(st), __FILE__, __LINE__);
            *refusal = cudnnGetErrorString(st);
            continue;
        }
        if (ran++ == 0 || ms < best_ms) {
            *best = ch;
            best_ms = ms;
        }
    }
    return ran > 0;
}

// Chooses op's way once per plan (the order of the file's head comment).
static void ensure_op(cuda_ctx *ctx, cuda_conv_plan *p, int op)
{
    if (p->chosen[op])
        return;
    const bk_conv *d = &p->d;
    // zeroed trial operands x, y, w (fp32 in every precision and layout)
    const size_t rows = (size_t)d->n * d->h * d->w;
    const size_t tbytes[3] = {rows * d->cin * sizeof(float), rows * d->cout * sizeof(float),
                              (size_t)d->cout * d->cin * 9 * sizeof(float)};
    void *t[3];
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMalloc(&t[i], tbytes[i]));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaMemsetAsync(t[i], 0, tbytes[i], ctx->stream));
    const cudnnMathType_t maths[2] = {p->prec == PRECISION_FP32 ? CUDNN_FMA_MATH
                                                                : CUDNN_TENSOR_OP_MATH,
                                      CUDNN_FMA_MATH};
    const int nmath = p->prec == PRECISION_FP32 ? 1 : 2;
    char what[1024];
    size_t at = 0;
    int found = 0;
    for (int m = 0; m < nmath && !found; m++)
        for (int lay = LAY_NHWC; lay <= LAY_NCHW && !found; lay++) {
            int tried = 0;
            const char *refusal = "-";
            found = try_cudnn(ctx, p, op, lay, maths[m], t, &p->ch[op], &tried, &refusal);
            if (!found && at < sizeof what)
                at += (size_t)snprintf(what + at, sizeof what - at,
                                       "%s%s with %s math: %d deterministic candidate%s refused "
                                       "(last: %s)",
                                       at ? "; " : "", lay_names[lay], math_name(maths[m]), tried,
                                       tried == 1 ? "" : "s", refusal);
        }
    cublasStatus_t gst = CUBLAS_STATUS_SUCCESS;
    if (!found) {
        // the last resort: our im2col kernels and cuBLAS, tried on the zero operands
        const float *x = (const float *)t[0], *dy = (const float *)t[1], *w = (const float *)t[2];
        float *out = (float *)(op == OP_FWD ? t[1] : op == OP_BWD_DATA ? t[0] : t[2]);
        gst = gemm_op(ctx, d, op, x, dy, w, out, 0.0f);
        found = gst == CUBLAS_STATUS_SUCCESS;
        if (found)
            p->ch[op] = {LAY_GEMM, -1, CUDNN_FMA_MATH, 0};
    }
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    for (int i = 0; i < 3; i++)
        CUDA_CHECK(cudaFree(t[i]));
    if (found) {
        p->chosen[op] = 1;
        if (p->ch[op].lay != LAY_NHWC)
            glow_warn("cuda: cuDNN has no deterministic NHWC %s for n=%d h=%d w=%d cin=%d "
                      "cout=%d in %s; using %s",
                      op_words[op], d->n, d->h, d->w, d->cin, d->cout,
                      glow_precision_name(p->prec), lay_names[p->ch[op].lay]);
        return;
    }
    char why[1400];
    snprintf(why, sizeof why,
             "no deterministic algorithm runs for n=%d h=%d w=%d cin=%d cout=%d%s in %s; tried "
             "cuDNN %s; then im2col + cuBLAS: %s",
             d->n, d->h, d->w, d->cin, d->cout, d->edge ? " (edge)" : "",
             glow_precision_name(p->prec), what, cublasGetStatusString(gst));
    cuda_fail(op_names[op], why, __FILE__, __LINE__);
}

// The chosen cuDNN algorithm of op on real operands; ensure_op has run.
static void run_op(cuda_ctx *ctx, cuda_conv_plan *p, int op, const void *x, const void *y,
                   const void *w, void *out, float beta)
{
    cudnnStatus_t st = exec_op(ctx, p, op, &p->ch[op], x, y, w, out, beta);
    if (st != CUDNN_STATUS_SUCCESS)
        cuda_fail(op_names[op], cudnnGetErrorString(st), __FILE__, __LINE__);
}

static void run_gemm(cuda_ctx *ctx, const bk_conv *d, int op, const float *x, const float *dy,
                     const float *wp, float *out, float beta)
{
    cublasStatus_t st = gemm_op(ctx, d, op, x, dy, wp, out, beta);
    if (st != CUBLAS_STATUS_SUCCESS)
        cuda_fail("cublasSgemm (im2col convolution)", cublasGetStatusString(st), __FILE__,
                  __LINE__);
}

// ---- helpers ----

static size_t rows_of(const bk_conv *d) { return (size_t)d->n * d->h * d->w; }

static const bf16 *to_bf16(cuda_ctx *ctx, int slot, const float *x, size_t n)
{
    bf16 *y = (bf16 *)cuda_scratch(ctx, slot, n * sizeof(bf16));
    LAUNCH(ctx, n, k_to_bf16, x, y, n);
    return y;
}

// An NHWC operand of c channels as way lay takes it, in the precision's values:
// x itself, a bf16-rounded copy, or an NCHW copy (in scratch `slot`).
static const float *prep_in(cuda_ctx *ctx, const cuda_conv_plan *p, int lay, const float *x,
                            int c, int slot)
{
    const int bf = p->prec == PRECISION_BF16;
    const size_t n = rows_of(&p->d) * c;
    if (lay != LAY_NCHW && !bf)
        return x;
    float *y = (float *)cuda_scratch(ctx, slot, n * sizeof(float));
    if (lay == LAY_NCHW)
        LAUNCH(ctx, n, k_to_nchw, x, y, p->d.n, (size_t)p->d.h * p->d.w, c, bf);
    else
        LAUNCH(ctx, n, k_round_bf16, x, y, n);
    return y;
}

// The data-channel taps of w in layout mode, as T (k = 1: [cout, cin]).
template <typename T>
static const T *pack_w(cuda_ctx *ctx, int slot, const bk_conv *d, const float *w, int mode, int bf)
{
    const int kk = d->k * d->k;
    size_t n = (size_t)d->cout * d->cin * kk;
    T *wp = (T *)cuda_scratch(ctx, slot, n * sizeof(T));
    LAUNCH(ctx, n, k_pack_w<T>, w, wp, d->cout, d->cin, d->edge ? 1 : 0, kk, mode, bf);
    return wp;
}

// C[m, n] (column-major, ldc) = op(A) op(B) + beta C for the 1x1 path; A and B are
// fp32, or bf16 when bf, C is fp32.
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
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d), ny = rows * d->cout;
    if (p->gemm) {
        // Y^T (cout x rows) = W (cout x cin, stored as its transpose) X^T
        const void *xa = bf ? (const void *)to_bf16(ctx, CUDA_SCRATCH_CONV_X, x, rows * d->cin) : x;
        const void *wa = bf ? (const void *)pack_w<bf16>(ctx, CUDA_SCRATCH_CONV_W, d, w, PACK_KRSC, 1)
                            : w;
        gemm(ctx, bf, CUBLAS_OP_T, CUBLAS_OP_N, d->cout, (int)rows, d->cin, wa, d->cin, xa, d->cin,
             0.0f, y, d->cout);
        if (logs)
            LAUNCH(ctx, ny, k_post, y, 0, y, rows, d->h, d->w, d->cout, d->cin, (const float *)NULL,
                   0, bias, logs, relu);
        return;
    }
    ensure_op(ctx, p, OP_FWD);
    const choice *c = &p->ch[OP_FWD];
    const float *xa = prep_in(ctx, p, c->lay, x, d->cin, CUDA_SCRATCH_CONV_X);
    const float *wp = pack_w<float>(ctx, CUDA_SCRATCH_CONV_W, d, w,
                                    c->lay == LAY_NCHW ? PACK_KCRS : PACK_KRSC, bf);
    // NCHW: the output transposed back by the epilogue kernel
    float *out = c->lay == LAY_NCHW ? (float *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_Y,
                                                            ny * sizeof(float))
                                    : y;
    if (c->lay == LAY_GEMM)
        run_gemm(ctx, d, OP_FWD, xa, NULL, wp, out, 0.0f);
    else
        run_op(ctx, p, OP_FWD, xa, NULL, wp, out, 0.0f);
    const float *we = d->edge ? w : NULL;
    if (c->lay == LAY_NCHW || we || logs)
        LAUNCH(ctx, ny, k_post, out, c->lay == LAY_NCHW, y, rows, d->h, d->w, d->cout, d->cin, we,
               bf, bias, logs, relu);
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

/* The layers one after the other (net_layers.h): on a GPU each convolution
 * already runs over the whole batch at once, and cuDNN's kernels read their
 * operands from the device's cache as well as they would in one fused call. */
void cuda_net_fwd(backend *b, const bk_net *n, const float *x, float *a1, float *a2, float *h)
{
    bk_net_fwd_layers(b, n, x, a1, a2, h);
}

void cuda_net_bwd(backend *b, const bk_net *n, const float *x, const float *a1, const float *a2,
                  const float *h, float *g_h, float *g_a2, float *g_a1, float *g_x, float *const dw[3],
                  float *const dbias[3], float *const dlogs[3])
{
    bk_net_bwd_layers(b, n, x, a1, a2, h, g_h, g_a2, g_a1, g_x, dw, dbias, dlogs);
}

void cuda_conv_bwd_data(backend *b, const bk_conv *d, const float *dy, const float *w,
                        float *dx, int accumulate)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    cuda_conv_plan *p = get_plan(ctx, d);
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d), nx = rows * d->cin;
    const float beta = accumulate ? 1.0f : 0.0f;
    if (p->gemm) {
        // dX^T (cin x rows) = W^T (cin x cout, stored as W) dY^T
        const void *dya = bf ? (const void *)to_bf16(ctx, CUDA_SCRATCH_CONV_Y, dy, rows * d->cout) : dy;
        const void *wa = bf ? (const void *)pack_w<bf16>(ctx, CUDA_SCRATCH_CONV_W, d, w, PACK_KRSC, 1)
                            : w;
        gemm(ctx, bf, CUBLAS_OP_N, CUBLAS_OP_N, d->cin, (int)rows, d->cout, wa, d->cin, dya,
             d->cout, beta, dx, d->cin);
        return;
    }
    ensure_op(ctx, p, OP_BWD_DATA);
    const choice *c = &p->ch[OP_BWD_DATA];
    const float *dya = prep_in(ctx, p, c->lay, dy, d->cout, CUDA_SCRATCH_CONV_Y);
    const int mode = c->lay == LAY_NCHW ? PACK_KCRS : c->lay == LAY_GEMM ? PACK_TRANS : PACK_KRSC;
    const float *wp = pack_w<float>(ctx, CUDA_SCRATCH_CONV_W, d, w, mode, bf);
    if (c->lay == LAY_NHWC) {
        run_op(ctx, p, OP_BWD_DATA, NULL, dya, wp, dx, beta);
    } else if (c->lay == LAY_GEMM) {
        run_gemm(ctx, d, OP_BWD_DATA, NULL, dya, wp, dx, beta);
    } else {
        float *dxs = (float *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_X, nx * sizeof(float));
        run_op(ctx, p, OP_BWD_DATA, NULL, dya, wp, dxs, 0.0f);
        LAUNCH(ctx, nx, k_from_nchw, dxs, dx, d->n, (size_t)d->h * d->w, d->cin, accumulate);
    }
}

void cuda_conv_bwd_filter(backend *b, const bk_conv *d, const float *x, const float *dy,
                          float *dw)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    cuda_conv_plan *p = get_plan(ctx, d);
    const int bf = p->prec == PRECISION_BF16;
    const size_t rows = rows_of(d);
    if (p->gemm) {
        // dW^T (cin x cout) = X^T (cin x rows) dY (rows x cout)
        const void *xa = x, *dya = dy;
        if (bf) {
            xa = to_bf16(ctx, CUDA_SCRATCH_CONV_X, x, rows * d->cin);
            dya = to_bf16(ctx, CUDA_SCRATCH_CONV_Y, dy, rows * d->cout);
        }
        gemm(ctx, bf, CUBLAS_OP_N, CUBLAS_OP_T, d->cin, d->cout, (int)rows, xa, d->cin, dya,
             d->cout, 0.0f, dw, d->cin);
        return;
    }
    ensure_op(ctx, p, OP_BWD_W);
    const choice *c = &p->ch[OP_BWD_W];
    const float *xa = prep_in(ctx, p, c->lay, x, d->cin, CUDA_SCRATCH_CONV_X);
    const float *dya = prep_in(ctx, p, c->lay, dy, d->cout, CUDA_SCRATCH_CONV_Y);
    const size_t nw = (size_t)d->cout * d->cin * 9;
    float *dwp = (float *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_W, nw * sizeof(float));
    if (c->lay == LAY_GEMM)
        run_gemm(ctx, d, OP_BWD_W, xa, dya, NULL, dwp, 0.0f);
    else
        run_op(ctx, p, OP_BWD_W, xa, dya, NULL, dwp, 0.0f);
    const int e = d->edge ? 1 : 0;
    LAUNCH(ctx, nw, k_unpack_dw, dwp, dw, d->cout, d->cin, e, 9,
           c->lay == LAY_NCHW ? PACK_KCRS : PACK_KRSC);
    if (!d->edge)
        return;
    double *S = (double *)cuda_scratch(ctx, CUDA_SCRATCH_CONV_AUX,
                                       (size_t)p->nb * d->cout * sizeof(double));
    const size_t ns = (size_t)p->nb * d->cout;
    LAUNCH(ctx, ns, k_edge_sum, dy, p->border, p->nb, d->n, (size_t)d->h * d->w, d->cout, bf, S);
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
            for (int l = 0; l < 2; l++) {
                CUDNN_CHECK(cudnnDestroyFilterDescriptor(p->wd[l]));
                CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->yd[l]));
                CUDNN_CHECK(cudnnDestroyTensorDescriptor(p->xd[l]));
            }
        }
        if (p->border)
            CUDA_CHECK(cudaFree(p->border)); // the caller synchronised the stream
        free(p->border_host);
        free(p);
        p = next;
    }
    ctx->convs = NULL;
}
