/* Forward pass, data-dependent init and backward pass (spec sections 2-6). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define LN2 0.69314718055994530942

static int coupling_out(const glow_model *m, int C)
{
    return m->cfg.coupling == COUPLING_AFFINE ? C : C / 2;
}

/* A zeros layer / actnorm applied in place, with the optional DDI before it. */
static void affine_apply(glow_model *m, float *x, size_t rows, int c, mdl_affine a, int relu,
                         int ddi)
{
    if (ddi)
        m->b->actnorm_ddi(m->b, x, c, rows, c, a.b, a.l);
    m->b->actnorm_fwd(m->b, x, c, x, c, rows, c, a.b, a.l, relu);
}

/* conv then actnorm / zeros-layer scale (+ReLU); with ddi the actnorm is first
 * initialised from the conv's output. */
static void conv_affine(glow_model *m, const bk_conv *c, const float *x, const float *w,
                        mdl_affine a, int relu, int ddi, float *y)
{
    backend *b = m->b;
    if (!ddi) {
        b->conv_fwd_affine(b, c, x, w, a.b, a.l, relu, y);
        return;
    }
    b->conv_fwd(b, c, x, w, y);
    affine_apply(m, y, (size_t)c->n * c->h * c->w, c->cout, a, relu, 1);
}

/* h = f(z1) of a step's coupling (z1 dense in s->z1). */
void mdl_step_net(glow_model *m, mdl_level *lv, mdl_step *s, int ddi)
{
    conv_affine(m, &lv->c1, s->z1, s->w1, s->an1, 1, ddi, s->a1);
    conv_affine(m, &lv->c2, s->a1, s->w2, s->an2, 1, ddi, s->a2);
    conv_affine(m, &lv->c3, s->a2, s->w3, s->c3, 0, 0, s->h);
}

static void step_fwd(glow_model *m, mdl_level *lv, mdl_step *s, const float *in, int ddi)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C, n = m->ncur;
    const float hw = (float)(lv->H * lv->W);
    if (ddi)
        b->actnorm_ddi(b, in, C, P, C, s->an.b, s->an.l);
    b->actnorm_fwd(b, in, C, s->an_out, C, P, C, s->an.b, s->an.l, 0);
    b->sum_into(b, s->an.l, C, 3.0f * hw, m->logdet, n);
    if (s->perm) {
        b->gather_channels(b, s->an_out, s->pm, P, C, s->perm);
    } else {
        b->conv_fwd(b, &lv->inv, s->an_out, s->inv_w ? s->inv_w : s->Wdev, s->pm);
        b->add_scalar(b, m->logdet, (size_t)n, (float)(hw * s->logabsdet));
    }
    b->copy_cols(b, s->z1, C / 2, s->pm, C, P, C / 2, 0);
    mdl_step_net(m, lv, s, ddi);
    b->copy_cols(b, s->out, C, s->pm, C, P, C / 2, 0);
    b->coupling_fwd(b, m->cfg.coupling == COUPLING_AFFINE, s->pm + C / 2, C, s->h, s->out + C / 2,
                    C, n, (size_t)lv->H * lv->W, C / 2, m->logdet);
}

/* h of the top prior for the current labels (thz: the learned zeros layer part). */
static void top_prior_h(glow_model *m)
{
    backend *b = m->b;
    mdl_level *top = &m->lv[m->L - 1];
    const size_t Pt = top->rows;
    const int C2 = 2 * top->C;
    if (m->cfg.learn_top) {
        b->conv_fwd_affine(b, &m->top, m->tzero, m->tw, m->tp.b, m->tp.l, 0, m->thz);
    } else {
        b->fill(b, m->thz, 0.0f, Pt * C2);
    }
    b->copy(b, m->th, m->thz, Pt * C2 * sizeof(float));
    if (m->cfg.y_condition)
        b->yemb_fwd(b, m->th, m->ncur, (size_t)top->H * top->W, C2, m->cfg.n_classes, m->labels,
                    m->yw, m->yp.b, m->yp.l);
}

static int load_batch(glow_model *m, const glow_batch *bt, int train, glow_error *err)
{
    const glow_config *c = &m->cfg;
    if (bt->n <= 0) {
        glow_errorf(err, "empty batch");
        return -1;
    }
    if (c->y_condition) {
        if (!bt->labels) {
            glow_errorf(err, "the model is class-conditional: labels are required");
            return -1;
        }
        for (int i = 0; i < bt->n; i++)
            if (bt->labels[i] < 0 || bt->labels[i] >= c->n_classes) {
                glow_errorf(err, "image %d: label %d outside 0..%d", i, bt->labels[i],
                            c->n_classes - 1);
                return -1;
            }
    }
    mdl_ensure_batch(m, bt->n, train);
    m->ncur = bt->n;
    backend *b = m->b;
    const size_t D = (size_t)glow_config_dims(c);
    b->upload(b, m->img, bt->images, (size_t)bt->n * D);
    if (bt->noise)
        b->upload(b, m->noise, bt->noise, (size_t)bt->n * D * sizeof(float));
    if (c->y_condition) {
        b->upload(b, m->labels, bt->labels, (size_t)bt->n * sizeof(int32_t));
    }
    b->dequantize(b, m->img, bt->noise ? m->noise : NULL, bt->seed, bt->first, c->n_bits, bt->n,
                  c->channels, c->image_h, c->image_w, m->x);
    return 0;
}

