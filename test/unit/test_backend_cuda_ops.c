/* Every non-convolution op of the CUDA backend against the CPU backend on the same
 * random inputs: several shapes, strided rows, accumulate and alias variants.
 * Errors are max |gpu - cpu| / max |cpu| per output; the worst of each op is
 * printed. Without a usable GPU the test reports a skip (a failure under
 * GLOW_TEST_STRICT=1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"
#include "device/device.h"

#define SUITE "test_backend_cuda_ops"
#define TOL 1e-5

static backend *bc, *bg;
static uint64_t draw_ctr;

/* One array held on both backends with the same contents. */
typedef struct {
    void *c, *g;
    size_t bytes;
} twin;

static twin twin_from(const void *host, size_t bytes)
{
    twin t = {bc->alloc(bc, bytes), bg->alloc(bg, bytes), bytes};
    if (bytes) {
        bc->upload(bc, t.c, host, bytes);
        bg->upload(bg, t.g, host, bytes);
    }
    return t;
}

static void twin_free(twin *t)
{
    bc->free(bc, t->c);
    bg->free(bg, t->g);
}

/* n floats uniform in [lo, hi) */
static twin rand_f(size_t n, float lo, float hi)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    uint64_t base = draw_ctr;
    draw_ctr += n;
    for (size_t i = 0; i < n; i++)
        h[i] = lo + (hi - lo) * rng_uniform_at(1234, RNG_STREAM_TEST, base + i);
    twin t = twin_from(h, n * sizeof *h);
    free(h);
    return t;
}

#define F(t, side) ((float *)(t).side)

/* Worst error per op, printed at the end. */
typedef struct {
    char name[48];
    double worst;
} op_err;
static op_err errs[64];
static int nerrs;

static void record(const char *op, double e)
{
    for (int i = 0; i < nerrs; i++)
        if (strcmp(errs[i].name, op) == 0) {
            if (!(e <= errs[i].worst))
                errs[i].worst = e;
            return;
        }
    if (nerrs < 64) {
        snprintf(errs[nerrs].name, sizeof errs[nerrs].name, "%s", op);
        errs[nerrs++].worst = e;
    }
}

/* Compare n floats of a twin; tol relative to the CPU's largest magnitude. */
static void cmp_f(const char *op, const char *what, const twin *t, size_t n, double tol)
{
    float *a = malloc((n ? n : 1) * sizeof *a), *b = malloc((n ? n : 1) * sizeof *b);
    bc->download(bc, a, t->c, n * sizeof *a);
    bg->download(bg, b, t->g, n * sizeof *b);
    double maxabs = 0, maxd = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i]) > maxabs)
            maxabs = fabs(a[i]);
        double d = fabs((double)a[i] - b[i]);
        if (isnan(a[i]) != isnan(b[i]) || (!isnan(a[i]) && isinf(a[i]) && a[i] != b[i]))
            d = INFINITY;
        if (!(d <= maxd)) {
            maxd = d;
            at = i;
        }
    }
    double e = maxabs > 0 ? maxd / maxabs : maxd;
    record(op, e);
    CHECKF(e <= tol, "%s %s: error %.3g at %zu (cpu %.9g, gpu %.9g)", op, what, e, at,
           n ? (double)a[at] : 0.0, n ? (double)b[at] : 0.0);
    free(a);
    free(b);
}

/* ---- data movement ---- */

static void test_copy_cols(size_t rows, int cols, int pad)
{
    int ldd = cols + pad, lds = cols + 2 * pad;
    for (int acc = 0; acc < 2; acc++) {
        twin dst = rand_f(rows * ldd, -1, 1), src = rand_f(rows * lds, -1, 1);
        bc->copy_cols(bc, dst.c, ldd, src.c, lds, rows, cols, acc);
        bg->copy_cols(bg, dst.g, ldd, src.g, lds, rows, cols, acc);
        cmp_f("copy_cols", acc ? "accumulate" : "copy", &dst, rows * ldd, TOL);
        twin_free(&dst);
        twin_free(&src);
    }
}

