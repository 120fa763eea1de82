/* The model configuration of docs/model.md section 1 (docs/model.md). */
#ifndef GLOW_CONFIG_H
#define GLOW_CONFIG_H

#include "base/util.h"

typedef enum { COUPLING_AFFINE = 0, COUPLING_ADDITIVE = 1 } glow_coupling;
typedef enum { PERM_INVCONV = 0, PERM_SHUFFLE = 1, PERM_REVERSE = 2 } glow_permutation;

typedef struct {
    int image_h, image_w; /* image_size [H, W] */
    int channels;         /* C0 */
    int levels;           /* L */
    int steps;            /* K */
    int width;            /* hidden channels of the coupling network */
    glow_coupling coupling;
    glow_permutation permutation;
    int lu;
    int edge_bias;
    int learn_top;
    int y_condition;
    int n_classes;
    double weight_y;
    int n_bits;
} glow_config;

/* Spec defaults (image size 0x0: must be set). */
void glow_config_default(glow_config *c);
/* Checks ranges and consistency (sizes divisible by 2^levels, n_classes > 0 with
 * y_condition, 1 <= n_bits <= 8, ...). Returns 0 or -1 with err naming the key. */
int glow_config_validate(const glow_config *c, glow_error *err);
/* Parse the JSON object of a checkpoint's "model" metadata (cJSON). Missing keys take
 * the spec defaults, unknown keys and wrong types are errors naming the key. */
int glow_config_from_json(const char *json, glow_config *c, glow_error *err);
/* The JSON object with every key written out (caller frees). */
char *glow_config_to_json(const glow_config *c);
/* 1 when two configs describe the same model. */
int glow_config_equal(const glow_config *a, const glow_config *b);

const char *glow_coupling_name(glow_coupling c);
const char *glow_permutation_name(glow_permutation p);

/* Derived sizes. */
static inline int glow_config_dims(const glow_config *c) /* D = C0*H*W */
{
    return c->channels * c->image_h * c->image_w;
}
/* Channels, height and width inside level l (0-based): 4*C0*2^l at H/2^(l+1). */
static inline int glow_level_channels(const glow_config *c, int l) { return 4 * c->channels << l; }
static inline int glow_level_h(const glow_config *c, int l) { return c->image_h >> (l + 1); }
static inline int glow_level_w(const glow_config *c, int l) { return c->image_w >> (l + 1); }
/* Does the model have the class head (docs/model.md section 6)? */
static inline int glow_config_has_head(const glow_config *c)
{
    return c->y_condition && c->weight_y > 0;
}

/* The first model key on which a and b differ, as "model.KEY: A in NAME_A, B in
 * NAME_B" in msg; returns 0 when the models are equal, 1 otherwise. */
int glow_config_diff(const glow_config *a, const char *name_a, const glow_config *b,
                    const char *name_b, char *msg, size_t len);

#endif
