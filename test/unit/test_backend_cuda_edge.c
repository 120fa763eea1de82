/* Edge cases of the CUDA backend against the CPU backend, each a bug the CUDA
 * emulator (docs/cuda-emulation.md) found: the class head's gradient without
 * channels, the fused conv affine without logs, a dense copy_cols between
 * overlapping ranges, and a backend that cannot get pinned host memory (reported,
 * not fatal: --device auto falls back). Without a usable GPU the test reports a
 * skip (a failure under GLOW_TEST_STRICT=1). */
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

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--pinned-child") == 0)
        return pinned_child();
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

    backend_release(P.dut);
    backend_release(P.ref);
    return check_summary();
}