static void test_flat(size_t n)
{
    twin x = rand_f(n, -2, 2), y = rand_f(n, -2, 2);
    bc->axpy(bc, y.c, x.c, n, 0.37f);
    bg->axpy(bg, y.g, x.g, n, 0.37f);
    cmp_f("axpy", "y", &y, n, TOL);
    bc->add_scalar(bc, y.c, n, -1.25f);
    bg->add_scalar(bg, y.g, n, -1.25f);
    cmp_f("add_scalar", "x", &y, n, TOL);
    bc->scale(bc, y.c, n, 3.5f);
    bg->scale(bg, y.g, n, 3.5f);
    cmp_f("scale", "x", &y, n, TOL);
    bc->ema(bc, x.c, y.c, n, 0.999f);
    bg->ema(bg, x.g, y.g, n, 0.999f);
    cmp_f("ema", "e", &x, n, TOL);
    double sc = bc->sumsq(bc, y.c, n), sg = bg->sumsq(bg, y.g, n);
    double e = sc > 0 ? fabs(sc - sg) / sc : fabs(sg);
    record("sumsq", e);
    CHECKF(e <= 1e-12, "sumsq n=%zu: cpu %.17g gpu %.17g", n, sc, sg);
    twin_free(&x);
    twin_free(&y);
}

static void test_squeeze(int n, int h, int w, int c, int pad)
{
    int big = c + pad, small = 4 * c + pad;
    size_t pix = (size_t)n * h * w;
    twin x = rand_f(pix * big, -1, 1), s = rand_f(pix / 4 * small, -1, 1);
    twin back = rand_f(pix * big, -1, 1);
    bc->squeeze(bc, x.c, big, s.c, small, n, h, w, c);
    bg->squeeze(bg, x.g, big, s.g, small, n, h, w, c);
    cmp_f("squeeze", "dst", &s, pix / 4 * small, 0);
    bc->unsqueeze(bc, s.c, small, back.c, big, n, h, w, c);
    bg->unsqueeze(bg, s.g, small, back.g, big, n, h, w, c);
    cmp_f("unsqueeze", "dst", &back, pix * big, 0);
    twin_free(&x);
    twin_free(&s);
    twin_free(&back);
}

static void test_gather(size_t rows, int c)
{
    uint32_t *p = malloc((size_t)c * sizeof *p);
    int32_t *p32 = malloc((size_t)c * sizeof *p32);
    for (int j = 0; j < c; j++)
        p[j] = (uint32_t)j;
    glow_rng r = rng_make(7, RNG_STREAM_TEST);
    rng_shuffle_u32(&r, p, (uint32_t)c);
    for (int j = 0; j < c; j++)
        p32[j] = (int32_t)p[j];
    twin perm = twin_from(p32, (size_t)c * sizeof *p32);
    twin x = rand_f(rows * c, -1, 1), y = rand_f(rows * c, -1, 1);
    bc->gather_channels(bc, x.c, y.c, rows, c, perm.c);
    bg->gather_channels(bg, x.g, y.g, rows, c, perm.g);
    cmp_f("gather_channels", "y", &y, rows * c, 0);
    twin_free(&perm);
    twin_free(&x);
    twin_free(&y);
    free(p);
    free(p32);
}

static void test_dequantize(int n, int c, int h, int w, int n_bits, int with_noise)
{
    size_t total = (size_t)n * c * h * w;
    uint8_t *u = malloc(total);
    for (size_t i = 0; i < total; i++)
        u[i] = (uint8_t)(rng_u32_at(99, RNG_STREAM_TEST, i) & 255);
    twin img = twin_from(u, total);
    twin noise = rand_f(total, 0, 1.0f / 32);
    twin x = rand_f(total, -1, 1);
    bc->dequantize(bc, img.c, with_noise ? noise.c : NULL, 42, 17, n_bits, n, c, h, w, x.c);
    bg->dequantize(bg, img.g, with_noise ? noise.g : NULL, 42, 17, n_bits, n, c, h, w, x.g);
    cmp_f("dequantize", with_noise ? "noise given" : "drawn noise", &x, total, 1e-7);
    twin_free(&img);
    twin_free(&noise);
    twin_free(&x);
    free(u);
}

