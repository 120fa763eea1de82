/* The latent tools' library: the model's encode and decode (every option
 * combination: encode -> decode gives the images back, raw latents decode as
 * glow_model_inverse, the sampler's normals at its temperature decode to its x
 * bit for bit, per-image factors), the latent records (round trip, what readers
 * refuse), the model identity, and the stream operations (mix, scale, select,
 * mean, attr, add, project). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/rng.h"
#include "check.h"
#include "data/latent_stream.h"
#include "data/shard.h"
#include "device/device.h"
#include "latent/latent_id.h"
#include "latent/latent_ops.h"
#include "model/model.h"
#include "tiny_config.h"

static backend *B;

/* ---- the model ---- */

static glow_model *make_model(const glow_config *c, uint64_t seed, glow_paramset *ps)
{
    glow_error err;
    if (glow_paramset_layout(c, ps, &err)) {
        fprintf(stderr, "layout: %s\n", err.msg);
        exit(1);
    }
    glow_params_init(c, ps, seed);
    glow_rng r = rng_make(seed, RNG_STREAM_TEST);
    for (int i = 0; i < ps->n; i++) {
        glow_param *p = &ps->v[i];
        if (!p->trained || p->dtype != PARAM_F32)
            continue;
        float *d = p->data;
        for (size_t j = 0; j < p->count; j++)
            d[j] += (float)(0.05 * rng_next_normal(&r));
    }
    glow_model *m = glow_model_new(B, c, ps, &err);
    if (!m) {
        fprintf(stderr, "model: %s\n", err.msg);
        exit(1);
    }
    return m;
}

