/* One flow step of docs/model.md section 3 (actnorm, permutation, coupling and its
 * network f): forward, backward and inverse. */
#ifndef GLOW_MODEL_FLOW_STEP_H
#define GLOW_MODEL_FLOW_STEP_H

#include "model_internal.h"

/* in [rows, C] -> s->out, keeping the activations in s's buffers; adds the
 * step's logdet to every image's m->logdet. With ddi, every actnorm of the step
 * (also those of f) is first initialised from its own input (docs/model.md section 5). */
void mdl_step_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *in,
                  int ddi);
/* m->g_cur holds dL/d(s->out) and gets dL/d(step input); the step's parameter
 * gradients are written (overwritten) into m->grads, those of an invconv by
 * mdl_invconv_grads once every step is done. g_ld = dL/dlogdet of one image. Uses
 * the activations of the last mdl_step_fwd of s. */
void mdl_step_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, float g_ld);
/* The activations mdl_step_bwd reads, again from the step's input `in` (the
 * output s->out being kept): actnorm, permutation and the coupling network f,
 * the same operations as mdl_step_fwd (so the same bits) without the logdet. */
void mdl_step_redo(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *in);
/* The step's input from its output: out -> in (in may be out). s's activation
 * buffers are scratch; afterwards they hold what mdl_step_bwd reads, from the
 * given output: h = f(z1) is computed once for the inverse and the gradient. */
void mdl_step_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *out,
                  float *in);

#endif
