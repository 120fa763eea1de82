#include "latent_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "data/shard.h"
#include "latent_id.h"

/* One array per level for a batch of n latents, and the packing between them and
 * the stream's latent-by-latent layout (level after level inside a latent). */
typedef struct {
    int L;
    size_t size[LATENT_MAX_LEVELS];
    float *lv[LATENT_MAX_LEVELS];
} level_arrays;

static void levels_alloc(level_arrays *a, const latent_info *in, int n)
{
    a->L = in->levels;
    for (int l = 0; l < a->L; l++) {
        a->size[l] = latent_level_size(in, l);
        a->lv[l] = xmalloc((size_t)n * a->size[l] * sizeof(float));
    }
}

static void levels_free(level_arrays *a)
{
    for (int l = 0; l < a->L; l++)
        free(a->lv[l]);
}

/* latent i of the batch from / to its D values */
static void levels_get(const level_arrays *a, int i, float *v)
{
    for (int l = 0; l < a->L; l++) {
        memcpy(v, a->lv[l] + (size_t)i * a->size[l], a->size[l] * sizeof(float));
        v += a->size[l];
    }
}

static void levels_put(level_arrays *a, int i, const float *v)
{
    for (int l = 0; l < a->L; l++) {
        memcpy(a->lv[l] + (size_t)i * a->size[l], v, a->size[l] * sizeof(float));
        v += a->size[l];
    }
}

/* ---- encode ---- */

/* The inputs with folders replaced by their shard files (in name order). */
static int expand_inputs(int n, char **in, char ***out, int *nout, glow_error *err)
{
    *out = NULL;
    *nout = 0;
    for (int i = 0; i < n; i++) {
        char **list = NULL;
        int k = 0;
        if (strcmp(in[i], "-") != 0 && glow_is_dir(in[i])) {
            if (shard_dir_list(in[i], &list, &k, err) != 0)
                return -1;
            if (k == 0) {
                free(list);
                glow_errorf(err, "%s: no shard files (*.glow) in this directory", in[i]);
                return -1;
            }
        } else {
            list = xmalloc(sizeof *list);
            list[0] = xstrdup(in[i]);
            k = 1;
        }
        *out = xrealloc(*out, (size_t)(*nout + k) * sizeof **out);
        memcpy(*out + *nout, list, (size_t)k * sizeof *list);
        *nout += k;
        free(list);
    }
    return 0;
}

typedef struct {
    glow_loaded_model *lm;
    const latent_encode_opts *o;
    latent_writer *w;
    level_arrays lat;
    float *noise, *v;
    uint8_t *pix;
    int32_t *lab;
    int n, has_labels;
    uint64_t done;
    const char *out_name;
} encoder;

static int encode_batch(encoder *e, const char *where, glow_error *err)
{
    const glow_config *c = &e->lm->cfg;
    const latent_encode_opts *o = e->o;
    glow_batch b = {e->n, e->pix, o->noise ? NULL : e->noise, o->seed, e->done,
                    c->y_condition ? e->lab : NULL};
    glow_result r;
    if (glow_model_eval(e->lm->m, &b, &r, err) != 0) {
        glow_error_prefix(err, "%s", where);
        return -1;
    }
    for (int l = 0; l < e->lat.L; l++) {
        if (o->layout == LATENT_EPS)
            glow_model_get_eps(e->lm->m, l, e->lat.lv[l]);
        else
            glow_model_get_latent(e->lm->m, l, e->lat.lv[l]);
    }
    for (int i = 0; i < e->n; i++) {
        levels_get(&e->lat, i, e->v);
        if (latent_writer_put(e->w, e->lab[i], 1.0f, e->v, err) != 0) {
            glow_error_prefix(err, "%s", e->out_name);
            return -1;
        }
        if (o->bpd) {
            fprintf(o->bpd, "%llu\t%.6f\t", (unsigned long long)(e->done + (uint64_t)i), r.bpd[i]);
            if (e->has_labels)
                fprintf(o->bpd, "%d\n", e->lab[i]);
            else
                fprintf(o->bpd, "-\n");
        }
    }
    e->done += (uint64_t)e->n;
    e->n = 0;
    if (o->progress)
        o->progress(o->ctx, e->done);
    return 0;
}

