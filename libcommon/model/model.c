/* Model construction, parameters, batch buffers and host-side results: building
 * the model from a config and a parameter set, the flat parameter and gradient
 * arrays, the buffers of a batch size, and latents and x back to the host. The
 * passes themselves are in passes.c. */
#include "model_internal.h"

#include "base/mem_budget.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "invconv.h"

static void *balloc(glow_model *m, size_t bytes)
{
    if (m->nbufs == m->capbufs) {
        m->capbufs = m->capbufs ? 2 * m->capbufs : 64;
        m->bufs = xrealloc(m->bufs, (size_t)m->capbufs * sizeof *m->bufs);
    }
    void *p = m->b->alloc(m->b, bytes);
    m->bufs[m->nbufs++] = p;
    return p;
}

static float *fbuf(glow_model *m, size_t n) { return balloc(m, n * sizeof(float)); }

static void free_batch(glow_model *m)
{
    for (int i = 0; i < m->nbufs; i++)
        m->b->free(m->b, m->bufs[i]);
    m->nbufs = 0;
    glow_mem_release(m->mem_batch);
    m->mem_batch = 0;
    free(m->h_bpd);
    free(m->h_logdet); /* h_logp and h_ce lie in it */
    m->h_bpd = m->h_logdet = m->h_logp = m->h_ce = NULL;
    m->n = 0;
}

/* The activation set every step shares outside store: sized for the largest level. */
typedef struct {
    float *an_out, *pm, *z1, *a1, *a2, *h;
} shared_acts;

