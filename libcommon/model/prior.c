/* The priors (docs/model.md section 6) and sampling from them (section 7): the split prior
 * of a level, h = zeros_layer(z1) with mean and log-scale interleaved in h; the top
 * prior, h = zeros_layer(0) (learn_top) plus the class embedding (y_condition),
 * mean and log-scale in halves; and the class head on the top z. For each: score
 * (log-density into m->logp, cross-entropy into m->ce), gradient, sample. */
#include "prior.h"

#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"

/* Level l's noise stream (model.h glow_model_sample): one per level, so a level's
 * draws do not depend on how many the levels below it took. */
static uint64_t sample_stream(int level)
{
    return RNG_STREAM_SAMPLE + ((uint64_t)(level + 1) << 32);
}

/* ---- split prior of level l ---- */

/* lv->sh = h(z1) from the level output z; z1 goes dense to lv->sz1 (a conv
 * operand), where the backward pass finds it. */
static void split_h(glow_model *m, mdl_level *lv, const float *z)
{
    backend *b = m->b;
    const int C = lv->C;
    b->copy_cols(b, lv->sz1, C / 2, z, C, lv->rows, C / 2, 0);
    b->conv_fwd_affine(b, &lv->split, lv->sz1, lv->sw, lv->sp.b, lv->sp.l, 0, lv->sh);
}

void mdl_split_logp(glow_model *m, int l, const float *z)
{
    mdl_level *lv = &m->lv[l];
    const int C = lv->C;
    split_h(m, lv, z);
    m->b->gauss_logp(m->b, z + C / 2, C, lv->sh, BK_INTERLEAVED, m->ncur, (size_t)lv->H * lv->W,
                     C / 2, m->logp);
}

void mdl_split_bwd(glow_model *m, int l, const float *z, float g_ld, float *dz)
{
    backend *b = m->b;
    mdl_level *lv = &m->lv[l];
    const int C = lv->C;
    const size_t P = lv->rows;
    b->gauss_bwd(b, z + C / 2, C, lv->sh, BK_INTERLEAVED, P, C / 2, g_ld, dz + C / 2, C, 0,
                 m->g_h);
    b->actnorm_bwd(b, m->g_h, C, lv->sh, C, m->g_h, C, P, C, lv->sp.l, 0, mdl_grad(m, lv->sp.b),
                   mdl_grad(m, lv->sp.l));
    b->conv_bwd_filter(b, &lv->split, lv->sz1, m->g_h, mdl_grad(m, lv->sw));
    b->conv_bwd_data(b, &lv->split, m->g_h, lv->sw, m->g_z1, 0);
    b->copy_cols(b, dz, C, m->g_z1, C / 2, P, C / 2, 1);
}

void mdl_split_sample(glow_model *m, int l, float temperature, uint64_t seed, uint64_t first,
                      float *z)
{
    mdl_level *lv = &m->lv[l];
    const int C = lv->C;
    split_h(m, lv, z);
    m->b->gauss_sample(m->b, lv->sh, BK_INTERLEAVED, m->ncur, (size_t)lv->H * lv->W, C / 2,
                       temperature, seed, sample_stream(l), first, z + C / 2, C);
}

/* ---- top prior and class head ---- */

/* m->th = h of the top prior for m->labels; m->thz keeps the zeros layer's part
 * alone, the output its backward pass differentiates from. */
static void top_h(glow_model *m)
{
    backend *b = m->b;
    const mdl_level *top = &m->lv[m->L - 1];
    const size_t Pt = top->rows;
    const int C2 = 2 * top->C;
    if (m->cfg.learn_top) {
        /* the input is all zeros: only the edge channel and the bias reach h */
        b->conv_fwd_affine(b, &m->top, m->tzero, m->tw, m->tp.b, m->tp.l, 0, m->thz);
    } else {
        b->fill(b, m->thz, 0.0f, Pt * C2);
    }
    b->copy(b, m->th, m->thz, Pt * C2 * sizeof(float));
    if (m->cfg.y_condition)
        b->yemb_fwd(b, m->th, m->ncur, (size_t)top->H * top->W, C2, m->cfg.n_classes, m->labels,
                    m->yw, m->yp.b, m->yp.l);
}

void mdl_top_logp(glow_model *m, const float *z)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const mdl_level *top = &m->lv[m->L - 1];
    const size_t hwt = (size_t)top->H * top->W;
    top_h(m);
    b->gauss_logp(b, z, top->C, m->th, BK_HALVES, m->ncur, hwt, top->C, m->logp);
    if (glow_config_has_head(c))
        b->head_fwd(b, z, m->ncur, hwt, top->C, c->n_classes, m->labels, m->cw, m->cp.b, m->cp.l,
                    m->ce);
}

