/* The passes over the whole flow (docs/model.md sections 2, 3, 5-7), as loops over the
 * levels: forward (training, evaluation, data-dependent init), backward, inverse
 * and sampling. The layers are in flow_step.c, prior.c and invconv.c; this file
 * moves data between levels (squeeze, split), between host and backend, and turns
 * logdet and logp into bits per dimension and the loss. */
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "flow_step.h"
#include "invconv.h"
#include "model_internal.h"
#include "prior.h"

/* ---- forward ---- */

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
    if (glow_model_plan_batch(m, bt->n, train, err) != 0)
        return -1;
    mdl_ensure_batch(m, bt->n, train);
    m->ncur = bt->n;
    /* the activations are being replaced: until this pass succeeds there is
     * nothing to differentiate */
    m->grad_ready = 0;
    backend *b = m->b;
    const size_t D = (size_t)glow_config_dims(c);
    b->upload(b, m->img, bt->images, (size_t)bt->n * D);
    if (bt->noise)
        b->upload(b, m->noise, bt->noise, (size_t)bt->n * D * sizeof(float));
    if (c->y_condition)
        b->upload(b, m->labels, bt->labels, (size_t)bt->n * sizeof(int32_t));
    b->dequantize(b, m->img, bt->noise ? m->noise : NULL, bt->seed, bt->first, c->n_bits, bt->n,
                  c->channels, c->image_h, c->image_w, m->x);
    return 0;
}

/* The per-image sums to the host: bits per dimension and the loss (docs/model.md sections
 * 2, 3 and 6). */
static void finish_results(glow_model *m, glow_result *r)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const int n = m->ncur;
    /* logdet, logp and ce lie side by side on both sides (mdl_ensure_batch) */
    b->download(b, m->h_logdet, m->logdet, 3 * (size_t)n * sizeof(float));
    const double D = glow_config_dims(c), nb = log((double)(1 << c->n_bits));
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double bpd = -((double)m->h_logdet[i] + m->h_logp[i] - D * nb) / (D * MDL_LN2);
        m->h_bpd[i] = (float)bpd;
        loss += bpd + (glow_config_has_head(c) ? c->weight_y * m->h_ce[i] / MDL_LN2 : 0.0);
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

static int run_forward(glow_model *m, int ddi, glow_result *r, glow_error *err)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    const int n = m->ncur;
    /* an invert allocation's backward pass inverts the steps: W^-1 too */
    if (mdl_invconv_prepare(m, m->train && m->buf_mem.mode == MEMORY_INVERT, err))
        return -1;
    b->fill(b, m->logdet, 0.0f, 3 * (size_t)n); /* logp and ce too */
    b->squeeze(b, m->x, c->channels, m->lv[0].lin, m->lv[0].C, n, c->image_h, c->image_w,
               c->channels);
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        const float *in = lv->lin;
        for (int k = 0; k < m->K; k++) {
            mdl_step_fwd(m, lv, &lv->steps[k], in, ddi);
            in = lv->steps[k].out;
        }
        if (l < m->L - 1) {
            /* z2 is scored and ends here; z1 goes on, squeezed */
            mdl_split_logp(m, l, in);
            b->squeeze(b, in, lv->C, m->lv[l + 1].lin, m->lv[l + 1].C, n, lv->H, lv->W,
                       lv->C / 2);
        }
    }
    mdl_top_logp(m, m->lv[m->L - 1].steps[m->K - 1].out);
    finish_results(m, r);
    return 0;
}

int glow_model_forward(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 1, err) || run_forward(m, 0, r, err))
        return -1;
    m->grad_ready = 1;
    return 0;
}

/* Eval and DDI leave per-step activations only when the buffers are a training
 * allocation (mdl_ensure_batch keeps one for smaller uses). */
int glow_model_eval(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 0, err) || run_forward(m, 0, r, err))
        return -1;
    m->grad_ready = m->train;
    return 0;
}

int glow_model_ddi(glow_model *m, const glow_batch *bt, glow_result *r, glow_error *err)
{
    if (load_batch(m, bt, 0, err) || run_forward(m, 1, r, err))
        return -1;
    m->grad_ready = m->train;
    return 0;
}