/* ---- actnorm ---- */

static void test_actnorm(size_t rows, int c, int pad)
{
    int ld = c + pad;
    twin bias = rand_f(c, -0.5f, 0.5f), logs = rand_f(c, -0.3f, 0.3f);
    for (int relu = 0; relu < 2; relu++) {
        twin x = rand_f(rows * ld, -2, 2), y = rand_f(rows * ld, -1, 1);
        bc->actnorm_fwd(bc, x.c, ld, y.c, ld, rows, c, bias.c, logs.c, relu);
        bg->actnorm_fwd(bg, x.g, ld, y.g, ld, rows, c, bias.g, logs.g, relu);
        cmp_f("actnorm_fwd", relu ? "relu" : "plain", &y, rows * ld, TOL);
        if (!relu) {
            twin xi = rand_f(rows * c, -1, 1);
            bc->actnorm_inv(bc, y.c, ld, xi.c, c, rows, c, bias.c, logs.c);
            bg->actnorm_inv(bg, y.g, ld, xi.g, c, rows, c, bias.g, logs.g);
            cmp_f("actnorm_inv", "x", &xi, rows * c, TOL);
            twin_free(&xi);
        }
        for (int alias = 0; alias < 2; alias++) {
            twin dy = rand_f(rows * ld, -1, 1), dx = rand_f(rows * c, -1, 1);
            twin db = rand_f(c, -1, 1), dl = rand_f(c, -1, 1);
            void *dxc = alias ? dy.c : dx.c, *dxg = alias ? dy.g : dx.g;
            int lddx = alias ? ld : c;
            bc->actnorm_bwd(bc, dy.c, ld, y.c, ld, dxc, lddx, rows, c, logs.c, relu, db.c, dl.c);
            bg->actnorm_bwd(bg, dy.g, ld, y.g, ld, dxg, lddx, rows, c, logs.g, relu, db.g, dl.g);
            cmp_f("actnorm_bwd", "dx", alias ? &dy : &dx, alias ? rows * ld : rows * c, TOL);
            cmp_f("actnorm_bwd", "dbias", &db, c, TOL);
            cmp_f("actnorm_bwd", "dlogs", &dl, c, TOL);
            twin_free(&dy);
            twin_free(&dx);
            twin_free(&db);
            twin_free(&dl);
        }
        twin_free(&x);
        twin_free(&y);
    }
    twin x = rand_f(rows * ld, 1, 3), b2 = rand_f(c, 0, 1), l2 = rand_f(c, 0, 1);
    bc->actnorm_ddi(bc, x.c, ld, rows, c, b2.c, l2.c);
    bg->actnorm_ddi(bg, x.g, ld, rows, c, b2.g, l2.g);
    cmp_f("actnorm_ddi", "bias", &b2, c, TOL);
    cmp_f("actnorm_ddi", "logs", &l2, c, TOL);
    twin ld1 = rand_f(7, -1, 1);
    bc->sum_into(bc, logs.c, c, 64.0f, ld1.c, 7);
    bg->sum_into(bg, logs.g, c, 64.0f, ld1.g, 7);
    cmp_f("sum_into", "ld", &ld1, 7, TOL);
    twin_free(&x);
    twin_free(&b2);
    twin_free(&l2);
    twin_free(&ld1);
    twin_free(&bias);
    twin_free(&logs);
}

/* ---- coupling ---- */

