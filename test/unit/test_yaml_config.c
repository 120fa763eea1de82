/* Configuration files: every shipped config loads and validates; overrides are
 * typed like the file; every error names the file, the line and the key; the
 * YAML writer and the train section's JSON read back to the same config. */
#include <dirent.h>
#include <math.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config/config_find.h"
#include "config/yaml_config.h"
#include "tiny_config.h"

static int contains(const char *msg, const char *part)
{
    return strstr(msg, part) != NULL;
}

/* Write text to a fresh temp file; returns its path (static buffer). */
static const char *temp_config(const char *text)
{
    static char path[256];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/glow-cfg-XXXXXX.yml", dir && *dir ? dir : "/tmp");
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        perror("mkstemps");
        exit(1);
    }
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) {
        perror("write");
        exit(1);
    }
    close(fd);
    return path;
}

/* Load text as a file; it must fail with a message holding the file name and
 * every one of the parts (a NULL-terminated list). */
static void expect_error(const char *what, const char *text, const char *const *parts)
{
    const char *path = temp_config(text);
    glow_run_config cfg;
    glow_error err = {""};
    int rc = glow_run_config_load(path, NULL, 0, &cfg, &err);
    CHECKF(rc == -1, "%s: loaded without error", what);
    CHECKF(contains(err.msg, path), "%s: no file name in '%s'", what, err.msg);
    for (int i = 0; parts[i]; i++)
        CHECKF(contains(err.msg, parts[i]), "%s: '%s' not in '%s'", what, parts[i], err.msg);
    unlink(path);
}

/* Field by field: struct copies need not carry padding bytes. */
static int train_equal(const glow_train_config *a, const glow_train_config *b)
{
    return a->batch_size == b->batch_size && a->optimizer == b->optimizer && a->lr == b->lr &&
           a->beta1 == b->beta1 && a->beta2 == b->beta2 && a->warmup == b->warmup &&
           a->grad_clip == b->grad_clip && a->ema_decay == b->ema_decay &&
           a->init_batch == b->init_batch && a->steps == b->steps && a->epochs == b->epochs &&
           a->checkpoint_every == b->checkpoint_every && a->val_every == b->val_every &&
           a->log_every == b->log_every && a->seed == b->seed && a->precision == b->precision &&
           strcmp(a->device, b->device) == 0 && a->warmup_steps == b->warmup_steps &&
           a->keep_every == b->keep_every && a->keep_last == b->keep_last &&
           a->sample_every == b->sample_every && a->lr_decay == b->lr_decay &&
           a->lr_final == b->lr_final &&
           a->sample_temperatures.n == b->sample_temperatures.n &&
           !memcmp(a->sample_temperatures.v, b->sample_temperatures.v,
                   (size_t)a->sample_temperatures.n * sizeof(double));
}

#define ERR(what, text, ...) expect_error(what, text, (const char *const[]){__VA_ARGS__, NULL})

static const char *GOOD_HEAD = "name: t\n"
                               "model:\n"
                               "  image_size: [32, 32]\n"
                               "  channels: 1\n";

static void test_shipped_configs(void)
{
    const char *expected[] = {"cifar10.yml", "fashion-mnist.yml", "glow-256x256-celeba-v0.yml",
                              "glow-256x256-celeba-v1.yml", "glow-64x64-imagenet.yml",
                              "tiny.yml"};
    int found[6] = {0};
    DIR *d = opendir("configs");
    CHECKF(d != NULL, "run from the repository root: configs/ not found");
    if (!d)
        return;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".yml") != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "configs/%s", e->d_name);
        glow_run_config cfg;
        glow_error err = {""};
        int rc = glow_run_config_load(path, NULL, 0, &cfg, &err);
        CHECKF(rc == 0, "%s: %s", path, err.msg);
        CHECKF(cfg.name[0] != '\0', "%s: no name", path);
        /* What is written out reads back to the same config. */
        char *yaml = glow_run_config_to_yaml(&cfg);
        glow_run_config back;
        rc = glow_run_config_parse_string(yaml, strlen(yaml), path, &back, &err);
        CHECKF(rc == 0 && glow_run_config_validate(&back, &err) == 0, "%s rewritten: %s", path,
               err.msg);
        CHECKF(glow_config_equal(&cfg.model, &back.model) &&
                   train_equal(&cfg.train, &back.train) &&
                   strcmp(cfg.name, back.name) == 0 &&
                   strcmp(cfg.description, back.description) == 0,
               "%s: YAML round trip differs", path);
        free(yaml);
        for (int i = 0; i < 6; i++)
            found[i] |= strcmp(e->d_name, expected[i]) == 0;
        n++;
    }
    closedir(d);
    for (int i = 0; i < 6; i++)
        CHECKF(found[i], "configs/%s missing", expected[i]);
    CHECK(n >= 6);
}

static void load_ok(const char *path, glow_run_config *cfg)
{
    glow_error err = {""};
    int rc = glow_run_config_load(path, NULL, 0, cfg, &err);
    CHECKF(rc == 0, "%s: %s", path, err.msg);
}