void mdl_ensure_batch(glow_model *m, int n, int train)
{
    const glow_memory want = train ? m->mem : m->buf_mem;
    if (n == m->n && (m->train || !train) &&
        (!train || (m->buf_mem.mode == want.mode && m->buf_mem.every == want.every)))
        return;
    free_batch(m);
    /* model_mem.c counts what follows: the two change together */
    if (train)
        m->buf_mem = want;
    mdl_reserve_batch(m, n, train);
    m->n = n;
    m->train = train;
    m->grad_ready = 0;
    const glow_memory_mode mode = m->buf_mem.mode;
    const int every = m->buf_mem.every;
    const int per_step = train && mode == MEMORY_STORE; /* every step its own set */
    const glow_config *c = &m->cfg;
    const size_t D = (size_t)glow_config_dims(c);
    m->img = balloc(m, (size_t)n * D);
    m->noise = fbuf(m, (size_t)n * D);
    m->x = fbuf(m, (size_t)n * D);
    m->labels = balloc(m, (size_t)n * sizeof(int32_t));
    size_t maxpc = 0, maxpw = 0, maxph = 0;
    for (int l = 0; l < m->L; l++) {
        const mdl_level *lv = &m->lv[l];
        const size_t P = (size_t)n * lv->H * lv->W;
        const size_t Cout = c->coupling == COUPLING_AFFINE ? (size_t)lv->C : (size_t)lv->C / 2;
        if (P * lv->C > maxpc)
            maxpc = P * lv->C;
        if (P * m->Wd > maxpw)
            maxpw = P * m->Wd;
        if (P * Cout > maxph)
            maxph = P * Cout;
    }
    shared_acts sh = {NULL, NULL, NULL, NULL, NULL, NULL};
    if (!per_step) {
        sh.an_out = fbuf(m, maxpc);
        sh.pm = fbuf(m, maxpc);
        sh.z1 = fbuf(m, maxpc / 2);
        sh.a1 = fbuf(m, maxpw);
        sh.a2 = fbuf(m, maxpw);
        sh.h = fbuf(m, maxph);
    }
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        const int C = lv->C, Cout = c->coupling == COUPLING_AFFINE ? C : C / 2;
        lv->rows = (size_t)n * lv->H * lv->W;
        const size_t P = lv->rows;
        bk_conv c1 = {n, lv->H, lv->W, C / 2, m->Wd, 3, m->E};
        bk_conv c2 = {n, lv->H, lv->W, m->Wd, m->Wd, 1, 0};
        bk_conv c3 = {n, lv->H, lv->W, m->Wd, Cout, 3, m->E};
        bk_conv inv = {n, lv->H, lv->W, C, C, 1, 0};
        bk_conv sp = {n, lv->H, lv->W, C / 2, C, 3, m->E};
        lv->c1 = c1;
        lv->c2 = c2;
        lv->c3 = c3;
        lv->inv = inv;
        lv->split = sp;
        lv->lin = fbuf(m, P * C);
        lv->pp[0] = lv->pp[1] = NULL;
        float *pingpong[2] = {NULL, NULL};
        if (train && mode == MEMORY_INVERT) {
            lv->pp[0] = fbuf(m, P * C);
            lv->pp[1] = fbuf(m, P * C);
        }
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &lv->steps[k];
            if (per_step) {
                s->an_out = fbuf(m, P * C);
                s->pm = fbuf(m, P * C);
                s->z1 = fbuf(m, P * C / 2);
                s->a1 = fbuf(m, P * m->Wd);
                s->a2 = fbuf(m, P * m->Wd);
                s->h = fbuf(m, P * Cout);
            } else {
                s->an_out = sh.an_out;
                s->pm = sh.pm;
                s->z1 = sh.z1;
                s->a1 = sh.a1;
                s->a2 = sh.a2;
                s->h = sh.h;
            }
            /* a step's output must not be its input: alternate two buffers */
            if (train && mode == MEMORY_INVERT) {
                /* the level's output, a kept input of the next step, or a
                 * ping-pong buffer (rebuilt by the backward pass) */
                if (k == m->K - 1 || mdl_kept_input(k + 1, every))
                    s->out = fbuf(m, P * C);
                else
                    s->out = lv->pp[k & 1];
            } else if (train || k < 2)
                s->out = pingpong[k & 1] = fbuf(m, P * C);
            else
                s->out = pingpong[k & 1];
        }
        if (l < m->L - 1) {
            lv->sz1 = fbuf(m, P * C / 2);
            lv->sh = fbuf(m, P * C);
        }
    }
    mdl_level *top = &m->lv[m->L - 1];
    const size_t Pt = top->rows, Ct = (size_t)top->C;
    bk_conv tc = {n, top->H, top->W, 2 * top->C, 2 * top->C, 3, m->E};
    m->top = tc;
    if (2 * Pt * Ct > maxpc)
        maxpc = 2 * Pt * Ct;
    m->tzero = fbuf(m, Pt * 2 * Ct);
    m->thz = fbuf(m, Pt * 2 * Ct);
    m->th = fbuf(m, Pt * 2 * Ct);
    /* the three per-image sums side by side: one fill, one download */
    m->logdet = fbuf(m, 3 * (size_t)n);
    m->logp = m->logdet + n;
    m->ce = m->logp + n;
    /* the inverse pass runs in g_cur and g_tmp, sample_eps zeroes g_h; the rest
     * is the backward pass's */
    m->g_cur = fbuf(m, maxpc);
    m->g_tmp = fbuf(m, maxpc);
    m->g_h = fbuf(m, maxpc);
    m->g_z1 = m->g_a1 = m->g_a2 = NULL;
    if (train) {
        m->g_z1 = fbuf(m, maxpc);
        m->g_a1 = fbuf(m, maxpw);
        m->g_a2 = fbuf(m, maxpw);
    }
    m->h_bpd = xcalloc((size_t)n, sizeof(float));
    m->h_logdet = xcalloc(3 * (size_t)n, sizeof(float));
    m->h_logp = m->h_logdet + n;
    m->h_ce = m->h_logp + n;
}

void glow_model_set_memory(glow_model *m, const glow_memory *mem)
{
    m->mem = *mem;
    if (m->mem.mode != MEMORY_INVERT)
        m->mem.every = 0;
    if (m->mem.every < 0)
        m->mem.every = 0;
}

double glow_model_inv_error(const glow_model *m, double *per_level)
{
    double worst = 0;
    for (int l = 0; l < m->L; l++) {
        if (per_level)
            per_level[l] = m->inv_err[l];
        if (m->inv_err[l] > worst || m->inv_err[l] != m->inv_err[l])
            worst = m->inv_err[l];
    }
    return worst;
}

void mdl_ensure_grads(glow_model *m)
{
    if (m->grads)
        return;
    mdl_reserve_grads(m);
    m->grads = m->b->alloc(m->b, m->n_trained * sizeof(float));
}