/* ---- backward ---- */

/* ||rebuilt - kept|| / ||kept|| over n floats; rebuilt is overwritten. */
static double rel_error(glow_model *m, float *rebuilt, const float *kept, size_t n)
{
    backend *b = m->b;
    b->axpy(b, rebuilt, kept, n, -1.0f);
    const double e = b->sumsq(b, rebuilt, n), t = b->sumsq(b, kept, n);
    return t > 0 ? sqrt(e / t) : sqrt(e);
}

/* The steps of level l in reverse, g_cur holding dL/d(level output) and getting
 * dL/d(level input), as the allocation's plan has it: store reads every step's
 * activations; recompute first runs each step again from its kept input;
 * invert rebuilds each step's input from its output (the inverse), which also
 * gives the activations; where an input was kept, the rebuilt one (in a free
 * ping-pong buffer) is compared with it and the kept one goes on. */
static void level_bwd(glow_model *m, int l, float g_ld)
{
    mdl_level *lv = &m->lv[l];
    const glow_memory_mode mode = m->buf_mem.mode;
    const int every = m->buf_mem.every;
    m->inv_err[l] = 0;
    for (int k = m->K - 1; k >= 0; k--) {
        mdl_step *s = &lv->steps[k];
        float *in = k ? lv->steps[k - 1].out : lv->lin;
        if (mode == MEMORY_RECOMPUTE) {
            mdl_step_redo(m, lv, s, in);
        } else if (mode == MEMORY_INVERT) {
            float *dst = mdl_kept_input(k, every) ? lv->pp[(k + 1) & 1] : in;
            mdl_step_inv(m, lv, s, s->out, dst);
            if (dst != in) {
                double e = rel_error(m, dst, in, lv->rows * (size_t)lv->C);
                if (!(e <= m->inv_err[l]))
                    m->inv_err[l] = e;
            }
        }
        mdl_step_bwd(m, lv, s, g_ld);
    }
}

int glow_model_backward(glow_model *m, glow_error *err)
{
    if (!m->grad_ready) {
        glow_errorf(err, "backward pass without a forward pass to differentiate");
        return -1;
    }
    backend *b = m->b;
    const int n = m->ncur;
    const double D = glow_config_dims(&m->cfg);
    const float g_ld = (float)(-1.0 / (n * D * MDL_LN2)); /* dL/dlogdet_i = dL/dlogp_i */
    mdl_ensure_grads(m);
    b->fill(b, m->grads, 0.0f, m->n_trained);
    mdl_top_bwd(m, m->lv[m->L - 1].steps[m->K - 1].out, g_ld, m->g_cur);
    for (int l = m->L - 1; l >= 0; l--) {
        mdl_level *lv = &m->lv[l];
        if (l < m->L - 1) {
            /* g_cur holds dL/d(input of level l+1): unsqueeze it into z1's half */
            const int C = lv->C;
            b->unsqueeze(b, m->g_cur, m->lv[l + 1].C, m->g_tmp, C, n, lv->H, lv->W, C / 2);
            float *t = m->g_cur;
            m->g_cur = m->g_tmp;
            m->g_tmp = t;
            mdl_split_bwd(m, l, lv->steps[m->K - 1].out, g_ld, m->g_cur);
        }
        level_bwd(m, l, g_ld);
    }
    /* the invconv parameters' gradients of every step at once (invconv.h) */
    return mdl_invconv_grads(m, (double)g_ld * n, err);
}

/* ---- inverse and sampling ---- */

/* A latent of n images, NCHW on the host, to dst [n*hw, c] dense on the backend. */
static void upload_latent(glow_model *m, const float *nchw, int n, int c, int hw, float *dst)
{
    const size_t cnt = (size_t)n * hw * c;
    float *host = xmalloc(cnt * sizeof(float));
    mdl_nchw_to_nhwc(nchw, host, n, c, hw);
    m->b->upload(m->b, dst, host, cnt * sizeof(float));
    free(host);
}

