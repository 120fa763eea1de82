/* Checkpoints: the reference models load, a checkpoint with training state
 * survives save + load bit for bit, every kind of bad file is rejected with a
 * message naming the tensor or key, and the deeper verify checks fire. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/mem_budget.h"

#include "base/linalg.h"
#include "check.h"
#include "model/checkpoint.h"
#include "tiny_config.h"

static char tmpdir[256];

static const char *ref_dir(void)
{
    const char *r = getenv("GLOW_REF");
    return r && *r ? r : "../shared/reference";
}

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static int param_equal(const glow_param *a, const glow_param *b)
{
    if (strcmp(a->name, b->name) || a->dtype != b->dtype || a->ndim != b->ndim ||
        a->count != b->count || a->trained != b->trained)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return memcmp(a->data, b->data, a->count * 4) == 0;
}

static int set_equal(const glow_paramset *a, const glow_paramset *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++)
        if (!param_equal(&a->v[i], &b->v[i]))
            return 0;
    return 1;
}

static void fill(glow_paramset *ps, float base)
{
    for (int i = 0; i < ps->n; i++) {
        glow_param *p = &ps->v[i];
        if (p->dtype != PARAM_F32)
            continue;
        float *x = p->data;
        for (size_t j = 0; j < p->count; j++)
            x[j] = base + 0.001f * (float)((j * 7 + (size_t)i) % 113);
    }
}

/* A checkpoint of c with Adam state and an EMA, every tensor filled (reversed
 * permutations, the EMA's fixed tensors equal to the weights'). */
static void filled_adam_checkpoint(const glow_config *c, glow_checkpoint *ck)
{
    glow_error err = {{0}};
    CHECK(glow_checkpoint_init(ck, c, &err) == 0);
    fill(&ck->params, 0.5f);
    for (int i = 0; i < ck->params.n; i++)
        if (ck->params.v[i].dtype == PARAM_I32) {
            int32_t *q = ck->params.v[i].data;
            for (size_t j = 0; j < ck->params.v[i].count; j++)
                q[j] = (int32_t)(ck->params.v[i].count - 1 - j);
        }
    CHECK(glow_checkpoint_add_training_state(ck, "adam", 1, &err) == 0);
    fill(&ck->optim_m, -0.25f);
    fill(&ck->optim_v, 0.125f);
    fill(&ck->ema, 0.75f);
    for (int i = 0; i < ck->ema.n; i++)
        if (!ck->ema.v[i].trained)
            memcpy(ck->ema.v[i].data, ck->params.v[i].data, ck->ema.v[i].count * 4);
}

/* Rewrites ck through st_writer with one change, the way a damaged or foreign
 * file would look. */
enum variant { V_NONE, V_MISSING, V_EXTRA, V_SHAPE, V_DTYPE, V_NAN, V_VERSION, V_FORMAT,
               V_NO_MODEL, V_BAD_MODEL, V_OPTIM_PARTIAL, V_OPTIM_NO_NAME, V_BAD_STEP,
               V_BAD_RNG, V_OPTIM_FIXED, V_EMA_SHAPE, V_INF_EMA, V_NAN_OPTIM };

