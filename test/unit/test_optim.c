/* Adam and Adamax against torch.optim's formulas written out here in float64,
 * on a quadratic over 30 steps; gradient norm, clipping and EMA. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"
#include "device/device.h"
#include "train/optim.h"

#define N 257
#define STEPS 30

static void run(backend *b, glow_optimizer kind, double lr)
{
    double a[N], c[N], p[N], m[N], v[N];
    float hp[N], hg[N];
    glow_rng r = rng_make(3, RNG_STREAM_TEST);
    for (int i = 0; i < N; i++) {
        a[i] = 0.1 + 2 * rng_next_double(&r);
        c[i] = rng_next_normal(&r);
        p[i] = rng_next_normal(&r);
        hp[i] = (float)p[i];
        p[i] = hp[i];
        m[i] = v[i] = 0;
    }
    float *dp = b->alloc(b, sizeof hp), *dg = b->alloc(b, sizeof hg);
    b->upload(b, dp, hp, sizeof hp);
    glow_optim *o = glow_optim_new(b, kind, N);
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double worst = 0;
    for (int t = 1; t <= STEPS; t++) {
        /* the gradient at the optimizer's own (float) parameters */
        b->download(b, hp, dp, sizeof hp);
        for (int i = 0; i < N; i++)
            hg[i] = (float)(a[i] * (hp[i] - c[i]));
        b->upload(b, dg, hg, sizeof hg);
        glow_optim_step(o, dp, dg, (float)lr);
        for (int i = 0; i < N; i++) {
            double g = a[i] * (p[i] - c[i]);
            m[i] = b1 * m[i] + (1 - b1) * g;
            if (kind == OPTIM_ADAM) {
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double denom = sqrt(v[i]) / sqrt(1 - pow(b2, t)) + eps;
                p[i] -= lr / (1 - pow(b1, t)) * m[i] / denom;
            } else {
                v[i] = fmax(b2 * v[i], fabs(g) + eps);
                p[i] -= lr / (1 - pow(b1, t)) * m[i] / v[i];
            }
        }
        b->download(b, hp, dp, sizeof hp);
        for (int i = 0; i < N; i++)
            worst = fmax(worst, fabs(hp[i] - p[i]) / fmax(1, fabs(p[i])));
    }
    CHECKF(worst < 2e-6, "%s: worst deviation %g over %d steps", glow_optimizer_name(kind), worst, STEPS);
    CHECK(o->t == STEPS);
    glow_optim_free(o);
    b->free(b, dp);
    b->free(b, dg);
}

int main(void)
{
    glow_error err;
    backend *b = backend_get(DEVICE_CPU, 0, &err);
    if (!b) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    run(b, OPTIM_ADAM, 1e-2);
    run(b, OPTIM_ADAM, 5e-4);
    run(b, OPTIM_ADAMAX, 1e-2);
    run(b, OPTIM_ADAMAX, 1e-3);

    glow_optimizer k;
    CHECK(glow_optimizer_parse("adam", &k) == 0 && k == OPTIM_ADAM);
    CHECK(glow_optimizer_parse("adamax", &k) == 0 && k == OPTIM_ADAMAX);
    CHECK(glow_optimizer_parse("sgd", &k) == -1);

    /* norm, clipping, EMA */
    float hg[5] = {3, 4, 0, 0, 0}, he[5] = {1, 1, 1, 1, 1}, out[5];
    float *g = b->alloc(b, sizeof hg), *e = b->alloc(b, sizeof he);
    b->upload(b, g, hg, sizeof hg);
    b->upload(b, e, he, sizeof he);
    CHECK_NEAR(glow_grad_norm(b, g, 5), 5.0, 1e-12);
    CHECK_NEAR(glow_grad_clip(b, g, 5, 1.0), 5.0, 1e-12);
    b->download(b, out, g, sizeof out);
    CHECK_NEAR(out[0], 0.6, 1e-6);
    CHECK_NEAR(out[1], 0.8, 1e-6);
    CHECK_NEAR(glow_grad_clip(b, g, 5, 10.0), 1.0, 1e-6);
    b->download(b, out, g, sizeof out);
    CHECK_NEAR(out[1], 0.8, 1e-6); /* below the limit: unchanged */
    glow_ema_update(b, e, g, 5, 0.75f);
    b->download(b, out, e, sizeof out);
    CHECK_NEAR(out[0], 0.75 + 0.25 * 0.6, 1e-6);
    CHECK_NEAR(out[4], 0.75, 1e-6);
    b->free(b, g);
    b->free(b, e);
    backend_release(b);
    return check_summary();
}
