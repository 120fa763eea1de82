/* Edge cases of the CUDA backend against the CPU backend, each a bug the CUDA
 * emulator (docs/cuda-emulation.md) found: the class head's gradient without
 * channels, the fused conv affine without logs, a dense copy_cols between
 * overlapping ranges, a backend that cannot get pinned host memory (reported,
 * not fatal: --device auto falls back), the border map of an edge convolution
 * uploaded out of the backend's stream order (GLOW_EMU_LAZY_DEFAULT_STREAM=1), and
 * the per-channel sums bit-identical for any SM count (child processes with
 * GLOW_EMU_SMS=2 and 132). Without a usable GPU the test reports a skip (a failure
 * under GLOW_TEST_STRICT=1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#include "backend_compare.h"
#include "device/device.h"

static bk_pair P;

/* head_bwd with c = 0: the logits are the bias alone; dbias and dlogs are written */
static void test_head_no_channels(void)
{
    backend *r = P.ref, *g = P.dut;
    const int n = 3, k = 4;
    const size_t rpi = 5;
    int32_t lab[3] = {0, 3, 1};
    bk_twin labels = bk_twin_from(&P, lab, sizeof lab);
    bk_twin bias = bk_twin_rand(&P, k, -0.5f, 0.5f), logs = bk_twin_rand(&P, k, -0.3f, 0.3f);
    bk_twin w = bk_twin_rand(&P, 1, 0, 1), z = bk_twin_rand(&P, 1, 0, 1), dz = bk_twin_rand(&P, 1, 0, 1);
    bk_twin dw = bk_twin_rand(&P, 1, 0, 1), ce = bk_twin_rand(&P, n, -1, 1);
    bk_twin db = bk_twin_rand(&P, k, -9, 9), dl = bk_twin_rand(&P, k, -9, 9);
    r->head_fwd(r, z.r, n, rpi, 0, k, labels.r, w.r, bias.r, logs.r, ce.r);
    g->head_fwd(g, z.d, n, rpi, 0, k, labels.d, w.d, bias.d, logs.d, ce.d);
    bk_compare(&P, &ce, n, 1e-6, "head_fwd c=0: ce");
    r->head_bwd(r, z.r, n, rpi, 0, k, labels.r, w.r, bias.r, logs.r, 0.5f, dz.r, dw.r, db.r, dl.r);
    g->head_bwd(g, z.d, n, rpi, 0, k, labels.d, w.d, bias.d, logs.d, 0.5f, dz.d, dw.d, db.d, dl.d);
    bk_compare(&P, &db, k, 1e-6, "head_bwd c=0: dbias");
    bk_compare(&P, &dl, k, 1e-6, "head_bwd c=0: dlogs");
    bk_twin *all[] = {&labels, &bias, &logs, &w, &z, &dz, &dw, &ce, &db, &dl};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
}

/* conv_fwd_affine with logs NULL: no affine and no ReLU, as on the CPU (which
 * applies the affine when logs is given) */
static void test_affine_without_logs(const bk_conv *d)
{
    backend *r = P.ref, *g = P.dut;
    const int e = d->edge ? 1 : 0, kk = d->k * d->k;
    const size_t rows = (size_t)d->n * d->h * d->w;
    bk_twin x = bk_twin_rand(&P, rows * d->cin, -1, 1);
    bk_twin w = bk_twin_rand(&P, (size_t)d->cout * (d->cin + e) * kk, -0.5f, 0.5f);
    bk_twin bias = bk_twin_rand(&P, d->cout, -0.5f, 0.5f), y = bk_twin_rand(&P, rows * d->cout, -9, 9);
    r->conv_fwd_affine(r, d, x.r, w.r, bias.r, NULL, 1, y.r);
    g->conv_fwd_affine(g, d, x.d, w.d, bias.d, NULL, 1, y.d);
    char what[96];
    snprintf(what, sizeof what, "conv_fwd_affine logs=NULL k=%d edge=%d", d->k, d->edge);
    bk_compare(&P, &y, rows * d->cout, 1e-5, what);
    bk_twin *all[] = {&x, &w, &bias, &y};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
}