static void test_shipped_values(void)
{
    glow_run_config c;
    load_ok("configs/glow-64x64-imagenet.yml", &c);
    CHECK(c.model.image_h == 64 && c.model.image_w == 64 && c.model.channels == 3);
    CHECK(c.model.levels == 4 && c.model.steps == 48 && c.model.width == 512);
    CHECK(c.model.permutation == PERM_INVCONV && c.model.coupling == COUPLING_AFFINE);
    CHECK(c.model.n_bits == 8 && c.model.learn_top && !c.model.y_condition);
    CHECK(c.train.batch_size == 64 && c.train.optimizer == OPTIM_ADAM && c.train.lr == 1e-3);
    CHECK(glow_train_init_batch(&c.train, &c.model) == 64);

    CHECK(c.train.warmup_steps == 5000 && c.train.warmup == 0);

    load_ok("configs/glow-256x256-celeba-v0.yml", &c);
    /* the 5000 steps the comments promise, on any number of GPUs */
    CHECK(c.train.warmup_steps == 5000 && c.train.warmup == 0);
    CHECK(c.train.keep_every == 20000 && c.train.keep_last == 5 && c.train.sample_every == 2000);
    CHECK(c.model.image_h == 256 && c.model.levels == 6 && c.model.steps == 32);
    CHECK(c.model.permutation == PERM_SHUFFLE && c.model.coupling == COUPLING_ADDITIVE);
    CHECK(c.model.n_bits == 5 && c.train.batch_size == 8);
    CHECK(glow_train_init_batch(&c.train, &c.model) == 4);

    load_ok("configs/glow-256x256-celeba-v1.yml", &c);
    CHECK(c.train.warmup_steps == 5000 && c.train.warmup == 0);
    CHECK(c.model.permutation == PERM_INVCONV && c.model.coupling == COUPLING_AFFINE);
    CHECK(c.model.n_bits == 5 && c.model.levels == 6);

    load_ok("configs/cifar10.yml", &c);
    CHECK(c.model.image_h == 32 && c.model.channels == 3 && c.model.levels == 3);
    CHECK(c.model.steps == 32 && c.model.width == 512 && c.train.optimizer == OPTIM_ADAMAX);
    CHECK(c.train.warmup == 500000 && c.train.epochs > 0 && c.train.steps == 0);

    load_ok("configs/fashion-mnist.yml", &c);
    CHECK(c.model.image_h == 32 && c.model.channels == 1 && c.model.levels == 3);
    CHECK(c.model.steps == 8 && c.model.width == 64 && !c.model.lu);
    CHECK(c.train.batch_size == 16 && c.train.steps > 0);
    CHECK(strcmp(c.train.device, "auto") == 0);

    load_ok("configs/tiny.yml", &c);
    CHECK(c.model.levels == 2 && c.model.steps == 2 && c.model.width == 8);
    CHECK(c.train.steps > 0 && c.train.steps <= 100);
    /* the model the C tests build as tiny_config() */
    glow_config tiny = tiny_config();
    char diff[256];
    CHECKF(!glow_config_diff(&c.model, "configs/tiny.yml", &tiny, "tiny_config()", diff, sizeof diff),
           "%s", diff);
}

static void test_defaults_and_init_batch(void)
{
    glow_run_config c;
    glow_error err = {""};
    const char *text = "model:\n  image_size: 16\ntrain:\n  steps: 7\n";
    CHECK(glow_run_config_parse_string(text, strlen(text), "mem", &c, &err) == 0);
    CHECK(glow_run_config_validate(&c, &err) == 0);
    CHECK(c.model.image_h == 16 && c.model.image_w == 16 && c.model.channels == 3);
    CHECK(c.model.levels == 3 && c.model.width == 512 && c.model.edge_bias);
    CHECK(c.train.batch_size == 64 && c.train.lr == 1e-3 && c.train.optimizer == OPTIM_ADAM);
    CHECK(c.train.precision == PRECISION_FP32 && strcmp(c.train.device, "auto") == 0);
    CHECK(c.train.steps == 7 && c.train.epochs == 0 && c.train.init_batch == 0);
    CHECK(glow_train_init_batch(&c.train, &c.model) == 256);
    c.model.image_h = c.model.image_w = 28;
    CHECK(glow_train_init_batch(&c.train, &c.model) == 256);
    c.model.image_h = 64;
    c.model.image_w = 32;
    CHECK(glow_train_init_batch(&c.train, &c.model) == 128);
    c.model.image_h = c.model.image_w = 4096;
    CHECK(glow_train_init_batch(&c.train, &c.model) == 1);
    c.train.init_batch = 100;
    CHECK(glow_train_init_batch(&c.train, &c.model) == 100);

    /* yes/no booleans, a single-int image size, epochs as a float, comments. */
    const char *t2 = "model:\n  image_size: [16, 8] # H, W\n  lu: yes\n  learn_top: No\n"
                     "  levels: 2\ntrain:\n  epochs: 1.5\n  seed: 18446744073709551615\n"
                     "  precision: bf16\n  device: cuda:3\n";
    CHECK(glow_run_config_parse_string(t2, strlen(t2), "mem", &c, &err) == 0);
    CHECKF(glow_run_config_validate(&c, &err) == 0, "%s", err.msg);
    CHECK(c.model.image_h == 16 && c.model.image_w == 8);
    CHECK(c.model.lu == 1 && c.model.learn_top == 0);
    CHECK(c.train.epochs == 1.5 && c.train.steps == 0 && c.train.seed == UINT64_MAX);
    CHECK(c.train.precision == PRECISION_BF16 && strcmp(c.train.device, "cuda:3") == 0);
}

