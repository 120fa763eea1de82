/* The Glow model of docs/model.md sections 2-7 on a compute backend (backend.h).
 *
 * A model holds its trained parameters in one flat backend array (the trained
 * parameters of the params.h layout, in layout order, each at the offset that
 * glow_model_param_offset gives) and their gradients in a second array of the same
 * layout, so an optimizer (optim.h) updates everything with one op. The fixed
 * parameters (invconv.p, invconv.sign_s, shuffle.perm) stay with the model.
 *
 * Buffers for a batch size are allocated on first use of that size and kept; the
 * forward pass stores what the backward pass needs, as the model's memory plan
 * (glow_memory, train.memory) says. The gradient array is allocated by the first
 * backward pass (or glow_model_grads), so a model that only evaluates or samples
 * holds its parameters once. Images are uint8 NCHW on the host; latents and
 * dequantised inputs cross the API as float NCHW host arrays. */
#ifndef GLOW_MODEL_H
#define GLOW_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "config/glow_config.h"
#include "config/train_config.h"
#include "params.h"

typedef struct glow_model glow_model;

/* A batch of images (host memory). */
typedef struct {
    int n;
    const uint8_t *images;  /* n x C0 x H x W, NCHW */
    const float *noise;     /* n x C0 x H x W dequantisation noise in [0, 1/n_bins), or
                               NULL: drawn from (seed, RNG_STREAM_DEQUANT), see
                               backend.h dequantize, image i at index first + i */
    uint64_t seed, first;
    const int32_t *labels;  /* n labels; required with y_condition */
} glow_batch;

/* Per-image results of the last forward pass (host arrays of n, owned by the
 * model, valid until the next call). */
typedef struct {
    int n;
    double loss;         /* training loss: mean over images of bpd + weight_y*ce/ln2 */
    const float *bpd;    /* bits per dimension */
    const float *logdet; /* sum of every logdet (without -D log n_bins) */
    const float *logp;   /* sum of every prior log-density */
    const float *ce;     /* class-head cross-entropy (nats), 0 without the head */
} glow_result;

/* What the forward pass of training keeps for the backward pass (train.memory,
 * train.memory_every; docs/model.md section 11). store: every step's activations.
 * recompute: every step's output; the backward pass runs each step's actnorm,
 * permutation and coupling network again from its input (the bits of store).
 * invert: each level's input and output, and with every > 0 the input of every
 * every-th step; the backward pass rebuilds each step's input from its output
 * by the inverse, whose network forward also serves the gradient, so the
 * activation memory does not depend on K (with every = 0). */
typedef struct {
    glow_memory_mode mode;
    int every;
} glow_memory;
/* The plan of the model's training allocations (default: store). A change takes
 * effect at the next training forward pass (its buffers are made anew). */
void glow_model_set_memory(glow_model *m, const glow_memory *mem);
/* invert: the largest relative error of a step input rebuilt by the last backward
 * pass, ||rebuilt - kept|| / ||kept|| (2-norms over the batch) where the kept
 * input is there to compare with (each level's input, every every-th step's);
 * per_level (may be NULL) gets the largest of each level. 0 in the other plans. */
double glow_model_inv_error(const glow_model *m, double *per_level);

/* The memory of a model of config c, from the config alone (nothing allocated;
 * model_mem.c): every parameter's bytes and the trained count, what the model
 * keeps for its life on the host and on the backend, the gradient array of
 * training, and what the buffers of a batch of `batch` images take (0: none),
 * with train as glow_model_forward allocates them under the plan mem (NULL:
 * store) or as eval does. A backend's own workspace (oneDNN scratchpads, cuDNN
 * workspaces) is not in the parts; glow_model_mem_total allows a quarter of the
 * batch's buffers for it on the CPU. */
typedef struct {
    uint64_t params, trained;          /* bytes of all parameters; trained float count */
    uint64_t fixed_host, fixed_dev;    /* the model itself */
    uint64_t grads_dev;                /* the gradient array (train only) */
    uint64_t batch_host, batch_dev;    /* the buffers of one batch size */
} glow_model_mem_parts;
int glow_model_mem(const glow_config *c, int batch, int train, const glow_memory *mem,
                   glow_model_mem_parts *out, glow_error *err);
/* Host bytes of p, plus the backend's (gradients included) and its workspace when
 * device_counts (a backend on host memory, the CPU). */
uint64_t glow_model_mem_total(const glow_model_mem_parts *p, int device_counts);
/* Would the buffers of a batch of n images (train: for forward and backward, under
 * the model's plan) fit the memory budget? Returns 0, or -1 with err saying what
 * they need. The passes check this themselves; a tool calls it to refuse a --batch
 * before it starts. */
int glow_model_plan_batch(glow_model *m, int n, int train, glow_error *err);

/* Build from a config and a full parameter set (copied to the backend). The
 * model's own memory is reserved in the budget first (an error when it does not
 * fit). The model keeps no host copy of its trained parameters. */
glow_model *glow_model_new(backend *b, const glow_config *cfg, const glow_paramset *ps,
                           glow_error *err);
void glow_model_free(glow_model *m);

/* Parameters. set: every parameter of ps whose name the layout has is copied in
 * (fixed ones included); shapes must match. get: fills every parameter of ps (a
 * layout of this config, e.g. from glow_paramset_layout) from the model, but for
 * those without data (a fetched checkpoint's trained tensors). */
int glow_model_set_params(glow_model *m, const glow_paramset *ps, glow_error *err);
void glow_model_get_params(glow_model *m, glow_paramset *ps);

