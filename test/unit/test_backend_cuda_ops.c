/* Every non-convolution op of the CUDA backend against the CPU backend on the same
 * random inputs (the twins of backend_compare.h): several shapes, strided rows,
 * accumulate and alias variants. Errors are max |gpu - cpu| / max |cpu| per
 * output; the worst of each op is printed. Without a usable GPU the test reports
 * a skip (a failure under GLOW_TEST_STRICT=1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#include "backend_compare.h"
#include "device/device.h"

#define TOL 1e-5

static bk_pair P;
static backend *cpu, *gpu; /* P.ref and P.dut */

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

/* n floats uniform in [lo, hi), the same on both backends */
static bk_twin rand_f(size_t n, float lo, float hi)
{
    return bk_twin_rand(&P, n, lo, hi);
}

static void twin_free(bk_twin *t)
{
    bk_twin_free(&P, t);
}

/* Compare n floats of a twin (bk_compare: relative to the CPU's largest
 * magnitude) and keep the op's worst error. */
static void cmp_f(const char *op, const char *what, const bk_twin *t, size_t n, double tol)
{
    char label[96];
    snprintf(label, sizeof label, "%s %s", op, what);
    record(op, bk_compare(&P, t, n, tol, label));
}

/* ---- data movement ---- */

static void test_copy_cols(size_t rows, int cols, int pad)
{
    int ldd = cols + pad, lds = cols + 2 * pad;
    for (int acc = 0; acc < 2; acc++) {
        bk_twin dst = rand_f(rows * ldd, -1, 1), src = rand_f(rows * lds, -1, 1);
        cpu->copy_cols(cpu, dst.r, ldd, src.r, lds, rows, cols, acc);
        gpu->copy_cols(gpu, dst.d, ldd, src.d, lds, rows, cols, acc);
        cmp_f("copy_cols", acc ? "accumulate" : "copy", &dst, rows * ldd, TOL);
        twin_free(&dst);
        twin_free(&src);
    }
}

