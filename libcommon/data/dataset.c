#include "dataset.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/mem_budget.h"
#include "base/rng.h"

struct dataset {
    dataset_info info;
    size_t image_bytes;
    /* Shard files (empty when the data came from a stream). */
    int nfiles;
    char **files;
    uint64_t *file_counts;
    /* The loaded chunk: one whole file, or the whole stream. */
    int chunk_file; /* index into files, -1 none, -2 the stream */
    uint8_t *chunk_pixels;
    int32_t *chunk_labels;
    uint64_t chunk_n, chunk_cap;
    /* Shuffled reading: the order of this epoch. The position (slot, image in
     * it) moves without reading; a file is loaded only when one of its images
     * is taken, so skipping other processes' images costs nothing. */
    uint64_t seed, epoch, offset;
    uint32_t *file_order;
    int order_slot;       /* position in file_order of the next image */
    uint64_t slot_pos;    /* next image of that slot, in its shuffled order */
    uint32_t *chunk_perm; /* image order within the chunk */
    int perm_ready;       /* chunk_perm is the order of the slot's file in this epoch */
    int positioned;       /* dataset_seek has run */
    /* Sequential reading. */
    int seq_file;
    uint64_t seq_pos;
    uint64_t mem; /* bytes of the chunk buffers reserved in the memory budget */
};

/* The chunk buffers of cap images: pixels, labels, the order. */
static uint64_t chunk_bytes(const dataset *d, uint64_t cap)
{
    return glow_mem_mul(cap, (uint64_t)d->image_bytes + 8);
}

/* The capacity load_records grows to for n images. */
static uint64_t chunk_cap(uint64_t n)
{
    uint64_t cap = 1024;
    while (cap < n)
        cap *= 2;
    return cap;
}

/* Read every record of one file (or stream) into the chunk buffers. `name` is
 * the source as messages call it. */
static int load_records(dataset *d, shard_reader *r, const char *name, glow_error *err,
                        uint64_t mem_limit)
{
    d->chunk_n = 0;
    shard_record rec;
    int rc;
    while ((rc = shard_reader_next(r, &rec, err)) == 1) {
        if (rec.dtype != SHARD_U8) {
            glow_errorf(err, "%s: record %llu: float32 images cannot be trained on or scored; "
                        "glow-prep writes uint8", name, (unsigned long long)shard_reader_records(r));
            shard_record_free(&rec);
            return -1;
        }
        if (d->chunk_n == 0 && d->info.n_images == 0 && d->chunk_file == -2) {
            d->info.c = rec.c; d->info.h = rec.h; d->info.w = rec.w;
            d->info.has_labels = rec.labels != NULL;
            d->image_bytes = (size_t)rec.c * rec.h * rec.w;
        } else if (rec.c != d->info.c || rec.h != d->info.h || rec.w != d->info.w ||
                   (rec.labels != NULL) != d->info.has_labels) {
            glow_errorf(err, "%s: record %llu: images of %ux%ux%u%s differ from %ux%ux%u%s of the other inputs",
                        name, (unsigned long long)shard_reader_records(r), rec.c, rec.h, rec.w,
                        rec.labels ? " with labels" : "", d->info.c, d->info.h, d->info.w,
                        d->info.has_labels ? " with labels" : "");
            shard_record_free(&rec);
            return -1;
        }
        uint64_t need = d->chunk_n + rec.n;
        if (mem_limit && need * d->image_bytes > mem_limit) {
            glow_errorf(err, "the stream holds more than %llu MiB of images, the limit for data "
                        "read from a stream; write shard files with `glow-prep -o DIR` and "
                        "train from the directory", (unsigned long long)(mem_limit >> 20));
            shard_record_free(&rec);
            return -1;
        }
        if (need > d->chunk_cap) {
            uint64_t cap = d->chunk_cap ? d->chunk_cap : 1024;
            while (cap < need)
                cap *= 2;
            uint64_t more = chunk_bytes(d, cap) - chunk_bytes(d, d->chunk_cap);
            char what[600];
            snprintf(what, sizeof what, "%s: %llu images of %ux%ux%u held in memory", name,
                     (unsigned long long)need, rec.c, rec.h, rec.w);
            if (glow_mem_reserve(more, what, err) != 0) {
                if (d->chunk_file == -2) { /* a stream is held whole */
                    glow_error e = *err;
                    glow_errorf(err, "%.700s; or write shard files with `glow-prep -o DIR` and "
                                     "read the directory, which is not held in memory", e.msg);
                }
                shard_record_free(&rec);
                return -1;
            }
            d->mem += more;
            d->chunk_pixels = xrealloc(d->chunk_pixels, cap * d->image_bytes);
            d->chunk_labels = xrealloc(d->chunk_labels, cap * sizeof(int32_t));
            d->chunk_perm = xrealloc(d->chunk_perm, cap * sizeof(uint32_t));
            d->chunk_cap = cap;
        }
        memcpy(d->chunk_pixels + d->chunk_n * d->image_bytes, rec.data, (size_t)rec.n * d->image_bytes);
        if (rec.labels)
            memcpy(d->chunk_labels + d->chunk_n, rec.labels, rec.n * sizeof(int32_t));
        else
            memset(d->chunk_labels + d->chunk_n, 0, rec.n * sizeof(int32_t));
        d->chunk_n = need;
        shard_record_free(&rec);
    }
    return rc < 0 ? -1 : 0;
}

