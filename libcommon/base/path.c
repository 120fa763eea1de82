/* Paths and directories. */
#include "path.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int glow_mkdir_p(const char *dir, glow_error *err)
{
    if (!*dir) {
        glow_errorf(err, "empty directory name");
        return -1;
    }
    char *p = xstrdup(dir);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    /* Create each prefix ending at a '/', then the whole path. */
    for (char *s = p + 1;; s++) {
        int end = *s == '\0';
        if (*s == '/' || end) {
            *s = '\0';
            struct stat st;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                glow_errorf(err, "%s: cannot create directory: %s", p, strerror(errno));
                free(p);
                return -1;
            }
            if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
                glow_errorf(err, "%s: exists and is not a directory", p);
                free(p);
                return -1;
            }
            if (end)
                break;
            *s = '/';
        }
    }
    free(p);
    return 0;
}

char *glow_path_join(const char *dir, const char *name)
{
    if (name[0] == '/' || !dir || !*dir || !strcmp(dir, "."))
        return xstrdup(name);
    size_t a = strlen(dir), b = strlen(name);
    char *p = xmalloc(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (p[k - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *glow_path_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    char *d = xstrdup(path);
    d[slash - path] = '\0';
    return d;
}

int glow_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int glow_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* stat of a path, or of standard input/output for "-" (or NULL). */
static int stat_of(const char *path, int fd, struct stat *st)
{
    if (!path || strcmp(path, "-") == 0)
        return fstat(fd, st) == 0 && S_ISREG(st->st_mode) ? 0 : -1;
    return stat(path, st);
}

int glow_output_is_input(const char *out, int n, char *const *inputs)
{
    struct stat so;
    if (stat_of(out, STDOUT_FILENO, &so) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        struct stat si;
        if (stat_of(inputs[i], STDIN_FILENO, &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return i;
    }
    return -1;
}