static void override_fails(glow_run_config *c, const char *kv, const char *p1, const char *p2)
{
    glow_error err = {""};
    glow_run_config before = *c;
    CHECKF(config_set_override(c, kv, &err) == -1, "'%s' accepted", kv);
    CHECKF(contains(err.msg, p1), "'%s': '%s' not in '%s'", kv, p1, err.msg);
    CHECKF(!p2 || contains(err.msg, p2), "'%s': '%s' not in '%s'", kv, p2, err.msg);
    CHECKF(memcmp(&before, c, sizeof before) == 0, "'%s' changed the config", kv);
}

static void test_overrides(void)
{
    glow_run_config c;
    glow_error err = {""};
    load_ok("configs/tiny.yml", &c);
    CHECK(config_set_override(&c, "train.lr=1e-4", &err) == 0 && c.train.lr == 1e-4);
    CHECK(config_set_override(&c, "model.width=64", &err) == 0 && c.model.width == 64);
    CHECK(config_set_override(&c, "model.image_size=[64, 48]", &err) == 0 &&
          c.model.image_h == 64 && c.model.image_w == 48);
    CHECK(config_set_override(&c, "model.image_size=16", &err) == 0 && c.model.image_h == 16 &&
          c.model.image_w == 16);
    CHECK(config_set_override(&c, "model.lu=true", &err) == 0 && c.model.lu == 1);
    CHECK(config_set_override(&c, "model.coupling=additive", &err) == 0 &&
          c.model.coupling == COUPLING_ADDITIVE);
    CHECK(config_set_override(&c, "train.optimizer=adamax", &err) == 0 &&
          c.train.optimizer == OPTIM_ADAMAX);
    CHECK(config_set_override(&c, "train.device=cuda:1", &err) == 0 &&
          strcmp(c.train.device, "cuda:1") == 0);
    CHECK(config_set_override(&c, "train.seed=12345678901234567890", &err) == 0 &&
          c.train.seed == 12345678901234567890ull);
    CHECK(config_set_override(&c, "name=my run: #2", &err) == 0 &&
          strcmp(c.name, "my run: #2") == 0);
    CHECK(config_set_override(&c, "train.warmup=0", &err) == 0 && c.train.warmup == 0);
    /* The command line picks the run length: one clears the other. */
    CHECK(config_set_override(&c, "train.epochs=2.5", &err) == 0 && c.train.epochs == 2.5 &&
          c.train.steps == 0);
    CHECK(config_set_override(&c, "train.steps=9", &err) == 0 && c.train.steps == 9 &&
          c.train.epochs == 0);
    CHECKF(glow_run_config_validate(&c, &err) == 0, "%s", err.msg);

    override_fails(&c, "train.lr=abc", "train.lr", "expected a number, got 'abc'");
    override_fails(&c, "train.lr=-1", "train.lr", "must be > 0");
    override_fails(&c, "train.lr=", "train.lr", "got nothing");
    override_fails(&c, "train.lr=inf", "train.lr", "expected a number");
    override_fails(&c, "train.steps=1.5", "train.steps", "expected an integer, got '1.5'");
    override_fails(&c, "train.steps=0", "train.steps", "must be >= 1");
    override_fails(&c, "train.batch_size=99999999999999999999", "train.batch_size", "must be");
    override_fails(&c, "train.batch_size='8'", "train.batch_size", "quoted string");
    override_fails(&c, "train.seed=-1", "train.seed", "expected an integer");
    override_fails(&c, "train.ema_decay=1", "train.ema_decay", "must be in [0, 1)");
    override_fails(&c, "model.lu=maybe", "model.lu", "expected true or false");
    override_fails(&c, "model.n_bits=9", "model.n_bits", "between 1 and 8");
    override_fails(&c, "model.image_size=[1, 2, 3]", "model.image_size", "a list of 3");
    override_fails(&c, "model.image_size=[16, x]", "model.image_size", "[H, W]");
    override_fails(&c, "train.optimizer=sgd", "train.optimizer", "one of adam, adamax");
    override_fails(&c, "train.precision=fp16", "train.precision", "fp32, tf32, bf16");
    override_fails(&c, "train.device=gpu", "train.device", "cpu, cuda, cuda:N or auto");
    override_fails(&c, "train.lrr=1", "unknown key 'train.lrr'", "did you mean 'train.lr'");
    override_fails(&c, "model.widht=3", "unknown key 'model.widht'", "did you mean 'model.width'");
    override_fails(&c, "lr=1", "unknown key 'lr'", NULL);
    override_fails(&c, "train.lr", "expected KEY=VALUE", NULL);
    override_fails(&c, "=3", "expected KEY=VALUE", NULL);
    override_fails(&c, "train.lr=[1", "train.lr", "cannot read");

    /* Overrides through load: applied before validation, errors say --set. */
    const char *ok[] = {"train.epochs=1", "model.levels=1"};
    CHECK(glow_run_config_load("configs/tiny.yml", ok, 2, &c, &err) == 0);
    CHECK(c.train.steps == 0 && c.train.epochs == 1 && c.model.levels == 1);
    const char *bad[] = {"train.lr=x"};
    CHECK(glow_run_config_load("configs/tiny.yml", bad, 1, &c, &err) == -1);
    CHECKF(contains(err.msg, "--set train.lr=x") && contains(err.msg, "expected a number"), "%s",
           err.msg);
    /* An override can make the model invalid; validation still runs and points
     * at the file's line of the key it names, unless an override set that key. */
    const char *deep[] = {"model.levels=4"};
    CHECK(glow_run_config_load("configs/tiny.yml", deep, 1, &c, &err) == -1);
    CHECKF(contains(err.msg, "configs/tiny.yml: line 7: model.image_size: 8x8 is not divisible"),
           "%s", err.msg);
    const char *deep2[] = {"model.levels=4", "model.image_size=[8, 8]"};
    CHECK(glow_run_config_load("configs/tiny.yml", deep2, 2, &c, &err) == -1);
    CHECKF(contains(err.msg, "configs/tiny.yml: model.image_size: 8x8 is not divisible"), "%s",
           err.msg);
}

