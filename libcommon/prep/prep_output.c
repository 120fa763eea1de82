#include "prep_output.h"

#include <stdlib.h>
#include <string.h>

#include "base/path.h"

static int write_record(prep_sink *s, const shard_record *rec, glow_error *err)
{
    int rc = s->dw ? shard_dir_writer_add(s->dw, rec, err) : shard_write_record(s->f, rec, err);
    if (rc != 0 && !s->dw)
        glow_error_prefix(err, "%s", s->dest);
    return rc;
}

static void *writer_main(void *arg)
{
    prep_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy)
            break;
        prep_sink *s = w->job_sink;
        shard_record rec = w->job;
        pthread_mutex_unlock(&w->mu);
        glow_error err;
        int rc = w->failed ? 0 : write_record(s, &rec, &err);
        pthread_mutex_lock(&w->mu);
        if (rc != 0) {
            w->failed = 1;
            w->err = err;
        }
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void prep_writer_start(prep_writer *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->running = pthread_create(&w->th, NULL, writer_main, w) == 0;
}

/* Wait until the writer holds no record; returns its failure, if any. */
static int writer_idle(prep_writer *w, glow_error *err)
{
    if (!w->running)
        return 0;
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    int failed = w->failed;
    if (failed && err)
        *err = w->err;
    pthread_mutex_unlock(&w->mu);
    return failed ? -1 : 0;
}

void prep_writer_stop(prep_writer *w)
{
    if (!w->running)
        return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    w->running = 0;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static void record_alloc(shard_record *r, uint32_t cap, uint32_t c, uint32_t h, uint32_t w,
                         int labels)
{
    *r = (shard_record){SHARD_U8, 0, c, h, w, NULL, NULL};
    r->data = xmalloc((size_t)cap * c * h * w);
    if (labels)
        r->labels = xmalloc(cap * sizeof(int32_t));
}

int prep_sink_start(prep_sink *s, uint64_t per_file, uint32_t c, uint32_t h, uint32_t w,
                    int labels, glow_error *err)
{
    size_t img = (size_t)c * h * w, cap = PREP_RECORD_TARGET_BYTES / img;
    s->cap = cap < 1 ? 1 : cap > PREP_RECORD_MAX_IMAGES ? PREP_RECORD_MAX_IMAGES : (uint32_t)cap;
    record_alloc(&s->rec, s->cap, c, h, w, labels);
    record_alloc(&s->spare, s->cap, c, h, w, labels);
    s->started = 1;
    if (s->dir) {
        s->dw = shard_dir_writer_open(s->dir, "shard", per_file ? per_file : 1, s->cap, err);
        if (!s->dw)
            return -1;
    }
    return 0;
}

static int sink_flush(prep_writer *w, prep_sink *s, glow_error *err)
{
    if (s->rec.n == 0)
        return 0;
    s->records++;
    if (!w->running) {
        int rc = write_record(s, &s->rec, err);
        s->rec.n = 0;
        return rc;
    }
    if (writer_idle(w, err) != 0)
        return -1;
    /* The spare is free once the writer is idle: hand over rec, fill the spare. */
    shard_record full = s->rec;
    s->rec = s->spare;
    s->spare = full;
    s->rec.n = 0;
    pthread_mutex_lock(&w->mu);
    w->job = full;
    w->job_sink = s;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int prep_sink_add(prep_writer *w, prep_sink *s, const uint8_t *chw, int32_t label,
                  glow_error *err)
{
    size_t img = (size_t)s->rec.c * s->rec.h * s->rec.w;
    memcpy((uint8_t *)s->rec.data + (size_t)s->rec.n * img, chw, img);
    if (s->rec.labels)
        s->rec.labels[s->rec.n] = label;
    s->rec.n++;
    s->images++;
    return s->rec.n == s->cap ? sink_flush(w, s, err) : 0;
}

static void sink_free(prep_sink *s)
{
    shard_record_free(&s->rec);
    shard_record_free(&s->spare);
}

int prep_sink_finish(prep_writer *w, prep_sink *s, glow_error *err)
{
    int rc = sink_flush(w, s, err);
    if (rc == 0)
        rc = writer_idle(w, err);
    if (rc != 0) {
        prep_sink_abort(w, s);
        return -1;
    }
    if (s->dw) {
        shard_dir_writer *dw = s->dw;
        s->dw = NULL;
        rc = shard_dir_writer_close(dw, &s->nfiles, err);
    } else if (s->use_af) {
        s->use_af = 0;
        rc = atomic_commit(&s->af, err);
    } else if (s->f && fflush(s->f) != 0) {
        glow_errorf(err, "%s: write error", s->dest);
        rc = -1;
    }
    sink_free(s);
    return rc;
}

void prep_sink_abort(prep_writer *w, prep_sink *s)
{
    writer_idle(w, NULL);
    if (s->dw)
        shard_dir_writer_abort(s->dw);
    s->dw = NULL;
    if (s->use_af)
        atomic_abort(&s->af);
    s->use_af = 0;
    sink_free(s);
}

int prep_sinks_open(prep_sink *train, prep_sink *val, const char *out_dir, int split,
                    const char *val_out, glow_error *err)
{
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (out_dir) {
        train->dir = split ? glow_path_join(out_dir, "train") : xstrdup(out_dir);
        train->dest = train->dir;
        if (split) {
            val->dir = glow_path_join(out_dir, "val");
            val->dest = val->dir;
        }
        return 0;
    }
    train->f = stdout;
    train->dest = "standard output";
    if (split && val_out) {
        if (atomic_open(&val->af, val_out, err) != 0)
            return -1;
        val->use_af = 1;
        val->f = val->af.f;
        val->dest = val_out;
    }
    return 0;
}

int prep_sinks_finish(prep_writer *w, prep_sink *train, prep_sink *val, glow_error *err)
{
    if (prep_sink_finish(w, train, err) != 0) {
        prep_sink_abort(w, val);
        return -1;
    }
    if (val->started && prep_sink_finish(w, val, err) != 0)
        return -1;
    return 0;
}

int prep_write_classes(const char *path, const prep_inputs *in, glow_error *err)
{
    atomic_file af;
    if (atomic_open(&af, path, err) != 0)
        return -1;
    for (int i = 0; i < in->nclasses; i++)
        fprintf(af.f, "%d\t%s\n", i, in->classes[i]);
    return atomic_commit(&af, err);
}