/* Sampling draws the top prior for these labels (NULL: class 0). */
static void upload_sample_labels(glow_model *m, int n, const int32_t *labels)
{
    if (!m->cfg.y_condition)
        return;
    int32_t *lab = xcalloc((size_t)n, sizeof *lab);
    for (int i = 0; i < n; i++)
        lab[i] = labels ? labels[i] : 0;
    m->b->upload(m->b, m->labels, lab, (size_t)n * sizeof *lab);
    free(lab);
}

/* Where an inverse pass gets its latents: given (z, NCHW host arrays of each
 * level; with eps, standardised latents; t: n factors, NULL: 1), or, without z,
 * drawn from the priors at a temperature (docs/model.md section 7). */
typedef struct {
    const float *const *z;
    int eps;
    const float *t;
    float temperature;
    uint64_t seed, first;
    const int32_t *labels;
} inv_source;

/* The given latent of level l (c channels) into dst [rows, c] dense, times t. */
static void given_latent(glow_model *m, const inv_source *src, int l, int c, int hw, float *dst)
{
    const int n = m->ncur;
    upload_latent(m, src->z[l], n, c, hw, dst);
    if (!src->t || src->eps)
        return;
    for (int i = 0; i < n; i++)
        if (src->t[i] != 1.0f)
            m->b->scale(m->b, dst + (size_t)i * hw * c, (size_t)hw * c, src->t[i]);
}

/* Latents -> x [n, C0, H, W] (host). The level being inverted runs in the
 * gradient scratch g_cur/g_tmp, which no backward pass needs any more. */
static int run_inverse(glow_model *m, int n, const inv_source *src, float *x_nchw,
                       glow_error *err)
{
    backend *b = m->b;
    const glow_config *c = &m->cfg;
    if (glow_model_plan_batch(m, n, 0, err) != 0)
        return -1;
    mdl_ensure_batch(m, n, 0);
    m->ncur = n;
    m->grad_ready = 0;
    if (mdl_invconv_prepare(m, 1, err))
        return -1;
    float *cur = m->g_cur, *tmp = m->g_tmp;
    for (int l = m->L - 1; l >= 0; l--) {
        mdl_level *lv = &m->lv[l];
        const int C = lv->C, hw = lv->H * lv->W;
        if (l == m->L - 1) {
            if (src->z && !src->eps) {
                given_latent(m, src, l, C, hw, cur);
            } else if (src->z) {
                upload_sample_labels(m, n, src->labels);
                given_latent(m, src, l, C, hw, tmp);
                mdl_top_from_eps(m, tmp, src->t, cur);
            } else {
                upload_sample_labels(m, n, src->labels);
                mdl_top_sample(m, src->temperature, src->seed, src->first, cur);
            }
        } else {
            /* unsqueezing level l+1's input gives z1; z2 comes from z or the prior */
            b->unsqueeze(b, cur, m->lv[l + 1].C, tmp, C, n, lv->H, lv->W, C / 2);
            float *t = cur;
            cur = tmp;
            tmp = t;
            if (src->z) {
                given_latent(m, src, l, C / 2, hw, tmp);
                if (src->eps)
                    mdl_split_from_eps(m, l, tmp, src->t, cur);
                else
                    b->copy_cols(b, cur + C / 2, C, tmp, C / 2, lv->rows, C / 2, 0);
            } else {
                mdl_split_sample(m, l, src->temperature, src->seed, src->first, cur);
            }
        }
        for (int k = m->K - 1; k >= 0; k--)
            mdl_step_inv(m, lv, &lv->steps[k], cur, cur);
    }
    const int C0 = c->channels, hw = c->image_h * c->image_w;
    b->unsqueeze(b, cur, m->lv[0].C, m->x, C0, n, c->image_h, c->image_w, C0);
    const size_t cnt = (size_t)n * C0 * hw;
    float *host = xmalloc(cnt * sizeof(float));
    b->download(b, host, m->x, cnt * sizeof(float));
    mdl_nhwc_to_nchw(host, C0, x_nchw, n, C0, hw);
    free(host);
    return 0;
}

/* The public inverse and sampling have no error return (model.h): their only
 * failure, a singular invconv matrix, ends the program as it always has
 * (glow_model_load refuses such checkpoints up front). */