static void test_coupling(int n, size_t rpi, int c2, int pad)
{
    size_t rows = (size_t)n * rpi;
    int ld = c2 + pad;
    for (int affine = 0; affine < 2; affine++) {
        size_t hn = rows * (size_t)c2 * (affine ? 2 : 1);
        twin x = rand_f(rows * ld, -2, 2), h = rand_f(hn, -3, 3), y = rand_f(rows * ld, -1, 1);
        twin logdet = rand_f((size_t)n, -5, 5);
        bc->coupling_fwd(bc, affine, x.c, ld, h.c, y.c, ld, n, rpi, c2, logdet.c);
        bg->coupling_fwd(bg, affine, x.g, ld, h.g, y.g, ld, n, rpi, c2, logdet.g);
        cmp_f("coupling_fwd", "y2", &y, rows * ld, TOL);
        cmp_f("coupling_fwd", "logdet", &logdet, (size_t)n, TOL);
        twin xi = rand_f(rows * c2, -1, 1);
        bc->coupling_inv(bc, affine, y.c, ld, h.c, xi.c, c2, rows, c2);
        bg->coupling_inv(bg, affine, y.g, ld, h.g, xi.g, c2, rows, c2);
        cmp_f("coupling_inv", "x2", &xi, rows * c2, TOL);
        for (int alias = 0; alias < 2; alias++) {
            twin dy = rand_f(rows * ld, -1, 1), dx = rand_f(rows * c2, -1, 1);
            twin dh = rand_f(hn, -1, 1);
            void *dxc = alias ? dy.c : dx.c, *dxg = alias ? dy.g : dx.g;
            int lddx = alias ? ld : c2;
            bc->coupling_bwd(bc, affine, dy.c, ld, y.c, ld, h.c, dxc, lddx, dh.c, rows, c2, -0.7f);
            bg->coupling_bwd(bg, affine, dy.g, ld, y.g, ld, h.g, dxg, lddx, dh.g, rows, c2, -0.7f);
            cmp_f("coupling_bwd", "dx2", alias ? &dy : &dx, alias ? rows * ld : rows * c2, TOL);
            cmp_f("coupling_bwd", "dh", &dh, hn, TOL);
            twin_free(&dy);
            twin_free(&dx);
            twin_free(&dh);
        }
        twin_free(&x);
        twin_free(&h);
        twin_free(&y);
        twin_free(&xi);
        twin_free(&logdet);
    }
}

/* ---- priors ---- */

static void test_gauss(int n, size_t rpi, int c, int pad)
{
    size_t rows = (size_t)n * rpi;
    int ld = c + pad;
    for (int lay = 0; lay < 2; lay++) {
        twin z = rand_f(rows * ld, -2, 2), h = rand_f(rows * 2 * c, -1, 1);
        twin logp = rand_f((size_t)n, -10, 10);
        bc->gauss_logp(bc, z.c, ld, h.c, (bk_prior_layout)lay, n, rpi, c, logp.c);
        bg->gauss_logp(bg, z.g, ld, h.g, (bk_prior_layout)lay, n, rpi, c, logp.g);
        cmp_f("gauss_logp", lay ? "halves" : "interleaved", &logp, (size_t)n, TOL);
        for (int acc = 0; acc < 2; acc++) {
            twin dz = rand_f(rows * ld, -1, 1), dh = rand_f(rows * 2 * c, -1, 1);
            bc->gauss_bwd(bc, z.c, ld, h.c, (bk_prior_layout)lay, rows, c, -0.25f, dz.c, ld, acc, dh.c);
            bg->gauss_bwd(bg, z.g, ld, h.g, (bk_prior_layout)lay, rows, c, -0.25f, dz.g, ld, acc, dh.g);
            cmp_f("gauss_bwd", acc ? "dz accumulate" : "dz", &dz, rows * ld, TOL);
            cmp_f("gauss_bwd", "dh", &dh, rows * 2 * c, TOL);
            twin_free(&dz);
            twin_free(&dh);
        }
        twin zs = rand_f(rows * ld, -1, 1);
        bc->gauss_sample(bc, h.c, (bk_prior_layout)lay, n, rpi, c, 0.7f, 5, RNG_STREAM_SAMPLE, 3, zs.c, ld);
        bg->gauss_sample(bg, h.g, (bk_prior_layout)lay, n, rpi, c, 0.7f, 5, RNG_STREAM_SAMPLE, 3, zs.g, ld);
        cmp_f("gauss_sample", "z", &zs, rows * ld, TOL);
        twin_free(&z);
        twin_free(&h);
        twin_free(&logp);
        twin_free(&zs);
    }
}

