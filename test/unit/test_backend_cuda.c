/* The CUDA backend's memory functions, convolutions and precisions against the CPU
 * backend on random inputs (the other ops: test_backend_cuda_ops.c): every
 * precision's rule (precision.h: tf32 keeps fp32's range, bf16 rounds the operands
 * and nothing else), the algorithm choice (timed once per shape) and, under the
 * CUDA emulator's GLOW_EMU_CUDNN_NODET, the fallbacks when cuDNN has no
 * deterministic algorithm for a shape of the shipped configs. Without a usable GPU
 * the test reports a skip, which is a failure under GLOW_TEST_STRICT=1. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#include "backend_compare.h"
#include "net_compare.h"
#include "device/device.h"
#include "test/emu/emu_stats.h"

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

/* ---- tf32 keeps fp32's range ---- */

/* Activations near 1e5 and gradients and weights near 1e-6: fp16 operands (what
 * CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION allows cuDNN) overflow or lose them; tf32
 * keeps fp32's exponent and 10 mantissa bits. */
static void test_tf32_range(void)
{
    glow_error err = {""};
    CHECKF(P.dut->set_precision(P.dut, PRECISION_TF32, &err) == 0, "set_precision: %s", err.msg);
    static const bk_conv cs[] = {{2, 5, 4, 6, 8, 3, 1}, {2, 4, 4, 8, 6, 3, 0}, {2, 4, 4, 8, 6, 1, 0}};
    backend *r = P.ref, *g = P.dut;
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        const bk_conv *d = &cs[k];
        const int e = d->edge ? 1 : 0, kk = d->k * d->k;
        const size_t rows = (size_t)d->n * d->h * d->w, nx = rows * d->cin, ny = rows * d->cout;
        const size_t nw = (size_t)d->cout * (d->cin + e) * kk;
        char what[160], buf[220];
        snprintf(what, sizeof what, "tf32 range (x ~ 1e5, w and dy ~ 1e-6) k=%d edge=%d cin=%d", d->k,
                 d->edge, d->cin);
        bk_twin x = bk_twin_rand(&P, nx, -1e5f, 1e5f), w = bk_twin_rand(&P, nw, -1e-6f, 1e-6f);
        bk_twin dy = bk_twin_rand(&P, ny, -1e-6f, 1e-6f), y = bk_twin_rand(&P, ny, -1, 1);
        bk_twin dx = bk_twin_rand(&P, nx, -1, 1), dw = bk_twin_rand(&P, nw, -1, 1);
        r->conv_fwd(r, d, x.r, w.r, y.r);
        g->conv_fwd(g, d, x.d, w.d, y.d);
        snprintf(buf, sizeof buf, "conv_fwd %s", what);
        bk_compare(&P, &y, ny, 5e-3, buf);
        r->conv_bwd_data(r, d, dy.r, w.r, dx.r, 0);
        g->conv_bwd_data(g, d, dy.d, w.d, dx.d, 0);
        snprintf(buf, sizeof buf, "conv_bwd_data %s", what);
        bk_compare(&P, &dx, nx, 5e-3, buf);
        r->conv_bwd_filter(r, d, x.r, dy.r, dw.r);
        g->conv_bwd_filter(g, d, x.d, dy.d, dw.d);
        snprintf(buf, sizeof buf, "conv_bwd_filter %s", what);
        bk_compare(&P, &dw, nw, 5e-3, buf);
        bk_twin *all[] = {&x, &w, &dy, &y, &dx, &dw};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            bk_twin_free(&P, all[i]);
    }
}

/* ---- bf16: bf16 operands, fp32 accumulation, fp32 outputs (precision.h) ---- */

