/* Operations on latent streams (glow-latent's subcommands; docs/formats.md "The
 * latent stream"). A latent is its values v times its factor t; an operation that
 * combines latents computes with t * v in double and writes its result with t = 1,
 * except where it says otherwise. Every operation reads record by record and
 * keeps at most one latent (mix) or one running sum per output (mean, attr, in
 * double), and writes records of latent_per_record latents. Errors name the
 * stream ("FILE: ...") or, for a failed write, the output (out_name). */
#ifndef GLOW_LATENT_OPS_H
#define GLOW_LATENT_OPS_H

#include <stdint.h>
#include <stdio.h>

#include "data/latent_stream.h"

/* Where an operation writes its latent stream. */
typedef struct {
    FILE *f;
    const char *name;
} latent_out;

/* Latents 2k and 2k+1 of the stream: `steps` latents from the first to the
 * second, a = j / (steps - 1) for j = 0..steps-1: (1 - a) u0 + a u1, or with slerp
 * sin((1 - a) w) / sin w u0 + sin(a w) / sin w u1 (w the angle between u0 and u1;
 * linear when they are parallel). The endpoints are the inputs exactly; a pair of
 * equal factors is mixed in v and keeps its factor. Labels: the nearer endpoint's
 * (the first's at a = 0.5). An odd count is an error. */
int latent_op_mix(latent_reader *in, int steps, int slerp, const latent_out *out,
                  glow_error *err);
/* For every latent, one copy per value s (in order) with t * s as its factor. */
int latent_op_scale(latent_reader *in, const double *s, int ns, const latent_out *out,
                    glow_error *err);
/* The latents whose label is one of labels (all when nlabels is 0), the first
 * `limit` of them (0: no limit), unchanged. */
int latent_op_select(latent_reader *in, const int32_t *labels, int nlabels, uint64_t limit,
                     const latent_out *out, glow_error *err);
/* The mean of the stream, one latent without a label; by_label: one latent per
 * label, labelled, in ascending order. */
int latent_op_mean(latent_reader *in, int by_label, const latent_out *out, glow_error *err);
/* The attribute direction mean(pos) - mean(neg), one latent without a label. */
int latent_op_attr(latent_reader *pos, latent_reader *neg, const latent_out *out,
                   glow_error *err);
/* The same within one stream: pos = the latents labelled pos_label, neg = those
 * labelled neg_label (has_neg), or every other latent. */
int latent_op_attr_label(latent_reader *in, int32_t pos_label, int has_neg, int32_t neg_label,
                         const latent_out *out, glow_error *err);

/* A direction: a latent stream of exactly one latent (mean, attr). */
typedef struct {
    latent_info info;
    uint64_t weights;
    double *d; /* D values, t * v */
    char *name;
} latent_direction;
int latent_direction_load(const char *path, latent_direction *dir, glow_error *err);
void latent_direction_free(latent_direction *dir);

/* For every latent, one copy per strength a (in order): u + a d. Labels kept. */
int latent_op_add(latent_reader *in, const latent_direction *dir, const double *a, int na,
                  const latent_out *out, glow_error *err);
/* One TSV line per latent after a header "index score label": its score along
 * the direction, <u, d> / <d, d> (the mean of pos scores 1 more than the mean of
 * neg for d = attr(pos, neg)). */
int latent_op_project(latent_reader *in, const latent_direction *dir, FILE *text,
                      glow_error *err);

#endif
