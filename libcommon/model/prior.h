/* The priors of docs/model.md section 6: the split prior of each level but the last, the
 * top prior with its class embedding (y_emb), and the class head. Each scores
 * (adds log-densities, cross-entropy), differentiates and samples. */
#ifndef GLOW_MODEL_PRIOR_H
#define GLOW_MODEL_PRIOR_H

#include <stdint.h>

#include "model_internal.h"

/* Split prior of level l < L-1 on z, the level's output [rows, C]: adds
 * log N(z2; h(z1)) to every image's m->logp, keeping h for the backward pass. */
void mdl_split_logp(glow_model *m, int l, const float *z);
/* dz [rows, C] holds dL/dz1 in its first half: gets dL/dz2 (overwritten) in the
 * second and the prior's dL/dz1 added to the first; writes the split.l.conv
 * gradients. g_ld = dL/dlogp of one image. */
void mdl_split_bwd(glow_model *m, int l, const float *z, float g_ld, float *dz);
/* z holds z1 in its first half and gets a z2 drawn at temperature T (docs/model.md
 * section 7), image i from index first + i of level l's sampling stream. */
void mdl_split_sample(glow_model *m, int l, float temperature, uint64_t seed, uint64_t first,
                      float *z);

/* Top prior and class head on the top z [rows, Ct] for the batch's labels: adds
 * log N(z; h(y)) to m->logp and, with the head, writes the cross-entropy to m->ce. */
void mdl_top_logp(glow_model *m, const float *z);
/* dz (overwritten) = dL/dz of the top prior and the head; writes the gradients of
 * prior.conv, prior.y_emb and the classifier. */
void mdl_top_bwd(glow_model *m, const float *z, float g_ld, float *dz);
/* z [rows, Ct] drawn at temperature T for the labels in m->labels. */
void mdl_top_sample(glow_model *m, float temperature, uint64_t seed, uint64_t first, float *z);

#endif
