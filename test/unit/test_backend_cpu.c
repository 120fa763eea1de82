/* Every op of the CPU backend against a naive implementation written here, the
 * gradients by central finite differences, and bit-identical reductions for one
 * and two OpenMP threads. CPU backend memory is host memory, so the test reads it
 * directly. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/ew_math.h"
#include "base/rng.h"
#include "check.h"

#include "net_compare.h"
#include "device/device.h"

static backend *B;
static glow_rng R;

static float *rnd(size_t n, float scale)
{
    float *p = B->alloc(B, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        p[i] = (float)(scale * (2 * rng_next_double(&R) - 1));
    return p;
}

static float *zeros(size_t n) { return B->alloc(B, n * sizeof(float)); }

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m)
            m = fabs(a[i]);
    return m;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const double *b, size_t n)
{
    double m = 0, d = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(b[i]) > m)
            m = fabs(b[i]);
        if (fabs(a[i] - b[i]) > d || isnan(a[i]))
            d = isnan(a[i]) ? INFINITY : fabs(a[i] - b[i]);
    }
    return m > 0 ? d / m : d;
}

/* ---- naive convolution over [x, edge] in NHWC with PyTorch weights ---- */
static double xpad(const bk_conv *c, const float *x, int n, int yy, int xx, int i)
{
    int inside = yy >= 0 && yy < c->h && xx >= 0 && xx < c->w;
    if (i == c->cin) /* edge channel */
        return inside ? 0.0 : 1.0;
    return inside ? x[(((size_t)n * c->h + yy) * c->w + xx) * c->cin + i] : 0.0;
}

