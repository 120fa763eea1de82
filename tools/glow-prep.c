/* glow-prep: image files or data files -> the shard stream (or shard files).
 *
 * The list of inputs is built first (prep_inputs), shuffled and cut there, then
 * decoding threads turn items into images of one shape while the main thread
 * takes the results strictly in list order, reports bad images, and writes
 * records. Order and record boundaries never depend on the thread count, so
 * -j 1 and -j 8 give the same bytes. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/rng.h"
#include "data/image.h"
#include "data/shard.h"
#include "prep/prep_inputs.h"
#include "prep/prep_output.h"

/* Default shard file size with -o: this many bytes of pixels. */
#define SHARD_FILE_BYTES ((uint64_t)64 << 20)

static void usage(FILE *f)
{
    fputs(
        "usage: glow-prep [OPTIONS] INPUT... > STREAM\n"
        "       glow-prep [OPTIONS] -o DIR INPUT...\n"
        "Turn images into the shard stream (standard output) or shard files (-o DIR).\n"
        "\n"
        "Inputs (recognised by name and content, or forced with --format):\n"
        "  CSV      header naming a path column (name, filename, path or file) and\n"
        "           optionally a 'label' column; the seed's meta files (',name' then\n"
        "           'index,filename' lines) are of this kind\n"
        "  list     one image path per line ('-' reads standard input)\n"
        "  dir      a folder: every .png/.jpg/.jpeg below it, sorted by path\n"
        "  idx      MNIST-style IDX images, gzip or plain (labels: see --labels)\n"
        "  cifar10, cifar100  CIFAR binary batches (*.bin; several are concatenated)\n"
        "  image    a PNG or JPEG file\n"
        "Several inputs are read in order; all must have labels or none.\n"
        "\n"
        "Options:\n"
        "  -o, --out DIR        write DIR/shard-00000.glow, ... (atomically) instead of\n"
        "                       standard output; with --split: DIR/train/ and DIR/val/\n"
        "      --shard-size N   images per shard file with -o (default: 64 MiB of pixels)\n"
        "      --format F       csv, list, dir, idx, cifar10 (cifar), cifar100, image\n"
        "      --root DIR       folder of relative paths in a CSV or list (default: the\n"
        "                       CSV's or list's own folder; '.' for standard input)\n"
        "      --labels FILE    IDX label file (default: the sibling file named with\n"
        "                       images->labels and idx3->idx1, when it exists)\n"
        "      --labels-from-dirs  a dir input's first-level folders are the classes,\n"
        "                       labelled 0..K-1 in sorted order; the mapping goes to\n"
        "                       stderr, or to --classes\n"
        "      --classes FILE   write the class mapping as 'LABEL<TAB>NAME' lines\n"
        "      --channels 1|3   output channels (default: 3 for image files, the data's\n"
        "                       own for IDX (1) and CIFAR (3)); RGB->gray uses the\n"
        "                       BT.601 luma weights, gray->RGB repeats the value\n"
        "      --crop           centre-crop every image to a square first\n"
        "      --size S|HxW     resize to SxS or HxW: area averaging when shrinking,\n"
        "                       bilinear when enlarging. Without it every image must\n"
        "                       already have the size of the first one\n"
        "      --pad P          add P zero pixels on every side (28x28 -> 32x32: --pad 2)\n"
        "      --shuffle        shuffle the input list (before --limit and --split)\n"
        "      --seed S         shuffle seed (default 0)\n"
        "      --limit N        keep the first N images of the (shuffled) list\n"
        "      --split F        the first round(F*n) images are 'train', the rest\n"
        "                       'val' (0 < F < 1); with standard output the val\n"
        "                       stream goes to --val-out\n"
        "      --val-out FILE   the validation stream with --split and no -o\n"
        "  -j, --jobs N         decoding threads (default: CPUs, at most 8); the output\n"
        "                       is the same for every N\n"
        "      --strict         the first bad image or list line is fatal (exit 1)\n"
        "  -q, --quiet          no summary, class mapping or progress\n"
        "  -h, --help           this help\n"
        "\n"
        "A missing, unreadable or corrupt image, or one of another size without\n"
        "--size, is reported as 'glow-prep: FILE: reason' and skipped; so is a bad\n"
        "CSV line ('FILE: line N: reason'). The count is reported at the end. Exit: 0\n"
        "done, 1 bad input (nothing usable, or any problem under --strict), 2 usage.\n"
        "PNG alpha is dropped (colour kept as stored); JPEG CMYK is converted to RGB.\n",
        f);
}

