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
/* cur holds the step's output and gets its input (s's buffers are scratch). */
void mdl_step_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, float *cur);

#endif
