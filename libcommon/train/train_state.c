#include "train_state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_u64(glow_checkpoint *ck, const char *key, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    glow_checkpoint_set_meta(ck, key, buf);
}

void glow_train_state_put(glow_checkpoint *ck, const glow_run_config *cfg,
                          const glow_train_progress *p)
{
    ck->step = p->step;
    ck->images_seen = p->images_seen;
    /* The dequantisation noise of image i is drawn at index i of this stream
     * (backend.h dequantize), so the position is the images seen. */
    glow_rng r = {cfg->train.seed, RNG_STREAM_DEQUANT, (uint64_t)p->images_seen};
    glow_checkpoint_set_rng(ck, &r);
    char *json = glow_train_config_to_json(&cfg->train);
    glow_checkpoint_set_train_config(ck, json);
    free(json);
    put_u64(ck, "data_epoch", p->data_epoch);
    put_u64(ck, "data_offset", p->data_offset);
    put_u64(ck, "optim_steps", (uint64_t)p->optim_steps);
    char buf[64];
    snprintf(buf, sizeof buf, "%.3f", p->train_seconds);
    glow_checkpoint_set_meta(ck, "train_seconds", buf);
    glow_checkpoint_set_meta(ck, "name", cfg->name);
    glow_checkpoint_set_meta(ck, "description", cfg->description);
}

/* A complete decimal number of digits only, at most 2^63 - 1. */
static int parse_count(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > ((uint64_t)INT64_MAX - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static int get_u64(const glow_checkpoint *ck, const char *path, const char *key, uint64_t *out,
                   int *present, glow_error *err)
{
    const char *s = glow_checkpoint_meta(ck, key);
    *present = s != NULL;
    if (!s)
        return 0;
    if (parse_count(s, out) != 0) {
        glow_errorf(err, "%s: metadata %s: expected a non-negative integer, got '%.40s'", path,
                    key, s);
        return -1;
    }
    return 0;
}

int glow_train_state_check(const glow_checkpoint *ck, const char *path, glow_problem_fn fn,
                           void *ctx)
{
    int n = 0;
    glow_error e;
    uint64_t v, optim_steps = 0;
    int present, has_optim_steps = 0;
    static const char *const counts[] = {"data_epoch", "data_offset", "optim_steps"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (get_u64(ck, path, counts[i], &v, &present, &e) != 0) {
            n++;
            if (fn)
                fn(ctx, e.msg);
        } else if (present && i == 2) {
            optim_steps = v;
            has_optim_steps = 1;
        }
    }
    if (has_optim_steps && optim_steps > (uint64_t)ck->step) {
        glow_errorf(&e, "%s: metadata optim_steps: %llu optimizer updates in %lld steps", path,
                    (unsigned long long)optim_steps, (long long)ck->step);
        n++;
        if (fn)
            fn(ctx, e.msg);
    }
    const char *s = glow_checkpoint_meta(ck, "train_seconds");
    double secs;
    if (s && (parse_double(s, &secs) != 0 || !isfinite(secs) || secs < 0)) {
        glow_errorf(&e, "%s: metadata train_seconds: expected a number of seconds, got '%.40s'",
                    path, s);
        n++;
        if (fn)
            fn(ctx, e.msg);
    }
    if (ck->train_config) {
        glow_train_config tc;
        if (glow_train_config_from_json(ck->train_config, &tc, &e) != 0) {
            glow_error_prefix(&e, "%s: metadata train_config", path);
            n++;
            if (fn)
                fn(ctx, e.msg);
        } else if (ck->has_optim && strcmp(ck->optimizer, glow_optimizer_name(tc.optimizer)) != 0) {
            glow_errorf(&e, "%s: metadata train_config: optimizer %s, but the optimizer state "
                            "is %s", path, glow_optimizer_name(tc.optimizer), ck->optimizer);
            n++;
            if (fn)
                fn(ctx, e.msg);
        }
    }
    return n;
}

static void keep_first(void *ctx, const char *msg)
{
    glow_error *e = ctx;
    if (!e->msg[0])
        glow_errorf(e, "%s", msg);
}

int glow_train_progress_get(const glow_checkpoint *ck, const char *path, uint64_t n_images,
                            glow_train_progress *p, glow_error *err)
{
    memset(p, 0, sizeof *p);
    /* Everything glow-ckpt --verify checks of the training state. */
    glow_error first = {{0}};
    if (glow_train_state_check(ck, path, keep_first, &first) != 0) {
        *err = first;
        return -1;
    }
    p->step = ck->step;
    p->images_seen = ck->images_seen;
    uint64_t e = 0, o = 0, t = 0;
    int he, ho, ht;
    if (get_u64(ck, path, "data_epoch", &e, &he, err) || get_u64(ck, path, "data_offset", &o, &ho, err) ||
        get_u64(ck, path, "optim_steps", &t, &ht, err))
        return -1;
    if (he && ho) {
        p->data_epoch = e;
        p->data_offset = o;
    } else {
        p->data_epoch = (uint64_t)p->images_seen / n_images;
        p->data_offset = (uint64_t)p->images_seen % n_images;
    }
    p->optim_steps = ht ? (long)t : (long)p->step;
    const char *s = glow_checkpoint_meta(ck, "train_seconds");
    if (s && parse_double(s, &p->train_seconds) != 0) {
        glow_errorf(err, "%s: metadata train_seconds: expected a number, got '%s'", path, s);
        return -1;
    }
    return 0;
}

int glow_train_config_from_checkpoint(const glow_checkpoint *ck, const char *path,
                                      glow_run_config *cfg, glow_error *err)
{
    glow_run_config_default(cfg);
    cfg->model = ck->cfg;
    if (!ck->train_config) {
        glow_errorf(err, "%s: no train_config in the checkpoint; give the config with -c CONFIG",
                    path);
        return -1;
    }
    if (glow_train_config_from_json(ck->train_config, &cfg->train, err) != 0) {
        glow_error_prefix(err, "%s: train_config", path);
        return -1;
    }
    const char *name = glow_checkpoint_meta(ck, "name");
    const char *desc = glow_checkpoint_meta(ck, "description");
    snprintf(cfg->name, sizeof cfg->name, "%s", name ? name : "");
    snprintf(cfg->description, sizeof cfg->description, "%s", desc ? desc : "");
    return 0;
}

int glow_train_state_resumable(const glow_checkpoint *ck, const char *path,
                               const glow_train_config *tc, glow_error *err)
{
    if (!ck->has_optim) {
        glow_errorf(err, "%s: a weights-only checkpoint (no optimizer state) cannot be resumed; "
                         "fine-tune from it with --init",
                    path);
        return -1;
    }
    if (strcmp(ck->optimizer, glow_optimizer_name(tc->optimizer)) != 0) {
        glow_errorf(err, "%s: train.optimizer: the checkpoint holds %s state but the config says "
                         "%s; resume with %s, or fine-tune with --init",
                    path, ck->optimizer, glow_optimizer_name(tc->optimizer), ck->optimizer);
        return -1;
    }
    return 0;
}