static void run_forward(glow_model *m, int ddi, glow_result *r)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const int n = m->ncur;
    mdl_invconv_prepare(m, 0);
    b->fill(b, m->logdet, 0.0f, (size_t)n);
    b->fill(b, m->logp, 0.0f, (size_t)n);
    b->fill(b, m->ce, 0.0f, (size_t)n);
    b->squeeze(b, m->x, c->channels, m->lv[0].lin, m->lv[0].C, n, c->image_h, c->image_w,
               c->channels);
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        const float *in = lv->lin;
        for (int k = 0; k < m->K; k++) {
            step_fwd(m, lv, &lv->steps[k], in, ddi);
            in = lv->steps[k].out;
        }
        if (l == m->L - 1)
            break;
        const int C = lv->C;
        const size_t P = lv->rows;
        const float *z = lv->steps[m->K - 1].out;
        b->copy_cols(b, lv->sz1, C / 2, z, C, P, C / 2, 0);
        b->conv_fwd_affine(b, &lv->split, lv->sz1, lv->sw, lv->sp.b, lv->sp.l, 0, lv->sh);
        b->gauss_logp(b, z + C / 2, C, lv->sh, BK_INTERLEAVED, n, (size_t)lv->H * lv->W, C / 2,
                      m->logp);
        b->squeeze(b, z, C, m->lv[l + 1].lin, m->lv[l + 1].C, n, lv->H, lv->W, C / 2);
    }
    mdl_level *top = &m->lv[m->L - 1];
    const float *zt = top->steps[m->K - 1].out;
    const size_t hwt = (size_t)top->H * top->W;
    top_prior_h(m);
    b->gauss_logp(b, zt, top->C, m->th, BK_HALVES, n, hwt, top->C, m->logp);
    if (glow_config_has_head(c))
        b->head_fwd(b, zt, n, hwt, top->C, c->n_classes, m->labels, m->cw, m->cp.b, m->cp.l, m->ce);

    b->download(b, m->h_logdet, m->logdet, (size_t)n * sizeof(float));
    b->download(b, m->h_logp, m->logp, (size_t)n * sizeof(float));
    b->download(b, m->h_ce, m->ce, (size_t)n * sizeof(float));
    const double D = glow_config_dims(c), nb = log((double)(1 << c->n_bits));
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double bpd = -((double)m->h_logdet[i] + m->h_logp[i] - D * nb) / (D * LN2);
        m->h_bpd[i] = (float)bpd;
        loss += bpd + (glow_config_has_head(c) ? c->weight_y * m->h_ce[i] / LN2 : 0.0);
    }
    m->loss = loss / n;
    if (r) {
        r->n = n;
        r->loss = m->loss;
        r->bpd = m->h_bpd;
        r->logdet = m->h_logdet;
        r->logp = m->h_logp;
        r->ce = m->h_ce;
    }
}

int glow_model_forward(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 1, err))
        return -1;
    run_forward(m, 0, r);
    m->grad_ready = 1;
    return 0;
}

int glow_model_eval(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 0, err))
        return -1;
    run_forward(m, 0, r);
    m->grad_ready = m->train;
    return 0;
}

int glow_model_ddi(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 0, err))
        return -1;
    run_forward(m, 1, r);
    m->grad_ready = m->train;
    return 0;
}

#define GRAD(m, p) ((m)->grads + ((p) - (m)->params))