static void naive_conv(const bk_conv *c, const float *x, const float *w, double *y)
{
    const int ci = c->cin + c->edge, k = c->k, p = k / 2;
    for (int n = 0; n < c->n; n++)
        for (int yy = 0; yy < c->h; yy++)
            for (int xx = 0; xx < c->w; xx++)
                for (int o = 0; o < c->cout; o++) {
                    double s = 0;
                    for (int i = 0; i < ci; i++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                                s += w[(((size_t)o * ci + i) * k + ky) * k + kx] *
                                     xpad(c, x, n, yy + ky - p, xx + kx - p, i);
                    y[(((size_t)n * c->h + yy) * c->w + xx) * c->cout + o] = s;
                }
}

static void test_conv_shape(int n, int h, int wd, int cin, int cout, int k, int edge)
{
    bk_conv c = {n, h, wd, cin, cout, k, edge};
    const int ci = c.cin + edge;
    size_t nx = (size_t)c.n * c.h * c.w * c.cin, ny = (size_t)c.n * c.h * c.w * c.cout;
    size_t nw = (size_t)c.cout * ci * k * k;
    float *x = rnd(nx, 1), *w = rnd(nw, 1), *y = zeros(ny), *dy = rnd(ny, 1);
    double *ref = calloc(ny > nw ? (ny > nx ? ny : nx) : (nw > nx ? nw : nx), sizeof *ref);
    B->conv_fwd(B, &c, x, w, y);
    naive_conv(&c, x, w, ref);
    CHECKF(rel_err(y, ref, ny) < 1e-5, "conv_fwd k=%d edge=%d err %g", k, edge, rel_err(y, ref, ny));

    /* the fused conv + actnorm (+ReLU) equals the two ops, bit for bit */
    for (int relu = 0; relu < 2; relu++) {
        float *bias = rnd(c.cout, 0.5f), *logs = rnd(c.cout, 0.3f), *ya = zeros(ny), *yb = zeros(ny);
        B->conv_fwd_affine(B, &c, x, w, bias, logs, relu, ya);
        B->actnorm_fwd(B, y, c.cout, yb, c.cout, ny / c.cout, c.cout, bias, logs, relu);
        CHECKF(memcmp(ya, yb, ny * sizeof(float)) == 0, "conv_fwd_affine k=%d edge=%d relu=%d", k,
               edge, relu);
        B->free(B, bias);
        B->free(B, logs);
        B->free(B, ya);
        B->free(B, yb);
    }

    /* data gradient: d/dx of sum(dy * conv(x)) */
    float *dx = zeros(nx);
    B->conv_bwd_data(B, &c, dy, w, dx, 0);
    const int p = k / 2;
    memset(ref, 0, nx * sizeof *ref);
    for (int n = 0; n < c.n; n++)
        for (int yy = 0; yy < c.h; yy++)
            for (int xx = 0; xx < c.w; xx++)
                for (int o = 0; o < c.cout; o++)
                    for (int i = 0; i < c.cin; i++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int sy = yy + ky - p, sx = xx + kx - p;
                                if (sy < 0 || sy >= c.h || sx < 0 || sx >= c.w)
                                    continue;
                                ref[(((size_t)n * c.h + sy) * c.w + sx) * c.cin + i] +=
                                    (double)w[(((size_t)o * ci + i) * k + ky) * k + kx] *
                                    dy[(((size_t)n * c.h + yy) * c.w + xx) * c.cout + o];
                            }
    CHECKF(rel_err(dx, ref, nx) < 1e-5, "conv_bwd_data k=%d edge=%d", k, edge);
    /* accumulate adds */
    float *dx2 = zeros(nx);
    for (size_t i = 0; i < nx; i++)
        dx2[i] = 1.0f;
    B->conv_bwd_data(B, &c, dy, w, dx2, 1);
    double e = 0;
    for (size_t i = 0; i < nx; i++)
        e = fmax(e, fabs(dx2[i] - 1.0f - dx[i]));
    CHECKF(e < 1e-5, "conv_bwd_data accumulate");

    /* filter gradient, edge taps included */
    float *dw = zeros(nw);
    B->conv_bwd_filter(B, &c, x, dy, dw);
    memset(ref, 0, nw * sizeof *ref);
    for (int n = 0; n < c.n; n++)
        for (int yy = 0; yy < c.h; yy++)
            for (int xx = 0; xx < c.w; xx++)
                for (int o = 0; o < c.cout; o++)
                    for (int i = 0; i < ci; i++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                                ref[(((size_t)o * ci + i) * k + ky) * k + kx] +=
                                    dy[(((size_t)n * c.h + yy) * c.w + xx) * c.cout + o] *
                                    xpad(&c, x, n, yy + ky - p, xx + kx - p, i);
    CHECKF(rel_err(dw, ref, nw) < 1e-5, "conv_bwd_filter k=%d edge=%d err %g", k, edge,
           rel_err(dw, ref, nw));
    /* one more image: the last chunk of images holds fewer than the others */
    bk_conv c3 = c;
    c3.n = n + 1;
    size_t nx3 = nx / n * (n + 1), ny3 = ny / n * (n + 1);
    float *x3 = rnd(nx3, 1), *dy3 = rnd(ny3, 1);
    B->conv_bwd_filter(B, &c3, x3, dy3, dw);
    memset(ref, 0, nw * sizeof *ref);
    for (int n = 0; n < c3.n; n++)
        for (int yy = 0; yy < c.h; yy++)
            for (int xx = 0; xx < c.w; xx++)
                for (int o = 0; o < c.cout; o++)
                    for (int i = 0; i < ci; i++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++)
                                ref[(((size_t)o * ci + i) * k + ky) * k + kx] +=
                                    dy3[(((size_t)n * c.h + yy) * c.w + xx) * c.cout + o] *
                                    xpad(&c3, x3, n, yy + ky - p, xx + kx - p, i);
    CHECKF(rel_err(dw, ref, nw) < 1e-5, "conv_bwd_filter n=%d k=%d edge=%d", n + 1, k, edge);
    float *xs[] = {x, w, y, dy, dx, dx2, dw, x3, dy3};
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++)
        B->free(B, xs[i]);
    free(ref);
}

static void test_conv(int n, int h, int wd, int k, int edge)
{
    test_conv_shape(n, h, wd, 3, 4, k, edge);
    if (k == 3) {
        /* cpu/cpu_conv.c computes 3x3 convolutions with few outputs or inputs in
         * its tap form, others directly: one shape of each kind */
        test_conv_shape(n, h, wd, 12, 32, k, edge); /* direct */
        test_conv_shape(n, h, wd, 3, 32, k, edge);  /* few inputs: the data gradient */
        test_conv_shape(n, h, wd, 3, 256, k, edge); /* few inputs: the forward pass too */
        test_conv_shape(n, h, wd, 40, 4, k, edge);  /* few outputs */
    }
}

/* Every operation of conv c gives the same bits with 1, 2 and 3 threads. */
static void check_conv_threads(const bk_conv *c)
{
    const size_t hw = (size_t)c->h * c->w, nx = (size_t)c->n * hw * c->cin, ny = (size_t)c->n * hw * c->cout;
    const size_t nw = (size_t)c->cout * (c->cin + (c->edge ? 1 : 0)) * c->k * c->k;
    float *x = rnd(nx, 1), *dy = rnd(ny, 1), *w = rnd(nw, 0.1f), *dx0 = rnd(nx, 1);
    float *out[3][3];
    int saved = omp_get_max_threads();
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(t + 1);
        out[t][0] = zeros(ny), out[t][1] = zeros(nx), out[t][2] = zeros(nw);
        B->conv_fwd(B, c, x, w, out[t][0]);
        memcpy(out[t][1], dx0, nx * sizeof(float)); /* the accumulating data gradient's start */
        B->conv_bwd_data(B, c, dy, w, out[t][1], 1);
        B->conv_bwd_filter(B, c, x, dy, out[t][2]);
    }
    omp_set_num_threads(saved);
    const size_t len[3] = {ny, nx, nw};
    static const char *op[3] = {"conv_fwd", "conv_bwd_data", "conv_bwd_filter"};
    for (int t = 1; t < 3; t++)
        for (int k = 0; k < 3; k++)
            CHECKF(memcmp(out[0][k], out[t][k], len[k] * sizeof(float)) == 0,
                   "%s n=%d %dx%d %d -> %d k%d: bits differ with 1 and %d threads", op[k], c->n, c->h, c->w,
                   c->cin, c->cout, c->k, t + 1);
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 3; k++)
            B->free(B, out[t][k]);
    float *ps[] = {x, dy, w, dx0};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        B->free(B, ps[i]);
}

