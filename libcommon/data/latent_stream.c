/* Latent records: the body of a shard record with flag bit 1 (latent_stream.h),
 * read through shard.c's latent reader, which checks everything up to the
 * payload CRC; this file checks the body's own prefix and values. */
#include "latent_stream.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"

const char *latent_layout_name(latent_layout l)
{
    return l == LATENT_EPS ? "eps" : l == LATENT_Z ? "z" : "unknown";
}

int latent_info_equal(const latent_info *a, const latent_info *b)
{
    return a->layout == b->layout && a->model == b->model && a->levels == b->levels &&
           a->c == b->c && a->h == b->h && a->w == b->w &&
           memcmp(a->lat, b->lat, sizeof a->lat) == 0;
}

void latent_record_free(latent_record *r)
{
    if (!r)
        return;
    free(r->labels);
    free(r->t);
    free(r->v);
    memset(r, 0, sizeof *r);
}

uint32_t latent_per_record(size_t dims)
{
    uint64_t per = SHARD_RECORD_TARGET / (4 * (uint64_t)(dims ? dims : 1));
    return per > 256 ? 256 : per < 1 ? 1 : (uint32_t)per;
}

/* ---- Reading ---- */

struct latent_reader {
    int nfiles, next_file;
    char **files;
    shard_reader *cur;
    const char *cur_name;
    int started, labels;
    latent_info info;
    int failed;
    glow_error saved;
};

static char *dash[] = {"-"};

latent_reader *latent_reader_open(int nfiles, char **files)
{
    latent_reader *r = xcalloc(1, sizeof *r);
    r->nfiles = nfiles > 0 ? nfiles : 1;
    r->files = nfiles > 0 ? files : dash;
    return r;
}

const latent_info *latent_reader_info(const latent_reader *r) { return &r->info; }
int latent_reader_has_labels(const latent_reader *r) { return r->labels; }

const char *latent_reader_name(const latent_reader *r)
{
    return strcmp(r->files[0], "-") == 0 ? "standard input" : r->files[0];
}

const char *latent_reader_where(const latent_reader *r, uint64_t *record)
{
    if (record)
        *record = r->cur ? shard_reader_records(r->cur) : 0;
    return r->cur ? r->cur_name : NULL;
}

void latent_reader_close(latent_reader *r)
{
    if (!r)
        return;
    shard_reader_close(r->cur);
    free(r);
}

__attribute__((format(printf, 3, 4))) static int bad(latent_reader *r, glow_error *err,
                                                     const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    glow_errorf(&r->saved, "%s: record %llu: %s", r->cur_name,
                (unsigned long long)shard_reader_records(r->cur), why);
    r->failed = 1;
    if (err)
        *err = r->saved;
    return -1;
}

