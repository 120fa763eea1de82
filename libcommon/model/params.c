#include "params.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    glow_paramset *ps; /* NULL: only count */
    int fixed_only;    /* data for the fixed parameters alone */
    int cap;
    uint64_t total, trained, tensors; /* elements, trained float elements, tensors */
} builder;

static void add(builder *b, param_dtype dt, int trained, int ndim, const int64_t *shape,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void add(builder *b, param_dtype dt, int trained, int ndim, const int64_t *shape,
                const char *fmt, ...)
{
    uint64_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (uint64_t)shape[i];
    b->total += count;
    b->trained += trained && dt == PARAM_F32 ? count : 0;
    b->tensors++;
    if (!b->ps)
        return;
    if (b->ps->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->ps->v = xrealloc(b->ps->v, (size_t)b->cap * sizeof *b->ps->v);
    }
    glow_param *p = &b->ps->v[b->ps->n++];
    memset(p, 0, sizeof *p);
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    p->name = xstrdup(name);
    p->dtype = dt;
    p->trained = trained;
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    p->data = b->fixed_only && trained && dt == PARAM_F32 ? NULL : xcalloc(p->count, 4);
}

static void add_vec(builder *b, int64_t n, const char *prefix, const char *a, const char *c)
{
    int64_t s[1] = {n};
    add(b, PARAM_F32, 1, 1, s, "%s.%s", prefix, a);
    if (c)
        add(b, PARAM_F32, 1, 1, s, "%s.%s", prefix, c);
}

/* A zeros layer: a 3x3 conv weight [out, in, 3, 3] plus bias and logs [out]. */
static void add_zeros_conv(builder *b, const char *prefix, int64_t out, int64_t in)
{
    int64_t w[4] = {out, in, 3, 3};
    add(b, PARAM_F32, 1, 4, w, "%s.weight", prefix);
    add_vec(b, out, prefix, "bias", "logs");
}

static void add_step(builder *b, const glow_config *c, int l, int k)
{
    const int64_t C = glow_level_channels(c, l), W = c->width, E = c->edge_bias ? 1 : 0;
    const int64_t cout = c->coupling == COUPLING_AFFINE ? C : C / 2;
    char pre[64];
    snprintf(pre, sizeof pre, "flow.%d.%d", l, k);
    char sub[96];

    snprintf(sub, sizeof sub, "%s.actnorm", pre);
    add_vec(b, C, sub, "bias", "logs");

    int64_t cc[2] = {C, C}, c1[1] = {C};
    if (c->permutation == PERM_INVCONV && !c->lu) {
        add(b, PARAM_F32, 1, 2, cc, "%s.invconv.weight", pre);
    } else if (c->permutation == PERM_INVCONV) {
        add(b, PARAM_F32, 0, 2, cc, "%s.invconv.p", pre);
        add(b, PARAM_F32, 1, 2, cc, "%s.invconv.lower", pre);
        add(b, PARAM_F32, 1, 2, cc, "%s.invconv.upper", pre);
        add(b, PARAM_F32, 1, 1, c1, "%s.invconv.log_s", pre);
        add(b, PARAM_F32, 0, 1, c1, "%s.invconv.sign_s", pre);
    } else if (c->permutation == PERM_SHUFFLE) {
        add(b, PARAM_I32, 0, 1, c1, "%s.shuffle.perm", pre);
    }

    int64_t w1[4] = {W, C / 2 + E, 3, 3}, w2[4] = {W, W, 1, 1};
    add(b, PARAM_F32, 1, 4, w1, "%s.coupling.conv1.weight", pre);
    snprintf(sub, sizeof sub, "%s.coupling.actnorm1", pre);
    add_vec(b, W, sub, "bias", "logs");
    add(b, PARAM_F32, 1, 4, w2, "%s.coupling.conv2.weight", pre);
    snprintf(sub, sizeof sub, "%s.coupling.actnorm2", pre);
    add_vec(b, W, sub, "bias", "logs");
    snprintf(sub, sizeof sub, "%s.coupling.conv3", pre);
    add_zeros_conv(b, sub, cout, W + E);
}

static void build(const glow_config *c, builder *bp)
{
    builder b = *bp;
    const int L = c->levels;
    const int64_t E = c->edge_bias ? 1 : 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < c->steps; k++)
            add_step(&b, c, l, k);
    for (int l = 0; l < L - 1; l++) {
        int64_t C = glow_level_channels(c, l);
        char pre[32];
        snprintf(pre, sizeof pre, "split.%d.conv", l);
        add_zeros_conv(&b, pre, C, C / 2 + E);
    }
    const int64_t Ct = glow_level_channels(c, L - 1);
    if (c->learn_top)
        add_zeros_conv(&b, "prior.conv", 2 * Ct, 2 * Ct + E);
    if (c->y_condition) {
        int64_t w[2] = {2 * Ct, c->n_classes};
        add(&b, PARAM_F32, 1, 2, w, "prior.y_emb.weight");
        add_vec(&b, 2 * Ct, "prior.y_emb", "bias", "logs");
    }
    if (glow_config_has_head(c)) {
        int64_t w[2] = {c->n_classes, Ct};
        add(&b, PARAM_F32, 1, 2, w, "classifier.weight");
        add_vec(&b, c->n_classes, "classifier", "bias", "logs");
    }
    *bp = b;
}

static int layout(const glow_config *c, glow_paramset *ps, int fixed_only, glow_error *err)
{
    memset(ps, 0, sizeof *ps);
    if (glow_config_validate(c, err))
        return -1;
    builder b = {ps, fixed_only, 0, 0, 0, 0};
    build(c, &b);
    return 0;
}

int glow_paramset_layout(const glow_config *c, glow_paramset *ps, glow_error *err)
{
    return layout(c, ps, 0, err);
}

int glow_paramset_layout_fixed(const glow_config *c, glow_paramset *ps, glow_error *err)
{
    return layout(c, ps, 1, err);
}

int glow_paramset_size(const glow_config *c, glow_paramset_count *out, glow_error *err)
{
    memset(out, 0, sizeof *out);
    if (glow_config_validate(c, err))
        return -1;
    builder b = {NULL, 0, 0, 0, 0, 0};
    build(c, &b);
    out->values = b.total;
    out->trained = b.trained;
    out->tensors = b.tensors;
    return 0;
}

glow_param *glow_paramset_find(const glow_paramset *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i].name, name) == 0)
            return &ps->v[i];
    return NULL;
}

size_t glow_paramset_trained_count(const glow_paramset *ps)
{
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->v[i].trained && ps->v[i].dtype == PARAM_F32)
            n += ps->v[i].count;
    return n;
}

void glow_paramset_clone(const glow_paramset *src, glow_paramset *dst, int zero)
{
    dst->n = src->n;
    dst->v = xcalloc((size_t)(src->n ? src->n : 1), sizeof *dst->v);
    for (int i = 0; i < src->n; i++) {
        glow_param *d = &dst->v[i];
        *d = src->v[i];
        d->name = xstrdup(src->v[i].name);
        if (!src->v[i].data) { /* a tensor held elsewhere (a fetched checkpoint's) */
            d->data = NULL;
            continue;
        }
        d->data = xcalloc(d->count, 4);
        if (!zero && d->count)
            memcpy(d->data, src->v[i].data, d->count * 4);
    }
}

void glow_paramset_free(glow_paramset *ps)
{
    for (int i = 0; i < ps->n; i++) {
        free(ps->v[i].name);
        free(ps->v[i].data);
    }
    free(ps->v);
    ps->v = NULL;
    ps->n = 0;
}
