/* glow-sample: draw images from a trained Glow model (docs/model.md section 7) and write
 * them as a shard stream. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic_file.h"
#include "base/util.h"
#include "data/shard.h"
#include "model/model_load.h"
#include "tool/batch_times.h"
#include "tool/progress.h"
#include "tool/tool.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-sample [OPTION]... CKPT\n"
            "Draw images from the Glow model in checkpoint CKPT ('-': standard input) and\n"
            "write them as a shard stream (uint8 NCHW) to standard output, e.g.\n"
            "  glow-sample run/ckpt.safetensors -n 64 | pngcat > grid.png\n"
            "\n"
            "  -n, --count N      images to draw (default 64)\n"
            "  -t, --temperature T  scale of the latent noise at every level, 0..1000\n"
            "                     (default 0.7; 1 is the model's own distribution, 0 its\n"
            "                     mean image)\n"
            "      --seed S       noise seed (default 0); image i's noise depends only on\n"
            "                     (S, i), so the output does not depend on --batch\n"
            "      --class Y      draw class Y (class-conditional models only). Without\n"
            "                     it a conditional model's images cycle through the\n"
            "                     classes: image i is class i mod n_classes\n"
            "      --ema          use the checkpoint's EMA weights\n"
            "      --batch B      images drawn per model call (default 32); smaller needs\n"
            "                     less memory\n"
            "      --device D     cpu, cuda, cuda:N or auto (default auto)\n"
            "      --mem-limit MiB  memory this tool may use: the model and its buffers\n"
            "                     for a batch (default: half the available memory); a\n"
            "                     model or --batch that would need more is refused first\n"
            "  -o, --output FILE  write the stream to the file FILE (atomically) instead\n"
            "                     of standard output ('-o -': standard output)\n"
            "  --times FILE       one JSON line per batch in FILE: its images, seconds,\n"
            "                     CPU seconds and images/s\n"
            "  -v, --verbose      report images/s on stderr at the end\n"
            "  -h, --help         show this help and exit\n"
            "      --version      print the version and exit\n"
            "\n"
            "Class-conditional models label each image with its class; other models\n"
            "write no labels. Progress goes to stderr when it is a terminal.\n"
            "Exit status: 0 ok, 1 bad input (checkpoint, device), 2 usage error.\n");
}

typedef struct {
    const char *ckpt, *output;
    long count, cls;
    double temperature;
    uint64_t seed;
    glow_tool_model_opts m; /* --ema, --batch, --device, -v */
} options;

