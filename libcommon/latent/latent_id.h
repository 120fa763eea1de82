/* Which model a latent stream belongs to: the model's identity (a hash of its
 * config), a fingerprint of its weights, the latent layout a model implies, and
 * the check a decoder makes before it trusts a stream (docs/formats.md "The latent
 * stream"). */
#ifndef GLOW_LATENT_ID_H
#define GLOW_LATENT_ID_H

#include <stddef.h>
#include <stdint.h>

#include "config/glow_config.h"
#include "data/latent_stream.h"
#include "model/model.h"

/* The canonical text of a model config that its identity hashes:
 * "glow-model image_size=HxW channels=C levels=L steps=K width=W coupling=NAME
 * permutation=NAME lu=0|1 edge_bias=0|1 learn_top=0|1 y_condition=0|1
 * n_classes=N weight_y=%.17g n_bits=B" (one space between fields). */
void latent_model_text(const glow_config *c, char *buf, size_t len);
/* FNV-1a (64 bits) of that text. */
uint64_t latent_model_id(const glow_config *c);
/* For messages: "1x8x8, L=2, K=2, width 8, affine, invconv". */
void latent_model_describe(const glow_config *c, char *buf, size_t len);
/* A fingerprint of the model's weights: FNV-1a (64 bits) over the 32-bit words of
 * every parameter (float32 or int32 bit patterns) in layout order. */
uint64_t latent_weights_id(glow_model *m, const glow_config *c);

/* The description of the latents of model c in the given layout. */
void latent_info_of(const glow_config *c, latent_layout layout, latent_info *info);
/* 0 when latents described by in belong to model c (loaded from ckpt, for the
 * message), else -1 with err naming both models. */
int latent_check_model(const latent_info *in, const glow_config *c, const char *ckpt,
                       glow_error *err);

#endif