static void test_codec(const glow_config *c, uint64_t seed)
{
    glow_paramset ps;
    glow_model *m = make_model(c, seed, &ps);
    const int n = 4, L = c->levels;
    const size_t D = (size_t)glow_config_dims(c);
    uint8_t *img = malloc(n * D), *back = malloc(n * D), *s8 = malloc(n * D);
    float *noise = malloc(n * D * sizeof(float)), *x = malloc(n * D * sizeof(float));
    float *xs = malloc(n * D * sizeof(float)), *xi = malloc(n * D * sizeof(float));
    float *eps[LATENT_MAX_LEVELS], *z[LATENT_MAX_LEVELS], *nrm[LATENT_MAX_LEVELS];
    int32_t lab[4];
    glow_rng r = rng_make(seed + 7, RNG_STREAM_TEST);
    for (size_t i = 0; i < n * D; i++) {
        img[i] = (uint8_t)rng_next_below(&r, 256);
        noise[i] = 0.5f / (float)(1 << c->n_bits);
    }
    for (int i = 0; i < n; i++)
        lab[i] = c->y_condition ? (int32_t)rng_next_below(&r, (uint32_t)c->n_classes) : 0;
    size_t sz[LATENT_MAX_LEVELS];
    for (int l = 0; l < L; l++) {
        int sh[4];
        glow_model_latent_shape(m, l, n, sh);
        sz[l] = (size_t)sh[1] * sh[2] * sh[3];
        eps[l] = malloc(n * sz[l] * sizeof(float));
        z[l] = malloc(n * sz[l] * sizeof(float));
        nrm[l] = malloc(n * sz[l] * sizeof(float));
    }
    glow_batch bt = {n, img, noise, 0, 0, lab};
    glow_result res;
    glow_error err;
    char d[200];
    latent_model_describe(c, d, sizeof d);
    CHECK(glow_model_eval(m, &bt, &res, &err) == 0);
    for (int l = 0; l < L; l++) {
        glow_model_get_eps(m, l, eps[l]);
        glow_model_get_latent(m, l, z[l]);
    }
    /* encode -> decode: the images back, exactly (at n_bits < 8 the images the
     * model sees, u with its low 8 - n_bits bits cleared, as sampling writes them) */
    const int sh8 = 8 - c->n_bits;
    for (size_t i = 0; i < n * D; i++)
        img[i] = (uint8_t)((img[i] >> sh8) << sh8);
    CHECK(glow_model_decode(m, n, (const float *const *)eps, 1, NULL, lab, x, &err) == 0);
    glow_model_quantize(m, n * D, x, back);
    CHECKF(memcmp(img, back, n * D) == 0, "%s n_bits %d: eps decode does not give the images",
           d, c->n_bits);
    /* raw latents decode exactly as glow_model_inverse does */
    CHECK(glow_model_decode(m, n, (const float *const *)z, 0, NULL, NULL, x, &err) == 0);
    glow_model_inverse(m, n, (const float *const *)z, xi);
    CHECKF(memcmp(x, xi, n * D * sizeof(float)) == 0, "%s: z decode differs from the inverse", d);
    glow_model_quantize(m, n * D, x, back);
    CHECKF(memcmp(img, back, n * D) == 0, "%s: z decode does not give the images", d);
    /* the sampler's normals at its temperature: its x, bit for bit */
    float T[4] = {0.7f, 0.7f, 0.7f, 0.7f};
    glow_model_sample_eps(m, n, 11, 5, nrm);
    CHECK(glow_model_decode(m, n, (const float *const *)nrm, 1, T, lab, x, &err) == 0);
    glow_model_sample(m, n, 0.7f, 11, 5, lab, s8, xs);
    CHECKF(memcmp(x, xs, n * D * sizeof(float)) == 0, "%s: decode(sample_eps) != sample", d);
    glow_model_quantize(m, n * D, x, back);
    CHECKF(memcmp(s8, back, n * D) == 0, "%s: quantize differs from sample's uint8", d);
    /* factors per latent: the same as decoding each latent alone */
    float Tv[4] = {0.0f, 1.0f, 1.0f, 0.5f};
    CHECK(glow_model_decode(m, n, (const float *const *)nrm, 1, Tv, lab, x, &err) == 0);
    int same = 1;
    for (int i = 0; i < n; i++) {
        const float *one[LATENT_MAX_LEVELS];
        for (int l = 0; l < L; l++)
            one[l] = nrm[l] + i * sz[l];
        CHECK(glow_model_decode(m, 1, one, 1, &Tv[i], &lab[i], xi, &err) == 0);
        same &= memcmp(xi, x + i * D, D * sizeof(float)) == 0;
    }
    CHECKF(same, "%s: a latent's decode depends on its batch or its neighbours' factors", d);
    glow_model_sample(m, 1, 0.0f, 3, 0, &lab[0], s8, xs);
    CHECKF(memcmp(xs, x, D * sizeof(float)) == 0, "%s: factor 0 is not the mean image", d);
    if (c->y_condition) {
        int32_t badl[4] = {0, c->n_classes, 0, 0};
        CHECK(glow_model_decode(m, n, (const float *const *)eps, 1, NULL, badl, x, &err) == -1);
        CHECK(strstr(err.msg, "label") != NULL);
    }
    for (int l = 0; l < L; l++) {
        free(eps[l]);
        free(z[l]);
        free(nrm[l]);
    }
    free(img);
    free(back);
    free(s8);
    free(noise);
    free(x);
    free(xs);
    free(xi);
    glow_model_free(m);
    glow_paramset_free(&ps);
}

/* ---- records ---- */

static char tmpl[64];
static const char *tmp_path(int k)
{
    static char paths[8][80];
    snprintf(paths[k], sizeof paths[k], "%s/f%d.glow", tmpl, k);
    return paths[k];
}

/* a latent_info of a made-up model: 1x4x4 images, levels 2x2x2 (8) and 8x1x1 (8) */
static latent_info small_info(latent_layout lay)
{
    latent_info in;
    memset(&in, 0, sizeof in);
    in.layout = lay;
    in.model = 0x1234567890abcdefull;
    in.levels = 2;
    in.c = 1;
    in.h = 4;
    in.w = 4;
    in.lat[0][0] = 2;
    in.lat[0][1] = in.lat[0][2] = 2;
    in.lat[1][0] = 8;
    in.lat[1][1] = in.lat[1][2] = 1;
    return in;
}