static float *param_ptr(glow_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static float *param_ptr(glow_model *m, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    long off = glow_model_param_offset(m, name);
    return off < 0 ? NULL : m->params + off;
}

static void *fixed_ptr(glow_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *fixed_ptr(glow_model *m, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    glow_param *p = glow_paramset_find(&m->layout, name);
    return p ? p->data : NULL;
}

long glow_model_param_offset(const glow_model *m, const char *name)
{
    for (int i = 0; i < m->layout.n; i++)
        if (strcmp(m->layout.v[i].name, name) == 0)
            return m->offset[i];
    return -1;
}

glow_model *glow_model_new(backend *b, const glow_config *cfg, const glow_paramset *ps,
                           glow_error *err)
{
    if (!ps) {
        glow_errorf(err, "no parameters given");
        return NULL;
    }
    glow_model *m = mdl_new(b, cfg, err);
    if (m && glow_model_set_params(m, ps, err)) {
        glow_model_free(m);
        return NULL;
    }
    return m;
}

glow_model *mdl_new(backend *b, const glow_config *cfg, glow_error *err)
{
    glow_model *m = xcalloc(1, sizeof *m);
    m->b = b;
    m->cfg = *cfg;
    if (mdl_reserve_fixed(m, err) != 0 || glow_paramset_layout_fixed(cfg, &m->layout, err)) {
        mdl_release_mem(m);
        free(m);
        return NULL;
    }
    m->offset = xcalloc((size_t)m->layout.n, sizeof *m->offset);
    for (int i = 0; i < m->layout.n; i++) {
        glow_param *p = &m->layout.v[i];
        if (p->trained && p->dtype == PARAM_F32) {
            m->offset[i] = (long)m->n_trained;
            m->n_trained += p->count;
        } else {
            m->offset[i] = -1;
        }
    }
    m->params = b->alloc(b, m->n_trained * sizeof(float));
    m->grads = NULL; /* mdl_ensure_grads */
    m->L = cfg->levels;
    m->K = cfg->steps;
    m->Wd = cfg->width;
    m->E = cfg->edge_bias ? 1 : 0;
    m->lv = xcalloc((size_t)m->L, sizeof *m->lv);
    m->inv_err = xcalloc((size_t)m->L, sizeof *m->inv_err);
    m->mem.mode = m->buf_mem.mode = MEMORY_STORE;
    int maxc = 0;
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        lv->C = glow_level_channels(cfg, l);
        lv->H = glow_level_h(cfg, l);
        lv->W = glow_level_w(cfg, l);
        if (lv->C > maxc)
            maxc = lv->C;
        lv->steps = xcalloc((size_t)m->K, sizeof *lv->steps);
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &lv->steps[k];
            s->an.b = param_ptr(m, "flow.%d.%d.actnorm.bias", l, k);
            s->an.l = param_ptr(m, "flow.%d.%d.actnorm.logs", l, k);
            s->w1 = param_ptr(m, "flow.%d.%d.coupling.conv1.weight", l, k);
            s->an1.b = param_ptr(m, "flow.%d.%d.coupling.actnorm1.bias", l, k);
            s->an1.l = param_ptr(m, "flow.%d.%d.coupling.actnorm1.logs", l, k);
            s->w2 = param_ptr(m, "flow.%d.%d.coupling.conv2.weight", l, k);
            s->an2.b = param_ptr(m, "flow.%d.%d.coupling.actnorm2.bias", l, k);
            s->an2.l = param_ptr(m, "flow.%d.%d.coupling.actnorm2.logs", l, k);
            s->w3 = param_ptr(m, "flow.%d.%d.coupling.conv3.weight", l, k);
            s->c3.b = param_ptr(m, "flow.%d.%d.coupling.conv3.bias", l, k);
            s->c3.l = param_ptr(m, "flow.%d.%d.coupling.conv3.logs", l, k);
            const size_t CC = (size_t)lv->C * lv->C;
            if (cfg->permutation == PERM_INVCONV) {
                s->W = xcalloc(CC, sizeof(double));
                s->Winv = xcalloc(CC, sizeof(double));
                if (cfg->lu) {
                    /* the LU product (Wdev, mdl_invconv_alloc); a plain invconv
                     * convolves with its parameter */
                    s->lu_lower = param_ptr(m, "flow.%d.%d.invconv.lower", l, k);
                    s->lu_upper = param_ptr(m, "flow.%d.%d.invconv.upper", l, k);
                    s->lu_logs = param_ptr(m, "flow.%d.%d.invconv.log_s", l, k);
                    s->lu_p = fixed_ptr(m, "flow.%d.%d.invconv.p", l, k);
                    s->lu_sign = fixed_ptr(m, "flow.%d.%d.invconv.sign_s", l, k);
                } else {
                    s->inv_w = param_ptr(m, "flow.%d.%d.invconv.weight", l, k);
                }
            } else {
                s->perm = b->alloc(b, (size_t)lv->C * sizeof(int32_t));
                s->iperm = b->alloc(b, (size_t)lv->C * sizeof(int32_t));
                if (cfg->permutation == PERM_SHUFFLE)
                    s->perm_host = fixed_ptr(m, "flow.%d.%d.shuffle.perm", l, k);
            }
        }
        if (l < m->L - 1) {
            lv->sw = param_ptr(m, "split.%d.conv.weight", l);
            lv->sp.b = param_ptr(m, "split.%d.conv.bias", l);
            lv->sp.l = param_ptr(m, "split.%d.conv.logs", l);
        }
    }
    m->tw = param_ptr(m, "prior.conv.weight");
    m->tp.b = param_ptr(m, "prior.conv.bias");
    m->tp.l = param_ptr(m, "prior.conv.logs");
    m->yw = param_ptr(m, "prior.y_emb.weight");
    m->yp.b = param_ptr(m, "prior.y_emb.bias");
    m->yp.l = param_ptr(m, "prior.y_emb.logs");
    m->cw = param_ptr(m, "classifier.weight");
    m->cp.b = param_ptr(m, "classifier.bias");
    m->cp.l = param_ptr(m, "classifier.logs");
    m->hW = xcalloc((size_t)maxc * maxc * 6, sizeof(double));
    mdl_invconv_alloc(m);
    return m;
}

