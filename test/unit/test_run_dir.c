/* glow-train's run directory and data checks (libcommon/train/run_dir.h,
 * run_data.h, train_data.h): the paths of --resume/--init/-o, stale temporary
 * files, the config written, a run found and moved aside, the lock, numbered and
 * best checkpoints as further names, the data record and its fingerprint, the
 * output-is-input check, and the shape and label checks with their glow-prep
 * hints. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/path.h"
#include "check.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "base/atomic_file.h"
#include "train/run_data.h"
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

static void mkdir_in(const char *dir, const char *sub)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    mkdir(p, 0777);
}

/* The temporary files of the run's other files (data.json, best, numbered
 * checkpoints, samples) are the run's too; others' are left. */
static void test_stale_more(void)
{
    char *dir = in_tmp("stale2");
    mkdir(dir, 0777);
    mkdir_in(dir, "checkpoints");
    mkdir_in(dir, "samples");
    pid_t dead = dead_pid();
    const char *ours[] = {".data.json.tmp.%ld", ".best.safetensors.tmp.%ld",
                          "checkpoints/.step-0000010.safetensors.tmp.%ld",
                          "samples/.step-0000010.png.tmp.%ld", "samples/.recon-0000010.png.tmp.%ld"};
    const char *theirs[] = {"checkpoints/.notes.tmp.%ld", "samples/.other.png.tmp.%ld"};
    char p[600], f[600];
    for (int i = 0; i < 5; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, ours[i]);
        snprintf(p, sizeof p, f, (long)dead);
        touch(p);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, theirs[i]);
        snprintf(p, sizeof p, f, (long)dead);
        touch(p);
    }
    CHECK(glow_run_dir_remove_stale(dir) == 5);
    for (int i = 0; i < 2; i++) {
        snprintf(f, sizeof f, "%s/%s", dir, theirs[i]);
        snprintf(p, sizeof p, f, (long)dead);
        CHECK(exists(p));
        unlink(p);
    }
}

static void test_run_found_and_moved(void)
{
    char *dir = in_tmp("r");
    glow_error err;
    glow_run_info ri;
    glow_run_dir_inspect(dir, &ri);
    CHECK(!ri.exists && !ri.holds_run && ri.step == -1);
    CHECK(glow_run_dir_check_new(dir, 0, &err) == 0);
    mkdir(dir, 0777);
    char p[600];
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    touch(p);
    CHECK(glow_run_dir_check_new(dir, 0, &err) == 0); /* no run in it */
    snprintf(p, sizeof p, "%s/log.jsonl", dir);
    touch(p);
    glow_run_dir_inspect(dir, &ri);
    CHECK(ri.exists && ri.holds_run && !ri.has_checkpoint);
    CHECK(glow_run_dir_check_new(dir, 0, &err) == -1);
    CHECKF(strstr(err.msg, "already holds the run, with no checkpoint yet") &&
               strstr(err.msg, "--resume") && strstr(err.msg, "--force"),
           "%s", err.msg);
    CHECK(glow_run_dir_check_new(dir, 1, &err) == 0);
    /* locked: refused even with --force */
    int fd = glow_run_dir_lock(dir, &err);
    CHECKF(fd >= 0 || fd == -2, "%s", err.msg);
    if (fd >= 0) {
        pid_t pid = fork();
        if (pid == 0) { /* another process sees the lock */
            glow_error e2;
            int bad = glow_run_dir_check_new(dir, 1, &e2) != -1 || !strstr(e2.msg, "is training now") ||
                      glow_run_dir_lock(dir, &e2) != -1;
            _exit(bad);
        }
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(fd);
    }
    char *moved;
    CHECK(glow_run_dir_move_aside(dir, &moved, &err) == 0);
    CHECKF(!strcmp(moved, in_tmp("r.old-1")), "%s", moved);
    free(moved);
    mkdir(dir, 0777);
    CHECK(glow_run_dir_move_aside(dir, &moved, &err) == 0);
    CHECKF(!strcmp(moved, in_tmp("r.old-2")), "%s", moved);
    free(moved);
    CHECK(!exists(dir));
}

/* A file of n bytes of value v. */
static void fill(const char *path, int n, int v)
{
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++)
        fputc(v, f);
    fclose(f);
}

