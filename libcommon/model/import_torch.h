/* Glow checkpoints of PyTorch ports turned into ours (glow-ckpt import,
 * docs/checkpoints.md "Importing PyTorch checkpoints").
 *
 * Imported exactly, their tensors recognised by name: y0ast/Glow-PyTorch
 * (flow.layers.N.block.*, learn_top_fn, project_ycond, project_class) and
 * chaiyujin/glow-pytorch (flow.layers.N.f.*, learn_top, ...). Both are the model
 * of docs/model.md without the edge channel; their actnorms exponentiate the
 * stored log-scale itself, so ours is theirs / 3; their zeros layers and linear
 * layers already use the factor 3 and map as they are. The model config comes
 * from the tensors (levels, steps, channels, width, coupling, invconv or LU,
 * learned top, class conditioning and the number of classes; the image size from
 * the prior_h buffer) and from the options below for what they do not record.
 *
 * Refused, with the reason: rosinality/glow-pytorch and dajinstory/glow-pytorch
 * (the seed), whose models differ from ours; a shuffle permutation (the ports do
 * not save it); anything else not named like either port. */
#ifndef GLOW_IMPORT_TORCH_H
#define GLOW_IMPORT_TORCH_H

#include "data/torch_state.h"
#include "checkpoint.h"

/* What the port's model was fed, folded into the first actnorm so that our
 * pipeline (docs/model.md section 2) feeds the imported model the same values:
 *   CENTERED  x = u / 2^n_bits - 0.5 + noise   (y0ast's preprocessing, ours)
 *   UNIT      x = u / 255 + noise              (torchvision's ToTensor, which
 *                                               chaiyujin's trainer feeds unchanged;
 *                                               8 bits only) */
typedef enum { IMPORT_INPUT_PORT = 0, IMPORT_INPUT_CENTERED, IMPORT_INPUT_UNIT } glow_import_input;

typedef struct {
    int image_h, image_w;    /* 0: from the prior_h buffer (which must agree otherwise) */
    int n_bits;              /* 0: 8 */
    int reverse;             /* the model used the 'reverse' permutation (nothing saved) */
    double weight_y;         /* < 0: 0.01; 0 drops the class head (project_class) */
    glow_import_input input; /* PORT: the port's own (y0ast centered, chaiyujin unit) */
} glow_import_opts;

void glow_import_opts_default(glow_import_opts *o);

/* Map a state dict to a fresh weights-only checkpoint (step 0), checked with
 * glow_checkpoint_verify. The checkpoint's metadata names the port
 * ("imported_from"). Returns 0, or -1 with err "FILE: reason" naming the tensor. */
int glow_import_torch(const torch_state *sd, const glow_import_opts *o, glow_checkpoint *ck,
                      glow_error *err);

/* torch_state_load and glow_import_torch. */
int glow_import_torch_file(const char *path, const glow_import_opts *o, glow_checkpoint *ck,
                           glow_error *err);

#endif