static void write_variant(const char *path, const glow_checkpoint *ck, enum variant v,
                          const char *target)
{
    st_writer *w = st_writer_new();
    st_writer_meta(w, "format", v == V_FORMAT ? "glow2" : "glow");
    st_writer_meta(w, "version", v == V_VERSION ? "2" : "1");
    char *model = glow_config_to_json(&ck->cfg);
    if (v == V_BAD_MODEL)
        st_writer_meta(w, "model", "{\"image_size\": [8, 8], \"levels\": 0}");
    else if (v != V_NO_MODEL)
        st_writer_meta(w, "model", model);
    free(model);
    if (v == V_BAD_STEP)
        st_writer_meta(w, "step", "12x");
    if (v == V_BAD_RNG)
        st_writer_meta(w, "rng", "1 2");
    if (ck->has_optim && v != V_OPTIM_NO_NAME)
        st_writer_meta(w, "optimizer", ck->optimizer);
    static float nanbuf[4096];
    float one = 1.0f;
    int64_t one_shape[1] = {1};
    for (int i = 0; i < ck->params.n; i++) {
        const glow_param *p = &ck->params.v[i];
        int hit = strcmp(p->name, target) == 0;
        st_dtype dt = p->dtype == PARAM_I32 ? ST_I32 : ST_F32;
        if (hit && v == V_MISSING)
            continue;
        if (hit && v == V_SHAPE) {
            int64_t flat[1] = {(int64_t)p->count};
            st_writer_add(w, p->name, dt, 1, flat, p->data);
        } else if (hit && v == V_DTYPE) {
            st_writer_add(w, p->name, dt == ST_F32 ? ST_I32 : ST_F32, p->ndim, p->shape, p->data);
        } else if (hit && v == V_NAN) {
            memcpy(nanbuf, p->data, p->count * 4);
            nanbuf[p->count / 2] = NAN;
            st_writer_add(w, p->name, dt, p->ndim, p->shape, nanbuf);
        } else
            st_writer_add(w, p->name, dt, p->ndim, p->shape, p->data);
    }
    if (v == V_EXTRA)
        st_writer_add(w, target, ST_F32, 1, one_shape, &one);
    if (v == V_OPTIM_FIXED)
        st_writer_add(w, target, ST_F32, 1, one_shape, &one);
    for (int i = 0; ck->has_optim && i < ck->optim_m.n; i++) {
        const glow_param *p = &ck->optim_m.v[i];
        char name[300];
        snprintf(name, sizeof name, "optim.%s.m", p->name);
        if (v == V_NAN_OPTIM && i == 0) {
            memcpy(nanbuf, p->data, p->count * 4);
            nanbuf[0] = NAN;
            st_writer_add(w, name, ST_F32, p->ndim, p->shape, nanbuf);
        } else
            st_writer_add(w, name, ST_F32, p->ndim, p->shape, p->data);
        if (v == V_OPTIM_PARTIAL && i == 0)
            continue;
        snprintf(name, sizeof name, "optim.%s.v", p->name);
        st_writer_add(w, name, ST_F32, p->ndim, p->shape, ck->optim_v.v[i].data);
    }
    for (int i = 0; ck->has_ema && i < ck->ema.n; i++) {
        const glow_param *p = &ck->ema.v[i];
        char name[300];
        snprintf(name, sizeof name, "ema.%s", p->name);
        st_dtype dt = p->dtype == PARAM_I32 ? ST_I32 : ST_F32;
        if (v == V_EMA_SHAPE && p->ndim == 4) {
            int64_t flat[1] = {(int64_t)p->count};
            st_writer_add(w, name, dt, 1, flat, p->data);
        } else if (v == V_INF_EMA && strstr(p->name, "conv2")) {
            memcpy(nanbuf, p->data, p->count * 4);
            nanbuf[0] = INFINITY;
            st_writer_add(w, name, dt, p->ndim, p->shape, nanbuf);
        } else
            st_writer_add(w, name, dt, p->ndim, p->shape, p->data);
    }
    glow_error err = {{0}};
    CHECKF(st_writer_commit(w, path, &err) == 0, "%s", err.msg);
}

static void expect_reject(const glow_checkpoint *ck, enum variant v, const char *target,
                          const char *needle)
{
    const char *path = tmp_path("bad.safetensors");
    write_variant(path, ck, v, target);
    glow_checkpoint back;
    glow_error err = {{0}};
    int rc = glow_checkpoint_load(path, &back, &err);
    CHECKF(rc == -1, "variant %d on %s accepted", (int)v, target);
    CHECKF(strstr(err.msg, needle) != NULL, "variant %d: '%s' lacks '%s'", (int)v, err.msg,
           needle);
    CHECKF(strstr(err.msg, path) != NULL, "variant %d: '%s' lacks the path", (int)v, err.msg);
    CHECK(back.params.n == 0);
}

static void test_reference(const char *name, int n_expected)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", ref_dir(), name);
    glow_checkpoint ck;
    glow_error err = {{0}};
    CHECKF(glow_checkpoint_load(path, &ck, &err) == 0, "%s", err.msg);
    CHECK(ck.params.n == n_expected);
    CHECK(!ck.has_optim && !ck.has_ema && ck.step == 0 && !ck.optimizer && !ck.rng);
    int problems = glow_checkpoint_verify(&ck, NULL, NULL);
    CHECKF(problems == 0, "%s: %d verify problems", name, problems);
    /* Values survive: one known entry per file, read back through the float helper. */
    st_file f;
    CHECK(st_load(path, &f, &err) == 0);
    const glow_param *p = &ck.params.v[0];
    float *x = glow_st_read_f32(&f, p->name, p->ndim, p->shape, &err);
    CHECK(x && memcmp(x, p->data, p->count * 4) == 0);
    free(x);
    int64_t wrong[1] = {p->shape[0] + 1};
    x = glow_st_read_f32(&f, p->name, 1, wrong, &err);
    CHECK(x == NULL && strstr(err.msg, p->name) && strstr(err.msg, "shape"));
    x = glow_st_read_f32(&f, "no.such.tensor", -1, NULL, &err);
    CHECK(x == NULL && strstr(err.msg, "no.such.tensor"));
    st_free(&f);

    /* Weights-only save and load keeps every value. */
    const char *out = tmp_path("ref-copy.safetensors");
    CHECKF(glow_checkpoint_save(out, &ck, &err) == 0, "%s", err.msg);
    glow_checkpoint back;
    CHECKF(glow_checkpoint_load(out, &back, &err) == 0, "%s", err.msg);
    CHECK(glow_config_equal(&ck.cfg, &back.cfg) && set_equal(&ck.params, &back.params));
    glow_checkpoint_free(&back);
    glow_checkpoint_free(&ck);
}

