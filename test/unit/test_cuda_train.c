/* A short training of a tiny model (configs/tiny.yml's shape: 1x8x8, L=2, K=2,
 * width 8) on the CPU and the CUDA backend from the same initial parameters, data
 * and dequantisation noise, with Adam: the losses must agree at every step. A
 * second, class-conditional additive model runs fewer steps so the class
 * embedding and head take part. Under the CUDA emulator, the host round trips
 * (synchronisations) of a forward and a backward pass are counted: a small
 * constant, the same for K = 2 and K = 8. The train.memory plans on the CUDA
 * backend: recompute's gradients are store's bits, invert's within 1e-5, for each
 * coupling and permutation kind. Without a usable GPU the test reports a
 * skip (a failure under GLOW_TEST_STRICT=1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"
#include "device/device.h"
#include "model/model.h"
#include "test/emu/emu_stats.h"
#include "tiny_config.h"
#include "train/optim.h"

#define BATCH 8
#define NDATA 64
#define LOSS_TOL 1e-3

/* Smooth images with noise, so the model has something to learn. */
static void make_data(const glow_config *c, uint8_t *img, int32_t *lab)
{
    glow_rng r = rng_make(11, RNG_STREAM_TEST);
    const int H = c->image_h, W = c->image_w, C = c->channels;
    for (int i = 0; i < NDATA; i++) {
        double ph = rng_next_double(&r) * 6.283185307179586, fr = 0.3 + 0.5 * rng_next_double(&r);
        for (int ch = 0; ch < C; ch++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    double v = 128 + 70 * sin(fr * (x + 0.7 * y) + ph + ch) + 20 * rng_next_normal(&r);
                    v = v < 0 ? 0 : v > 255 ? 255 : v;
                    img[(((size_t)i * C + ch) * H + y) * W + x] = (uint8_t)v;
                }
        lab[i] = c->y_condition ? (int32_t)(i % c->n_classes) : 0;
    }
}

typedef struct {
    glow_model *m;
    glow_optim *o;
    double *loss;
} run;

static int start(run *ru, backend *b, const glow_config *c, const glow_paramset *ps,
                 const glow_batch *init, int steps)
{
    glow_error err;
    glow_result r;
    ru->m = glow_model_new(b, c, ps, &err);
    if (!ru->m) {
        fprintf(stderr, "%s: %s: model: %s\n", CHECK_SUITE, b->name, err.msg);
        return -1;
    }
    if (glow_model_ddi(ru->m, init, &r, &err)) {
        fprintf(stderr, "%s: %s: ddi: %s\n", CHECK_SUITE, b->name, err.msg);
        return -1;
    }
    ru->o = glow_optim_new(b, OPTIM_ADAM, glow_model_n_trained(ru->m));
    ru->loss = calloc((size_t)steps, sizeof *ru->loss);
    return 0;
}

static int step(run *ru, const glow_batch *bt, float lr, int s)
{
    glow_error err;
    glow_result r;
    if (glow_model_forward(ru->m, bt, &r, &err) || glow_model_backward(ru->m, &err)) {
        fprintf(stderr, "%s: step %d: %s\n", CHECK_SUITE, s, err.msg);
        return -1;
    }
    ru->loss[s] = r.loss;
    glow_optim_step(ru->o, glow_model_params(ru->m), glow_model_grads(ru->m), lr);
    return 0;
}

static void finish(run *ru)
{
    glow_optim_free(ru->o);
    glow_model_free(ru->m);
    free(ru->loss);
}

