/* glow-train's run directory and data checks (libcommon/train/run_dir.h,
 * train_data.h): the paths of --resume/--init/-o, stale temporary files, the
 * config written, and the shape and label checks with their glow-prep hints. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/path.h"
#include "check.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "train/run_dir.h"
#include "train/train_data.h"

static char tmpdir[256];

static char *in_tmp(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f)
        fclose(f);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void check_paths(const char *resume, const char *out, const char *init, const char *want_ck,
                        const char *want_dir)
{
    char *ck, *dir;
    glow_run_dir_paths(resume, out, init, &ck, &dir);
    CHECKF(want_ck ? ck && !strcmp(ck, want_ck) : ck == NULL, "checkpoint %s, not %s",
           ck ? ck : "(none)", want_ck ? want_ck : "(none)");
    CHECKF(!strcmp(dir, want_dir), "run dir %s, not %s", dir, want_dir);
    free(ck);
    free(dir);
}

static void test_paths(void)
{
    char *run = in_tmp("run");
    mkdir(run, 0777);
    char ck[600], other[600];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", run);
    snprintf(other, sizeof other, "%s/other/c.safetensors", tmpdir);
    check_paths(NULL, "out", NULL, NULL, "out");                  /* from scratch */
    check_paths(NULL, "out", "a/b.safetensors", "a/b.safetensors", "out"); /* --init */
    check_paths(run, NULL, NULL, ck, run);                        /* --resume RUN */
    check_paths(run, "elsewhere", NULL, ck, "elsewhere");         /* --resume RUN -o DIR */
    char odir[600];
    snprintf(odir, sizeof odir, "%s/other", tmpdir);
    check_paths(other, NULL, NULL, other, odir);                  /* --resume CKPT */
    check_paths("c.safetensors", NULL, NULL, "c.safetensors", "."); /* a bare name */
    rmdir(run);
}

static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void test_stale(void)
{
    char *dir = in_tmp("stale");
    mkdir(dir, 0777);
    char dead_ck[600], dead_cfg[600], live_ck[600], other[600], garbage[600];
    pid_t dead = dead_pid();
    snprintf(dead_ck, sizeof dead_ck, "%s/.checkpoint.safetensors.tmp.%ld", dir, (long)dead);
    snprintf(dead_cfg, sizeof dead_cfg, "%s/.config.yml.tmp.%ld", dir, (long)dead);
    snprintf(live_ck, sizeof live_ck, "%s/.checkpoint.safetensors.tmp.%ld", dir, (long)getpid());
    snprintf(other, sizeof other, "%s/.notes.txt.tmp.%ld", dir, (long)dead);
    snprintf(garbage, sizeof garbage, "%s/.config.yml.tmp.x1", dir);
    touch(dead_ck);
    touch(dead_cfg);
    touch(live_ck);
    touch(other);
    touch(garbage);
    CHECK(glow_run_dir_remove_stale(dir) == 2);
    CHECK(!exists(dead_ck) && !exists(dead_cfg));
    CHECK(exists(live_ck) && exists(other) && exists(garbage)); /* a live writer's, not ours */
    CHECK(glow_run_dir_remove_stale(dir) == 0);
    CHECK(glow_run_dir_remove_stale(in_tmp("no-such-dir")) == 0);
    unlink(live_ck);
    unlink(other);
    unlink(garbage);
    rmdir(dir);
}

static void test_prepare(void)
{
    glow_run_config cfg, back;
    glow_run_config_default(&cfg);
    cfg.model.channels = 1;
    cfg.model.image_h = cfg.model.image_w = 8;
    cfg.model.levels = 2;
    cfg.model.steps = 2;
    cfg.model.width = 8;
    cfg.train.lr = 2.5e-4;
    cfg.train.steps = 77;
    char *dir = in_tmp("a/b/run");
    glow_error err;
    CHECKF(glow_run_dir_prepare(dir, &cfg, &err) == 0, "%s", err.msg);
    char path[600];
    snprintf(path, sizeof path, "%s/config.yml", dir);
    CHECKF(glow_run_config_parse_file(path, &back, &err) == 0, "%s", err.msg);
    CHECK(back.train.steps == 77);
    CHECK_NEAR(back.train.lr, 2.5e-4, 1e-12);
    /* again over it, with a stale temporary file of a killed save */
    char stale[600];
    snprintf(stale, sizeof stale, "%s/.checkpoint.safetensors.tmp.%ld", dir, (long)dead_pid());
    touch(stale);
    CHECKF(glow_run_dir_prepare(dir, &cfg, &err) == 0, "%s", err.msg);
    CHECK(!exists(stale));
    CHECK(glow_same_file(path, path));
    char other[600];
    snprintf(other, sizeof other, "%s/../run/config.yml", dir);
    CHECK(glow_same_file(path, other));
    CHECK(!glow_same_file(path, dir));
    CHECK(!glow_same_file(path, in_tmp("missing")));
    /* a file where the folder should be */
    touch(in_tmp("plain"));
    CHECK(glow_run_dir_prepare(in_tmp("plain"), &cfg, &err) == -1);
    CHECKF(strstr(err.msg, "not a directory") != NULL, "%s", err.msg);
    unlink(in_tmp("plain"));
    unlink(path);
    rmdir(dir);
    rmdir(in_tmp("a/b"));
    rmdir(in_tmp("a"));
}

