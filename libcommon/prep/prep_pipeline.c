#include "prep_pipeline.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem_budget.h"
#include "base/rng.h"
#include "data/image.h"
#include "data/shard.h"

uint32_t *prep_order(const prep_inputs *in, int shuffle, uint64_t seed, uint64_t limit,
                     uint32_t *n_out)
{
    uint32_t n = (uint32_t)in->n;
    uint32_t *order = xmalloc((n ? n : 1) * sizeof *order);
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    if (shuffle) {
        glow_rng r = rng_make(seed, RNG_STREAM_DATA_ORDER);
        rng_shuffle_u32(&r, order, n);
    }
    if (limit && limit < n)
        n = (uint32_t)limit;
    *n_out = n;
    return order;
}

int prep_split_count(double split, uint32_t n, uint64_t *ntrain, glow_error *err)
{
    *ntrain = n;
    if (split <= 0 || n == 0)
        return 0;
    *ntrain = (uint64_t)llround(split * n);
    if (*ntrain == 0 || *ntrain == n) {
        glow_errorf(err, "--split %g of %u image%s leaves the %s set empty (%llu train, %llu val); "
                         "give more images or a --split nearer 0.5",
                    split, n, n == 1 ? "" : "s", *ntrain ? "validation" : "training",
                    (unsigned long long)*ntrain, (unsigned long long)(n - *ntrain));
        return -1;
    }
    return 0;
}

static int any_files(const prep_inputs *in, const uint32_t *order, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (in->items[order[i]].path)
            return 1;
    return 0;
}

int prep_output_channels(const prep_inputs *in, const uint32_t *order, uint32_t n, int forced)
{
    if (forced)
        return forced;
    return any_files(in, order, n) || !in->narrays ? 3 : in->arrays[0].c;
}

/* ---------- decoding threads ---------- */

typedef struct {
    uint8_t *chw; /* the finished image, or NULL */
    int c, h, w;
    char *err;    /* why not */
    uint64_t held; /* bytes of chw in the decoding memory, until the taker frees it */
} result;

typedef struct {
    const prep_pipeline *pp;
    const prep_inputs *in;
    const uint32_t *order;
    size_t n;           /* items to process */
    image_hint hint;
    size_t chunk, nchunks;
    int nslots;
    result *slots;      /* nslots * chunk */
    size_t *ready;      /* per slot: chunk index + 1 once done */
    size_t next, consumed;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t done_cv, free_cv, mem_cv;
    /* Decoding memory: what the images being decoded and processed, and the
     * results not yet taken, may hold together (the memory budget's rest). */
    uint64_t pool, used;
} work;

static void fail_result(result *r, const char *msg)
{
    r->chw = NULL;
    r->err = xstrdup(msg);
}

/* Everything one image of w x h x c may hold at once on its way through the
 * steps of process(), from the file's bytes to the planar result. */
static uint64_t chain_bytes(const prep_pipeline *o, uint64_t file, uint64_t w, uint64_t h, int c)
{
    const uint64_t ch = (uint64_t)o->channels;
    uint64_t total = file + w * h * (uint64_t)c + ((uint64_t)c != ch ? w * h * ch : 0);
    if (o->crop && w != h) {
        w = h = w < h ? w : h;
        total += w * h * ch;
    }
    if (o->size_w && (w != (uint64_t)o->size_w || h != (uint64_t)o->size_h)) {
        /* the result and the float rows between the two passes */
        total += (uint64_t)o->size_w * o->size_h * ch + h * (uint64_t)o->size_w * ch * 4 +
                 (w + h + (uint64_t)o->size_w + o->size_h) * 16;
        w = (uint64_t)o->size_w;
        h = (uint64_t)o->size_h;
    }
    if (o->pad > 0) {
        w += 2 * (uint64_t)o->pad;
        h += 2 * (uint64_t)o->pad;
        total += w * h * ch;
    } else if (o->pad < 0 && w > 2 * (uint64_t)-o->pad && h > 2 * (uint64_t)-o->pad) {
        w -= 2 * (uint64_t)-o->pad;
        h -= 2 * (uint64_t)-o->pad;
        total += w * h * ch;
    }
    return total + w * h * ch; /* the planar result */
}

