/* The invertible 1x1 convolution (docs/model.md section 3).
 * On the host, in float64 (docs/model.md takes log|det W| in float64, and these C x C
 * problems are small): W from the parameters (plain or LU), log|det W|, W^-1 for
 * the inverse pass, and the parameters' gradients from dL/dW, logdet term
 * included. On the backend, W is a 1x1 convolution: forward, backward, inverse.
 *
 * Host and backend meet a fixed number of times per pass, whatever the number of
 * steps (invconv.h): every step's parameters travel in one packed array (inv_pack,
 * step s at s->inv_off), every step's matrices in another (inv_mats: the LU
 * products, then the inverses; step s at s->mat_off of each half), every step's
 * dL/dW in a third (inv_dW). The arithmetic is that of one step at a time: the
 * same float32 values are read into float64 and the same float64 results rounded
 * to float32, so the results do not depend on the batching. */
#include "invconv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/linalg.h"

void mdl_invconv_alloc(glow_model *m)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return;
    backend *b = m->b;
    size_t np = 0, nm = 0;
    for (int l = 0; l < m->L; l++) {
        const size_t C = (size_t)m->lv[l].C, CC = C * C;
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            if (m->cfg.lu) {
                /* lower, upper and log_s follow each other in the trained layout
                 * (params.c: p and sign_s, between and after them, are fixed) */
                if (s->lu_upper != s->lu_lower + CC || s->lu_logs != s->lu_upper + CC)
                    glow_die(1, "model: flow.%d.%d.invconv: lower, upper and log_s are not "
                                "one range of the parameters",
                             l, k);
                s->inv_param = s->lu_lower;
                s->inv_nparam = 2 * CC + C;
            } else {
                s->inv_param = s->inv_w;
                s->inv_nparam = CC;
            }
            s->inv_off = np;
            s->mat_off = nm;
            np += s->inv_nparam;
            nm += CC;
        }
    }
    m->inv_np = np;
    m->inv_nm = nm;
    const size_t nmats = (m->cfg.lu ? 2 : 1) * nm;
    m->inv_pack = b->alloc(b, np * sizeof(float));
    m->inv_mats = b->alloc(b, nmats * sizeof(float));
    m->inv_dW = b->alloc(b, nm * sizeof(float));
    m->h_pack = xcalloc(np, sizeof(float));
    m->h_prev = xcalloc(np, sizeof(float));
    m->h_mats = xcalloc(nmats, sizeof(float));
    m->h_dW = xcalloc(nm, sizeof(float));
    float *inv = m->inv_mats + (m->cfg.lu ? nm : 0);
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            s->Wdev = m->cfg.lu ? m->inv_mats + s->mat_off : NULL;
            s->Winvdev = inv + s->mat_off;
        }
    m->inv_state = 0;
}

void mdl_invconv_free(glow_model *m)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return;
    backend *b = m->b;
    b->free(b, m->inv_pack);
    b->free(b, m->inv_mats);
    b->free(b, m->inv_dW);
    free(m->h_pack);
    free(m->h_prev);
    free(m->h_mats);
    free(m->h_dW);
}

/* A = lower*strict_lower_mask + I, B = upper*strict_upper_mask + diag(sign exp(log_s)),
 * from the step's packed parameters p (lower, upper, log_s) */
static void lu_factors(const mdl_step *s, const float *p, int C, double *A, double *B,
                       double *logs)
{
    const size_t CC = (size_t)C * C;
    for (size_t i = 0; i < CC; i++) {
        A[i] = p[i];
        B[i] = p[CC + i];
    }
    for (int i = 0; i < C; i++)
        logs[i] = p[2 * CC + i];
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

/* W and log|det W| of every step from m->h_prev; with lu, W rounded to float32
 * into the first half of m->h_mats. */
static void compute_w(glow_model *m)
{
    for (int l = 0; l < m->L; l++) {
        const int C = m->lv[l].C;
        const size_t CC = (size_t)C * C;
        double *A = m->hW, *B = A + CC, *P = B + CC, *T = P + CC, *logs = T + CC;
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            const float *p = m->h_prev + s->inv_off;
            if (!m->cfg.lu) {
                /* the passes convolve with the parameter itself (weight() below);
                 * the host copy is for log|det W| and W^-1 */
                for (size_t i = 0; i < CC; i++)
                    s->W[i] = p[i];
                int sign;
                s->logabsdet = linalg_logabsdet(s->W, C, &sign);
            } else {
                lu_factors(s, p, C, A, B, logs);
                for (size_t i = 0; i < CC; i++)
                    P[i] = s->lu_p[i];
                linalg_matmul(P, A, C, T);
                linalg_matmul(T, B, C, s->W);
                double sum = 0;
                for (int i = 0; i < C; i++)
                    sum += logs[i];
                s->logabsdet = sum;
                for (size_t i = 0; i < CC; i++)
                    m->h_mats[s->mat_off + i] = (float)s->W[i];
            }
        }
    }
}

/* W^-1 of every step, rounded to float32 into the inverse half of m->h_mats. */
static int compute_inverse(glow_model *m, glow_error *err)
{
    float *dst = m->h_mats + (m->cfg.lu ? m->inv_nm : 0);
    for (int l = 0; l < m->L; l++) {
        const size_t CC = (size_t)m->lv[l].C * m->lv[l].C;
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            if (linalg_inverse(s->W, m->lv[l].C, s->Winv)) {
                glow_errorf(err, "flow.%d.%d.invconv: the matrix is singular", l, k);
                return -1;
            }
            for (size_t i = 0; i < CC; i++)
                dst[s->mat_off + i] = (float)s->Winv[i];
        }
    }
    return 0;
}

