#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/linalg.h"
#include "base/mem_budget.h"

static const char *const reserved[] = {"format", "version", "model", "step", "images_seen",
                                       "optimizer", "rng", "train_config"};

static int is_reserved(const char *key)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(key, reserved[i]) == 0)
            return 1;
    return 0;
}

static int optimizer_known(const char *s)
{
    return s && (strcmp(s, "adam") == 0 || strcmp(s, "adamax") == 0);
}

/* The subset of ps that is trained, as a zeroed paramset (optimizer moments),
 * or without data (alloc 0: a fetched checkpoint's). */
static void trained_subset(const glow_paramset *ps, glow_paramset *out, int alloc)
{
    out->n = 0;
    out->v = xcalloc((size_t)ps->n + 1, sizeof *out->v);
    for (int i = 0; i < ps->n; i++) {
        if (!ps->v[i].trained)
            continue;
        glow_param *d = &out->v[out->n++];
        *d = ps->v[i];
        d->name = xstrdup(ps->v[i].name);
        d->data = alloc ? xcalloc(d->count, 4) : NULL;
    }
}

/* Host bytes of ps's tensors (a fetched checkpoint's trained ones have none). */
static uint64_t set_bytes(const glow_paramset *ps)
{
    uint64_t n = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->v[i].data)
            n += (uint64_t)ps->v[i].count * 4;
    return n;
}

/* Reserve bytes of host tensors for ck in the memory budget. */
static int reserve(glow_checkpoint *ck, uint64_t bytes, const char *what, glow_error *err)
{
    if (glow_mem_reserve(bytes, what, err) != 0)
        return -1;
    ck->mem += bytes;
    return 0;
}

static void release(glow_checkpoint *ck, uint64_t bytes)
{
    if (bytes > ck->mem)
        bytes = ck->mem;
    glow_mem_release(bytes);
    ck->mem -= bytes;
}

int glow_checkpoint_init(glow_checkpoint *ck, const glow_config *cfg, glow_error *err)
{
    memset(ck, 0, sizeof *ck);
    ck->cfg = *cfg;
    glow_paramset_count pc;
    if (glow_paramset_size(cfg, &pc, err) != 0 ||
        reserve(ck, glow_mem_mul(pc.values, 4), "the model's parameters", err) != 0)
        return -1;
    return glow_paramset_layout(cfg, &ck->params, err);
}

int glow_checkpoint_init_fetched(glow_checkpoint *ck, const glow_config *cfg, glow_ckpt_fetch_fn fetch,
                                 void *ctx, glow_error *err)
{
    memset(ck, 0, sizeof *ck);
    ck->cfg = *cfg;
    glow_paramset_count pc;
    if (glow_paramset_size(cfg, &pc, err) != 0 ||
        reserve(ck, glow_mem_mul(pc.values - pc.trained, 4), "the model's fixed parameters", err) != 0)
        return -1;
    ck->fetch = fetch;
    ck->fetch_ctx = ctx;
    return glow_paramset_layout_fixed(cfg, &ck->params, err);
}

void glow_checkpoint_drop_training_state(glow_checkpoint *ck)
{
    release(ck, set_bytes(&ck->optim_m) + set_bytes(&ck->optim_v) + set_bytes(&ck->ema));
    glow_paramset_free(&ck->optim_m);
    glow_paramset_free(&ck->optim_v);
    glow_paramset_free(&ck->ema);
    ck->has_optim = ck->has_ema = 0;
    free(ck->optimizer);
    free(ck->rng);
    ck->optimizer = ck->rng = NULL;
}

int glow_checkpoint_add_training_state(glow_checkpoint *ck, const char *optimizer, int with_ema,
                                       glow_error *err)
{
    if (!optimizer_known(optimizer)) {
        glow_errorf(err, "optimizer: '%s' is not adam or adamax", optimizer ? optimizer : "");
        return -1;
    }
    char *rng = ck->rng;
    ck->rng = NULL;
    glow_checkpoint_drop_training_state(ck);
    ck->rng = rng;
    uint64_t trained = ck->fetch ? 0 : glow_paramset_trained_count(&ck->params);
    if (reserve(ck, 8 * trained + (with_ema ? set_bytes(&ck->params) : 0),
                "the training state (optimizer moments, EMA)", err) != 0)
        return -1;
    ck->optimizer = xstrdup(optimizer);
    trained_subset(&ck->params, &ck->optim_m, !ck->fetch);
    trained_subset(&ck->params, &ck->optim_v, !ck->fetch);
    ck->has_optim = 1;
    if (with_ema) {
        glow_paramset_clone(&ck->params, &ck->ema, 0);
        ck->has_ema = 1;
    }
    return 0;
}