/* Wide convolutions (cpu/cpu_conv.c): a 1x1 convolution between wide sides goes
 * through sgemm (the gemm form: image chunks, and the filter gradient in blocks
 * of 64 output channels, the last one short here for 130); a 3x3 filter gradient
 * over a weight of CONV_WIDE_W values or more in chunks of more images than the
 * other operations of the shape; the tap forms (their products by sgemm), with
 * the edge channel's map and filter gradient (by blocks of 64 output channels);
 * weights of 64K values or more, reordered with all threads. Against the naive
 * convolution, and the same bits for any thread count, also for a single chunk
 * (one image: no parallel region). */
static void test_conv_wide(void)
{
    static const bk_conv shapes[] = {
        {13, 16, 16, 256, 256, 1, 0}, /* chunks of 2 images, the last one short */
        {3, 8, 8, 144, 130, 1, 0},
        {1, 4, 4, 128, 192, 1, 0},
        {5, 8, 8, 128, 96, 1, 0},     /* one side narrow: the convolution */
        {6, 8, 8, 64, 128, 3, 1},     /* a wide 3x3 filter gradient */
        {5, 8, 8, 256, 12, 3, 1},     /* few outputs: the forward pass and the filter gradient */
        {5, 8, 8, 3, 256, 3, 1},      /* few inputs: the forward pass and the data gradient */
        {3, 8, 8, 48, 160, 3, 1},     /* direct, a weight of 69K values (160 x 48 x 9) */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const bk_conv *c = &shapes[i];
        test_conv_shape(c->n, c->h, c->w, c->cin, c->cout, c->k, c->edge);
        check_conv_threads(c);
    }
}

/* ---- finite differences: a scalar function of the inputs ---- */
typedef double (*loss_fn)(void *ctx);

/* Compares grad (analytic) with central differences of f in v at up to `count`
 * indices spread over the array. */
static void check_fd(const char *what, loss_fn f, void *ctx, float *v, const float *grad,
                     size_t n, size_t count, double eps)
{
    double worst = 0, scale = max_abs(grad, n);
    if (scale < 1e-3)
        scale = 1e-3;
    size_t step = n > count ? n / count : 1;
    for (size_t i = 0; i < n; i += step) {
        float keep = v[i];
        v[i] = keep + (float)eps;
        double lp = f(ctx);
        v[i] = keep - (float)eps;
        double lm = f(ctx);
        v[i] = keep;
        double fd = (lp - lm) / (2 * eps);
        double e = fabs(fd - grad[i]) / scale;
        if (e > worst)
            worst = e;
    }
    CHECKF(worst < 2e-3, "%s: finite-difference error %g", what, worst);
}

/* actnorm (+relu) */
typedef struct {
    size_t rows;
    int c, relu;
    float *x, *y, *b, *l, *wt;
} an_ctx;

static double an_loss(void *p)
{
    an_ctx *a = p;
    B->actnorm_fwd(B, a->x, a->c, a->y, a->c, a->rows, a->c, a->b, a->l, a->relu);
    double s = 0;
    for (size_t i = 0; i < a->rows * a->c; i++)
        s += (double)a->wt[i] * a->y[i];
    return s;
}

