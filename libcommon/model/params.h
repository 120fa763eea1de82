/* The model's parameters as named host tensors, in the layout and with the names of
 * docs/model.md section 8. This is what checkpoints read and write and what the model
 * uploads to its backend; the model never indexes these arrays in its math. */
#ifndef GLOW_PARAMS_H
#define GLOW_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "config/glow_config.h"

typedef enum { PARAM_F32 = 0, PARAM_I32 = 1 } param_dtype;

typedef struct {
    char *name;          /* e.g. "flow.0.3.coupling.conv1.weight" */
    param_dtype dtype;
    int ndim;            /* 1, 2 or 4 */
    int64_t shape[4];
    size_t count;        /* product of shape */
    int trained;         /* 0 for invconv.p, invconv.sign_s, shuffle.perm */
    void *data;          /* count elements, host memory, owned */
} glow_param;

typedef struct {
    glow_param *v;
    int n;
} glow_paramset;

/* Every parameter the config implies, in a fixed order (flow by level and step,
 * then split priors, then the top prior, then the classifier), zero-filled. */
int glow_paramset_layout(const glow_config *c, glow_paramset *ps, glow_error *err);
/* The same layout with data for the fixed parameters only (the trained ones have
 * data NULL): what the model keeps on the host, its trained parameters being on
 * the backend. */
int glow_paramset_layout_fixed(const glow_config *c, glow_paramset *ps, glow_error *err);
/* What glow_paramset_layout would allocate, without allocating it: elements of
 * every parameter (4 bytes each), trained float elements, tensors. */
typedef struct {
    uint64_t values, trained, tensors;
} glow_paramset_count;
int glow_paramset_size(const glow_config *c, glow_paramset_count *out, glow_error *err);
glow_param *glow_paramset_find(const glow_paramset *ps, const char *name);
/* Total trained float parameters. */
size_t glow_paramset_trained_count(const glow_paramset *ps);
/* A deep copy with the same names and shapes (data copied, or zeroed when zero;
 * a tensor without data stays without). */
void glow_paramset_clone(const glow_paramset *src, glow_paramset *dst, int zero);
void glow_paramset_free(glow_paramset *ps);

#endif