static void parse_args(int argc, char **argv, options *o)
{
    enum { OPT_SEED = 256, OPT_CLASS };
    static const struct option longs[] = {
        {"count", required_argument, NULL, 'n'}, {"temperature", required_argument, NULL, 't'},
        {"seed", required_argument, NULL, OPT_SEED}, {"class", required_argument, NULL, OPT_CLASS},
        {"output", required_argument, NULL, 'o'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'}, GLOW_TOOL_MODEL_LONGOPTS, {NULL, 0, NULL, 0}};
    *o = (options){.count = 64, .cls = -1, .temperature = 0.7,
                   .m = {.device = "auto", .batch = 32}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":n:t:o:vh", longs, NULL)) != -1) {
        switch (c) {
        case 'n': o->count = glow_opt_long("-n", optarg, 1, 1000000000L); break;
        case 't':
            /* Far past any useful temperature, but still a finite float. */
            if (parse_double(optarg, &o->temperature) != 0 || !(o->temperature >= 0) ||
                o->temperature > 1000)
                glow_usage_error("invalid -t '%s' (expected a number from 0 to 1000)", optarg);
            break;
        case OPT_SEED: {
            long s = glow_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL);
            o->seed = (uint64_t)s;
            break;
        }
        case OPT_CLASS: o->cls = glow_opt_long("--class", optarg, 0, 0x7fffffffL); break;
        case 'o': o->output = optarg; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        default: glow_tool_model_opt(c, optarg, argv, &o->m);
        }
    }
    if (optind == argc)
        glow_usage_error("%s", "missing the checkpoint (CKPT)");
    if (optind + 1 < argc)
        glow_usage_error("unexpected argument '%s' (one checkpoint only)", argv[optind + 1]);
    o->ckpt = argv[optind];
    glow_error err;
    if (glow_device_spec_check(o->m.device, &err) != 0)
        glow_usage_error("%s", err.msg);
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
    options o;
    parse_args(argc, argv, &o);
    int to_stdout = !o.output || strcmp(o.output, "-") == 0;
    if (to_stdout)
        glow_tool_no_terminal("binary image data", "pipe it on (glow-sample ... | pngcat > "
                                                   "grid.png), redirect it, or use -o FILE");

    glow_tool_no_overwrite(o.output, NULL, 1, (char *[]){(char *)o.ckpt});
    if (o.m.times) {
        glow_tool_no_overwrite(o.m.times, NULL, 1, (char *[]){(char *)o.ckpt});
        if (o.output && strcmp(o.m.times, o.output) == 0)
            glow_usage_error("--times %s: also named as the output", o.m.times);
    }
    glow_error err;
    glow_loaded_model lm;
    int rc = glow_model_load(o.ckpt, o.m.device, o.m.ema, &lm, &err);
    if (rc != 0)
        glow_die(rc, "%s", err.msg);
    const glow_config *cfg = &lm.cfg;
    long batch = o.m.batch < o.count ? o.m.batch : o.count;
    if (glow_model_plan_batch(lm.m, (int)batch, 0, &err) != 0)
        glow_die(EXIT_BADINPUT, "--batch %ld: %s", batch, err.msg);
    if (o.cls >= 0 && !cfg->y_condition)
        glow_die(EXIT_USAGE, "--class %ld: the model in %s is not class-conditional", o.cls,
                 o.ckpt);
    if (o.cls >= cfg->n_classes && cfg->y_condition)
        glow_die(EXIT_USAGE, "--class %ld: the model has %d classes (0..%d)", o.cls,
                 cfg->n_classes, cfg->n_classes - 1);

    atomic_file af;
    if (atomic_open(&af, to_stdout ? "-" : o.output, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_batch_times bt;
    if (glow_batch_times_open(&bt, o.m.times, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    /* Records hold a fixed number of images, whatever --batch is, so the output is
     * the same bytes for every batch size. */
    size_t img = (size_t)glow_config_dims(cfg);
    uint64_t per_rec = SHARD_RECORD_TARGET / img;
    if (per_rec > 256)
        per_rec = 256;
    if (per_rec < 1)
        per_rec = 1;
    if (per_rec > (uint64_t)o.count)
        per_rec = (uint64_t)o.count;
    uint8_t *pix = xmalloc(per_rec * img);
    int32_t *labels = cfg->y_condition ? xmalloc(per_rec * sizeof(int32_t)) : NULL;
    double t0 = now_seconds();
    glow_progress pr;
    glow_progress_init(&pr, 0);
    glow_batch_times_start(&bt);
    for (uint64_t first = 0; first < (uint64_t)o.count; first += per_rec) {
        uint64_t nrec = (uint64_t)o.count - first < per_rec ? (uint64_t)o.count - first : per_rec;
        /* The class of image i is a function of i alone, like its noise. */
        if (labels)
            for (uint64_t i = 0; i < nrec; i++)
                labels[i] = o.cls >= 0 ? (int32_t)o.cls
                                       : (int32_t)((first + i) % (uint64_t)cfg->n_classes);
        for (uint64_t off = 0; off < nrec; off += (uint64_t)o.m.batch) {
            uint64_t n = nrec - off < (uint64_t)o.m.batch ? nrec - off : (uint64_t)o.m.batch;
            glow_model_sample(lm.m, (int)n, (float)o.temperature, o.seed, first + off,
                              labels ? labels + off : NULL, pix + off * img, NULL);
            if (glow_batch_times_mark(&bt, n, &err) != 0)
                glow_die(EXIT_BADINPUT, "%s", err.msg);
            glow_progress_draw(&pr, 0, "%llu/%ld images", (unsigned long long)(first + off + n),
                               o.count);
        }
        shard_record rec = {SHARD_U8, (uint32_t)nrec, (uint32_t)cfg->channels,
                            (uint32_t)cfg->image_h, (uint32_t)cfg->image_w, labels, pix};
        if (shard_write_record(af.f, &rec, &err) != 0) {
            atomic_abort(&af);
            glow_die(EXIT_BADINPUT, "%s: %s", to_stdout ? "standard output" : o.output, err.msg);
        }
    }
    if (atomic_commit(&af, &err) != 0 || glow_batch_times_commit(&bt, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    double dt = now_seconds() - t0;
    glow_progress_end(&pr);
    if (o.m.verbose || stderr_is_tty()) {
        char dev[32];
        fprintf(stderr, "%s: %ld images in %.3f s (%.1f images/s, %s)\n", glow_progname(),
                o.count, dt, dt > 0 ? (double)o.count / dt : 0.0,
                glow_device_str(&lm.dev, dev, sizeof dev));
    }
    free(pix);
    free(labels);
    glow_loaded_model_free(&lm);
    return EXIT_OK;
}
