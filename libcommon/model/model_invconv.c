/* The invertible 1x1 convolution's matrix on the host, in float64: W from the
 * parameters (plain or LU), log|det W|, W^-1 for the inverse pass, and the
 * gradients of the parameters from dL/dW (including the logdet term). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/linalg.h"
#include "model_internal.h"

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

void mdl_invconv_prepare(glow_model *m, int need_inverse)
{
    if (m->cfg.permutation != PERM_INVCONV)
        return;
    for (int l = 0; l < m->L; l++) {
        const int C = m->lv[l].C;
        const size_t CC = (size_t)C * C;
        double *A = m->hW, *B = A + CC, *P = B + CC, *T = P + CC, *logs = T + CC;
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            if (!m->cfg.lu) {
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
                if (linalg_inverse(s->W, C, s->Winv))
                    glow_die(1, "flow.%d.%d.invconv: the matrix is singular", l, k);
                upload_d(m, s->Winvdev, s->Winv, CC);
            }
        }
    }
}

void mdl_invconv_grad(glow_model *m, mdl_level *lv, mdl_step *s, double g_logdet_total)
{
    const int C = lv->C;
    const size_t CC = (size_t)C * C;
    const double hw = (double)lv->H * lv->W;
    double *dW = m->hW, *X = dW + CC, *Y = X + CC, *Z = Y + CC, *logs = Z + CC;
    download_d(m, m->g_W, dW, CC);
    if (!m->cfg.lu) {
        /* d(hw * log|det W|)/dW = hw * W^-T */
        if (linalg_inverse(s->W, C, X))
            glow_die(1, "invconv: the matrix is singular");
        for (int i = 0; i < C; i++)
            for (int j = 0; j < C; j++)
                dW[i * C + j] += hw * g_logdet_total * X[j * C + i];
        upload_d(m, m->grads + (s->inv_w - m->params), dW, CC);
        return;
    }
    double *A = m->hW + 5 * CC; /* sixth scratch matrix */
    double *B = X;
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
    upload_d(m, m->grads + (s->lu_lower - m->params), Z, CC);
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double v = 0;
            if (j >= i)
                for (int r = 0; r < C; r++)
                    v += A[r * C + i] * Y[r * C + j];
            Z[i * C + j] = v;
        }
    for (int i = 0; i < C; i++) {
        logs[i] = Z[i * C + i] * s->lu_sign[i] * exp(logs[i]) + hw * g_logdet_total;
        for (int j = 0; j <= i; j++)
            Z[i * C + j] = j < i ? 0 : Z[i * C + j];
    }
    for (int i = 0; i < C; i++)
        Z[i * C + i] = 0;
    upload_d(m, m->grads + (s->lu_upper - m->params), Z, CC);
    upload_d(m, m->grads + (s->lu_logs - m->params), logs, (size_t)C);
}