/* The first record fixes the stream: the model's shape, uint8, labels when the
 * model is class-conditional. */
static int check_images(const glow_config *c, const shard_record *rec, const char *where,
                        glow_error *err)
{
    if (rec->dtype != SHARD_U8) {
        glow_errorf(err, "%s: float32 images; the model reads uint8 images (glow-prep writes "
                         "them)", where);
        return -1;
    }
    if ((int)rec->c != c->channels || (int)rec->h != c->image_h || (int)rec->w != c->image_w) {
        glow_errorf(err, "%s: images are %ux%ux%u (CxHxW) but the model takes %dx%dx%d; make "
                         "them fit with glow-prep --pad/--size (and --channels)",
                    where, rec->c, rec->h, rec->w, c->channels, c->image_h, c->image_w);
        return -1;
    }
    if (c->y_condition && !rec->labels) {
        glow_errorf(err, "%s: the images have no labels, but the model is class-conditional "
                         "(its prior needs each image's class); pack labelled data with "
                         "glow-prep", where);
        return -1;
    }
    return 0;
}

int latent_encode(glow_loaded_model *lm, int ninputs, char **inputs, const latent_encode_opts *o,
                  FILE *out, const char *out_name, uint64_t *count, glow_error *err)
{
    const glow_config *c = &lm->cfg;
    char **files;
    int nfiles;
    *count = 0;
    if (expand_inputs(ninputs, inputs, &files, &nfiles, err) != 0)
        return -1;
    shard_multi *in = shard_multi_open(nfiles, files);
    const size_t D = (size_t)glow_config_dims(c);
    latent_info info;
    latent_info_of(c, o->layout, &info);
    encoder e;
    memset(&e, 0, sizeof e);
    e.lm = lm;
    e.o = o;
    e.out_name = out_name;
    levels_alloc(&e.lat, &info, o->batch);
    e.v = xmalloc(D * sizeof *e.v);
    e.pix = xmalloc((size_t)o->batch * D);
    e.lab = xcalloc((size_t)o->batch, sizeof *e.lab);
    if (!o->noise) {
        /* the centre of each quantisation bin: decoding, which quantises like
         * sampling, then gives the image back */
        const float centre = 0.5f / (float)(1 << c->n_bits);
        e.noise = xmalloc((size_t)o->batch * D * sizeof *e.noise);
        for (size_t i = 0; i < (size_t)o->batch * D; i++)
            e.noise[i] = centre;
    }
    uint64_t weights = latent_weights_id(lm->m, c);
    int rc = 0, first = 1;
    char where[1100] = "";
    if (o->bpd)
        fprintf(o->bpd, "index\tbpd\tlabel\n");
    for (;;) {
        if (o->limit && e.done + (uint64_t)e.n >= o->limit)
            break;
        shard_record rec;
        int got = shard_multi_next(in, &rec, err);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0)
            break;
        uint64_t recno;
        const char *name = shard_multi_where(in, &recno);
        snprintf(where, sizeof where, "%s: record %llu", name, (unsigned long long)recno);
        if (first) {
            if (check_images(c, &rec, name, err) != 0) {
                shard_record_free(&rec);
                rc = -1;
                break;
            }
            e.has_labels = rec.labels != NULL;
            e.w = latent_writer_new(out, &info, weights, e.has_labels, latent_per_record(D));
            first = 0;
        }
        for (uint32_t i = 0; i < rec.n && rc == 0; i++) {
            if (o->limit && e.done + (uint64_t)e.n >= o->limit)
                break;
            int32_t y = rec.labels ? rec.labels[i] : 0;
            if (c->y_condition && (y < 0 || y >= c->n_classes)) {
                glow_errorf(err, "%s: image %llu: label %d outside the model's classes 0..%d",
                            name, (unsigned long long)(e.done + (uint64_t)e.n), y,
                            c->n_classes - 1);
                rc = -1;
                break;
            }
            memcpy(e.pix + (size_t)e.n * D, (const uint8_t *)rec.data + (size_t)i * D, D);
            e.lab[e.n++] = y;
            if (e.n == o->batch)
                rc = encode_batch(&e, where, err);
        }
        shard_record_free(&rec);
        if (rc != 0)
            break;
    }
    if (rc == 0 && e.n > 0)
        rc = encode_batch(&e, where, err);
    if (rc == 0 && e.w && latent_writer_flush(e.w, err) != 0) {
        glow_error_prefix(err, "%s", out_name);
        rc = -1;
    }
    if (rc == 0 && first) {
        glow_errorf(err, "%s: no images", nfiles && strcmp(files[0], "-") ? files[0]
                                                                           : "standard input");
        rc = -1;
    }
    *count = e.done;
    latent_writer_free(e.w);
    levels_free(&e.lat);
    free(e.v);
    free(e.pix);
    free(e.lab);
    free(e.noise);
    shard_multi_close(in);
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    return rc;
}

