/* The reference cases (../shared/reference, docs/model.md section 9): forward values,
 * gradients, inverse, data-dependent init and optimizer losses of every case
 * folder found, each tensor within the README's tolerance.
 * Usage: test_refcheck [--device cpu|cuda] [-v] [DIR ...]  (-v: every tensor's error)
 * The summary counts cases: "refcheck: N passed, M failed". */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend/backend.h"
#include "check.h"
#include "device/device.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "train/optim.h"

static int verbose;

typedef struct {
    const char *name;
    int failed, ntensors;
    double worst;
    char worst_tensor[160];
} case_state;

static void compare(case_state *cs, const char *tensor, const float *got, const float *exp,
                    size_t n, double tol)
{
    double maxexp = 0, maxdiff = -1;
    size_t at = 0;
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(exp[i]) > maxexp)
            maxexp = fabs(exp[i]);
        double d = fabs((double)got[i] - exp[i]);
        if (!isfinite(got[i])) {
            nonfinite = 1;
            d = INFINITY;
        }
        if (d > maxdiff) {
            maxdiff = d;
            at = i;
        }
    }
    double e = maxexp > 0 ? maxdiff / maxexp : maxdiff;
    if (n == 0)
        e = 0;
    cs->ntensors++;
    if (verbose)
        printf("     %s %s: error %.3g (tolerance %.0e)\n", cs->name, tensor, e, tol);
    if (nonfinite || !(e <= tol)) {
        printf("FAIL %s: tensor %s error %.3g at index %zu (got %.9g, expected %.9g)\n", cs->name,
               tensor, e, at, (double)got[at], (double)exp[at]);
        cs->failed = 1;
    }
    if (e / tol > cs->worst || !cs->worst_tensor[0]) {
        if (!(e / tol <= cs->worst)) {
            cs->worst = e / tol;
            snprintf(cs->worst_tensor, sizeof cs->worst_tensor, "%s %.2g", tensor, e);
        }
    }
}

static void fail(case_state *cs, const char *fmt, const char *arg)
{
    printf("FAIL %s: ", cs->name);
    printf(fmt, arg);
    printf("\n");
    cs->failed = 1;
}

static float *readf(const st_file *f, const char *name, size_t *n)
{
    glow_error err;
    const st_tensor *t = st_find(f, name);
    if (n)
        *n = 0;
    if (!t)
        return NULL;
    float *v = glow_st_read_f32(f, name, -1, NULL, &err);
    if (n)
        *n = t->count;
    return v;
}

/* A fresh model with the case's parameters (every actnorm zeroed with reset). */
static glow_model *make_model(backend *b, glow_checkpoint *ck, int reset_actnorm, glow_error *err)
{
    if (reset_actnorm)
        for (int i = 0; i < ck->params.n; i++) {
            glow_param *p = &ck->params.v[i];
            if (strstr(p->name, "actnorm"))
                memset(p->data, 0, p->count * 4);
        }
    return glow_model_new(b, &ck->cfg, &ck->params, err);
}