typedef struct {
    const char *out_dir, *root, *labels, *classes_file, *val_out;
    prep_format format;
    uint64_t shard_size;
    int labels_from_dirs, channels, crop, size_w, size_h, pad, shuffle, strict, quiet, jobs;
    uint64_t seed, limit;
    double split;
} options;

static void parse_size(const char *s, int *w, int *h)
{
    const char *x = strchr(s, 'x');
    long a, b;
    if (!x) {
        a = glow_opt_long("--size", s, 1, 65535);
        *w = *h = (int)a;
        return;
    }
    char hs[32];
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof hs)
        glow_usage_error("invalid --size '%s' (expected S or HxW)", s);
    memcpy(hs, s, n);
    hs[n] = 0;
    if (parse_long(hs, 1, 65535, &a) != 0 || parse_long(x + 1, 1, 65535, &b) != 0)
        glow_usage_error("invalid --size '%s' (expected S or HxW)", s);
    *h = (int)a;
    *w = (int)b;
}

static int parse_args(int argc, char **argv, options *o)
{
    enum {
        O_SHARD = 256, O_FORMAT, O_ROOT, O_LABELS, O_LFD, O_CLASSES, O_CHANNELS, O_CROP, O_SIZE,
        O_PAD, O_SHUFFLE, O_SEED, O_LIMIT, O_SPLIT, O_VALOUT, O_STRICT
    };
    static const struct option longs[] = {
        {"out", required_argument, NULL, 'o'},
        {"shard-size", required_argument, NULL, O_SHARD},
        {"format", required_argument, NULL, O_FORMAT},
        {"root", required_argument, NULL, O_ROOT},
        {"labels", required_argument, NULL, O_LABELS},
        {"labels-from-dirs", no_argument, NULL, O_LFD},
        {"classes", required_argument, NULL, O_CLASSES},
        {"channels", required_argument, NULL, O_CHANNELS},
        {"crop", no_argument, NULL, O_CROP},
        {"size", required_argument, NULL, O_SIZE},
        {"pad", required_argument, NULL, O_PAD},
        {"shuffle", no_argument, NULL, O_SHUFFLE},
        {"seed", required_argument, NULL, O_SEED},
        {"limit", required_argument, NULL, O_LIMIT},
        {"split", required_argument, NULL, O_SPLIT},
        {"val-out", required_argument, NULL, O_VALOUT},
        {"jobs", required_argument, NULL, 'j'},
        {"strict", no_argument, NULL, O_STRICT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:j:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o->out_dir = optarg; break;
        case O_SHARD: o->shard_size = (uint64_t)glow_opt_long("--shard-size", optarg, 1, 2000000000L); break;
        case O_FORMAT:
            if (prep_parse_format(optarg, &o->format) != 0)
                glow_usage_error("invalid --format '%s' (csv, list, dir, idx, cifar10, cifar100, "
                            "image)", optarg);
            break;
        case O_ROOT: o->root = optarg; break;
        case O_LABELS: o->labels = optarg; break;
        case O_LFD: o->labels_from_dirs = 1; break;
        case O_CLASSES: o->classes_file = optarg; break;
        case O_CHANNELS:
            o->channels = (int)glow_opt_long("--channels", optarg, 1, 3);
            if (o->channels == 2)
                glow_usage_error("invalid --channels '%s' (1 or 3)", optarg);
            break;
        case O_CROP: o->crop = 1; break;
        case O_SIZE: parse_size(optarg, &o->size_w, &o->size_h); break;
        case O_PAD: o->pad = (int)glow_opt_long("--pad", optarg, 0, 4096); break;
        case O_SHUFFLE: o->shuffle = 1; break;
        case O_SEED: o->seed = (uint64_t)glow_opt_long("--seed", optarg, 0, LONG_MAX); break;
        case O_LIMIT: o->limit = (uint64_t)glow_opt_long("--limit", optarg, 1, LONG_MAX); break;
        case O_SPLIT:
            if (parse_double(optarg, &o->split) != 0 || !(o->split > 0 && o->split < 1))
                glow_usage_error("invalid --split '%s' (a fraction between 0 and 1, e.g. 0.9)",
                            optarg);
            break;
        case O_VALOUT: o->val_out = optarg; break;
        case 'j': o->jobs = (int)glow_opt_long("-j", optarg, 1, 256); break;
        case O_STRICT: o->strict = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case ':': glow_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: glow_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        glow_usage_error("%s", "no input given");
    if (o->split > 0 && !o->out_dir && !o->val_out)
        glow_usage_error("%s", "--split with standard output needs --val-out FILE for the "
                          "validation stream (or give -o DIR)");
    if (o->val_out && o->split == 0)
        glow_usage_error("%s", "--val-out needs --split");
    if (o->val_out && o->out_dir)
        glow_usage_error("%s", "--val-out is for standard output; with -o DIR the split goes to "
                          "DIR/train and DIR/val");
    if (o->val_out && !strcmp(o->val_out, "-"))
        glow_usage_error("%s", "--val-out cannot be standard output (the train stream is there)");
    if (o->shard_size && !o->out_dir)
        glow_usage_error("%s", "--shard-size needs -o DIR");
    if (o->classes_file && !o->labels_from_dirs)
        glow_usage_error("%s", "--classes needs --labels-from-dirs");
    if (o->labels && argc - optind != 1)
        glow_usage_error("%s", "--labels goes with exactly one IDX input");
    if (o->labels_from_dirs && argc - optind != 1)
        glow_usage_error("%s", "--labels-from-dirs goes with exactly one directory input");
    return optind;
}

/* ---------- decoding threads ---------- */

typedef struct {
    uint8_t *chw; /* the finished image, or NULL */
    int c, h, w;
    char *err;    /* why not */
} result;

typedef struct {
    const prep_inputs *in;
    const uint32_t *order;
    size_t n;           /* items to process */
    const options *o;
    int channels;
    image_hint hint;
    size_t chunk, nchunks;
    int nslots;
    result *slots;      /* nslots * chunk */
    size_t *ready;      /* per slot: chunk index + 1 once done */
    size_t next, consumed;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t done_cv, free_cv;
} work;

static void fail_result(result *r, const char *msg)
{
    r->chw = NULL;
    r->err = xstrdup(msg);
}

static void process(const work *wk, const prep_item *it, result *r)
{
    const options *o = wk->o;
    glow_image im, t;
    memset(r, 0, sizeof *r);
    if (it->path) {
        glow_error err;
        if (image_load(it->path, &wk->hint, &im, &err) != 0) {
            fail_result(r, err.msg);
            return;
        }
    } else {
        const prep_array *a = &wk->in->arrays[it->array];
        size_t sz = (size_t)a->c * (size_t)a->h * (size_t)a->w;
        image_from_chw(a->data + (size_t)it->index * sz, a->w, a->h, a->c, &im);
    }
    if (im.c != wk->channels) {
        image_convert_channels(&im, wk->channels, &t);
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
    if (o->pad) {
        image_pad(&im, o->pad, &t);
        image_free(&im);
        im = t;
    }
    r->c = im.c;
    r->h = im.h;
    r->w = im.w;
    r->chw = xmalloc((size_t)im.c * (size_t)im.h * (size_t)im.w);
    image_to_chw(&im, r->chw);
    image_free(&im);
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
            process(wk, &wk->in->items[wk->order[first + k]], &res[k]);

        pthread_mutex_lock(&wk->mu);
        wk->ready[slot] = c + 1;
        pthread_cond_broadcast(&wk->done_cv);
        pthread_mutex_unlock(&wk->mu);
    }
}

/* ---------- the run ---------- */

typedef struct {
    int progress, progress_shown;
    double t0, last;
    uint64_t done, total;
} progress;

static void progress_note(progress *p, int final)
{
    if (!p->progress)
        return;
    double t = now_seconds();
    if (!final && t - p->last < 0.5)
        return;
    p->last = t;
    double rate = p->done / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    fprintf(stderr, "\r%s: %llu/%llu images, %.0f images/s, ETA %.0fs   ", glow_progname(),
            (unsigned long long)p->done, (unsigned long long)p->total, rate, eta);
    p->progress_shown = 1;
    if (final)
        fputc('\n', stderr);
}

/* A message while a progress line is up starts on a fresh line. */
static void warn_line(progress *p, const char *name, const char *reason)
{
    if (p->progress_shown) {
        fputc('\n', stderr);
        p->progress_shown = 0;
    }
    glow_warn("%s: %s", name, reason);
}

static void on_signal(int sig)
{
    atomic_cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void write_classes(const options *o, const prep_inputs *in)
{
    if (!o->classes_file) {
        if (!o->quiet)
            for (int i = 0; i < in->nclasses; i++)
                glow_warn("class %d: %s", i, in->classes[i]);
        return;
    }
    atomic_file af;
    glow_error err;
    if (atomic_open(&af, o->classes_file, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    for (int i = 0; i < in->nclasses; i++)
        fprintf(af.f, "%d\t%s\n", i, in->classes[i]);
    if (atomic_commit(&af, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
}

static char *path2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = xmalloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

int main(int argc, char **argv)
{
    glow_set_progname(argv[0]);
    options o;
    int first = parse_args(argc, argv, &o);
    if (!o.out_dir && isatty(STDOUT_FILENO))
        glow_usage_error("%s", "refusing to write binary data to a terminal (redirect standard "
                          "output or give -o DIR)");
    atexit(atomic_cleanup_all);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);

    /* The list of images. */
    prep_inputs in;
    prep_inputs_init(&in);
    prep_options po = {o.format, o.root, o.labels, o.labels_from_dirs, o.strict, o.quiet};
    glow_error err;
    for (int i = first; i < argc; i++)
        if (prep_inputs_add(&in, argv[i], &po, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    if (o.labels_from_dirs)
        write_classes(&o, &in);
    if (in.n > UINT32_MAX)
        glow_die(EXIT_BADINPUT, "%zu images: more than this tool handles in one run", in.n);

    uint32_t n = (uint32_t)in.n;
    uint32_t *order = xmalloc((n ? n : 1) * sizeof *order);
    for (uint32_t i = 0; i < n; i++)
        order[i] = i;
    if (o.shuffle) {
        glow_rng r = rng_make(o.seed, RNG_STREAM_DATA_ORDER);
        rng_shuffle_u32(&r, order, n);
    }
    if (o.limit && o.limit < n)
        n = (uint32_t)o.limit;
    uint64_t ntrain = o.split > 0 ? (uint64_t)llround(o.split * n) : n;

    int any_files = 0;
    for (uint32_t i = 0; i < n && !any_files; i++)
        any_files = in.items[order[i]].path != NULL;
    int channels = o.channels ? o.channels : any_files || !in.narrays ? 3 : in.arrays[0].c;
    int labels = in.labels == 1;

    /* Outputs. */
    prep_sink train = {0}, val = {0};
    if (o.out_dir) {
        train.dir = o.split > 0 ? path2(o.out_dir, "train") : xstrdup(o.out_dir);
        train.dest = train.dir;
        if (o.split > 0) {
            val.dir = path2(o.out_dir, "val");
            val.dest = val.dir;
        }
    } else {
        train.f = stdout;
        train.dest = "standard output";
        if (o.val_out) {
            if (atomic_open(&val.af, o.val_out, &err) != 0)
                glow_die(EXIT_BADINPUT, "%s", err.msg);
            val.use_af = 1;
            val.f = val.af.f;
            val.dest = o.val_out;
        }
    }

    /* Decoding threads. */
    work wk = {0};
    wk.in = &in;
    wk.order = order;
    wk.n = n;
    wk.o = &o;
    wk.channels = channels;
    if (o.size_w)
        wk.hint = (image_hint){o.size_w, o.size_h, o.crop};
    /* Small chunks of files keep threads balanced; arrays are cheap per image. */
    wk.chunk = any_files ? 8 : 256;
    wk.nchunks = (n + wk.chunk - 1) / wk.chunk;
    wk.nslots = 2 * o.jobs + 2;
    wk.slots = xcalloc((size_t)wk.nslots * wk.chunk, sizeof *wk.slots);
    wk.ready = xcalloc((size_t)wk.nslots, sizeof *wk.ready);
    pthread_mutex_init(&wk.mu, NULL);
    pthread_cond_init(&wk.done_cv, NULL);
    pthread_cond_init(&wk.free_cv, NULL);
    pthread_t *th = xmalloc((size_t)o.jobs * sizeof *th);
    int nthreads = 0;
    for (int i = 0; i < o.jobs && wk.nchunks > 0; i++) {
        if (pthread_create(&th[i], NULL, worker, &wk) != 0)
            break;
        nthreads++;
    }
    if (wk.nchunks > 0 && nthreads == 0)
        glow_die(EXIT_BADINPUT, "cannot start a decoding thread");

    progress pr = {stderr_is_tty() && !o.quiet, 0, now_seconds(), 0, 0, n};
    pr.last = pr.t0;
    prep_writer wr;
    prep_writer_start(&wr);
    int have_shape = 0, fatal = 0, write_failed = 0;
    uint32_t sc = 0, sh = 0, sw = 0;
    uint64_t skipped = 0;
    char name[4200], msg[5000];
    for (size_t c = 0; c < wk.nchunks && !fatal; c++) {
        int slot = (int)(c % (size_t)wk.nslots);
        pthread_mutex_lock(&wk.mu);
        while (wk.ready[slot] != c + 1)
            pthread_cond_wait(&wk.done_cv, &wk.mu);
        pthread_mutex_unlock(&wk.mu);
        result *res = wk.slots + (size_t)slot * wk.chunk;
        for (size_t k = 0; k < wk.chunk && c * wk.chunk + k < n; k++) {
            size_t pos = c * wk.chunk + k;
            const prep_item *it = &in.items[order[pos]];
            result *r = &res[k];
            if (!fatal) {
                const char *why = r->err;
                if (!why && have_shape && ((uint32_t)r->c != sc || (uint32_t)r->h != sh ||
                                           (uint32_t)r->w != sw)) {
                    snprintf(msg, sizeof msg,
                             "image is %dx%dx%d after processing, the first image was %ux%ux%u "
                             "(give --size to resize every image to one size)",
                             r->c, r->h, r->w, sc, sh, sw);
                    why = msg;
                }
                if (why) {
                    prep_item_name(&in, it, name, sizeof name);
                    warn_line(&pr, name, why);
                    skipped++;
                    fatal = o.strict;
                } else {
                    if (!have_shape) {
                        have_shape = 1;
                        sc = (uint32_t)r->c;
                        sh = (uint32_t)r->h;
                        sw = (uint32_t)r->w;
                        uint64_t per_file = o.shard_size ? o.shard_size
                                                         : SHARD_FILE_BYTES / ((uint64_t)sc * sh * sw);
                        if (prep_sink_start(&train, per_file, sc, sh, sw, labels, &err) != 0 ||
                            ((val.dir || val.f) &&
                             prep_sink_start(&val, per_file, sc, sh, sw, labels, &err) != 0))
                            write_failed = 1;
                    }
                    if (!write_failed &&
                        prep_sink_add(&wr, pos < ntrain ? &train : &val, r->chw, it->label, &err) != 0)
                        write_failed = 1;
                    fatal |= write_failed;
                }
            }
            free(r->chw);
            free(r->err);
            r->chw = NULL;
            r->err = NULL;
        }
        pr.done += wk.chunk;
        if (pr.done > n)
            pr.done = n;
        progress_note(&pr, 0);
        pthread_mutex_lock(&wk.mu);
        wk.consumed = c + 1;
        if (fatal)
            wk.stop = 1;
        pthread_cond_broadcast(&wk.free_cv);
        pthread_mutex_unlock(&wk.mu);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    /* Results of chunks decoded but never consumed (after a fatal error). */
    for (size_t i = 0; i < (size_t)wk.nslots * wk.chunk; i++) {
        free(wk.slots[i].chw);
        free(wk.slots[i].err);
    }
    if (pr.progress_shown && !fatal)
        progress_note(&pr, 1);
    else if (pr.progress_shown)
        fputc('\n', stderr);

    if (fatal) {
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
        if (write_failed)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        glow_die(EXIT_BADINPUT, "stopped at the first bad image (--strict)");
    }
    uint64_t bad = skipped + in.bad_lines, total = (uint64_t)n + in.bad_lines;
    if (bad)
        glow_warn("skipped %llu of %llu images", (unsigned long long)bad,
                  (unsigned long long)total);
    if (train.images + val.images == 0) {
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
        glow_die(EXIT_BADINPUT, "%s", total ? "no usable images" : "no images in the input");
    }
    if (prep_sink_finish(&wr, &train, &err) != 0) {
        prep_sink_abort(&wr, &val);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    if (val.started && prep_sink_finish(&wr, &val, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    prep_writer_stop(&wr);
    if (!o.quiet) {
        char shape[64], tfiles[32] = "", vfiles[32] = "";
        snprintf(shape, sizeof shape, "%ux%ux%u%s", sc, sh, sw, labels ? " with labels" : "");
        if (train.dir)
            snprintf(tfiles, sizeof tfiles, " (%d file%s)", train.nfiles, train.nfiles == 1 ? "" : "s");
        if (val.dir)
            snprintf(vfiles, sizeof vfiles, " (%d file%s)", val.nfiles, val.nfiles == 1 ? "" : "s");
        if (o.split > 0)
            glow_warn("wrote %llu train images to %s%s, %llu val images to %s%s (%s)",
                      (unsigned long long)train.images, train.dest, tfiles,
                      (unsigned long long)val.images, val.dest, vfiles, shape);
        else
            glow_warn("wrote %llu images of %s to %s%s", (unsigned long long)train.images, shape,
                      train.dest, tfiles);
    }
    pthread_mutex_destroy(&wk.mu);
    pthread_cond_destroy(&wk.done_cv);
    pthread_cond_destroy(&wk.free_cv);
    free(th);
    free(wk.slots);
    free(wk.ready);
    free(train.dir);
    free(val.dir);
    free(order);
    prep_inputs_free(&in);
    return EXIT_OK;
}