/* One image's admission to the decoding memory: it waits while the pool is
 * full, unless its chunk is the one the writer waits for (which must go on, or
 * the results ahead of it could never be taken); an image that needs more than
 * the whole pool is refused, the same way whatever -j is. */
typedef struct {
    work *wk;
    size_t chunk;
    uint64_t got;
} admission;

static int admit(void *ctx, uint64_t file, int w, int h, int c, glow_error *err)
{
    admission *a = ctx;
    work *wk = a->wk;
    uint64_t need = chain_bytes(wk->pp, file, (uint64_t)w, (uint64_t)h, c);
    if (need > wk->pool) {
        char nb[32], pb[32], lb[32];
        glow_errorf(err, "decoding and processing this %dx%d image would take %s of memory, more "
                         "than the %s the limit of %s leaves for it; raise it with --mem-limit MiB",
                    w, h, glow_mem_str(need, nb, sizeof nb), glow_mem_str(wk->pool, pb, sizeof pb),
                    glow_mem_str(glow_mem_limit(), lb, sizeof lb));
        return -1;
    }
    pthread_mutex_lock(&wk->mu);
    while (wk->used + need > wk->pool && a->chunk != wk->consumed && !wk->stop)
        pthread_cond_wait(&wk->mem_cv, &wk->mu);
    wk->used += need;
    pthread_mutex_unlock(&wk->mu);
    a->got = need;
    return 0;
}

static void give_back(work *wk, uint64_t bytes)
{
    if (!bytes)
        return;
    pthread_mutex_lock(&wk->mu);
    wk->used -= bytes < wk->used ? bytes : wk->used;
    pthread_cond_broadcast(&wk->mem_cv);
    pthread_mutex_unlock(&wk->mu);
}

static void process(work *wk, size_t chunk, const prep_item *it, result *r)
{
    const prep_pipeline *o = wk->pp;
    glow_image im, t;
    memset(r, 0, sizeof *r);
    admission ad = {wk, chunk, 0};
    if (it->path) {
        glow_error err;
        image_limits lim = {o->channels, admit, &ad};
        if (image_load_limited(it->path, &wk->hint, &lim, &im, &err) != 0) {
            give_back(wk, ad.got);
            fail_result(r, err.msg);
            return;
        }
    } else {
        const prep_array *a = &wk->in->arrays[it->array];
        size_t sz = (size_t)a->c * (size_t)a->h * (size_t)a->w;
        glow_error err;
        if (admit(&ad, 0, a->w, a->h, a->c, &err) != 0) {
            fail_result(r, err.msg);
            return;
        }
        image_from_chw(a->data + (size_t)it->index * sz, a->w, a->h, a->c, &im);
    }
    if (im.c != o->channels) {
        image_convert_channels(&im, o->channels, &t);
        image_free(&im);
        im = t;
    }
    if (o->crop && im.w != im.h) {
        image_crop_center_square(&im, &t);
        image_free(&im);
        im = t;
    }
    if (o->size_w && (im.w != o->size_w || im.h != o->size_h)) {
        image_resize(&im, o->size_w, o->size_h, &t);
        image_free(&im);
        im = t;
    }
    if (o->pad > 0) {
        image_pad(&im, o->pad, &t);
        image_free(&im);
        im = t;
    } else if (o->pad < 0) {
        int p = -o->pad;
        if (im.w <= 2 * p || im.h <= 2 * p) {
            char msg[160];
            snprintf(msg, sizeof msg, "%dx%d is too small to take %d pixels off every side (--pad %d)",
                     im.w, im.h, p, o->pad);
            image_free(&im);
            give_back(wk, ad.got);
            fail_result(r, msg);
            return;
        }
        image_crop(&im, p, p, im.w - 2 * p, im.h - 2 * p, &t);
        image_free(&im);
        im = t;
    }
    r->c = im.c;
    r->h = im.h;
    r->w = im.w;
    r->chw = xmalloc((size_t)im.c * (size_t)im.h * (size_t)im.w);
    image_to_chw(&im, r->chw);
    image_free(&im);
    /* the result stays until it is taken; the rest is free again */
    r->held = (uint64_t)im.c * (uint64_t)im.h * (uint64_t)im.w;
    if (r->held > ad.got)
        r->held = ad.got;
    give_back(wk, ad.got - r->held);
}

