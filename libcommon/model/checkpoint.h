/* Glow checkpoints (docs/model.md section 8): one safetensors file holding the model config
 * in its metadata and every parameter of the layout (params.h) as a tensor.
 *
 * Training state, our extension of docs/model.md (docs/checkpoints.md):
 *   tensors  optim.<param>.m, optim.<param>.v  for every trained parameter: Adam's
 *            first and second moments; for Adamax, v holds the infinity norm u;
 *            ema.<param>                        for every parameter: the moving average
 *                                               of the weights (fixed ones copied);
 *   metadata "step", "images_seen"  decimal integers (also kept in weights-only files);
 *            "optimizer"            "adam" or "adamax", present exactly with optim.*;
 *            "rng"                  "SEED STREAM INDEX" in decimal (a glow_rng);
 *            "train_config"         a JSON string, opaque to this module;
 *            any other key          kept as an extra string, round-tripped untouched.
 * A weights-only file has no optim.* / ema.* tensors and no "optimizer" or "rng". */
#ifndef GLOW_CHECKPOINT_H
#define GLOW_CHECKPOINT_H

#include <stdint.h>

#include "base/rng.h"
#include "config/glow_config.h"
#include "data/safetensors.h"
#include "params.h"

typedef struct {
    char *key, *value;
} glow_meta_kv;

/* The tensor sets of a checkpoint, for glow_ckpt_fetch_fn. */
enum { GLOW_CK_PARAMS = 0, GLOW_CK_OPTIM_M = 1, GLOW_CK_OPTIM_V = 2, GLOW_CK_EMA = 3 };
/* Bytes [offset, offset + nbytes) of tensor p of set (GLOW_CK_*) into dst. */
typedef void (*glow_ckpt_fetch_fn)(void *ctx, int set, const glow_param *p, size_t offset, void *dst,
                                   size_t nbytes);

typedef struct {
    glow_config cfg;
    glow_paramset params;           /* every parameter of the layout, layout order */
    int has_optim;
    glow_paramset optim_m, optim_v; /* trained parameters only, in layout order */
    int has_ema;
    glow_paramset ema;              /* every parameter, in layout order */
    int64_t step, images_seen;
    char *optimizer;                /* "adam" | "adamax" with has_optim, else NULL */
    char *rng;                      /* "SEED STREAM INDEX" or NULL */
    char *train_config;             /* JSON text or NULL */
    glow_meta_kv *extra;            /* other metadata, in file order */
    int n_extra;
    uint64_t mem;                   /* bytes of tensors reserved in the memory budget */
    glow_ckpt_fetch_fn fetch;       /* glow_checkpoint_init_fetched: where the trained */
    void *fetch_ctx;                /* tensors' bytes are (their data NULL here) */
} glow_checkpoint;

/* A fresh checkpoint for cfg: the layout zero-filled, no training state.
 * Returns 0, or -1 with err naming the bad config key. */
int glow_checkpoint_init(glow_checkpoint *ck, const glow_config *cfg, glow_error *err);

/* The same for a checkpoint that a trainer writes from its own arrays: the fixed
 * parameters are held here (and an EMA's copy of them), the trained ones and the
 * optimizer moments have data NULL, and glow_checkpoint_save takes their bytes
 * from fetch tensor by tensor, in pieces: no host copy of the weights, the
 * moments or the EMA (on config B that copy was 3 x 170 MiB of a 1.3 GiB run). */
int glow_checkpoint_init_fetched(glow_checkpoint *ck, const glow_config *cfg, glow_ckpt_fetch_fn fetch,
                                 void *ctx, glow_error *err);

/* Add zeroed optimizer moments for `optimizer` ("adam" or "adamax") and, with
 * with_ema, an EMA initialised to a copy of the current parameters. Replaces any
 * training state already there. Returns 0, or -1 for an unknown optimizer. */
int glow_checkpoint_add_training_state(glow_checkpoint *ck, const char *optimizer, int with_ema,
                                       glow_error *err);
/* Drop optimizer moments, EMA, optimizer name and RNG state (a weights-only file). */
void glow_checkpoint_drop_training_state(glow_checkpoint *ck);

/* Load and validate (path "-": standard input): the one validation path of every
 * tool that loads a checkpoint to use it (glow_model_load, glow-train --init and
 * --resume, glow-ckpt --verify and --export-weights), so that a file one of them
 * accepts every other accepts too. Rejects, with a message naming the file and
 * the tensor or key: a malformed safetensors file (data/safetensors.h), unknown
 * format or version, a bad model config, a model with more parameters than the
 * file's tensors hold (found before anything of its size is allocated), missing
 * or extra tensors (extra: neither a parameter nor a matching optim./ema.
 * entry), wrong dtype or shape, non-finite floats, bad step/images_seen/
 * optimizer/rng values, optimizer metadata without moments (or the reverse), and
 * everything glow_checkpoint_verify finds. The file and the tensors are reserved
 * in the memory budget (base/mem_budget.h) before they are allocated. */