static void test_round_trip(void)
{
    glow_config c = tiny_config(.width = 6);
    c.permutation = PERM_SHUFFLE;
    c.y_condition = 1;
    c.n_classes = 3;
    glow_checkpoint ck;
    glow_error err = {{0}};
    CHECK(glow_checkpoint_init(&ck, &c, &err) == 0);
    fill(&ck.params, 0.5f);
    for (int i = 0; i < ck.params.n; i++)
        if (ck.params.v[i].dtype == PARAM_I32) {
            int32_t *q = ck.params.v[i].data;
            for (size_t j = 0; j < ck.params.v[i].count; j++)
                q[j] = (int32_t)(ck.params.v[i].count - 1 - j);
        }
    CHECK(glow_checkpoint_add_training_state(&ck, "lion", 1, &err) == -1 &&
          strstr(err.msg, "optimizer"));
    CHECK(glow_checkpoint_add_training_state(&ck, "adamax", 1, &err) == 0);
    CHECK(ck.optim_m.n == ck.params.n - 2 * 2 && ck.ema.n == ck.params.n);
    fill(&ck.optim_m, -0.25f);
    fill(&ck.optim_v, 0.125f);
    fill(&ck.ema, 0.75f);
    /* EMA of the fixed permutations equals them. */
    for (int i = 0; i < ck.ema.n; i++)
        if (!ck.ema.v[i].trained)
            memcpy(ck.ema.v[i].data, ck.params.v[i].data, ck.ema.v[i].count * 4);
    ck.step = 123456789012LL;
    ck.images_seen = 9876543210LL;
    glow_rng r = {42, 7, 1234567}, r2;
    glow_checkpoint_set_rng(&ck, &r);
    glow_checkpoint_set_train_config(&ck, "{\"lr\": 0.001, \"name\": \"a \\\"quoted\\\" run\"}");
    CHECK(glow_checkpoint_set_meta(&ck, "note", "line1\nline2\ttab") == 0);
    CHECK(glow_checkpoint_set_meta(&ck, "host", "x") == 0);
    CHECK(glow_checkpoint_set_meta(&ck, "host", "y") == 0);
    CHECK(glow_checkpoint_set_meta(&ck, "step", "5") == -1);
    CHECK(glow_checkpoint_set_meta(&ck, "model", "{}") == -1);

    const char *path = tmp_path("train.safetensors");
    CHECKF(glow_checkpoint_save(path, &ck, &err) == 0, "%s", err.msg);
    glow_checkpoint b;
    CHECKF(glow_checkpoint_load(path, &b, &err) == 0, "%s", err.msg);
    CHECK(glow_config_equal(&ck.cfg, &b.cfg));
    CHECK(set_equal(&ck.params, &b.params));
    CHECK(b.has_optim && set_equal(&ck.optim_m, &b.optim_m) && set_equal(&ck.optim_v, &b.optim_v));
    CHECK(b.has_ema && set_equal(&ck.ema, &b.ema));
    CHECK(b.step == ck.step && b.images_seen == ck.images_seen);
    CHECK(b.optimizer && strcmp(b.optimizer, "adamax") == 0);
    CHECK(glow_checkpoint_get_rng(&b, &r2) == 0 && r2.seed == 42 && r2.stream == 7 &&
          r2.index == 1234567);
    CHECK(b.train_config && strcmp(b.train_config, ck.train_config) == 0);
    CHECK(glow_checkpoint_meta(&b, "note") && strcmp(glow_checkpoint_meta(&b, "note"),
                                                     "line1\nline2\ttab") == 0);
    CHECK(glow_checkpoint_meta(&b, "host") && strcmp(glow_checkpoint_meta(&b, "host"), "y") == 0);
    CHECK(glow_checkpoint_meta(&b, "step") == NULL && b.n_extra == 2);
    CHECK(glow_checkpoint_verify(&b, NULL, NULL) == 0);

    /* Saving what was loaded gives the same bytes. */
    const char *path2 = tmp_path("train2.safetensors");
    CHECK(glow_checkpoint_save(path2, &b, &err) == 0);
    st_file f1, f2;
    CHECK(st_load(path, &f1, &err) == 0 && st_load(path2, &f2, &err) == 0);
    CHECK(f1.size == f2.size && memcmp(f1.buf, f2.buf, f1.size) == 0);
    /* Layout order: parameters, then optim, then ema. */
    CHECK(strcmp(f1.t[0].name, ck.params.v[0].name) == 0);
    CHECK(strncmp(f1.t[ck.params.n].name, "optim.", 6) == 0);
    CHECK(strncmp(f1.t[f1.n - 1].name, "ema.", 4) == 0);
    st_free(&f1);
    st_free(&f2);

    /* The deeper checks. */
    glow_param *perm = glow_paramset_find(&b.params, "flow.0.1.shuffle.perm");
    ((int32_t *)perm->data)[0] = ((int32_t *)perm->data)[1];
    glow_param *v0 = &b.optim_v.v[3];
    ((float *)v0->data)[2] = -1.0f;
    int n = glow_checkpoint_verify(&b, NULL, NULL);
    CHECKF(n == 3, "%d problems (perm, ema of perm, negative v)", n);

    /* Each rejection, on the training checkpoint. */
    expect_reject(&ck, V_OPTIM_PARTIAL, "", "optim.");
    expect_reject(&ck, V_OPTIM_NO_NAME, "", "optimizer");
    expect_reject(&ck, V_OPTIM_FIXED, "optim.flow.0.0.shuffle.perm.m", "shuffle.perm");
    expect_reject(&ck, V_EMA_SHAPE, "", "ema.");
    expect_reject(&ck, V_INF_EMA, "", "non-finite");
    expect_reject(&ck, V_BAD_STEP, "", "step");
    expect_reject(&ck, V_BAD_RNG, "", "rng");
    expect_reject(&ck, V_DTYPE, "flow.1.0.shuffle.perm", "flow.1.0.shuffle.perm");
    glow_checkpoint_free(&b);

    /* A weights-only export drops the training state but keeps the step. */
    glow_checkpoint_drop_training_state(&ck);
    CHECK(glow_checkpoint_save(path, &ck, &err) == 0);
    CHECK(glow_checkpoint_load(path, &b, &err) == 0);
    CHECK(!b.has_optim && !b.has_ema && !b.optimizer && !b.rng && b.step == ck.step);
    glow_checkpoint_free(&b);
    /* Optimizer metadata without moments. */
    st_file f;
    CHECK(st_load(path, &f, &err) == 0);
    st_writer *w = st_writer_new();
    for (int i = 0; i < f.n_meta; i++)
        st_writer_meta(w, f.meta_keys[i], f.meta_vals[i]);
    st_writer_meta(w, "optimizer", "adam");
    for (int i = 0; i < f.n; i++)
        st_writer_add(w, f.t[i].name, f.t[i].dtype, f.t[i].ndim, f.t[i].shape, f.t[i].data);
    const char *path3 = tmp_path("opt-only.safetensors");
    CHECK(st_writer_commit(w, path3, &err) == 0);
    st_free(&f);
    CHECK(glow_checkpoint_load(path3, &b, &err) == -1 && strstr(err.msg, "optimizer"));
    glow_checkpoint_free(&ck);
}

