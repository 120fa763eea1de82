/* glow-prep directory input: every .png, .jpg and .jpeg file (any case) below
 * the folder (a folder of shard files and no images is the shard input,
 * prep_shard.c), in bytewise order of the whole path, so the order never depends on
 * the file system. Names starting with '.' are skipped, and links to folders are
 * not followed (no cycles). With labels_from_dirs the first-level folders are
 * the classes: their sorted names get labels 0..K-1. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/path.h"
#include "prep_kinds.h"

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static void strvec_push(strvec *s, char *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->v = xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

static int is_shard_name(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".glow");
}

static int walk(const char *dir, strvec *files, strvec *topdirs, size_t *shards, glow_error *err)
{
    DIR *d = opendir(dir);
    if (!d) {
        glow_errorf(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    strvec sub = {0};
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *p = glow_path_join(dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            strvec_push(&sub, p);
            if (topdirs)
                strvec_push(topdirs, xstrdup(e->d_name));
        } else if (is_image_name(e->d_name)) {
            strvec_push(files, p);
        } else {
            *shards += is_shard_name(e->d_name);
            free(p);
        }
    }
    closedir(d);
    for (size_t i = 0; i < sub.n; i++) {
        if (rc == 0)
            rc = walk(sub.v[i], files, NULL, shards, err);
        free(sub.v[i]);
    }
    free(sub.v);
    return rc;
}

int prep_add_dir(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err)
{
    strvec files = {0}, classes = {0};
    if (opt->labels_from_dirs && in->nclasses > 0) {
        glow_errorf(err, "%s: --labels-from-dirs takes one directory", path);
        return -1;
    }
    size_t shards = 0;
    int rc = walk(path, &files, opt->labels_from_dirs ? &classes : NULL, &shards, err);
    /* A folder of shard files (no images) is the shard input; one with both is
     * ambiguous unless --format says which. */
    if (rc == 0 && shards && opt->format == PREP_AUTO && !opt->labels_from_dirs) {
        if (files.n == 0) {
            free(files.v);
            return prep_add_shard(in, path, err);
        }
        glow_errorf(err, "%s: holds both images and shard files (*.glow); give --format dir "
                         "or --format shard", path);
        rc = -1;
    }
    if (rc == 0)
        rc = prep_set_labels(in, path, opt->labels_from_dirs, err);
    if (rc == 0 && opt->labels_from_dirs && classes.n == 0) {
        glow_errorf(err, "%s: no class folders (--labels-from-dirs)", path);
        rc = -1;
    }
    if (rc != 0) {
        for (size_t i = 0; i < files.n; i++)
            free(files.v[i]);
        for (size_t i = 0; i < classes.n; i++)
            free(classes.v[i]);
        free(files.v);
        free(classes.v);
        return -1;
    }
    if (files.n > 1)
        qsort(files.v, files.n, sizeof *files.v, cmp_str);
    if (classes.n > 1)
        qsort(classes.v, classes.n, sizeof *classes.v, cmp_str);
    if (opt->labels_from_dirs) {
        in->classes = classes.v;
        in->nclasses = (int)classes.n;
    }
    /* Paths are glow_path_join(path, ...): the first component after the prefix
     * names the class. */
    char *probe = glow_path_join(path, "x");
    size_t plen = strlen(probe) - 1;
    free(probe);
    for (size_t i = 0; i < files.n; i++) {
        int32_t label = -1;
        if (opt->labels_from_dirs) {
            const char *rel = files.v[i] + plen, *slash = strchr(rel, '/');
            size_t k = slash ? (size_t)(slash - rel) : 0;
            for (size_t c = 0; slash && c < classes.n && label < 0; c++)
                if (strlen(classes.v[c]) == k && !memcmp(classes.v[c], rel, k))
                    label = (int32_t)c;
            if (label < 0) {
                int bad = prep_bad_entry(in, opt, err, "%s: not inside a class folder", files.v[i]);
                free(files.v[i]);
                if (bad) {
                    for (size_t j = i + 1; j < files.n; j++)
                        free(files.v[j]);
                    free(files.v);
                    return -1;
                }
                continue;
            }
        }
        prep_push(in, files.v[i], 0, 0, label);
    }
    free(files.v);
    if (!opt->labels_from_dirs) {
        for (size_t i = 0; i < classes.n; i++)
            free(classes.v[i]);
        free(classes.v);
    }
    return 0;
}
