/* The compute backend: a table of operations over backend memory, one instance per
 * device (cpu/: oneDNN and OpenMP; cuda/: cuDNN, cuBLAS and kernels). The model
 * allocates buffers and calls these ops; it never reads or writes tensor memory
 * itself.
 *
 * Layout. Activations are NHWC float32: a tensor is a matrix of `rows` pixels
 * (N*H*W) by C channels, row-major, with a row stride `ld` >= C, so a channel
 * slice of a tensor is (ptr + c0, ld) without copying. Convolution operands are
 * dense (ld = C). Weights are in the checkpoint's PyTorch layout
 * [Cout, Cin(+E), kh, kw]; per-channel vectors are [C].
 *
 * Per-image scalars (logdet, logp, cross-entropy) are float arrays of N that ops
 * accumulate into. Every reduction is deterministic: work is split into chunks
 * whose boundaries do not depend on the thread count, and the partial results are
 * combined in a fixed order, so results are bit-identical for any thread count.
 *
 * Errors inside a backend (out of memory, a primitive the library refuses) are
 * fatal: they print "progname: backend: reason" and exit. */
#ifndef GLOW_BACKEND_H
#define GLOW_BACKEND_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include "base/util.h"
#include "precision.h"

/* A 3x3 (padding 1) or 1x1 convolution, stride 1, no bias. With edge, the weights
 * hold one more input channel (the last), the border indicator of docs/model.md section 4:
 * 0 over the image, 1 on the padding ring. Input and output are n x h x w. */
typedef struct {
    int n, h, w;
    int cin, cout; /* data channels; the edge channel is not counted in cin */
    int k;         /* 1 or 3 */
    int edge;      /* 0 or 1; only with k = 3 */
} bk_conv;

/* A coupling network f (docs/model.md section 3): c[0] a 3x3 convolution, actnorm
 * (bias[0], logs[0]) and ReLU; c[1] a 1x1 convolution, actnorm and ReLU; c[2] the
 * zeros layer, a 3x3 convolution with its bias and scale exp(3 logs[2]). */
typedef struct {
    bk_conv c[3];
    const float *w[3], *bias[3], *logs[3];
} bk_net;

/* How a prior's h holds mean and log-scale: interleaved (mean = h[0::2], logs =
 * h[1::2], split priors) or halves (mean = h[:C], logs = h[C:], the top prior). */
typedef enum { BK_INTERLEAVED = 0, BK_HALVES = 1 } bk_prior_layout;

typedef struct backend backend;
struct backend {
    const char *name;
    void *impl;

    /* ---- memory ---- */
    void *(*alloc)(backend *b, size_t bytes); /* zero-filled, aligned */
    void (*free)(backend *b, void *p);
    void (*upload)(backend *b, void *dst, const void *host, size_t bytes);
    void (*download)(backend *b, void *host, const void *src, size_t bytes);
    void (*copy)(backend *b, void *dst, const void *src, size_t bytes);
    void (*fill)(backend *b, float *dst, float v, size_t n);
    /* Host memory for transfers (the MPI communicator stages gradients through it):
     * page-locked on a GPU, so download and upload into it run at full speed;
     * freed with host_free. */
    void *(*host_alloc)(backend *b, size_t bytes);
    void (*host_free)(backend *b, void *p);
    void (*destroy)(backend *b);
    /* The arithmetic of convolutions (precision.h), fp32 until set. Returns 0, or -1
     * with err set when this backend cannot do it (the CPU backend: fp32 only). */
    int (*set_precision)(backend *b, glow_precision p, glow_error *err);

    /* ---- convolutions (dense NHWC operands) ---- */
    void (*conv_fwd)(backend *b, const bk_conv *c, const float *x, const float *w, float *y);
    /* y = relu?((conv(x, w) + bias) * exp(3 logs)): conv_fwd then actnorm_fwd in one
     * pass (a coupling network's conv + actnorm + ReLU, or a zeros layer) */
    void (*conv_fwd_affine)(backend *b, const bk_conv *c, const float *x, const float *w,
                            const float *bias, const float *logs, int relu, float *y);
    /* f's forward pass: a1, a2 its hidden activations, h its output; the same as
     * conv_fwd_affine for each layer in turn (relu for the first two) */
    void (*net_fwd)(backend *b, const bk_net *n, const float *x, float *a1, float *a2, float *h);
    /* f's backward pass, the same as layer by layer from the last: actnorm_bwd
     * (relu for the first two; in place in the output's gradient), conv_bwd_filter,
     * conv_bwd_data. g_h = dL/dh in; g_a2, g_a1 get dL/da (after their actnorm's
     * backward), g_x dL/dx; the parameters' gradients are written, not added. */
    void (*net_bwd)(backend *b, const bk_net *n, const float *x, const float *a1, const float *a2,
                    const float *h, float *g_h, float *g_a2, float *g_a1, float *g_x, float *const dw[3],
                    float *const dbias[3], float *const dlogs[3]);
    /* dx = conv^T(dy) (the edge channel gets no gradient); accumulate: dx += */
    void (*conv_bwd_data)(backend *b, const bk_conv *c, const float *dy, const float *w,
                          float *dx, int accumulate);
    /* dw (the whole [Cout, Cin+E, k, k], edge taps included) = dL/dw; overwritten */
    void (*conv_bwd_filter)(backend *b, const bk_conv *c, const float *x, const float *dy,
                            float *dw);