/* copy_cols of dense rows from a later to an earlier, overlapping place in one
 * buffer (memmove on the CPU), and onto itself */
static void test_copy_cols_overlap(size_t rows, int cols, int shift)
{
    backend *r = P.ref, *g = P.dut;
    const size_t n = rows * cols + shift;
    bk_twin buf = bk_twin_rand(&P, n, -1, 1);
    float *br = buf.r, *bg = buf.d;
    r->copy_cols(r, br, cols, br + shift, cols, rows, cols, 0);
    g->copy_cols(g, bg, cols, bg + shift, cols, rows, cols, 0);
    char what[96];
    snprintf(what, sizeof what, "copy_cols overlapping rows=%zu cols=%d shift=%d", rows, cols, shift);
    bk_compare(&P, &buf, n, 0, what);
    r->copy_cols(r, br, cols, br, cols, rows, cols, 0);
    g->copy_cols(g, bg, cols, bg, cols, rows, cols, 0);
    bk_compare(&P, &buf, n, 0, "copy_cols onto itself");
    bk_twin_free(&P, &buf);
}

/* The child of test_pinned_failure: 0 when creating the backend failed with a
 * message, 2 when it succeeded (no fault injection: not the emulator). */
static int pinned_child(void)
{
    glow_set_progname("test_backend_cuda_edge");
    glow_error err = {""};
    backend *g = backend_get(DEVICE_CUDA, 0, &err);
    if (g) {
        backend_release(g);
        return 2;
    }
    fprintf(stderr, "backend_get: %s\n", err.msg);
    return strstr(err.msg, "pinned") ? 0 : 3;
}

/* Under the emulator, GLOW_EMU_FAIL=cudaMallocHost makes the pinned allocation of
 * the backend fail: the backend is refused with a reason, the process lives on. */
static void test_pinned_failure(void)
{
    char self[2048], cmd[4600];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        CHECK(len > 0);
        return;
    }
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "GLOW_EMU_FAIL=cudaMallocHost '%s' --pinned-child 2>/dev/null", self);
    int st = system(cmd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
        printf("%s: pinned-memory failure not checked (no fault injection: not the emulator)\n",
               CHECK_SUITE);
        return;
    }
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0,
           "a failing cudaMallocHost must make backend_get return NULL with a reason "
           "(child status %d)",
           st);
}

/* The edge gradient's border map must be on the device before the kernels of the
 * backend's (non-blocking) stream read it: with GLOW_EMU_LAZY_DEFAULT_STREAM=1 a
 * synchronous cudaMemcpy from pageable memory lands only at the next legacy-stream
 * synchronisation, so an upload outside the stream's order shows as wrong edge
 * filter gradients. A shape no other case uses, so that its plan is made here. */
