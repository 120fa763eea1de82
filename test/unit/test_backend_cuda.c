/* The CUDA backend's memory functions, convolutions and precisions against the CPU
 * backend on random inputs (the other ops: test_backend_cuda_ops.c). Without a
 * usable GPU the test reports a skip, which is a failure under GLOW_TEST_STRICT=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#include "backend_compare.h"
#include "device/device.h"

static bk_pair P;

/* ---- memory ---- */

static void test_memory(void)
{
    backend *g = P.dut;
    const size_t sizes[] = {1, 13, 4096, 1000003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t n = sizes[s];
        unsigned char *h = malloc(n), *back = malloc(n);
        void *a = g->alloc(g, n), *b = g->alloc(g, n);
        g->download(g, back, a, n);
        int zero = 1;
        for (size_t i = 0; i < n; i++)
            zero &= back[i] == 0;
        CHECKF(zero, "alloc(%zu) is not zero-filled", n);
        for (size_t i = 0; i < n; i++)
            h[i] = (unsigned char)(i * 131 + 7);
        g->upload(g, a, h, n);
        g->copy(g, b, a, n);
        memset(back, 0, n);
        g->download(g, back, b, n);
        CHECKF(memcmp(back, h, n) == 0, "upload/copy/download of %zu bytes", n);
        g->free(g, a);
        g->free(g, b);
        free(h);
        free(back);
    }
    const size_t nf = 300007;
    float *f = g->alloc(g, nf * sizeof *f), *hf = malloc(nf * sizeof *hf);
    const float vals[] = {0.0f, -0.0f, 1.5f, -3.25e-7f};
    for (int k = 0; k < 4; k++) {
        g->fill(g, f + 3, vals[k], nf - 5);
        g->download(g, hf, f, nf * sizeof *hf);
        int ok = 1;
        for (size_t i = 3; i < nf - 2; i++)
            ok &= memcmp(&hf[i], &vals[k], sizeof(float)) == 0;
        CHECKF(ok, "fill(%g)", (double)vals[k]);
    }
    g->fill(g, f, 2.0f, 0);
    g->free(g, f);
    g->free(g, NULL);
    free(hf);
}

static void test_precision_api(void)
{
    glow_error err = {""};
    CHECK(P.ref->set_precision(P.ref, PRECISION_FP32, &err) == 0);
    CHECK(P.ref->set_precision(P.ref, PRECISION_BF16, &err) == -1 && strstr(err.msg, "bf16"));
    for (int p = PRECISION_BF16; p >= PRECISION_FP32; p--)
        CHECK(P.dut->set_precision(P.dut, (glow_precision)p, &err) == 0);
}

/* A failing CUDA call exits 1 with "prog: cuda: CALL failed: REASON": run in a
 * child process (a fresh one, as CUDA does not survive fork). */
static int oom_child(void)
{
    glow_set_progname("test_backend_cuda");
    glow_device dev;
    glow_error err;
    if (glow_device_resolve("cuda", &dev, &err) != 0)
        return 3;
    backend *g = backend_get(DEVICE_CUDA, dev.index, &err);
    if (!g)
        return 3;
    g->alloc(g, (size_t)1 << 52);
    return 0;
}

static void test_failure_report(void)
{
    char self[2048], cmd[4500], msg[2048] = "";
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        CHECK(len > 0);
        return;
    }
    self[len] = '\0';
    char tmp[] = "/tmp/glow-cuda-oom-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        CHECK(fd >= 0);
        return;
    }
    close(fd);
    snprintf(cmd, sizeof cmd, "'%s' --oom-child 2>'%s'", self, tmp);
    int st = system(cmd);
    FILE *f = fopen(tmp, "r");
    if (f) {
        size_t n = fread(msg, 1, sizeof msg - 1, f);
        msg[n] = '\0';
        fclose(f);
    }
    unlink(tmp);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 1, "out-of-memory child: status %d", st);
    CHECKF(strstr(msg, "test_backend_cuda: cuda: cudaMalloc") && strstr(msg, "failed"),
           "out-of-memory message: %s", msg);
}

/* ---- convolutions ---- */

typedef struct {
    double fwd, bwd;
} tols;