    /* ---- data movement ---- */
    /* dst[r, 0:cols] (+)= src[r, 0:cols] */
    void (*copy_cols)(backend *b, float *dst, int ldd, const float *src, int lds, size_t rows,
                      int cols, int accumulate);
    /* dst[i] += alpha * src[i] */
    void (*axpy)(backend *b, float *dst, const float *src, size_t n, float alpha);
    /* x[i] += v */
    void (*add_scalar)(backend *b, float *x, size_t n, float v);
    /* x[i] *= s */
    void (*scale)(backend *b, float *x, size_t n, float s);
    /* squeeze: src [n, h, w, c] (row stride lds) -> dst [n, h/2, w/2, 4c] (ldd),
     * dst channel c*4 + dy*2 + dx; unsqueeze is its inverse (same argument meaning:
     * h, w, c describe the unsqueezed side) */
    void (*squeeze)(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                    int w, int c);
    void (*unsqueeze)(backend *b, const float *src, int lds, float *dst, int ldd, int n, int h,
                      int w, int c);
    /* y[r, j] = x[r, perm[j]] (perm int32 in backend memory), dense */
    void (*gather_channels)(backend *b, const float *x, float *y, size_t rows, int c,
                            const int32_t *perm);
    /* uint8 NCHW images -> x NHWC: floor(u / 2^(8-n_bits)) / 2^n_bits - 0.5 + noise,
     * noise from `noise` (NCHW float) when not NULL, else
     * rng_uniform_at(seed, RNG_STREAM_DEQUANT, (first + i) * D + j) / 2^n_bits for
     * image i and NCHW index j within the image */
    void (*dequantize)(backend *b, const uint8_t *img, const float *noise, uint64_t seed,
                       uint64_t first, int n_bits, int n, int c, int h, int w, float *x);

    /* ---- actnorm and zeros-layer scale: y = (x + bias) * exp(3 logs) ---- */
    void (*actnorm_fwd)(backend *b, const float *x, int ldx, float *y, int ldy, size_t rows,
                        int c, const float *bias, const float *logs, int relu);
    void (*actnorm_inv)(backend *b, const float *y, int ldy, float *x, int ldx, size_t rows,
                        int c, const float *bias, const float *logs);
    /* From the output y (after ReLU when relu): g = dy (masked by y > 0 with relu),
     * dx = g * exp(3 logs) (dx may alias dy), dbias = sum g*s, dlogs = 3 sum g*y */
    void (*actnorm_bwd)(backend *b, const float *dy, int lddy, const float *y, int ldy,
                        float *dx, int lddx, size_t rows, int c, const float *logs, int relu,
                        float *dbias, float *dlogs);
    /* data-dependent init: bias = -mean(x), logs = log(1/(sqrt(mean((x+bias)^2))+1e-6))/3 */
    void (*actnorm_ddi)(backend *b, const float *x, int ldx, size_t rows, int c, float *bias,
                        float *logs);
    /* ld[i] += factor * sum(logs) for i < n */
    void (*sum_into)(backend *b, const float *v, int c, float factor, float *ld, int n);

    /* ---- coupling: x2, y2 [rows, c2] (strided), h dense [rows, c2] (additive) or
     * [rows, 2 c2] (affine, shift = h[0::2], scale = sigmoid(h[1::2] + 2)) ---- */
    void (*coupling_fwd)(backend *b, int affine, const float *x2, int ldx, const float *h,
                         float *y2, int ldy, int n, size_t rows_per_image, int c2,
                         float *logdet);
    void (*coupling_inv)(backend *b, int affine, const float *y2, int ldy, const float *h,
                         float *x2, int ldx, size_t rows, int c2);
    /* From the output y2; g_logdet = dL/dlogdet (same for every image). dx2 may alias
     * dy2; dh dense, overwritten. */
    void (*coupling_bwd)(backend *b, int affine, const float *dy2, int lddy, const float *y2,
                         int ldy, const float *h, float *dx2, int lddx, float *dh, size_t rows,
                         int c2, float g_logdet);