/* float -> the nearest bf16 (ties to even), as a float */
static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* n random floats in [lo, hi) as a twin whose reference copy is rounded to bf16 */
static bk_twin rand_bf16_ref(size_t n, float lo, float hi)
{
    bk_twin t = bk_twin_rand(&P, n, lo, hi);
    float *h = malloc((n ? n : 1) * sizeof *h);
    P.ref->download(P.ref, h, t.r, n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = bf16_round(h[i]);
    P.ref->upload(P.ref, t.r, h, n * sizeof *h);
    free(h);
    return t;
}

/* The 1x1 (cuBLAS) and the 3x3 (cuDNN) path give the same rule: the CPU in fp32 on
 * bf16-rounded operands, within fp32 summation order (about 1e-6 here; tensor cores
 * may sum in another order); a bf16-rounded output or weight gradient is about
 * 2^-9 = 2e-3 off, ten times the tolerance. */
#define BF16_RULE_TOL 2e-4
static void test_bf16_rule(void)
{
    glow_error err = {""};
    CHECKF(P.dut->set_precision(P.dut, PRECISION_BF16, &err) == 0, "set_precision: %s", err.msg);
    static const bk_conv cs[] = {{2, 4, 4, 8, 12, 1, 0}, {2, 5, 4, 6, 8, 3, 1}, {2, 4, 4, 8, 6, 3, 0},
                                 {3, 6, 6, 16, 24, 3, 1}};
    backend *r = P.ref, *g = P.dut;
    for (size_t k = 0; k < sizeof cs / sizeof *cs; k++) {
        const bk_conv *d = &cs[k];
        const int e = d->edge ? 1 : 0, kk = d->k * d->k;
        const size_t rows = (size_t)d->n * d->h * d->w, nx = rows * d->cin, ny = rows * d->cout;
        const size_t nw = (size_t)d->cout * (d->cin + e) * kk;
        char what[160], buf[220];
        snprintf(what, sizeof what, "bf16 rule k=%d edge=%d cin=%d cout=%d", d->k, d->edge, d->cin,
                 d->cout);
        bk_twin x = rand_bf16_ref(nx, -1, 1), w = rand_bf16_ref(nw, -0.5f, 0.5f);
        bk_twin dy = rand_bf16_ref(ny, -1, 1), y = bk_twin_rand(&P, ny, -1, 1);
        bk_twin bias = bk_twin_rand(&P, (size_t)d->cout, -0.5f, 0.5f);
        bk_twin logs = bk_twin_rand(&P, (size_t)d->cout, -0.3f, 0.3f);
        bk_twin dx = bk_twin_rand(&P, nx, -1, 1), dw = bk_twin_rand(&P, nw, -1, 1);
        r->conv_fwd(r, d, x.r, w.r, y.r);
        g->conv_fwd(g, d, x.d, w.d, y.d);
        snprintf(buf, sizeof buf, "conv_fwd %s", what);
        bk_compare(&P, &y, ny, BF16_RULE_TOL, buf);
        r->conv_fwd_affine(r, d, x.r, w.r, bias.r, logs.r, 1, y.r);
        g->conv_fwd_affine(g, d, x.d, w.d, bias.d, logs.d, 1, y.d);
        snprintf(buf, sizeof buf, "conv_fwd_affine %s", what);
        bk_compare(&P, &y, ny, BF16_RULE_TOL, buf);
        r->conv_bwd_data(r, d, dy.r, w.r, dx.r, 1);
        g->conv_bwd_data(g, d, dy.d, w.d, dx.d, 1);
        snprintf(buf, sizeof buf, "conv_bwd_data accumulate %s", what);
        bk_compare(&P, &dx, nx, BF16_RULE_TOL, buf);
        r->conv_bwd_filter(r, d, x.r, dy.r, dw.r);
        g->conv_bwd_filter(g, d, x.d, dy.d, dw.d);
        snprintf(buf, sizeof buf, "conv_bwd_filter %s", what);
        bk_compare(&P, &dw, nw, BF16_RULE_TOL, buf);
        bk_twin *all[] = {&x, &w, &dy, &y, &bias, &logs, &dx, &dw};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            bk_twin_free(&P, all[i]);
    }
}

/* ---- the algorithm choice: timed once per shape (emulator counters) ---- */

static void test_algorithm_timing(void)
{
    if (!glow_emu_stats) {
        printf("%s: the algorithm timing is not counted (not the CUDA emulator)\n", CHECK_SUITE);
        return;
    }
    glow_error err = {""};
    CHECKF(P.dut->set_precision(P.dut, PRECISION_FP32, &err) == 0, "set_precision: %s", err.msg);
    const bk_conv d = {2, 6, 5, 5, 7, 3, 1}; /* a shape no other case uses: a new plan */
    const size_t rows = (size_t)d.n * d.h * d.w, nx = rows * d.cin, ny = rows * d.cout;
    const size_t nw = (size_t)d.cout * (d.cin + 1) * 9;
    bk_twin x = bk_twin_rand(&P, nx, -1, 1), w = bk_twin_rand(&P, nw, -0.5f, 0.5f);
    bk_twin y = bk_twin_rand(&P, ny, -1, 1), dy = bk_twin_rand(&P, ny, -1, 1);
    bk_twin dx = bk_twin_rand(&P, nx, -1, 1), dw = bk_twin_rand(&P, nw, -1, 1);
    backend *g = P.dut;
    unsigned long long c0[GLOW_EMU_NSTATS], c1[GLOW_EMU_NSTATS], c2[GLOW_EMU_NSTATS];
    glow_emu_stats(c0, GLOW_EMU_NSTATS);
    g->conv_fwd(g, &d, x.d, w.d, y.d);
    g->conv_bwd_data(g, &d, dy.d, w.d, dx.d, 0);
    g->conv_bwd_filter(g, &d, x.d, dy.d, dw.d);
    glow_emu_stats(c1, GLOW_EMU_NSTATS);
    g->conv_fwd(g, &d, x.d, w.d, y.d);
    g->conv_bwd_data(g, &d, dy.d, w.d, dx.d, 0);
    g->conv_bwd_filter(g, &d, x.d, dy.d, dw.d);
    glow_emu_stats(c2, GLOW_EMU_NSTATS);
    const unsigned long long rec1 = c1[GLOW_EMU_EVENT_RECORDS] - c0[GLOW_EMU_EVENT_RECORDS];
    const unsigned long long rec2 = c2[GLOW_EMU_EVENT_RECORDS] - c1[GLOW_EMU_EVENT_RECORDS];
    const unsigned long long dnn2 = c2[GLOW_EMU_CUDNN] - c1[GLOW_EMU_CUDNN];
    printf("%s: first use of a shape: %llu event records, %llu cuDNN calls (trials and timed "
           "runs); second: %llu event records, %llu cuDNN calls\n",
           CHECK_SUITE, rec1, c1[GLOW_EMU_CUDNN] - c0[GLOW_EMU_CUDNN], rec2, dnn2);
    CHECKF(rec1 >= 6, "the deterministic candidates of the 3 ops are timed with events (%llu records)",
           rec1);
    CHECKF(rec2 == 0 && dnn2 == 3, "the choice is kept per shape: %llu records, %llu cuDNN calls", rec2,
           dnn2);
    bk_twin *all[] = {&x, &w, &y, &dy, &dx, &dw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
}

/* ---- passes per convolution (emulator counters) ---- */

/* Kernels launched by one conv_fwd_affine of d in prec, its plan made before
 * (with GLOW_EMU_CUDNN_NODET=nodet, NULL: none, while it is made). */
static unsigned long long fwd_kernels(const bk_conv *d, glow_precision prec, const char *nodet)
{
    glow_error err = {""};
    P.dut->set_precision(P.dut, prec, &err);
    const int e = d->edge ? 1 : 0, kk = d->k * d->k;
    const size_t rows = (size_t)d->n * d->h * d->w;
    bk_twin x = bk_twin_rand(&P, rows * d->cin, -1, 1);
    bk_twin w = bk_twin_rand(&P, (size_t)d->cout * (d->cin + e) * kk, -0.5f, 0.5f);
    bk_twin bias = bk_twin_rand(&P, d->cout, -0.5f, 0.5f), logs = bk_twin_rand(&P, d->cout, -0.3f, 0.3f);
    bk_twin y = bk_twin_rand(&P, rows * d->cout, -1, 1);
    if (nodet)
        setenv("GLOW_EMU_CUDNN_NODET", nodet, 1);
    P.dut->conv_fwd_affine(P.dut, d, x.d, w.d, bias.d, logs.d, 1, y.d);
    unsetenv("GLOW_EMU_CUDNN_NODET");
    unsigned long long c0[GLOW_EMU_NSTATS], c1[GLOW_EMU_NSTATS];
    glow_emu_stats(c0, GLOW_EMU_NSTATS);
    P.dut->conv_fwd_affine(P.dut, d, x.d, w.d, bias.d, logs.d, 1, y.d);
    glow_emu_stats(c1, GLOW_EMU_NSTATS);
    P.ref->conv_fwd_affine(P.ref, d, x.r, w.r, bias.r, logs.r, 1, y.r);
    char what[128];
    snprintf(what, sizeof what, "conv_fwd_affine %s k=%d%s", glow_precision_name(prec), d->k,
             nodet ? " (NCHW)" : "");
    bk_compare(&P, &y, rows * d->cout, prec == PRECISION_FP32 ? 1e-5 : 2.5e-2, what);
    bk_twin *all[] = {&x, &w, &bias, &logs, &y};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
    return c1[GLOW_EMU_KERNELS] - c0[GLOW_EMU_KERNELS];
}

/* A convolution with edge, affine and ReLU is the filter's packing, the
 * convolution, and one kernel for edge, affine and ReLU, which in the NCHW way is
 * also the output's transpose (no extra pass); bf16 rounds the input first; a 1x1
 * conv is the GEMM and the affine. */
static void test_passes(void)
{
    if (!glow_emu_stats) {
        printf("%s: kernels per convolution not counted (not the CUDA emulator)\n", CHECK_SUITE);
        return;
    }
    static const struct {
        bk_conv d;
        glow_precision prec;
        const char *nodet;
        unsigned long long max;
    } cases[] = {
        {{2, 5, 6, 4, 7, 3, 1}, PRECISION_FP32, NULL, 2},
        {{2, 5, 6, 4, 7, 3, 1}, PRECISION_BF16, NULL, 3},
        {{2, 6, 5, 4, 7, 3, 1}, PRECISION_FP32, "fwd:c=4,k=7,h=6,layout=nhwc", 3},
        {{2, 5, 6, 9, 7, 1, 0}, PRECISION_FP32, NULL, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        unsigned long long k = fwd_kernels(&cases[i].d, cases[i].prec, cases[i].nodet);
        printf("%s: conv_fwd_affine %s k=%d%s: %llu kernel launches\n", CHECK_SUITE,
               glow_precision_name(cases[i].prec), cases[i].d.k, cases[i].nodet ? " in NCHW" : "", k);
        CHECKF(k <= cases[i].max, "conv_fwd_affine %s k=%d%s: %llu kernels (at most %llu)",
               glow_precision_name(cases[i].prec), cases[i].d.k, cases[i].nodet ? " in NCHW" : "", k,
               cases[i].max);
    }
}

/* ---- fallbacks: no deterministic algorithm for a shape (GLOW_EMU_CUDNN_NODET) ---- */

/* The 3x3 shape classes of the shipped configs (every configs/NAME.yml, at a small n, h, w):
 * coupling conv1 of a gray (C/2 = 2) and an RGB (6) first level, the split prior
 * and conv1 of a second RGB level (12 in), conv3 (width in, C out), the learned
 * top prior (2C to 2C). All with the edge channel (edge_bias: true everywhere). */
static const bk_conv classes[] = {
    {2, 4, 4, 2, 8, 3, 1}, {2, 4, 4, 6, 16, 3, 1}, {2, 4, 4, 12, 24, 3, 1},
    {2, 4, 4, 16, 12, 3, 1}, {2, 2, 2, 24, 24, 3, 1},
};
static const char *const class_names[] = {"conv1 gray", "conv1 rgb", "split / conv1 level 2",
                                          "conv3", "top prior"};
#define NCLASSES ((int)(sizeof classes / sizeof *classes))

/* In a fresh process: every op of class c on a fresh backend in precision prec
 * against the CPU (the environment says what cuDNN refuses). Exit 0 when all agree. */
static int fallback_child(int c, int prec)
{
    glow_set_progname("test_backend_cuda");
    glow_error err = {""};
    P.ref = backend_get(DEVICE_CPU, 0, &err);
    P.dut = P.ref ? backend_get(DEVICE_CUDA, 0, &err) : NULL;
    if (!P.dut || P.dut->set_precision(P.dut, (glow_precision)prec, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    P.seed = 99;
    conv_case(&classes[c], prec == PRECISION_FP32 ? (tols){1e-5, 1e-5} : (tols){5e-3, 5e-3},
              glow_precision_name((glow_precision)prec));
    backend_release(P.dut);
    backend_release(P.ref);
    return check_fail_count ? 1 : 0;
}

/* Runs the child with `env` set; returns its exit status (-1: no status) and its
 * stderr in msg. */
static int run_child(const char *env, const char *args, char *msg, size_t cap)
{
    char self[2048], cmd[6000];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return -1;
    self[len] = '\0';
    char tmp[] = "/tmp/glow-cuda-fallback-XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0)
        return -1;
    close(fd);
    snprintf(cmd, sizeof cmd, "env %s '%s' %s >/dev/null 2>'%s'", env, self, args, tmp);
    int st = system(cmd);
    msg[0] = '\0';
    FILE *f = fopen(tmp, "r");
    if (f) {
        size_t n = fread(msg, 1, cap - 1, f);
        msg[n] = '\0';
        fclose(f);
    }
    unlink(tmp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_fallbacks(void)
{
    if (!glow_emu_stats) {
        printf("%s: fallbacks not checked (GLOW_EMU_CUDNN_NODET needs the CUDA emulator)\n",
               CHECK_SUITE);
        return;
    }
    static const char *const ops[] = {"fwd", "bwd_data", "bwd_filter"};
    /* what cuDNN refuses for the shape (one or two specs), and what the backend
     * says it takes instead ("": nothing, the fallback keeps the layout) */
    static const struct {
        const char *keys, *keys2;
        int prec;
        const char *via;
    } refusals[] = {
        {",layout=nhwc", NULL, PRECISION_FP32, "using NCHW"},
        {"", NULL, PRECISION_FP32, "using im2col + cuBLAS"},
        {",math=tensor_op", NULL, PRECISION_TF32, ""},
        {",layout=nchw", ",math=tensor_op", PRECISION_TF32, ""},
        {",math=tensor_op", ",layout=nhwc", PRECISION_TF32, "using NCHW"},
    };
    char msg[8192], env[512], args[64], spec[256];
    for (int c = 0; c < NCLASSES; c++)
        for (int o = 0; o < 3; o++)
            for (size_t k = 0; k < sizeof refusals / sizeof *refusals; k++) {
                const bk_conv *d = &classes[c];
                int at = snprintf(spec, sizeof spec, "%s:c=%d,k=%d%s", ops[o], d->cin, d->cout,
                                  refusals[k].keys);
                if (refusals[k].keys2)
                    snprintf(spec + at, sizeof spec - (size_t)at, ";%s:c=%d,k=%d%s", ops[o], d->cin,
                             d->cout, refusals[k].keys2);
                snprintf(env, sizeof env, "GLOW_EMU_CUDNN_NODET='%s'", spec);
                snprintf(args, sizeof args, "--fallback-child %d %d", c, refusals[k].prec);
                int st = run_child(env, args, msg, sizeof msg);
                CHECKF(st == 0, "%s (%s), %s refused (%s): exit %d: %.600s", class_names[c],
                       glow_precision_name((glow_precision)refusals[k].prec), ops[o], spec, st, msg);
                if (st == 0 && refusals[k].via[0])
                    CHECKF(strstr(msg, refusals[k].via) != NULL,
                           "%s, %s refused (%s): the backend says \"%s\": %.600s", class_names[c],
                           ops[o], spec, refusals[k].via, msg);
            }
    /* nothing deterministic at all: cuDNN refuses every layout and math, cuBLAS
     * refuses too: the error names the op, the shape, the precision and what was tried */
    for (int o = 0; o < 3; o++) {
        snprintf(env, sizeof env, "GLOW_EMU_CUDNN_NODET='%s' GLOW_EMU_FAIL=cublasSgemm", ops[o]);
        int st = run_child(env, "--fallback-child 0 0", msg, sizeof msg);
        static const char *const want[] = {"no deterministic algorithm", "n=2 h=4 w=4 cin=2 cout=8",
                                           "fp32", "tried", "NHWC", "NCHW", "im2col"};
        int all = st == 1;
        for (size_t i = 0; i < sizeof want / sizeof *want; i++)
            all &= strstr(msg, want[i]) != NULL;
        CHECKF(all, "%s: nothing deterministic: exit %d (1 expected), message: %.800s", ops[o], st,
               msg);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--oom-child") == 0)
        return oom_child();
    if (argc > 3 && strcmp(argv[1], "--fallback-child") == 0)
        return fallback_child(atoi(argv[2]), atoi(argv[3]));
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
     * tf32 keeps 10 mantissa bits of each operand; bf16 keeps 7 (test_bf16_rule
     * checks that nothing else is rounded) */
    test_convs(PRECISION_FP32, (tols){1e-5, 1e-5});
    test_convs(PRECISION_TF32, (tols){5e-3, 5e-3});
    test_convs(PRECISION_BF16, (tols){2.5e-2, 2.5e-2});
    /* back to fp32: plans are kept per precision */
    test_convs(PRECISION_FP32, (tols){1e-5, 1e-5});
    /* the coupling network's passes against the CPU's layers one by one */
    net_compare(&P, 4, 16, 16, 2, 64, 4, 1, (net_tols){1e-5, 1e-5, 1e-5});
    net_compare(&P, 6, 4, 4, 4, 32, 8, 1, (net_tols){1e-5, 1e-5, 1e-5});
    net_compare(&P, 3, 8, 8, 3, 16, 3, 0, (net_tols){1e-5, 1e-5, 1e-5});
    test_tf32_range();
    test_bf16_rule();
    test_algorithm_timing();
    test_passes();
    test_fallbacks();

    backend_release(P.dut);
    backend_release(P.ref);
    return check_summary();
}