void mdl_top_bwd(glow_model *m, const float *z, float g_ld, float *dz)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const mdl_level *top = &m->lv[m->L - 1];
    const int n = m->ncur, Ct = top->C;
    const size_t Pt = top->rows, hwt = (size_t)top->H * top->W;
    b->gauss_bwd(b, z, Ct, m->th, BK_HALVES, Pt, Ct, g_ld, dz, Ct, 0, m->g_h);
    /* the head's loss is weight_y * ce / ln 2, averaged over the batch */
    if (glow_config_has_head(c))
        b->head_bwd(b, z, n, hwt, Ct, c->n_classes, m->labels, m->cw, m->cp.b, m->cp.l,
                    (float)(c->weight_y / (n * MDL_LN2)), dz, mdl_grad(m, m->cw),
                    mdl_grad(m, m->cp.b), mdl_grad(m, m->cp.l));
    /* dL/dh (g_h) reaches y_emb and the zeros layer unchanged: h is their sum */
    if (c->y_condition)
        b->yemb_bwd(b, m->g_h, n, hwt, 2 * Ct, c->n_classes, m->labels, m->yw, m->yp.b, m->yp.l,
                    mdl_grad(m, m->yw), mdl_grad(m, m->yp.b), mdl_grad(m, m->yp.l));
    if (c->learn_top) {
        b->actnorm_bwd(b, m->g_h, 2 * Ct, m->thz, 2 * Ct, m->g_h, 2 * Ct, Pt, 2 * Ct, m->tp.l, 0,
                       mdl_grad(m, m->tp.b), mdl_grad(m, m->tp.l));
        b->conv_bwd_filter(b, &m->top, m->tzero, m->g_h, mdl_grad(m, m->tw));
    }
}

void mdl_top_sample(glow_model *m, float temperature, uint64_t seed, uint64_t first, float *z)
{
    const mdl_level *top = &m->lv[m->L - 1];
    top_h(m);
    m->b->gauss_sample(m->b, m->th, BK_HALVES, m->ncur, (size_t)top->H * top->W, top->C,
                       temperature, seed, sample_stream(m->L - 1), first, z, top->C);
}

/* ---- standardised latents ---- */

/* f over the runs of consecutive images that share a factor t[i] (one run of
 * factor 1 without t): rows [i0 * rpi, i1 * rpi) at factor t[i0]. */
typedef void (*run_fn)(glow_model *m, size_t r0, size_t nrows, float t, void *ctx);
static void for_runs(glow_model *m, size_t rpi, const float *t, run_fn f, void *ctx)
{
    const int n = m->ncur;
    for (int i0 = 0, i1; i0 < n; i0 = i1) {
        i1 = i0 + 1;
        if (!t) {
            i1 = n;
        } else {
            while (i1 < n && memcmp(&t[i1], &t[i0], sizeof *t) == 0)
                i1++;
        }
        f(m, (size_t)i0 * rpi, (size_t)(i1 - i0) * rpi, t ? t[i0] : 1.0f, ctx);
    }
}

void mdl_split_to_eps(glow_model *m, int l, const float *z, float *eps)
{
    mdl_level *lv = &m->lv[l];
    const int C = lv->C;
    m->b->gauss_to_eps(m->b, z + C / 2, C, lv->sh, BK_INTERLEAVED, lv->rows, C / 2, eps, C / 2);
}

void mdl_top_to_eps(glow_model *m, const float *z, float *eps)
{
    const mdl_level *top = &m->lv[m->L - 1];
    m->b->gauss_to_eps(m->b, z, top->C, m->th, BK_HALVES, top->rows, top->C, eps, top->C);
}

typedef struct {
    const float *eps, *h;
    bk_prior_layout lay;
    int c, ldz;
    float *z;
} from_eps_ctx;

static void from_eps_run(glow_model *m, size_t r0, size_t nrows, float t, void *ctx)
{
    const from_eps_ctx *a = ctx;
    m->b->gauss_from_eps(m->b, a->eps + r0 * a->c, a->c, a->h + r0 * 2 * a->c, a->lay, nrows,
                         a->c, t, a->z + r0 * a->ldz, a->ldz);
}

void mdl_split_from_eps(glow_model *m, int l, const float *eps, const float *t, float *z)
{
    mdl_level *lv = &m->lv[l];
    const int C = lv->C;
    split_h(m, lv, z);
    from_eps_ctx a = {eps, lv->sh, BK_INTERLEAVED, C / 2, C, z + C / 2};
    for_runs(m, (size_t)lv->H * lv->W, t, from_eps_run, &a);
}

void mdl_top_from_eps(glow_model *m, const float *eps, const float *t, float *z)
{
    const mdl_level *top = &m->lv[m->L - 1];
    top_h(m);
    from_eps_ctx a = {eps, m->th, BK_HALVES, top->C, top->C, z};
    for_runs(m, (size_t)top->H * top->W, t, from_eps_run, &a);
}

void mdl_level_sample_eps(glow_model *m, int l, uint64_t seed, uint64_t first,
                          const float *zero_h, float *eps)
{
    const mdl_level *lv = &m->lv[l];
    const int top = l == m->L - 1, c = top ? lv->C : lv->C / 2;
    /* mean 0 and log-scale 0: z = 0 + exp(0) * eps * 1 is the normal itself */
    m->b->gauss_sample(m->b, zero_h, top ? BK_HALVES : BK_INTERLEAVED, m->ncur,
                       (size_t)lv->H * lv->W, c, 1.0f, seed, sample_stream(l), first, eps, c);
}
