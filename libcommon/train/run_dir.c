#include "run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/path.h"
#include "config/yaml_config.h"

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

int glow_run_dir_remove_stale(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (e->d_name[0] != '.' || !tmp)
            continue;
        if (strncmp(e->d_name, ".checkpoint.safetensors.tmp.", 28) != 0 &&
            strncmp(e->d_name, ".config.yml.tmp.", 16) != 0)
            continue;
        long pid;
        if (parse_long(tmp + 5, 1, 1L << 31, &pid) != 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = glow_path_join(dir, e->d_name);
        removed += unlink(p) == 0;
        free(p);
    }
    closedir(d);
    return removed;
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