static int load_file(dataset *d, int f, glow_error *err)
{
    if (d->chunk_file == f)
        return 0;
    d->chunk_file = -1;
    d->perm_ready = 0;
    shard_reader *r = shard_reader_open(d->files[f], err);
    if (!r)
        return -1;
    int rc = load_records(d, r, d->files[f], err, 0);
    shard_reader_close(r);
    if (rc != 0)
        return -1;
    if (d->chunk_n != d->file_counts[f]) {
        glow_errorf(err, "%s: changed while reading (%llu images, %llu before)", d->files[f],
                    (unsigned long long)d->chunk_n, (unsigned long long)d->file_counts[f]);
        return -1;
    }
    d->chunk_file = f;
    return 0;
}

static void add_file(dataset *d, const char *path)
{
    d->files = xrealloc(d->files, (size_t)(d->nfiles + 1) * sizeof *d->files);
    d->files[d->nfiles++] = xstrdup(path);
}

dataset *dataset_open(int ninputs, char **inputs, uint64_t mem_limit, glow_error *err)
{
    return dataset_open_expect(ninputs, inputs, mem_limit, NULL, NULL, err);
}

dataset *dataset_open_expect(int ninputs, char **inputs, uint64_t mem_limit, shard_expect_fn fn,
                             void *ctx, glow_error *err)
{
    dataset *d = xcalloc(1, sizeof *d);
    d->chunk_file = -1;
    d->seq_file = 0;
    int use_stream = ninputs == 0 || (ninputs == 1 && strcmp(inputs[0], "-") == 0);
    if (use_stream) {
        shard_reader *r = shard_reader_open("-", err);
        if (!r)
            goto fail;
        shard_reader_expect(r, fn, ctx);
        d->chunk_file = -2;
        int rc = load_records(d, r, "standard input", err, mem_limit);
        shard_reader_close(r);
        if (rc != 0)
            goto fail;
        d->info.n_images = d->chunk_n;
        d->info.from_stream = 1;
    } else {
        for (int i = 0; i < ninputs; i++) {
            struct stat st;
            if (strcmp(inputs[i], "-") == 0) {
                glow_errorf(err, "-: standard input cannot be mixed with shard files");
                goto fail;
            }
            if (stat(inputs[i], &st) != 0) {
                glow_errorf(err, "%s: no such file or directory", inputs[i]);
                goto fail;
            }
            if (S_ISDIR(st.st_mode)) {
                char **list;
                int n;
                if (shard_dir_list(inputs[i], &list, &n, err) != 0)
                    goto fail;
                if (n == 0) {
                    glow_errorf(err, "%s: no shard files (*.glow) in this directory", inputs[i]);
                    free(list);
                    goto fail;
                }
                for (int j = 0; j < n; j++) {
                    add_file(d, list[j]);
                    free(list[j]);
                }
                free(list);
            } else
                add_file(d, inputs[i]);
        }
        d->file_counts = xcalloc((size_t)d->nfiles, sizeof *d->file_counts);
        for (int f = 0; f < d->nfiles; f++) {
            shard_scan s;
            if (shard_scan_file(d->files[f], &s, err) != 0)
                goto fail;
            if (s.n_images == 0)
                continue;
            if (d->info.n_images == 0) {
                d->info.c = s.c; d->info.h = s.h; d->info.w = s.w;
                d->info.has_labels = s.has_labels;
                d->image_bytes = (size_t)s.c * s.h * s.w;
            } else if (s.c != d->info.c || s.h != d->info.h || s.w != d->info.w ||
                       s.has_labels != d->info.has_labels) {
                glow_errorf(err, "%s: images of %ux%ux%u%s differ from %ux%ux%u%s in %s", d->files[f],
                            s.c, s.h, s.w, s.has_labels ? " with labels" : "", d->info.c,
                            d->info.h, d->info.w, d->info.has_labels ? " with labels" : "",
                            d->files[0]);
                goto fail;
            }
            if (s.dtype != SHARD_U8) {
                glow_errorf(err, "%s: float32 images cannot be trained on or scored; glow-prep writes uint8",
                            d->files[f]);
                goto fail;
            }
            d->file_counts[f] = s.n_images;
            d->info.n_images += s.n_images;
        }
    }
    if (d->info.n_images == 0) {
        glow_errorf(err, "%s: no images", use_stream ? "standard input" : inputs[0]);
        goto fail;
    }
    if (!use_stream) { /* one file is loaded at a time: the largest must fit */
        uint64_t most = 0;
        int at = 0;
        for (int f = 0; f < d->nfiles; f++)
            if (d->file_counts[f] > most) {
                most = d->file_counts[f];
                at = f;
            }
        char what[600];
        snprintf(what, sizeof what, "%s: its %llu images of %ux%ux%u, loaded whole,",
                 d->files[at], (unsigned long long)most, d->info.c, d->info.h, d->info.w);
        if (glow_mem_check(chunk_bytes(d, chunk_cap(most)), what, err) != 0)
            goto fail;
    }
    d->file_order = xcalloc((size_t)(d->nfiles ? d->nfiles : 1), sizeof *d->file_order);
    return d;
fail:
    dataset_close(d);
    return NULL;
}