static void *worker(void *arg)
{
    work *wk = arg;
    for (;;) {
        pthread_mutex_lock(&wk->mu);
        while (!wk->stop && wk->next < wk->nchunks && wk->next >= wk->consumed + (size_t)wk->nslots)
            pthread_cond_wait(&wk->free_cv, &wk->mu);
        if (wk->stop || wk->next >= wk->nchunks) {
            pthread_mutex_unlock(&wk->mu);
            return NULL;
        }
        size_t c = wk->next++;
        pthread_mutex_unlock(&wk->mu);

        int slot = (int)(c % (size_t)wk->nslots);
        result *res = wk->slots + (size_t)slot * wk->chunk;
        size_t first = c * wk->chunk;
        for (size_t k = 0; k < wk->chunk && first + k < wk->n; k++)
            process(wk, c, &wk->in->items[wk->order[first + k]], &res[k]);

        pthread_mutex_lock(&wk->mu);
        wk->ready[slot] = c + 1;
        pthread_cond_broadcast(&wk->done_cv);
        pthread_mutex_unlock(&wk->mu);
    }
}

/* ---------- the ordered writer: results taken in list order ---------- */

typedef struct {
    const prep_pipeline *pp;
    const prep_inputs *in;
    uint64_t ntrain;
    int labels;
    prep_writer *wr;
    prep_sink *train, *val;
    prep_pipeline_result *res;
    int have_shape, fatal, write_failed;
    glow_error *err;
} taker;

/* The result r of item it, at list position pos: reported when bad, else written. */
static void take(taker *tk, size_t pos, const prep_item *it, const result *r)
{
    const prep_pipeline *pp = tk->pp;
    prep_pipeline_result *res = tk->res;
    char msg[5000];
    const char *why = r->err;
    if (!why && tk->have_shape && ((uint32_t)r->c != res->c || (uint32_t)r->h != res->h ||
                                   (uint32_t)r->w != res->w)) {
        snprintf(msg, sizeof msg,
                 "image is %dx%dx%d after processing, the first image was %ux%ux%u "
                 "(give --size to resize every image to one size)",
                 r->c, r->h, r->w, res->c, res->h, res->w);
        why = msg;
    }
    if (why) {
        char name[4200];
        prep_item_name(tk->in, it, name, sizeof name);
        if (pp->bad)
            pp->bad(pp->ctx, name, why);
        res->skipped++;
        tk->fatal = pp->strict;
        return;
    }
    if (!tk->have_shape) {
        tk->have_shape = 1;
        res->c = (uint32_t)r->c;
        res->h = (uint32_t)r->h;
        res->w = (uint32_t)r->w;
        uint64_t per_file = pp->shard_size ? pp->shard_size
                                           : PREP_SHARD_FILE_BYTES /
                                                 ((uint64_t)res->c * res->h * res->w);
        if (prep_sink_start(tk->train, per_file, res->c, res->h, res->w, tk->labels, tk->err) != 0 ||
            ((tk->val->dir || tk->val->f) &&
             prep_sink_start(tk->val, per_file, res->c, res->h, res->w, tk->labels, tk->err) != 0))
            tk->write_failed = 1;
    }
    if (!tk->write_failed &&
        prep_sink_add(tk->wr, pos < tk->ntrain ? tk->train : tk->val, r->chw,
                      it->label, tk->err) != 0)
        tk->write_failed = 1;
    tk->fatal |= tk->write_failed;
}