static void train_both(backend *bc, backend *bg, const glow_config *c, const char *what,
                       int steps)
{
    glow_error err;
    glow_paramset ps;
    if (glow_paramset_layout(c, &ps, &err)) {
        CHECKF(0, "%s: layout: %s", what, err.msg);
        return;
    }
    glow_params_init(c, &ps, 1);
    const size_t D = (size_t)c->channels * c->image_h * c->image_w;
    uint8_t *img = malloc(NDATA * D);
    int32_t *lab = malloc(NDATA * sizeof *lab);
    make_data(c, img, lab);
    glow_batch init = {2 * BATCH, img, NULL, 1, 1000, c->y_condition ? lab : NULL};
    run rc, rg;
    int ok = start(&rc, bc, c, &ps, &init, steps) == 0 && start(&rg, bg, c, &ps, &init, steps) == 0;
    CHECKF(ok, "%s: set-up failed", what);
    double worst = 0;
    int worst_at = 0;
    for (int s = 0; ok && s < steps; s++) {
        int first = (s * BATCH) % NDATA;
        glow_batch bt = {BATCH, img + (size_t)first * D, NULL, 1, (uint64_t)s * BATCH,
                         c->y_condition ? lab + first : NULL};
        float lr = 1e-3f * (s + 1 < 8 ? (float)(s + 1) / 8 : 1.0f);
        if (step(&rc, &bt, lr, s) || step(&rg, &bt, lr, s)) {
            CHECKF(0, "%s: step %d failed", what, s);
            break;
        }
        double e = fabs(rg.loss[s] - rc.loss[s]) / fabs(rc.loss[s]);
        if (!(e <= worst)) {
            worst = e;
            worst_at = s;
        }
        CHECKF(e <= LOSS_TOL, "%s: step %d: loss cpu %.9g gpu %.9g (relative %.3g)", what, s,
               rc.loss[s], rg.loss[s], e);
    }
    if (ok) {
        printf("%s: %d steps: cpu loss %.6f -> %.6f, gpu loss %.6f -> %.6f, worst relative "
               "difference %.3g at step %d\n",
               what, steps, rc.loss[0], rc.loss[steps - 1], rg.loss[0], rg.loss[steps - 1], worst,
               worst_at);
        CHECKF(rc.loss[steps - 1] < rc.loss[0], "%s: the CPU run did not learn", what);
        CHECKF(rg.loss[steps - 1] < rg.loss[0], "%s: the GPU run did not learn", what);
        finish(&rc);
        finish(&rg);
    }
    free(img);
    free(lab);
    glow_paramset_free(&ps);
}


/* ---- train.memory on the CUDA backend ---- */

/* One forward and backward pass of the CUDA backend under each plan, from the
 * same parameters and batch: recompute gives store's gradients bit for bit (the
 * same kernels on the same inputs), invert store's to 1e-5 relative per tensor,
 * with its rebuilt inputs close; the plans' buffers as model_mem.c sizes them
 * are exercised on device memory. */
static void test_memory_plans(backend *bg, const glow_config *c, const char *what)
{
    glow_error err;
    glow_paramset ps;
    if (glow_paramset_layout(c, &ps, &err)) {
        CHECKF(0, "%s: layout: %s", what, err.msg);
        return;
    }
    glow_params_init(c, &ps, 3);
    const size_t D = (size_t)c->channels * c->image_h * c->image_w;
    uint8_t *img = malloc(NDATA * D);
    int32_t *lab = malloc(NDATA * sizeof *lab);
    make_data(c, img, lab);
    glow_model *m = glow_model_new(bg, c, &ps, &err);
    CHECKF(m != NULL, "%s: %s", what, err.msg);
    glow_batch init = {2 * BATCH, img, NULL, 1, 1000, c->y_condition ? lab : NULL};
    glow_result r;
    CHECKF(m && glow_model_ddi(m, &init, &r, &err) == 0, "%s: ddi: %s", what, m ? err.msg : "");
    if (!m) {
        free(img);
        free(lab);
        glow_paramset_free(&ps);
        return;
    }
    const size_t nt = glow_model_n_trained(m);
    const glow_memory plans[4] = {{MEMORY_STORE, 0}, {MEMORY_RECOMPUTE, 0}, {MEMORY_INVERT, 0},
                                  {MEMORY_INVERT, 1}};
    float *g[4];
    double loss[4], ie[4];
    glow_batch bt = {BATCH, img, NULL, 1, 77, c->y_condition ? lab : NULL};
    for (int p = 0; p < 4; p++) {
        g[p] = malloc(nt * sizeof(float));
        glow_model_set_memory(m, &plans[p]);
        int ok = glow_model_forward(m, &bt, &r, &err) == 0 && glow_model_backward(m, &err) == 0;
        CHECKF(ok, "%s: plan %d: %s", what, p, err.msg);
        loss[p] = r.loss;
        bg->download(bg, g[p], glow_model_grads(m), nt * sizeof(float));
        ie[p] = glow_model_inv_error(m, NULL);
    }
    CHECKF(memcmp(g[0], g[1], nt * sizeof(float)) == 0 && loss[0] == loss[1],
           "%s: recompute's gradients are not store's bits", what);
    double worst = 0;
    for (int p = 2; p < 4; p++) {
        for (int i = 0; i < ps.n; i++) {
            long off = glow_model_param_offset(m, ps.v[i].name);
            if (off < 0)
                continue;
            double d = 0, gmax = 0;
            for (size_t j = 0; j < ps.v[i].count; j++) {
                d = fmax(d, fabs((double)g[0][off + j] - g[p][off + j]));
                gmax = fmax(gmax, fabs((double)g[0][off + j]));
            }
            worst = fmax(worst, d / fmax(gmax, 1e-12));
        }
        CHECKF(loss[p] == loss[0] && ie[p] > 0 && ie[p] < 1e-5,
               "%s: invert every %d: loss %.9g vs %.9g, rebuilt inputs off by %.3g", what,
               plans[p].every, loss[p], loss[0], ie[p]);
    }
    printf("%s: train.memory on %s: recompute's gradients are store's bits; invert's off by "
           "%.3g (relative, per tensor), rebuilt inputs by %.3g\n",
           what, bg->name, worst, fmax(ie[2], ie[3]));
    CHECKF(worst <= 1e-5, "%s: invert's gradients off by %.3g", what, worst);
    for (int p = 0; p < 4; p++)
        free(g[p]);
    glow_model_free(m);
    free(img);
    free(lab);
    glow_paramset_free(&ps);
}

