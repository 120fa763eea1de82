/* The model shapes make bench times (bench/README.md): A128 and A512 are
 * 1x32x32 with L=3, K=8 at width 128 and 512, batch 32; B is 3x32x32 with
 * L=3, K=32, width 512, batch 16. One table for model_bench and conv_ops, so
 * the two measure the same shapes (run_bench.py's CONFIGS say the same). */
#ifndef GLOW_BENCH_CONFIGS_H
#define GLOW_BENCH_CONFIGS_H

typedef struct {
    const char *name;
    int c0, hw, levels, steps, width, batch;
} bench_cfg;

static const bench_cfg configs[] = {
    {"A128", 1, 32, 3, 8, 128, 32},
    {"A512", 1, 32, 3, 8, 512, 32},
    {"B", 3, 32, 3, 32, 512, 16},
};

#endif
