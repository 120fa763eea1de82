/* The invertible 1x1 convolution of docs/model.md section 3 (plain or LU): its matrix on
 * the host, and its forward, backward and inverse on the backend. */
#ifndef GLOW_MODEL_INVCONV_H
#define GLOW_MODEL_INVCONV_H

#include "model_internal.h"

/* Recompute W and log|det W| of every invconv step from the current parameters
 * (and W^-1 with need_inverse) and upload what the passes use. Returns 0, or -1
 * with err set when need_inverse and a matrix is singular. A no-op for the other
 * permutations. */
int mdl_invconv_prepare(glow_model *m, int need_inverse, glow_error *err);

/* y = W x on the level's pixels; adds H*W log|det W| to every image's logdet. */
void mdl_invconv_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *x,
                     float *y);
/* From dy = dL/dy and the step's stored input (s->an_out): dx = W^T dy and the
 * gradients of the invconv parameters, logdet term included (g_logdet_total:
 * dL/dlogdet summed over the images). Returns 0, or -1 with err set when W is
 * singular. */
int mdl_invconv_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *dy,
                    float *dx, double g_logdet_total, glow_error *err);
/* x = W^-1 y (after mdl_invconv_prepare with need_inverse). */
void mdl_invconv_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *y,
                     float *x);

#endif