/* ---- host round trips (the emulator's counters, test/emu/emu_stats.h) ---- */

typedef struct {
    unsigned long long v[GLOW_EMU_NSTATS];
} counts;

static counts snap(void)
{
    counts c;
    memset(&c, 0, sizeof c);
    glow_emu_stats(c.v, GLOW_EMU_NSTATS);
    return c;
}

/* b - a of counter i */
static unsigned long long delta(const counts *a, const counts *b, int i) { return b->v[i] - a->v[i]; }

/* Every point where the host waits for the device. */
static unsigned long long waits(const counts *a, const counts *b)
{
    return delta(a, b, GLOW_EMU_STREAM_SYNCS) + delta(a, b, GLOW_EMU_DEVICE_SYNCS) +
           delta(a, b, GLOW_EMU_EVENT_SYNCS);
}

typedef struct {
    unsigned long long fwd, bwd, fwd_d2h, bwd_d2h, fwd_h2d, bwd_h2d;
} trips;

/* The waits of one forward and one backward pass of a model with K steps, after
 * a first pass of each (plans and scratch of the shapes made) and an optimizer
 * step (the parameters changed). */
static trips count_trips(backend *bg, int K, int lu, int train_step_report)
{
    trips t = {0, 0, 0, 0, 0, 0};
    glow_config c = tiny_config(.steps = K);
    c.lu = lu;
    glow_error err;
    glow_paramset ps;
    if (glow_paramset_layout(&c, &ps, &err)) {
        CHECKF(0, "layout: %s", err.msg);
        return t;
    }
    glow_params_init(&c, &ps, 3);
    const size_t D = (size_t)c.channels * c.image_h * c.image_w;
    uint8_t *img = malloc(NDATA * D);
    int32_t *lab = malloc(NDATA * sizeof *lab);
    make_data(&c, img, lab);
    glow_batch init = {2 * BATCH, img, NULL, 1, 1000, NULL};
    run ru;
    if (start(&ru, bg, &c, &ps, &init, 3) != 0) {
        CHECKF(0, "round trips: set-up failed");
        free(img);
        free(lab);
        glow_paramset_free(&ps);
        return t;
    }
    glow_batch bt = {BATCH, img, NULL, 1, 0, NULL};
    CHECK(step(&ru, &bt, 1e-3f, 0) == 0);
    glow_result r;
    counts a = snap();
    CHECK(glow_model_forward(ru.m, &bt, &r, &err) == 0);
    counts b = snap();
    CHECK(glow_model_backward(ru.m, &err) == 0);
    counts e = snap();
    glow_optim_step(ru.o, glow_model_params(ru.m), glow_model_grads(ru.m), 1e-3f);
    counts f = snap();
    t.fwd = waits(&a, &b);
    t.bwd = waits(&b, &e);
    t.fwd_d2h = delta(&a, &b, GLOW_EMU_D2H);
    t.bwd_d2h = delta(&b, &e, GLOW_EMU_D2H);
    t.fwd_h2d = delta(&a, &b, GLOW_EMU_H2D);
    t.bwd_h2d = delta(&b, &e, GLOW_EMU_H2D);
    if (train_step_report)
        printf("one training step of configs/tiny.yml's model (batch %d, forward + backward + "
               "Adam): %llu kernel launches, %llu cuDNN and %llu cuBLAS calls, %llu H2D, %llu "
               "D2H and %llu D2D copies, %llu memsets, %llu host waits\n",
               BATCH, delta(&a, &f, GLOW_EMU_KERNELS), delta(&a, &f, GLOW_EMU_CUDNN),
               delta(&a, &f, GLOW_EMU_CUBLAS), delta(&a, &f, GLOW_EMU_H2D),
               delta(&a, &f, GLOW_EMU_D2H), delta(&a, &f, GLOW_EMU_D2D),
               delta(&a, &f, GLOW_EMU_MEMSETS), waits(&a, &f));
    finish(&ru);
    free(img);
    free(lab);
    glow_paramset_free(&ps);
    return t;
}