static void test_actnorm(int relu)
{
    an_ctx a = {37, 5, relu, NULL, NULL, NULL, NULL, NULL};
    size_t n = a.rows * a.c;
    a.x = rnd(n, 1);
    a.y = zeros(n);
    a.b = rnd(a.c, 0.3f);
    a.l = rnd(a.c, 0.2f);
    a.wt = rnd(n, 1);
    /* keep ReLU inputs away from the kink, where differences say nothing */
    for (size_t r = 0; r < a.rows; r++)
        for (int j = 0; j < a.c; j++) {
            float v = a.x[r * a.c + j] + a.b[j];
            if (fabsf(v) < 0.05f)
                a.x[r * a.c + j] += v < 0 ? -0.1f : 0.1f;
        }
    an_loss(&a);
    double ref_max = 0;
    int ok = 1;
    for (size_t r = 0; r < a.rows; r++)
        for (int j = 0; j < a.c; j++) {
            double v = (a.x[r * a.c + j] + a.b[j]) * exp(3.0 * a.l[j]);
            if (relu && v < 0)
                v = 0;
            ok &= fabs(v - a.y[r * a.c + j]) < 1e-5;
            ref_max = fmax(ref_max, fabs(v));
        }
    CHECKF(ok, "actnorm_fwd relu=%d", relu);
    if (!relu) {
        float *xi = zeros(n);
        B->actnorm_inv(B, a.y, a.c, xi, a.c, a.rows, a.c, a.b, a.l);
        double e = 0;
        for (size_t i = 0; i < n; i++)
            e = fmax(e, fabs(xi[i] - a.x[i]));
        CHECKF(e < 1e-5, "actnorm_inv");
        B->free(B, xi);
    }
    float *dx = zeros(n), *db = zeros(a.c), *dl = zeros(a.c);
    B->actnorm_bwd(B, a.wt, a.c, a.y, a.c, dx, a.c, a.rows, a.c, a.l, relu, db, dl);
    check_fd(relu ? "actnorm+relu dx" : "actnorm dx", an_loss, &a, a.x, dx, n, 60, 1e-3);
    check_fd("actnorm dbias", an_loss, &a, a.b, db, a.c, 10, 1e-3);
    check_fd("actnorm dlogs", an_loss, &a, a.l, dl, a.c, 10, 1e-3);
    /* ddi: after init the output has mean 0 and unit scale per channel */
    B->actnorm_ddi(B, a.x, a.c, a.rows, a.c, a.b, a.l);
    B->actnorm_fwd(B, a.x, a.c, a.y, a.c, a.rows, a.c, a.b, a.l, 0);
    int good = 1;
    for (int j = 0; j < a.c; j++) {
        double s = 0, s2 = 0;
        for (size_t r = 0; r < a.rows; r++) {
            s += a.y[r * a.c + j];
            s2 += (double)a.y[r * a.c + j] * a.y[r * a.c + j];
        }
        good &= fabs(s / a.rows) < 1e-5 && fabs(s2 / a.rows - 1) < 1e-4;
    }
    CHECK(good);
    float *ps[] = {a.x, a.y, a.b, a.l, a.wt, dx, db, dl};
    for (size_t i = 0; i < 8; i++)
        B->free(B, ps[i]);
}

/* coupling */
typedef struct {
    int affine, n, c2;
    size_t rpi;
    float *x2, *h, *y2, *ld, *wt;
    float g_ld;
} cp_ctx;

static double cp_loss(void *p)
{
    cp_ctx *a = p;
    const size_t rows = a->n * a->rpi;
    memset(a->ld, 0, a->n * sizeof(float));
    /* x2 strided in a buffer of 2*c2 columns to exercise ld */
    B->coupling_fwd(B, a->affine, a->x2, 2 * a->c2, a->h, a->y2, 3 * a->c2, a->n, a->rpi, a->c2,
                    a->ld);
    double s = 0;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < a->c2; j++)
            s += (double)a->wt[r * a->c2 + j] * a->y2[r * 3 * a->c2 + j];
    for (int i = 0; i < a->n; i++)
        s += a->g_ld * a->ld[i];
    return s;
}

static void test_coupling(int affine)
{
    cp_ctx a = {affine, 3, 4, 11, NULL, NULL, NULL, NULL, NULL, 0.7f};
    const size_t rows = a.n * a.rpi, hc = affine ? 2 * a.c2 : a.c2;
    a.x2 = rnd(rows * 2 * a.c2, 1);
    a.h = rnd(rows * hc, 1.5f);
    a.y2 = zeros(rows * 3 * a.c2);
    a.ld = zeros(a.n);
    a.wt = rnd(rows * a.c2, 1);
    cp_loss(&a);
    /* reference logdet */
    int ok = 1;
    for (int i = 0; i < a.n && affine; i++) {
        double s = 0;
        for (size_t r = i * a.rpi; r < (i + 1) * a.rpi; r++)
            for (int j = 0; j < a.c2; j++)
                s += log(1.0 / (1.0 + exp(-(a.h[r * hc + 2 * j + 1] + 2.0))));
        ok &= fabs(s - a.ld[i]) < 1e-4 * fmax(1, fabs(s));
    }
    CHECKF(ok, "coupling logdet");
    float *xi = zeros(rows * a.c2);
    B->coupling_inv(B, affine, a.y2, 3 * a.c2, a.h, xi, a.c2, rows, a.c2);
    double e = 0;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < a.c2; j++)
            e = fmax(e, fabs(xi[r * a.c2 + j] - a.x2[r * 2 * a.c2 + j]));
    CHECKF(e < 1e-5, "coupling_inv affine=%d", affine);
    float *dx = zeros(rows * 2 * a.c2), *dh = zeros(rows * hc);
    B->coupling_bwd(B, affine, a.wt, a.c2, a.y2, 3 * a.c2, a.h, dx, 2 * a.c2, dh, rows, a.c2, a.g_ld);
    check_fd(affine ? "affine coupling dx" : "additive coupling dx", cp_loss, &a, a.x2, dx,
             rows * 2 * a.c2, 80, 1e-3);
    check_fd(affine ? "affine coupling dh" : "additive coupling dh", cp_loss, &a, a.h, dh,
             rows * hc, 80, 1e-3);
    float *ps[] = {a.x2, a.h, a.y2, a.ld, a.wt, xi, dx, dh};
    for (size_t i = 0; i < 8; i++)
        B->free(B, ps[i]);
}