/* ---- decode ---- */

typedef struct {
    glow_loaded_model *lm;
    const latent_decode_opts *o;
    int std, labels;     /* standardised input; the output has labels */
    level_arrays lat;
    float *t, *x;
    int32_t *lab;        /* per latent of the batch */
    int n;
    uint8_t *img;        /* the output record being filled */
    int32_t *img_lab;
    uint32_t per, nimg;
    FILE *out;
    const char *out_name;
    uint64_t done;
} decoder;

static int write_images(decoder *d, glow_error *err)
{
    if (d->nimg == 0)
        return 0;
    const glow_config *c = &d->lm->cfg;
    shard_record rec = {SHARD_U8, d->nimg, (uint32_t)c->channels, (uint32_t)c->image_h,
                        (uint32_t)c->image_w, d->labels ? d->img_lab : NULL, d->img};
    d->nimg = 0;
    if (shard_write_record(d->out, &rec, err) != 0) {
        glow_error_prefix(err, "%s", d->out_name);
        return -1;
    }
    return 0;
}

static int decode_batch(decoder *d, const char *where, glow_error *err)
{
    const glow_config *c = &d->lm->cfg;
    const size_t D = (size_t)glow_config_dims(c);
    if (glow_model_decode(d->lm->m, d->n, (const float *const *)d->lat.lv, d->std, d->t,
                          c->y_condition ? d->lab : NULL, d->x, err) != 0) {
        glow_error_prefix(err, "%s", where);
        return -1;
    }
    for (int i = 0; i < d->n; i++) {
        glow_model_quantize(d->lm->m, D, d->x + (size_t)i * D, d->img + (size_t)d->nimg * D);
        d->img_lab[d->nimg] = d->lab[i];
        if (++d->nimg == d->per && write_images(d, err) != 0)
            return -1;
    }
    d->done += (uint64_t)d->n;
    d->n = 0;
    if (d->o->progress)
        d->o->progress(d->o->ctx, d->done);
    return 0;
}

