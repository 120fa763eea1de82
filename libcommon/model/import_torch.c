#include "import_torch.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The tensor names of one port, relative to a step (flow.layers.N.), a split
 * (flow.layers.N.) or the model. */
typedef struct {
    const char *name, *marker;      /* marker: a step tensor only this port has */
    const char *conv1, *an1, *conv2, *an2, *conv3w, *conv3b, *conv3l;
    const char *lower, *upper;      /* LU factors */
    const char *split_w, *split_b, *split_l;
    const char *top_w, *top_b, *top_l;
    const char *ycond_w, *ycond_b, *ycond_l;
    const char *class_w, *class_b, *class_l;
    glow_import_input input;
} port_names;

static const port_names ports[] = {
    {"y0ast/Glow-PyTorch", "block.0.conv.weight",
     "block.0.conv.weight", "block.0.actnorm", "block.2.conv.weight", "block.2.actnorm",
     "block.4.conv.weight", "block.4.conv.bias", "block.4.logs", "lower", "upper",
     "conv.conv.weight", "conv.conv.bias", "conv.logs",
     "learn_top_fn.conv.weight", "learn_top_fn.conv.bias", "learn_top_fn.logs",
     "project_ycond.linear.weight", "project_ycond.linear.bias", "project_ycond.logs",
     "project_class.linear.weight", "project_class.linear.bias", "project_class.logs",
     IMPORT_INPUT_CENTERED},
    {"chaiyujin/glow-pytorch", "f.0.weight",
     "f.0.weight", "f.0.actnorm", "f.2.weight", "f.2.actnorm",
     "f.4.weight", "f.4.bias", "f.4.logs", "l", "u",
     "conv.weight", "conv.bias", "conv.logs",
     "learn_top.weight", "learn_top.bias", "learn_top.logs",
     "project_ycond.weight", "project_ycond.bias", "project_ycond.logs",
     "project_class.weight", "project_class.bias", "project_class.logs",
     IMPORT_INPUT_UNIT},
};

void glow_import_opts_default(glow_import_opts *o)
{
    memset(o, 0, sizeof *o);
    o->weight_y = -1;
}

typedef struct {
    const torch_state *sd;
    const port_names *pn;
    char *used;
    glow_checkpoint *ck;
    glow_error *err;
} ctx;

static int fail(ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ctx *c, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    glow_errorf(c->err, "%s: %s", c->sd->path, msg);
    return -1;
}

static const torch_tensor *find(ctx *c, const char *name)
{
    for (int i = 0; i < c->sd->n; i++)
        if (strcmp(c->sd->t[i].name, name) == 0)
            return &c->sd->t[i];
    return NULL;
}