static void test_rejections(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/affine-invconv/model.safetensors", ref_dir());
    glow_checkpoint ck;
    glow_error err = {{0}};
    if (glow_checkpoint_load(path, &ck, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    /* The unmodified rewrite loads: the variants below differ in one thing only. */
    const char *ok = tmp_path("ok.safetensors");
    write_variant(ok, &ck, V_NONE, "");
    glow_checkpoint b;
    CHECKF(glow_checkpoint_load(ok, &b, &err) == 0, "%s", err.msg);
    glow_checkpoint_free(&b);

    expect_reject(&ck, V_MISSING, "flow.1.0.coupling.conv2.weight",
                  "flow.1.0.coupling.conv2.weight");
    expect_reject(&ck, V_MISSING, "prior.conv.logs", "missing");
    expect_reject(&ck, V_EXTRA, "flow.1.0.coupling.conv4.weight",
                  "flow.1.0.coupling.conv4.weight");
    expect_reject(&ck, V_EXTRA, "classifier.weight", "not a parameter");
    expect_reject(&ck, V_SHAPE, "split.0.conv.weight", "split.0.conv.weight");
    expect_reject(&ck, V_SHAPE, "flow.0.0.invconv.weight", "shape [144], expected [12, 12]");
    expect_reject(&ck, V_DTYPE, "flow.0.1.actnorm.logs", "dtype I32, expected F32");
    expect_reject(&ck, V_NAN, "flow.1.1.coupling.conv3.weight", "flow.1.1.coupling.conv3.weight");
    expect_reject(&ck, V_NAN, "prior.conv.bias", "non-finite");
    expect_reject(&ck, V_VERSION, "", "version");
    expect_reject(&ck, V_FORMAT, "", "format");
    expect_reject(&ck, V_NO_MODEL, "", "model");
    expect_reject(&ck, V_BAD_MODEL, "", "levels");

    /* A file that is not safetensors at all. */
    const char *junk = tmp_path("junk.safetensors");
    FILE *fp = fopen(junk, "wb");
    fputs("hello", fp);
    fclose(fp);
    CHECK(glow_checkpoint_load(junk, &b, &err) == -1 && strstr(err.msg, "truncated"));
    CHECK(glow_checkpoint_load(tmp_path("absent"), &b, &err) == -1 &&
          strstr(err.msg, "cannot open"));

    /* Every problem is reported, not just the first. */
    glow_param *w = glow_paramset_find(&ck.params, "flow.0.0.invconv.weight");
    memset(w->data, 0, w->count * 4);
    CHECK(glow_checkpoint_verify(&ck, NULL, NULL) == 1);
    glow_checkpoint_free(&ck);
}

static void test_lu_verify(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/additive-lu-ycond/model.safetensors", ref_dir());
    glow_checkpoint ck;
    glow_error err = {{0}};
    if (glow_checkpoint_load(path, &ck, &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    glow_param *p = glow_paramset_find(&ck.params, "flow.1.2.invconv.p");
    glow_param *s = glow_paramset_find(&ck.params, "flow.0.0.invconv.sign_s");
    CHECK(p && s && !p->trained && !s->trained);
    ((float *)p->data)[0] += 1.0f;
    ((float *)s->data)[1] = 0.5f;
    CHECK(glow_checkpoint_verify(&ck, NULL, NULL) == 2);
    glow_checkpoint_free(&ck);
}

static void test_linalg(void)
{
    double a[9] = {0, 2, 1, 1, 1, 0, 3, 0, 4}, inv[9], id[9];
    /* det by cofactors: 0*(4-0) - 2*(4-0) + 1*(0-3) = -11 */
    CHECK_NEAR(linalg_det(a, 3), -11.0, 1e-12);
    int sign;
    CHECK_NEAR(linalg_logabsdet(a, 3, &sign), log(11.0), 1e-12);
    CHECK(sign == -1);
    CHECK(linalg_inverse(a, 3, inv) == 0);
    linalg_matmul(a, inv, 3, id);
    double worst = 0;
    for (int i = 0; i < 9; i++)
        worst = fmax(worst, fabs(id[i] - (i % 4 == 0 ? 1.0 : 0.0)));
    CHECK(worst < 1e-12);
    double sing[4] = {1, 2, 2, 4};
    CHECK(linalg_det(sing, 2) == 0.0 && linalg_inverse(sing, 2, inv) == -1);
    CHECK(linalg_logabsdet(sing, 2, &sign) == -INFINITY && sign == 0);
}


/* ---- glow_checkpoint_load_weights ---- */

/* The sink of the tests: every parameter copied into a layout, the most of the
 * memory budget reserved while one is handed on, the info of begin. */
typedef struct {
    glow_paramset got;
    glow_weights_info info;
    int begun, n, refuse;
    uint64_t peak;
} weights_sink;

static int ws_begin(void *ctx, const glow_weights_info *info, glow_error *err)
{
    weights_sink *w = ctx;
    w->begun = 1;
    w->info = *info;
    if (w->refuse) {
        glow_errorf(err, "the sink refuses");
        return -1;
    }
    return glow_paramset_layout(&info->cfg, &w->got, err);
}

static int ws_param(void *ctx, const glow_param *p, glow_error *err)
{
    weights_sink *w = ctx;
    glow_param *d = glow_paramset_find(&w->got, p->name);
    if (!d || d->count != p->count) {
        glow_errorf(err, "sink: unexpected %s", p->name);
        return -1;
    }
    memcpy(d->data, p->data, p->count * 4);
    w->n++;
    if (glow_mem_reserved() > w->peak)
        w->peak = glow_mem_reserved();
    return 0;
}

static const glow_weights_sink WS = {ws_begin, ws_param};

static int load_weights(const char *path, int use_ema, weights_sink *w, glow_error *err)
{
    memset(w, 0, sizeof *w);
    return glow_checkpoint_load_weights(path, use_ema, &WS, w, err);
}

/* path's bytes, written by a child process into a FIFO, read back as a stream
 * (forward only); extra: bytes appended after the file. */
static int load_weights_fifo(const char *path, int use_ema, int extra, weights_sink *w,
                             glow_error *err)
{
    const char *fifo = tmp_path("weights.fifo");
    unlink(fifo);
    CHECK(mkfifo(fifo, 0600) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *in = fopen(path, "rb");
        int fd = open(fifo, O_WRONLY);
        char buf[4096];
        size_t n;
        while (in && fd >= 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
            if (write(fd, buf, n) != (ssize_t)n)
                _exit(1);
        for (int i = 0; i < extra; i++)
            if (write(fd, "x", 1) != 1)
                _exit(1);
        _exit(0);
    }
    int rc = load_weights(fifo, use_ema, w, err);
    int status;
    waitpid(pid, &status, 0); /* the reader may stop early: the writer then sees EPIPE */
    unlink(fifo);
    return rc;
}

/* Weights only: every parameter (or with use_ema its EMA copy) handed on with
 * the values of glow_checkpoint_load, from a file and from a stream; damaged
 * optimizer moments and, without use_ema, a damaged EMA are not read (so not
 * refused), damaged weights are, naming the file and the tensor; the header's
 * checks still cover every tensor; the budget never holds a second copy of the
 * trained parameters. */
static void test_load_weights(void)
{
    glow_config c = tiny_config(.width = 6, .steps = 6);
    c.permutation = PERM_SHUFFLE;
    glow_checkpoint ck;
    glow_error err = {{0}};
    filled_adam_checkpoint(&c, &ck);
    ck.step = 77;
    ck.images_seen = 616;
    const char *path = tmp_path("weights.safetensors");
    CHECK(glow_checkpoint_save(path, &ck, &err) == 0);
    /* what loading may reserve: the header (twice, the text and what it is parsed
     * into), the fixed parameters (twice with the EMA's), one trained tensor */
    uint64_t trained = 0, fixed = 0, largest = 0, hlen = 0;
    for (int i = 0; i < ck.params.n; i++) {
        const uint64_t b = 4 * ck.params.v[i].count;
        if (ck.params.v[i].trained) {
            trained += b;
            largest = b > largest ? b : largest;
        } else
            fixed += b;
    }
    FILE *fp = fopen(path, "rb");
    unsigned char h8[8] = {0};
    CHECK(fp && fread(h8, 1, 8, fp) == 8);
    if (fp)
        fclose(fp);
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | h8[i];

    weights_sink w;
    for (int stream = 0; stream < 2; stream++)
        for (int ema = 0; ema < 2; ema++) {
            const uint64_t before = glow_mem_reserved();
            int rc = stream ? load_weights_fifo(path, ema, 0, &w, &err)
                            : load_weights(path, ema, &w, &err);
            CHECKF(rc == 0, "stream %d ema %d: %s", stream, ema, err.msg);
            CHECKF(w.n == ck.params.n && set_equal(&w.got, ema ? &ck.ema : &ck.params),
                   "stream %d ema %d: %d parameters, values differ", stream, ema, w.n);
            CHECK(w.info.has_optim && w.info.has_ema && w.info.step == 77 &&
                  w.info.images_seen == 616 && glow_config_equal(&w.info.cfg, &c));
            /* glow_checkpoint_load would hold every parameter, moment and EMA value */
            const uint64_t held = w.peak - before, bound = 2 * (8 + hlen) + 2 * fixed + largest;
            CHECKF(held <= bound && largest < trained / 4,
                   "stream %d ema %d: %llu bytes reserved, more than %llu (header %llu, fixed "
                   "%llu, largest tensor %llu)", stream, ema, (unsigned long long)held,
                   (unsigned long long)bound, (unsigned long long)hlen, (unsigned long long)fixed,
                   (unsigned long long)largest);
            glow_paramset_free(&w.got);
            CHECK(glow_mem_reserved() == before);
        }
    /* a stream with bytes after its data */
    CHECK(load_weights_fifo(path, 0, 3, &w, &err) == -1 && strstr(err.msg, "more than"));
    glow_paramset_free(&w.got);
    /* the sink's refusal is the error */
    memset(&w, 0, sizeof w);
    w.refuse = 1;
    CHECK(glow_checkpoint_load_weights(path, 0, &WS, &w, &err) == -1 &&
          strcmp(err.msg, "the sink refuses") == 0);

    /* NaN in an optimizer moment: glow_checkpoint_load refuses, the weights load */
    const char *bad = tmp_path("weights-bad.safetensors");
    glow_checkpoint back;
    write_variant(bad, &ck, V_NAN_OPTIM, "");
    CHECK(glow_checkpoint_load(bad, &back, &err) == -1 && strstr(err.msg, "non-finite"));
    CHECKF(load_weights(bad, 0, &w, &err) == 0, "%s", err.msg);
    glow_paramset_free(&w.got);
    /* an infinite EMA value: refused with --ema only */
    write_variant(bad, &ck, V_INF_EMA, "");
    CHECKF(load_weights(bad, 0, &w, &err) == 0, "%s", err.msg);
    glow_paramset_free(&w.got);
    CHECK(load_weights(bad, 1, &w, &err) == -1 && strstr(err.msg, "non-finite") &&
          strstr(err.msg, "ema.") && strstr(err.msg, bad));
    glow_paramset_free(&w.got);
    /* damaged weights and headers: refused, naming the file and the tensor, and
     * before the sink begins where the header shows it */
    struct {
        enum variant v;
        const char *target, *needle;
        int begun;
    } cases[] = {
        {V_NAN, "flow.0.0.actnorm.bias", "non-finite", 1},
        {V_MISSING, "flow.0.1.actnorm.logs", "flow.0.1.actnorm.logs': missing", 0},
        {V_SHAPE, "flow.1.0.coupling.conv2.weight", "flow.1.0.coupling.conv2.weight': shape", 0},
        {V_OPTIM_PARTIAL, "", "optim.", 0},
        {V_EMA_SHAPE, "", "ema.", 0},
        {V_BAD_STEP, "", "step", 0},
        {V_VERSION, "", "version", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_variant(bad, &ck, cases[i].v, cases[i].target);
        int rc = load_weights(bad, 0, &w, &err);
        CHECKF(rc == -1 && strstr(err.msg, cases[i].needle) && strstr(err.msg, bad) &&
                   w.begun == cases[i].begun,
               "case %zu: rc %d begun %d: %s", i, rc, w.begun, err.msg);
        glow_paramset_free(&w.got);
    }
    /* a shuffle that is no permutation (glow_checkpoint_verify's check) */
    glow_param *perm = glow_paramset_find(&ck.params, "flow.0.1.shuffle.perm");
    ((int32_t *)perm->data)[0] = ((int32_t *)perm->data)[1];
    glow_checkpoint_drop_training_state(&ck);
    CHECK(glow_checkpoint_save(bad, &ck, &err) == 0);
    CHECK(load_weights(bad, 0, &w, &err) == -1 && strstr(err.msg, "shuffle.perm"));
    glow_paramset_free(&w.got);
    CHECK(load_weights(bad, 1, &w, &err) == -1 && strstr(err.msg, "no EMA") == NULL);
    glow_paramset_free(&w.got);
    /* a truncated file */
    CHECK(glow_checkpoint_save(bad, &ck, &err) == 0);
    struct stat st;
    CHECK(stat(bad, &st) == 0 && truncate(bad, st.st_size - 4) == 0);
    CHECK(load_weights(bad, 0, &w, &err) == -1 && strstr(err.msg, bad));
    glow_paramset_free(&w.got);
    glow_checkpoint_free(&ck);
}

/* A fetched checkpoint (what glow-train writes from its backend arrays) saves the
 * same bytes as one holding every tensor on the host; a tensor over
 * ST_FETCH_PIECE comes in pieces, in order. */
typedef struct {
    const glow_checkpoint *src;
    size_t pieces, big_pieces;
} fetch_src;

static void fetch_from(void *ctx, int set, const glow_param *p, size_t offset, void *dst, size_t nbytes)
{
    fetch_src *f = ctx;
    const glow_paramset *ps = set == GLOW_CK_PARAMS    ? &f->src->params
                              : set == GLOW_CK_OPTIM_M ? &f->src->optim_m
                              : set == GLOW_CK_OPTIM_V ? &f->src->optim_v
                                                       : &f->src->ema;
    const glow_param *q = glow_paramset_find(ps, p->name);
    CHECKF(q && q->count == p->count && offset + nbytes <= q->count * 4 && nbytes <= ST_FETCH_PIECE,
           "fetch %s [%zu, +%zu)", p->name, offset, nbytes);
    CHECKF(offset % ST_FETCH_PIECE == 0, "fetch %s: piece at %zu", p->name, offset);
    memcpy(dst, (const char *)q->data + offset, nbytes);
    f->pieces++;
    if (p->count * 4 > ST_FETCH_PIECE)
        f->big_pieces++;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    for (size_t got; (got = fread(buf + len, 1, cap - len, f)) > 0;)
        if ((len += got) == cap)
            buf = xrealloc(buf, cap *= 2);
    fclose(f);
    *n = len;
    return buf;
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void test_fetched(void)
{
    /* width 600: conv2's weight 600 x 600 x 1 x 1 is 1.44 MB, two pieces */
    glow_config c = tiny_config(.levels = 1, .steps = 1, .width = 600);
    c.permutation = PERM_SHUFFLE; /* fixed tensors (shuffle.perm) beside the trained */
    glow_checkpoint host, fx;
    glow_error err = {{0}};
    filled_adam_checkpoint(&c, &host);
    host.step = 7;
    host.images_seen = 70;

    fetch_src src = {&host, 0, 0};
    const uint64_t before = glow_mem_reserved();
    CHECKF(glow_checkpoint_init_fetched(&fx, &c, fetch_from, &src, &err) == 0, "%s", err.msg);
    CHECK(glow_checkpoint_add_training_state(&fx, "adam", 1, &err) == 0);
    /* only the fixed tensors are on the host (and reserved) */
    uint64_t fixed = 0;
    int held = 0;
    for (int i = 0; i < fx.params.n; i++) {
        const glow_param *p = &fx.params.v[i];
        held += p->data != NULL || fx.ema.v[i].data != NULL;
        if (!p->trained)
            fixed += p->count * 4, held -= p->data && fx.ema.v[i].data;
    }
    for (int i = 0; i < fx.optim_m.n; i++)
        held += fx.optim_m.v[i].data != NULL || fx.optim_v.v[i].data != NULL;
    CHECKF(held == 0 && fixed > 0, "%d tensors held on the host that should not be", held);
    CHECKF(glow_mem_reserved() - before == 2 * fixed, "reserved %llu, fixed %llu",
           (unsigned long long)(glow_mem_reserved() - before), (unsigned long long)fixed);
    for (int i = 0; i < fx.params.n; i++)
        if (!fx.params.v[i].trained) {
            memcpy(fx.params.v[i].data, host.params.v[i].data, fx.params.v[i].count * 4);
            memcpy(fx.ema.v[i].data, host.params.v[i].data, fx.params.v[i].count * 4);
        }
    fx.step = 7;
    fx.images_seen = 70;
    const char *a = tmp_path("host.safetensors"), *b = tmp_path("fetched.safetensors");
    CHECKF(glow_checkpoint_save(a, &host, &err) == 0, "%s", err.msg);
    CHECKF(glow_checkpoint_save(b, &fx, &err) == 0, "%s", err.msg);
    CHECK(same_file(a, b));
    /* every trained tensor of the four sets fetched; conv2's four times in two pieces */
    CHECKF(src.pieces == 4 * (size_t)fx.optim_m.n + 4 * 1 && src.big_pieces == 8, "pieces %zu, big %zu",
           src.pieces, src.big_pieces);
    glow_checkpoint back;
    CHECKF(glow_checkpoint_load(b, &back, &err) == 0, "%s", err.msg);
    CHECK(set_equal(&back.params, &host.params) && set_equal(&back.optim_v, &host.optim_v) &&
          set_equal(&back.ema, &host.ema));
    glow_checkpoint_free(&back);
    glow_checkpoint_free(&fx);
    CHECK(glow_mem_reserved() == before);
    glow_checkpoint_free(&host);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_checkpoint.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_linalg();
    test_reference("affine-invconv", 54);
    test_reference("additive-lu-ycond", 108);
    test_round_trip();
    test_fetched();
    test_rejections();
    test_lu_verify();
    test_load_weights();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