    /* ---- Gaussian priors: z [rows, c] (strided), h dense [rows, 2c] ---- */
    void (*gauss_logp)(backend *b, const float *z, int ldz, const float *h,
                       bk_prior_layout lay, int n, size_t rows_per_image, int c, float *logp);
    /* g = dL/dlogp; dz (+)= (accumulate), dh overwritten */
    void (*gauss_bwd)(backend *b, const float *z, int ldz, const float *h, bk_prior_layout lay,
                      size_t rows, int c, float g, float *dz, int lddz, int accumulate,
                      float *dh);
    /* z = mean + exp(logs) * T * rng_normal_at(seed, stream, (first + i) * rows_per_image
     * * c + r * c + j) for image i, pixel r within it, channel j */
    void (*gauss_sample)(backend *b, const float *h, bk_prior_layout lay, int n,
                         size_t rows_per_image, int c, float temperature, uint64_t seed,
                         uint64_t stream, uint64_t first, float *z, int ldz);
    /* standardised latents (the latent tools): eps[r, j] = (z - mean) / exp(logs),
     * and back: z[r, j] = mean + exp(logs) * eps * T, gauss_sample's formula with
     * the normal given, so eps = its draw and the same T give its z bit for bit */
    void (*gauss_to_eps)(backend *b, const float *z, int ldz, const float *h,
                         bk_prior_layout lay, size_t rows, int c, float *eps, int lde);
    void (*gauss_from_eps)(backend *b, const float *eps, int lde, const float *h,
                           bk_prior_layout lay, size_t rows, int c, float temperature, float *z,
                           int ldz);

    /* ---- class conditioning: h [n*rows_per_image, c] dense ---- */
    /* h[i, r, :] += (w[:, y_i] + bias) * exp(3 logs), w [c, n_classes] */
    void (*yemb_fwd)(backend *b, float *h, int n, size_t rows_per_image, int c, int n_classes,
                     const int32_t *labels, const float *w, const float *bias,
                     const float *logs);
    void (*yemb_bwd)(backend *b, const float *dh, int n, size_t rows_per_image, int c,
                     int n_classes, const int32_t *labels, const float *w, const float *bias,
                     const float *logs, float *dw, float *dbias, float *dlogs);
    /* class head: logits = (w @ mean_rows(z_i) + bias) * exp(3 logs), w [k, c];
     * ce[i] = cross-entropy of logits against labels[i] (overwritten) */
    void (*head_fwd)(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                     const int32_t *labels, const float *w, const float *bias,
                     const float *logs, float *ce);
    /* g = dL/dce (same for every image); dz += ; dw, dbias, dlogs overwritten */
    void (*head_bwd)(backend *b, const float *z, int n, size_t rows_per_image, int c, int k,
                     const int32_t *labels, const float *w, const float *bias,
                     const float *logs, float g, float *dz, float *dw, float *dbias,
                     float *dlogs);

    /* ---- optimizers over flat arrays (torch.optim semantics), t = step from 1 ---- */
    void (*adam)(backend *b, float *p, const float *g, float *m, float *v, size_t n, float lr,
                 float beta1, float beta2, float eps, long t);
    void (*adamax)(backend *b, float *p, const float *g, float *m, float *u, size_t n,
                   float lr, float beta1, float beta2, float eps, long t);
    /* sum of squares in double */
    double (*sumsq)(backend *b, const float *x, size_t n);
    /* e = decay * e + (1 - decay) * p */
    void (*ema)(backend *b, float *e, const float *p, size_t n, float decay);
};

/* Every slot of the table, in its order: BACKEND_SLOTS(X) is X(slot) for each.
 * A backend implements slot s as the function <backend>_s (cpu_actnorm_fwd,
 * cuda_actnorm_fwd) and fills its table from this list, so a slot added above
 * without being added here, or here without a function in every backend, does
 * not build. */
#define BACKEND_SLOTS(X)                                                                   \
    X(alloc) X(free) X(upload) X(download) X(copy) X(fill) X(host_alloc) X(host_free)     \
    X(destroy) X(set_precision)                                                         \
    X(conv_fwd) X(conv_fwd_affine) X(net_fwd) X(net_bwd) X(conv_bwd_data)              \
    X(conv_bwd_filter)                                                                  \
    X(copy_cols) X(axpy) X(add_scalar) X(scale) X(squeeze) X(unsqueeze)                 \
    X(gather_channels) X(dequantize)                                                    \
    X(actnorm_fwd) X(actnorm_inv) X(actnorm_bwd) X(actnorm_ddi) X(sum_into)             \
    X(coupling_fwd) X(coupling_inv) X(coupling_bwd)                                     \
    X(gauss_logp) X(gauss_bwd) X(gauss_sample) X(gauss_to_eps) X(gauss_from_eps)        \
    X(yemb_fwd) X(yemb_bwd) X(head_fwd) X(head_bwd)                                     \
    X(adam) X(adamax) X(sumsq) X(ema)

#define BACKEND_SLOT_ONE_(slot) +1
/* After name and impl the struct is function pointers only, one per listed slot. */
static_assert(offsetof(backend, alloc) == offsetof(backend, impl) + sizeof(void *) &&
                  sizeof(backend) == offsetof(backend, alloc) +
                                         (0 BACKEND_SLOTS(BACKEND_SLOT_ONE_)) *
                                             sizeof(void (*)(void)),
              "backend.h: BACKEND_SLOTS must list every function pointer of struct backend");
#undef BACKEND_SLOT_ONE_

#endif
