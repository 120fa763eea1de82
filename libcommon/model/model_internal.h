/* Internals shared by the files of the model (model.h): the model, level and step
 * structs, and what model.c gives the others (batch buffers, host layout
 * conversions). Activations are NHWC (backend.h).
 *
 * The model is split by layer family, each file with its forward, backward and
 * inverse together:
 *   model.c      construction, parameters, batch buffers, latents and x to the host
 *   invconv.c    the invertible 1x1 convolution (invconv.h)
 *   flow_step.c  one flow step: actnorm, permutation, coupling (flow_step.h)
 *   prior.c      the split priors, the top prior and the class head (prior.h)
 *   passes.c     forward, eval, DDI, backward, inverse, sampling: loops over levels
 *   model_init.c fresh parameters
 * Beside them: params.c (the parameter layout), checkpoint.c, model_load.c. */
#ifndef GLOW_MODEL_INTERNAL_H
#define GLOW_MODEL_INTERNAL_H

#include "model.h"

/* ln 2, for bits per dimension */
#define MDL_LN2 0.69314718055994530942

/* A zeros layer or actnorm: bias and logs pointers into the flat arrays. */
typedef struct {
    float *b, *l;
} mdl_affine;

typedef struct {
    /* parameters (flat array pointers) */
    mdl_affine an;
    float *inv_w;            /* invconv.weight (plain) */
    float *lu_lower, *lu_upper, *lu_logs;
    float *w1, *w2, *w3;
    mdl_affine an1, an2, c3;
    /* host side of the permutation */
    double *W, *Winv;        /* current invconv matrix, its inverse (C x C, float64) */
    double logabsdet;        /* log|det W| */
    float *lu_p, *lu_sign;   /* fixed LU parts (host) */
    int32_t *perm_host;      /* shuffle.perm (host) */
    /* invconv parameters: one range of the flat arrays (weight, or lower, upper
     * and log_s, which the layout keeps together), at inv_off in the packed
     * arrays of every step; mat_off: this step's C x C matrices in inv_mats/inv_dW */
    float *inv_param;
    size_t inv_nparam, inv_off, mat_off;
    /* backend copies of the permutation (Wdev, Winvdev: inside m->inv_mats) */
    float *Wdev, *Winvdev;
    int32_t *perm, *iperm;
    /* activations of the current batch: out is the step's output; the others are
     * the step's own (store) or shared by every step of the model (the other
     * plans and evaluation, mdl_ensure_batch) */
    float *an_out, *pm, *z1, *a1, *a2, *h, *out;
} mdl_step;

typedef struct {
    int C, H, W;       /* channels and size in this level */
    size_t rows;       /* n * H * W for the current batch */
    mdl_step *steps;
    bk_conv c1, c2, c3, inv, split;
    /* split prior (l < L-1) */
    float *sw;
    mdl_affine sp;
    float *lin;        /* level input (after squeeze) */
    float *pp[2];      /* invert: the steps' ping-pong outputs, scratch of the backward */
    float *sz1, *sh;   /* split prior input (dense z1) and its h */
} mdl_level;