static void test_flat(size_t n)
{
    bk_twin x = rand_f(n, -2, 2), y = rand_f(n, -2, 2);
    /* on the twins as drawn: after the ops below they differ in the last bit (the GPU
     * contracts a * b + c into one fma, nvcc --fmad=true) */
    double sc = cpu->sumsq(cpu, y.r, n), sg = gpu->sumsq(gpu, y.d, n);
    cpu->axpy(cpu, y.r, x.r, n, 0.37f);
    gpu->axpy(gpu, y.d, x.d, n, 0.37f);
    cmp_f("axpy", "y", &y, n, TOL);
    cpu->add_scalar(cpu, y.r, n, -1.25f);
    gpu->add_scalar(gpu, y.d, n, -1.25f);
    cmp_f("add_scalar", "x", &y, n, TOL);
    cpu->scale(cpu, y.r, n, 3.5f);
    gpu->scale(gpu, y.d, n, 3.5f);
    cmp_f("scale", "x", &y, n, TOL);
    cpu->ema(cpu, x.r, y.r, n, 0.999f);
    gpu->ema(gpu, x.d, y.d, n, 0.999f);
    cmp_f("ema", "e", &x, n, TOL);
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
    bk_twin x = rand_f(pix * big, -1, 1), s = rand_f(pix / 4 * small, -1, 1);
    bk_twin back = rand_f(pix * big, -1, 1);
    cpu->squeeze(cpu, x.r, big, s.r, small, n, h, w, c);
    gpu->squeeze(gpu, x.d, big, s.d, small, n, h, w, c);
    cmp_f("squeeze", "dst", &s, pix / 4 * small, 0);
    cpu->unsqueeze(cpu, s.r, small, back.r, big, n, h, w, c);
    gpu->unsqueeze(gpu, s.d, small, back.d, big, n, h, w, c);
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
    bk_twin perm = bk_twin_from(&P, p32, (size_t)c * sizeof *p32);
    bk_twin x = rand_f(rows * c, -1, 1), y = rand_f(rows * c, -1, 1);
    cpu->gather_channels(cpu, x.r, y.r, rows, c, perm.r);
    gpu->gather_channels(gpu, x.d, y.d, rows, c, perm.d);
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
    bk_twin img = bk_twin_from(&P, u, total);
    bk_twin noise = rand_f(total, 0, 1.0f / 32);
    bk_twin x = rand_f(total, -1, 1);
    cpu->dequantize(cpu, img.r, with_noise ? noise.r : NULL, 42, 17, n_bits, n, c, h, w, x.r);
    gpu->dequantize(gpu, img.d, with_noise ? noise.d : NULL, 42, 17, n_bits, n, c, h, w, x.d);
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
    bk_twin bias = rand_f(c, -0.5f, 0.5f), logs = rand_f(c, -0.3f, 0.3f);
    for (int relu = 0; relu < 2; relu++) {
        bk_twin x = rand_f(rows * ld, -2, 2), y = rand_f(rows * ld, -1, 1);
        cpu->actnorm_fwd(cpu, x.r, ld, y.r, ld, rows, c, bias.r, logs.r, relu);
        gpu->actnorm_fwd(gpu, x.d, ld, y.d, ld, rows, c, bias.d, logs.d, relu);
        cmp_f("actnorm_fwd", relu ? "relu" : "plain", &y, rows * ld, TOL);
        if (!relu) {
            bk_twin xi = rand_f(rows * c, -1, 1);
            cpu->actnorm_inv(cpu, y.r, ld, xi.r, c, rows, c, bias.r, logs.r);
            gpu->actnorm_inv(gpu, y.d, ld, xi.d, c, rows, c, bias.d, logs.d);
            cmp_f("actnorm_inv", "x", &xi, rows * c, TOL);
            twin_free(&xi);
        }
        for (int alias = 0; alias < 2; alias++) {
            bk_twin dy = rand_f(rows * ld, -1, 1), dx = rand_f(rows * c, -1, 1);
            bk_twin db = rand_f(c, -1, 1), dl = rand_f(c, -1, 1);
            void *dxc = alias ? dy.r : dx.r, *dxg = alias ? dy.d : dx.d;
            int lddx = alias ? ld : c;
            cpu->actnorm_bwd(cpu, dy.r, ld, y.r, ld, dxc, lddx, rows, c, logs.r, relu, db.r, dl.r);
            gpu->actnorm_bwd(gpu, dy.d, ld, y.d, ld, dxg, lddx, rows, c, logs.d, relu, db.d, dl.d);
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
    bk_twin x = rand_f(rows * ld, 1, 3), b2 = rand_f(c, 0, 1), l2 = rand_f(c, 0, 1);
    cpu->actnorm_ddi(cpu, x.r, ld, rows, c, b2.r, l2.r);
    gpu->actnorm_ddi(gpu, x.d, ld, rows, c, b2.d, l2.d);
    cmp_f("actnorm_ddi", "bias", &b2, c, TOL);
    cmp_f("actnorm_ddi", "logs", &l2, c, TOL);
    bk_twin ld1 = rand_f(7, -1, 1);
    cpu->sum_into(cpu, logs.r, c, 64.0f, ld1.r, 7);
    gpu->sum_into(gpu, logs.d, c, 64.0f, ld1.d, 7);
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
        bk_twin x = rand_f(rows * ld, -2, 2), h = rand_f(hn, -3, 3), y = rand_f(rows * ld, -1, 1);
        bk_twin logdet = rand_f((size_t)n, -5, 5);
        cpu->coupling_fwd(cpu, affine, x.r, ld, h.r, y.r, ld, n, rpi, c2, logdet.r);
        gpu->coupling_fwd(gpu, affine, x.d, ld, h.d, y.d, ld, n, rpi, c2, logdet.d);
        cmp_f("coupling_fwd", "y2", &y, rows * ld, TOL);
        cmp_f("coupling_fwd", "logdet", &logdet, (size_t)n, TOL);
        bk_twin xi = rand_f(rows * c2, -1, 1);
        cpu->coupling_inv(cpu, affine, y.r, ld, h.r, xi.r, c2, rows, c2);
        gpu->coupling_inv(gpu, affine, y.d, ld, h.d, xi.d, c2, rows, c2);
        cmp_f("coupling_inv", "x2", &xi, rows * c2, TOL);
        for (int alias = 0; alias < 2; alias++) {
            bk_twin dy = rand_f(rows * ld, -1, 1), dx = rand_f(rows * c2, -1, 1);
            bk_twin dh = rand_f(hn, -1, 1);
            void *dxc = alias ? dy.r : dx.r, *dxg = alias ? dy.d : dx.d;
            int lddx = alias ? ld : c2;
            cpu->coupling_bwd(cpu, affine, dy.r, ld, y.r, ld, h.r, dxc, lddx, dh.r, rows, c2, -0.7f);
            gpu->coupling_bwd(gpu, affine, dy.d, ld, y.d, ld, h.d, dxg, lddx, dh.d, rows, c2, -0.7f);
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
        bk_twin z = rand_f(rows * ld, -2, 2), h = rand_f(rows * 2 * c, -1, 1);
        bk_twin logp = rand_f((size_t)n, -10, 10);
        cpu->gauss_logp(cpu, z.r, ld, h.r, (bk_prior_layout)lay, n, rpi, c, logp.r);
        gpu->gauss_logp(gpu, z.d, ld, h.d, (bk_prior_layout)lay, n, rpi, c, logp.d);
        cmp_f("gauss_logp", lay ? "halves" : "interleaved", &logp, (size_t)n, TOL);
        for (int acc = 0; acc < 2; acc++) {
            bk_twin dz = rand_f(rows * ld, -1, 1), dh = rand_f(rows * 2 * c, -1, 1);
            cpu->gauss_bwd(cpu, z.r, ld, h.r, (bk_prior_layout)lay, rows, c, -0.25f, dz.r, ld, acc, dh.r);
            gpu->gauss_bwd(gpu, z.d, ld, h.d, (bk_prior_layout)lay, rows, c, -0.25f, dz.d, ld, acc, dh.d);
            cmp_f("gauss_bwd", acc ? "dz accumulate" : "dz", &dz, rows * ld, TOL);
            cmp_f("gauss_bwd", "dh", &dh, rows * 2 * c, TOL);
            twin_free(&dz);
            twin_free(&dh);
        }
        bk_twin zs = rand_f(rows * ld, -1, 1);
        cpu->gauss_sample(cpu, h.r, (bk_prior_layout)lay, n, rpi, c, 0.7f, 5, RNG_STREAM_SAMPLE, 3, zs.r, ld);
        gpu->gauss_sample(gpu, h.d, (bk_prior_layout)lay, n, rpi, c, 0.7f, 5, RNG_STREAM_SAMPLE, 3, zs.d, ld);
        cmp_f("gauss_sample", "z", &zs, rows * ld, TOL);
        bk_twin eps = rand_f(rows * ld, -1, 1), zb = rand_f(rows * ld, -1, 1);
        cpu->gauss_to_eps(cpu, z.r, ld, h.r, (bk_prior_layout)lay, rows, c, eps.r, ld);
        gpu->gauss_to_eps(gpu, z.d, ld, h.d, (bk_prior_layout)lay, rows, c, eps.d, ld);
        cmp_f("gauss_to_eps", "eps", &eps, rows * ld, TOL);
        cpu->gauss_from_eps(cpu, eps.r, ld, h.r, (bk_prior_layout)lay, rows, c, 0.7f, zb.r, ld);
        gpu->gauss_from_eps(gpu, eps.d, ld, h.d, (bk_prior_layout)lay, rows, c, 0.7f, zb.d, ld);
        cmp_f("gauss_from_eps", "z", &zb, rows * ld, TOL);
        twin_free(&eps);
        twin_free(&zb);
        /* on the GPU alone: the sampler's normals (a zero prior, T = 1) turned back
         * by gauss_from_eps at T give the sampler's z at T, bit for bit */
        {
            float *h0 = gpu->alloc(gpu, rows * 2 * c * sizeof(float));
            float *e = gpu->alloc(gpu, rows * c * sizeof(float));
            float *z1 = gpu->alloc(gpu, rows * c * sizeof(float));
            float *z2 = gpu->alloc(gpu, rows * c * sizeof(float));
            gpu->gauss_sample(gpu, h0, (bk_prior_layout)lay, n, rpi, c, 1.0f, 5, RNG_STREAM_SAMPLE, 3, e, c);
            gpu->gauss_from_eps(gpu, e, c, h.d, (bk_prior_layout)lay, rows, c, 0.7f, z1, c);
            gpu->gauss_sample(gpu, h.d, (bk_prior_layout)lay, n, rpi, c, 0.7f, 5, RNG_STREAM_SAMPLE, 3, z2, c);
            float *a = malloc(rows * c * sizeof(float)), *bb = malloc(rows * c * sizeof(float));
            gpu->download(gpu, a, z1, rows * c * sizeof(float));
            gpu->download(gpu, bb, z2, rows * c * sizeof(float));
            CHECKF(memcmp(a, bb, rows * c * sizeof(float)) == 0,
                   "gauss_from_eps of the sampler's normals differs from gauss_sample (layout %d)", lay);
            free(a);
            free(bb);
            gpu->free(gpu, h0);
            gpu->free(gpu, e);
            gpu->free(gpu, z1);
            gpu->free(gpu, z2);
        }
        twin_free(&z);
        twin_free(&h);
        twin_free(&logp);
        twin_free(&zs);
    }
}

static bk_twin rand_labels(int n, int k)
{
    int32_t *l = malloc((size_t)n * sizeof *l);
    for (int i = 0; i < n; i++)
        l[i] = (int32_t)(rng_u32_at(3, RNG_STREAM_TEST, (uint64_t)i) % (uint32_t)k);
    bk_twin t = bk_twin_from(&P, l, (size_t)n * sizeof *l);
    free(l);
    return t;
}

static void test_class(int n, size_t rpi, int c, int k)
{
    size_t rows = (size_t)n * rpi;
    bk_twin lab = rand_labels(n, k);
    bk_twin w = rand_f((size_t)c * k, -1, 1), bias = rand_f(c, -0.5f, 0.5f), logs = rand_f(c, -0.3f, 0.3f);
    bk_twin h = rand_f(rows * c, -1, 1);
    cpu->yemb_fwd(cpu, h.r, n, rpi, c, k, lab.r, w.r, bias.r, logs.r);
    gpu->yemb_fwd(gpu, h.d, n, rpi, c, k, lab.d, w.d, bias.d, logs.d);
    cmp_f("yemb_fwd", "h", &h, rows * c, TOL);
    bk_twin dw = rand_f((size_t)c * k, -1, 1), db = rand_f(c, -1, 1), dl = rand_f(c, -1, 1);
    cpu->yemb_bwd(cpu, h.r, n, rpi, c, k, lab.r, w.r, bias.r, logs.r, dw.r, db.r, dl.r);
    gpu->yemb_bwd(gpu, h.d, n, rpi, c, k, lab.d, w.d, bias.d, logs.d, dw.d, db.d, dl.d);
    cmp_f("yemb_bwd", "dw", &dw, (size_t)c * k, TOL);
    cmp_f("yemb_bwd", "dbias", &db, c, TOL);
    cmp_f("yemb_bwd", "dlogs", &dl, c, TOL);

    bk_twin hw = rand_f((size_t)k * c, -1, 1), hb = rand_f(k, -0.5f, 0.5f), hl = rand_f(k, -0.3f, 0.3f);
    bk_twin z = rand_f(rows * c, -2, 2), ce = rand_f((size_t)n, -1, 1);
    cpu->head_fwd(cpu, z.r, n, rpi, c, k, lab.r, hw.r, hb.r, hl.r, ce.r);
    gpu->head_fwd(gpu, z.d, n, rpi, c, k, lab.d, hw.d, hb.d, hl.d, ce.d);
    cmp_f("head_fwd", "ce", &ce, (size_t)n, TOL);
    bk_twin dz = rand_f(rows * c, -1, 1), gw = rand_f((size_t)k * c, -1, 1);
    bk_twin gb = rand_f(k, -1, 1), gl = rand_f(k, -1, 1);
    cpu->head_bwd(cpu, z.r, n, rpi, c, k, lab.r, hw.r, hb.r, hl.r, 0.5f, dz.r, gw.r, gb.r, gl.r);
    gpu->head_bwd(gpu, z.d, n, rpi, c, k, lab.d, hw.d, hb.d, hl.d, 0.5f, dz.d, gw.d, gb.d, gl.d);
    cmp_f("head_bwd", "dz", &dz, rows * c, TOL);
    cmp_f("head_bwd", "dw", &gw, (size_t)k * c, TOL);
    cmp_f("head_bwd", "dbias", &gb, k, TOL);
    cmp_f("head_bwd", "dlogs", &gl, k, TOL);
    bk_twin *all[] = {&lab, &w, &bias, &logs, &h, &dw, &db, &dl, &hw, &hb, &hl, &z, &ce, &dz, &gw, &gb, &gl};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        twin_free(all[i]);
}

/* ---- optimizers: several steps so the moments matter ---- */

static void test_optim(size_t n)
{
    for (int which = 0; which < 2; which++) {
        bk_twin p = rand_f(n, -1, 1), m = rand_f(n, 0, 0), v = rand_f(n, 0, 0);
        for (long t = 1; t <= 5; t++) {
            bk_twin g = rand_f(n, -1, 1);
            if (which == 0) {
                cpu->adam(cpu, p.r, g.r, m.r, v.r, n, 1e-3f, 0.9f, 0.999f, 1e-8f, t);
                gpu->adam(gpu, p.d, g.d, m.d, v.d, n, 1e-3f, 0.9f, 0.999f, 1e-8f, t);
            } else {
                cpu->adamax(cpu, p.r, g.r, m.r, v.r, n, 2e-3f, 0.9f, 0.999f, 1e-8f, t);
                gpu->adamax(gpu, p.d, g.d, m.d, v.d, n, 2e-3f, 0.9f, 0.999f, 1e-8f, t);
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

int main(void)
{
    glow_error err;
    glow_device dev;
    if (!glow_device_cuda_built())
        return check_skip("this build has no CUDA backend");
    if (glow_device_resolve("cuda", &dev, &err))
        return check_skip(err.msg);
    cpu = P.ref = backend_get(DEVICE_CPU, 0, &err);
    if (!cpu) {
        fprintf(stderr, "%s: %s\n", CHECK_SUITE, err.msg);
        return 1;
    }
    gpu = P.dut = backend_get(DEVICE_CUDA, dev.index, &err);
    if (!gpu) {
        fprintf(stderr, "%s: %s\n", CHECK_SUITE, err.msg);
        return 1;
    }
    P.seed = 1234;

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
    backend_release(gpu);
    backend_release(cpu);
    return check_summary();
}
