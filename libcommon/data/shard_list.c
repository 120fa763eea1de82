/* The listing of shard folders (shard_dir_list): every *.glow file below a
 * folder, searched recursively, in the one fixed order of data/shard.h. Apart
 * from shard.c and shard_dir.c so that both can use it. */
#include "shard.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Name order with digit runs compared by value, so PREFIX-100000 follows
 * PREFIX-99999 once the five-digit numbers run out, and '/' before every other
 * character, so paths compare folder by folder (a folder's files stay together:
 * "a/x.glow" < "a-b/x.glow"). */
static int cmp_natural(const void *pa, const void *pb)
{
    const unsigned char *a = *(const unsigned char *const *)pa;
    const unsigned char *b = *(const unsigned char *const *)pb;
    while (*a && *b) {
        if (isdigit(*a) && isdigit(*b)) {
            const unsigned char *ea = a, *eb = b;
            while (*a == '0' && isdigit(a[1]))
                a++;
            while (*b == '0' && isdigit(b[1]))
                b++;
            size_t la = 0, lb = 0;
            while (isdigit(a[la]))
                la++;
            while (isdigit(b[lb]))
                lb++;
            if (la != lb)
                return la < lb ? -1 : 1;
            int c = memcmp(a, b, la);
            if (c)
                return c;
            /* Equal values: fewer leading zeros first, for a total order. */
            if ((a - ea) != (b - eb))
                return (a - ea) < (b - eb) ? -1 : 1;
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b) {
            if (*a == '/' || *b == '/')
                return *a == '/' ? -1 : 1;
            return *a < *b ? -1 : 1;
        }
        a++;
        b++;
    }
    return (*a > *b) - (*a < *b);
}

typedef struct {
    char **v;
    int n, cap;
} path_list;

/* Every *.glow file below dir, into l; depth bounds the nesting (no link to a
 * folder is followed, so there are no cycles; the bound only stops absurd trees). */
static int list_walk(const char *dir, int depth, path_list *l, glow_error *err)
{
    if (depth > 64) {
        glow_errorf(err, "%s: folders nested more than 64 deep", dir);
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        glow_errorf(err, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        /* Hidden names are atomic_file's temporaries (and "." / ".."). */
        if (e->d_name[0] == '.')
            continue;
        size_t m = strlen(dir) + len + 2;
        char *p = xmalloc(m);
        snprintf(p, m, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rc = list_walk(p, depth + 1, l, err);
            free(p);
            continue;
        }
        if (len <= 5 || strcmp(e->d_name + len - 5, ".glow") != 0) {
            free(p);
            continue;
        }
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 16;
            l->v = xrealloc(l->v, sizeof *l->v * (size_t)l->cap);
        }
        l->v[l->n++] = p;
    }
    closedir(d);
    return rc;
}

int shard_dir_list(const char *dir, char ***files, int *nfiles, glow_error *err)
{
    *files = NULL;
    *nfiles = 0;
    /* "DIR/" and "DIR" name the same files */
    size_t dl = strlen(dir);
    char *root = xstrdup(dir);
    while (dl > 1 && root[dl - 1] == '/')
        root[--dl] = '\0';
    path_list l = {0};
    int rc = list_walk(root, 0, &l, err);
    free(root);
    if (rc != 0) {
        shard_dir_list_free(l.v, l.n);
        return -1;
    }
    if (l.n > 1)
        qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_natural);
    *files = l.v;
    *nfiles = l.n;
    return 0;
}

void shard_dir_list_free(char **files, int nfiles)
{
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
}