static float load_f32(const unsigned char *p)
{
    uint32_t u = load_le32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* The body of a record the shard reader returned, checked and unpacked. */
static int parse_body(latent_reader *r, shard_record *sr, latent_record *rec, glow_error *err)
{
    const unsigned char *p = sr->data;
    latent_info in;
    memset(&in, 0, sizeof in);
    if (memcmp(p, LATENT_TAG, 8) != 0)
        return bad(r, err, "latent prefix: bad tag (not a latent record of this format)");
    uint32_t size = load_le32(p + 8), layout = load_le32(p + 12), levels = load_le32(p + 32),
             reserved = load_le32(p + 36);
    if (size != SHARD_LATENT_PREFIX)
        return bad(r, err, "latent prefix: size %u, this program reads %d", size,
                   SHARD_LATENT_PREFIX);
    if (layout != LATENT_EPS && layout != LATENT_Z)
        return bad(r, err, "latent prefix: unknown layout %u (1 = eps, 2 = z)", layout);
    if (levels < 1 || levels > LATENT_MAX_LEVELS)
        return bad(r, err, "latent prefix: %u levels (1..%d)", levels, LATENT_MAX_LEVELS);
    if (reserved != 0)
        return bad(r, err, "latent prefix: reserved field is %u, must be 0", reserved);
    in.layout = (latent_layout)layout;
    in.model = load_le64(p + 16);
    in.levels = (int)levels;
    in.c = sr->c;
    in.h = sr->h;
    in.w = sr->w;
    const uint64_t D = (uint64_t)sr->c * sr->h * sr->w;
    uint64_t total = 0;
    for (int l = 0; l < LATENT_MAX_LEVELS; l++) {
        for (int k = 0; k < 3; k++)
            in.lat[l][k] = load_le32(p + 40 + 12 * l + 4 * k);
        if (l >= in.levels) {
            if (in.lat[l][0] | in.lat[l][1] | in.lat[l][2])
                return bad(r, err, "latent prefix: level %d is past the %d levels but has a "
                                   "shape", l, in.levels);
            continue;
        }
        uint64_t sz;
        if (__builtin_mul_overflow((uint64_t)in.lat[l][0], (uint64_t)in.lat[l][1], &sz) ||
            __builtin_mul_overflow(sz, (uint64_t)in.lat[l][2], &sz) || sz > D - total)
            return bad(r, err, "latent prefix: the levels' latents hold more values than the "
                               "record's %ux%ux%u images (%llu)",
                       sr->c, sr->h, sr->w, (unsigned long long)D);
        if (sz == 0)
            return bad(r, err, "latent prefix: level %d has an empty shape %ux%ux%u", l,
                       in.lat[l][0], in.lat[l][1], in.lat[l][2]);
        total += sz;
    }
    if (total != D)
        return bad(r, err, "latent prefix: the levels' latents hold %llu values, but the "
                           "record's %ux%ux%u images %llu",
                   (unsigned long long)total, sr->c, sr->h, sr->w, (unsigned long long)D);
    if (!r->started) {
        r->info = in;
    } else if (!latent_info_equal(&in, &r->info)) {
        if (in.model != r->info.model)
            return bad(r, err, "latents of model %016llx, but earlier records are of model "
                               "%016llx",
                       (unsigned long long)in.model, (unsigned long long)r->info.model);
        if (in.layout != r->info.layout)
            return bad(r, err, "layout %s differs from %s of earlier records",
                       latent_layout_name(in.layout), latent_layout_name(r->info.layout));
        return bad(r, err, "level shapes differ from those of earlier records");
    }
    const uint32_t n = sr->n;
    const unsigned char *tp = p + SHARD_LATENT_PREFIX, *vp = tp + 4ull * n;
    float *t = xmalloc((size_t)n * sizeof *t);
    float *v = xmalloc((size_t)n * D * sizeof *v);
    for (uint32_t i = 0; i < n; i++) {
        t[i] = load_f32(tp + 4ull * i);
        if (!isfinite(t[i])) {
            free(t);
            free(v);
            return bad(r, err, "latent %u: factor t is not finite", i);
        }
    }
    for (uint64_t i = 0; i < (uint64_t)n * D; i++) {
        v[i] = load_f32(vp + 4 * i);
        if (!isfinite(v[i])) {
            free(t);
            free(v);
            return bad(r, err, "latent %llu: value %llu is not finite",
                       (unsigned long long)(i / D), (unsigned long long)(i % D));
        }
    }
    rec->n = n;
    rec->weights = load_le64(p + 24);
    rec->labels = sr->labels;
    sr->labels = NULL;
    rec->t = t;
    rec->v = v;
    return 0;
}

int latent_reader_next(latent_reader *r, latent_record *rec, glow_error *err)
{
    memset(rec, 0, sizeof *rec);
    if (r->failed) {
        if (err)
            *err = r->saved;
        return -1;
    }
    for (;;) {
        if (!r->cur) {
            if (r->next_file >= r->nfiles)
                return 0;
            const char *path = r->files[r->next_file++];
            r->cur = shard_reader_open_latent(path, &r->saved);
            if (!r->cur) {
                r->failed = 1;
                if (err)
                    *err = r->saved;
                return -1;
            }
            r->cur_name = strcmp(path, "-") == 0 ? "standard input" : path;
        }
        shard_record sr;
        int rc = shard_reader_next(r->cur, &sr, &r->saved);
        if (rc < 0) {
            r->failed = 1;
            if (err)
                *err = r->saved;
            return -1;
        }
        if (rc == 0) {
            shard_reader_close(r->cur);
            r->cur = NULL;
            continue;
        }
        int has = sr.labels != NULL;
        if (r->started && has != r->labels) {
            shard_record_free(&sr);
            return bad(r, err, has ? "has labels, but earlier records have none"
                                   : "has no labels, but earlier records have them");
        }
        int ok = parse_body(r, &sr, rec, err);
        shard_record_free(&sr);
        if (ok != 0)
            return -1;
        r->labels = has;
        r->started = 1;
        return 1;
    }
}

/* ---- Writing ---- */

struct latent_writer {
    FILE *f;
    latent_info info;
    uint64_t weights;
    int labels;
    uint32_t per, n;
    int32_t *lab;
    float *t, *v;
};

latent_writer *latent_writer_new(FILE *f, const latent_info *info, uint64_t weights,
                                 int labels, uint32_t per_record)
{
    latent_writer *w = xcalloc(1, sizeof *w);
    w->f = f;
    w->info = *info;
    w->weights = weights;
    w->labels = labels;
    w->per = per_record ? per_record : 1;
    w->lab = xmalloc((size_t)w->per * sizeof *w->lab);
    w->t = xmalloc((size_t)w->per * sizeof *w->t);
    w->v = xmalloc((size_t)w->per * latent_dims(info) * sizeof *w->v);
    return w;
}

int latent_writer_flush(latent_writer *w, glow_error *err)
{
    if (w->n == 0)
        return 0;
    const latent_info *in = &w->info;
    const uint64_t D = latent_dims(in), n = w->n;
    const uint64_t bytes = SHARD_LATENT_PREFIX + 4 * n + 4 * n * D;
    unsigned char *body = xcalloc(bytes, 1);
    memcpy(body, LATENT_TAG, 8);
    store_le32(body + 8, SHARD_LATENT_PREFIX);
    store_le32(body + 12, (uint32_t)in->layout);
    store_le64(body + 16, in->model);
    store_le64(body + 24, w->weights);
    store_le32(body + 32, (uint32_t)in->levels);
    for (int l = 0; l < in->levels; l++)
        for (int k = 0; k < 3; k++)
            store_le32(body + 40 + 12 * l + 4 * k, in->lat[l][k]);
    unsigned char *p = body + SHARD_LATENT_PREFIX;
    for (uint64_t i = 0; i < n; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &w->t[i], 4);
        store_le32(p, u);
    }
    for (uint64_t i = 0; i < n * D; i++, p += 4) {
        uint32_t u;
        memcpy(&u, &w->v[i], 4);
        store_le32(p, u);
    }
    int rc = shard_write_latent_record(w->f, w->n, in->c, in->h, in->w, w->labels ? w->lab : NULL,
                                       body, bytes, err);
    free(body);
    w->n = 0;
    return rc;
}

int latent_writer_put(latent_writer *w, int32_t label, float t, const float *v, glow_error *err)
{
    const size_t D = latent_dims(&w->info);
    w->lab[w->n] = label;
    w->t[w->n] = t;
    memcpy(w->v + (size_t)w->n * D, v, D * sizeof *v);
    if (++w->n == w->per)
        return latent_writer_flush(w, err);
    return 0;
}

void latent_writer_free(latent_writer *w)
{
    if (!w)
        return;
    free(w->lab);
    free(w->t);
    free(w->v);
    free(w);
}
