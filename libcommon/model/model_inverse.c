/* The inverse flow: latents -> x exactly, and sampling (spec section 7). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "model_internal.h"

/* Invert the K steps of level l: cur holds the level's output, gets its input. */
static void level_inverse(glow_model *m, mdl_level *lv, float *cur)
{
    backend *b = m->b;
    const size_t P = lv->rows;
    const int C = lv->C, affine = m->cfg.coupling == COUPLING_AFFINE;
    for (int k = m->K - 1; k >= 0; k--) {
        mdl_step *s = &lv->steps[k];
        b->copy_cols(b, s->z1, C / 2, cur, C, P, C / 2, 0);
        mdl_step_net(m, lv, s, 0);
        b->copy_cols(b, s->pm, C, cur, C, P, C / 2, 0);
        b->coupling_inv(b, affine, cur + C / 2, C, s->h, s->pm + C / 2, C, P, C / 2);
        if (s->perm)
            b->gather_channels(b, s->pm, s->an_out, P, C, s->iperm);
        else
            b->conv_fwd(b, &lv->inv, s->pm, s->Winvdev, s->an_out);
        b->actnorm_inv(b, s->an_out, C, cur, C, P, C, s->an.b, s->an.l);
    }
}

static uint64_t sample_stream(int level)
{
    return RNG_STREAM_SAMPLE + ((uint64_t)(level + 1) << 32);
}

/* The shared part: z of every level either given (NCHW host) or sampled. */
static void run_inverse(glow_model *m, int n, const float *const *z, float temperature,
                        uint64_t seed, uint64_t first, const int32_t *labels, float *x_nchw)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    mdl_ensure_batch(m, n, 0);
    m->ncur = n;
    m->grad_ready = 0;
    mdl_invconv_prepare(m, 1);
    mdl_level *top = &m->lv[m->L - 1];
    float *cur = m->g_cur, *tmp = m->g_tmp;
    float *host = NULL;
    if (z) {
        size_t cnt = top->rows * top->C;
        host = xmalloc(cnt * sizeof(float));
        mdl_nchw_to_nhwc(z[m->L - 1], host, n, top->C, top->H * top->W);
        b->upload(b, cur, host, cnt * sizeof(float));
        free(host);
    } else {
        if (c->y_condition) {
            int32_t *lab = xcalloc((size_t)n, sizeof *lab);
            for (int i = 0; i < n; i++)
                lab[i] = labels ? labels[i] : 0;
            b->upload(b, m->labels, lab, (size_t)n * sizeof *lab);
            free(lab);
        }
        /* top_prior_h lives with the forward pass; compute it the same way here */
        const size_t Pt = top->rows;
        const int C2 = 2 * top->C;
        if (c->learn_top) {
            b->conv_fwd_affine(b, &m->top, m->tzero, m->tw, m->tp.b, m->tp.l, 0, m->thz);
        } else {
            b->fill(b, m->thz, 0.0f, Pt * C2);
        }
        b->copy(b, m->th, m->thz, Pt * C2 * sizeof(float));
        if (c->y_condition)
            b->yemb_fwd(b, m->th, n, (size_t)top->H * top->W, C2, c->n_classes, m->labels, m->yw,
                        m->yp.b, m->yp.l);
        b->gauss_sample(b, m->th, BK_HALVES, n, (size_t)top->H * top->W, top->C, temperature, seed,
                        sample_stream(m->L - 1), first, cur, top->C);
    }
    level_inverse(m, top, cur);
    for (int l = m->L - 2; l >= 0; l--) {
        mdl_level *lv = &m->lv[l];
        const int C = lv->C;
        const size_t P = lv->rows;
        b->unsqueeze(b, cur, m->lv[l + 1].C, tmp, C, n, lv->H, lv->W, C / 2);
        float *t = cur;
        cur = tmp;
        tmp = t;
        if (z) {
            size_t cnt = P * (C / 2);
            host = xmalloc(cnt * sizeof(float));
            mdl_nchw_to_nhwc(z[l], host, n, C / 2, lv->H * lv->W);
            b->upload(b, tmp, host, cnt * sizeof(float));
            free(host);
            b->copy_cols(b, cur + C / 2, C, tmp, C / 2, P, C / 2, 0);
        } else {
            b->copy_cols(b, lv->sz1, C / 2, cur, C, P, C / 2, 0);
            b->conv_fwd_affine(b, &lv->split, lv->sz1, lv->sw, lv->sp.b, lv->sp.l, 0, lv->sh);
            b->gauss_sample(b, lv->sh, BK_INTERLEAVED, n, (size_t)lv->H * lv->W, C / 2,
                            temperature, seed, sample_stream(l), first, cur + C / 2, C);
        }
        level_inverse(m, lv, cur);
    }
    const int C0 = c->channels, hw = c->image_h * c->image_w;
    b->unsqueeze(b, cur, m->lv[0].C, m->x, C0, n, c->image_h, c->image_w, C0);
    size_t cnt = (size_t)n * C0 * hw;
    host = xmalloc(cnt * sizeof(float));
    b->download(b, host, m->x, cnt * sizeof(float));
    mdl_nhwc_to_nchw(host, C0, x_nchw, n, C0, hw);
    free(host);
    /* the scratch buffers were swapped locally only; keep the model's pointers */
}

void glow_model_inverse(glow_model *m, int n, const float *const *z, float *x)
{
    run_inverse(m, n, z, 1.0f, 0, 0, NULL, x);
}

void glow_model_sample(glow_model *m, int n, float temperature, uint64_t seed, uint64_t first,
                       const int32_t *labels, uint8_t *images, float *x)
{
    const glow_config *c = &m->cfg;
    size_t cnt = (size_t)n * glow_config_dims(c);
    float *xf = x ? x : xmalloc(cnt * sizeof(float));
    run_inverse(m, n, NULL, temperature, seed, first, labels, xf);
    const double bins = (double)(1 << c->n_bits);
    for (size_t i = 0; i < cnt; i++) {
        double v = floor(((double)xf[i] + 0.5) * bins) * (256.0 / bins);
        images[i] = !(v > 0) ? 0 : v > 255 ? 255 : (uint8_t)v;
    }
    if (!x)
        free(xf);
}