static void test_train_json(void)
{
    glow_run_config c;
    glow_error err = {""};
    load_ok("configs/cifar10.yml", &c);
    c.train.seed = UINT64_MAX - 1;
    c.train.lr = 0.1 + 0.2; /* not a short decimal: needs every digit */
    strcpy(c.train.device, "cuda:2");
    char *json = glow_train_config_to_json(&c.train);
    CHECK(contains(json, "\"seed\":\"18446744073709551614\""));
    CHECK(contains(json, "\"optimizer\":\"adamax\"") && !contains(json, "\"steps\""));
    glow_train_config t;
    CHECKF(glow_train_config_from_json(json, &t, &err) == 0, "%s", err.msg);
    CHECK(train_equal(&t, &c.train));
    free(json);

    CHECK(glow_train_config_from_json("{\"steps\": 5}", &t, &err) == 0 && t.steps == 5 &&
          t.batch_size == 64);
    CHECK(glow_train_config_from_json("{\"steps\": 5, \"lrr\": 1}", &t, &err) == -1 &&
          contains(err.msg, "train.lrr"));
    CHECK(glow_train_config_from_json("{\"steps\": \"five\"}", &t, &err) == -1 &&
          contains(err.msg, "train.steps") && contains(err.msg, "expected an integer"));
    CHECK(glow_train_config_from_json("{\"steps\": 5, \"lr\": true}", &t, &err) == -1 &&
          contains(err.msg, "train.lr"));
    CHECK(glow_train_config_from_json("{\"steps\": 5, \"steps\": 6}", &t, &err) == -1 &&
          contains(err.msg, "twice"));
    CHECK(glow_train_config_from_json("{\"steps\": 5, \"epochs\": 1}", &t, &err) == -1 &&
          contains(err.msg, "both"));
    CHECK(glow_train_config_from_json("{}", &t, &err) == -1 && contains(err.msg, "required"));
    CHECK(glow_train_config_from_json("[1]", &t, &err) == -1);
    CHECK(glow_train_config_from_json("{\"steps\": 5, \"batch_size\": [1]}", &t, &err) == -1 &&
          contains(err.msg, "train.batch_size"));
}

/* The keys added after checkpoints had a train section: the list type, the
 * warm-up in steps, and the train JSON that leaves them out at their defaults
 * (so old runs' train_config is unchanged); integers written as integers. */