static void conv_case(const bk_conv *d, tols t, const char *prec)
{
    const int e = d->edge ? 1 : 0, kk = d->k * d->k;
    const size_t rows = (size_t)d->n * d->h * d->w;
    const size_t nx = rows * d->cin, ny = rows * d->cout;
    const size_t nw = (size_t)d->cout * (d->cin + e) * kk;
    char what[160];
    snprintf(what, sizeof what, "%s n=%d h=%d w=%d cin=%d cout=%d k=%d edge=%d", prec, d->n, d->h,
             d->w, d->cin, d->cout, d->k, d->edge);
    char buf[220];
    backend *r = P.ref, *g = P.dut;

    bk_twin x = bk_twin_rand(&P, nx, -1, 1), w = bk_twin_rand(&P, nw, -0.5f, 0.5f);
    bk_twin dy = bk_twin_rand(&P, ny, -1, 1), y = bk_twin_rand(&P, ny, -9, 9);
    bk_twin bias = bk_twin_rand(&P, (size_t)d->cout, -0.5f, 0.5f);
    bk_twin logs = bk_twin_rand(&P, (size_t)d->cout, -0.3f, 0.3f);

    r->conv_fwd(r, d, x.r, w.r, y.r);
    g->conv_fwd(g, d, x.d, w.d, y.d);
    snprintf(buf, sizeof buf, "conv_fwd %s", what);
    bk_compare(&P, &y, ny, t.fwd, buf);

    for (int relu = 0; relu < 2; relu++) {
        r->conv_fwd_affine(r, d, x.r, w.r, bias.r, logs.r, relu, y.r);
        g->conv_fwd_affine(g, d, x.d, w.d, bias.d, logs.d, relu, y.d);
        snprintf(buf, sizeof buf, "conv_fwd_affine relu=%d %s", relu, what);
        bk_compare(&P, &y, ny, t.fwd, buf);
    }

    for (int acc = 0; acc < 2; acc++) {
        bk_twin dx = bk_twin_rand(&P, nx, -2, 2);
        r->conv_bwd_data(r, d, dy.r, w.r, dx.r, acc);
        g->conv_bwd_data(g, d, dy.d, w.d, dx.d, acc);
        snprintf(buf, sizeof buf, "conv_bwd_data accumulate=%d %s", acc, what);
        bk_compare(&P, &dx, nx, t.bwd, buf);
        bk_twin_free(&P, &dx);
    }

    bk_twin dw = bk_twin_rand(&P, nw, -3, 3);
    r->conv_bwd_filter(r, d, x.r, dy.r, dw.r);
    g->conv_bwd_filter(g, d, x.d, dy.d, dw.d);
    snprintf(buf, sizeof buf, "conv_bwd_filter %s", what);
    bk_compare(&P, &dw, nw, t.bwd, buf);

    /* the same inputs give the same bits: deterministic algorithms only */
    float *dw2 = g->alloc(g, nw * sizeof(float)), *y2 = g->alloc(g, ny * sizeof(float));
    g->conv_bwd_filter(g, d, x.d, dy.d, dw2);
    g->conv_fwd_affine(g, d, x.d, w.d, bias.d, logs.d, 1, y2);
    CHECKF(bk_same_bits(&P, dw.d, dw2, nw * sizeof(float)), "conv_bwd_filter repeat %s", what);
    CHECKF(bk_same_bits(&P, y.d, y2, ny * sizeof(float)), "conv_fwd_affine repeat %s", what);
    g->free(g, dw2);
    g->free(g, y2);

    bk_twin *all[] = {&x, &w, &dy, &y, &bias, &logs, &dw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
}

static const bk_conv shapes[] = {
    /* n, h, w, cin, cout, k, edge */
    {2, 5, 7, 3, 4, 3, 0},    {2, 5, 7, 3, 4, 3, 1},     {3, 8, 8, 16, 24, 3, 1},
    {1, 1, 1, 2, 3, 3, 1},    {2, 3, 1, 5, 2, 3, 1},     {2, 6, 4, 8, 12, 1, 0},
    {3, 7, 5, 13, 7, 1, 0},   {8, 16, 16, 32, 64, 3, 1}, {8, 16, 16, 48, 48, 1, 0},
    {4, 8, 8, 64, 12, 3, 0},
};

static void test_convs(glow_precision prec, tols t)
{
    glow_error err = {""};
    CHECKF(P.dut->set_precision(P.dut, prec, &err) == 0, "set_precision: %s", err.msg);
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        conv_case(&shapes[i], t, glow_precision_name(prec));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--oom-child") == 0)
        return oom_child();
    glow_device dev;
    glow_error err = {""};
    if (glow_device_resolve("cuda", &dev, &err) != 0)
        return check_skip(err.msg);
    P.ref = backend_get(DEVICE_CPU, 0, &err);
    if (!P.ref)
        glow_die(1, "%s", err.msg);
    P.dut = backend_get(DEVICE_CUDA, dev.index, &err);
    if (!P.dut) {
        backend_release(P.ref);
        return check_skip(err.msg);
    }
    P.seed = 20261128;

    test_memory();
    test_precision_api();
    test_failure_report();
    /* relative to the largest magnitude: fp32 differs only in summation order;
     * tf32 keeps 10 mantissa bits of each operand; bf16 keeps 7 and rounds the
     * cuDNN outputs to bf16 */
    test_convs(PRECISION_FP32, (tols){1e-5, 1e-5});
    test_convs(PRECISION_TF32, (tols){5e-3, 5e-3});
    test_convs(PRECISION_BF16, (tols){2.5e-2, 2.5e-2});
    /* back to fp32: plans are kept per precision */
    test_convs(PRECISION_FP32, (tols){1e-5, 1e-5});

    backend_release(P.dut);
    backend_release(P.ref);
    return check_summary();
}