static void test_numbered_and_best(void)
{
    char *dir = in_tmp("k");
    mkdir(dir, 0777);
    char ck[600];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir);
    glow_error err;
    int pruned = 0;
    for (int step = 10; step <= 50; step += 10) {
        char tmp[700]; /* a new file each time, as an atomic save makes */
        snprintf(tmp, sizeof tmp, "%s.new", ck);
        fill(tmp, step, step);
        rename(tmp, ck);
        CHECKF(glow_run_dir_keep(dir, ck, step, 3, &pruned, &err) == 0, "%s", err.msg);
        CHECK(pruned == (step > 30));
        if (step == 20)
            CHECK(glow_run_dir_set_best(dir, ck, &err) == 0);
    }
    for (int step = 10; step <= 50; step += 10) {
        char *p = glow_run_dir_numbered(dir, step);
        CHECK(exists(p) == (step >= 30));
        free(p);
    }
    char *p50 = glow_run_dir_numbered(dir, 50);
    CHECK(glow_same_file(p50, ck)); /* a further name, not a copy */
    char best[600];
    snprintf(best, sizeof best, "%s/best.safetensors", dir);
    struct stat st;
    CHECK(stat(best, &st) == 0 && st.st_size == 20); /* step 20's, though later ones replaced ck */
    free(p50);
    /* a listing of files that are not checkpoints says so per file */
    glow_run_ckpt *c;
    int n = glow_run_dir_list(dir, &c, &err);
    CHECK(n == 5);
    for (int i = 0; i < n; i++)
        CHECK(!c[i].ok && c[i].why[0]);
    CHECK(!strcmp(c[0].file, "checkpoint.safetensors") && !strcmp(c[1].file, "best.safetensors"));
    CHECK(!strcmp(c[2].file, "checkpoints/step-0000030.safetensors"));
    glow_run_ckpts_free(c, n);
    CHECK(glow_run_dir_list(in_tmp("nothing"), &c, &err) == -1);
}

static void test_data_record(void)
{
    char *paths[1];
    paths[0] = shard_file("rec.glow", 20, 4);
    glow_error err;
    dataset *d = dataset_open(1, paths, 1 << 20, &err);
    CHECKF(d != NULL, "%s", err.msg);
    glow_data_print a, b;
    CHECKF(glow_data_print_make(d, 1, paths, 0, &a, &err) == 0, "%s", err.msg);
    CHECK(a.images == 20 && a.c == 1 && a.h == 4 && a.w == 4 && a.labels && a.crc_images == 20);
    CHECK(a.inputs[0][0] == '/');
    /* the same images read again, under another name: the same print */
    CHECK(glow_data_print_make(d, 1, paths, 20, &b, &err) == 0);
    char why[512];
    CHECK(glow_data_print_same(&a, &b, why, sizeof why));
    glow_data_print_free(&b);
    CHECK(glow_data_print_make(d, 1, paths, 5, &b, &err) == 0 && b.crc_images == 5);
    CHECK(!glow_data_print_same(&b, &a, why, sizeof why) && strstr(why, "the first 20 images differ"));
    glow_data_print_free(&b);
    dataset_close(d);
    char *other[1] = {shard_file("rec2.glow", 21, 4)};
    d = dataset_open(1, other, 1 << 20, &err);
    CHECK(glow_data_print_make(d, 1, other, 20, &b, &err) == 0);
    CHECK(!glow_data_print_same(&b, &a, why, sizeof why));
    CHECKF(!strcmp(why, "21 images of 1x4x4 with labels where the run has 20 images of 1x4x4 with labels"),
           "%s", why);
    dataset_close(d);
    /* data.json round trip */
    char *dir = in_tmp("rec");
    mkdir(dir, 0777);
    glow_run_data rd = {1, 1, a, b}, back;
    CHECK(glow_run_data_read(dir, &back, &err) == 0); /* none yet */
    CHECKF(glow_run_data_write(dir, &rd, &err) == 0, "%s", err.msg);
    CHECKF(glow_run_data_read(dir, &back, &err) == 1, "%s", err.msg);
    CHECK(back.has_train && back.has_val && glow_data_print_same(&back.train, &a, why, sizeof why) &&
          glow_data_print_same(&back.val, &b, why, sizeof why));
    CHECK(!strcmp(back.train.inputs[0], a.inputs[0]));
    glow_run_data_free(&back);
    rd.has_val = 0;
    CHECK(glow_run_data_write(dir, &rd, &err) == 0 && glow_run_data_read(dir, &back, &err) == 1 &&
          !back.has_val);
    glow_run_data_free(&back);
    char p[600];
    snprintf(p, sizeof p, "%s/data.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"train\": {\"inputs\": []}}", f);
    fclose(f);
    CHECK(glow_run_data_read(dir, &back, &err) == -1 && strstr(err.msg, "data.json: malformed"));
    glow_data_print_free(&a);
    glow_data_print_free(&b);
}

static void test_output_is_input(void)
{
    char *a = in_tmp("in-a"), *b = in_tmp("in-b"), *l = in_tmp("in-link");
    touch(a);
    touch(b);
    CHECK(link(a, l) == 0);
    char *inputs[] = {b, a};
    CHECK(glow_output_is_input(a, 2, inputs) == 1);
    CHECK(glow_output_is_input(l, 2, inputs) == 1); /* another name of the same file */
    CHECK(glow_output_is_input(in_tmp("new-file"), 2, inputs) == -1);
    CHECK(glow_output_is_input(b, 1, inputs + 1) == -1);
    /* atomic_link: dst a further name of src; replaced atomically */
    glow_error err;
    char *c = in_tmp("in-c");
    CHECK(atomic_link(a, c, &err) == 0 && glow_same_file(a, c));
    CHECK(atomic_link(b, c, &err) == 0 && glow_same_file(b, c) && !glow_same_file(a, c));
    CHECK(atomic_link(in_tmp("missing"), c, &err) == -1 && glow_same_file(b, c));
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
    test_stale_more();
    test_run_found_and_moved();
    test_numbered_and_best();
    test_data_record();
    test_output_is_input();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
