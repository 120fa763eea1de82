/* glow-encode: images to latents under a trained Glow model (docs/model.md section
 * 10.8), as a latent stream (docs/formats.md "The latent stream"). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/util.h"
#include "latent/latent_codec.h"
#include "model/model_load.h"
#include "tool/batch_times.h"
#include "tool/progress.h"
#include "tool/tool.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-encode [OPTION]... CKPT [IMAGES]...\n"
            "Encode images (shard files or folders of *.glow files; standard input when\n"
            "there are none) to their latents under the Glow model in checkpoint CKPT and\n"
            "write them as a latent stream to standard output, e.g.\n"
            "  glow-prep a.png b.png | glow-encode ckpt.safetensors | glow-latent mix \\\n"
            "    | glow-decode ckpt.safetensors | pngcat > mix.png\n"
            "\n"
            "      --raw          write the raw latents z instead of the standardised ones,\n"
            "                     eps = (z - mean) / exp(logs) under each level's prior\n"
            "      --noise        add random dequantisation noise (from --seed and the\n"
            "                     image's index), as training and glow-bpd do. Without it\n"
            "                     each sub-pixel sits at the centre of its quantisation bin,\n"
            "                     so glow-decode gives the image back exactly\n"
            "      --seed S       noise seed with --noise (default 0)\n"
            "      --bpd FILE     also write each image's bpd as TSV (index, bpd, label)\n"
            "                     to FILE; with --noise and the same --seed these are\n"
            "                     glow-bpd --per-image's numbers\n"
            "      --limit N      encode only the first N images\n"
            "      --ema          use the checkpoint's EMA weights\n"
            "      --batch B      images per model call (default 64); the output does not\n"
            "                     depend on it\n"
            "      --device D     cpu, cuda, cuda:N or auto (default auto)\n"
            "      --mem-limit MiB  memory this tool may use (default: half the available\n"
            "                     memory; docs/security.md)\n"
            "  -o, --output FILE  write the stream to the file FILE (atomically) instead\n"
            "                     of standard output ('-o -': standard output)\n"
            "  --times FILE       one JSON line per batch in FILE: its images, seconds,\n"
            "                     CPU seconds and images/s\n"
            "  -v, --verbose      report images/s on stderr at the end\n"
            "  -h, --help         show this help and exit\n"
            "      --version      print the version and exit\n"
            "\n"
            "Labels of the images are kept. Images must have the model's shape (glow-prep\n"
            "--pad/--size make them fit); a class-conditional model needs labels.\n"
            "Progress goes to stderr when it is a terminal.\n"
            "Exit status: 0 ok, 1 bad input (checkpoint, images, device), 2 usage error.\n");
}

typedef struct {
    const char *ckpt, *output, *bpd;
    char **inputs;
    int ninputs;
    long limit;
    uint64_t seed;
    int raw, noise;
    glow_tool_model_opts m; /* --ema, --batch, --device, -v */
} options;