/* Upload the permutation of every shuffle/reverse step. */
static void upload_perms(glow_model *m)
{
    for (int l = 0; l < m->L; l++) {
        mdl_level *lv = &m->lv[l];
        int32_t *p = xcalloc((size_t)lv->C, sizeof *p), *ip = xcalloc((size_t)lv->C, sizeof *ip);
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &lv->steps[k];
            if (!s->perm)
                continue;
            for (int j = 0; j < lv->C; j++)
                p[j] = s->perm_host ? s->perm_host[j] : lv->C - 1 - j;
            for (int j = 0; j < lv->C; j++)
                if (p[j] >= 0 && p[j] < lv->C)
                    ip[p[j]] = j;
            m->b->upload(m->b, s->perm, p, (size_t)lv->C * sizeof *p);
            m->b->upload(m->b, s->iperm, ip, (size_t)lv->C * sizeof *ip);
        }
        free(p);
        free(ip);
    }
}

int mdl_set_param(glow_model *m, const glow_param *src, glow_error *err)
{
    int j;
    for (j = 0; j < m->layout.n; j++)
        if (strcmp(m->layout.v[j].name, src->name) == 0)
            break;
    if (j == m->layout.n)
        return 0;
    glow_param *dst = &m->layout.v[j];
    if (dst->count != src->count || dst->dtype != src->dtype) {
        glow_errorf(err, "parameter %s: %zu elements expected, %zu given", dst->name, dst->count,
                    src->count);
        return -1;
    }
    if (m->offset[j] >= 0)
        m->b->upload(m->b, m->params + m->offset[j], src->data, src->count * sizeof(float));
    else if (dst->data != src->data)
        memcpy(dst->data, src->data, src->count * 4);
    return 0;
}

int glow_model_set_params(glow_model *m, const glow_paramset *ps, glow_error *err)
{
    for (int i = 0; i < ps->n; i++)
        if (mdl_set_param(m, &ps->v[i], err) != 0)
            return -1;
    return mdl_params_set(m, err);
}

int mdl_params_set(glow_model *m, glow_error *err)
{
    if (m->cfg.permutation == PERM_SHUFFLE) {
        for (int l = 0; l < m->L; l++)
            for (int k = 0; k < m->K; k++) {
                const int32_t *p = m->lv[l].steps[k].perm_host;
                int C = m->lv[l].C;
                char *seen = xcalloc((size_t)C, 1);
                for (int j = 0; j < C; j++) {
                    if (p[j] < 0 || p[j] >= C || seen[p[j]]) {
                        free(seen);
                        glow_errorf(err, "parameter flow.%d.%d.shuffle.perm: not a permutation "
                                         "of 0..%d", l, k, C - 1);
                        return -1;
                    }
                    seen[p[j]] = 1;
                }
                free(seen);
            }
    }
    upload_perms(m);
    /* the fixed invconv parameters (p, sign_s) may have changed */
    m->inv_state = 0;
    return 0;
}

