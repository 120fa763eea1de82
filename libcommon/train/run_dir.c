#include "run_dir.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/path.h"
#include "config/yaml_config.h"
#include "data/safetensors.h"

void glow_run_dir_paths(const char *resume, const char *out, const char *init, char **ck_path,
                        char **run_dir)
{
    if (resume) {
        int dir = glow_is_dir(resume);
        *ck_path = dir ? glow_path_join(resume, "checkpoint.safetensors") : xstrdup(resume);
        *run_dir = out ? xstrdup(out) : dir ? xstrdup(resume) : glow_path_dir(resume);
    } else {
        *run_dir = xstrdup(out);
        *ck_path = init ? xstrdup(init) : NULL;
    }
}

static int file_in(const char *dir, const char *name)
{
    char *p = glow_path_join(dir, name);
    int yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

/* The pid in dir/.lock when another process holds its lock, else 0. */
static long lock_holder(const char *dir)
{
    char *p = glow_path_join(dir, ".lock");
    int fd = open(p, O_RDONLY);
    free(p);
    if (fd < 0)
        return 0;
    long pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        char buf[32] = "";
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        pid = strtol(buf, NULL, 10);
        if (pid <= 0)
            pid = 1;
    }
    close(fd);
    return pid;
}

void glow_run_dir_inspect(const char *dir, glow_run_info *ri)
{
    memset(ri, 0, sizeof *ri);
    ri->step = -1;
    struct stat st;
    ri->exists = stat(dir, &st) == 0;
    if (!ri->exists || !S_ISDIR(st.st_mode))
        return;
    int ck = file_in(dir, "checkpoint.safetensors");
    ri->holds_run = ck || file_in(dir, "config.yml") || file_in(dir, "log.jsonl");
    ri->busy_pid = lock_holder(dir);
    if (!ck)
        return;
    char *p = glow_path_join(dir, "checkpoint.safetensors");
    st_file f;
    glow_error err;
    if (st_load_meta(p, &f, &err) == 0) {
        const char *s = st_meta(&f, "step"), *name = st_meta(&f, "name");
        const char *tc = st_meta(&f, "train_config");
        if (s) {
            ri->has_checkpoint = 1;
            ri->step = strtoll(s, NULL, 10);
        }
        snprintf(ri->name, sizeof ri->name, "%s", name ? name : "");
        cJSON *j = tc ? cJSON_Parse(tc) : NULL;
        const cJSON *steps = cJSON_GetObjectItemCaseSensitive(j, "steps");
        if (cJSON_IsNumber(steps))
            ri->run_steps = (long)steps->valuedouble;
        cJSON_Delete(j);
        st_free(&f);
    }
    free(p);
}

void glow_run_dir_describe(const glow_run_info *ri, char *buf, size_t n)
{
    char name[160] = "";
    if (ri->name[0])
        snprintf(name, sizeof name, " %s", ri->name);
    if (!ri->has_checkpoint)
        snprintf(buf, n, "the run%s, with no checkpoint yet", name);
    else if (ri->run_steps > 0)
        snprintf(buf, n, "the run%s at step %lld of %ld", name, (long long)ri->step, ri->run_steps);
    else
        snprintf(buf, n, "the run%s at step %lld", name, (long long)ri->step);
}

int glow_run_dir_check_new(const char *dir, int force, glow_error *err)
{
    glow_run_info ri;
    glow_run_dir_inspect(dir, &ri);
    if (!ri.holds_run)
        return 0;
    char what[256];
    glow_run_dir_describe(&ri, what, sizeof what);
    if (ri.busy_pid > 0) {
        glow_errorf(err, "%s: holds %s, which a glow-train (pid %ld) is training now", dir, what,
                    ri.busy_pid);
        return -1;
    }
    if (force)
        return 0;
    glow_errorf(err, "%s: already holds %s; continue it with --resume %s, or give --force to "
                     "move it aside (to %s.old-N) and start anew",
                dir, what, dir, dir);
    return -1;
}