/* n latents v[i][j] = vals(i, j), labels i*10 (when labels), t[i], per_record */
static void write_stream(const char *path, const latent_info *in, int n, int labels,
                         const float *t, float (*vals)(int, int), uint32_t per)
{
    FILE *f = fopen(path, "wb");
    latent_writer *w = latent_writer_new(f, in, 77, labels, per);
    float v[16];
    glow_error err;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 16; j++)
            v[j] = vals(i, j);
        CHECK(latent_writer_put(w, i * 10, t ? t[i] : 1.0f, v, &err) == 0);
    }
    CHECK(latent_writer_flush(w, &err) == 0);
    latent_writer_free(w);
    fclose(f);
}

static float ramp(int i, int j) { return (float)(i * 100 + j) / 7.0f; }

/* every latent of a stream: count, labels, t and values into the arrays given */
static int read_all(const char *path, int max, int32_t *lab, float *t, float *v, latent_info *info,
                    glow_error *err)
{
    char *files[1] = {(char *)path};
    latent_reader *r = latent_reader_open(1, files);
    latent_record rec;
    int n = 0, got;
    while ((got = latent_reader_next(r, &rec, err)) == 1) {
        for (uint32_t i = 0; i < rec.n && n < max; i++, n++) {
            lab[n] = rec.labels ? rec.labels[i] : -999;
            t[n] = rec.t[i];
            memcpy(v + 16 * n, rec.v + 16 * i, 16 * sizeof(float));
        }
        latent_record_free(&rec);
    }
    if (info)
        *info = *latent_reader_info(r);
    latent_reader_close(r);
    return got < 0 ? -1 : n;
}

/* the body byte at off (from the start of the payload after the labels) of the
 * first record set to value, CRCs rewritten; the file is rewritten in place */
static void patch_body(const char *path, size_t off, uint32_t value);