/* Gaussian prior */
typedef struct {
    bk_prior_layout lay;
    int n, c;
    size_t rpi;
    float *z, *h, *lp;
} gp_ctx;

static double gp_loss(void *p)
{
    gp_ctx *a = p;
    memset(a->lp, 0, a->n * sizeof(float));
    B->gauss_logp(B, a->z, a->c + 1, a->h, a->lay, a->n, a->rpi, a->c, a->lp);
    double s = 0;
    for (int i = 0; i < a->n; i++)
        s += (i + 1) * 0.5 * a->lp[i];
    return s;
}

static void test_gauss(bk_prior_layout lay)
{
    gp_ctx a = {lay, 2, 3, 7, NULL, NULL, NULL};
    const size_t rows = a.n * a.rpi;
    a.z = rnd(rows * (a.c + 1), 1.5f);
    a.h = rnd(rows * 2 * a.c, 0.7f);
    a.lp = zeros(a.n);
    gp_loss(&a);
    int ok = 1;
    for (int i = 0; i < a.n; i++) {
        double s = 0;
        for (size_t r = i * a.rpi; r < (i + 1) * a.rpi; r++)
            for (int j = 0; j < a.c; j++) {
                double mean = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j] : a.h[r * 2 * a.c + j];
                double logs = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j + 1]
                                                    : a.h[r * 2 * a.c + a.c + j];
                double d = a.z[r * (a.c + 1) + j] - mean;
                s += -0.5 * (log(2 * M_PI) + 2 * logs + d * d * exp(-2 * logs));
            }
        ok &= fabs(s - a.lp[i]) < 1e-4 * fmax(1, fabs(s));
    }
    CHECKF(ok, "gauss_logp layout %d", (int)lay);
    /* gradient: image i has weight (i+1)/2; use per-image calls with g */
    float *dz = zeros(rows * (a.c + 1)), *dh = zeros(rows * 2 * a.c);
    for (int i = 0; i < a.n; i++)
        B->gauss_bwd(B, a.z + i * a.rpi * (a.c + 1), a.c + 1, a.h + i * a.rpi * 2 * a.c, lay, a.rpi,
                     a.c, (i + 1) * 0.5f, dz + i * a.rpi * (a.c + 1), a.c + 1, 0,
                     dh + i * a.rpi * 2 * a.c);
    check_fd("gauss dz", gp_loss, &a, a.z, dz, rows * (a.c + 1), 60, 1e-3);
    check_fd("gauss dh", gp_loss, &a, a.h, dh, rows * 2 * a.c, 60, 1e-3);
    /* sampling follows the documented formula and index */
    float *zs = zeros(rows * a.c);
    B->gauss_sample(B, a.h, lay, a.n, a.rpi, a.c, 0.8f, 9, 77, 5, zs, a.c);
    ok = 1;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < a.c; j++) {
            size_t img = r / a.rpi, pr = r % a.rpi;
            double mean = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j] : a.h[r * 2 * a.c + j];
            double logs = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j + 1] : a.h[r * 2 * a.c + a.c + j];
            double eps = rng_normal_at(9, 77, ((5 + img) * a.rpi + pr) * a.c + j);
            ok &= fabs(zs[r * a.c + j] - (mean + exp(logs) * eps * 0.8)) < 1e-5;
        }
    CHECKF(ok, "gauss_sample");
    /* standardising by the prior and back; from the sampler's own normals at its
     * temperature, gauss_from_eps gives the sampler's z bit for bit */
    float *eps = zeros(rows * (a.c + 2)), *zb = zeros(rows * (a.c + 1));
    B->gauss_to_eps(B, a.z, a.c + 1, a.h, lay, rows, a.c, eps, a.c + 2);
    B->gauss_from_eps(B, eps, a.c + 2, a.h, lay, rows, a.c, 1.0f, zb, a.c + 1);
    int ok_eps = 1, ok_back = 1, ok_same = 1;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < a.c; j++) {
            double mean = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j] : a.h[r * 2 * a.c + j];
            double logs = lay == BK_INTERLEAVED ? a.h[r * 2 * a.c + 2 * j + 1] : a.h[r * 2 * a.c + a.c + j];
            double want = (a.z[r * (a.c + 1) + j] - mean) / exp(logs);
            ok_eps &= fabs(eps[r * (a.c + 2) + j] - want) < 1e-5 * fmax(1, fabs(want));
            ok_back &= fabs(zb[r * (a.c + 1) + j] - a.z[r * (a.c + 1) + j]) < 1e-5;
            size_t img = r / a.rpi, pr = r % a.rpi;
            eps[r * (a.c + 2) + j] = rng_normal_at(9, 77, ((5 + img) * a.rpi + pr) * a.c + j);
        }
    B->gauss_from_eps(B, eps, a.c + 2, a.h, lay, rows, a.c, 0.8f, zb, a.c + 1);
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < a.c; j++)
            ok_same &= memcmp(&zb[r * (a.c + 1) + j], &zs[r * a.c + j], sizeof(float)) == 0;
    CHECKF(ok_eps, "gauss_to_eps layout %d", (int)lay);
    CHECKF(ok_back, "gauss_from_eps(gauss_to_eps(z)) = z, layout %d", (int)lay);
    CHECKF(ok_same, "gauss_from_eps of the sampler's normals = gauss_sample, layout %d", (int)lay);
    float *ps[] = {a.z, a.h, a.lp, dz, dh, zs, eps, zb};
    for (size_t i = 0; i < 8; i++)
        B->free(B, ps[i]);
}