/* dL/d(step output) in g_cur -> dL/d(step input) in g_cur, parameter gradients. */
static void step_bwd(glow_model *m, mdl_level *lv, mdl_step *s, float g_ld)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C, Cout = coupling_out(m, C), Wd = m->Wd;
    const int affine = m->cfg.coupling == COUPLING_AFFINE;
    const double hw = (double)lv->H * lv->W, g_total = (double)g_ld * m->ncur;
    float *g = m->g_cur, *gt = m->g_tmp;
    b->coupling_bwd(b, affine, g + C / 2, C, s->out + C / 2, C, s->h, g + C / 2, C, m->g_h, P,
                    C / 2, g_ld);
    b->actnorm_bwd(b, m->g_h, Cout, s->h, Cout, m->g_h, Cout, P, Cout, s->c3.l, 0, GRAD(m, s->c3.b),
                   GRAD(m, s->c3.l));
    b->conv_bwd_filter(b, &lv->c3, s->a2, m->g_h, GRAD(m, s->w3));
    b->conv_bwd_data(b, &lv->c3, m->g_h, s->w3, m->g_a2, 0);
    b->actnorm_bwd(b, m->g_a2, Wd, s->a2, Wd, m->g_a2, Wd, P, Wd, s->an2.l, 1, GRAD(m, s->an2.b),
                   GRAD(m, s->an2.l));
    b->conv_bwd_filter(b, &lv->c2, s->a1, m->g_a2, GRAD(m, s->w2));
    b->conv_bwd_data(b, &lv->c2, m->g_a2, s->w2, m->g_a1, 0);
    b->actnorm_bwd(b, m->g_a1, Wd, s->a1, Wd, m->g_a1, Wd, P, Wd, s->an1.l, 1, GRAD(m, s->an1.b),
                   GRAD(m, s->an1.l));
    b->conv_bwd_filter(b, &lv->c1, s->z1, m->g_a1, GRAD(m, s->w1));
    b->conv_bwd_data(b, &lv->c1, m->g_a1, s->w1, m->g_z1, 0);
    b->copy_cols(b, g, C, m->g_z1, C / 2, P, C / 2, 1);
    /* permutation */
    if (s->perm) {
        b->gather_channels(b, g, gt, P, C, s->iperm);
    } else {
        b->conv_bwd_filter(b, &lv->inv, s->an_out, g, m->g_W);
        b->conv_bwd_data(b, &lv->inv, g, s->inv_w ? s->inv_w : s->Wdev, gt, 0);
        mdl_invconv_grad(m, lv, s, g_total);
    }
    /* actnorm, with its logdet hw * sum(3 logs) */
    b->actnorm_bwd(b, gt, C, s->an_out, C, g, C, P, C, s->an.l, 0, GRAD(m, s->an.b),
                   GRAD(m, s->an.l));
    b->add_scalar(b, GRAD(m, s->an.l), (size_t)C, (float)(3.0 * hw * g_total));
}

int glow_model_backward(glow_model *m, glow_error *err)
{
    if (!m->grad_ready) {
        glow_errorf(err, "backward pass without a forward pass to differentiate");
        return -1;
    }
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const int n = m->ncur;
    const double D = glow_config_dims(c);
    const float g_ld = (float)(-1.0 / (n * D * LN2)); /* dL/dlogdet_i = dL/dlogp_i */
    b->fill(b, m->grads, 0.0f, m->n_trained);

    mdl_level *top = &m->lv[m->L - 1];
    const size_t Pt = top->rows, hwt = (size_t)top->H * top->W;
    const int Ct = top->C;
    const float *zt = top->steps[m->K - 1].out;
    b->gauss_bwd(b, zt, Ct, m->th, BK_HALVES, Pt, Ct, g_ld, m->g_cur, Ct, 0, m->g_h);
    if (glow_config_has_head(c))
        b->head_bwd(b, zt, n, hwt, Ct, c->n_classes, m->labels, m->cw, m->cp.b, m->cp.l,
                    (float)(c->weight_y / (n * LN2)), m->g_cur, GRAD(m, m->cw), GRAD(m, m->cp.b),
                    GRAD(m, m->cp.l));
    if (c->y_condition)
        b->yemb_bwd(b, m->g_h, n, hwt, 2 * Ct, c->n_classes, m->labels, m->yw, m->yp.b, m->yp.l,
                    GRAD(m, m->yw), GRAD(m, m->yp.b), GRAD(m, m->yp.l));
    if (c->learn_top) {
        b->actnorm_bwd(b, m->g_h, 2 * Ct, m->thz, 2 * Ct, m->g_h, 2 * Ct, Pt, 2 * Ct, m->tp.l, 0,
                       GRAD(m, m->tp.b), GRAD(m, m->tp.l));
        b->conv_bwd_filter(b, &m->top, m->tzero, m->g_h, GRAD(m, m->tw));
    }
    for (int l = m->L - 1; l >= 0; l--) {
        mdl_level *lv = &m->lv[l];
        const int C = lv->C;
        const size_t P = lv->rows;
        if (l < m->L - 1) {
            /* g_cur holds dL/d(input of level l+1): unsqueeze it into z1's half */
            b->unsqueeze(b, m->g_cur, m->lv[l + 1].C, m->g_tmp, C, n, lv->H, lv->W, C / 2);
            float *t = m->g_cur;
            m->g_cur = m->g_tmp;
            m->g_tmp = t;
            const float *z = lv->steps[m->K - 1].out;
            b->gauss_bwd(b, z + C / 2, C, lv->sh, BK_INTERLEAVED, P, C / 2, g_ld, m->g_cur + C / 2,
                         C, 0, m->g_h);
            b->actnorm_bwd(b, m->g_h, C, lv->sh, C, m->g_h, C, P, C, lv->sp.l, 0,
                           GRAD(m, lv->sp.b), GRAD(m, lv->sp.l));
            b->conv_bwd_filter(b, &lv->split, lv->sz1, m->g_h, GRAD(m, lv->sw));
            b->conv_bwd_data(b, &lv->split, m->g_h, lv->sw, m->g_z1, 0);
            b->copy_cols(b, m->g_cur, C, m->g_z1, C / 2, P, C / 2, 1);
        }
        for (int k = m->K - 1; k >= 0; k--)
            step_bwd(m, lv, &lv->steps[k], g_ld);
    }
    return 0;
}