static void test_new_train_keys(void)
{
    glow_run_config c;
    glow_error err = {""};
    load_ok("configs/tiny.yml", &c);
    CHECK(c.train.sample_every == 1000 && c.train.keep_every == 0 && c.train.keep_last == 0);
    CHECK(c.train.sample_temperatures.n == 2 && c.train.sample_temperatures.v[0] == 0.7 &&
          c.train.sample_temperatures.v[1] == 1.0);
    char *json = glow_train_config_to_json(&c.train);
    CHECKF(!contains(json, "warmup_steps") && !contains(json, "keep_") && !contains(json, "sample_") &&
               !contains(json, "lr_decay") && !contains(json, "lr_final"),
           "%s", json);
    CHECK(contains(json, "\"warmup\":16,"));
    free(json);

    CHECK(config_set_override(&c, "train.sample_temperatures=[0, 0.5, 1.25]", &err) == 0);
    CHECK(c.train.sample_temperatures.n == 3 && c.train.sample_temperatures.v[2] == 1.25);
    CHECK(config_set_override(&c, "train.sample_temperatures=0.9", &err) == 0);
    CHECK(c.train.sample_temperatures.n == 1 && c.train.sample_temperatures.v[0] == 0.9);
    CHECK(config_set_override(&c, "train.sample_temperatures=[0.5, 0.7]", &err) == 0);
    CHECK(config_set_override(&c, "train.sample_temperatures=[]", &err) == -1 &&
          contains(err.msg, "a number or a list of 1 to 8 numbers"));
    CHECK(config_set_override(&c, "train.sample_temperatures=[1, 2, 3, 4, 5, 6, 7, 8, 9]", &err) ==
          -1);
    CHECK(config_set_override(&c, "train.sample_temperatures=[0.7, -1]", &err) == -1 &&
          contains(err.msg, "each number must be in [0, 10], got -1"));
    CHECK(config_set_override(&c, "train.sample_temperatures=[a]", &err) == -1);
    CHECK(config_set_override(&c, "train.keep_every=500", &err) == 0 && c.train.keep_every == 500);
    CHECK(config_set_override(&c, "train.keep_last=-1", &err) == -1);
    /* one of warmup and warmup_steps: an override of one clears the other */
    CHECK(config_set_override(&c, "train.warmup_steps=100", &err) == 0 && c.train.warmup == 0);
    CHECK(glow_run_config_validate(&c, &err) == 0);
    CHECK(config_set_override(&c, "train.warmup=64", &err) == 0 && c.train.warmup_steps == 0);
    c.train.warmup_steps = 3;
    CHECK(glow_run_config_validate(&c, &err) == -1 &&
          contains(err.msg, "train.warmup, train.warmup_steps: both are set"));
    c.train.warmup = 0;
    c.train.steps = 3000000000L; /* past an int, and past cJSON's %d */
    CHECK(config_set_override(&c, "train.lr_decay=cosine", &err) == 0 &&
          c.train.lr_decay == LR_DECAY_COSINE);
    CHECK(config_set_override(&c, "train.lr_decay=exponential", &err) == -1 &&
          contains(err.msg, "train.lr_decay"));
    CHECK(config_set_override(&c, "train.lr_final=1.5", &err) == -1 && contains(err.msg, "train.lr_final"));
    CHECK(config_set_override(&c, "train.lr_final=0.25", &err) == 0 && c.train.lr_final == 0.25);

    /* set keys travel in the JSON and come back; the YAML writer writes the list */
    json = glow_train_config_to_json(&c.train);
    CHECKF(contains(json, "\"sample_temperatures\":[0.5,0.7]") &&
               contains(json, "\"keep_every\":500") && contains(json, "\"warmup_steps\":3") &&
               contains(json, "\"steps\":3000000000,") && contains(json, "\"lr_decay\":\"cosine\"") &&
               contains(json, "\"lr_final\":0.25"),
           "%s", json);
    glow_train_config t;
    CHECKF(glow_train_config_from_json(json, &t, &err) == 0, "%s", err.msg);
    CHECK(train_equal(&t, &c.train));
    free(json);
    char *yaml = glow_run_config_to_yaml(&c);
    CHECKF(contains(yaml, "  sample_temperatures: [0.5, 0.7]\n") &&
               contains(yaml, "  warmup_steps: 3\n") && contains(yaml, "  lr_decay: cosine\n"),
           "%s", yaml);
    glow_run_config back;
    CHECKF(glow_run_config_parse_string(yaml, strlen(yaml), "yaml", &back, &err) == 0, "%s", err.msg);
    CHECK(train_equal(&back.train, &c.train));
    free(yaml);

    /* an integer key an earlier version wrote as 1e+06 reads back as the integer */
    CHECKF(glow_train_config_from_json("{\"steps\": 1e+06, \"log_every\": 1E3}", &t, &err) == 0,
           "%s", err.msg);
    CHECK(t.steps == 1000000 && t.log_every == 1000);
    CHECK(glow_train_config_from_json("{\"steps\": 1.5}", &t, &err) == -1 &&
          contains(err.msg, "expected an integer"));
}