/* class embedding and class head */
typedef struct {
    int n, c, k;
    size_t rpi;
    int32_t *lab;
    float *h, *w, *b, *l, *wt, *z, *ce;
    int head;
} cl_ctx;

static double cl_loss(void *p)
{
    cl_ctx *a = p;
    const size_t rows = a->n * a->rpi;
    double s = 0;
    if (a->head) {
        B->head_fwd(B, a->z, a->n, a->rpi, a->c, a->k, a->lab, a->w, a->b, a->l, a->ce);
        for (int i = 0; i < a->n; i++)
            s += 0.3 * a->ce[i];
        return s;
    }
    memset(a->h, 0, rows * a->c * sizeof(float));
    B->yemb_fwd(B, a->h, a->n, a->rpi, a->c, a->k, a->lab, a->w, a->b, a->l);
    for (size_t i = 0; i < rows * a->c; i++)
        s += (double)a->wt[i] * a->h[i];
    return s;
}

static void test_class(void)
{
    int32_t lab[3] = {2, 0, 2};
    cl_ctx a = {3, 4, 3, 5, lab, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0};
    const size_t rows = a.n * a.rpi;
    a.h = zeros(rows * a.c);
    a.w = rnd((size_t)a.c * a.k, 1);
    a.b = rnd(a.c, 1);
    a.l = rnd(a.c, 0.3f);
    a.wt = rnd(rows * a.c, 1);
    float *dw = zeros((size_t)a.c * a.k), *db = zeros(a.c), *dl = zeros(a.c);
    B->yemb_bwd(B, a.wt, a.n, a.rpi, a.c, a.k, lab, a.w, a.b, a.l, dw, db, dl);
    check_fd("y_emb weight", cl_loss, &a, a.w, dw, (size_t)a.c * a.k, 12, 1e-3);
    check_fd("y_emb bias", cl_loss, &a, a.b, db, a.c, 4, 1e-3);
    check_fd("y_emb logs", cl_loss, &a, a.l, dl, a.c, 4, 1e-3);
    B->free(B, a.w);
    B->free(B, a.b);
    B->free(B, a.l);
    /* head: k classes over c channels */
    a.head = 1;
    a.w = rnd((size_t)a.k * a.c, 1);
    a.b = rnd(a.k, 1);
    a.l = rnd(a.k, 0.3f);
    a.z = rnd(rows * a.c, 2);
    a.ce = zeros(a.n);
    cl_loss(&a);
    /* reference cross-entropy of image 0 */
    double pooled[4] = {0}, logit[3], mx = -1e30, se = 0;
    for (size_t r = 0; r < a.rpi; r++)
        for (int j = 0; j < a.c; j++)
            pooled[j] += a.z[r * a.c + j] / (double)a.rpi;
    for (int q = 0; q < a.k; q++) {
        double s = a.b[q];
        for (int j = 0; j < a.c; j++)
            s += a.w[q * a.c + j] * pooled[j];
        logit[q] = s * exp(3.0 * a.l[q]);
        mx = fmax(mx, logit[q]);
    }
    for (int q = 0; q < a.k; q++)
        se += exp(logit[q] - mx);
    CHECK_NEAR(a.ce[0], log(se) + mx - logit[lab[0]], 1e-5);
    float *dz = zeros(rows * a.c), *hw = zeros((size_t)a.k * a.c), *hb = zeros(a.k), *hl = zeros(a.k);
    B->head_bwd(B, a.z, a.n, a.rpi, a.c, a.k, lab, a.w, a.b, a.l, 0.3f, dz, hw, hb, hl);
    check_fd("head z", cl_loss, &a, a.z, dz, rows * a.c, 30, 1e-3);
    check_fd("head weight", cl_loss, &a, a.w, hw, (size_t)a.k * a.c, 12, 1e-3);
    check_fd("head bias", cl_loss, &a, a.b, hb, a.k, 3, 1e-3);
    check_fd("head logs", cl_loss, &a, a.l, hl, a.k, 3, 1e-3);
    float *ps[] = {a.h, a.w, a.b, a.l, a.wt, a.z, a.ce, dw, db, dl, dz, hw, hb, hl};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        B->free(B, ps[i]);
}