static void hint(int c, int h, int w, const glow_config *m, const char *want)
{
    dataset_info in = {(uint32_t)c, (uint32_t)h, (uint32_t)w, 0, 1, 0};
    char buf[64];
    glow_train_shape_hint(&in, m, buf, sizeof buf);
    CHECKF(!strcmp(buf, want), "%dx%dx%d: '%s', not '%s'", c, h, w, buf, want);
}

static void test_hints(void)
{
    glow_run_config cfg;
    glow_run_config_default(&cfg);
    glow_config *m = &cfg.model;
    m->channels = 1;
    m->image_h = m->image_w = 32;
    hint(3, 32, 32, m, "glow-prep --channels 1");
    hint(1, 28, 28, m, "glow-prep --pad 2");
    hint(1, 27, 27, m, "glow-prep --size 32x32");   /* an odd margin */
    hint(1, 28, 30, m, "glow-prep --size 32x32");   /* not square */
    hint(1, 64, 64, m, "glow-prep --size 32x32");   /* larger */
    m->image_w = 16;
    hint(1, 28, 12, m, "glow-prep --pad 2");
    hint(1, 28, 14, m, "glow-prep --size 32x16");
    char *none[] = {"-"}, *two[] = {"-", "x"}, *file[] = {"a.glow"};
    CHECK(glow_train_data_is_stream(0, NULL));
    CHECK(glow_train_data_is_stream(1, none));
    CHECK(!glow_train_data_is_stream(2, two));
    CHECK(!glow_train_data_is_stream(1, file));
}

/* A shard file of n 1x4x4 images, labels i % k (no labels when k is 0). */
static char *shard_file(const char *name, uint32_t n, int k)
{
    char *path = in_tmp(name);
    shard_record r = {SHARD_U8, n, 1, 4, 4, NULL, NULL};
    r.data = calloc(n, 16);
    if (k) {
        r.labels = malloc(n * sizeof(int32_t));
        for (uint32_t i = 0; i < n; i++)
            r.labels[i] = (int32_t)(i % (uint32_t)k);
    }
    FILE *f = fopen(path, "wb");
    glow_error err;
    CHECKF(shard_write_record(f, &r, &err) == 0, "%s", err.msg);
    fclose(f);
    shard_record_free(&r);
    return path;
}

static void test_data_check(void)
{
    glow_run_config cfg;
    glow_run_config_default(&cfg);
    glow_config *m = &cfg.model;
    m->channels = 1;
    m->image_h = m->image_w = 4;
    glow_error err;
    char *paths[1];

    paths[0] = shard_file("plain.glow", 10, 0);
    dataset *d = dataset_open(1, paths, 1 << 20, &err);
    CHECKF(d != NULL, "%s", err.msg);
    CHECKF(glow_train_data_check(d, "training", m, &err) == 0, "%s", err.msg);
    m->image_h = m->image_w = 8;
    CHECK(glow_train_data_check(d, "training", m, &err) == -1);
    CHECKF(!strcmp(err.msg, "training images are 1x4x4 but the model expects 1x8x8; "
                            "glow-prep --pad 2"), "%s", err.msg);
    m->image_h = m->image_w = 4;
    m->y_condition = 1;
    m->n_classes = 3;
    CHECK(glow_train_data_check(d, "validation", m, &err) == -1);
    CHECKF(!strcmp(err.msg, "the model is class-conditional (y_condition) but the validation "
                            "images have no labels (glow-prep --labels ...)"), "%s", err.msg);
    dataset_close(d);

    paths[0] = shard_file("labels.glow", 10, 3);
    d = dataset_open(1, paths, 1 << 20, &err);
    CHECKF(d != NULL, "%s", err.msg);
    CHECKF(glow_train_data_check(d, "training", m, &err) == 0, "%s", err.msg);
    /* rewound: the whole set reads again */
    uint8_t px[10 * 16];
    int32_t lb[10];
    CHECK(dataset_read_seq(d, 10, px, lb, &err) == 10);
    m->n_classes = 2;
    CHECK(glow_train_data_check(d, "training", m, &err) == -1);
    CHECKF(!strcmp(err.msg, "training image 2 (in stored order): label 2 outside 0..1 "
                            "(model.n_classes is 2)"), "%s", err.msg);
    dataset_close(d);
    unlink(in_tmp("plain.glow"));
    unlink(in_tmp("labels.glow"));
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_run_dir.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_paths();
    test_stale();
    test_prepare();
    test_hints();
    test_data_check();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