const dataset_info *dataset_get_info(const dataset *d) { return &d->info; }

char *dataset_fingerprint(const dataset *d)
{
    size_t cap = 128, len = 0;
    char *s = xmalloc(cap);
    len += (size_t)snprintf(s, cap, "%llu images of %ux%ux%u%s\n", (unsigned long long)d->info.n_images,
                            d->info.c, d->info.h, d->info.w, d->info.has_labels ? " with labels" : "");
    for (int f = 0; f < d->nfiles; f++) {
        const char *slash = strrchr(d->files[f], '/');
        const char *base = slash ? slash + 1 : d->files[f];
        size_t need = len + strlen(base) + 32;
        if (need > cap) {
            cap = need * 2;
            s = xrealloc(s, cap);
        }
        len += (size_t)snprintf(s + len, cap - len, "%s %llu\n", base,
                                (unsigned long long)d->file_counts[f]);
    }
    return s;
}

int dataset_read_seq(dataset *d, uint32_t max, uint8_t *pixels, int32_t *labels, glow_error *err)
{
    uint32_t got = 0;
    while (got < max) {
        if (d->info.from_stream) {
            if (d->seq_pos >= d->chunk_n)
                break;
        } else {
            if (d->seq_file >= d->nfiles)
                break;
            if (d->file_counts[d->seq_file] == 0 || d->seq_pos >= d->file_counts[d->seq_file]) {
                d->seq_file++;
                d->seq_pos = 0;
                continue;
            }
            if (load_file(d, d->seq_file, err) != 0)
                return -1;
        }
        uint64_t take = d->chunk_n - d->seq_pos;
        if (take > max - got)
            take = max - got;
        memcpy(pixels + (size_t)got * d->image_bytes, d->chunk_pixels + d->seq_pos * d->image_bytes,
               take * d->image_bytes);
        if (labels)
            memcpy(labels + got, d->chunk_labels + d->seq_pos, take * sizeof(int32_t));
        got += (uint32_t)take;
        d->seq_pos += take;
    }
    return (int)got;
}

void dataset_seq_seek(dataset *d, uint64_t index)
{
    d->seq_file = 0;
    d->seq_pos = index;
    if (d->info.from_stream)
        return;
    /* whole files before the index are passed by their counts, not read */
    while (d->seq_file < d->nfiles && d->seq_pos >= d->file_counts[d->seq_file]) {
        d->seq_pos -= d->file_counts[d->seq_file];
        d->seq_file++;
    }
}

void dataset_rewind(dataset *d) { dataset_seq_seek(d, 0); }

/* The random streams of an epoch: one for the file order, one per file. */
static glow_rng epoch_rng(uint64_t seed, uint64_t epoch, uint64_t file_plus_one)
{
    return rng_make(seed, (epoch << 32) | (file_plus_one << 8) | RNG_STREAM_DATA_ORDER);
}

static int n_slots(const dataset *d) { return d->info.from_stream ? 1 : d->nfiles; }