static void test_movement(void)
{
    const int n = 2, h = 4, w = 6, c = 3;
    const size_t rows = (size_t)n * h * w;
    float *x = rnd(rows * 5, 1), *s = zeros(rows * c), *u = zeros(rows * 5);
    B->squeeze(B, x, 5, s, 4 * c, n, h, w, c);
    int ok = 1;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < h / 2; i++)
                for (int j = 0; j < w / 2; j++)
                    for (int dy = 0; dy < 2; dy++)
                        for (int dx = 0; dx < 2; dx++)
                            ok &= s[(((size_t)b * (h / 2) + i) * (w / 2) + j) * 4 * c + ch * 4 + dy * 2 + dx] ==
                                  x[(((size_t)b * h + 2 * i + dy) * w + 2 * j + dx) * 5 + ch];
    CHECKF(ok, "squeeze");
    B->unsqueeze(B, s, 4 * c, u, 5, n, h, w, c);
    ok = 1;
    for (size_t r = 0; r < rows; r++)
        for (int ch = 0; ch < c; ch++)
            ok &= u[r * 5 + ch] == x[r * 5 + ch];
    CHECKF(ok, "unsqueeze inverts squeeze");
    /* copy_cols, accumulate, gather, axpy, scale */
    float *d = zeros(rows * 2);
    B->copy_cols(B, d, 2, x + 1, 5, rows, 2, 0);
    B->copy_cols(B, d, 2, x + 1, 5, rows, 2, 1);
    ok = 1;
    for (size_t r = 0; r < rows; r++)
        ok &= d[r * 2] == 2 * x[r * 5 + 1] && d[r * 2 + 1] == 2 * x[r * 5 + 2];
    CHECKF(ok, "copy_cols");
    int32_t *perm = B->alloc(B, 5 * sizeof *perm);
    int32_t pv[5] = {3, 0, 4, 1, 2};
    B->upload(B, perm, pv, sizeof pv);
    float *g = zeros(rows * 5);
    B->gather_channels(B, x, g, rows, 5, perm);
    ok = 1;
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < 5; j++)
            ok &= g[r * 5 + j] == x[r * 5 + pv[j]];
    CHECKF(ok, "gather_channels");
    float *a = rnd(10, 1), *a0 = zeros(10);
    memcpy(a0, a, 10 * sizeof(float));
    B->axpy(B, a, x, 10, 2.0f);
    B->scale(B, a, 10, 0.5f);
    B->add_scalar(B, a, 10, 1.0f);
    ok = 1;
    for (int i = 0; i < 10; i++)
        ok &= fabs(a[i] - ((a0[i] + 2 * x[i]) * 0.5f + 1.0f)) < 1e-6;
    CHECKF(ok, "axpy/scale/add_scalar");
    float v3[3] = {1, 2, 3}, ld[2] = {1, 1};
    B->sum_into(B, v3, 3, 2.0f, ld, 2);
    CHECK(ld[0] == 13 && ld[1] == 13);
    /* dequantize: given noise and RNG noise, 5 bits */
    uint8_t img[2 * 3 * 2 * 2];
    for (int i = 0; i < 24; i++)
        img[i] = (uint8_t)(i * 11);
    float *noise = rnd(24, 0.01f), *xq = zeros(24);
    B->dequantize(B, img, noise, 0, 0, 5, 2, 3, 2, 2, xq);
    ok = 1;
    for (int b = 0; b < 2; b++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 4; p++) {
                int idx = (b * 3 + ch) * 4 + p;
                ok &= fabs(xq[(b * 4 + p) * 3 + ch] - ((img[idx] >> 3) / 32.0 - 0.5 + noise[idx])) < 1e-6;
            }
    CHECKF(ok, "dequantize (noise given)");
    B->dequantize(B, img, NULL, 42, 10, 8, 2, 3, 2, 2, xq);
    ok = 1;
    for (int b = 0; b < 2; b++)
        for (int ch = 0; ch < 3; ch++)
            for (int p = 0; p < 4; p++) {
                int j = ch * 4 + p, idx = b * 12 + j;
                double u = rng_uniform_at(42, RNG_STREAM_DEQUANT, (10 + b) * 12 + j) / 256.0;
                ok &= fabs(xq[(b * 4 + p) * 3 + ch] - (img[idx] / 256.0 - 0.5 + u)) < 1e-6;
            }
    CHECKF(ok, "dequantize (RNG noise)");
    float *ps[] = {x, s, u, d, g, a, a0, noise, xq};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        B->free(B, ps[i]);
    B->free(B, perm);
}