static void test_records(void)
{
    latent_info in = small_info(LATENT_EPS), got;
    float t[5] = {1, 0.5f, 2, 1, 0.25f}, v[5 * 16], tt[5];
    int32_t lab[5];
    glow_error err;
    write_stream(tmp_path(0), &in, 5, 1, t, ramp, 2);
    CHECK(read_all(tmp_path(0), 5, lab, tt, v, &got, &err) == 5);
    CHECK(latent_info_equal(&in, &got));
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        ok &= lab[i] == i * 10 && tt[i] == t[i];
        for (int j = 0; j < 16; j++)
            ok &= v[16 * i + j] == ramp(i, j);
    }
    CHECKF(ok, "latent records round trip");
    /* records of per_record latents: 2, 2, 1 */
    char *files[1] = {(char *)tmp_path(0)};
    latent_reader *r = latent_reader_open(1, files);
    latent_record rec;
    int sizes[4] = {0}, k = 0;
    while (latent_reader_next(r, &rec, &err) == 1 && k < 4) {
        sizes[k++] = (int)rec.n;
        CHECK(rec.weights == 77);
        latent_record_free(&rec);
    }
    latent_reader_close(r);
    CHECK(k == 3 && sizes[0] == 2 && sizes[1] == 2 && sizes[2] == 1);
    /* an image reader refuses them, a latent reader images */
    shard_reader *sr = shard_reader_open(tmp_path(0), &err);
    shard_record srec;
    CHECK(shard_reader_next(sr, &srec, &err) == -1);
    CHECKF(strstr(err.msg, "record 1: a latent record") != NULL, "%s", err.msg);
    shard_reader_close(sr);
    FILE *f = fopen(tmp_path(1), "wb");
    uint8_t px[16] = {0};
    shard_record im = {SHARD_U8, 1, 1, 4, 4, NULL, px};
    CHECK(shard_write_record(f, &im, &err) == 0);
    fclose(f);
    CHECK(read_all(tmp_path(1), 5, lab, tt, v, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "f1.glow: record 1: an image record, not latents") != NULL, "%s",
           err.msg);
    /* the prefix's fields */
    static const struct {
        size_t off;
        uint32_t value;
        const char *msg;
    } bad[] = {
        {0, 0x21212121, "bad tag"},
        {8, 128, "size 128"},
        {12, 3, "unknown layout 3"},
        {32, 0, "0 levels"},
        {32, 11, "11 levels"},
        {36, 1, "reserved field is 1"},
        {40, 1, "the levels' latents hold 12 values"},
        {44, 0, "level 0 has an empty shape"},
        {40 + 12 * 2, 1, "level 2 is past the 2 levels"},
        {40 + 4, 0x40000000, "hold more values than"},
        {SHARD_LATENT_PREFIX + 4, 0x7fc00000, "latent 1: factor t is not finite"},
        {SHARD_LATENT_PREFIX + 8 + 4 * 17, 0x7f800000, "latent 1: value 1 is not finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_stream(tmp_path(2), &in, 2, 0, NULL, ramp, 2);
        patch_body(tmp_path(2), bad[i].off, bad[i].value);
        CHECK(read_all(tmp_path(2), 5, lab, tt, v, NULL, &err) == -1);
        CHECKF(strstr(err.msg, "f2.glow: record 1: ") && strstr(err.msg, bad[i].msg),
               "patch %zu: %s", i, err.msg);
    }
    /* a second file of another model, layout or labels */
    latent_info other = in;
    other.model ^= 1;
    write_stream(tmp_path(3), &other, 1, 1, NULL, ramp, 2);
    char *two[2] = {(char *)tmp_path(0), (char *)tmp_path(3)};
    r = latent_reader_open(2, two);
    int rc;
    while ((rc = latent_reader_next(r, &rec, &err)) == 1)
        latent_record_free(&rec);
    CHECK(rc == -1);
    CHECKF(strstr(err.msg, "f3.glow: record 1: latents of model 1234567890abcdee, but earlier") !=
               NULL, "%s", err.msg);
    latent_reader_close(r);
    other = small_info(LATENT_Z);
    write_stream(tmp_path(3), &other, 1, 1, NULL, ramp, 2);
    r = latent_reader_open(2, two);
    while ((rc = latent_reader_next(r, &rec, &err)) == 1)
        latent_record_free(&rec);
    CHECKF(rc == -1 && strstr(err.msg, "layout z differs from eps"), "%s", err.msg);
    latent_reader_close(r);
    write_stream(tmp_path(3), &in, 1, 0, NULL, ramp, 2);
    r = latent_reader_open(2, two);
    while ((rc = latent_reader_next(r, &rec, &err)) == 1)
        latent_record_free(&rec);
    CHECKF(rc == -1 && strstr(err.msg, "has no labels, but earlier"), "%s", err.msg);
    latent_reader_close(r);
}

#include <zlib.h>

static void patch_body(const char *path, size_t off, uint32_t value)
{
    FILE *f = fopen(path, "rb");
    unsigned char hd[64];
    if (fread(hd, 1, 64, f) != 64)
        exit(1);
    uint64_t raw = load_le64(hd + 40), zs = load_le64(hd + 48);
    unsigned char *z = malloc(zs), *p = malloc(raw);
    if (fread(z, 1, zs, f) != zs)
        exit(1);
    long rest_at = ftell(f);
    fseek(f, 0, SEEK_END);
    long rest = ftell(f) - rest_at;
    unsigned char *tail = malloc(rest > 0 ? rest : 1);
    fseek(f, rest_at, SEEK_SET);
    if (rest > 0 && fread(tail, 1, rest, f) != (size_t)rest)
        exit(1);
    fclose(f);
    uLongf len = raw;
    uncompress(p, &len, z, zs);
    size_t lab = (load_le32(hd + 16) & 1) ? 4 * load_le32(hd + 20) : 0;
    store_le32(p + lab + off, value);
    uLongf zl = compressBound(raw);
    unsigned char *nz = malloc(zl);
    compress2(nz, &zl, p, raw, 1);
    store_le64(hd + 48, zl);
    store_le32(hd + 56, (uint32_t)crc32(0, p, raw));
    store_le32(hd + 60, (uint32_t)crc32(0, hd, 60));
    f = fopen(path, "wb");
    fwrite(hd, 1, 64, f);
    fwrite(nz, 1, zl, f);
    fwrite(tail, 1, rest, f);
    fclose(f);
    free(z);
    free(p);
    free(nz);
    free(tail);
}