static uint64_t slot_count(const dataset *d, int slot)
{
    return d->info.from_stream ? d->chunk_n : d->file_counts[d->file_order[slot]];
}

/* The first image of an epoch: its file order, nothing loaded. */
static void start_epoch(dataset *d, uint64_t epoch)
{
    d->epoch = epoch;
    d->offset = 0;
    d->order_slot = 0;
    d->slot_pos = 0;
    d->perm_ready = 0;
    if (d->info.from_stream)
        return;
    for (int i = 0; i < d->nfiles; i++)
        d->file_order[i] = (uint32_t)i;
    glow_rng r = epoch_rng(d->seed, epoch, 0);
    rng_shuffle_u32(&r, d->file_order, (uint32_t)d->nfiles);
}

/* Past the end of a slot (an empty file, or all its images taken): the next
 * slot, or the next epoch. */
static void next_slot(dataset *d)
{
    while (d->slot_pos >= slot_count(d, d->order_slot)) {
        if (d->order_slot + 1 < n_slots(d)) {
            d->order_slot++;
            d->slot_pos = 0;
            d->perm_ready = 0;
        } else
            start_epoch(d, d->epoch + 1);
    }
}

/* Move on k images in the order without reading them. A position at the end of
 * an epoch is the start of the next, as dataset_position promises. */
static void advance(dataset *d, uint64_t k)
{
    while (k > 0) {
        uint64_t left = slot_count(d, d->order_slot) - d->slot_pos;
        if (k < left) {
            d->slot_pos += k;
            d->offset += k;
            return;
        }
        k -= left;
        d->offset += left;
        d->slot_pos += left;
        next_slot(d);
    }
}

/* The slot's file in the chunk and its image order in chunk_perm. Sequential
 * reading may have replaced the chunk: the order within a file depends only on
 * (seed, epoch, file), so reloading the file restores it. */
static int ready_slot(dataset *d, glow_error *err)
{
    int f = d->info.from_stream ? -2 : (int)d->file_order[d->order_slot];
    if (f >= 0 && d->chunk_file != f && load_file(d, f, err) != 0)
        return -1;
    if (!d->perm_ready) {
        for (uint64_t i = 0; i < d->chunk_n; i++)
            d->chunk_perm[i] = (uint32_t)i;
        glow_rng r = epoch_rng(d->seed, d->epoch, f >= 0 ? (uint64_t)f + 1 : 0);
        rng_shuffle_u32(&r, d->chunk_perm, (uint32_t)d->chunk_n);
        d->perm_ready = 1;
    }
    return 0;
}

int dataset_seek(dataset *d, uint64_t seed, uint64_t epoch, uint64_t offset, glow_error *err)
{
    (void)err;
    d->seed = seed;
    start_epoch(d, epoch + offset / d->info.n_images);
    d->positioned = 1;
    next_slot(d);
    advance(d, offset % d->info.n_images);
    return 0;
}

int dataset_next_slice(dataset *d, uint64_t total, uint64_t first, uint32_t n, uint8_t *pixels,
                       int32_t *labels, glow_error *err)
{
    if (first > total || n > total - first) {
        glow_errorf(err, "dataset: images %llu..%llu of a batch of %llu",
                    (unsigned long long)first, (unsigned long long)(first + n),
                    (unsigned long long)total);
        return -1;
    }
    if (!d->positioned && dataset_seek(d, 0, 0, 0, err) != 0)
        return -1;
    advance(d, first);
    for (uint32_t i = 0; i < n; i++) {
        if (ready_slot(d, err) != 0)
            return -1;
        uint32_t j = d->chunk_perm[d->slot_pos];
        memcpy(pixels + (size_t)i * d->image_bytes, d->chunk_pixels + (size_t)j * d->image_bytes,
               d->image_bytes);
        if (labels)
            labels[i] = d->chunk_labels[j];
        advance(d, 1);
    }
    advance(d, total - first - n);
    return 0;
}

int dataset_next_batch(dataset *d, uint32_t n, uint8_t *pixels, int32_t *labels, glow_error *err)
{
    return dataset_next_slice(d, n, 0, n, pixels, labels, err);
}

void dataset_position(const dataset *d, uint64_t *epoch, uint64_t *offset)
{
    *epoch = d->epoch;
    *offset = d->offset;
}

void dataset_close(dataset *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->nfiles; i++)
        free(d->files[i]);
    free(d->files);
    free(d->file_counts);
    free(d->chunk_pixels);
    free(d->chunk_labels);
    free(d->chunk_perm);
    free(d->file_order);
    glow_mem_release(d->mem);
    free(d);
}
