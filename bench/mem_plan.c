/* The largest batch that trains within a memory limit under each train.memory
 * plan, from the memory budget alone (glow_trainer_plan: what glow-train checks
 * before it allocates anything; nothing is allocated here). On the CPU backend,
 * whose memory is host memory, as glow-train on the CPU counts it.
 * Usage: mem_plan [--gib G] [A128|A512|B|G64 ...]  (default: 8 GiB, A512 B G64)
 * Prints one line per config and plan: the largest batch, and the bytes the plan
 * needs for it. */
#include <stdlib.h>
#include <string.h>

#include "base/mem_budget.h"
#include "config/run_config.h"
#include "train/train_loop.h"

typedef struct {
    const char *name;
    int c0, hw, levels, steps, width;
} plan_cfg;

/* the benchmark configs of bench/run_bench.py and configs/glow-64x64-imagenet.yml */
static const plan_cfg configs[] = {
    {"A128", 1, 32, 3, 8, 128},
    {"A512", 1, 32, 3, 8, 512},
    {"B", 3, 32, 3, 32, 512},
    {"G64", 3, 64, 4, 48, 512},
};

static int fits(glow_run_config *cfg, int n)
{
    glow_error err;
    cfg->train.batch_size = n;
    return glow_trainer_plan(cfg, 1, &err) == 0;
}

int main(int argc, char **argv)
{
    double gib = 8;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "--gib") == 0) {
        gib = atof(argv[2]);
        first = 3;
    }
    if (!(gib > 0)) {
        fprintf(stderr, "usage: mem_plan [--gib G] [A128|A512|B|G64 ...]\n");
        return 2;
    }
    const uint64_t limit = (uint64_t)(gib * 1073741824.0);
    glow_mem_set_limit(limit);
    if (glow_mem_limit() < limit) {
        fprintf(stderr, "mem_plan: only %.1f GiB available here; the limit would be capped\n",
                (double)glow_mem_limit() / 1073741824.0);
        return 1;
    }
    static const char *const def[] = {"A512", "B", "G64"};
    const int n_names = argc > first ? argc - first : 3;
    static const char *const modes[] = {"store", "recompute", "invert"};
    for (int a = 0; a < n_names; a++) {
        const char *want = argc > first ? argv[first + a] : def[a];
        const plan_cfg *pc = NULL;
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
            if (strcmp(configs[i].name, want) == 0)
                pc = &configs[i];
        if (!pc) {
            fprintf(stderr, "mem_plan: unknown config '%s' (A128, A512, B, G64)\n", want);
            return 2;
        }
        for (int m = 0; m < 3; m++) {
            glow_run_config cfg;
            glow_run_config_default(&cfg);
            cfg.model.channels = pc->c0;
            cfg.model.image_h = cfg.model.image_w = pc->hw;
            cfg.model.levels = pc->levels;
            cfg.model.steps = pc->steps;
            cfg.model.width = pc->width;
            cfg.train.memory = (glow_memory_mode)m;
            cfg.train.steps = 1;
            /* the init batch as in the benchmark (its own allocation, released
             * before training) is not what limits the batch */
            cfg.train.init_batch = 1;
            /* the largest n that fits: double, then bisect */
            int lo = 0, hi = 1;
            while (hi <= (1 << 20) && fits(&cfg, hi)) {
                lo = hi;
                hi *= 2;
            }
            while (hi - lo > 1) {
                int mid = lo + (hi - lo) / 2;
                if (fits(&cfg, mid))
                    lo = mid;
                else
                    hi = mid;
            }
            printf("%s %s: largest batch in %.3g GiB: %d\n", pc->name, modes[m], gib, lo);
        }
    }
    return 0;
}