void glow_checkpoint_free(glow_checkpoint *ck)
{
    glow_checkpoint_drop_training_state(ck);
    release(ck, ck->mem);
    glow_paramset_free(&ck->params);
    free(ck->train_config);
    for (int i = 0; i < ck->n_extra; i++) {
        free(ck->extra[i].key);
        free(ck->extra[i].value);
    }
    free(ck->extra);
    memset(ck, 0, sizeof *ck);
}

const char *glow_checkpoint_meta(const glow_checkpoint *ck, const char *key)
{
    for (int i = 0; i < ck->n_extra; i++)
        if (strcmp(ck->extra[i].key, key) == 0)
            return ck->extra[i].value;
    return NULL;
}

int glow_checkpoint_set_meta(glow_checkpoint *ck, const char *key, const char *value)
{
    if (is_reserved(key))
        return -1;
    for (int i = 0; i < ck->n_extra; i++)
        if (strcmp(ck->extra[i].key, key) == 0) {
            free(ck->extra[i].value);
            ck->extra[i].value = xstrdup(value);
            return 0;
        }
    ck->extra = xrealloc(ck->extra, (size_t)(ck->n_extra + 1) * sizeof *ck->extra);
    ck->extra[ck->n_extra].key = xstrdup(key);
    ck->extra[ck->n_extra].value = xstrdup(value);
    ck->n_extra++;
    return 0;
}

void glow_checkpoint_set_rng(glow_checkpoint *ck, const glow_rng *r)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%" PRIu64 " %" PRIu64 " %" PRIu64, r->seed, r->stream, r->index);
    free(ck->rng);
    ck->rng = xstrdup(buf);
}

/* A complete decimal unsigned 64-bit number; advances *s past it. */
static int parse_u64(const char **s, uint64_t *out)
{
    const char *p = *s;
    if (*p < '0' || *p > '9')
        return -1;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    *s = p;
    return 0;
}

static int parse_rng(const char *text, glow_rng *r)
{
    const char *p = text;
    uint64_t v[3];
    for (int i = 0; i < 3; i++) {
        if (i && *p++ != ' ')
            return -1;
        if (parse_u64(&p, &v[i]))
            return -1;
    }
    if (*p)
        return -1;
    r->seed = v[0];
    r->stream = v[1];
    r->index = v[2];
    return 0;
}

int glow_checkpoint_get_rng(const glow_checkpoint *ck, glow_rng *r)
{
    return ck->rng ? parse_rng(ck->rng, r) : -1;
}

void glow_checkpoint_set_train_config(glow_checkpoint *ck, const char *json)
{
    free(ck->train_config);
    ck->train_config = json ? xstrdup(json) : NULL;
}

/* ---- loading ---- */

typedef struct {
    glow_problem_fn fn;
    void *ctx;
    int n;
    const char *path;
} reporter;