/* glow_lr_at: the warm-up ramp times the decay at max(step / run_steps, clock). */
static void test_lr_schedule(void)
{
    glow_train_config t;
    glow_train_config_default(&t);
    t.lr = 1e-3;
    CHECK(glow_lr_at(&t, 0, 1, 100, 0) == 1e-3 && glow_lr_at(&t, 0, 100, 100, 0.9) == 1e-3);
    t.warmup = 64; /* images */
    CHECK(fabs(glow_lr_at(&t, 16, 1, 100, 0) - 2.5e-4) < 1e-15 && glow_lr_at(&t, 64, 4, 100, 0) == 1e-3);
    t.lr_decay = LR_DECAY_LINEAR;
    CHECK(fabs(glow_lr_at(&t, 640, 50, 100, 0) - 5e-4) < 1e-15);
    CHECK(fabs(glow_lr_at(&t, 16, 50, 100, 0) - 1.25e-4) < 1e-15); /* ramp x decay */
    CHECK(glow_lr_at(&t, 6400, 100, 100, 0) == 0);
    t.lr_final = 0.1;
    CHECK(fabs(glow_lr_at(&t, 6400, 100, 100, 0) - 1e-4) < 1e-15);
    CHECK(fabs(glow_lr_at(&t, 6400, 200, 100, 0) - 1e-4) < 1e-15); /* past the end: stays */
    t.lr_decay = LR_DECAY_COSINE;
    t.lr_final = 0;
    CHECK(fabs(glow_lr_at(&t, 640, 50, 100, 0) - 5e-4) < 1e-15);
    CHECK(fabs(glow_lr_at(&t, 640, 25, 100, 0) - 1e-3 * 0.5 * (1 + cos(M_PI / 4))) < 1e-15);
    /* the clock, when further on than the steps, leads */
    CHECK(fabs(glow_lr_at(&t, 640, 10, 1000000, 0.5) - 5e-4) < 1e-15);
    CHECK(glow_lr_at(&t, 640, 10, 1000000, 1.2) == 0);
    CHECK(fabs(glow_lr_at(&t, 640, 500000, 1000000, 0.1) - 5e-4) < 1e-15);
    t.warmup = 0;
    t.warmup_steps = 10;
    CHECK(fabs(glow_lr_at(&t, 0, 5, 1000, 0) - 0.5e-3 * 0.5 * (1 + cos(M_PI * 0.005))) < 1e-15);
}

/* A file of the train section alone: refused as a config, read by the variant
 * for fine-tuning (whose model is the checkpoint's). */
static void test_train_only_file(void)
{
    const char *path = temp_config("train:\n  steps: 7\n  lr: 2.0e-4\n");
    glow_run_config c;
    glow_error err = {""};
    CHECK(glow_run_config_parse_file(path, &c, &err) == -1 && contains(err.msg, "missing the 'model'"));
    int has_model = -1;
    CHECKF(glow_run_config_parse_file_opt(path, &c, &has_model, &err) == 0, "%s", err.msg);
    CHECK(has_model == 0 && c.train.steps == 7 && c.train.lr == 2e-4);
    unlink(path);
    path = temp_config("model:\n  image_size: 8\ntrain:\n  steps: 7\n");
    CHECK(glow_run_config_parse_file_opt(path, &c, &has_model, &err) == 0 && has_model == 1 &&
          c.model.image_h == 8);
    unlink(path);
    path = temp_config("model:\n  channels: 1\ntrain:\n  steps: 7\n");
    CHECK(glow_run_config_parse_file_opt(path, &c, &has_model, &err) == -1 &&
          contains(err.msg, "model.image_size is required"));
    unlink(path);
}