void glow_model_inverse(glow_model *m, int n, const float *const *z, float *x)
{
    glow_error err;
    inv_source src = {z, 0, NULL, 1.0f, 0, 0, NULL};
    if (run_inverse(m, n, &src, x, &err))
        glow_die(1, "%s", err.msg);
}

/* x back to uint8 (docs/model.md section 2) */
static void quantize(const glow_config *c, size_t cnt, const float *xf, uint8_t *images)
{
    const double bins = (double)(1 << c->n_bits);
    for (size_t i = 0; i < cnt; i++) {
        double v = floor(((double)xf[i] + 0.5) * bins) * (256.0 / bins);
        images[i] = !(v > 0) ? 0 : v > 255 ? 255 : (uint8_t)v;
    }
}

void glow_model_quantize(const glow_model *m, size_t count, const float *x, uint8_t *images)
{
    quantize(&m->cfg, count, x, images);
}

void glow_model_sample(glow_model *m, int n, float temperature, uint64_t seed, uint64_t first,
                       const int32_t *labels, uint8_t *images, float *x)
{
    const glow_config *c = &m->cfg;
    const size_t cnt = (size_t)n * glow_config_dims(c);
    float *xf = x ? x : xmalloc(cnt * sizeof(float));
    glow_error err;
    inv_source src = {NULL, 0, NULL, temperature, seed, first, labels};
    if (run_inverse(m, n, &src, xf, &err))
        glow_die(1, "%s", err.msg);
    quantize(c, cnt, xf, images);
    if (!x)
        free(xf);
}

/* ---- latents for the latent tools ---- */

static int check_labels(const glow_model *m, int n, const int32_t *labels, glow_error *err)
{
    const glow_config *c = &m->cfg;
    if (!c->y_condition || !labels)
        return 0;
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c->n_classes) {
            glow_errorf(err, "image %d: label %d outside 0..%d", i, labels[i], c->n_classes - 1);
            return -1;
        }
    return 0;
}

int glow_model_decode(glow_model *m, int n, const float *const *lat, int standardized,
                      const float *t, const int32_t *labels, float *x, glow_error *err)
{
    if (n <= 0) {
        glow_errorf(err, "empty batch");
        return -1;
    }
    if (check_labels(m, n, labels, err))
        return -1;
    inv_source src = {lat, standardized ? 1 : 0, t, 1.0f, 0, 0, labels};
    return run_inverse(m, n, &src, x, err);
}

void glow_model_get_eps(glow_model *m, int idx, float *out)
{
    mdl_level *lv = &m->lv[idx];
    const int top = idx == m->L - 1, c = top ? lv->C : lv->C / 2;
    const float *z = lv->steps[m->K - 1].out;
    if (top)
        mdl_top_to_eps(m, z, m->g_tmp);
    else
        mdl_split_to_eps(m, idx, z, m->g_tmp);
    const size_t cnt = lv->rows * (size_t)c;
    float *host = xmalloc(cnt * sizeof(float));
    m->b->download(m->b, host, m->g_tmp, cnt * sizeof(float));
    mdl_nhwc_to_nchw(host, c, out, m->ncur, c, lv->H * lv->W);
    free(host);
}

void glow_model_sample_eps(glow_model *m, int n, uint64_t seed, uint64_t first,
                           float *const *eps)
{
    mdl_ensure_batch(m, n, 0);
    m->ncur = n;
    m->grad_ready = 0;
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        const int c = l == m->L - 1 ? lv->C : lv->C / 2;
        m->b->fill(m->b, m->g_h, 0.0f, lv->rows * 2 * (size_t)c);
        mdl_level_sample_eps(m, l, seed, first, m->g_h, m->g_tmp);
        const size_t cnt = lv->rows * (size_t)c;
        float *host = xmalloc(cnt * sizeof(float));
        m->b->download(m->b, host, m->g_tmp, cnt * sizeof(float));
        mdl_nhwc_to_nchw(host, c, eps[l], n, c, lv->H * lv->W);
        free(host);
    }
}