int glow_checkpoint_load(const char *path, glow_checkpoint *ck, glow_error *err);

/* ---- Weights only: what a tool that evaluates or samples reads ----
 * glow_checkpoint_load_weights reads the header (data/safetensors.h st_open) and
 * makes the checks of glow_checkpoint_load that need no tensor data on the whole
 * file (format, version, the model config, a model no bigger than the tensors,
 * every tensor's name, dtype and shape, missing and extra tensors, the metadata),
 * then reads only the tensors it hands on, in the order of the file: every
 * parameter, or with use_ema the ema.* copy of each (and the fixed parameters, to
 * check that the EMA's equal them). Those get the checks of glow_checkpoint_load
 * on their values (finite, glow_checkpoint_verify's invconv, LU and shuffle
 * checks); optim.* tensors and, without use_ema, ema.* tensors are neither read
 * nor allocated, so their values are not checked (glow-ckpt --verify does). Each
 * parameter goes to the sink as it is read (one tensor held at a time), so a
 * model can take its weights without a second full copy on the host. */
typedef struct {
    glow_config cfg;
    int64_t step, images_seen;
    int has_optim, has_ema; /* optim.* / ema.* tensors are in the file */
} glow_weights_info;

typedef struct {
    /* After the checks of the whole file, before any tensor is read: 0, or -1 with
     * err set (the load stops; e.g. use_ema without has_ema). */
    int (*begin)(void *ctx, const glow_weights_info *info, glow_error *err);
    /* Each parameter of the layout once (an EMA tensor under its parameter's
     * name), its data valid during the call: 0, or -1 with err set. */
    int (*param)(void *ctx, const glow_param *p, glow_error *err);
} glow_weights_sink;

/* Returns 0, or -1 with err naming the file and the first problem (and how many
 * more the checks of the whole file found), or the sink's error. */
int glow_checkpoint_load_weights(const char *path, int use_ema, const glow_weights_sink *sink,
                                 void *ctx, glow_error *err);

/* Receives each problem found, one message at a time. */
typedef void (*glow_problem_fn)(void *ctx, const char *msg);

/* Like glow_checkpoint_load, but reports every problem through fn instead of
 * stopping at the first one (the deeper checks run when the rest passed).
 * Returns the number of problems: 0 means ck is loaded (free it), otherwise ck
 * is left empty. */
int glow_checkpoint_check(const char *path, glow_checkpoint *ck, glow_problem_fn fn, void *ctx);

/* The same on a safetensors file already loaded (f->path names it in messages). */
int glow_checkpoint_check_st(const st_file *f, glow_checkpoint *ck, glow_problem_fn fn,
                             void *ctx);
/* Only the checks that make ck a readable checkpoint, without the deeper ones
 * (glow-ckpt's summary and --list of a checkpoint --verify would refuse). */
int glow_checkpoint_inspect_st(const st_file *f, glow_checkpoint *ck, glow_problem_fn fn,
                               void *ctx);

/* The checks that need the math (on a loaded checkpoint, weights and EMA):
 * invconv W invertible (float64 LU), LU p a permutation matrix, sign_s entries
 * +-1, shuffle.perm a permutation of 0..C-1, EMA of fixed parameters equal to
 * them, optimizer second moments non-negative. Returns the number of problems.
 * Messages name the tensor, not the file. */
int glow_checkpoint_verify(const glow_checkpoint *ck, glow_problem_fn fn, void *ctx);

/* Write atomically (temp file, fsync, rename). Tensors: parameters in layout
 * order, then optim.*, then ema.*. Returns 0 or -1 with err set. */
int glow_checkpoint_save(const char *path, const glow_checkpoint *ck, glow_error *err);

void glow_checkpoint_free(glow_checkpoint *ck);

/* Extra metadata (keys other than the reserved format, version, model, step,
 * images_seen, optimizer, rng, train_config, which live in the fields above).
 * meta returns NULL when absent or reserved; set_meta replaces a value and returns
 * -1 for a reserved key. */
const char *glow_checkpoint_meta(const glow_checkpoint *ck, const char *key);
int glow_checkpoint_set_meta(glow_checkpoint *ck, const char *key, const char *value);

/* The RNG position as stored in "rng". get returns -1 when absent or malformed. */
void glow_checkpoint_set_rng(glow_checkpoint *ck, const glow_rng *r);
int glow_checkpoint_get_rng(const glow_checkpoint *ck, glow_rng *r);
/* Replace train_config (NULL removes it). */
void glow_checkpoint_set_train_config(glow_checkpoint *ck, const char *json);

/* Tensor NAME of an open safetensors file as a new float array (converted from
 * F32, F64, I32, I64 or U8). With ndim >= 0 its shape must equal shape[0..ndim).
 * Returns the array (caller frees; its element count is the tensor's) or NULL with
 * err naming the file and the tensor. */
float *glow_st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                        glow_error *err);

#endif