static void test_error_paths(void)
{
    char text[2048];

    snprintf(text, sizeof text, "%s  levels: 3\n  widht: 64\ntrain:\n  steps: 10\n", GOOD_HEAD);
    ERR("unknown model key", text, "line 6", "unknown key 'widht' in model",
        "did you mean 'width'");

    snprintf(text, sizeof text, "%strain:\n  steps: 10\n  learning_rate: 0.1\n", GOOD_HEAD);
    ERR("unknown train key", text, "line 7", "unknown key 'learning_rate' in train");

    snprintf(text, sizeof text, "%smodle:\n  width: 3\ntrain:\n  steps: 10\n", GOOD_HEAD);
    ERR("unknown top-level key", text, "line 5", "unknown key 'modle' at top level",
        "did you mean 'model'");

    snprintf(text, sizeof text, "%strain:\n  batch_size: 8\n  steps: ten\n", GOOD_HEAD);
    ERR("wrong type", text, "line 7", "train.steps", "expected an integer, got 'ten'");

    snprintf(text, sizeof text, "%strain:\n  batch_size: \"8\"\n  steps: 3\n", GOOD_HEAD);
    ERR("quoted number", text, "line 6", "train.batch_size", "quoted string");

    snprintf(text, sizeof text, "%s  learn_top: maybe\ntrain:\n  steps: 3\n", GOOD_HEAD);
    ERR("bad bool", text, "line 5", "model.learn_top", "true or false");

    snprintf(text, sizeof text, "%strain:\n  lr: 0.1\n  steps: 3\n  lr: 0.2\n", GOOD_HEAD);
    ERR("duplicate key", text, "line 8", "duplicate key 'lr' in train", "first at line 6");

    snprintf(text, sizeof text, "%strain:\n  steps: 3\nmodel:\n  width: 8\n", GOOD_HEAD);
    ERR("duplicate section", text, "line 7", "duplicate key 'model'", "first at line 2");

    snprintf(text, sizeof text, "%s  coupling: affine\n  permutation: random\ntrain:\n  steps: 3\n",
             GOOD_HEAD);
    ERR("bad enum", text, "line 6", "model.permutation",
        "expected one of invconv, shuffle, reverse, got 'random'");

    snprintf(text, sizeof text, "%strain:\n  optimizer: SGD\n  steps: 3\n", GOOD_HEAD);
    ERR("bad optimizer", text, "line 6", "train.optimizer", "'SGD'");

    ERR("syntax: unclosed list", "model:\n  image_size: [32, 32\n  channels: 1\n", "line 3",
        "YAML syntax error");
    ERR("syntax: tab indent", "model:\n\timage_size: 32\n", "line 2", "YAML syntax error");
    ERR("syntax: bad indentation", "model:\n  image_size: 32\n channels: 1\n", "line 3",
        "YAML syntax error");

    ERR("missing model", "name: x\ntrain:\n  steps: 3\n", "missing the 'model' section");
    ERR("empty file", "# nothing\n", "empty file");
    ERR("not a mapping", "- model\n- train\n", "line 1", "expected a mapping");
    ERR("model not a mapping", "model: 32\ntrain:\n  steps: 3\n", "line 1", "model",
        "expected a mapping of keys, got '32'");
    ERR("missing image_size", "name: x\n\nmodel:\n  channels: 1\ntrain:\n  steps: 3\n",
        "line 3", "model.image_size is required");

    snprintf(text, sizeof text, "%strain:\n  steps: 3\n  lr: 0.1\n  epochs: 2\n", GOOD_HEAD);
    ERR("steps and epochs", text, "line 8", "train.epochs", "steps (line 6) and epochs (line 8)");

    snprintf(text, sizeof text, "%strain:\n  lr: 0.1\n", GOOD_HEAD);
    ERR("neither steps nor epochs", text, "train.steps or train.epochs", "required");

    snprintf(text, sizeof text, "%strain:\n  steps: 3\n  lr: -0.001\n", GOOD_HEAD);
    ERR("negative lr", text, "line 7", "train.lr", "must be > 0, got -0.001");

    snprintf(text, sizeof text, "%s  n_bits: 9\ntrain:\n  steps: 3\n", GOOD_HEAD);
    ERR("n_bits out of range", text, "line 5", "model.n_bits", "between 1 and 8, got 9");

    snprintf(text, sizeof text, "%s  levels: 6\ntrain:\n  steps: 3\n", GOOD_HEAD);
    ERR("model validation", text, "line 3", "model.image_size", "not divisible");

    snprintf(text, sizeof text, "%s  permutation: shuffle\n  lu: true\ntrain:\n  steps: 3\n",
             GOOD_HEAD);
    ERR("lu without invconv", text, "line 6", "model.lu");

    snprintf(text, sizeof text, "%s  image_size: [0, 32]\ntrain:\n  steps: 3\n",
             "name: t\nmodel:\n  channels: 1\n");
    ERR("zero image size", text, "line 4", "model.image_size", "must be between 1 and 65536");

    snprintf(text, sizeof text, "%strain:\n  steps: 3\n  device: tpu\n", GOOD_HEAD);
    ERR("bad device", text, "line 7", "train.device", "got 'tpu'");

    snprintf(text, sizeof text, "%strain:\n  steps: 3\n---\nmodel: {}\n", GOOD_HEAD);
    ERR("two documents", text, "line 8", "second YAML document");

    char name[200] = "name: ";
    memset(name + 6, 'a', 128);
    snprintf(text, sizeof text, "%s\nmodel:\n  image_size: 8\n", name);
    ERR("long name", text,
        "line 1", "name", "longer than 127");

    glow_run_config c;
    glow_error err = {""};
    CHECK(glow_run_config_load("/nonexistent/glow.yml", NULL, 0, &c, &err) == -1 &&
          contains(err.msg, "/nonexistent/glow.yml") && contains(err.msg, "No such file"));
}

/* JSON is YAML: a JSON file is a config; names with quotes and newlines survive
 * the YAML writer; validation catches values set in code. */