void glow_model_get_params(glow_model *m, glow_paramset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        glow_param *dst = &ps->v[i];
        if (!dst->data) /* a tensor the caller takes from elsewhere */
            continue;
        for (int j = 0; j < m->layout.n; j++) {
            const glow_param *src = &m->layout.v[j];
            if (strcmp(src->name, dst->name) != 0 || src->count != dst->count)
                continue;
            if (m->offset[j] >= 0)
                m->b->download(m->b, dst->data, m->params + m->offset[j], dst->count * sizeof(float));
            else
                memcpy(dst->data, src->data, src->count * 4);
        }
    }
}

float *glow_model_params(glow_model *m) { return m->params; }
float *glow_model_grads(glow_model *m)
{
    mdl_ensure_grads(m);
    return m->grads;
}
size_t glow_model_n_trained(const glow_model *m) { return m->n_trained; }

void glow_model_flat_upload(glow_model *m, float *flat, const glow_paramset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        long off = glow_model_param_offset(m, ps->v[i].name);
        if (off >= 0 && ps->v[i].dtype == PARAM_F32)
            m->b->upload(m->b, flat + off, ps->v[i].data, ps->v[i].count * sizeof(float));
    }
}

void glow_model_flat_download(glow_model *m, const float *flat, glow_paramset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        long off = glow_model_param_offset(m, ps->v[i].name);
        if (off >= 0 && ps->v[i].dtype == PARAM_F32)
            m->b->download(m->b, ps->v[i].data, flat + off, ps->v[i].count * sizeof(float));
    }
}

void glow_model_free(glow_model *m)
{
    if (!m)
        return;
    free_batch(m);
    free(m->bufs);
    backend *b = m->b;
    for (int l = 0; l < m->L; l++) {
        for (int k = 0; k < m->K; k++) {
            mdl_step *s = &m->lv[l].steps[k];
            free(s->W);
            free(s->Winv);
            if (s->perm)
                b->free(b, s->perm);
            if (s->iperm)
                b->free(b, s->iperm);
        }
        free(m->lv[l].steps);
    }
    mdl_invconv_free(m);
    free(m->lv);
    free(m->inv_err);
    b->free(b, m->params);
    if (m->grads)
        b->free(b, m->grads);
    free(m->hW);
    free(m->offset);
    glow_paramset_free(&m->layout);
    mdl_release_mem(m);
    free(m);
}

void mdl_nchw_to_nhwc(const float *src, float *dst, int n, int c, int hw)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++)
                dst[((size_t)i * hw + p) * c + ch] = src[((size_t)i * c + ch) * hw + p];
}

void mdl_nhwc_to_nchw(const float *src, int ld, float *dst, int n, int c, int hw)
{
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int p = 0; p < hw; p++)
                dst[((size_t)i * c + ch) * hw + p] = src[((size_t)i * hw + p) * ld + ch];
}

int glow_model_n_latents(const glow_model *m) { return m->L; }

void glow_model_latent_shape(const glow_model *m, int idx, int n, int shape[4])
{
    const mdl_level *lv = &m->lv[idx];
    shape[0] = n;
    shape[1] = idx == m->L - 1 ? lv->C : lv->C / 2;
    shape[2] = lv->H;
    shape[3] = lv->W;
}

void glow_model_get_latent(glow_model *m, int idx, float *out)
{
    mdl_level *lv = &m->lv[idx];
    const int n = m->ncur, C = lv->C, hw = lv->H * lv->W;
    float *tmp = xmalloc(lv->rows * C * sizeof(float));
    m->b->download(m->b, tmp, lv->steps[m->K - 1].out, lv->rows * C * sizeof(float));
    if (idx == m->L - 1)
        mdl_nhwc_to_nchw(tmp, C, out, n, C, hw);
    else
        mdl_nhwc_to_nchw(tmp + C / 2, C, out, n, C / 2, hw);
    free(tmp);
}

void glow_model_get_x(glow_model *m, float *out)
{
    const glow_config *c = &m->cfg;
    const int hw = c->image_h * c->image_w;
    size_t cnt = (size_t)m->ncur * glow_config_dims(c);
    float *tmp = xmalloc(cnt * sizeof(float));
    m->b->download(m->b, tmp, m->x, cnt * sizeof(float));
    mdl_nhwc_to_nchw(tmp, c->channels, out, m->ncur, c->channels, hw);
    free(tmp);
}