/* ---- identity ---- */

static void test_identity(void)
{
    glow_config c = tiny_config();
    char text[512];
    latent_model_text(&c, text, sizeof text);
    CHECKF(strcmp(text, "glow-model image_size=8x8 channels=1 levels=2 steps=2 width=8 "
                        "coupling=affine permutation=invconv lu=0 edge_bias=1 learn_top=1 "
                        "y_condition=0 n_classes=0 weight_y=0.01 n_bits=8") == 0,
           "%s", text);
    /* FNV-1a 64 of that text (Python: docs/formats.md) */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = text; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    CHECK(latent_model_id(&c) == h);
    glow_config c2 = c;
    c2.n_bits = 5;
    CHECK(latent_model_id(&c2) != h);
    latent_info in;
    latent_info_of(&c, LATENT_EPS, &in);
    CHECK(in.levels == 2 && in.lat[0][0] == 2 && in.lat[0][1] == 4 && in.lat[1][0] == 8 &&
          in.lat[1][1] == 2 && latent_dims(&in) == 64);
    glow_error err;
    CHECK(latent_check_model(&in, &c, "x.safetensors", &err) == 0);
    CHECK(latent_check_model(&in, &c2, "y.safetensors", &err) == -1);
    CHECKF(strstr(err.msg, "but y.safetensors holds model") != NULL, "%s", err.msg);
}

/* ---- operations ---- */

static latent_out out_to(int k, FILE **f)
{
    *f = fopen(tmp_path(k), "wb");
    latent_out o = {*f, tmp_path(k)};
    return o;
}

static latent_reader *reader_of(int k)
{
    static char *files[8][1];
    files[k][0] = (char *)tmp_path(k);
    return latent_reader_open(1, files[k]);
}

static float two_vals(int i, int j) { return i == 0 ? (float)j : (float)(16 - j) * 0.5f; }
static float offset_vals(int i, int j) { return (float)((i * 7 + j * 3) % 5) - 2.0f; }
static float plus_d(int i, int j) { return offset_vals(i, j) + (j == 3 ? 1.5f : j == 9 ? -0.25f : 0); }