int mdl_invconv_prepare(glow_model *m, int need_inverse, glow_error *err)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return 0;
    backend *b = m->b;
    const size_t bytes = m->inv_np * sizeof(float);
    /* every step's parameters: gathered on the backend, one download */
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < m->K; k++) {
            const mdl_step *s = &m->lv[l].steps[k];
            b->copy(b, m->inv_pack + s->inv_off, s->inv_param, s->inv_nparam * sizeof(float));
        }
    b->download(b, m->h_pack, m->inv_pack, bytes);
    const int same = m->inv_state > 0 && memcmp(m->h_pack, m->h_prev, bytes) == 0;
    int up_w = 0, up_inv = 0;
    if (!same) {
        memcpy(m->h_prev, m->h_pack, bytes);
        compute_w(m);
        m->inv_state = 1;
        up_w = m->cfg.lu;
    }
    if (need_inverse && m->inv_state < 2) {
        if (compute_inverse(m, err)) {
            m->inv_state = 0; /* the uploads below did not happen */
            return -1;
        }
        m->inv_state = 2;
        up_inv = 1;
    }
    /* one upload: [W of every step (lu)][W^-1 of every step], or either half */
    const size_t nm = m->inv_nm, first = m->cfg.lu && !up_w ? nm : 0;
    const size_t count = (up_w ? nm : 0) + (up_inv ? nm : 0);
    if (count)
        b->upload(b, m->inv_mats + first, m->h_mats + first, count * sizeof(float));
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

void mdl_invconv_apply(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *x,
                       float *y)
{
    m->b->conv_fwd(m->b, &lv->inv, x, weight(s), y);
}

void mdl_invconv_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *y,
                     float *x)
{
    m->b->conv_fwd(m->b, &lv->inv, y, s->Winvdev, x);
}

void mdl_invconv_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *dy,
                     float *dx)
{
    backend *b = m->b;
    b->conv_bwd_filter(b, &lv->inv, s->an_out, dy, m->inv_dW + s->mat_off);
    b->conv_bwd_data(b, &lv->inv, dy, weight(s), dx, 0);
}

/* dL/dW of step s (host floats dWf) -> the gradients of its plain or LU
 * parameters, packed as its parameters are, into g. */
static int grad_params(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *dWf,
                       double g_logdet_total, float *g, glow_error *err)
{
    const int C = lv->C;
    const size_t CC = (size_t)C * C;
    const double hw = (double)lv->H * lv->W;
    double *dW = m->hW, *X = dW + CC, *Y = X + CC, *Z = Y + CC, *logs = Z + CC;
    for (size_t i = 0; i < CC; i++)
        dW[i] = dWf[i];
    if (!m->cfg.lu) {
        /* d(hw * log|det W|)/dW = hw * W^-T: the W^-1 of mdl_invconv_prepare when it
         * computed one from these parameters (invert), the same function of the
         * same W, else computed here */
        if (m->inv_state == 2)
            memcpy(X, s->Winv, CC * sizeof *X);
        else if (linalg_inverse(s->W, C, X)) {
            glow_errorf(err, "flow.%d.%d.invconv: the matrix is singular", (int)(lv - m->lv),
                        (int)(s - lv->steps));
            return -1;
        }
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++)
                dW[i * C + j] += hw * g_logdet_total * X[j * C + i];
        for (size_t i = 0; i < CC; i++)
            g[i] = (float)dW[i];
        return 0;
    }
    double *A = m->hW + 5 * CC; /* the sixth scratch matrix */
    double *B = X;              /* X serves only the plain case */
    lu_factors(s, m->h_prev + s->inv_off, C, A, B, logs);
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
    for (size_t i = 0; i < CC; i++)
        g[i] = (float)Z[i];
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
    for (size_t i = 0; i < CC; i++)
        g[CC + i] = (float)Z[i];
    for (int i = 0; i < C; i++)
        g[2 * CC + i] = (float)logs[i];
    return 0;
}

int mdl_invconv_grads(glow_model *m, double g_logdet_total, glow_error *err)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return 0;
    backend *b = m->b;
    /* every step's dL/dW down, every step's parameter gradients up (packed as the
     * parameters, through inv_pack), then into the gradient array on the backend */
    b->download(b, m->h_dW, m->inv_dW, m->inv_nm * sizeof(float));
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < m->K; k++) {
            const mdl_step *s = &m->lv[l].steps[k];
            if (grad_params(m, &m->lv[l], s, m->h_dW + s->mat_off, g_logdet_total,
                            m->h_pack + s->inv_off, err))
                return -1;
        }
    b->upload(b, m->inv_pack, m->h_pack, m->inv_np * sizeof(float));
    for (int l = 0; l < m->L; l++)
        for (int k = 0; k < m->K; k++) {
            const mdl_step *s = &m->lv[l].steps[k];
            b->copy(b, mdl_grad(m, s->inv_param), m->inv_pack + s->inv_off,
                    s->inv_nparam * sizeof(float));
        }
    return 0;
}
