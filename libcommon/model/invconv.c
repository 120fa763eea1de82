/* The invertible 1x1 convolution (docs/model.md section 3).
 * On the host, in float64 (docs/model.md takes log|det W| in float64, and these C x C
 * problems are small): W from the parameters (plain or LU), log|det W|, W^-1 for
 * the inverse pass, and the parameters' gradients from dL/dW, logdet term
 * included. On the backend, W is a 1x1 convolution: forward, backward, inverse. */
#include <math.h>

#include "backend/backend.h"
#include "base/linalg.h"
#include "invconv.h"

/* float32 backend arrays <-> float64 host matrices, through the scratch hWf */
static void download_d(glow_model *m, const float *src, double *dst, size_t n)
{
    m->b->download(m->b, m->hWf, src, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        dst[i] = m->hWf[i];
}

static void upload_d(glow_model *m, float *dst, const double *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        m->hWf[i] = (float)src[i];
    m->b->upload(m->b, dst, m->hWf, n * sizeof(float));
}

/* A = lower*strict_lower_mask + I, B = upper*strict_upper_mask + diag(sign exp(log_s)) */
static void lu_factors(glow_model *m, const mdl_step *s, int C, double *A, double *B, double *logs)
{
    download_d(m, s->lu_lower, A, (size_t)C * C);
    download_d(m, s->lu_upper, B, (size_t)C * C);
    download_d(m, s->lu_logs, logs, (size_t)C);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            if (j > i)
                A[i * C + j] = 0;
            else if (j == i)
                A[i * C + j] = 1;
            if (j < i)
                B[i * C + j] = 0;
            else if (j == i)
                B[i * C + j] = s->lu_sign[i] * exp(logs[i]);
        }
}

int mdl_invconv_prepare(glow_model *m, int need_inverse, glow_error *err)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return 0;
    for (int l = 0; l < m->L; l++) {
        const int C = m->lv[l].C;
        const size_t CC = (size_t)C * C;
        double *A = m->hW, *B = A + CC, *P = B + CC, *T = P + CC, *logs = T + CC;
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            if (!m->cfg.lu) {
                /* the passes convolve with the parameter itself (weight() below);
                 * the host copy is for log|det W| and W^-1 */
                download_d(m, s->inv_w, s->W, CC);
                int sign;
                s->logabsdet = linalg_logabsdet(s->W, C, &sign);
            } else {
                lu_factors(m, s, C, A, B, logs);
                for (size_t i = 0; i < CC; i++)
                    P[i] = s->lu_p[i];
                linalg_matmul(P, A, C, T);
                linalg_matmul(T, B, C, s->W);
                double sum = 0;
                for (int i = 0; i < C; i++)
                    sum += logs[i];
                s->logabsdet = sum;
                upload_d(m, s->Wdev, s->W, CC);
            }
            if (need_inverse) {
                if (linalg_inverse(s->W, C, s->Winv)) {
                    glow_errorf(err, "flow.%d.%d.invconv: the matrix is singular", l, k);
                    return -1;
                }
                upload_d(m, s->Winvdev, s->Winv, CC);
            }
        }
    }
    return 0;
}

/* The matrix the backend convolves with: the plain parameter itself, or the LU
 * product that mdl_invconv_prepare uploaded. */
static const float *weight(const mdl_step *s)
{
    return s->inv_w ? s->inv_w : s->Wdev;
}

void mdl_invconv_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *x,
                     float *y)
{
    backend *b = m->b;
    const float hw = (float)(lv->H * lv->W);
    b->conv_fwd(b, &lv->inv, x, weight(s), y);
    b->add_scalar(b, m->logdet, (size_t)m->ncur, (float)(hw * s->logabsdet));
}

void mdl_invconv_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *y,
                     float *x)
{
    m->b->conv_fwd(m->b, &lv->inv, y, s->Winvdev, x);
}

/* dL/dW (host, m->g_W downloaded) -> the gradients of the plain or LU parameters. */
static int grad_params(glow_model *m, const mdl_level *lv, const mdl_step *s,
                       double g_logdet_total, glow_error *err)
{
    const int C = lv->C;
    const size_t CC = (size_t)C * C;
    const double hw = (double)lv->H * lv->W;
    double *dW = m->hW, *X = dW + CC, *Y = X + CC, *Z = Y + CC, *logs = Z + CC;
    download_d(m, m->g_W, dW, CC);
    if (!m->cfg.lu) {
        /* d(hw * log|det W|)/dW = hw * W^-T; the forward pass did not need W^-1 */
        if (linalg_inverse(s->W, C, X)) {
            glow_errorf(err, "flow.%d.%d.invconv: the matrix is singular", (int)(lv - m->lv),
                        (int)(s - lv->steps));
            return -1;
        }
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++)
                dW[i * C + j] += hw * g_logdet_total * X[j * C + i];
        upload_d(m, mdl_grad(m, s->inv_w), dW, CC);
        return 0;
    }
    double *A = m->hW + 5 * CC; /* the sixth scratch matrix */
    double *B = X;              /* X serves only the plain case */
    lu_factors(m, s, C, A, B, logs);
    /* Y = P^T dW */
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double v = 0;
            for (int r = 0; r < C; r++)
                v += (double)s->lu_p[r * C + i] * dW[r * C + j];
            Y[i * C + j] = v;
        }
    /* dA = Y B^T (masked strictly lower), dB = A^T Y (masked strictly upper, diag) */
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double v = 0;
            if (j < i)
                for (int r = 0; r < C; r++)
                    v += Y[i * C + r] * B[j * C + r];
            Z[i * C + j] = v;
        }
    upload_d(m, mdl_grad(m, s->lu_lower), Z, CC);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double v = 0;
            if (j >= i)
                for (int r = 0; r < C; r++)
                    v += A[r * C + i] * Y[r * C + j];
            Z[i * C + j] = v;
        }
    /* the diagonal of B is sign_s exp(log_s): its gradient goes to log_s (plus the
     * logdet term hw * sum(log_s)); upper's own diagonal is masked out */
    for (int i = 0; i < C; i++) {
        logs[i] = Z[i * C + i] * s->lu_sign[i] * exp(logs[i]) + hw * g_logdet_total;
        Z[i * C + i] = 0;
    }
    upload_d(m, mdl_grad(m, s->lu_upper), Z, CC);
    upload_d(m, mdl_grad(m, s->lu_logs), logs, (size_t)C);
    return 0;
}

int mdl_invconv_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *dy,
                    float *dx, double g_logdet_total, glow_error *err)
{
    backend *b = m->b;
    b->conv_bwd_filter(b, &lv->inv, s->an_out, dy, m->g_W);
    b->conv_bwd_data(b, &lv->inv, dy, weight(s), dx, 0);
    return grad_params(m, lv, s, g_logdet_total, err);
}
