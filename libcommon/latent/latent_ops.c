#include "latent_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- output: the writer is made with the first latent's stream description ---- */

typedef struct {
    const latent_out *out;
    latent_writer *w;
    glow_error *err;
} sink;

static int emit(sink *s, const latent_info *info, uint64_t weights, int labels, int32_t label,
                float t, const float *v)
{
    if (!s->w)
        s->w = latent_writer_new(s->out->f, info, weights, labels,
                                 latent_per_record(latent_dims(info)));
    if (latent_writer_put(s->w, label, t, v, s->err) != 0) {
        glow_error_prefix(s->err, "%s", s->out->name);
        return -1;
    }
    return 0;
}

static int sink_close(sink *s, int rc)
{
    if (rc == 0 && s->w && latent_writer_flush(s->w, s->err) != 0) {
        glow_error_prefix(s->err, "%s", s->out->name);
        rc = -1;
    }
    latent_writer_free(s->w);
    return rc;
}

/* dst = t * v in double (exact: a product of two floats) */
static void scaled(double *dst, const float *v, float t, size_t D)
{
    for (size_t j = 0; j < D; j++)
        dst[j] = (double)t * (double)v[j];
}

static void to_float(float *dst, const double *src, size_t D)
{
    for (size_t j = 0; j < D; j++)
        dst[j] = (float)src[j];
}

/* ---- mix ---- */

