/* Element-wise formulas of the model, written once for both backends (hd.h). */
#ifndef GLOW_EW_MATH_H
#define GLOW_EW_MATH_H

#include <math.h>

#include "base/hd.h"

#define EW_LOG_2PI 1.8378770664093453f

/* actnorm / zeros-layer scale: y = (x + b) * exp(3 logs) */
GLOW_HD float ew_actnorm_scale(float logs) { return expf(3.0f * logs); }
GLOW_HD float ew_actnorm_fwd(float x, float b, float s) { return (x + b) * s; }
GLOW_HD float ew_actnorm_inv(float y, float b, float s) { return y / s - b; }

/* dequantisation of one sub-pixel: floor(u / 2^(8-bits)) / 2^bits - 0.5 + noise */
GLOW_HD float ew_dequant(unsigned u, int n_bits, float noise)
{
    float bins = (float)(1 << n_bits);
    return (float)(u >> (8 - n_bits)) / bins - 0.5f + noise;
}

/* affine coupling: scale = sigmoid(raw + 2) in a form that is stable for any raw */
GLOW_HD float ew_coupling_scale(float raw)
{
    float a = raw + 2.0f;
    if (a >= 0)
        return 1.0f / (1.0f + expf(-a));
    float e = expf(a);
    return e / (1.0f + e);
}
/* log sigmoid(raw + 2) = -softplus(-(raw + 2)) */
GLOW_HD float ew_coupling_logscale(float raw)
{
    float a = raw + 2.0f;
    return a >= 0 ? -log1pf(expf(-a)) : a - log1pf(expf(a));
}

/* affine coupling backward for one element: y = (x + shift) * s, plus g_ld * log s.
 * Returns dx; sets d(shift) and d(raw). */
GLOW_HD float ew_affine_bwd(float dy, float y, float s, float g_ld, float *dshift, float *draw)
{
    float dx = dy * s;
    *dshift = dx;
    /* d/draw of [dy*(x+shift)*s] = dy*y*(1-s) since x+shift = y/s; of g_ld*log s: g_ld*(1-s) */
    *draw = (dy * y + g_ld) * (1.0f - s);
    return dx;
}

/* log N(z; mean, logs) for one element */
GLOW_HD float ew_gauss_logp(float z, float mean, float logs)
{
    float d = z - mean;
    return -0.5f * (EW_LOG_2PI + 2.0f * logs + d * d * expf(-2.0f * logs));
}
/* a latent standardised by its prior, and back at temperature t: the expression of
 * gauss_sample (cpu/cpu_prior.c, cuda/cuda_prior.cu) with the normal given */
GLOW_HD float ew_gauss_to_eps(float z, float mean, float logs) { return (z - mean) / expf(logs); }
GLOW_HD float ew_gauss_from_eps(float eps, float mean, float logs, float t)
{
    return mean + expf(logs) * eps * t;
}
/* gradients of g * logp: returns dz; sets dmean, dlogs */
GLOW_HD float ew_gauss_bwd(float z, float mean, float logs, float g, float *dmean, float *dlogs)
{
    float iv = expf(-2.0f * logs);
    float d = z - mean;
    float dz = -g * d * iv;
    *dmean = -dz;
    *dlogs = g * (d * d * iv - 1.0f);
    return dz;
}

/* torch.optim.Adam (no weight decay, no amsgrad) for one element. bc1 = 1 - b1^t,
 * sbc2 = sqrt(1 - b2^t). */
GLOW_HD float ew_adam(float p, float g, float *m, float *v, float lr, float b1, float b2,
                      float eps, float bc1, float sbc2)
{
    *m = *m * b1 + (1.0f - b1) * g; /* torch: exp_avg.lerp_(grad, 1 - beta1) */
    *v = *v * b2 + (1.0f - b2) * g * g;
    float denom = sqrtf(*v) / sbc2 + eps;
    return p - (lr / bc1) * (*m / denom);
}
/* torch.optim.Adamax: u = max(b2 u, |g| + eps), p -= lr / (1 - b1^t) * m / u */
GLOW_HD float ew_adamax(float p, float g, float *m, float *u, float lr, float b1, float b2,
                        float eps, float bc1)
{
    *m = *m * b1 + (1.0f - b1) * g;
    float a = *u * b2, c = fabsf(g) + eps;
    *u = a > c ? a : c;
    return p - (lr / bc1) * (*m / *u);
}

#endif
