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

/* Standardised latents (model.h glow_model_get_eps, glow_model_decode): eps =
 * (z - mean) / exp(logs) under the level's prior, and back at a factor t per image
 * (t: m->ncur host floats, NULL: 1), z = mean + exp(logs) * eps * t, the sampling
 * formula with eps given. After a forward pass: split l's z2 of z (the level
 * output [rows, C]) into eps [rows, C/2] dense, from the h the pass kept. */
void mdl_split_to_eps(glow_model *m, int l, const float *z, float *eps);
/* The top z [rows, Ct] into eps [rows, Ct] dense, from the pass's top h. */
void mdl_top_to_eps(glow_model *m, const float *z, float *eps);
/* z [rows, C] holds z1 in its first half and gets z2 from eps [rows, C/2] dense. */
void mdl_split_from_eps(glow_model *m, int l, const float *eps, const float *t, float *z);
/* z [rows, Ct] from eps [rows, Ct] dense, for the labels in m->labels. */
void mdl_top_from_eps(glow_model *m, const float *eps, const float *t, float *z);
/* The standard normals that sampling draws at level l (l = L-1: the top) for
 * images first..first+ncur-1, into eps [rows, c] dense (c = C/2, or Ct at the
 * top); zero_h: a zeroed buffer of rows * 2c floats. */
void mdl_level_sample_eps(glow_model *m, int l, uint64_t seed, uint64_t first,
                          const float *zero_h, float *eps);

#endif