int prep_pipeline_run(const prep_pipeline *pp, const prep_inputs *in, const uint32_t *order,
                      uint32_t n, uint64_t ntrain, prep_writer *wr, prep_sink *train,
                      prep_sink *val, prep_pipeline_result *res, glow_error *err)
{
    memset(res, 0, sizeof *res);
    work wk = {0};
    wk.pp = pp;
    wk.in = in;
    wk.order = order;
    wk.n = n;
    if (pp->size_w)
        wk.hint = (image_hint){pp->size_w, pp->size_h, pp->crop};
    /* Small chunks of files keep threads balanced; arrays are cheap per image. */
    wk.chunk = any_files(in, order, n) ? 8 : 256;
    wk.nchunks = (n + wk.chunk - 1) / wk.chunk;
    wk.nslots = 2 * pp->jobs + 2;
    wk.slots = xcalloc((size_t)wk.nslots * wk.chunk, sizeof *wk.slots);
    wk.ready = xcalloc((size_t)wk.nslots, sizeof *wk.ready);
    pthread_mutex_init(&wk.mu, NULL);
    pthread_cond_init(&wk.done_cv, NULL);
    pthread_cond_init(&wk.free_cv, NULL);
    pthread_cond_init(&wk.mem_cv, NULL);
    /* The decoding memory: the budget's rest, less the record buffers of the
     * sinks (train and val, 64 MiB each). */
    uint64_t lim = glow_mem_limit(), used = glow_mem_reserved(), sinks = 2 * SHARD_RECORD_TARGET;
    wk.pool = lim > used + sinks ? lim - used - sinks : 0;
    if (glow_mem_reserve(wk.pool, "", NULL) != 0)
        wk.pool = 0;
    pthread_t *th = xmalloc((size_t)(pp->jobs > 0 ? pp->jobs : 1) * sizeof *th);
    int nthreads = 0;
    for (int i = 0; i < pp->jobs && wk.nchunks > 0; i++) {
        if (pthread_create(&th[i], NULL, worker, &wk) != 0)
            break;
        nthreads++;
    }
    taker tk = {pp, in, ntrain, in->labels == 1, wr, train, val, res, 0, 0, 0, err};
    if (wk.nchunks > 0 && nthreads == 0) {
        glow_errorf(err, "cannot start a decoding thread");
        tk.write_failed = tk.fatal = 1;
    }
    uint64_t done = 0;
    for (size_t c = 0; c < wk.nchunks && !tk.fatal; c++) {
        int slot = (int)(c % (size_t)wk.nslots);
        pthread_mutex_lock(&wk.mu);
        while (wk.ready[slot] != c + 1)
            pthread_cond_wait(&wk.done_cv, &wk.mu);
        pthread_mutex_unlock(&wk.mu);
        result *r = wk.slots + (size_t)slot * wk.chunk;
        for (size_t k = 0; k < wk.chunk && c * wk.chunk + k < n; k++) {
            size_t pos = c * wk.chunk + k;
            if (!tk.fatal)
                take(&tk, pos, &in->items[order[pos]], &r[k]);
            free(r[k].chw);
            free(r[k].err);
            give_back(&wk, r[k].held);
            r[k].chw = NULL;
            r[k].err = NULL;
            r[k].held = 0;
        }
        done += wk.chunk;
        if (done > n)
            done = n;
        if (pp->progress)
            pp->progress(pp->ctx, done, n);
        pthread_mutex_lock(&wk.mu);
        wk.consumed = c + 1;
        if (tk.fatal)
            wk.stop = 1;
        pthread_cond_broadcast(&wk.free_cv);
        pthread_cond_broadcast(&wk.mem_cv);
        pthread_mutex_unlock(&wk.mu);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    /* Results of chunks decoded but never consumed (after a fatal error). */
    for (size_t i = 0; i < (size_t)wk.nslots * wk.chunk; i++) {
        free(wk.slots[i].chw);
        free(wk.slots[i].err);
    }
    pthread_mutex_destroy(&wk.mu);
    pthread_cond_destroy(&wk.done_cv);
    pthread_cond_destroy(&wk.free_cv);
    pthread_cond_destroy(&wk.mem_cv);
    glow_mem_release(wk.pool);
    free(th);
    free(wk.slots);
    free(wk.ready);
    return tk.write_failed ? -1 : tk.fatal ? 1 : 0;
}
