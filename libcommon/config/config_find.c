/* Configs by name (config_find.h). */
#include "config_find.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* BINDIR/../share/glow/configs, or NULL when /proc/self/exe cannot be read. */
static char *share_configs(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = '\0';
    const char *tail = "/../share/glow/configs";
    char *dir = xmalloc(strlen(exe) + strlen(tail) + 1);
    strcpy(dir, exe);
    strcat(dir, tail);
    return dir;
}

char *glow_config_search_path(void)
{
    const char *env = getenv("GLOW_CONFIG_PATH");
    char *share = share_configs();
    size_t len = (env ? strlen(env) : 0) + (share ? strlen(share) : 0) + 2;
    char *path = xmalloc(len);
    path[0] = '\0';
    /* the environment's folders, empty entries dropped */
    if (env) {
        const char *p = env;
        while (*p) {
            const char *e = strchr(p, ':');
            size_t k = e ? (size_t)(e - p) : strlen(p);
            if (k) {
                if (path[0])
                    strcat(path, ":");
                strncat(path, p, k);
            }
            p += k + (e ? 1 : 0);
        }
    }
    if (share) {
        if (path[0])
            strcat(path, ":");
        strcat(path, share);
        free(share);
    }
    return path;
}

/* dir/name, or dir/name.yml when add_yml */
static char *candidate(const char *dir, size_t dlen, const char *name, int add_yml)
{
    char *c = xmalloc(dlen + strlen(name) + 6);
    memcpy(c, dir, dlen);
    sprintf(c + dlen, "/%s%s", name, add_yml ? ".yml" : "");
    return c;
}

char *glow_config_find(const char *name, glow_error *err)
{
    if (!name || !*name) {
        glow_errorf(err, "an empty config name");
        return NULL;
    }
    if (strchr(name, '/') || is_file(name))
        return xstrdup(name);
    size_t nlen = strlen(name);
    int has_yml = nlen > 4 && strcmp(name + nlen - 4, ".yml") == 0;
    char *search = glow_config_search_path();
    const char *p = search;
    while (*p) {
        const char *e = strchr(p, ':');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        for (int y = 0; y <= !has_yml; y++) {
            char *c = candidate(p, k, name, y);
            if (is_file(c)) {
                free(search);
                return c;
            }
            free(c);
        }
        p += k + (e ? 1 : 0);
    }
    glow_errorf(err, "%s: No such file or directory, nor a config of that name in %s "
                "($GLOW_CONFIG_PATH, then the tools' share/glow/configs)",
                name, search[0] ? search : "(no folder)");
    free(search);
    return NULL;
}