static twin rand_labels(int n, int k)
{
    int32_t *l = malloc((size_t)n * sizeof *l);
    for (int i = 0; i < n; i++)
        l[i] = (int32_t)(rng_u32_at(3, RNG_STREAM_TEST, (uint64_t)i) % (uint32_t)k);
    twin t = twin_from(l, (size_t)n * sizeof *l);
    free(l);
    return t;
}

static void test_class(int n, size_t rpi, int c, int k)
{
    size_t rows = (size_t)n * rpi;
    twin lab = rand_labels(n, k);
    twin w = rand_f((size_t)c * k, -1, 1), bias = rand_f(c, -0.5f, 0.5f), logs = rand_f(c, -0.3f, 0.3f);
    twin h = rand_f(rows * c, -1, 1);
    bc->yemb_fwd(bc, h.c, n, rpi, c, k, lab.c, w.c, bias.c, logs.c);
    bg->yemb_fwd(bg, h.g, n, rpi, c, k, lab.g, w.g, bias.g, logs.g);
    cmp_f("yemb_fwd", "h", &h, rows * c, TOL);
    twin dw = rand_f((size_t)c * k, -1, 1), db = rand_f(c, -1, 1), dl = rand_f(c, -1, 1);
    bc->yemb_bwd(bc, h.c, n, rpi, c, k, lab.c, w.c, bias.c, logs.c, dw.c, db.c, dl.c);
    bg->yemb_bwd(bg, h.g, n, rpi, c, k, lab.g, w.g, bias.g, logs.g, dw.g, db.g, dl.g);
    cmp_f("yemb_bwd", "dw", &dw, (size_t)c * k, TOL);
    cmp_f("yemb_bwd", "dbias", &db, c, TOL);
    cmp_f("yemb_bwd", "dlogs", &dl, c, TOL);

    twin hw = rand_f((size_t)k * c, -1, 1), hb = rand_f(k, -0.5f, 0.5f), hl = rand_f(k, -0.3f, 0.3f);
    twin z = rand_f(rows * c, -2, 2), ce = rand_f((size_t)n, -1, 1);
    bc->head_fwd(bc, z.c, n, rpi, c, k, lab.c, hw.c, hb.c, hl.c, ce.c);
    bg->head_fwd(bg, z.g, n, rpi, c, k, lab.g, hw.g, hb.g, hl.g, ce.g);
    cmp_f("head_fwd", "ce", &ce, (size_t)n, TOL);
    twin dz = rand_f(rows * c, -1, 1), gw = rand_f((size_t)k * c, -1, 1);
    twin gb = rand_f(k, -1, 1), gl = rand_f(k, -1, 1);
    bc->head_bwd(bc, z.c, n, rpi, c, k, lab.c, hw.c, hb.c, hl.c, 0.5f, dz.c, gw.c, gb.c, gl.c);
    bg->head_bwd(bg, z.g, n, rpi, c, k, lab.g, hw.g, hb.g, hl.g, 0.5f, dz.g, gw.g, gb.g, gl.g);
    cmp_f("head_bwd", "dz", &dz, rows * c, TOL);
    cmp_f("head_bwd", "dw", &gw, (size_t)k * c, TOL);
    cmp_f("head_bwd", "dbias", &gb, k, TOL);
    cmp_f("head_bwd", "dlogs", &gl, k, TOL);
    twin *all[] = {&lab, &w, &bias, &logs, &h, &dw, &db, &dl, &hw, &hb, &hl, &z, &ce, &dz, &gw, &gb, &gl};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        twin_free(all[i]);
}