static void test_ops(void)
{
    latent_info in = small_info(LATENT_EPS);
    glow_error err;
    FILE *f;
    float v[64 * 16], t[64];
    int32_t lab[64];
    /* mix: endpoints are the inputs, the middle the mean; equal factors kept */
    float tp[2] = {0.5f, 0.5f};
    write_stream(tmp_path(0), &in, 2, 1, tp, two_vals, 256);
    latent_out o = out_to(1, &f);
    latent_reader *r = reader_of(0);
    CHECK(latent_op_mix(r, 5, 0, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 5);
    int ok = 1;
    for (int j = 0; j < 16; j++)
        ok &= v[j] == two_vals(0, j) && v[4 * 16 + j] == two_vals(1, j) &&
              fabsf(v[2 * 16 + j] - 0.5f * (two_vals(0, j) + two_vals(1, j))) < 1e-6f;
    CHECKF(ok && t[0] == 0.5f && t[4] == 0.5f, "mix endpoints and middle");
    CHECK(lab[0] == 0 && lab[2] == 0 && lab[3] == 10 && lab[4] == 10);
    /* slerp: endpoints exact, the middle's norm between the ends' */
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_mix(r, 3, 1, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 3);
    double n0 = 0, n1 = 0, nm = 0;
    ok = 1;
    for (int j = 0; j < 16; j++) {
        ok &= v[j] == two_vals(0, j) && v[32 + j] == two_vals(1, j);
        n0 += v[j] * v[j];
        n1 += v[32 + j] * v[32 + j];
        nm += v[16 + j] * v[16 + j];
    }
    CHECKF(ok, "slerp endpoints");
    CHECKF(sqrt(nm) > 0.99 * fmin(sqrt(n0), sqrt(n1)), "slerp keeps the norm: %g %g %g", n0, nm, n1);
    /* odd count */
    write_stream(tmp_path(0), &in, 3, 0, NULL, ramp, 256);
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_mix(r, 3, 0, &o, &err) == -1);
    CHECKF(strstr(err.msg, "an odd number of latents (3)") != NULL, "%s", err.msg);
    latent_reader_close(r);
    fclose(f);
    /* scale: one copy per factor, values unchanged */
    double sv[3] = {0, 0.5, 1};
    float t3[3] = {1, 2, 1};
    write_stream(tmp_path(0), &in, 3, 1, t3, ramp, 256);
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_scale(r, sv, 3, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 9);
    CHECK(t[0] == 0 && t[1] == 0.5f && t[2] == 1 && t[3] == 0 && t[4] == 1 && t[5] == 2);
    CHECK(v[4 * 16 + 3] == ramp(1, 3) && lab[4] == 10);
    /* select by label, with a limit */
    int32_t want[2] = {10, 20};
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_select(r, want, 2, 1, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 1 && lab[0] == 10 && t[0] == 2);
    /* attr on two streams with a known offset recovers it; mean; project */
    write_stream(tmp_path(2), &in, 6, 0, NULL, offset_vals, 4);
    write_stream(tmp_path(3), &in, 6, 0, NULL, plus_d, 4);
    o = out_to(4, &f);
    latent_reader *p = reader_of(3), *q = reader_of(2);
    CHECK(latent_op_attr(p, q, &o, &err) == 0);
    latent_reader_close(p);
    latent_reader_close(q);
    fclose(f);
    CHECK(read_all(tmp_path(4), 64, lab, t, v, NULL, &err) == 1);
    ok = 1;
    for (int j = 0; j < 16; j++)
        ok &= fabsf(v[j] - (j == 3 ? 1.5f : j == 9 ? -0.25f : 0)) < 1e-6f;
    CHECKF(ok && lab[0] == -999, "attr recovers the offset");
    latent_direction dir;
    CHECK(latent_direction_load(tmp_path(4), &dir, &err) == 0);
    /* add at strength 1 to the negatives gives the positives */
    o = out_to(5, &f);
    r = reader_of(2);
    double al[2] = {0, 1};
    CHECK(latent_op_add(r, &dir, al, 2, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(5), 64, lab, t, v, NULL, &err) == 12);
    ok = 1;
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 16; j++)
            ok &= v[(2 * i) * 16 + j] == offset_vals(i, j) &&
                  fabsf(v[(2 * i + 1) * 16 + j] - plus_d(i, j)) < 1e-6f;
    CHECKF(ok, "add DIR at 0 and 1");
    /* project: the positives' mean score is 1 more than the negatives' */
    FILE *txt = fopen(tmp_path(6), "w");
    r = reader_of(3);
    CHECK(latent_op_project(r, &dir, txt, &err) == 0);
    latent_reader_close(r);
    fclose(txt);
    txt = fopen(tmp_path(6), "r");
    char line[256];
    double sp = 0;
    CHECK(fgets(line, sizeof line, txt) && strcmp(line, "index\tscore\tlabel\n") == 0);
    while (fgets(line, sizeof line, txt))
        sp += strtod(strchr(line, '\t') + 1, NULL);
    fclose(txt);
    txt = fopen(tmp_path(6), "w");
    r = reader_of(2);
    CHECK(latent_op_project(r, &dir, txt, &err) == 0);
    latent_reader_close(r);
    fclose(txt);
    txt = fopen(tmp_path(6), "r");
    double sn = 0;
    CHECK(fgets(line, sizeof line, txt) != NULL);
    while (fgets(line, sizeof line, txt))
        sn += strtod(strchr(line, '\t') + 1, NULL);
    fclose(txt);
    CHECKF(fabs(sp / 6 - sn / 6 - 1) < 1e-5, "project: %g - %g", sp / 6, sn / 6);
    /* a direction of another layout does not combine */
    latent_info zin = small_info(LATENT_Z);
    write_stream(tmp_path(7), &zin, 2, 0, NULL, ramp, 4);
    o = out_to(5, &f);
    r = reader_of(7);
    CHECK(latent_op_add(r, &dir, al, 1, &o, &err) == -1);
    CHECKF(strstr(err.msg, "z latents of model") && strstr(err.msg, "is of eps latents"), "%s",
           err.msg);
    latent_reader_close(r);
    fclose(f);
    latent_direction_free(&dir);
    /* mean by label and attr by label: stream of labels 0, 10, 20, 0, 10, 20 */
    write_stream(tmp_path(0), &in, 6, 1, NULL, ramp, 4);
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_mean(r, 0, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 1);
    CHECK(fabsf(v[5] - (ramp(0, 5) + ramp(5, 5)) / 2) < 1e-4f && lab[0] == -999);
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_attr_label(r, 10, 1, 0, &o, &err) == 0);
    latent_reader_close(r);
    fclose(f);
    CHECK(read_all(tmp_path(1), 64, lab, t, v, NULL, &err) == 1);
    CHECKF(fabsf(v[2] - (ramp(1, 2) - ramp(0, 2))) < 1e-4f, "attr --label 10,0: %g", v[2]);
    o = out_to(1, &f);
    r = reader_of(0);
    CHECK(latent_op_attr_label(r, 99, 0, 0, &o, &err) == -1);
    CHECKF(strstr(err.msg, "no latents labelled 99") != NULL, "%s", err.msg);
    latent_reader_close(r);
    fclose(f);
}