/* The flat trained arrays (backend memory) and their element count; the gradient
 * array is allocated on the first call (or backward pass). */
float *glow_model_params(glow_model *m);
float *glow_model_grads(glow_model *m);
size_t glow_model_n_trained(const glow_model *m);
/* Offset of a trained parameter in the flat arrays, or -1 (fixed or unknown). */
long glow_model_param_offset(const glow_model *m, const char *name);
/* Copy between a host paramset (any subset of the layout's trained parameters, by
 * name, e.g. a checkpoint's optim.m set) and a flat backend array of this layout. */
void glow_model_flat_upload(glow_model *m, float *flat, const glow_paramset *ps);
void glow_model_flat_download(glow_model *m, const float *flat, glow_paramset *ps);

/* Forward pass: fills r (may be NULL) and keeps what the backward pass needs
 * (glow_memory). Returns 0 or -1 with err set (empty batch, labels missing or out
 * of range). */
int glow_model_forward(glow_model *m, const glow_batch *b, glow_result *r, glow_error *err);
/* The same results without keeping activations for backward: the steps of a level
 * share buffers, so large batches fit (scoring, evaluation). */
int glow_model_eval(glow_model *m, const glow_batch *b, glow_result *r, glow_error *err);
/* Gradient of the loss of the last forward pass into glow_model_grads (overwritten).
 * Returns -1 with err set when the last pass was not glow_model_forward (or an eval
 * on a training allocation) or was followed by inverse/sample. */
int glow_model_backward(glow_model *m, glow_error *err);
/* Data-dependent init (docs/model.md section 5) of every actnorm on this batch, in network
 * order, with shared buffers as eval; also leaves the forward results of the
 * initialised model in r. */
int glow_model_ddi(glow_model *m, const glow_batch *b, glow_result *r, glow_error *err);

/* Latents of the last forward pass, NCHW host arrays for its n images. Index
 * 0..L-2: the z2 of split l; L-1: the top z. shape: [n, C, H, W]. */
int glow_model_n_latents(const glow_model *m);
void glow_model_latent_shape(const glow_model *m, int idx, int n, int shape[4]);
void glow_model_get_latent(glow_model *m, int idx, float *out);
/* The dequantised input of the last forward pass, [n, C0, H, W]. */
void glow_model_get_x(glow_model *m, float *out);

/* Inverse: latents (NCHW, as glow_model_get_latent gives them) of n images -> x
 * [n, C0, H, W]. */
void glow_model_inverse(glow_model *m, int n, const float *const *z, float *x);
/* Sampling (docs/model.md section 7) at temperature T with noise from seed and stream
 * RNG_STREAM_SAMPLE + ((level + 1) << 32), image i at index first + i (backend.h
 * gauss_sample), so an image does
 * not depend on the batch it is drawn in. labels: n class labels with
 * y_condition (NULL: class 0). Writes uint8 images (n x C0 x H x W) and, when x
 * is not NULL, the float x before quantisation. */
void glow_model_sample(glow_model *m, int n, float temperature, uint64_t seed, uint64_t first,
                       const int32_t *labels, uint8_t *images, float *x);

/* ---- Latents for the latent tools (docs/model.md section 10.8) ----
 * Encoding is glow_model_eval (or _forward) followed by glow_model_get_eps;
 * decoding is glow_model_decode then glow_model_quantize. */

/* Standardised latents of the last forward or eval pass, NCHW host arrays as
 * glow_model_get_latent gives them (same index and shape): eps = (z - mean) /
 * exp(logs) under the level's prior, a split prior's from the level's z1, the top
 * prior's from h(y) for the batch's labels. */
void glow_model_get_eps(glow_model *m, int idx, float *out);
/* Latents of n images -> x [n, C0, H, W] (host). lat: one NCHW array per level as
 * glow_model_get_latent gives them; standardized: lat holds eps, and each level's
 * z = mean + exp(logs) * eps * t[i] with its prior's mean and log-scale (the
 * sampling formula of section 7: the normals of glow_model_sample_eps and t = T
 * give glow_model_sample's x bit for bit); else lat holds z, used as z * t[i].
 * t: n factors (NULL: all 1). labels: n class labels with y_condition (NULL:
 * class 0). Returns 0, or -1 with err set (a label out of range). */
int glow_model_decode(glow_model *m, int n, const float *const *lat, int standardized,
                      const float *t, const int32_t *labels, float *x, glow_error *err);
/* The standard normals glow_model_sample draws for images first..first+n-1, one
 * NCHW array per level (shapes of glow_model_latent_shape), drawn on the backend
 * exactly as the sampler draws them. */
void glow_model_sample_eps(glow_model *m, int n, uint64_t seed, uint64_t first,
                           float *const *eps);
/* x [count] to uint8 as glow_model_sample does: clip(floor((x + 0.5) * n_bins) *
 * (256 / n_bins), 0, 255) in float64, NaN to 0 (docs/model.md section 2). */
void glow_model_quantize(const glow_model *m, size_t count, const float *x, uint8_t *images);

/* Fresh parameters (docs/model.md section 5) into ps, a layout of cfg: conv1/conv2 weights
 * N(0, 0.05^2), invconv a random orthogonal matrix (Q of the QR decomposition of a
 * Gaussian matrix; with lu its P, L, U factors), shuffle a random permutation,
 * everything else (actnorms, zeros layers, y_emb, classifier) zero. The actnorms
 * then want glow_model_ddi. Draws from (seed, RNG_STREAM_INIT). */
void glow_params_init(const glow_config *cfg, glow_paramset *ps, uint64_t seed);

#endif
