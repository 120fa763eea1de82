#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

glow_optim *glow_optim_new(backend *b, glow_optimizer kind, size_t n)
{
    glow_optim *o = xcalloc(1, sizeof *o);
    o->b = b;
    o->kind = kind;
    o->n = n;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->m = b->alloc(b, n * sizeof(float));
    o->v = b->alloc(b, n * sizeof(float));
    return o;
}

void glow_optim_free(glow_optim *o)
{
    if (!o)
        return;
    o->b->free(o->b, o->m);
    o->b->free(o->b, o->v);
    free(o);
}

void glow_optim_step(glow_optim *o, float *params, const float *grads, float lr)
{
    o->t++;
    if (o->kind == OPTIM_ADAM)
        o->b->adam(o->b, params, grads, o->m, o->v, o->n, lr, o->beta1, o->beta2, o->eps, o->t);
    else
        o->b->adamax(o->b, params, grads, o->m, o->v, o->n, lr, o->beta1, o->beta2, o->eps, o->t);
}

double glow_grad_norm(backend *b, const float *g, size_t n) { return sqrt(b->sumsq(b, g, n)); }

double glow_grad_clip(backend *b, float *g, size_t n, double max_norm)
{
    double norm = glow_grad_norm(b, g, n);
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1 */
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        b->scale(b, g, n, (float)coef);
    return norm;
}

void glow_ema_update(backend *b, float *e, const float *p, size_t n, float decay)
{
    b->ema(b, e, p, n, decay);
}