int glow_run_dir_move_aside(const char *dir, char **moved, glow_error *err)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    char *base = xmalloc(len + 1);
    memcpy(base, dir, len);
    base[len] = '\0';
    char *to = xmalloc(len + 32);
    for (int i = 1; i < 100000; i++) {
        snprintf(to, len + 32, "%s.old-%d", base, i);
        struct stat st;
        if (lstat(to, &st) != 0 && errno == ENOENT)
            break;
    }
    int rc = rename(base, to);
    if (rc != 0) {
        glow_errorf(err, "%s: cannot move it aside to %s: %s", dir, to, strerror(errno));
        free(to);
        to = NULL;
    }
    free(base);
    *moved = to;
    return rc ? -1 : 0;
}

int glow_run_dir_lock(const char *dir, glow_error *err)
{
    char *p = glow_path_join(dir, ".lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        glow_errorf(err, "%s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e != EWOULDBLOCK) { /* no locks on this filesystem */
            free(p);
            return -2;
        }
        glow_errorf(err, "%s: a glow-train (pid %ld) is training in this directory now", dir,
                    lock_holder(dir));
        free(p);
        return -1;
    }
    free(p);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || write(fd, buf, (size_t)n) != n) {
        /* the pid is for messages only */
    }
    return fd;
}

/* ---- temporary files of killed writers ---- */

static int ours(const char *name, const char *sub)
{
    if (!sub)
        return !strcmp(name, "checkpoint.safetensors") || !strcmp(name, "config.yml") ||
               !strcmp(name, "data.json") || !strcmp(name, "best.safetensors");
    const char *ext = strcmp(sub, "checkpoints") == 0 ? ".safetensors" : ".png";
    size_t n = strlen(name), e = strlen(ext);
    return (strncmp(name, "step-", 5) == 0 || strncmp(name, "recon-", 6) == 0) && n > e &&
           strcmp(name + n - e, ext) == 0;
}

static int remove_stale_in(const char *dir, const char *sub)
{
    char *path = sub ? glow_path_join(dir, sub) : xstrdup(dir);
    DIR *d = opendir(path);
    if (!d) {
        free(path);
        return 0;
    }
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (e->d_name[0] != '.' || !tmp)
            continue;
        char name[256];
        size_t len = (size_t)(tmp - e->d_name - 1);
        if (len >= sizeof name)
            continue;
        memcpy(name, e->d_name + 1, len);
        name[len] = '\0';
        long pid;
        if (!ours(name, sub) || parse_long(tmp + 5, 1, 1L << 31, &pid) != 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = glow_path_join(path, e->d_name);
        removed += unlink(p) == 0;
        free(p);
    }
    closedir(d);
    free(path);
    return removed;
}

int glow_run_dir_remove_stale(const char *dir)
{
    return remove_stale_in(dir, NULL) + remove_stale_in(dir, "checkpoints") +
           remove_stale_in(dir, "samples");
}

static int write_config(const char *dir, const glow_run_config *cfg, glow_error *err)
{
    char *path = glow_path_join(dir, "config.yml");
    char *text = glow_run_config_to_yaml(cfg);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        fputs(text, af.f);
        rc = atomic_commit(&af, err);
    }
    free(text);
    free(path);
    return rc;
}

int glow_run_dir_prepare(const char *dir, const glow_run_config *cfg, glow_error *err)
{
    if (glow_mkdir_p(dir, err) != 0)
        return -1;
    glow_run_dir_remove_stale(dir);
    return write_config(dir, cfg, err);
}

/* ---- numbered and best checkpoints ---- */

char *glow_run_dir_numbered(const char *dir, int64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "checkpoints/step-%07lld.safetensors", (long long)step);
    return glow_path_join(dir, name);
}

