#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Live temp files, so an interrupted tool can remove them on its way out. */
#define MAX_LIVE 64
static char *live[MAX_LIVE];

static void live_add(char *p)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (!live[i]) {
            live[i] = p;
            return;
        }
}

static void live_remove(const char *p)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] == p)
            live[i] = NULL;
}

void atomic_cleanup_all(void)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i])
            unlink(live[i]);
}

int atomic_open(atomic_file *af, const char *path, glow_error *err)
{
    memset(af, 0, sizeof *af);
    af->path = xstrdup(path);
    if (strcmp(path, "-") == 0) {
        af->f = stdout;
        return 0;
    }
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        af->f = fopen(path, "wb");
        if (!af->f) {
            glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
            free(af->path);
            af->path = NULL;
            return -1;
        }
        af->direct = 1;
        return 0;
    }
    char *d = xstrdup(path), *b = xstrdup(path);
    const char *dir = dirname(d), *base = basename(b);
    size_t n = strlen(dir) + strlen(base) + 64;
    af->tmp_path = xmalloc(n);
    snprintf(af->tmp_path, n, "%s/.%s.tmp.%ld", dir, base, (long)getpid());
    free(d);
    free(b);
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        glow_errorf(err, "%s: cannot create: %s", path, strerror(errno));
        free(af->tmp_path);
        free(af->path);
        af->tmp_path = af->path = NULL;
        return -1;
    }
    live_add(af->tmp_path);
    return 0;
}

int atomic_commit(atomic_file *af, glow_error *err)
{
    int rc = 0;
    if (af->direct) {
        if (fflush(af->f) != 0 || ferror(af->f)) {
            glow_errorf(err, "%s: write failed: %s", af->path, strerror(errno));
            rc = -1;
        }
        if (fclose(af->f) != 0 && rc == 0) {
            glow_errorf(err, "%s: write failed: %s", af->path, strerror(errno));
            rc = -1;
        }
        free(af->path);
        memset(af, 0, sizeof *af);
        return rc;
    }
    if (!af->tmp_path) { /* stdout */
        if (fflush(af->f) != 0 || ferror(af->f)) {
            glow_errorf(err, "standard output: write failed: %s", strerror(errno));
            rc = -1;
        }
        free(af->path);
        af->path = NULL;
        return rc;
    }
    if (fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0) {
        glow_errorf(err, "%s: write failed: %s", af->path, strerror(errno));
        rc = -1;
    }
    if (fclose(af->f) != 0 && rc == 0) {
        glow_errorf(err, "%s: write failed: %s", af->path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(af->tmp_path, af->path) != 0) {
        glow_errorf(err, "%s: cannot rename into place: %s", af->path, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(af->tmp_path);
    else {
        /* Make the rename itself durable. */
        char *d = xstrdup(af->path);
        int fd = open(dirname(d), O_RDONLY | O_DIRECTORY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        free(d);
    }
    live_remove(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    af->tmp_path = af->path = NULL;
    af->f = NULL;
    return rc;
}

void atomic_abort(atomic_file *af)
{
    if (af->direct && af->f)
        fclose(af->f);
    if (af->tmp_path) {
        if (af->f)
            fclose(af->f);
        unlink(af->tmp_path);
        live_remove(af->tmp_path);
        free(af->tmp_path);
    }
    free(af->path);
    af->tmp_path = af->path = NULL;
    af->f = NULL;
}

static int copy_into(const char *src, atomic_file *af, glow_error *err)
{
    FILE *in = fopen(src, "rb");
    if (!in) {
        glow_errorf(err, "%s: cannot open: %s", src, strerror(errno));
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, af->f) != n)
            break;
    int bad = ferror(in);
    fclose(in);
    if (bad) {
        glow_errorf(err, "%s: read error", src);
        return -1;
    }
    return 0;
}

int atomic_link(const char *src, const char *dst, glow_error *err)
{
    char *d = xstrdup(dst), *b = xstrdup(dst);
    size_t n = strlen(dst) + 64;
    char *tmp = xmalloc(n);
    snprintf(tmp, n, "%s/.%s.tmp.%ld", dirname(d), basename(b), (long)getpid());
    free(d);
    free(b);
    unlink(tmp);
    int rc = 0;
    if (link(src, tmp) == 0) {
        live_add(tmp);
        if (rename(tmp, dst) != 0) {
            glow_errorf(err, "%s: cannot rename into place: %s", dst, strerror(errno));
            unlink(tmp);
            rc = -1;
        }
        live_remove(tmp);
    } else if (errno == EXDEV || errno == EPERM || errno == EOPNOTSUPP || errno == EMLINK) {
        atomic_file af;
        rc = atomic_open(&af, dst, err);
        if (rc == 0 && copy_into(src, &af, err) != 0) {
            atomic_abort(&af);
            rc = -1;
        } else if (rc == 0)
            rc = atomic_commit(&af, err);
    } else {
        glow_errorf(err, "%s: cannot link to %s: %s", dst, src, strerror(errno));
        rc = -1;
    }
    free(tmp);
    return rc;
}
