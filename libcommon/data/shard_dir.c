/* Shard directories: DIR/PREFIX-00000.glow, -00001, ... each file committed
 * atomically (the listing readers train from: shard_list.c). */
#include "shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/path.h"

static const char *type_name(shard_dtype t)
{
    return t == SHARD_U8 ? "uint8" : t == SHARD_F32 ? "float32" : "unknown-dtype";
}

struct shard_dir_writer {
    char *dir, *prefix;
    uint64_t per_file;
    uint32_t per_record; /* as asked; capped once the image size is known */
    int have_shape;
    shard_record buf; /* buf.n images waiting to become one record */
    size_t img_bytes;
    uint32_t rec_cap;
    atomic_file af;
    int file_open;
    uint64_t in_file; /* images already written to the open file */
    int nfiles;
};

shard_dir_writer *shard_dir_writer_open(const char *dir, const char *prefix,
                                        uint64_t images_per_file, uint32_t images_per_record,
                                        glow_error *err)
{
    if (images_per_file == 0 || images_per_record == 0) {
        glow_errorf(err, "%s: images per file and per record must be at least 1", dir);
        return NULL;
    }
    if (!*prefix || strchr(prefix, '/')) {
        glow_errorf(err, "%s: shard prefix '%s' must be a non-empty name without '/'", dir,
                    prefix);
        return NULL;
    }
    if (glow_mkdir_p(dir, err) != 0)
        return NULL;
    shard_dir_writer *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(dir);
    w->prefix = xstrdup(prefix);
    w->per_file = images_per_file;
    w->per_record = images_per_record;
    return w;
}

static char *shard_path(const shard_dir_writer *w, int index)
{
    size_t n = strlen(w->dir) + strlen(w->prefix) + 32;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s-%05d.glow", w->dir, w->prefix, index);
    return p;
}

static int flush_record(shard_dir_writer *w, glow_error *err)
{
    if (w->buf.n == 0)
        return 0;
    if (!w->file_open) {
        char *path = shard_path(w, w->nfiles);
        int rc = atomic_open(&w->af, path, err);
        free(path);
        if (rc != 0)
            return -1;
        w->file_open = 1;
        w->in_file = 0;
    }
    if (shard_write_record(w->af.f, &w->buf, err) != 0) {
        glow_error_prefix(err, "%s", w->af.path);
        return -1;
    }
    w->in_file += w->buf.n;
    w->buf.n = 0;
    if (w->in_file == w->per_file) {
        w->file_open = 0;
        if (atomic_commit(&w->af, err) != 0)
            return -1;
        w->nfiles++;
    }
    return 0;
}

int shard_dir_writer_add(shard_dir_writer *w, const shard_record *im, glow_error *err)
{
    if (im->n == 0)
        return 0;
    size_t es = shard_dtype_size(im->dtype);
    if (!w->have_shape) {
        if (es == 0 || !im->c || !im->h || !im->w) {
            glow_errorf(err, "%s: cannot store images of %ux%ux%u %s", w->dir, im->c, im->h,
                        im->w, es ? "elements" : "unknown dtype");
            return -1;
        }
        w->img_bytes = (size_t)im->c * im->h * im->w * es;
        /* Bounded records keep every reader's memory bounded. */
        uint64_t cap = SHARD_RECORD_TARGET / (w->img_bytes + (im->labels ? 4 : 0));
        if (cap < 1)
            cap = 1;
        w->rec_cap = w->per_record < cap ? w->per_record : (uint32_t)cap;
        w->buf = (shard_record){im->dtype, 0, im->c, im->h, im->w, NULL, NULL};
        w->buf.data = xmalloc(w->rec_cap * w->img_bytes);
        if (im->labels)
            w->buf.labels = xmalloc(sizeof(int32_t) * w->rec_cap);
        w->have_shape = 1;
    } else if (im->dtype != w->buf.dtype || im->c != w->buf.c || im->h != w->buf.h ||
               im->w != w->buf.w || !im->labels != !w->buf.labels) {
        glow_errorf(err, "%s: images of %ux%ux%u %s%s differ from the %ux%ux%u %s%s before",
                    w->dir, im->c, im->h, im->w, type_name(im->dtype),
                    im->labels ? " with labels" : "", w->buf.c, w->buf.h, w->buf.w,
                    type_name(w->buf.dtype), w->buf.labels ? " with labels" : "");
        return -1;
    }
    const unsigned char *src = im->data;
    for (uint32_t done = 0; done < im->n;) {
        /* A record never spans two files. */
        uint64_t room = w->rec_cap - w->buf.n;
        uint64_t file_room = w->per_file - (w->file_open ? w->in_file : 0) - w->buf.n;
        if (file_room < room)
            room = file_room;
        uint32_t k = im->n - done < room ? im->n - done : (uint32_t)room;
        memcpy((unsigned char *)w->buf.data + (size_t)w->buf.n * w->img_bytes,
               src + (size_t)done * w->img_bytes, (size_t)k * w->img_bytes);
        if (im->labels)
            memcpy(w->buf.labels + w->buf.n, im->labels + done, sizeof(int32_t) * k);
        w->buf.n += k;
        done += k;
        if (w->buf.n == w->rec_cap || k == file_room)
            if (flush_record(w, err) != 0)
                return -1;
    }
    return 0;
}

/* Files of this prefix numbered from `from` on, left by an earlier larger run. */
static void remove_stale(const shard_dir_writer *w, int from)
{
    for (int i = from;; i++) {
        char *p = shard_path(w, i);
        int gone = unlink(p) != 0 && errno == ENOENT;
        free(p);
        if (gone)
            break;
    }
}

static void writer_free(shard_dir_writer *w)
{
    shard_record_free(&w->buf);
    free(w->dir);
    free(w->prefix);
    free(w);
}

int shard_dir_writer_close(shard_dir_writer *w, int *nfiles, glow_error *err)
{
    int rc = flush_record(w, err);
    if (rc == 0 && w->file_open) {
        w->file_open = 0;
        rc = atomic_commit(&w->af, err);
        if (rc == 0)
            w->nfiles++;
    }
    if (rc != 0 && w->file_open)
        atomic_abort(&w->af);
    if (rc == 0)
        remove_stale(w, w->nfiles);
    if (nfiles)
        *nfiles = w->nfiles;
    writer_free(w);
    return rc;
}

void shard_dir_writer_abort(shard_dir_writer *w)
{
    if (!w)
        return;
    if (w->file_open)
        atomic_abort(&w->af);
    writer_free(w);
}