static void test_border_order(void)
{
    backend *r = P.ref, *g = P.dut;
    const bk_conv d = {2, 7, 6, 3, 5, 3, 1};
    const size_t rows = (size_t)d.n * d.h * d.w, nw = (size_t)d.cout * (d.cin + 1) * 9;
    setenv("GLOW_EMU_LAZY_DEFAULT_STREAM", "1", 1);
    bk_twin x = bk_twin_rand(&P, rows * d.cin, -1, 1), dy = bk_twin_rand(&P, rows * d.cout, -1, 1);
    bk_twin dw = bk_twin_rand(&P, nw, -3, 3);
    r->conv_bwd_filter(r, &d, x.r, dy.r, dw.r);
    g->conv_bwd_filter(g, &d, x.d, dy.d, dw.d);
    bk_compare(&P, &dw, nw, 1e-5, "conv_bwd_filter edge, the border map uploaded lazily");
    unsetenv("GLOW_EMU_LAZY_DEFAULT_STREAM");
    bk_twin *all[] = {&x, &dy, &dw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
}

/* ---- the per-channel sums, bit-identical for any SM count ---- */

/* The child: the column sums (actnorm backward and init, class embedding
 * backward) of fixed inputs, over enough rows for a thousand partials per
 * channel; their bytes to `path`. */
static int sums_child(const char *path)
{
    glow_set_progname("test_backend_cuda_edge");
    glow_error err = {""};
    P.ref = backend_get(DEVICE_CPU, 0, &err);
    P.dut = P.ref ? backend_get(DEVICE_CUDA, 0, &err) : NULL;
    if (!P.dut) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    P.seed = 4242;
    backend *g = P.dut;
    const size_t rows = 70000;
    const int c = 37, n = 5, k = 3;
    bk_twin dy = bk_twin_rand(&P, rows * c, -1, 1), y = bk_twin_rand(&P, rows * c, -1, 1);
    bk_twin logs = bk_twin_rand(&P, c, -0.3f, 0.3f), bias = bk_twin_rand(&P, c, -0.5f, 0.5f);
    bk_twin dx = bk_twin_rand(&P, rows * c, -1, 1), out = bk_twin_rand(&P, 8 * (size_t)c, -1, 1);
    bk_twin w = bk_twin_rand(&P, (size_t)c * k, -1, 1);
    int32_t lab[5] = {0, 2, 1, 1, 0};
    bk_twin labels = bk_twin_from(&P, lab, sizeof lab);
    float *o = out.d;
    g->actnorm_bwd(g, dy.d, c, y.d, c, dx.d, c, rows, c, logs.d, 1, o, o + c);
    g->actnorm_ddi(g, y.d, c, rows, c, o + 2 * c, o + 3 * c);
    g->yemb_bwd(g, dy.d, n, rows / n, c, k, labels.d, w.d, bias.d, logs.d, o + 4 * c, o + 5 * c,
                o + 6 * c);
    const size_t bytes = 7 * (size_t)c * sizeof(float);
    unsigned char *h = malloc(bytes);
    g->download(g, h, o, bytes);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(h, 1, bytes, f) == bytes;
    if (f)
        fclose(f);
    free(h);
    bk_twin *all[] = {&dy, &y, &logs, &bias, &dx, &out, &w, &labels};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        bk_twin_free(&P, all[i]);
    backend_release(P.dut);
    backend_release(P.ref);
    return ok ? 0 : 1;
}

/* Runs the child with GLOW_EMU_SMS=sms; its output's bytes into buf (returns how
 * many, -1 on failure). */
static long sums_at(int sms, unsigned char *buf, size_t cap)
{
    char self[2048], cmd[4700], tmp[] = "/tmp/glow-cuda-sums-XXXXXX";
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    int fd = mkstemp(tmp);
    if (len <= 0 || fd < 0)
        return -1;
    close(fd);
    self[len] = '\0';
    snprintf(cmd, sizeof cmd, "GLOW_EMU_SMS=%d '%s' --sums-child '%s'", sms, self, tmp);
    int st = system(cmd);
    long n = -1;
    FILE *f = fopen(tmp, "rb");
    if (f && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        n = (long)fread(buf, 1, cap, f);
    if (f)
        fclose(f);
    unlink(tmp);
    return n;
}

static void test_sums_any_sms(void)
{
    static unsigned char a[4096], b[4096];
    long na = sums_at(2, a, sizeof a), nb = sums_at(132, b, sizeof b);
    CHECKF(na > 0 && na == nb && memcmp(a, b, (size_t)na) == 0,
           "the column sums differ between 2 and 132 SMs (%ld and %ld bytes)", na, nb);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--pinned-child") == 0)
        return pinned_child();
    if (argc > 2 && strcmp(argv[1], "--sums-child") == 0)
        return sums_child(argv[2]);
    glow_device dev;
    glow_error err = {""};
    if (!glow_device_cuda_built())
        return check_skip("this build has no CUDA backend");
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
    P.seed = 777;

    test_head_no_channels();
    const bk_conv c3 = {2, 5, 4, 3, 6, 3, 1}, c1 = {2, 3, 3, 5, 4, 1, 0};
    test_affine_without_logs(&c3);
    test_affine_without_logs(&c1);
    test_copy_cols_overlap(5, 7, 3);
    test_copy_cols_overlap(40, 16, 16);
    test_pinned_failure();
    test_border_order();
    test_sums_any_sms();

    backend_release(P.dut);
    backend_release(P.ref);
    return check_summary();
}
