/* Speed of the model on this machine's backend: ms per image for the forward pass
 * and for forward + backward, and the convolution GFLOP/s they reach (conv FLOPs:
 * 2*N*Cout*Cin*kh*kw*H*W per convolution forward, three times that for forward +
 * backward), best of N runs. Usage: model_bench [A128|A512|B ...] [--iters N]
 * (default: all configs, N = 3) */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "device/device.h"
#include "model/model.h"
#include "tool/tool.h"

#include "bench/bench_configs.h"


static double conv_flops(const glow_config *c, int n)
{
    double f = 0;
    const int E = c->edge_bias ? 1 : 0;
    for (int l = 0; l < c->levels; l++) {
        double C = glow_level_channels(c, l), px = (double)n * glow_level_h(c, l) * glow_level_w(c, l);
        double cout = c->coupling == COUPLING_AFFINE ? C : C / 2, W = c->width;
        double step = (C / 2 + E) * W * 9 + W * W + (W + E) * cout * 9;
        if (c->permutation == PERM_INVCONV)
            step += C * C;
        f += 2 * px * step * c->steps;
        if (l < c->levels - 1)
            f += 2 * px * (C / 2 + E) * C * 9;
        else if (c->learn_top)
            f += 2 * px * (2 * C + E) * 2 * C * 9;
    }
    return f;
}

static void run(backend *b, const bench_cfg *bc, int iters)
{
    glow_config c;
    glow_config_default(&c);
    c.image_h = c.image_w = bc->hw;
    c.channels = bc->c0;
    c.levels = bc->levels;
    c.steps = bc->steps;
    c.width = bc->width;
    glow_error err;
    glow_paramset ps;
    if (glow_paramset_layout(&c, &ps, &err))
        glow_die(1, "%s", err.msg);
    glow_params_init(&c, &ps, 1);
    glow_model *m = glow_model_new(b, &c, &ps, &err);
    if (!m)
        glow_die(1, "%s", err.msg);
    const int n = bc->batch;
    size_t D = (size_t)glow_config_dims(&c);
    uint8_t *img = xmalloc((size_t)n * D);
    glow_rng r = rng_make(7, RNG_STREAM_TEST);
    for (size_t i = 0; i < (size_t)n * D; i++)
        img[i] = (uint8_t)rng_next_below(&r, 256);
    glow_batch bt = {n, img, NULL, 3, 0, NULL};
    glow_result res;
    if (glow_model_ddi(m, &bt, &res, &err))
        glow_die(1, "%s", err.msg);
    glow_model_forward(m, &bt, &res, &err);
    glow_model_backward(m, &err); /* creates the backward primitives */
    /* the best of iters runs: the machine is shared, the minimum is the least disturbed */
    double tf = 1e30, tb = 1e30;
    for (int i = 0; i < iters; i++) {
        double t0 = now_seconds();
        glow_model_forward(m, &bt, &res, &err);
        double t = now_seconds() - t0;
        tf = t < tf ? t : tf;
    }
    for (int i = 0; i < iters; i++) {
        double t0 = now_seconds();
        glow_model_forward(m, &bt, &res, &err);
        glow_model_backward(m, &err);
        double t = now_seconds() - t0;
        tb = t < tb ? t : tb;
    }
    double fl = conv_flops(&c, n);
    printf("%-5s %dx%dx%d L=%d K=%d width %d batch %d: forward %.2f ms/image (%.0f GFLOP/s), "
           "forward+backward %.2f ms/image (%.0f GFLOP/s), loss %.3f\n",
           bc->name, bc->c0, bc->hw, bc->hw, bc->levels, bc->steps, bc->width, n, 1e3 * tf / n,
           fl / tf * 1e-9, 1e3 * tb / n, 3 * fl / tb * 1e-9, res.loss);
    fflush(stdout);
    free(img);
    glow_model_free(m);
    glow_paramset_free(&ps);
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP); /* OpenMP waiting as the tools choose it */
    int iters = 3, any = 0;
    glow_error err;
    backend *b = backend_get(DEVICE_CPU, 0, &err);
    if (!b)
        glow_die(1, "%s", err.msg);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = atoi(argv[++i]);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0) {
            i++;
            continue;
        }
        for (size_t j = 0; j < sizeof configs / sizeof *configs; j++)
            if (strcmp(argv[i], configs[j].name) == 0) {
                run(b, &configs[j], iters);
                any = 1;
            }
    }
    if (!any)
        for (size_t j = 0; j < sizeof configs / sizeof *configs; j++)
            run(b, &configs[j], iters);
    backend_release(b);
    return 0;
}