static void test_optim_ops(void)
{
    const size_t n = 5000;
    float *p = rnd(n, 1), *g = rnd(n, 1), *m = zeros(n), *v = zeros(n);
    float *p2 = zeros(n);
    memcpy(p2, p, n * sizeof(float));
    B->adam(B, p, g, m, v, n, 0.01f, 0.9f, 0.999f, 1e-8f, 1);
    int ok = 1;
    for (size_t i = 0; i < n; i++) /* first Adam step moves by lr * sign(g) */
        ok &= fabs(p[i] - (p2[i] - 0.01 * g[i] / (fabs(g[i]) + 1e-8))) < 1e-6;
    CHECKF(ok, "adam first step");
    double s = B->sumsq(B, g, n), r = 0;
    for (size_t i = 0; i < n; i++)
        r += (double)g[i] * g[i];
    CHECK_NEAR(s, r, 1e-9 * r);
    float e0 = p2[7];
    B->ema(B, p2, p, n, 0.75f);
    CHECK_NEAR(p2[7], 0.75 * e0 + 0.25 * p[7], 1e-6);
    float *ps[] = {p, g, m, v, p2};
    for (size_t i = 0; i < 5; i++)
        B->free(B, ps[i]);
}

/* The reductions give the same bits with one and two threads. */
static void test_determinism(void)
{
    bk_conv c = {9, 8, 8, 16, 24, 3, 1};
    size_t nx = (size_t)c.n * 64 * c.cin, ny = (size_t)c.n * 64 * c.cout, nw = (size_t)c.cout * 17 * 9;
    float *x = rnd(nx, 1), *dy = rnd(ny, 1), *dw1 = zeros(nw), *dw2 = zeros(nw);
    float *y = rnd(ny, 1), *dx = zeros(ny), *db1 = zeros(c.cout), *dl1 = zeros(c.cout);
    float *db2 = zeros(c.cout), *dl2 = zeros(c.cout), *l = rnd(c.cout, 0.1f);
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    B->conv_bwd_filter(B, &c, x, dy, dw1);
    B->actnorm_bwd(B, dy, c.cout, y, c.cout, dx, c.cout, ny / c.cout, c.cout, l, 1, db1, dl1);
    double s1 = B->sumsq(B, x, nx);
    omp_set_num_threads(2);
    B->conv_bwd_filter(B, &c, x, dy, dw2);
    B->actnorm_bwd(B, dy, c.cout, y, c.cout, dx, c.cout, ny / c.cout, c.cout, l, 1, db2, dl2);
    double s2 = B->sumsq(B, x, nx);
    omp_set_num_threads(saved);
    CHECK(memcmp(dw1, dw2, nw * sizeof(float)) == 0);
    CHECK(memcmp(db1, db2, c.cout * sizeof(float)) == 0 && memcmp(dl1, dl2, c.cout * sizeof(float)) == 0);
    CHECK(s1 == s2);
    float *ps[] = {x, dy, dw1, dw2, y, dx, db1, dl1, db2, dl2, l};
    for (size_t i = 0; i < sizeof ps / sizeof *ps; i++)
        B->free(B, ps[i]);
}

/* The coupling network's fused passes (cpu_net.c) give the bits of its layers run
 * one by one: the same chunks; the actnorms' sums are cut into the same pieces
 * when a chunk's rows are a multiple of CPU_RED_ROWS (else they may differ in the
 * last bits). Shapes: the tap forms (conv1 2 -> 64, conv3 64 -> 4); 4x4 images in
 * 16-row chunks; conv1 of conv3's shape (one after the other); a 256-wide conv2,
 * a product by sgemm whose filter gradient goes by blocks of output channels
 * (after the loop); no edge channel. */
static void test_net(void)
{
    bk_pair p = {B, B, 20261201, 0};
    const net_tols same = {0, 0, 0}, sums = {0, 0, 1e-6};
    net_compare(&p, 4, 16, 16, 2, 64, 4, 1, same);
    net_compare(&p, 5, 16, 16, 2, 64, 4, 1, same);
    net_compare(&p, 6, 4, 4, 4, 32, 8, 1, sums);
    net_compare(&p, 2, 4, 4, 8, 8, 8, 1, same);
    net_compare(&p, 8, 8, 8, 4, 256, 8, 1, same);
    net_compare(&p, 3, 8, 8, 3, 16, 3, 0, same);
}

int main(void)
{
    glow_error err;
    B = backend_get(DEVICE_CPU, 0, &err);
    if (!B) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    R = rng_make(1234, RNG_STREAM_TEST);
    /* small images (one chunk of images) and 16x16 ones (several, the last short) */
    for (int k = 1; k <= 3; k += 2)
        for (int e = 0; e <= (k == 3); e++) {
            test_conv(2, 5, 6, k, e);
            test_conv(4, 16, 16, k, e);
        }
    test_conv_wide();
    test_actnorm(0);
    test_actnorm(1);
    test_coupling(1);
    test_coupling(0);
    test_gauss(BK_INTERLEAVED);
    test_gauss(BK_HALVES);
    test_class();
    test_movement();
    test_optim_ops();
    test_determinism();
    test_net();
    CHECK(backend_get(DEVICE_CUDA, 0, &err) == NULL && strstr(err.msg, "CUDA"));
    backend_release(B);
    return check_summary();
}