static const torch_tensor *findf(ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const torch_tensor *findf(ctx *c, const char *fmt, ...)
{
    char name[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return find(c, name);
}

static void shape_text(int nd, const int64_t *s, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < nd && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)s[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Their tensor `theirs` of shape [shape] into our parameter `ours`, each value
 * v becoming v * scale + shift (computed in double, rounded once). */
static int take(ctx *c, const char *ours, const char *theirs, int nd, const int64_t *shape,
                double scale, double shift)
{
    const torch_tensor *t = find(c, theirs);
    if (!t)
        return fail(c, "missing tensor '%s' (for our '%s')", theirs, ours);
    c->used[t - c->sd->t] = 1;
    char got[120], want[120];
    shape_text(t->ndim, t->shape, got, sizeof got);
    shape_text(nd, shape, want, sizeof want);
    if (t->ndim != nd || memcmp(t->shape, shape, (size_t)nd * sizeof *shape) != 0)
        return fail(c, "tensor '%s': shape %s, expected %s", theirs, got, want);
    if (!torch_tensor_is_float(t))
        return fail(c, "tensor '%s': dtype %s (a float type expected)", theirs,
                    tp_dtype_name(t->dtype));
    if (!c->ck)
        return 0; /* the first pass: shapes only */
    glow_param *p = glow_paramset_find(&c->ck->params, ours);
    if (!p || p->count != t->count || p->dtype != PARAM_F32)
        return fail(c, "tensor '%s' does not fit our '%s'", theirs, ours);
    float *dst = p->data;
    for (size_t i = 0; i < t->count; i++) {
        double v = torch_tensor_at(t, i);
        if (!isfinite(v))
            return fail(c, "tensor '%s': non-finite value %g at element %zu", theirs, v, i);
        double r = v * scale + shift;
        if (!(fabs(r) <= 3.4e38))
            return fail(c, "tensor '%s': element %zu out of float32 range after conversion",
                        theirs, i);
        dst[i] = (float)r;
    }
    return 0;
}

#define SH(...) (const int64_t[]){__VA_ARGS__}

static int layer_of(const char *name, long *idx, const char **rest)
{
    if (strncmp(name, "flow.layers.", 12) != 0)
        return -1;
    const char *s = name + 12;
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    long v = strtol(s, &end, 10);
    if (*end != '.' || v < 0 || v > 1000000)
        return -1;
    *idx = v;
    *rest = end + 1;
    return 0;
}

static int any_contains(const torch_state *sd, const char *needle, const char **which)
{
    for (int i = 0; i < sd->n; i++)
        if (strstr(sd->t[i].name, needle)) {
            *which = sd->t[i].name;
            return 1;
        }
    return 0;
}

/* The ports this project cannot express, by their tensor names. */
static int refuse_known(const torch_state *sd, glow_error *err)
{
    const char *w;
    if (any_contains(sd, ".coupling.nets.", &w)) {
        glow_errorf(err,
                    "%s: a dajinstory/glow-pytorch checkpoint (the seed's Glow; tensor '%.100s'), "
                    "which cannot be imported exactly: its affine coupling scales by "
                    "exp(clamp * sigmoid(h + 2)) where this model uses sigmoid(h + 2), its "
                    "coupling updates the first half of the channels from the second, its zero "
                    "convolutions pad with ones and its splits and top have no learned prior "
                    "(and a PermuteFlow's permutation is not saved at all)",
                    sd->path, w);
        return -1;
    }
    if (any_contains(sd, ".actnorm.loc", &w) || any_contains(sd, ".coupling.net.", &w) ||
        any_contains(sd, ".invconv.w_p", &w)) {
        glow_errorf(err,
                    "%s: a rosinality/glow-pytorch checkpoint (tensor '%.100s'), which cannot "
                    "be imported exactly: its model differs from this one: the coupling "
                    "networks have biased convolutions and no actnorm, its zero convolutions "
                    "pad with ones (not zeros, and no edge channel), it splits channels in "
                    "halves where this model interleaves them, its actnorm scale is a signed "
                    "factor, and its last block uses an LU convolution whatever the others use",
                    sd->path, w);
        return -1;
    }
    return 0;
}

enum { L_NONE = 0, L_STEP, L_SPLIT, L_OTHER };

/* Every tensor of the port into our layout (c->ck NULL: shapes and dtypes only). */
static int map_tensors(ctx *c, const glow_config *cf, glow_import_input input, int levels,
                       int steps)
{
    const port_names *pn = c->pn;
    const glow_config cfg = *cf;
    const torch_state *sd = c->sd;
    int64_t Ct = (int64_t)glow_level_channels(&cfg, levels - 1);
#define STEP(l, k) ((long)(l) * (steps + 2) + 1 + (k))
#define SPLIT(l) ((long)(l) * (steps + 2) + 1 + steps)
    char ours[200], theirs[300];
    int64_t Wd = cfg.width;
    for (int l = 0; l < levels; l++) {
        int64_t C = glow_level_channels(&cfg, l), Ch = C / 2;
        int64_t Cout = cfg.coupling == COUPLING_AFFINE ? C : Ch;
        for (int k = 0; k < steps; k++) {
            long L = STEP(l, k);
            /* actnorm: exp(logs) there, exp(3 logs) here */
            double sb = 1, tb = 0, tl = 0;
            if (l == 0 && k == 0 && input == IMPORT_INPUT_UNIT) {
                /* x_theirs = (256/255) (x_ours + 0.5): see import_torch.h */
                sb = 255.0 / 256.0, tb = 0.5, tl = log(256.0 / 255.0) / 3.0;
            }
#define T(fmt, ...) (snprintf(theirs, sizeof theirs, "flow.layers.%ld." fmt, L, ##__VA_ARGS__), theirs)
#define O(fmt, ...) (snprintf(ours, sizeof ours, "flow.%d.%d." fmt, l, k, ##__VA_ARGS__), ours)
            if (take(c, O("actnorm.bias"), T("actnorm.bias"), 4, SH(1, C, 1, 1), sb, tb) ||
                take(c, O("actnorm.logs"), T("actnorm.logs"), 4, SH(1, C, 1, 1), 1.0 / 3, tl))
                return -1;
            if (cfg.permutation == PERM_INVCONV && !cfg.lu) {
                if (take(c, O("invconv.weight"), T("invconv.weight"), 2, SH(C, C), 1, 0))
                    return -1;
            } else if (cfg.permutation == PERM_INVCONV) {
                if (take(c, O("invconv.p"), T("invconv.p"), 2, SH(C, C), 1, 0) ||
                    take(c, O("invconv.lower"), T("invconv.%s", pn->lower), 2, SH(C, C), 1, 0) ||
                    take(c, O("invconv.upper"), T("invconv.%s", pn->upper), 2, SH(C, C), 1, 0) ||
                    take(c, O("invconv.log_s"), T("invconv.log_s"), 1, SH(C), 1, 0) ||
                    take(c, O("invconv.sign_s"), T("invconv.sign_s"), 1, SH(C), 1, 0))
                    return -1;
            }
            if (take(c, O("coupling.conv1.weight"), T("%s", pn->conv1), 4, SH(Wd, Ch, 3, 3), 1,
                     0) ||
                take(c, O("coupling.actnorm1.bias"), T("%s.bias", pn->an1), 4, SH(1, Wd, 1, 1),
                     1, 0) ||
                take(c, O("coupling.actnorm1.logs"), T("%s.logs", pn->an1), 4, SH(1, Wd, 1, 1),
                     1.0 / 3, 0) ||
                take(c, O("coupling.conv2.weight"), T("%s", pn->conv2), 4, SH(Wd, Wd, 1, 1), 1,
                     0) ||
                take(c, O("coupling.actnorm2.bias"), T("%s.bias", pn->an2), 4, SH(1, Wd, 1, 1),
                     1, 0) ||
                take(c, O("coupling.actnorm2.logs"), T("%s.logs", pn->an2), 4, SH(1, Wd, 1, 1),
                     1.0 / 3, 0) ||
                take(c, O("coupling.conv3.weight"), T("%s", pn->conv3w), 4, SH(Cout, Wd, 3, 3),
                     1, 0) ||
                take(c, O("coupling.conv3.bias"), T("%s", pn->conv3b), 1, SH(Cout), 1, 0) ||
                take(c, O("coupling.conv3.logs"), T("%s", pn->conv3l), 3, SH(Cout, 1, 1), 1, 0))
                return -1;
#undef O
        }
        if (l < levels - 1) {
            long L = SPLIT(l);
            snprintf(ours, sizeof ours, "split.%d.conv.weight", l);
            if (take(c, ours, T("%s", pn->split_w), 4, SH(C, Ch, 3, 3), 1, 0))
                return -1;
            snprintf(ours, sizeof ours, "split.%d.conv.bias", l);
            if (take(c, ours, T("%s", pn->split_b), 1, SH(C), 1, 0))
                return -1;
            snprintf(ours, sizeof ours, "split.%d.conv.logs", l);
            if (take(c, ours, T("%s", pn->split_l), 3, SH(C, 1, 1), 1, 0))
                return -1;
        }
#undef T
    }
    if (cfg.learn_top &&
        (take(c, "prior.conv.weight", pn->top_w, 4, SH(2 * Ct, 2 * Ct, 3, 3), 1, 0) ||
         take(c, "prior.conv.bias", pn->top_b, 1, SH(2 * Ct), 1, 0) ||
         take(c, "prior.conv.logs", pn->top_l, 3, SH(2 * Ct, 1, 1), 1, 0)))
        return -1;
    if (cfg.y_condition) {
        int64_t nc = cfg.n_classes;
        if (take(c, "prior.y_emb.weight", pn->ycond_w, 2, SH(2 * Ct, nc), 1, 0) ||
            take(c, "prior.y_emb.bias", pn->ycond_b, 1, SH(2 * Ct), 1, 0) ||
            take(c, "prior.y_emb.logs", pn->ycond_l, 1, SH(2 * Ct), 1, 0))
            return -1;
        if (glow_config_has_head(&cfg)) {
            if (take(c, "classifier.weight", pn->class_w, 2, SH(nc, Ct), 1, 0) ||
                take(c, "classifier.bias", pn->class_b, 1, SH(nc), 1, 0) ||
                take(c, "classifier.logs", pn->class_l, 1, SH(nc), 1, 0))
                return -1;
        } else {
            /* --weight-y 0: the head is dropped on purpose */
            const char *drop[] = {pn->class_w, pn->class_b, pn->class_l};
            for (int i = 0; i < 3; i++) {
                const torch_tensor *t = find(c, drop[i]);
                if (t)
                    c->used[t - sd->t] = 1;
            }
        }
    }
    return 0;
#undef STEP
#undef SPLIT
}


static int import_port(ctx *c, const glow_import_opts *o)
{
    const torch_state *sd = c->sd;
    const port_names *pn = c->pn;
    /* the layers: squeeze (no tensors), K steps, split; ...; squeeze, K steps */
    long max = -1;
    for (int i = 0; i < sd->n; i++) {
        long idx;
        const char *rest;
        if (layer_of(sd->t[i].name, &idx, &rest) == 0 && idx > max)
            max = idx;
    }
    if (max < 1)
        return fail(c, "no flow steps (flow.layers.N.actnorm.bias)");
    char *kind = xcalloc((size_t)max + 1, 1);
    for (int i = 0; i < sd->n; i++) {
        long idx;
        const char *rest;
        if (layer_of(sd->t[i].name, &idx, &rest) != 0)
            continue;
        int k = strncmp(rest, "actnorm.", 8) == 0 || strncmp(rest, "invconv.", 8) == 0 ||
                        strncmp(rest, pn->conv1, 2) == 0
                    ? L_STEP
                : strncmp(rest, "conv.", 5) == 0 ? L_SPLIT : L_OTHER;
        if (kind[idx] && kind[idx] != k)
            k = L_OTHER;
        kind[idx] = (char)k;
    }
    int levels = 0, steps = -1;
    long pos = 0;
    int ok = 1;
    long bad_at = 0;
    const char *expect = "";
    while (ok) {
        if (pos > max || kind[pos] != L_NONE) {
            ok = 0, bad_at = pos, expect = "a squeeze (no tensors)";
            break;
        }
        pos++;
        int k = 0;
        while (pos <= max && kind[pos] == L_STEP)
            pos++, k++;
        if (k == 0 || (steps >= 0 && k != steps)) {
            ok = 0, bad_at = pos, expect = steps < 0 ? "a flow step" : "the same number of steps";
            break;
        }
        steps = k;
        levels++;
        if (pos > max)
            break;
        if (kind[pos] != L_SPLIT) {
            ok = 0, bad_at = pos, expect = "a split (conv.*) after the steps";
            break;
        }
        pos++;
    }
    free(kind);
    if (!ok)
        return fail(c, "layer flow.layers.%ld: expected %s; the layers are not those of a Glow "
                       "of %s",
                    bad_at, expect, pn->name);
    if (levels > 10)
        return fail(c, "%d levels (at most 10)", levels);
    const torch_tensor *an = findf(c, "flow.layers.1.actnorm.bias");
    if (!an || an->ndim != 4 || an->shape[0] != 1 || an->shape[2] != 1 || an->shape[3] != 1 ||
        an->shape[1] < 4 || an->shape[1] % 4)
        return fail(c, "flow.layers.1.actnorm.bias: missing or not of shape [1, 4*C, 1, 1]");
    glow_config cfg;
    glow_config_default(&cfg);
    cfg.levels = levels;
    cfg.steps = steps;
    cfg.channels = (int)(an->shape[1] / 4);
    cfg.edge_bias = 0;
    const torch_tensor *c1 = findf(c, "flow.layers.1.%s", pn->conv1);
    if (!c1 || c1->ndim != 4)
        return fail(c, "flow.layers.1.%s: missing or not a convolution weight", pn->conv1);
    if (c1->shape[0] < 1 || c1->shape[0] > 16384)
        return fail(c, "flow.layers.1.%s: width %lld out of range", pn->conv1,
                    (long long)c1->shape[0]);
    cfg.width = (int)c1->shape[0];
    const torch_tensor *c3 = findf(c, "flow.layers.1.%s", pn->conv3w);
    int64_t C0l = 4 * cfg.channels;
    if (!c3 || c3->ndim != 4 || (c3->shape[0] != C0l && c3->shape[0] != C0l / 2))
        return fail(c, "flow.layers.1.%s: missing, or its outputs are neither C nor C/2",
                    pn->conv3w);
    cfg.coupling = c3->shape[0] == C0l ? COUPLING_AFFINE : COUPLING_ADDITIVE;
    int has_w = findf(c, "flow.layers.1.invconv.weight") != NULL;
    int has_lu = findf(c, "flow.layers.1.invconv.p") != NULL;
    if (has_w || has_lu) {
        if (o->reverse)
            return fail(c, "--permutation reverse given, but the steps have invconv tensors");
        cfg.permutation = PERM_INVCONV;
        cfg.lu = has_lu;
    } else if (o->reverse) {
        cfg.permutation = PERM_REVERSE;
    } else {
        return fail(c, "the steps have no invconv tensors, so the model used the 'reverse' or "
                       "the 'shuffle' permutation, which the state dict does not record: give "
                       "--permutation reverse if it was 'reverse' (a 'shuffle' model cannot be "
                       "imported: %s does not save its permutation)",
                    pn->name);
    }
    int64_t Ct = (int64_t)glow_level_channels(&cfg, levels - 1);
    cfg.learn_top = find(c, pn->top_w) != NULL;
    const torch_tensor *yc = find(c, pn->ycond_w);
    cfg.y_condition = yc != NULL;
    if (yc) {
        if (yc->ndim != 2 || yc->shape[0] != 2 * Ct || yc->shape[1] < 1 ||
            yc->shape[1] > 1000000)
            return fail(c, "tensor '%s': not of shape [%lld, n_classes]", pn->ycond_w,
                        (long long)(2 * Ct));
        cfg.n_classes = (int)yc->shape[1];
    }
    cfg.weight_y = o->weight_y >= 0 ? o->weight_y : 0.01;
    cfg.n_bits = o->n_bits ? o->n_bits : 8;
    /* the image size: prior_h is [B, 2Ct, Ht, Wt] with Ht = H / 2^L */
    const torch_tensor *ph = find(c, "prior_h");
    if (ph) {
        c->used[ph - sd->t] = 1;
        if (ph->ndim != 4 || ph->shape[0] < 1 || ph->shape[1] != 2 * Ct || ph->shape[2] < 1 ||
            ph->shape[3] < 1 || ph->shape[2] > (65536 >> levels) ||
            ph->shape[3] > (65536 >> levels))
            return fail(c, "tensor 'prior_h': not of shape [B, %lld, H/2^%d, W/2^%d]",
                        (long long)(2 * Ct), levels, levels);
        for (size_t i = 0; i < ph->count; i++)
            if (torch_tensor_at(ph, i) != 0)
                return fail(c, "tensor 'prior_h': element %zu is not 0 (the ports keep it zero)",
                            i);
        int h = (int)(ph->shape[2] << levels), w = (int)(ph->shape[3] << levels);
        if (o->image_h && (o->image_h != h || o->image_w != w))
            return fail(c, "--image-size %dx%d, but prior_h says %dx%d", o->image_h, o->image_w,
                        h, w);
        cfg.image_h = h;
        cfg.image_w = w;
    } else if (o->image_h) {
        cfg.image_h = o->image_h;
        cfg.image_w = o->image_w;
    } else {
        return fail(c, "no prior_h buffer to tell the image size: give --image-size");
    }
    glow_import_input input = o->input ? o->input : pn->input;
    if (input == IMPORT_INPUT_UNIT && cfg.n_bits != 8)
        return fail(c, "--input unit (x = u/255) needs 8 bits, not --n-bits %d", cfg.n_bits);
    glow_error e2 = {{0}};
    if (glow_config_validate(&cfg, &e2) != 0)
        return fail(c, "the derived model config: %s", e2.msg);
    /* first the shapes alone, so that a small file cannot make the layout of a
     * large model be allocated; then the values */
    glow_checkpoint *dst = c->ck;
    c->ck = NULL;
    int rc = map_tensors(c, &cfg, input, levels, steps);
    c->ck = dst;
    if (rc != 0)
        return -1;
    if (glow_checkpoint_init(c->ck, &cfg, &e2) != 0)
        return fail(c, "%s", e2.msg);
    if (map_tensors(c, &cfg, input, levels, steps) != 0)
        return -1;
    for (int i = 0; i < sd->n; i++)
        if (!c->used[i])
            return fail(c, "tensor '%.200s' is not part of a %s Glow of this config (levels %d, "
                           "steps %d%s%s)",
                        sd->t[i].name, pn->name, levels, steps,
                        cfg.learn_top ? "" : ", no learned top",
                        cfg.y_condition ? "" : ", no class conditioning");
    glow_checkpoint_set_meta(c->ck, "imported_from", pn->name);
    glow_checkpoint_set_meta(c->ck, "import_input", input == IMPORT_INPUT_UNIT ? "unit"
                                                                                : "centered");
    return 0;
}

static void first_problem(void *p, const char *msg)
{
    glow_error *e = p;
    if (!e->msg[0])
        glow_errorf(e, "%s", msg);
}

int glow_import_torch(const torch_state *sd, const glow_import_opts *o, glow_checkpoint *ck,
                      glow_error *err)
{
    memset(ck, 0, sizeof *ck);
    if (refuse_known(sd, err) != 0)
        return -1;
    const port_names *pn = NULL;
    for (size_t p = 0; p < sizeof ports / sizeof *ports && !pn; p++)
        for (int i = 0; i < sd->n && !pn; i++) {
            long idx;
            const char *rest;
            if (layer_of(sd->t[i].name, &idx, &rest) == 0 && strcmp(rest, ports[p].marker) == 0)
                pn = &ports[p];
        }
    if (!pn) {
        char first[120];
        snprintf(first, sizeof first, "%.100s", sd->n ? sd->t[0].name : "");
        glow_errorf(err, "%s: not a Glow state dict of y0ast/Glow-PyTorch or "
                         "chaiyujin/glow-pytorch (no tensor flow.layers.N.block.0.conv.weight "
                         "or flow.layers.N.f.0.weight; the first is '%s')",
                    sd->path, first);
        return -1;
    }
    ctx c = {sd, pn, xcalloc((size_t)sd->n + 1, 1), ck, err};
    int rc = import_port(&c, o);
    free(c.used);
    if (rc == 0) {
        glow_error first = {{0}};
        if (glow_checkpoint_verify(ck, first_problem, &first) != 0) {
            glow_errorf(err, "%s: the imported model fails a check: %s", sd->path, first.msg);
            rc = -1;
        }
    }
    if (rc != 0) {
        glow_checkpoint_free(ck);
        memset(ck, 0, sizeof *ck);
    }
    return rc;
}

int glow_import_torch_file(const char *path, const glow_import_opts *o, glow_checkpoint *ck,
                           glow_error *err)
{
    torch_state sd;
    memset(ck, 0, sizeof *ck);
    if (torch_state_load(path, &sd, err) != 0)
        return -1;
    int rc = glow_import_torch(&sd, o, ck, err);
    torch_state_free(&sd);
    return rc;
}
