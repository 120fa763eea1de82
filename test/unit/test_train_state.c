/* The trainer's checkpoint metadata: progress and config round trips, the
 * fallbacks for checkpoints written by other tools, and the model comparison
 * that names the first differing key. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "model/model.h"
#include "train/train_state.h"

static void tiny(glow_run_config *c)
{
    glow_run_config_default(c);
    c->model.image_h = c->model.image_w = 8;
    c->model.channels = 1;
    c->model.levels = 2;
    c->model.steps = 2;
    c->model.width = 8;
    c->train.steps = 20;
}

static void test_diff(void)
{
    glow_run_config a, b;
    tiny(&a);
    tiny(&b);
    char msg[256];
    CHECK(glow_config_diff(&a.model, "A", &b.model, "B", msg, sizeof msg) == 0);
    b.model.width = 16;
    CHECK(glow_config_diff(&a.model, "A", &b.model, "B", msg, sizeof msg) == 1);
    CHECKF(strcmp(msg, "model.width: 8 in A, 16 in B") == 0, "%s", msg);
    b.model.width = 8;
    b.model.coupling = COUPLING_ADDITIVE;
    CHECK(glow_config_diff(&a.model, "A", &b.model, "B", msg, sizeof msg) == 1);
    CHECKF(strcmp(msg, "model.coupling: \"affine\" in A, \"additive\" in B") == 0, "%s", msg);
    b.model.coupling = COUPLING_AFFINE;
    b.model.image_w = 16;
    CHECK(glow_config_diff(&a.model, "A", &b.model, "B", msg, sizeof msg) == 1);
    CHECKF(strstr(msg, "model.image_size: [8,8] in A, [8,16] in B") != NULL, "%s", msg);
}

static void test_round_trip(void)
{
    glow_run_config cfg, back;
    tiny(&cfg);
    snprintf(cfg.name, sizeof cfg.name, "run7");
    snprintf(cfg.description, sizeof cfg.description, "a \"quoted\" description");
    cfg.train.lr = 2.5e-4;
    cfg.train.seed = 18446744073709551615ULL;
    cfg.train.ema_decay = 0.99;
    glow_error err;
    glow_checkpoint ck;
    CHECKF(glow_checkpoint_init(&ck, &cfg.model, &err) == 0, "%s", err.msg);
    /* Real weights: loading refuses the singular invconv of a zero layout. */
    glow_params_init(&cfg.model, &ck.params, 1);
    glow_train_progress p = {120, 960, 3, 17, 118, 12.5}, q;
    glow_train_state_put(&ck, &cfg, &p);
    /* Through a file, as a resumed run sees it. */
    char path[] = "/tmp/test_train_state.XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECKF(glow_checkpoint_save(path, &ck, &err) == 0, "%s", err.msg);
    glow_checkpoint_free(&ck);
    CHECKF(glow_checkpoint_load(path, &ck, &err) == 0, "%s", err.msg);
    unlink(path);
    CHECK(ck.step == 120 && ck.images_seen == 960);
    glow_rng r;
    CHECK(glow_checkpoint_get_rng(&ck, &r) == 0);
    CHECK(r.seed == cfg.train.seed && r.stream == RNG_STREAM_DEQUANT && r.index == 960);
    CHECKF(glow_train_progress_get(&ck, "ck", 50, &q, &err) == 0, "%s", err.msg);
    CHECK(q.step == 120 && q.images_seen == 960 && q.data_epoch == 3 && q.data_offset == 17);
    CHECK(q.optim_steps == 118);
    CHECK_NEAR(q.train_seconds, 12.5, 1e-9);
    CHECKF(glow_train_config_from_checkpoint(&ck, "ck", &back, &err) == 0, "%s", err.msg);
    CHECK(strcmp(back.name, "run7") == 0);
    CHECK(strcmp(back.description, cfg.description) == 0);
    CHECK(glow_config_equal(&back.model, &cfg.model));
    CHECK(back.train.lr == cfg.train.lr && back.train.seed == cfg.train.seed);
    CHECK(back.train.ema_decay == 0.99 && back.train.steps == 20);

    /* A checkpoint without the trainer's keys: position from images_seen. */
    glow_checkpoint bare;
    CHECKF(glow_checkpoint_init(&bare, &cfg.model, &err) == 0, "%s", err.msg);
    bare.step = 7;
    bare.images_seen = 130;
    CHECKF(glow_train_progress_get(&bare, "bare", 50, &q, &err) == 0, "%s", err.msg);
    CHECK(q.data_epoch == 2 && q.data_offset == 30 && q.optim_steps == 7 && q.train_seconds == 0);
    CHECK(glow_train_config_from_checkpoint(&bare, "bare", &back, &err) == -1);
    CHECKF(strstr(err.msg, "bare: no train_config") != NULL, "%s", err.msg);
    /* Malformed values name the key. */
    glow_checkpoint_set_meta(&bare, "data_offset", "-4");
    CHECK(glow_train_progress_get(&bare, "bare", 50, &q, &err) == -1);
    CHECKF(strstr(err.msg, "bare: metadata data_offset") != NULL, "%s", err.msg);
    glow_checkpoint_set_meta(&bare, "data_offset", "4");
    glow_checkpoint_set_meta(&bare, "train_seconds", "soon");
    CHECK(glow_train_progress_get(&bare, "bare", 50, &q, &err) == -1);
    CHECKF(strstr(err.msg, "train_seconds") != NULL, "%s", err.msg);
    glow_checkpoint_set_train_config(&bare, "{\"lr\":\"fast\"}");
    CHECK(glow_train_config_from_checkpoint(&bare, "bare", &back, &err) == -1);
    CHECKF(strstr(err.msg, "bare: train_config") != NULL, "%s", err.msg);
    glow_checkpoint_free(&bare);
    glow_checkpoint_free(&ck);
}

int main(void)
{
    test_diff();
    test_round_trip();
    return check_summary();
}