/* A forward pass waits for the device a few times (the batch upload, the invconv
 * parameters down and the LU matrices up, the results down), a backward pass
 * twice (the invconv gradients down and up): never once per flow step. */
#define FWD_WAITS_MAX 4
#define BWD_WAITS_MAX 2

static void test_round_trips(backend *bg)
{
    if (!glow_emu_stats) {
        printf("%s: host round trips not counted (not the CUDA emulator)\n", CHECK_SUITE);
        return;
    }
    const char *sync = getenv("GLOW_CUDA_SYNC");
    if (sync && strcmp(sync, "1") == 0) {
        printf("%s: host round trips not counted (GLOW_CUDA_SYNC=1 waits after every launch)\n",
               CHECK_SUITE);
        return;
    }
    for (int lu = 0; lu < 2; lu++) {
        trips t2 = count_trips(bg, 2, lu, !lu), t8 = count_trips(bg, 8, lu, 0);
        printf("host waits per pass (%s invconv): K=2 forward %llu (%llu D2H, %llu H2D), "
               "backward %llu (%llu D2H, %llu H2D); K=8 forward %llu (%llu D2H, %llu H2D), "
               "backward %llu (%llu D2H, %llu H2D)\n",
               lu ? "LU" : "plain", t2.fwd, t2.fwd_d2h, t2.fwd_h2d, t2.bwd, t2.bwd_d2h,
               t2.bwd_h2d, t8.fwd, t8.fwd_d2h, t8.fwd_h2d, t8.bwd, t8.bwd_d2h, t8.bwd_h2d);
        CHECKF(t2.fwd == t8.fwd && t2.bwd == t8.bwd,
               "%s: host waits depend on K: forward %llu (K=2) vs %llu (K=8), backward %llu vs "
               "%llu",
               lu ? "LU" : "plain", t2.fwd, t8.fwd, t2.bwd, t8.bwd);
        CHECKF(t8.fwd <= FWD_WAITS_MAX && t8.bwd <= BWD_WAITS_MAX,
               "%s: %llu host waits per forward (at most %d), %llu per backward (at most %d)",
               lu ? "LU" : "plain", t8.fwd, FWD_WAITS_MAX, t8.bwd, BWD_WAITS_MAX);
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
    backend *bc = backend_get(DEVICE_CPU, 0, &err), *bg = NULL;
    if (bc)
        bg = backend_get(DEVICE_CUDA, dev.index, &err);
    if (!bc || !bg) {
        fprintf(stderr, "%s: %s\n", CHECK_SUITE, err.msg);
        return 1;
    }

    glow_config c = tiny_config(); /* affine, invconv, edge bias, learned top, 8 bits */
    train_both(bc, bg, &c, "tiny affine", 50);

    c.channels = 3;
    c.coupling = COUPLING_ADDITIVE;
    c.permutation = PERM_SHUFFLE;
    c.y_condition = 1;
    c.n_classes = 4;
    c.weight_y = 0.5;
    c.n_bits = 5;
    train_both(bc, bg, &c, "tiny additive class-conditional", 15);

    glow_config ma = tiny_config(.steps = 3);
    test_memory_plans(bg, &ma, "tiny affine invconv K=3");
    ma.lu = 1;
    test_memory_plans(bg, &ma, "tiny affine LU K=3");
    test_memory_plans(bg, &c, "tiny additive shuffle class-conditional");
    c.permutation = PERM_REVERSE;
    test_memory_plans(bg, &c, "tiny additive reverse class-conditional");

    test_round_trips(bg);

    backend_release(bg);
    backend_release(bc);
    return check_summary();
}