int latent_decode(glow_loaded_model *lm, const char *ckpt, latent_reader *in,
                  const latent_decode_opts *o, FILE *out, const char *out_name, uint64_t *count,
                  glow_error *err)
{
    const glow_config *c = &lm->cfg;
    const size_t D = (size_t)glow_config_dims(c);
    decoder d;
    memset(&d, 0, sizeof d);
    d.lm = lm;
    d.o = o;
    d.out = out;
    d.out_name = out_name;
    /* glow-sample's records: the same bytes as it writes for the same images */
    uint64_t per = SHARD_RECORD_TARGET / D;
    d.per = per > 256 ? 256 : per < 1 ? 1 : (uint32_t)per;
    d.t = xmalloc((size_t)o->batch * sizeof *d.t);
    d.lab = xcalloc((size_t)o->batch, sizeof *d.lab);
    d.x = xmalloc((size_t)o->batch * D * sizeof *d.x);
    d.img = xmalloc((size_t)d.per * D);
    d.img_lab = xcalloc(d.per, sizeof *d.img_lab);
    const uint64_t weights = latent_weights_id(lm->m, c);
    int rc = 0, first = 1, warned = 0;
    char where[1100] = "";
    *count = 0;
    for (;;) {
        latent_record rec;
        int got = latent_reader_next(in, &rec, err);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0)
            break;
        uint64_t recno;
        const char *name = latent_reader_where(in, &recno);
        snprintf(where, sizeof where, "%s: record %llu", name, (unsigned long long)recno);
        if (first) {
            const latent_info *info = latent_reader_info(in);
            if (latent_check_model(info, c, ckpt, err) != 0) {
                glow_error_prefix(err, "%s", where);
                latent_record_free(&rec);
                rc = -1;
                break;
            }
            if (c->y_condition && !rec.labels && o->cls < 0) {
                glow_errorf(err, "%s: the latents have no labels, but the model is "
                                 "class-conditional; give --class Y", where);
                latent_record_free(&rec);
                rc = -1;
                break;
            }
            d.std = info->layout == LATENT_EPS;
            d.labels = rec.labels != NULL || o->cls >= 0;
            levels_alloc(&d.lat, info, o->batch);
            first = 0;
        }
        if (!warned && rec.weights != weights) {
            glow_warn("%s: warning: these latents were made with other weights (fingerprint "
                      "%016llx) than %s's (%016llx); decoding them anyway",
                      where, (unsigned long long)rec.weights, ckpt, (unsigned long long)weights);
            warned = 1;
        }
        for (uint32_t i = 0; i < rec.n && rc == 0; i++) {
            levels_put(&d.lat, d.n, rec.v + (size_t)i * D);
            d.t[d.n] = rec.t[i];
            d.lab[d.n] = o->cls >= 0 ? (int32_t)o->cls : rec.labels ? rec.labels[i] : 0;
            if (++d.n == o->batch)
                rc = decode_batch(&d, where, err);
        }
        latent_record_free(&rec);
        if (rc != 0)
            break;
    }
    if (rc == 0 && d.n > 0)
        rc = decode_batch(&d, where, err);
    if (rc == 0 && write_images(&d, err) != 0)
        rc = -1;
    *count = d.done;
    if (!first)
        levels_free(&d.lat);
    free(d.t);
    free(d.lab);
    free(d.x);
    free(d.img);
    free(d.img_lab);
    return rc;
}

/* ---- random ---- */

int latent_random(glow_loaded_model *lm, const latent_random_opts *o, FILE *out,
                  const char *out_name, glow_error *err)
{
    const glow_config *c = &lm->cfg;
    const size_t D = (size_t)glow_config_dims(c);
    latent_info info;
    latent_info_of(c, LATENT_EPS, &info);
    const uint32_t per = latent_per_record(D);
    latent_writer *w = latent_writer_new(out, &info, latent_weights_id(lm->m, c), c->y_condition,
                                         per);
    level_arrays a;
    levels_alloc(&a, &info, o->batch);
    float *v = xmalloc(D * sizeof *v);
    int rc = 0;
    for (uint64_t first = 0; first < o->n && rc == 0; first += (uint64_t)o->batch) {
        int n = o->n - first < (uint64_t)o->batch ? (int)(o->n - first) : o->batch;
        glow_model_sample_eps(lm->m, n, o->seed, first, a.lv);
        for (int i = 0; i < n && rc == 0; i++) {
            /* glow-sample's labels: the class of image i is a function of i alone */
            int32_t y = !c->y_condition ? 0
                        : o->cls >= 0   ? (int32_t)o->cls
                                        : (int32_t)((first + (uint64_t)i) % (uint64_t)c->n_classes);
            levels_get(&a, i, v);
            rc = latent_writer_put(w, y, o->temperature, v, err);
        }
    }
    if (rc == 0)
        rc = latent_writer_flush(w, err);
    if (rc != 0)
        glow_error_prefix(err, "%s", out_name);
    free(v);
    levels_free(&a);
    latent_writer_free(w);
    return rc;
}