static void report(reporter *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(reporter *r, const char *fmt, ...)
{
    char msg[1024];
    int n = r->path ? snprintf(msg, sizeof msg, "%s: ", r->path) : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    r->n++;
    if (r->fn)
        r->fn(r->ctx, msg);
}

static const char *st_dtype_of(param_dtype d) { return d == PARAM_I32 ? "I32" : "F32"; }

static void shape_str(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Is tensor t of p's dtype and shape? 0, or -1 reported. */
static int check_shape(reporter *r, const st_tensor *t, const glow_param *p)
{
    if (t->dtype != (p->dtype == PARAM_I32 ? ST_I32 : ST_F32)) {
        report(r, "tensor '%s': dtype %s, expected %s", t->name, t->dtype_name,
               st_dtype_of(p->dtype));
        return -1;
    }
    int same = t->ndim == p->ndim;
    for (int i = 0; same && i < p->ndim; i++)
        same = t->shape[i] == p->shape[i];
    if (!same) {
        char got[128], want[128];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(want, sizeof want, p->ndim, p->shape);
        report(r, "tensor '%s': shape %s, expected %s", t->name, got, want);
        return -1;
    }
    return 0;
}

/* Are the floats of p (read from tensor `name`) finite? */
static void check_finite(reporter *r, const char *name, const glow_param *p)
{
    if (p->dtype != PARAM_F32)
        return;
    const float *x = p->data;
    for (size_t i = 0; i < p->count; i++)
        if (!isfinite(x[i])) {
            report(r, "tensor '%s': non-finite value %g at element %zu", name, (double)x[i], i);
            return;
        }
}

/* Copy tensor t into p after checking dtype, shape and finiteness. */
static void take_tensor(reporter *r, const st_tensor *t, glow_param *p)
{
    if (check_shape(r, t, p) != 0)
        return;
    memcpy(p->data, t->data, p->count * 4);
    check_finite(r, t->name, p);
}

/* Check a decimal non-negative int64 metadata value. */
static void take_count(reporter *r, const st_file *f, const char *key, int64_t *out)
{
    const char *s = st_meta(f, key);
    *out = 0;
    if (!s)
        return;
    uint64_t v;
    const char *p = s;
    if (parse_u64(&p, &v) || *p || v > (uint64_t)INT64_MAX)
        report(r, "metadata '%s': '%.40s' is not a non-negative integer", key, s);
    else
        *out = (int64_t)v;
}

/* The checks of the file as a whole, before any tensor: format, version, the
 * model config, a model no bigger than the file's tensors can hold. Returns 0
 * with cfg, pc and whether any optim.* / ema.* tensor is there, or -1 reported. */
static int check_head(const st_file *f, reporter *r, glow_config *cfg, glow_paramset_count *pc,
                      int *any_optim, int *any_ema)
{
    const char *fmt = st_meta(f, "format"), *ver = st_meta(f, "version");
    const char *model = st_meta(f, "model");
    if (!fmt || strcmp(fmt, "glow") != 0) {
        report(r, "metadata 'format': %s%.40s%s, expected \"glow\"", fmt ? "\"" : "",
               fmt ? fmt : "missing", fmt ? "\"" : "");
        return -1;
    }
    if (!ver || strcmp(ver, "1") != 0) {
        report(r, "metadata 'version': %s%.40s%s is not a known version (1)", ver ? "\"" : "",
               ver ? ver : "missing", ver ? "\"" : "");
        return -1;
    }
    if (!model) {
        report(r, "metadata 'model': missing");
        return -1;
    }
    glow_error err = {{0}};
    if (glow_config_from_json(model, cfg, &err)) {
        report(r, "metadata 'model': %s", err.msg);
        return -1;
    }
    /* Training state is present when any of its tensors is. */
    *any_optim = *any_ema = 0;
    uint64_t have = 0;
    for (int i = 0; i < f->n; i++) {
        *any_optim |= strncmp(f->t[i].name, "optim.", 6) == 0;
        *any_ema |= strncmp(f->t[i].name, "ema.", 4) == 0;
        have += f->t[i].nbytes;
    }
    /* Every parameter must be in the file, so a model much bigger than the
     * file's tensors is refused before its layout is allocated; a few missing
     * tensors are named one by one below. */
    if (glow_paramset_size(cfg, pc, &err) != 0) {
        report(r, "metadata 'model': %s", err.msg);
        return -1;
    }
    if (glow_mem_mul(pc->values, 4) > have + have / 2 + (1u << 20)) {
        char a[32], b[32];
        report(r, "metadata 'model': the model has %llu parameter values (%s), more than the "
                  "file's tensors hold (%s)",
               (unsigned long long)pc->values,
               glow_mem_str(glow_mem_mul(pc->values, 4), a, sizeof a), glow_mem_str(have, b, sizeof b));
        return -1;
    }
    return 0;
}

/* The parameter of lay that tensor `name` of the file stands for: a parameter
 * (*set 0), optim.<trained parameter>.m or .v (*set 2 or 3), ema.<parameter>
 * (*set 1); NULL when none. */
static const glow_param *classify(const glow_paramset *lay, const char *name, int *set)
{
    if (strncmp(name, "optim.", 6) == 0) {
        size_t len = strlen(name);
        int which = len > 8 && strcmp(name + len - 2, ".m") == 0   ? 0
                    : len > 8 && strcmp(name + len - 2, ".v") == 0 ? 1
                                                                   : -1;
        if (which < 0)
            return NULL;
        char *base = xstrdup(name + 6);
        base[len - 8] = '\0';
        const glow_param *p = glow_paramset_find(lay, base);
        free(base);
        *set = 2 + which;
        return p && p->trained ? p : NULL;
    }
    if (strncmp(name, "ema.", 4) == 0) {
        *set = 1;
        return glow_paramset_find(lay, name + 4);
    }
    *set = 0;
    return glow_paramset_find(lay, name);
}

/* The metadata after the tensors: step, images_seen, optimizer (present exactly
 * with optim.* tensors), rng; into ck when not NULL (the rest: train_config,
 * extra keys), else the counts alone. */
static void check_meta(const st_file *f, reporter *r, int has_optim, glow_checkpoint *ck,
                       int64_t *step, int64_t *images_seen)
{
    take_count(r, f, "step", step);
    take_count(r, f, "images_seen", images_seen);
    const char *opt = st_meta(f, "optimizer");
    if (opt && !optimizer_known(opt))
        report(r, "metadata 'optimizer': '%.40s' is not adam or adamax", opt);
    else if (opt && !has_optim)
        report(r, "metadata 'optimizer': given but the file has no optim.* tensors");
    else if (!opt && has_optim)
        report(r, "metadata 'optimizer': missing, but the file has optim.* tensors");
    const char *rng = st_meta(f, "rng");
    glow_rng g;
    if (rng && parse_rng(rng, &g))
        report(r, "metadata 'rng': '%.60s' is not \"SEED STREAM INDEX\"", rng);
    if (!ck)
        return;
    if (opt)
        ck->optimizer = xstrdup(opt);
    if (rng)
        ck->rng = xstrdup(rng);
    const char *tc = st_meta(f, "train_config");
    if (tc)
        ck->train_config = xstrdup(tc);
    for (int i = 0; i < f->n_meta; i++)
        if (!is_reserved(f->meta_keys[i]))
            glow_checkpoint_set_meta(ck, f->meta_keys[i], f->meta_vals[i]);
}

static int check_file(const st_file *f, glow_checkpoint *ck, reporter *r)
{
    glow_config cfg;
    glow_paramset_count pc;
    int any_optim, any_ema;
    if (check_head(f, r, &cfg, &pc, &any_optim, &any_ema) != 0)
        return -1;
    glow_error err = {{0}};
    const char *what = "the checkpoint's tensors";
    uint64_t extra = (any_optim ? 8 * pc.trained : 0) + (any_ema ? 4 * pc.values : 0);
    if (glow_mem_check(4 * pc.values + extra, what, &err) != 0 ||
        glow_checkpoint_init(ck, &cfg, &err) != 0 || reserve(ck, extra, what, &err) != 0) {
        report(r, "%s", err.msg);
        return -1;
    }
    if (any_optim) {
        trained_subset(&ck->params, &ck->optim_m, 1);
        trained_subset(&ck->params, &ck->optim_v, 1);
        ck->has_optim = 1;
    }
    if (any_ema) {
        glow_paramset_clone(&ck->params, &ck->ema, 1);
        ck->has_ema = 1;
    }

    /* Seen flags, one per destination tensor, to find the missing ones. */
    int np = ck->params.n, no = ck->optim_m.n;
    char *seen = xcalloc((size_t)(np * 2 + no * 2) + 1, 1);
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->t[i];
        const char *name = t->name;
        glow_param *p = NULL;
        int slot = -1, set;
        const glow_param *lp = classify(&ck->params, name, &set);
        if (lp) {
            const glow_paramset *dst = set == 0 ? &ck->params : set == 1 ? &ck->ema
                                       : set == 2 ? &ck->optim_m : &ck->optim_v;
            p = glow_paramset_find(dst, lp->name);
            if (p)
                slot = set == 0   ? (int)(p - dst->v)
                       : set == 1 ? np + (int)(p - dst->v)
                                  : 2 * np + (set - 2) * no + (int)(p - dst->v);
        }
        if (!p) {
            report(r, "tensor '%s': not a parameter of this model%s", name,
                   strncmp(name, "optim.", 6) == 0 ? " (or not a trained one)" : "");
            continue;
        }
        seen[slot] = 1;
        take_tensor(r, t, p);
    }
    for (int i = 0; i < np; i++) {
        if (!seen[i])
            report(r, "tensor '%s': missing", ck->params.v[i].name);
        if (ck->has_ema && !seen[np + i])
            report(r, "tensor 'ema.%s': missing", ck->params.v[i].name);
    }
    for (int i = 0; ck->has_optim && i < no; i++) {
        if (!seen[2 * np + i])
            report(r, "tensor 'optim.%s.m': missing", ck->optim_m.v[i].name);
        if (!seen[2 * np + no + i])
            report(r, "tensor 'optim.%s.v': missing", ck->optim_v.v[i].name);
    }
    free(seen);
    check_meta(f, r, ck->has_optim, ck, &ck->step, &ck->images_seen);
    return 0;
}

static void verify_into(const glow_checkpoint *ck, reporter *r);

static int check_st(const st_file *f, glow_checkpoint *ck, glow_problem_fn fn, void *ctx,
                    int deep)
{
    memset(ck, 0, sizeof *ck);
    reporter r = {fn, ctx, 0, f->path};
    if (check_file(f, ck, &r) == 0 && r.n == 0 && deep)
        verify_into(ck, &r);
    if (r.n)
        glow_checkpoint_free(ck);
    return r.n;
}

int glow_checkpoint_check_st(const st_file *f, glow_checkpoint *ck, glow_problem_fn fn,
                             void *ctx)
{
    return check_st(f, ck, fn, ctx, 1);
}

int glow_checkpoint_inspect_st(const st_file *f, glow_checkpoint *ck, glow_problem_fn fn,
                               void *ctx)
{
    return check_st(f, ck, fn, ctx, 0);
}

int glow_checkpoint_check(const char *path, glow_checkpoint *ck, glow_problem_fn fn, void *ctx)
{
    memset(ck, 0, sizeof *ck);
    st_file f;
    glow_error err = {{0}};
    if (st_load(path, &f, &err)) {
        if (fn)
            fn(ctx, err.msg);
        return 1;
    }
    int n = glow_checkpoint_check_st(&f, ck, fn, ctx);
    st_free(&f);
    return n;
}

static void first_problem(void *ctx, const char *msg)
{
    glow_error *err = ctx;
    if (err && !err->msg[0])
        glow_errorf(err, "%s", msg);
}

static void first_of(glow_error *err, const glow_error *first, int n);

int glow_checkpoint_load(const char *path, glow_checkpoint *ck, glow_error *err)
{
    glow_error first = {{0}};
    int n = glow_checkpoint_check(path, ck, first_problem, &first);
    if (n) {
        first_of(err, &first, n);
        return -1;
    }
    return 0;
}

/* ---- weights only ---- */

static void verify_param(const glow_param *p, const char *prefix, reporter *r);

/* A message that already names the file (st_read's, st_finish's, the budget's
 * with the tensor's name), reported without the path a second time. */
static void report_named(reporter *r, const char *msg)
{
    const char *path = r->path;
    r->path = NULL;
    report(r, "%s", msg);
    r->path = path;
}

static int tensor_offset_cmp(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The message of the first problem, "(and N more)" when there were more. */
static void first_of(glow_error *err, const glow_error *first, int n)
{
    if (n > 1)
        glow_errorf(err, "%s (and %d more problem%s)", first->msg, n - 1, n > 2 ? "s" : "");
    else
        glow_errorf(err, "%s", first->msg);
}

int glow_checkpoint_load_weights(const char *path, int use_ema, const glow_weights_sink *sink,
                                 void *ctx, glow_error *err)
{
    st_file f;
    if (st_open(path, &f, err) != 0)
        return -1;
    glow_error first = {{0}};
    reporter r = {first_problem, &first, 0, f.path};
    glow_weights_info info;
    memset(&info, 0, sizeof info);
    glow_paramset_count pc;
    glow_paramset lay = {NULL, 0}, ema_fixed = {NULL, 0};
    uint64_t fixed_mem = 0;
    char *seen = NULL;
    const st_tensor **order = NULL;
    int rc = -1, nuse = 0;
    if (check_head(&f, &r, &info.cfg, &pc, &info.has_optim, &info.has_ema) != 0)
        goto done;
    /* the layout with the fixed parameters' values (those of the weights, and
     * with use_ema the EMA's beside them) */
    fixed_mem = 4 * (pc.values - pc.trained) * (use_ema ? 2 : 1);
    glow_error e;
    if (glow_mem_reserve(fixed_mem, "the checkpoint's fixed parameters", &e) != 0) {
        fixed_mem = 0;
        report(&r, "%s", e.msg);
        goto done;
    }
    if (glow_paramset_layout_fixed(&info.cfg, &lay, &e) != 0 ||
        (use_ema && glow_paramset_layout_fixed(&info.cfg, &ema_fixed, &e) != 0)) {
        report(&r, "metadata 'model': %s", e.msg);
        goto done;
    }
    /* every tensor by its header: a parameter, its EMA or its moments, of the
     * right dtype and shape; which of them are read */
    const int np = lay.n, want = use_ema ? 1 : 0;
    seen = xcalloc((size_t)(4 * np) + 1, 1);
    order = xcalloc((size_t)f.n + 1, sizeof *order);
    for (int i = 0; i < f.n; i++) {
        const st_tensor *t = &f.t[i];
        int set;
        const glow_param *p = classify(&lay, t->name, &set);
        if (!p) {
            report(&r, "tensor '%s': not a parameter of this model%s", t->name,
                   strncmp(t->name, "optim.", 6) == 0 ? " (or not a trained one)" : "");
            continue;
        }
        seen[set * np + (p - lay.v)] = 1;
        if (check_shape(&r, t, p) == 0 && (set == want || (use_ema && set == 0 && !p->trained)))
            order[nuse++] = t;
    }
    for (int i = 0; i < np; i++) {
        const glow_param *p = &lay.v[i];
        const int tr = p->trained && p->dtype == PARAM_F32;
        if (!seen[i])
            report(&r, "tensor '%s': missing", p->name);
        if (info.has_ema && !seen[np + i])
            report(&r, "tensor 'ema.%s': missing", p->name);
        if (info.has_optim && tr && !seen[2 * np + i])
            report(&r, "tensor 'optim.%s.m': missing", p->name);
        if (info.has_optim && tr && !seen[3 * np + i])
            report(&r, "tensor 'optim.%s.v': missing", p->name);
    }
    check_meta(&f, &r, info.has_optim, NULL, &info.step, &info.images_seen);
    if (r.n)
        goto done;
    if (sink->begin(ctx, &info, err) != 0) {
        rc = -2; /* the sink's message */
        goto done;
    }
    /* the tensors used, in the file's order, one at a time */
    qsort(order, (size_t)nuse, sizeof *order, tensor_offset_cmp);
    for (int i = 0; i < nuse && r.n == 0; i++) {
        const st_tensor *t = order[i];
        int set;
        const glow_param *lp = classify(&lay, t->name, &set);
        glow_param q = *lp;
        const int fixed = !(lp->trained && lp->dtype == PARAM_F32);
        char what[400];
        snprintf(what, sizeof what, "%s: tensor '%s'", f.path, t->name);
        if (fixed)
            q.data = set == 1 ? ema_fixed.v[lp - lay.v].data : lp->data;
        else if (glow_mem_reserve(t->nbytes, what, &e) != 0) {
            report_named(&r, e.msg);
            break;
        } else
            q.data = xmalloc(t->nbytes ? t->nbytes : 1);
        if (st_read(&f, t, q.data, &e) != 0)
            report_named(&r, e.msg);
        if (r.n == 0)
            check_finite(&r, t->name, &q);
        if (r.n == 0)
            verify_param(&q, set == 1 ? "ema." : "", &r);
        if (r.n == 0 && set == want && sink->param(ctx, &q, err) != 0)
            rc = -2;
        if (!fixed) {
            free(q.data);
            glow_mem_release(t->nbytes);
        }
        if (rc == -2)
            goto done;
    }
    for (int i = 0; use_ema && r.n == 0 && i < np; i++) {
        const glow_param *p = &lay.v[i];
        if (p->data && memcmp(p->data, ema_fixed.v[i].data, p->count * 4) != 0)
            report(&r, "tensor 'ema.%s': differs from the fixed parameter", p->name);
    }
    if (r.n == 0 && st_finish(&f, &e) != 0)
        report_named(&r, e.msg);
    if (r.n == 0)
        rc = 0;
done:
    if (rc == -1)
        first_of(err, &first, r.n);
    free(seen);
    free(order);
    glow_paramset_free(&lay);
    glow_paramset_free(&ema_fixed);
    glow_mem_release(fixed_mem);
    st_free(&f);
    return rc == 0 ? 0 : -1;
}

/* ---- deeper checks ---- */

/* The checks of one parameter that need its values: an invconv weight
 * invertible, an LU p a permutation matrix, sign_s +-1, a shuffle.perm a
 * permutation. */
static void verify_param(const glow_param *p, const char *prefix, reporter *r)
{
    {
        const char *nm = p->name;
        size_t len = strlen(nm);
        const float *x = p->data;
        int n = (int)p->shape[0];
        if (len > 15 && strcmp(nm + len - 15, ".invconv.weight") == 0) {
            glow_error e;
            if (glow_mem_reserve(8 * (uint64_t)p->count, "the determinant's float64 copy", &e)) {
                report(r, "tensor '%s%s': %s", prefix, nm, e.msg);
                return;
            }
            double *a = xmalloc(p->count * sizeof *a);
            for (size_t j = 0; j < p->count; j++)
                a[j] = x[j];
            int sign;
            double lad = linalg_logabsdet(a, n, &sign);
            if (sign == 0 || !isfinite(lad))
                report(r, "tensor '%s%s': singular (det = 0)", prefix, nm);
            free(a);
            glow_mem_release(8 * (uint64_t)p->count);
        } else if (len > 10 && strcmp(nm + len - 10, ".invconv.p") == 0) {
            int ok = 1;
            for (int row = 0; row < n && ok; row++) {
                int ones_r = 0, ones_c = 0;
                for (int c = 0; c < n; c++) {
                    float v = x[row * n + c], w = x[c * n + row];
                    ok &= v == 0.0f || v == 1.0f;
                    ones_r += v == 1.0f;
                    ones_c += w == 1.0f;
                }
                ok &= ones_r == 1 && ones_c == 1;
            }
            if (!ok)
                report(r, "tensor '%s%s': not a permutation matrix", prefix, nm);
        } else if (len > 15 && strcmp(nm + len - 15, ".invconv.sign_s") == 0) {
            for (size_t j = 0; j < p->count; j++)
                if (x[j] != 1.0f && x[j] != -1.0f) {
                    report(r, "tensor '%s%s': element %zu is %g, not +-1", prefix, nm, j,
                           (double)x[j]);
                    break;
                }
        } else if (len > 13 && strcmp(nm + len - 13, ".shuffle.perm") == 0) {
            const int32_t *q = p->data;
            char *hit = xcalloc(p->count + 1, 1);
            for (size_t j = 0; j < p->count; j++) {
                if (q[j] < 0 || (size_t)q[j] >= p->count || hit[q[j]]) {
                    report(r, "tensor '%s%s': not a permutation of 0..%zu (element %zu is %d)",
                           prefix, nm, p->count - 1, j, (int)q[j]);
                    break;
                }
                hit[q[j]] = 1;
            }
            free(hit);
        }
    }
}

static void verify_set(const glow_checkpoint *ck, const glow_paramset *ps, const char *prefix,
                       reporter *r)
{
    for (int i = 0; i < ps->n; i++) {
        const glow_param *p = &ps->v[i];
        const char *nm = p->name;
        verify_param(p, prefix, r);
        if (ps == &ck->ema && !p->trained) {
            const glow_param *w = glow_paramset_find(&ck->params, nm);
            if (w && memcmp(w->data, p->data, p->count * 4) != 0)
                report(r, "tensor 'ema.%s': differs from the fixed parameter", nm);
        }
    }
}

static void verify_into(const glow_checkpoint *ck, reporter *r)
{
    verify_set(ck, &ck->params, "", r);
    if (ck->has_ema)
        verify_set(ck, &ck->ema, "ema.", r);
    if (ck->has_optim)
        for (int i = 0; i < ck->optim_v.n; i++) {
            const glow_param *p = &ck->optim_v.v[i];
            const float *x = p->data;
            for (size_t j = 0; j < p->count; j++)
                if (x[j] < 0.0f) {
                    report(r, "tensor 'optim.%s.v': negative second moment at element %zu",
                           p->name, j);
                    break;
                }
        }
}

int glow_checkpoint_verify(const glow_checkpoint *ck, glow_problem_fn fn, void *ctx)
{
    /* Messages carry no path here; the caller knows the file. */
    reporter r = {fn, ctx, 0, NULL};
    verify_into(ck, &r);
    return r.n;
}

/* ---- saving ---- */

/* A tensor of a fetched checkpoint, as the writer asks for its pieces. */
typedef struct {
    const glow_checkpoint *ck;
    int set;
    const glow_param *p;
} fetched;

static void fetch_piece(void *ctx, size_t offset, void *dst, size_t nbytes)
{
    const fetched *f = ctx;
    f->ck->fetch(f->ck->fetch_ctx, f->set, f->p, offset, dst, nbytes);
}

/* ps's tensors; those without host data from ck->fetch, through fx[*nfx...] */
static void add_set(st_writer *w, const glow_checkpoint *ck, const glow_paramset *ps, int set,
                    const char *prefix, const char *suffix, fetched *fx, int *nfx)
{
    for (int i = 0; i < ps->n; i++) {
        const glow_param *p = &ps->v[i];
        char name[320];
        snprintf(name, sizeof name, "%s%s%s", prefix, p->name, suffix);
        const st_dtype dt = p->dtype == PARAM_I32 ? ST_I32 : ST_F32;
        if (p->data || !ck->fetch) {
            st_writer_add(w, name, dt, p->ndim, p->shape, p->data);
            continue;
        }
        fetched *f = &fx[(*nfx)++];
        *f = (fetched){ck, set, p};
        st_writer_add_fetch(w, name, dt, p->ndim, p->shape, fetch_piece, f);
    }
}

int glow_checkpoint_save(const char *path, const glow_checkpoint *ck, glow_error *err)
{
    if (ck->has_optim && !optimizer_known(ck->optimizer)) {
        glow_errorf(err, "%s: optimizer '%s' is not adam or adamax", path,
                    ck->optimizer ? ck->optimizer : "");
        return -1;
    }
    st_writer *w = st_writer_new();
    st_writer_meta(w, "format", "glow");
    st_writer_meta(w, "version", "1");
    char *model = glow_config_to_json(&ck->cfg);
    st_writer_meta(w, "model", model);
    free(model);
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, ck->step);
    st_writer_meta(w, "step", num);
    snprintf(num, sizeof num, "%" PRId64, ck->images_seen);
    st_writer_meta(w, "images_seen", num);
    if (ck->has_optim)
        st_writer_meta(w, "optimizer", ck->optimizer);
    if (ck->rng)
        st_writer_meta(w, "rng", ck->rng);
    if (ck->train_config)
        st_writer_meta(w, "train_config", ck->train_config);
    for (int i = 0; i < ck->n_extra; i++)
        st_writer_meta(w, ck->extra[i].key, ck->extra[i].value);
    fetched *fx = xmalloc(((size_t)ck->params.n * 2 + (size_t)ck->optim_m.n + (size_t)ck->optim_v.n + 1) *
                          sizeof *fx);
    int nfx = 0;
    add_set(w, ck, &ck->params, GLOW_CK_PARAMS, "", "", fx, &nfx);
    if (ck->has_optim) {
        add_set(w, ck, &ck->optim_m, GLOW_CK_OPTIM_M, "optim.", ".m", fx, &nfx);
        add_set(w, ck, &ck->optim_v, GLOW_CK_OPTIM_V, "optim.", ".v", fx, &nfx);
    }
    if (ck->has_ema)
        add_set(w, ck, &ck->ema, GLOW_CK_EMA, "ema.", "", fx, &nfx);
    int rc = st_writer_commit(w, path, err);
    free(fx);
    return rc;
}

/* ---- reading arbitrary tensors ---- */

float *glow_st_read_f32(const st_file *f, const char *name, int ndim, const int64_t *shape,
                        glow_error *err)
{
    const st_tensor *t = st_find(f, name);
    if (!t) {
        glow_errorf(err, "%s: tensor '%s': missing", f->path, name);
        return NULL;
    }
    if (ndim >= 0) {
        int same = t->ndim == ndim;
        for (int i = 0; same && i < ndim; i++)
            same = t->shape[i] == shape[i];
        if (!same) {
            char got[128], want[128];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, ndim, shape);
            glow_errorf(err, "%s: tensor '%s': shape %s, expected %s", f->path, name, got, want);
            return NULL;
        }
    }
    float *out = xmalloc((t->count ? t->count : 1) * sizeof *out);
    for (size_t i = 0; i < t->count; i++) {
        switch (t->dtype) {
        case ST_F32: out[i] = ((const float *)t->data)[i]; break;
        case ST_F64: out[i] = (float)((const double *)t->data)[i]; break;
        case ST_I32: out[i] = (float)((const int32_t *)t->data)[i]; break;
        case ST_I64: out[i] = (float)((const int64_t *)t->data)[i]; break;
        case ST_U8: out[i] = ((const uint8_t *)t->data)[i]; break;
        default:
            glow_errorf(err, "%s: tensor '%s': dtype %s cannot be read as float", f->path, name,
                        t->dtype_name);
            free(out);
            return NULL;
        }
    }
    if (t->count == 0 && t->dtype == ST_OTHER) {
        glow_errorf(err, "%s: tensor '%s': dtype %s cannot be read as float", f->path, name,
                    t->dtype_name);
        free(out);
        return NULL;
    }
    return out;
}
