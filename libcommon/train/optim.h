/* Optimizers over a model's flat trained-parameter array (model.h), exactly as
 * PyTorch's torch.optim.Adam and torch.optim.Adamax (no weight decay, no amsgrad),
 * run as backend ops; plus the gradient norm (for clipping) and the EMA update. */
#ifndef GLOW_OPTIM_H
#define GLOW_OPTIM_H

#include <stddef.h>

#include "backend/backend.h"
#include "config/train_config.h"

typedef struct {
    backend *b;
    glow_optimizer kind;
    size_t n;
    float beta1, beta2, eps; /* defaults 0.9, 0.999, 1e-8 */
    long t;                  /* steps taken */
    float *m, *v;            /* backend arrays of n: first moment; second moment (Adam)
                                or infinity norm u (Adamax) */
} glow_optim;

/* Zeroed state for n parameters. */
glow_optim *glow_optim_new(backend *b, glow_optimizer kind, size_t n);
void glow_optim_free(glow_optim *o);
/* One step: t += 1, then p -= update(g) with learning rate lr. */
void glow_optim_step(glow_optim *o, float *params, const float *grads, float lr);

/* L2 norm of g (n elements), deterministic. */
double glow_grad_norm(backend *b, const float *g, size_t n);
/* Clip: scale g so its norm is at most max_norm; returns the norm before. */
double glow_grad_clip(backend *b, float *g, size_t n, double max_norm);
/* e = decay * e + (1 - decay) * p */
void glow_ema_update(backend *b, float *e, const float *p, size_t n, float decay);

#endif