static void parse_args(int argc, char **argv, options *o)
{
    enum { OPT_RAW = 256, OPT_NOISE, OPT_SEED, OPT_BPD, OPT_LIMIT };
    static const struct option longs[] = {
        {"raw", no_argument, NULL, OPT_RAW}, {"noise", no_argument, NULL, OPT_NOISE},
        {"seed", required_argument, NULL, OPT_SEED}, {"bpd", required_argument, NULL, OPT_BPD},
        {"limit", required_argument, NULL, OPT_LIMIT}, {"output", required_argument, NULL, 'o'}, {"out", required_argument, NULL, 'o'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'}, GLOW_TOOL_MODEL_LONGOPTS, {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->m.device = "auto";
    o->m.batch = 64;
    opterr = 0;
    int c, seed_given = 0;
    while ((c = getopt_long(argc, argv, ":o:vh", longs, NULL)) != -1) {
        switch (c) {
        case OPT_RAW: o->raw = 1; break;
        case OPT_NOISE: o->noise = 1; break;
        case OPT_SEED:
            o->seed = (uint64_t)glow_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL);
            seed_given = 1;
            break;
        case OPT_BPD: o->bpd = optarg; break;
        case OPT_LIMIT: o->limit = glow_opt_long("--limit", optarg, 1, 0x7fffffffffffffffL); break;
        case 'o': o->output = optarg; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        default: glow_tool_model_opt(c, optarg, argv, &o->m);
        }
    }
    glow_tool_operands op;
    glow_tool_ckpt_operands(argc, argv, optind, o->m.device, "the images", "a shard stream", "IMAGES", &op);
    o->ckpt = op.ckpt;
    o->inputs = op.inputs;
    o->ninputs = op.ninputs;
    if (seed_given && !o->noise)
        glow_usage_error("%s", "--seed sets the dequantisation noise: it needs --noise");
    int to_stdout = !o->output || strcmp(o->output, "-") == 0;
    if (o->bpd && strcmp(o->bpd, "-") == 0 && to_stdout)
        glow_usage_error("%s", "--bpd - and the latents would both go to standard output; give "
                         "-o FILE");
}

/* after each batch: the progress line and the batch's --times line */
typedef struct {
    glow_progress pr;
    glow_batch_times bt;
    uint64_t done;
} batch_ctx;

static void show(void *ctx, uint64_t done)
{
    batch_ctx *b = ctx;
    glow_progress_draw(&b->pr, 0, "%llu images", (unsigned long long)done);
    glow_error err;
    if (glow_batch_times_mark(&b->bt, done - b->done, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    b->done = done;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
    options o;
    parse_args(argc, argv, &o);
    int to_stdout = !o.output || strcmp(o.output, "-") == 0;
    if (to_stdout)
        glow_tool_no_terminal("binary latent data", "pipe it on (glow-encode ... | glow-decode "
                                                    "...), redirect it, or use -o FILE");
    glow_tool_no_overwrite(o.output, o.ckpt, o.ninputs, o.inputs);
    if (o.bpd && strcmp(o.bpd, "-") != 0)
        glow_tool_no_overwrite(o.bpd, o.ckpt, o.ninputs, o.inputs);
    if (o.m.times) {
        glow_tool_no_overwrite(o.m.times, o.ckpt, o.ninputs, o.inputs);
        if ((o.output && strcmp(o.m.times, o.output) == 0) ||
            (o.bpd && strcmp(o.m.times, o.bpd) == 0))
            glow_usage_error("--times %s: also named as another output", o.m.times);
    }
    glow_error err;
    glow_loaded_model lm;
    int rc = glow_model_load(o.ckpt, o.m.device, o.m.ema, &lm, &err);
    if (rc != 0)
        glow_die(rc, "%s", err.msg);
    if (glow_model_plan_batch(lm.m, (int)o.m.batch, 0, &err) != 0)
        glow_die(EXIT_BADINPUT, "--batch %ld: %s", o.m.batch, err.msg);
    atomic_file af, bf;
    if (atomic_open(&af, to_stdout ? "-" : o.output, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    if (o.bpd && atomic_open(&bf, o.bpd, &err) != 0) {
        atomic_abort(&af);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    batch_ctx bc = {.done = 0};
    if (glow_batch_times_open(&bc.bt, o.m.times, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_progress_init(&bc.pr, 0);
    latent_encode_opts eo = {o.raw ? LATENT_Z : LATENT_EPS, o.noise, o.seed, (int)o.m.batch,
                             (uint64_t)o.limit, o.bpd ? bf.f : NULL, show, &bc};
    double t0 = now_seconds();
    glow_batch_times_start(&bc.bt);
    uint64_t n = 0;
    const char *out_name = to_stdout ? "standard output" : o.output;
    if (latent_encode(&lm, o.ninputs, o.inputs, &eo, af.f, out_name, &n, &err) != 0) {
        glow_progress_end(&bc.pr);
        atomic_abort(&af);
        if (o.bpd)
            atomic_abort(&bf);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    double dt = now_seconds() - t0;
    glow_progress_end(&bc.pr);
    if ((o.bpd && atomic_commit(&bf, &err) != 0) || atomic_commit(&af, &err) != 0 ||
        glow_batch_times_commit(&bc.bt, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    if (o.m.verbose || stderr_is_tty()) {
        char dev[32];
        fprintf(stderr, "%s: %llu images in %.3f s (%.1f images/s, %s, batch %ld)\n",
                glow_progname(), (unsigned long long)n, dt, dt > 0 ? (double)n / dt : 0.0,
                glow_device_str(&lm.dev, dev, sizeof dev), o.m.batch);
    }
    glow_loaded_model_free(&lm);
    return EXIT_OK;
}