static void test_json_file_and_writer(void)
{
    glow_run_config c;
    glow_error err = {""};
    const char *json = "{\"model\": {\"image_size\": [8, 8], \"channels\": 1, \"levels\": 2},\n"
                       " \"train\": {\"steps\": 3, \"optimizer\": \"adamax\"}}\n";
    const char *path = temp_config(json);
    CHECKF(glow_run_config_load(path, NULL, 0, &c, &err) == 0, "%s", err.msg);
    CHECK(c.model.image_h == 8 && c.model.levels == 2 && c.train.optimizer == OPTIM_ADAMAX);
    unlink(path);

    strcpy(c.name, "a \"quoted\"\tname\\");
    strcpy(c.description, "two\nlines: #not a comment");
    char *yaml = glow_run_config_to_yaml(&c);
    glow_run_config back;
    CHECKF(glow_run_config_parse_string(yaml, strlen(yaml), "mem", &back, &err) == 0, "%s",
           err.msg);
    CHECK(strcmp(back.name, c.name) == 0 && strcmp(back.description, c.description) == 0);
    CHECK(contains(yaml, "  steps: 3\n") && !contains(yaml, "epochs"));
    free(yaml);

    /* YAML's other line breaks (NEL, U+2028, U+2029: raw inside quotes they read
     * back as a space; the fuzzer's find) and the characters it refuses raw (C1
     * controls, U+FEFF, U+FFFE) come back as they were */
    strcpy(c.description, "nel\xc2\x85 ls\xe2\x80\xa8 ps\xe2\x80\xa9 c1\xc2\x80\xc2\x9f bom\xef\xbb\xbf "
                          "fffe\xef\xbf\xbe e-acute\xc3\xa9 euro\xe2\x82\xac");
    yaml = glow_run_config_to_yaml(&c);
    CHECKF(glow_run_config_parse_string(yaml, strlen(yaml), "mem", &back, &err) == 0, "%s", err.msg);
    CHECKF(strcmp(back.description, c.description) == 0, "'%s'", back.description);
    CHECK(contains(yaml, "nel\\x85 ls\\L ps\\P c1\\x80\\x9f bom\\uFEFF fffe\\uFFFE e-acute\xc3\xa9"));
    free(yaml);

    c.train.batch_size = 0;
    CHECK(glow_run_config_validate(&c, &err) == -1 && contains(err.msg, "train.batch_size") &&
          contains(err.msg, "between 1 and"));
    c.train.batch_size = 8;
    c.train.optimizer = (glow_optimizer)7;
    CHECK(glow_run_config_validate(&c, &err) == -1 && contains(err.msg, "train.optimizer"));
    c.train.optimizer = OPTIM_ADAM;
    c.train.epochs = 2;
    CHECK(glow_run_config_validate(&c, &err) == -1 && contains(err.msg, "both"));
    c.train.epochs = 0;
    c.model.levels = 0;
    CHECK(glow_run_config_validate(&c, &err) == -1 && contains(err.msg, "model.levels"));
    c.model.levels = 2;
    CHECKF(glow_run_config_validate(&c, &err) == 0, "%s", err.msg);

    /* Keys that are not names, and a list where a section belongs. */
    ERR("list as key", "model:\n  [a]: 1\n", "line 2", "keys must be names");
    ERR("list as section", "model:\n  - image_size\n", "line 1", "model",
        "expected a mapping of keys, got a list of 1");
}

/* Configs by name (config_find.h): paths as they are, GLOW_CONFIG_PATH in order
 * (empty entries skipped), NAME and NAME.yml, the program's share folder last. */
static void test_config_find(void)
{
    glow_error err = {0};
    char dir[] = "/tmp/glow-cfgfind-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char a[64], b[64], fa[96], fb[96], fyml[96];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    CHECK(mkdir(a, 0755) == 0 && mkdir(b, 0755) == 0);
    snprintf(fa, sizeof fa, "%s/x.yml", a);
    snprintf(fb, sizeof fb, "%s/x.yml", b);
    snprintf(fyml, sizeof fyml, "%s/y", b);
    FILE *f = fopen(fa, "w"); CHECK(f && fclose(f) == 0);
    f = fopen(fb, "w"); CHECK(f && fclose(f) == 0);
    f = fopen(fyml, "w"); CHECK(f && fclose(f) == 0);
    char env[200];
    snprintf(env, sizeof env, "::%s/none:%s:%s", dir, b, a);
    setenv("GLOW_CONFIG_PATH", env, 1);
    char *p = glow_config_find("x", &err);
    CHECKF(p && strcmp(p, fb) == 0, "x -> %s", p ? p : err.msg);
    free(p);
    p = glow_config_find("x.yml", &err);
    CHECK(p && strcmp(p, fb) == 0);
    free(p);
    p = glow_config_find("y", &err);  /* a name without .yml, as it is */
    CHECK(p && strcmp(p, fyml) == 0);
    free(p);
    p = glow_config_find("./x", &err);  /* a path: not searched */
    CHECK(p && strcmp(p, "./x") == 0);
    free(p);
    p = glow_config_find("configs/tiny.yml", &err);
    CHECK(p && strcmp(p, "configs/tiny.yml") == 0);
    free(p);
    p = glow_config_find("nothing-of-that-name", &err);
    CHECK(p == NULL && contains(err.msg, "nothing-of-that-name: No such file or directory, nor a config") && contains(err.msg, b) &&
          contains(err.msg, "share/glow/configs"));
    char *sp = glow_config_search_path();
    CHECKF(strncmp(sp, dir, strlen(dir)) == 0 && !contains(sp, "::") && contains(sp, "/../share/glow/configs"),
           "%s", sp);
    free(sp);
    /* an empty name is no config */
    unsetenv("GLOW_CONFIG_PATH");
    p = glow_config_find("", &err);
    CHECK(p == NULL);
    unlink(fa); unlink(fb); unlink(fyml); rmdir(a); rmdir(b); rmdir(dir);
}

int main(void)
{
    test_config_find();
    test_shipped_configs();
    test_shipped_values();
    test_defaults_and_init_batch();
    test_overrides();
    test_train_json();
    test_new_train_keys();
    test_lr_schedule();
    test_train_only_file();
    test_error_paths();
    test_json_file_and_writer();
    return check_summary();
}