int latent_op_mix(latent_reader *in, int steps, int slerp, const latent_out *out,
                  glow_error *err)
{
    sink s = {out, NULL, err};
    latent_record rec;
    int rc = 0, have = 0, got = 0;
    uint64_t count = 0;
    size_t D = 0;
    double *a = NULL, *b = NULL, *m = NULL;
    float *f = NULL, ta = 1;
    int32_t la = 0;
    while (rc == 0 && (got = latent_reader_next(in, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(in);
        if (!a) {
            D = latent_dims(info);
            a = xmalloc(D * sizeof *a);
            b = xmalloc(D * sizeof *b);
            m = xmalloc(D * sizeof *m);
            f = xmalloc(D * sizeof *f);
        }
        for (uint32_t i = 0; i < rec.n && rc == 0; i++, count++) {
            const float *v = rec.v + (size_t)i * D;
            const int32_t lab = rec.labels ? rec.labels[i] : 0;
            if (!have) {
                /* the first of a pair waits for the second (as v; t apart) */
                for (size_t j = 0; j < D; j++)
                    a[j] = v[j];
                ta = rec.t[i];
                la = lab;
                have = 1;
                continue;
            }
            have = 0;
            const float tb = rec.t[i];
            float tout = 1.0f;
            if (memcmp(&ta, &tb, sizeof ta) == 0) {
                for (size_t j = 0; j < D; j++)
                    b[j] = v[j];
                tout = ta;
            } else {
                for (size_t j = 0; j < D; j++)
                    a[j] *= (double)ta;
                scaled(b, v, tb, D);
            }
            double omega = 0, so = 0;
            if (slerp) {
                double ab = 0, aa = 0, bb = 0;
                for (size_t j = 0; j < D; j++) {
                    ab += a[j] * b[j];
                    aa += a[j] * a[j];
                    bb += b[j] * b[j];
                }
                double cs = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
                omega = acos(cs > 1 ? 1 : cs < -1 ? -1 : cs);
                so = sin(omega);
            }
            for (int k = 0; k < steps && rc == 0; k++) {
                const double al = (double)k / (steps - 1);
                double wa = 1 - al, wb = al;
                if (slerp && so > 1e-6) {
                    wa = sin((1 - al) * omega) / so;
                    wb = sin(al * omega) / so;
                }
                for (size_t j = 0; j < D; j++)
                    m[j] = wa * a[j] + wb * b[j];
                to_float(f, m, D);
                rc = emit(&s, info, rec.weights, latent_reader_has_labels(in),
                          al <= 0.5 ? la : lab, tout, f);
            }
        }
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    if (rc == 0 && have) {
        glow_errorf(err, "%s: an odd number of latents (%llu): mix interpolates between "
                         "consecutive pairs",
                    latent_reader_name(in), (unsigned long long)count);
        rc = -1;
    }
    free(a);
    free(b);
    free(m);
    free(f);
    return sink_close(&s, rc);
}

/* ---- scale and select: latent by latent ---- */

int latent_op_scale(latent_reader *in, const double *sv, int ns, const latent_out *out,
                    glow_error *err)
{
    sink s = {out, NULL, err};
    latent_record rec;
    int rc = 0, got = 0;
    while (rc == 0 && (got = latent_reader_next(in, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(in);
        const size_t D = latent_dims(info);
        for (uint32_t i = 0; i < rec.n && rc == 0; i++)
            for (int k = 0; k < ns && rc == 0; k++)
                rc = emit(&s, info, rec.weights, rec.labels != NULL,
                          rec.labels ? rec.labels[i] : 0, rec.t[i] * (float)sv[k],
                          rec.v + (size_t)i * D);
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    return sink_close(&s, rc);
}

int latent_op_select(latent_reader *in, const int32_t *labels, int nlabels, uint64_t limit,
                     const latent_out *out, glow_error *err)
{
    sink s = {out, NULL, err};
    latent_record rec;
    int rc = 0, got = 0;
    uint64_t kept = 0;
    while (rc == 0 && (!limit || kept < limit) && (got = latent_reader_next(in, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(in);
        const size_t D = latent_dims(info);
        if (nlabels && !rec.labels) {
            glow_errorf(err, "%s: the latents have no labels to select by",
                        latent_reader_name(in));
            rc = -1;
        }
        for (uint32_t i = 0; i < rec.n && rc == 0 && (!limit || kept < limit); i++) {
            int keep = !nlabels;
            for (int k = 0; k < nlabels && !keep; k++)
                keep = rec.labels[i] == labels[k];
            if (!keep)
                continue;
            kept++;
            rc = emit(&s, info, rec.weights, rec.labels != NULL, rec.labels ? rec.labels[i] : 0,
                      rec.t[i], rec.v + (size_t)i * D);
        }
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    return sink_close(&s, rc);
}

/* ---- mean and attr: running sums in double ---- */

typedef struct {
    int32_t label;
    uint64_t n;
    double *sum;
} running;

/* The sums of one stream: by label (one per label met), or by class (0: pos,
 * 1: neg, -1: not counted) from classify, or all in one. */
typedef struct {
    int mode;            /* 0: one sum; 1: per label; 2: pos/neg by label */
    int32_t pos, neg;
    int has_neg;
    running *r;
    int nr;
    latent_info info;
    uint64_t weights;
    int started;
} sums;

static running *sum_for(sums *S, int32_t label, size_t D)
{
    for (int i = 0; i < S->nr; i++)
        if (S->r[i].label == label)
            return &S->r[i];
    S->r = xrealloc(S->r, (size_t)(S->nr + 1) * sizeof *S->r);
    running *r = &S->r[S->nr++];
    r->label = label;
    r->n = 0;
    r->sum = xcalloc(D, sizeof *r->sum);
    return r;
}

static void sums_free(sums *S)
{
    for (int i = 0; i < S->nr; i++)
        free(S->r[i].sum);
    free(S->r);
}

static int accumulate(latent_reader *in, sums *S, glow_error *err)
{
    latent_record rec;
    int got = 0;
    while ((got = latent_reader_next(in, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(in);
        const size_t D = latent_dims(info);
        if (!S->started) {
            S->info = *info;
            S->weights = rec.weights;
            S->started = 1;
        }
        if (S->mode && !rec.labels) {
            latent_record_free(&rec);
            glow_errorf(err, "%s: the latents have no labels", latent_reader_name(in));
            return -1;
        }
        for (uint32_t i = 0; i < rec.n; i++) {
            running *r;
            if (S->mode == 0) {
                r = sum_for(S, 0, D);
            } else if (S->mode == 1) {
                r = sum_for(S, rec.labels[i], D);
            } else {
                int32_t y = rec.labels[i];
                if (y == S->pos)
                    r = sum_for(S, 0, D);
                else if (!S->has_neg || y == S->neg)
                    r = sum_for(S, 1, D);
                else
                    continue;
            }
            const float *v = rec.v + (size_t)i * D;
            for (size_t j = 0; j < D; j++)
                r->sum[j] += (double)rec.t[i] * (double)v[j];
            r->n++;
        }
        latent_record_free(&rec);
    }
    return got < 0 ? -1 : 0;
}

static int cmp_running(const void *a, const void *b)
{
    int32_t x = ((const running *)a)->label, y = ((const running *)b)->label;
    return (x > y) - (x < y);
}

int latent_op_mean(latent_reader *in, int by_label, const latent_out *out, glow_error *err)
{
    sums S;
    memset(&S, 0, sizeof S);
    S.mode = by_label ? 1 : 0;
    int rc = accumulate(in, &S, err);
    if (rc == 0 && S.nr == 0) {
        glow_errorf(err, "%s: no latents to average", latent_reader_name(in));
        rc = -1;
    }
    sink s = {out, NULL, err};
    if (rc == 0) {
        const size_t D = latent_dims(&S.info);
        float *f = xmalloc(D * sizeof *f);
        qsort(S.r, (size_t)S.nr, sizeof *S.r, cmp_running);
        for (int i = 0; i < S.nr && rc == 0; i++) {
            for (size_t j = 0; j < D; j++)
                f[j] = (float)(S.r[i].sum[j] / (double)S.r[i].n);
            rc = emit(&s, &S.info, S.weights, by_label, S.r[i].label, 1.0f, f);
        }
        free(f);
    }
    sums_free(&S);
    return sink_close(&s, rc);
}

/* mean(p) - mean(q) */
static int write_difference(const running *p, const running *q, const latent_info *info,
                            uint64_t weights, const latent_out *out, glow_error *err)
{
    const size_t D = latent_dims(info);
    float *f = xmalloc(D * sizeof *f);
    for (size_t j = 0; j < D; j++)
        f[j] = (float)(p->sum[j] / (double)p->n - q->sum[j] / (double)q->n);
    sink s = {out, NULL, err};
    int rc = emit(&s, info, weights, 0, 0, 1.0f, f);
    free(f);
    return sink_close(&s, rc);
}

int latent_op_attr(latent_reader *pos, latent_reader *neg, const latent_out *out,
                   glow_error *err)
{
    sums P, N;
    memset(&P, 0, sizeof P);
    memset(&N, 0, sizeof N);
    int rc = accumulate(pos, &P, err);
    if (rc == 0)
        rc = accumulate(neg, &N, err);
    if (rc == 0 && (P.nr == 0 || N.nr == 0)) {
        glow_errorf(err, "%s: no latents", latent_reader_name(P.nr ? neg : pos));
        rc = -1;
    }
    if (rc == 0 && !latent_info_equal(&P.info, &N.info)) {
        glow_errorf(err, "%s holds %s latents of model %016llx, %s %s latents of model %016llx: "
                         "a direction needs latents of one model and layout",
                    latent_reader_name(pos), latent_layout_name(P.info.layout),
                    (unsigned long long)P.info.model, latent_reader_name(neg),
                    latent_layout_name(N.info.layout), (unsigned long long)N.info.model);
        rc = -1;
    }
    if (rc == 0)
        rc = write_difference(&P.r[0], &N.r[0], &P.info, P.weights, out, err);
    sums_free(&P);
    sums_free(&N);
    return rc;
}

int latent_op_attr_label(latent_reader *in, int32_t pos_label, int has_neg, int32_t neg_label,
                         const latent_out *out, glow_error *err)
{
    sums S;
    memset(&S, 0, sizeof S);
    S.mode = 2;
    S.pos = pos_label;
    S.neg = neg_label;
    S.has_neg = has_neg;
    int rc = accumulate(in, &S, err);
    running *p = NULL, *q = NULL;
    for (int i = 0; i < S.nr; i++)
        *(S.r[i].label == 0 ? &p : &q) = &S.r[i];
    if (rc == 0 && (!p || !q)) {
        if (!p)
            glow_errorf(err, "%s: no latents labelled %d", latent_reader_name(in), pos_label);
        else if (has_neg)
            glow_errorf(err, "%s: no latents labelled %d", latent_reader_name(in), neg_label);
        else
            glow_errorf(err, "%s: no latents with a label other than %d", latent_reader_name(in),
                        pos_label);
        rc = -1;
    }
    if (rc == 0)
        rc = write_difference(p, q, &S.info, S.weights, out, err);
    sums_free(&S);
    return rc;
}

/* ---- directions ---- */

int latent_direction_load(const char *path, latent_direction *dir, glow_error *err)
{
    memset(dir, 0, sizeof *dir);
    char *files[1] = {(char *)path};
    latent_reader *r = latent_reader_open(1, files);
    latent_record rec;
    int got = 0, rc = 0;
    uint64_t n = 0;
    while (rc == 0 && (got = latent_reader_next(r, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(r);
        const size_t D = latent_dims(info);
        if (n == 0 && rec.n >= 1) {
            dir->info = *info;
            dir->weights = rec.weights;
            dir->d = xmalloc(D * sizeof *dir->d);
            scaled(dir->d, rec.v, rec.t[0], D);
        }
        n += rec.n;
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    if (rc == 0 && n != 1) {
        glow_errorf(err, "%s: %llu latents; a direction is one latent (of glow-latent attr or "
                         "mean)",
                    latent_reader_name(r), (unsigned long long)n);
        rc = -1;
    }
    latent_reader_close(r);
    if (rc != 0) {
        free(dir->d);
        dir->d = NULL;
        return -1;
    }
    dir->name = xstrdup(strcmp(path, "-") == 0 ? "standard input" : path);
    return 0;
}

void latent_direction_free(latent_direction *dir)
{
    free(dir->d);
    free(dir->name);
    memset(dir, 0, sizeof *dir);
}

static int check_direction(latent_reader *in, const latent_direction *dir, glow_error *err)
{
    const latent_info *info = latent_reader_info(in);
    if (latent_info_equal(info, &dir->info))
        return 0;
    glow_errorf(err, "%s: %s latents of model %016llx, but the direction %s is of %s latents "
                     "of model %016llx",
                latent_reader_name(in), latent_layout_name(info->layout),
                (unsigned long long)info->model, dir->name, latent_layout_name(dir->info.layout),
                (unsigned long long)dir->info.model);
    return -1;
}

int latent_op_add(latent_reader *in, const latent_direction *dir, const double *al, int na,
                  const latent_out *out, glow_error *err)
{
    sink s = {out, NULL, err};
    latent_record rec;
    int rc = 0, got = 0;
    const size_t D = latent_dims(&dir->info);
    double *u = xmalloc(D * sizeof *u);
    float *f = xmalloc(D * sizeof *f);
    while (rc == 0 && (got = latent_reader_next(in, &rec, err)) == 1) {
        const latent_info *info = latent_reader_info(in);
        rc = check_direction(in, dir, err);
        for (uint32_t i = 0; i < rec.n && rc == 0; i++) {
            scaled(u, rec.v + (size_t)i * D, rec.t[i], D);
            for (int k = 0; k < na && rc == 0; k++) {
                for (size_t j = 0; j < D; j++)
                    f[j] = (float)(u[j] + al[k] * dir->d[j]);
                rc = emit(&s, info, rec.weights, rec.labels != NULL,
                          rec.labels ? rec.labels[i] : 0, 1.0f, f);
            }
        }
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    free(u);
    free(f);
    return sink_close(&s, rc);
}

int latent_op_project(latent_reader *in, const latent_direction *dir, FILE *text,
                      glow_error *err)
{
    latent_record rec;
    int rc = 0, got = 0;
    const size_t D = latent_dims(&dir->info);
    double dd = 0;
    for (size_t j = 0; j < D; j++)
        dd += dir->d[j] * dir->d[j];
    if (!(dd > 0)) {
        glow_errorf(err, "%s: the direction is zero", dir->name);
        return -1;
    }
    uint64_t index = 0;
    fprintf(text, "index\tscore\tlabel\n");
    while (rc == 0 && (got = latent_reader_next(in, &rec, err)) == 1) {
        rc = check_direction(in, dir, err);
        for (uint32_t i = 0; i < rec.n && rc == 0; i++, index++) {
            const float *v = rec.v + (size_t)i * D;
            double ud = 0;
            for (size_t j = 0; j < D; j++)
                ud += (double)rec.t[i] * (double)v[j] * dir->d[j];
            fprintf(text, "%llu\t%.6f\t", (unsigned long long)index, ud / dd);
            if (rec.labels)
                fprintf(text, "%d\n", rec.labels[i]);
            else
                fprintf(text, "-\n");
        }
        latent_record_free(&rec);
    }
    if (rc == 0 && got < 0)
        rc = -1;
    return rc;
}