/* ---- optimizers: several steps so the moments matter ---- */

static void test_optim(size_t n)
{
    for (int which = 0; which < 2; which++) {
        twin p = rand_f(n, -1, 1), m = rand_f(n, 0, 0), v = rand_f(n, 0, 0);
        for (long t = 1; t <= 5; t++) {
            twin g = rand_f(n, -1, 1);
            if (which == 0) {
                bc->adam(bc, p.c, g.c, m.c, v.c, n, 1e-3f, 0.9f, 0.999f, 1e-8f, t);
                bg->adam(bg, p.g, g.g, m.g, v.g, n, 1e-3f, 0.9f, 0.999f, 1e-8f, t);
            } else {
                bc->adamax(bc, p.c, g.c, m.c, v.c, n, 2e-3f, 0.9f, 0.999f, 1e-8f, t);
                bg->adamax(bg, p.g, g.g, m.g, v.g, n, 2e-3f, 0.9f, 0.999f, 1e-8f, t);
            }
            twin_free(&g);
        }
        const char *op = which ? "adamax" : "adam";
        cmp_f(op, "p", &p, n, TOL);
        cmp_f(op, "m", &m, n, TOL);
        cmp_f(op, which ? "u" : "v", &v, n, TOL);
        twin_free(&p);
        twin_free(&m);
        twin_free(&v);
    }
}

static int skip(const char *why)
{
    printf("%s: skipped: %s\n", SUITE, why);
    printf("%s: 0 passed, 0 failed\n", SUITE);
    const char *strict = getenv("GLOW_TEST_STRICT");
    return strict && strcmp(strict, "1") == 0 ? 1 : 0;
}

int main(void)
{
    glow_error err;
    glow_device dev;
    if (!glow_device_cuda_built())
        return skip("this build has no CUDA backend");
    if (glow_device_resolve("cuda", &dev, &err))
        return skip(err.msg);
    bc = backend_get(DEVICE_CPU, 0, &err);
    if (!bc) {
        fprintf(stderr, "%s: %s\n", SUITE, err.msg);
        return 1;
    }
    bg = backend_get(DEVICE_CUDA, dev.index, &err);
    if (!bg) {
        fprintf(stderr, "%s: %s\n", SUITE, err.msg);
        return 1;
    }

    test_copy_cols(1, 1, 0);
    test_copy_cols(333, 7, 3);
    test_copy_cols(20000, 48, 16);
    test_flat(1);
    test_flat(1000);
    test_flat(3000001);
    test_squeeze(2, 4, 6, 1, 0);
    test_squeeze(3, 8, 6, 5, 3);
    test_squeeze(16, 32, 32, 12, 4);
    test_gather(5, 4);
    test_gather(4096, 48);
    test_dequantize(2, 3, 5, 7, 5, 0);
    test_dequantize(2, 3, 5, 7, 5, 1);
    test_dequantize(16, 3, 32, 32, 8, 0);
    test_actnorm(1, 1, 0);
    test_actnorm(100, 6, 2);
    test_actnorm(16384, 96, 32);
    test_actnorm(300000, 3, 1);
    test_coupling(1, 1, 1, 0);
    test_coupling(3, 50, 6, 6);
    test_coupling(16, 1024, 24, 24);
    test_gauss(1, 1, 1, 0);
    test_gauss(3, 50, 6, 6);
    test_gauss(16, 256, 48, 48);
    test_class(1, 1, 1, 2);
    test_class(5, 16, 12, 10);
    test_class(32, 64, 48, 1000);
    test_optim(1);
    test_optim(100003);

    printf("worst relative error per op (GPU vs CPU):\n");
    for (int i = 0; i < nerrs; i++)
        printf("  %-16s %.3g\n", errs[i].name, errs[i].worst);
    backend_release(bg);
    backend_release(bc);
    return check_summary(SUITE);
}
