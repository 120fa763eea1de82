/* glow-decode: latents (docs/formats.md "The latent stream") back to images under
 * the trained Glow model that made them (docs/model.md section 10.8). */
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
            "Usage: glow-decode [OPTION]... CKPT [LATENTS]...\n"
            "Decode a latent stream (of glow-encode or glow-latent; files in order, or\n"
            "standard input when there are none) to images under the Glow model in\n"
            "checkpoint CKPT, and write them as a shard stream (uint8 NCHW) to standard\n"
            "output, e.g.\n"
            "  glow-latent random ckpt.safetensors 16 -t 0.7 | glow-decode ckpt.safetensors \\\n"
            "    | pngcat > grid.png\n"
            "\n"
            "      --class Y      decode every latent as class Y (class-conditional\n"
            "                     models; needed when the latents have no labels)\n"
            "      --ema          use the checkpoint's EMA weights\n"
            "      --batch B      latents per model call (default 32); the images do not\n"
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
            "Latents of another model are refused (their model's identity is in every\n"
            "record); those of other weights of the same model are decoded after a\n"
            "warning. Images are quantised to the model's n_bits as glow-sample does, and\n"
            "written in glow-sample's records: glow-latent random | glow-decode gives\n"
            "glow-sample's bytes. Labels are kept (--class replaces them).\n"
            "Exit status: 0 ok, 1 bad input (checkpoint, latents, device), 2 usage error.\n");
}

typedef struct {
    const char *ckpt, *output;
    char **inputs;
    int ninputs;
    long cls;
    glow_tool_model_opts m; /* --ema, --batch, --device, -v */
} options;

static void parse_args(int argc, char **argv, options *o)
{
    enum { OPT_CLASS = 256 };
    static const struct option longs[] = {
        {"class", required_argument, NULL, OPT_CLASS}, {"output", required_argument, NULL, 'o'}, {"out", required_argument, NULL, 'o'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'}, GLOW_TOOL_MODEL_LONGOPTS, {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->m.device = "auto";
    o->m.batch = 32;
    o->cls = -1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:vh", longs, NULL)) != -1) {
        switch (c) {
        case OPT_CLASS: o->cls = glow_opt_long("--class", optarg, 0, 0x7fffffffL); break;
        case 'o': o->output = optarg; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        default: glow_tool_model_opt(c, optarg, argv, &o->m);
        }
    }
    glow_tool_operands op;
    glow_tool_ckpt_operands(argc, argv, optind, o->m.device, "the latents", "a latent stream", "LATENTS", &op);
    o->ckpt = op.ckpt;
    o->inputs = op.inputs;
    o->ninputs = op.ninputs;
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
        glow_tool_no_terminal("binary image data", "pipe it on (glow-decode ... | pngcat > "
                                                   "grid.png), redirect it, or use -o FILE");
    glow_tool_no_overwrite(o.output, o.ckpt, o.ninputs, o.inputs);
    if (o.m.times) {
        glow_tool_no_overwrite(o.m.times, o.ckpt, o.ninputs, o.inputs);
        if (o.output && strcmp(o.m.times, o.output) == 0)
            glow_usage_error("--times %s: also named as the output", o.m.times);
    }
    glow_error err;
    glow_loaded_model lm;
    int rc = glow_model_load(o.ckpt, o.m.device, o.m.ema, &lm, &err);
    if (rc != 0)
        glow_die(rc, "%s", err.msg);
    if (glow_model_plan_batch(lm.m, (int)o.m.batch, 0, &err) != 0)
        glow_die(EXIT_BADINPUT, "--batch %ld: %s", o.m.batch, err.msg);
    if (o.cls >= 0 && !lm.cfg.y_condition)
        glow_die(EXIT_USAGE, "--class %ld: the model in %s is not class-conditional", o.cls,
                 o.ckpt);
    if (o.cls >= lm.cfg.n_classes && lm.cfg.y_condition)
        glow_die(EXIT_USAGE, "--class %ld: the model has %d classes (0..%d)", o.cls,
                 lm.cfg.n_classes, lm.cfg.n_classes - 1);
    atomic_file af;
    if (atomic_open(&af, to_stdout ? "-" : o.output, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    batch_ctx bc = {.done = 0};
    if (glow_batch_times_open(&bc.bt, o.m.times, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_progress_init(&bc.pr, 0);
    latent_decode_opts d = {(int)o.m.batch, o.cls, show, &bc};
    latent_reader *in = latent_reader_open(o.ninputs, o.inputs);
    double t0 = now_seconds();
    glow_batch_times_start(&bc.bt);
    uint64_t n = 0;
    const char *ckpt = strcmp(o.ckpt, "-") == 0 ? "standard input" : o.ckpt;
    if (latent_decode(&lm, ckpt, in, &d, af.f, to_stdout ? "standard output" : o.output, &n,
                      &err) != 0) {
        glow_progress_end(&bc.pr);
        atomic_abort(&af);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    double dt = now_seconds() - t0;
    glow_progress_end(&bc.pr);
    latent_reader_close(in);
    if (atomic_commit(&af, &err) != 0 || glow_batch_times_commit(&bc.bt, &err) != 0)
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
