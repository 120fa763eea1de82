#include "train_config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


void glow_train_config_default(glow_train_config *t)
{
    memset(t, 0, sizeof *t);
    t->batch_size = 64;
    t->optimizer = OPTIM_ADAM;
    t->lr = 1e-3;
    t->beta1 = 0.9;
    t->beta2 = 0.999;
    t->lr_decay = LR_DECAY_NONE;
    t->lr_final = 0;
    t->warmup = 0;
    t->grad_clip = 0;
    t->ema_decay = 0;
    t->init_batch = 0;
    t->steps = 0;
    t->epochs = 0;
    t->checkpoint_every = 1000;
    t->keep_every = 0;
    t->keep_last = 0;
    t->sample_every = 1000;
    t->sample_temperatures.n = 2;
    t->sample_temperatures.v[0] = 0.7;
    t->sample_temperatures.v[1] = 1.0;
    t->val_every = 1000;
    t->log_every = 100;
    t->seed = 1;
    t->precision = PRECISION_FP32;
    t->memory = MEMORY_RECOMPUTE;
    t->memory_every = 0;
    t->memory_max_error = 1e-3;
    strcpy(t->device, "auto");
}

double glow_lr_at(const glow_train_config *t, int64_t after, int64_t step, long run_steps, double clock)
{
    double ramp = 1;
    if (t->warmup_steps > 0 && step < t->warmup_steps)
        ramp = (double)step / (double)t->warmup_steps;
    else if (t->warmup_steps <= 0 && t->warmup > 0 && after < t->warmup)
        ramp = (double)after / (double)t->warmup;
    if (t->lr_decay == LR_DECAY_NONE)
        return t->lr * ramp;
    double p = run_steps > 0 ? (double)step / (double)run_steps : 0;
    if (clock > p)
        p = clock;
    if (p > 1)
        p = 1;
    if (p < 0)
        p = 0;
    const double a = t->lr_final;
    const double f = t->lr_decay == LR_DECAY_LINEAR ? 1 - (1 - a) * p
                                                    : a + (1 - a) * 0.5 * (1 + cos(M_PI * p));
    return t->lr * ramp * f;
}

int glow_train_init_batch(const glow_train_config *t, const glow_config *model)
{
    if (t->init_batch > 0)
        return t->init_batch;
    long pixels = (long)model->image_h * model->image_w;
    if (pixels <= 32 * 32)
        return 256;
    long n = 256L * 32 * 32 / pixels;
    return n < 1 ? 1 : (int)n;
}

const char *glow_optimizer_name(glow_optimizer o)
{
    return o == OPTIM_ADAMAX ? "adamax" : "adam";
}

int glow_optimizer_parse(const char *name, glow_optimizer *o)
{
    if (strcmp(name, "adam") == 0)
        *o = OPTIM_ADAM;
    else if (strcmp(name, "adamax") == 0)
        *o = OPTIM_ADAMAX;
    else
        return -1;
    return 0;
}