int main(void)
{
    glow_error err;
    B = backend_get(DEVICE_CPU, 0, &err);
    if (!B) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    snprintf(tmpl, sizeof tmpl, "/tmp/test_latent.XXXXXX");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    int combo = 0;
    for (int cp = 0; cp < 2; cp++)
        for (int pm = 0; pm < 4; pm++)
            for (int yc = 0; yc < 2; yc++)
                for (int bits = 0; bits < 2; bits++, combo++) {
                    int levels = combo % 5 == 4 ? 1 : combo % 3 == 0 ? 3 : 2;
                    glow_config c = tiny_config(.image_w = combo % 7 == 3 ? 16 : 8,
                                                .channels = combo % 2 ? 3 : 1, .levels = levels,
                                                .width = 6);
                    c.coupling = cp ? COUPLING_ADDITIVE : COUPLING_AFFINE;
                    c.permutation = pm < 2 ? PERM_INVCONV : pm == 2 ? PERM_SHUFFLE : PERM_REVERSE;
                    c.lu = pm == 1;
                    c.edge_bias = combo % 3 != 1;
                    c.learn_top = combo % 4 != 2;
                    c.y_condition = yc;
                    c.n_classes = yc ? 3 : 0;
                    c.n_bits = bits ? 5 : 8;
                    test_codec(&c, (uint64_t)combo + 1);
                }
    test_records();
    test_identity();
    test_ops();
    for (int k = 0; k < 8; k++)
        unlink(tmp_path(k));
    rmdir(tmpl);
    backend_release(B);
    return check_summary();
}
