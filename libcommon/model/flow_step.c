/* One flow step (docs/model.md section 3): actnorm, then the permutation (reverse, shuffle
 * or invconv), then the affine or additive coupling with its network f. Each
 * layer has its forward, backward and inverse side by side; the step functions
 * at the end chain them.
 *
 * Buffers of a step (mdl_step): an_out = actnorm output, pm = permutation output,
 * z1 = the dense first half of pm (f's input), a1, a2 = f's hidden activations,
 * h = f's output, out = the step's output. The backward pass reads them, so they
 * must be the ones of the forward pass being differentiated. Gradients flow
 * through the model's scratch: g_cur (the running dL/dz), g_tmp, and g_h, g_a2,
 * g_a1, g_z1 for f. */
#include "flow_step.h"

#include "backend/backend.h"
#include "invconv.h"

/* ---- actnorm: an_out = (in + bias) * exp(3 logs), logdet hw * sum(3 logs) ---- */

static void actnorm_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *in,
                        int ddi)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C;
    const float hw = (float)(lv->H * lv->W);
    if (ddi)
        b->actnorm_ddi(b, in, C, P, C, s->an.b, s->an.l);
    b->actnorm_fwd(b, in, C, s->an_out, C, P, C, s->an.b, s->an.l, 0);
    b->sum_into(b, s->an.l, C, 3.0f * hw, m->logdet, m->ncur);
}

/* dy in g_tmp -> dx in g_cur */
static void actnorm_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, double g_total)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C;
    const double hw = (double)lv->H * lv->W;
    b->actnorm_bwd(b, m->g_tmp, C, s->an_out, C, m->g_cur, C, P, C, s->an.l, 0,
                   mdl_grad(m, s->an.b), mdl_grad(m, s->an.l));
    /* the logdet's own gradient: d(hw * sum(3 logs))/dlogs */
    b->add_scalar(b, mdl_grad(m, s->an.l), (size_t)C, (float)(3.0 * hw * g_total));
}

static void actnorm_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, float *x)
{
    m->b->actnorm_inv(m->b, s->an_out, lv->C, x, lv->C, lv->rows, lv->C, s->an.b, s->an.l);
}

/* ---- permutation: an_out -> pm; reverse and shuffle gather channels (no
 * logdet), invconv is a 1x1 convolution (invconv.c) ---- */

static void perm_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s)
{
    if (s->perm)
        m->b->gather_channels(m->b, s->an_out, s->pm, lv->rows, lv->C, s->perm);
    else
        mdl_invconv_fwd(m, lv, s, s->an_out, s->pm);
}

/* The same output without the logdet (recomputed in the backward pass). */
static void perm_redo(glow_model *m, const mdl_level *lv, const mdl_step *s)
{
    if (s->perm)
        m->b->gather_channels(m->b, s->an_out, s->pm, lv->rows, lv->C, s->perm);
    else
        mdl_invconv_apply(m, lv, s, s->an_out, s->pm);
}

/* dy in g_cur -> dx in g_tmp (the invconv parameters' gradients follow in
 * mdl_invconv_grads, after every step) */
static void perm_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s)
{
    if (s->perm)
        m->b->gather_channels(m->b, m->g_cur, m->g_tmp, lv->rows, lv->C, s->iperm);
    else
        mdl_invconv_bwd(m, lv, s, m->g_cur, m->g_tmp);
}

static void perm_inv(glow_model *m, const mdl_level *lv, const mdl_step *s)
{
    if (s->perm)
        m->b->gather_channels(m->b, s->pm, s->an_out, lv->rows, lv->C, s->iperm);
    else
        mdl_invconv_inv(m, lv, s, s->pm, s->an_out);
}

/* ---- the coupling network f: z1 -> h (docs/model.md section 3) ---- */

/* conv then actnorm (+ReLU) or zeros-layer scale, fused on the backend; with ddi
 * the actnorm is first initialised from the conv's output, which needs the two
 * apart. */
static void conv_affine(glow_model *m, const bk_conv *c, const float *x, const float *w,
                        mdl_affine a, int relu, int ddi, float *y)
{
    backend *b = m->b;
    if (!ddi) {
        b->conv_fwd_affine(b, c, x, w, a.b, a.l, relu, y);
        return;
    }
    const size_t rows = (size_t)c->n * c->h * c->w;
    b->conv_fwd(b, c, x, w, y);
    b->actnorm_ddi(b, y, c->cout, rows, c->cout, a.b, a.l);
    b->actnorm_fwd(b, y, c->cout, y, c->cout, rows, c->cout, a.b, a.l, relu);
}

/* f's layers and parameters, for the backend's net_fwd and net_bwd */
static bk_net net_of(const mdl_level *lv, const mdl_step *s)
{
    const bk_net n = {{lv->c1, lv->c2, lv->c3},
                      {s->w1, s->w2, s->w3},
                      {s->an1.b, s->an2.b, s->c3.b},
                      {s->an1.l, s->an2.l, s->c3.l}};
    return n;
}