/* The step of a numbered checkpoint's name, or -1. */
static int64_t numbered_step(const char *name)
{
    const char *ext = ".safetensors";
    size_t n = strlen(name), e = strlen(ext);
    if (strncmp(name, "step-", 5) != 0 || n <= 5 + e || strcmp(name + n - e, ext) != 0)
        return -1;
    int64_t v = 0;
    for (const char *p = name + 5; p < name + n - e; p++) {
        if (*p < '0' || *p > '9' || v > INT64_MAX / 10 - 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The steps of the numbered checkpoints, ascending (caller frees). */
static int numbered_steps(const char *dir, int64_t **steps)
{
    char *sub = glow_path_join(dir, "checkpoints");
    DIR *d = opendir(sub);
    free(sub);
    *steps = NULL;
    if (!d)
        return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = numbered_step(e->d_name);
        if (s < 0)
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *steps = xrealloc(*steps, (size_t)cap * sizeof **steps);
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    if (n)
        qsort(*steps, (size_t)n, sizeof **steps, cmp_i64);
    return n;
}

int glow_run_dir_keep(const char *dir, const char *ckpt, int64_t step, long keep_last,
                      int *pruned, glow_error *err)
{
    *pruned = 0;
    char *sub = glow_path_join(dir, "checkpoints");
    int rc = glow_mkdir_p(sub, err);
    free(sub);
    char *to = glow_run_dir_numbered(dir, step);
    if (rc == 0)
        rc = atomic_link(ckpt, to, err);
    free(to);
    if (rc != 0 || keep_last <= 0)
        return rc;
    int64_t *steps;
    int n = numbered_steps(dir, &steps);
    for (int i = 0; i < n - keep_last; i++) {
        char *p = glow_run_dir_numbered(dir, steps[i]);
        *pruned += unlink(p) == 0;
        free(p);
    }
    free(steps);
    return 0;
}

int glow_run_dir_set_best(const char *dir, const char *ckpt, glow_error *err)
{
    char *to = glow_path_join(dir, "best.safetensors");
    int rc = atomic_link(ckpt, to, err);
    free(to);
    return rc;
}

/* ---- listing ---- */

static double meta_num(const st_file *f, const char *key)
{
    const char *s = st_meta(f, key);
    double v;
    return s && parse_double(s, &v) == 0 ? v : NAN;
}

static void list_one(const char *dir, const char *name, glow_run_ckpt *c)
{
    memset(c, 0, sizeof *c);
    c->file = xstrdup(name);
    c->step = c->val_step = -1;
    c->val_bpd = c->val_bpd_ema = NAN;
    char *p = glow_path_join(dir, name);
    st_file f;
    glow_error err;
    if (st_load_meta(p, &f, &err) != 0) {
        snprintf(c->why, sizeof c->why, "%s", err.msg);
        free(p);
        return;
    }
    c->size = f.size;
    const char *step = st_meta(&f, "step"), *vs = st_meta(&f, "val_step");
    if (!step || strcmp(st_meta(&f, "format") ? st_meta(&f, "format") : "", "glow") != 0) {
        snprintf(c->why, sizeof c->why, "%s: not a glow checkpoint", p);
    } else {
        c->ok = 1;
        c->step = strtoll(step, NULL, 10);
        if (vs) {
            c->val_step = strtoll(vs, NULL, 10);
            c->val_bpd = meta_num(&f, "val_bpd");
            c->val_bpd_ema = meta_num(&f, "val_bpd_ema");
        }
    }
    st_free(&f);
    free(p);
}

int glow_run_dir_list(const char *dir, glow_run_ckpt **out, glow_error *err)
{
    *out = NULL;
    if (!glow_is_dir(dir)) {
        glow_errorf(err, "%s: not a directory", dir);
        return -1;
    }
    int64_t *steps;
    int nn = numbered_steps(dir, &steps);
    glow_run_ckpt *c = xcalloc((size_t)nn + 2, sizeof *c);
    int n = 0;
    const char *fixed[] = {"checkpoint.safetensors", "best.safetensors"};
    for (int i = 0; i < 2; i++)
        if (file_in(dir, fixed[i]))
            list_one(dir, fixed[i], &c[n++]);
    char *best = glow_path_join(dir, "best.safetensors");
    for (int i = 0; i < nn; i++) {
        char name[64];
        snprintf(name, sizeof name, "checkpoints/step-%07lld.safetensors", (long long)steps[i]);
        list_one(dir, name, &c[n++]);
    }
    for (int i = 0; i < n; i++) {
        char *p = glow_path_join(dir, c[i].file);
        c[i].best = c[i].best || glow_same_file(p, best);
        free(p);
    }
    free(best);
    free(steps);
    *out = c;
    return n;
}

void glow_run_ckpts_free(glow_run_ckpt *c, int n)
{
    for (int i = 0; i < n; i++)
        free(c[i].file);
    free(c);
}

static void size_text(size_t b, char *buf, size_t n)
{
    if (b < 1000 * 1000)
        snprintf(buf, n, "%.1f kB", (double)b / 1e3);
    else if (b < (size_t)1000 * 1000 * 1000)
        snprintf(buf, n, "%.1f MB", (double)b / 1e6);
    else
        snprintf(buf, n, "%.2f GB", (double)b / 1e9);
}

static cJSON *json_num_or_null(double v)
{
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

int glow_run_dir_report(const char *dir, int json, FILE *out, glow_error *err)
{
    glow_run_ckpt *c;
    int n = glow_run_dir_list(dir, &c, err);
    if (n < 0)
        return -1;
    if (n == 0) {
        glow_run_ckpts_free(c, n);
        glow_errorf(err, "%s: no checkpoints (checkpoint.safetensors, best.safetensors, "
                         "checkpoints/step-*.safetensors): not a glow-train run directory",
                    dir);
        return -1;
    }
    glow_run_info ri;
    glow_run_dir_inspect(dir, &ri);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "run", dir);
        if (ri.name[0])
            cJSON_AddStringToObject(o, "name", ri.name);
        else
            cJSON_AddNullToObject(o, "name");
        cJSON *arr = cJSON_AddArrayToObject(o, "checkpoints");
        for (int i = 0; i < n; i++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "file", c[i].file);
            if (!c[i].ok) {
                cJSON_AddStringToObject(e, "error", c[i].why);
                cJSON_AddItemToArray(arr, e);
                continue;
            }
            int here = c[i].val_step == c[i].step;
            cJSON_AddNumberToObject(e, "step", (double)c[i].step);
            cJSON_AddItemToObject(e, "val_bpd", json_num_or_null(here ? c[i].val_bpd : NAN));
            cJSON_AddItemToObject(e, "val_bpd_ema", json_num_or_null(here ? c[i].val_bpd_ema : NAN));
            cJSON_AddNumberToObject(e, "bytes", (double)c[i].size);
            cJSON_AddBoolToObject(e, "best", c[i].best);
            cJSON_AddItemToArray(arr, e);
        }
        char *text = cJSON_Print(o);
        fprintf(out, "%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        char what[256];
        glow_run_dir_describe(&ri, what, sizeof what);
        fprintf(out, "%s: %s; %d checkpoint%s\n", dir, what, n, n == 1 ? "" : "s");
        fprintf(out, "%-40s %9s %9s %9s %10s\n", "file", "step", "val bpd", "EMA bpd", "size");
        for (int i = 0; i < n; i++) {
            if (!c[i].ok) {
                fprintf(out, "%-40s %s\n", c[i].file, c[i].why);
                continue;
            }
            char v[32] = "-", e[32] = "-", sz[32];
            if (c[i].val_step == c[i].step && isfinite(c[i].val_bpd))
                snprintf(v, sizeof v, "%.4f", c[i].val_bpd);
            if (c[i].val_step == c[i].step && isfinite(c[i].val_bpd_ema))
                snprintf(e, sizeof e, "%.4f", c[i].val_bpd_ema);
            size_text(c[i].size, sz, sizeof sz);
            fprintf(out, "%-40s %9lld %9s %9s %10s%s\n", c[i].file, (long long)c[i].step, v, e, sz,
                    c[i].best && strcmp(c[i].file, "best.safetensors") ? "  (best)" : "");
        }
    }
    glow_run_ckpts_free(c, n);
    return 0;
}