static void check_case(backend *b, const char *dir, int *passed, int *failed)
{
    char path[4096];
    case_state cs = {0};
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    cs.name = base;
    glow_error err;
    glow_checkpoint ck;
    st_file cf;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (glow_checkpoint_load(path, &ck, &err)) {
        printf("FAIL %s: %s\n", cs.name, err.msg);
        (*failed)++;
        return;
    }
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    if (st_load(path, &cf, &err)) {
        printf("FAIL %s: %s\n", cs.name, err.msg);
        glow_checkpoint_free(&ck);
        (*failed)++;
        return;
    }
    const glow_config *cfg = &ck.cfg;
    glow_model *m = make_model(b, &ck, 0, &err);
    if (!m) {
        printf("FAIL %s: %s\n", cs.name, err.msg);
        goto out;
    }

    /* ---- forward, backward, inverse on input.* ---- */
    const st_tensor *img = st_find(&cf, "input.image");
    if (!img || img->dtype != ST_U8 || img->ndim != 4) {
        fail(&cs, "%s", "input.image (uint8 NCHW) missing");
    } else {
        const int n = (int)img->shape[0];
        float *noise = readf(&cf, "input.noise", NULL);
        int32_t *labels = NULL;
        const st_tensor *lt = st_find(&cf, "input.label");
        if (lt) {
            float *lf = readf(&cf, "input.label", NULL);
            labels = xcalloc((size_t)n, sizeof *labels);
            for (int i = 0; i < n; i++)
                labels[i] = (int32_t)lf[i];
            free(lf);
        }
        glow_batch bt = {n, img->data, noise, 0, 0, labels};
        glow_result r;
        if (glow_model_forward(m, &bt, &r, &err)) {
            fail(&cs, "forward: %s", err.msg);
        } else {
            const struct {
                const char *name;
                const float *v;
            } per[] = {{"expect.bpd", r.bpd}, {"expect.logdet", r.logdet}, {"expect.logp", r.logp}};
            for (int i = 0; i < 3; i++) {
                size_t cnt;
                float *e = readf(&cf, per[i].name, &cnt);
                if (e && cnt == (size_t)n)
                    compare(&cs, per[i].name, per[i].v, e, cnt, 1e-4);
                else if (e)
                    fail(&cs, "%s: wrong size", per[i].name);
                free(e);
            }
            float *e = readf(&cf, "expect.loss", NULL);
            if (e) {
                float got = (float)r.loss;
                compare(&cs, "expect.loss", &got, e, 1, 1e-4);
                free(e);
            }
            size_t D = (size_t)glow_config_dims(cfg);
            e = readf(&cf, "expect.x", NULL);
            float *x = xmalloc((size_t)n * D * sizeof(float));
            if (e) {
                glow_model_get_x(m, x);
                compare(&cs, "expect.x", x, e, (size_t)n * D, 1e-4);
            }
            /* latents */
            const int L = glow_model_n_latents(m);
            float **zexp = xcalloc((size_t)L, sizeof *zexp);
            int have_all = 1;
            for (int l = 0; l < L; l++) {
                char name[64];
                if (l == L - 1)
                    snprintf(name, sizeof name, "expect.z.top");
                else
                    snprintf(name, sizeof name, "expect.z.%d", l);
                size_t cnt;
                zexp[l] = readf(&cf, name, &cnt);
                if (!zexp[l]) {
                    have_all = 0;
                    continue;
                }
                int sh[4];
                glow_model_latent_shape(m, l, n, sh);
                size_t want = (size_t)sh[0] * sh[1] * sh[2] * sh[3];
                if (cnt != want) {
                    fail(&cs, "%s: wrong size", name);
                    have_all = 0;
                    continue;
                }
                float *z = xmalloc(want * sizeof(float));
                glow_model_get_latent(m, l, z);
                compare(&cs, name, z, zexp[l], want, 1e-4);
                free(z);
            }
            for (int i = 0; i < cf.n; i++) /* latents the model does not have */
                if (strncmp(cf.t[i].name, "expect.z.", 9) == 0) {
                    const char *suf = cf.t[i].name + 9;
                    char *end;
                    long l = strtol(suf, &end, 10);
                    if (strcmp(suf, "top") != 0 && (*end || l < 0 || l >= L - 1))
                        fail(&cs, "%s: no such latent in this model", cf.t[i].name);
                }
            /* gradients */
            glow_model_backward(m, &err);
            const float *grads = glow_model_grads(m);
            for (int i = 0; i < cf.n; i++) {
                const char *tn = cf.t[i].name;
                if (strncmp(tn, "expect.grad.", 12) != 0)
                    continue;
                long off = glow_model_param_offset(m, tn + 12);
                if (off < 0) {
                    fail(&cs, "%s: not a trained parameter of this model", tn);
                    continue;
                }
                size_t cnt;
                float *ge = readf(&cf, tn, &cnt);
                float *g = xmalloc(cnt * sizeof(float));
                b->download(b, g, grads + off, cnt * sizeof(float));
                compare(&cs, tn, g, ge, cnt, 1e-3);
                free(g);
                free(ge);
            }
            /* inverse from the expected latents */
            if (have_all && e) {
                float *xi = xmalloc((size_t)n * D * sizeof(float));
                glow_model_inverse(m, n, (const float *const *)zexp, xi);
                compare(&cs, "inverse(expect.z) vs expect.x", xi, e, (size_t)n * D, 1e-4);
                free(xi);
            }
            for (int l = 0; l < L; l++)
                free(zexp[l]);
            free(zexp);
            free(x);
            free(e);
        }

        /* ---- optimizer steps ---- */
        size_t S;
        float *tl = readf(&cf, "train.expect.loss", &S);
        if (tl) {
            const char *on = st_meta(&cf, "train.optimizer"), *lrs = st_meta(&cf, "train.lr");
            glow_optimizer kind;
            double lr;
            if (!on || !lrs || glow_optimizer_parse(on, &kind) || parse_double(lrs, &lr)) {
                fail(&cs, "%s", "train.optimizer / train.lr metadata missing or bad");
            } else {
                glow_model *mt = make_model(b, &ck, 0, &err);
                glow_optim *o = glow_optim_new(b, kind, glow_model_n_trained(mt));
                float *got = xcalloc(S, sizeof *got);
                for (size_t s = 0; s < S; s++) {
                    glow_result rr;
                    glow_model_forward(mt, &bt, &rr, &err);
                    got[s] = (float)rr.loss;
                    glow_model_backward(mt, &err);
                    glow_optim_step(o, glow_model_params(mt), glow_model_grads(mt), (float)lr);
                }
                compare(&cs, "train.expect.loss", got, tl, S, 1e-5);
                free(got);
                glow_optim_free(o);
                glow_model_free(mt);
            }
            free(tl);
        }
        free(noise);
        free(labels);
    }

    /* ---- data-dependent init ---- */
    const st_tensor *dimg = st_find(&cf, "ddi.image");
    if (dimg) {
        const int n = (int)dimg->shape[0];
        float *noise = readf(&cf, "ddi.noise", NULL);
        int32_t *labels = NULL;
        float *lf = readf(&cf, "ddi.label", NULL);
        if (cfg->y_condition) {
            labels = xcalloc((size_t)n, sizeof *labels);
            for (int i = 0; i < n && lf; i++)
                labels[i] = (int32_t)lf[i];
        }
        free(lf);
        glow_model *md = make_model(b, &ck, 1, &err);
        glow_batch bt = {n, dimg->data, noise, 0, 0, labels};
        if (glow_model_ddi(md, &bt, NULL, &err)) {
            fail(&cs, "ddi: %s", err.msg);
        } else {
            for (int i = 0; i < cf.n; i++) {
                const char *tn = cf.t[i].name;
                if (strncmp(tn, "ddi.expect.", 11) != 0)
                    continue;
                long off = glow_model_param_offset(md, tn + 11);
                if (off < 0) {
                    fail(&cs, "%s: not a trained parameter of this model", tn);
                    continue;
                }
                size_t cnt;
                float *ge = readf(&cf, tn, &cnt);
                float *g = xmalloc(cnt * sizeof(float));
                b->download(b, g, glow_model_params(md) + off, cnt * sizeof(float));
                compare(&cs, tn, g, ge, cnt, 1e-3);
                free(g);
                free(ge);
            }
        }
        glow_model_free(md);
        free(noise);
        free(labels);
    }
    glow_model_free(m);
out:
    if (!m)
        cs.failed = 1;
    if (cs.failed) {
        (*failed)++;
    } else {
        printf("ok   %s  %d tensors, worst: %s (%.2g of its tolerance)\n", cs.name, cs.ntensors,
               cs.worst_tensor, cs.worst);
        (*passed)++;
    }
    st_free(&cf);
    glow_checkpoint_free(&ck);
}