/* conv3 is a zeros layer, not an actnorm: DDI leaves it alone. Without DDI the
 * backend runs the three layers in one call (net_fwd). */
static void net_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, int ddi)
{
    if (!ddi) {
        const bk_net n = net_of(lv, s);
        m->b->net_fwd(m->b, &n, s->z1, s->a1, s->a2, s->h);
        return;
    }
    conv_affine(m, &lv->c1, s->z1, s->w1, s->an1, 1, ddi, s->a1);
    conv_affine(m, &lv->c2, s->a1, s->w2, s->an2, 1, ddi, s->a2);
    conv_affine(m, &lv->c3, s->a2, s->w3, s->c3, 0, 0, s->h);
}

/* dL/dh in g_h -> dL/dz1 in g_z1 (the backend runs the three layers in one call) */
static void net_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s)
{
    const bk_net n = net_of(lv, s);
    float *dw[3] = {mdl_grad(m, s->w1), mdl_grad(m, s->w2), mdl_grad(m, s->w3)};
    float *db[3] = {mdl_grad(m, s->an1.b), mdl_grad(m, s->an2.b), mdl_grad(m, s->c3.b)};
    float *dl[3] = {mdl_grad(m, s->an1.l), mdl_grad(m, s->an2.l), mdl_grad(m, s->c3.l)};
    m->b->net_bwd(m->b, &n, s->z1, s->a1, s->a2, s->h, m->g_h, m->g_a2, m->g_a1, m->g_z1, dw, db, dl);
}

/* ---- coupling: pm -> out; z1 passes through, z2 is shifted (and scaled) by
 * h = f(z1); logdet sum(log scale) for affine ---- */

static void coupling_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, int ddi)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C;
    b->copy_cols(b, s->z1, C / 2, s->pm, C, P, C / 2, 0);
    net_fwd(m, lv, s, ddi);
    b->copy_cols(b, s->out, C, s->pm, C, P, C / 2, 0);
    b->coupling_fwd(b, m->cfg.coupling == COUPLING_AFFINE, s->pm + C / 2, C, s->h, s->out + C / 2,
                    C, m->ncur, (size_t)lv->H * lv->W, C / 2, m->logdet);
}

/* dy in g_cur -> dx in g_cur: z2's gradient in place, then f's gradient added to
 * z1's, which passed through */
static void coupling_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, float g_ld)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C;
    float *g = m->g_cur;
    b->coupling_bwd(b, m->cfg.coupling == COUPLING_AFFINE, g + C / 2, C, s->out + C / 2, C, s->h,
                    g + C / 2, C, m->g_h, P, C / 2, g_ld);
    net_bwd(m, lv, s);
    b->copy_cols(b, g, C, m->g_z1, C / 2, P, C / 2, 1);
}

/* out in cur -> pm; z1 is the output's first half, so f can be recomputed (and
 * its activations, z1, a1, a2 and h, are those the backward pass needs) */
static void coupling_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *cur)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C;
    b->copy_cols(b, s->z1, C / 2, cur, C, P, C / 2, 0);
    net_fwd(m, lv, s, 0);
    b->copy_cols(b, s->pm, C, cur, C, P, C / 2, 0);
    b->coupling_inv(b, m->cfg.coupling == COUPLING_AFFINE, cur + C / 2, C, s->h, s->pm + C / 2, C,
                    P, C / 2);
}

/* ---- the step ---- */

void mdl_step_fwd(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *in,
                  int ddi)
{
    actnorm_fwd(m, lv, s, in, ddi);
    perm_fwd(m, lv, s);
    coupling_fwd(m, lv, s, ddi);
}

void mdl_step_bwd(glow_model *m, const mdl_level *lv, const mdl_step *s, float g_ld)
{
    /* every image has the same dL/dlogdet; the parameters see their sum */
    const double g_total = (double)g_ld * m->ncur;
    coupling_bwd(m, lv, s, g_ld);
    perm_bwd(m, lv, s);
    actnorm_bwd(m, lv, s, g_total);
}

void mdl_step_redo(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *in)
{
    backend *b = m->b;
    const int C = lv->C;
    b->actnorm_fwd(b, in, C, s->an_out, C, lv->rows, C, s->an.b, s->an.l, 0);
    perm_redo(m, lv, s);
    b->copy_cols(b, s->z1, C / 2, s->pm, C, lv->rows, C / 2, 0);
    net_fwd(m, lv, s, 0);
}

void mdl_step_inv(glow_model *m, const mdl_level *lv, const mdl_step *s, const float *out,
                  float *in)
{
    coupling_inv(m, lv, s, out);
    perm_inv(m, lv, s);
    actnorm_inv(m, lv, s, in);
}