struct glow_model {
    backend *b;
    glow_config cfg;
    glow_paramset layout;  /* names, shapes; data holds the fixed parameters */
    long *offset;          /* per layout entry: flat offset or -1 */
    size_t n_trained;
    float *params, *grads; /* flat, backend */
    int L, K, Wd, E;
    mdl_level *lv;
    /* top prior */
    float *tw, *yw, *cw;
    mdl_affine tp, yp, cp;
    bk_conv top;
    /* batch buffers */
    int n;                 /* batch the buffers are sized for (0: none) */
    int train;             /* buffers kept for backward (as buf_mem says), else shared */
    glow_memory mem;       /* the plan of the next training allocation (set_memory) */
    glow_memory buf_mem;   /* the plan of the current training allocation */
    double *inv_err;       /* invert: per level, the largest relative error of a
                              rebuilt step input in the last backward pass */
    int grad_ready;        /* the last pass was a forward pass on per-step buffers */
    int ncur;              /* images of the last forward pass */
    uint8_t *img;
    float *noise, *x;
    int32_t *labels;
    float *tzero, *thz, *th;
    float *logdet, *logp, *ce;             /* backend, n */
    float *h_bpd, *h_logdet, *h_logp, *h_ce; /* host, n */
    double loss;
    /* gradient scratch */
    float *g_cur, *g_tmp, *g_h, *g_a1, *g_a2, *g_z1;
    /* invconv.c, every step at once: the packed parameters (backend inv_pack;
     * host: h_pack, the last download, and h_prev, those W was computed from), the
     * matrices the passes convolve with (inv_mats: W of every step with lu, then
     * W^-1 of every step; h_mats), dL/dW of every step (inv_dW, h_dW) */
    float *inv_pack, *inv_mats, *inv_dW;
    float *h_pack, *h_prev, *h_mats, *h_dW;
    size_t inv_np, inv_nm;  /* floats of the packed parameters, of one set of matrices */
    int inv_state;          /* 0: nothing computed; 1: W and log|det W| of h_prev (and
                               uploaded); 2: W^-1 too */
    double *hW;            /* host scratch, C x C doubles x 6 (invconv.c) */
    void **bufs;           /* batch buffers, freed when the batch size changes */
    int nbufs, capbufs;
    uint64_t mem_fixed, mem_batch, mem_grads; /* bytes reserved in the memory budget
                                                  (model_mem.c) */
};

/* The gradient of the trained parameter at p (a pointer into m->params): the
 * flat arrays share one layout. */
static inline float *mdl_grad(const glow_model *m, const float *p)
{
    return m->grads + (p - m->params);
}

/* model.c */
/* Buffers for n images; with train, what the backward pass needs under m->mem
 * (docs/model.md section 11: store keeps every step's activations, recompute
 * every step's output, invert the levels' inputs and outputs and every
 * mem.every-th step's input), else two ping-pong outputs per level (evaluation,
 * DDI, inverse). Every step's network and permutation activations lie in one
 * set shared by all steps and levels, except under store. Buffers of a training
 * allocation also serve the other uses. */
void mdl_ensure_batch(glow_model *m, int n, int train);
/* Is the input of step k of a level kept by an invert allocation (the level's
 * input, or every every-th step's)? */
static inline int mdl_kept_input(int k, int every)
{
    return k == 0 || (every > 0 && k % every == 0);
}
/* A model whose parameters are all zero (glow_model_new without its parameter set),
 * for parameters set one at a time (model_load.c): mdl_set_param copies one (by
 * name; a name outside the layout is ignored, a shape that differs an error), and
 * mdl_params_set checks and uploads what the passes derive from the fixed ones
 * (glow_model_set_params is the two). */
glow_model *mdl_new(backend *b, const glow_config *cfg, glow_error *err);
int mdl_set_param(glow_model *m, const glow_param *src, glow_error *err);
int mdl_params_set(glow_model *m, glow_error *err);
/* The gradient array, allocated (and reserved in the budget) on first use. */
void mdl_ensure_grads(glow_model *m);
/* model_mem.c: the memory budget. reserve_fixed: what glow_model_new keeps;
 * reserve_batch: the buffers of mdl_ensure_batch (exits with the message when
 * they do not fit: callers that can fail call glow_model_plan_batch first);
 * release_mem: both. host_backend: the backend's memory is host memory (its
 * buffers count in the budget). */
int mdl_reserve_fixed(glow_model *m, glow_error *err);
void mdl_reserve_batch(glow_model *m, int n, int train);
void mdl_reserve_grads(glow_model *m);
void mdl_release_mem(glow_model *m);
int mdl_host_backend(const backend *b);
/* host layout conversions */
void mdl_nchw_to_nhwc(const float *src, float *dst, int n, int c, int hw);
void mdl_nhwc_to_nchw(const float *src, int ld, float *dst, int n, int c, int hw);

#endif