static int is_case(const char *dir)
{
    char path[8192];
    struct stat st;
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    return stat(path, &st) == 0;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    glow_set_progname(argv[0]);
    const char *device = "cpu";
    int first = 1;
    for (;;) {
        if (first + 1 < argc && strcmp(argv[first], "--device") == 0) {
            device = argv[first + 1];
            first += 2;
        } else if (first < argc && strcmp(argv[first], "-v") == 0) {
            verbose = 1;
            first++;
        } else {
            break;
        }
    }
    glow_error err;
    glow_device dev;
    if (glow_device_resolve(device, &dev, &err)) {
        /* no usable GPU is a skip, not a failure, unless GLOW_TEST_STRICT=1 */
        if (strncmp(device, "cuda", 4) == 0)
            return check_skip(err.msg);
        glow_die(EXIT_USAGE, "%s", err.msg);
    }
    backend *b = backend_get(dev.kind, dev.index, &err);
    if (!b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const char *defaults[] = {"../shared/reference"};
    char **dirs = first < argc ? argv + first : (char **)defaults;
    int ndirs = first < argc ? argc - first : 1;
    int *passed = &check_pass_count, *failed = &check_fail_count;
    for (int d = 0; d < ndirs; d++) {
        if (is_case(dirs[d])) {
            check_case(b, dirs[d], passed, failed);
            continue;
        }
        DIR *dp = opendir(dirs[d]);
        if (!dp) {
            printf("FAIL %s: cannot open the folder\n", dirs[d]);
            (*failed)++;
            continue;
        }
        char **subs = NULL;
        int nsub = 0;
        struct dirent *de;
        while ((de = readdir(dp))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            if (snprintf(path, sizeof path, "%s/%s", dirs[d], de->d_name) >= (int)sizeof path)
                continue;
            if (is_case(path)) {
                subs = xrealloc(subs, (size_t)(nsub + 1) * sizeof *subs);
                subs[nsub++] = xstrdup(path);
            }
        }
        closedir(dp);
        qsort(subs, (size_t)nsub, sizeof *subs, cmpstr);
        if (nsub == 0) {
            printf("FAIL %s: no case folders (with case.safetensors) found\n", dirs[d]);
            (*failed)++;
        }
        for (int i = 0; i < nsub; i++) {
            check_case(b, subs[i], passed, failed);
            free(subs[i]);
        }
        free(subs);
    }
    backend_release(b);
    return check_summary();
}
