/* glow-prep: image files or data files -> the shard stream (or shard files).
 * Options, wiring and messages; the list of inputs is built in prep/prep_inputs,
 * decoded and written in list order by prep/prep_pipeline (the same bytes for
 * every -j). */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prep/prep_inputs.h"
#include "prep/prep_output.h"
#include "prep/prep_pipeline.h"
#include "tool/progress.h"
#include "tool/tool.h"

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
        "  shard    the shard stream (uint8, 1 or 3 channels, labels kept): a file, '-',\n"
        "           or a folder of *.glow files, searched recursively in natural name\n"
        "           order (docs/formats.md, \"Shard folders\")\n"
        "Several inputs are read in order; all must have labels or none.\n"
        "\n"
        "Options:\n"
        "  -o, --out DIR        write shard files into the folder DIR (created):\n"
        "                       DIR/shard-00000.glow, ... (each atomically) instead of\n"
        "                       the stream on standard output ('-o -': standard output);\n"
        "                       with --split: DIR/train/ and DIR/val/\n"
        "      --shard-size N   images per shard file with -o (default: 64 MiB of pixels)\n"
        "      --format F       csv, list, dir, idx, cifar10 (cifar), cifar100, image,\n"
        "                       shard\n"
        "      --root DIR       folder of relative paths in a CSV or list (default: the\n"
        "                       CSV's or list's own folder; '.' for standard input)\n"
        "      --labels FILE    IDX label file (default: the sibling file named with\n"
        "                       images->labels and idx3->idx1, when it exists)\n"
        "      --labels-from-dirs  a dir input's first-level folders are the classes,\n"
        "                       labelled 0..K-1 in sorted order; the mapping goes to\n"
        "                       stderr, or to --classes\n"
        "      --classes FILE   write the class mapping as 'LABEL<TAB>NAME' lines\n"
        "      --channels 1|3   output channels (default: 3 for image files, the data's\n"
        "                       own for IDX (1), CIFAR (3) and shards); RGB->gray uses the\n"
        "                       BT.601 luma weights, gray->RGB repeats the value\n"
        "      --crop           centre-crop every image to a square first\n"
        "      --size S|HxW     resize to SxS or HxW: area averaging when shrinking,\n"
        "                       bilinear when enlarging. Without it every image must\n"
        "                       already have the size of the first one\n"
        "      --pad P          add P zero pixels on every side (28x28 -> 32x32: --pad 2);\n"
        "                       a negative P takes -P pixels off every side (--pad -2 on\n"
        "                       32x32 shards gives the 28x28 images back)\n"
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
        "      --mem-limit MiB  memory for the images being decoded and the data files\n"
        "                       held (default: half the available memory); an image\n"
        "                       that would need more is reported and skipped\n"
        "  -q, --quiet          no summary, class mapping or progress\n"
        "  -h, --help           this help\n"
        "      --version        print the version and exit\n"
        "\n"
        "A missing, unreadable or corrupt image, or one of another size without\n"
        "--size, is reported as 'glow-prep: FILE: reason' and skipped; so is a bad\n"
        "CSV line ('FILE: line N: reason'). The count is reported at the end. Exit: 0\n"
        "done, 1 bad input (nothing usable, or any problem under --strict), 2 usage.\n"
        "PNG alpha is dropped (colour kept as stored); JPEG CMYK is converted to RGB.\n"
        "\n"
        "Examples:\n"
        "  glow-prep --pad 2 train-images-idx3-ubyte.gz > fm-train.glow\n"
        "  glow-prep fm-train.glow --limit 64 | pngcat > grid.png\n"
        "  glow-prep fm-train.glow --shuffle --seed 1 --split 0.9 -o data/fm-split\n"
        "  glow-prep --size 16 --shard-size 100 -o data/fm16 fm-train.glow\n"
        "  cat fm-train.glow | glow-prep --limit 10 - > ten.glow\n",
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
        O_PAD, O_SHUFFLE, O_SEED, O_LIMIT, O_SPLIT, O_VALOUT, O_STRICT, O_VERSION, O_MEM
    };
    static const struct option longs[] = {
        {"out", required_argument, NULL, 'o'},
        {"output", required_argument, NULL, 'o'},
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
        {"mem-limit", required_argument, NULL, O_MEM},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:j:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o->out_dir = strcmp(optarg, "-") ? optarg : NULL; break;
        case O_SHARD: o->shard_size = (uint64_t)glow_opt_long("--shard-size", optarg, 1, 2000000000L); break;
        case O_FORMAT:
            if (prep_parse_format(optarg, &o->format) != 0)
                glow_usage_error("invalid --format '%s' (csv, list, dir, idx, cifar10, cifar100, "
                            "image, shard)", optarg);
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
        case O_PAD: o->pad = (int)glow_opt_long("--pad", optarg, -4096, 4096); break;
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
        case O_MEM: glow_tool_mem_limit(optarg); break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case O_VERSION: glow_tool_print_version();
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

/* ---------- messages ---------- */

typedef struct {
    glow_progress line;
    double t0;
} progress;

static void draw(progress *p, uint64_t done, uint64_t total, int force)
{
    double dt = now_seconds() - p->t0;
    double rate = done / (dt > 1e-9 ? dt : 1e-9);
    double eta = rate > 0 ? (double)(total - done) / rate : 0;
    glow_progress_draw(&p->line, force, "%llu/%llu images, %.0f images/s, ETA %.0fs   ",
                       (unsigned long long)done, (unsigned long long)total, rate, eta);
}

static void on_progress(void *ctx, uint64_t done, uint64_t total) { draw(ctx, done, total, 0); }

/* A message while a progress line is up starts on a fresh line. */
static void on_bad(void *ctx, const char *name, const char *why)
{
    progress *p = ctx;
    glow_progress_end(&p->line);
    glow_warn("%s: %s", name, why);
}

static void summary(const options *o, const prep_sink *train, const prep_sink *val,
                    const prep_pipeline_result *res, int labels)
{
    char shape[64], tfiles[32] = "", vfiles[32] = "";
    snprintf(shape, sizeof shape, "%ux%ux%u%s", res->c, res->h, res->w, labels ? " with labels" : "");
    if (train->dir)
        snprintf(tfiles, sizeof tfiles, " (%d file%s)", train->nfiles, train->nfiles == 1 ? "" : "s");
    if (val->dir)
        snprintf(vfiles, sizeof vfiles, " (%d file%s)", val->nfiles, val->nfiles == 1 ? "" : "s");
    if (o->split > 0)
        glow_warn("wrote %llu train images to %s%s, %llu val images to %s%s (%s)",
                  (unsigned long long)train->images, train->dest, tfiles,
                  (unsigned long long)val->images, val->dest, vfiles, shape);
    else
        glow_warn("wrote %llu images of %s to %s%s", (unsigned long long)train->images, shape,
                  train->dest, tfiles);
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, 0);
    options o;
    int first = parse_args(argc, argv, &o);
    if (!o.out_dir)
        glow_tool_no_terminal("binary data", "redirect standard output or give -o DIR");

    /* Writing over an input (the stream onto a file read, -o onto a folder read). */
    glow_tool_no_overwrite(o.out_dir, NULL, argc - first, argv + first);
    if (o.val_out)
        glow_tool_no_overwrite(o.val_out, NULL, argc - first, argv + first);

    /* The list of images. */
    prep_inputs in;
    prep_inputs_init(&in);
    prep_options po = {o.format, o.root, o.labels, o.labels_from_dirs, o.strict, o.quiet};
    glow_error err;
    for (int i = first; i < argc; i++)
        if (prep_inputs_add(&in, argv[i], &po, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    if (o.labels_from_dirs && o.classes_file) {
        if (prep_write_classes(o.classes_file, &in, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    } else if (o.labels_from_dirs && !o.quiet) {
        for (int i = 0; i < in.nclasses; i++)
            glow_warn("class %d: %s", i, in.classes[i]);
    }
    if (in.n > UINT32_MAX)
        glow_die(EXIT_BADINPUT, "%zu images: more than this tool handles in one run", in.n);
    uint32_t n;
    uint32_t *order = prep_order(&in, o.shuffle, o.seed, o.limit, &n);
    uint64_t ntrain;
    if (prep_split_count(o.split, n, &ntrain, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    int labels = in.labels == 1;

    /* Outputs, and the pipeline between. */
    prep_sink train, val;
    if (prep_sinks_open(&train, &val, o.out_dir, o.split > 0, o.val_out, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    progress pr;
    glow_progress_init(&pr.line, o.quiet);
    pr.t0 = pr.line.last;
    prep_pipeline pp = {prep_output_channels(&in, order, n, o.channels), o.crop, o.size_w,
                        o.size_h, o.pad, o.jobs, o.strict, o.shard_size, on_bad, on_progress, &pr};
    prep_writer wr;
    prep_writer_start(&wr);
    prep_pipeline_result res;
    int rc = prep_pipeline_run(&pp, &in, order, n, ntrain, &wr, &train, &val, &res, &err);
    if (pr.line.shown && rc == 0)
        draw(&pr, n, n, 1);
    glow_progress_end(&pr.line);

    if (rc != 0) {
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
        if (rc < 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        glow_die(EXIT_BADINPUT, "stopped at the first bad image (--strict)");
    }
    uint64_t bad = res.skipped + in.bad_lines, total = (uint64_t)n + in.bad_lines;
    if (bad)
        glow_warn("skipped %llu of %llu images", (unsigned long long)bad,
                  (unsigned long long)total);
    if (train.images + val.images == 0) {
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
        if (!total && argc - first == 1)
            glow_die(EXIT_BADINPUT, "%s: no images in the input", argv[first]);
        glow_die(EXIT_BADINPUT, "%s", total ? "no usable images" : "no images in the input");
    }
    if (o.split > 0 && (train.images == 0 || val.images == 0)) { /* bad images took a side */
        prep_sink_abort(&wr, &train);
        prep_sink_abort(&wr, &val);
        glow_die(EXIT_BADINPUT, "--split %g: the %s set is empty: its images were all skipped",
                 o.split, train.images ? "validation" : "training");
    }
    if (prep_sinks_finish(&wr, &train, &val, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    prep_writer_stop(&wr);
    if (!o.quiet)
        summary(&o, &train, &val, &res, labels);
    free(train.dir);
    free(val.dir);
    free(order);
    prep_inputs_free(&in);
    return EXIT_OK;
}
