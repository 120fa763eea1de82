/* The invertible 1x1 convolution of docs/model.md section 3 (plain or LU): its matrix on
 * the host, and its forward, backward and inverse on the backend.
 *
 * The host work is batched over every step, so that a pass waits for the backend a
 * fixed number of times whatever K and L: the parameters of every invconv step are
 * gathered on the backend and downloaded at once, W (LU), log|det W| and W^-1 are
 * computed for all steps and uploaded at once (and not again while the parameters
 * stay the same), and the backward pass keeps each step's dL/dW on the backend
 * until mdl_invconv_grads turns all of them into parameter gradients (one download,
 * one upload). */
#ifndef GLOW_MODEL_INVCONV_H
#define GLOW_MODEL_INVCONV_H

#include "model_internal.h"

/* The invconv buffers of a model (host and backend), at construction; freed by
 * mdl_invconv_free. A no-op for the other permutations. */
void mdl_invconv_alloc(glow_model *m);
void mdl_invconv_free(glow_model *m);

/* W and log|det W| of every invconv step from the current parameters (and W^-1 with
 * need_inverse), and on the backend what the passes use. The parameters are read
 * once (one download for all steps); when they are bit for bit those of the last
 * call and the fixed parameters were not set since (m->inv_state), nothing is
 * computed or uploaded again. Returns 0, or -1 with err set when need_inverse and a
 * matrix is singular. A no-op for the other permutations. */
int mdl_invconv_prepare(glow_model *m, int need_inverse, glow_error *err);

/* y = W x on the level's pixels; adds H*W log|det W| to every image's logdet. */
void mdl_invconv_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *x,
                     float *y);
/* y = W x without the logdet (the backward pass of recompute). */
void mdl_invconv_apply(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *x,
                       float *y);
/* From dy = dL/dy and the step's stored input (s->an_out): dx = W^T dy, and dL/dW
 * kept on the backend for mdl_invconv_grads. */
void mdl_invconv_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *dy,
                     float *dx);
/* After every step's mdl_invconv_bwd: the gradients of every step's invconv
 * parameters, logdet term included (g_logdet_total: dL/dlogdet summed over the
 * images), into the model's gradient array. Returns 0, or -1 with err set when a W
 * is singular. A no-op for the other permutations. */
int mdl_invconv_grads(glow_model *m, double g_logdet_total, glow_error *err);
/* x = W^-1 y (after mdl_invconv_prepare with need_inverse). */
void mdl_invconv_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *y,
                     float *x);

#endif
