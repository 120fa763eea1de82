/* glow-latent: operations on latent streams (docs/formats.md "The latent stream"),
 * one subcommand each; the operations are in libcommon/latent/. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/util.h"
#include "latent/latent_codec.h"
#include "latent/latent_ops.h"
#include "model/model_load.h"
#include "tool/tool.h"

static const char *const USAGE =
    "Usage: glow-latent COMMAND [OPTION]... [ARG]...\n"
    "Operations on latent streams (of glow-encode; glow-decode turns them into\n"
    "images). Each reads LATENTS (files in order, or standard input when there are\n"
    "none) and writes a latent stream to standard output, except project (text):\n"
    "\n"
    "  mix [--steps N] [--slerp]   N latents (default 8) from the first to the second\n"
    "                              of each consecutive pair (linear, or spherical)\n"
    "  scale T[,T]...              for each latent, one copy per factor T: a\n"
    "                              temperature sweep (scale 0 gives the mean image)\n"
    "  mean [--by-label]           the mean latent (one per label, labelled)\n"
    "  attr POS NEG                the attribute direction mean(POS) - mean(NEG)\n"
    "  attr --label K[,J]          the same within one stream: label K against label\n"
    "                              J (default: every other label)\n"
    "  add DIR --alpha A[,A]...    for each latent, one copy per strength A: the\n"
    "                              latent moved by A times the direction DIR\n"
    "  project DIR                 each latent's score along DIR, <u, d> / <d, d>, as\n"
    "                              TSV (index, score, label)\n"
    "  select [--label K[,K]...] [--limit N]   the latents with these labels\n"
    "  random CKPT N [-t T] [--seed S] [--class Y] [--ema] [--batch B] [--device D]\n"
    "                              N latents drawn as glow-sample draws them (default\n"
    "                              T 0.7): glow-latent random | glow-decode CKPT gives\n"
    "                              glow-sample CKPT's bytes for the same options\n"
    "\n"
    "Every command takes -o, --output FILE (write the stream to the file FILE,\n"
    "atomically, instead of standard output; '-o -': standard output), --mem-limit\n"
    "MiB (memory the tool may use; default half the available memory), -h (--help)\n"
    "and --version. Labels are kept. A latent is its values times its factor; the\n"
    "commands that combine latents (mix, mean, attr, add) compute in double.\n"
    "Latents of different models or layouts do not combine. Factors and strengths\n"
    "that start with '-' go after '--' (glow-latent scale -- -1,1).\n"
    "  glow-encode ckpt a.glow | glow-latent mix --steps 11 | glow-decode ckpt | pngcat\n"
    "Exit status: 0 ok, 1 bad input, 2 usage error.\n";

static void usage(FILE *out) { fputs(USAGE, out); }

typedef struct {
    const char *cmd, *output, *device;
    char **args;
    int nargs;
    long steps, limit, batch, cls;
    int slerp, by_label, ema, has_label, has_alpha;
    double temperature, *alpha;
    int nalpha;
    int32_t labels[64];
    int nlabels;
    uint64_t seed;
} options;

/* "A,B,..." into v (at most max); a usage error on anything else. */
static int parse_list(const char *what, const char *arg, double *v, int max)
{
    char *copy = xstrdup(arg), *save = NULL;
    int n = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == max || parse_double(t, &v[n]) != 0)
            glow_usage_error("%s '%s': expected up to %d comma-separated numbers", what, arg, max);
        n++;
    }
    free(copy);
    if (n == 0)
        glow_usage_error("%s '%s': expected comma-separated numbers", what, arg);
    return n;
}

static void parse_labels(const char *arg, options *o)
{
    double v[64];
    o->nlabels = parse_list("--label", arg, v, 64);
    for (int i = 0; i < o->nlabels; i++) {
        if (v[i] != (double)(int32_t)v[i])
            glow_usage_error("--label '%s': labels are integers", arg);
        o->labels[i] = (int32_t)v[i];
    }
    o->has_label = 1;
}

static void parse_args(int argc, char **argv, options *o)
{
    enum { OPT_STEPS = 256, OPT_SLERP, OPT_BY_LABEL, OPT_LABEL, OPT_ALPHA, OPT_LIMIT, OPT_SEED,
           OPT_CLASS, OPT_EMA, OPT_BATCH, OPT_DEVICE, OPT_VERSION, OPT_MEM };
    static const struct option longs[] = {
        {"steps", required_argument, NULL, OPT_STEPS}, {"slerp", no_argument, NULL, OPT_SLERP},
        {"by-label", no_argument, NULL, OPT_BY_LABEL},
        {"label", required_argument, NULL, OPT_LABEL},
        {"alpha", required_argument, NULL, OPT_ALPHA},
        {"limit", required_argument, NULL, OPT_LIMIT}, {"seed", required_argument, NULL, OPT_SEED},
        {"class", required_argument, NULL, OPT_CLASS}, {"ema", no_argument, NULL, OPT_EMA},
        {"batch", required_argument, NULL, OPT_BATCH},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"mem-limit", required_argument, NULL, OPT_MEM},
        {"temperature", required_argument, NULL, 't'}, {"output", required_argument, NULL, 'o'}, {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    static double alpha[256];
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->steps = 8;
    o->batch = 32;
    o->cls = -1;
    o->temperature = 0.7;
    o->alpha = alpha;
    if (argc < 2)
        glow_usage_error("%s", "missing the command (mix, scale, mean, attr, add, project, "
                         "select, random)");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        exit(EXIT_OK);
    }
    if (strcmp(argv[1], "--version") == 0)
        glow_tool_print_version();
    static const char *const cmds[] = {"mix", "scale", "mean", "attr", "add", "project",
                                       "select", "random"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i]) == 0)
            o->cmd = cmds[i];
    if (!o->cmd)
        glow_usage_error("unknown command '%s' (mix, scale, mean, attr, add, project, select, "
                         "random)", argv[1]);
    argc--;
    argv++;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:t:h", longs, NULL)) != -1) {
        switch (c) {
        case OPT_STEPS: o->steps = glow_opt_long("--steps", optarg, 2, 100000); break;
        case OPT_SLERP: o->slerp = 1; break;
        case OPT_BY_LABEL: o->by_label = 1; break;
        case OPT_LABEL: parse_labels(optarg, o); break;
        case OPT_ALPHA:
            o->nalpha = parse_list("--alpha", optarg, alpha, 256);
            o->has_alpha = 1;
            break;
        case OPT_LIMIT: o->limit = glow_opt_long("--limit", optarg, 1, 0x7fffffffffffffffL); break;
        case OPT_SEED:
            o->seed = (uint64_t)glow_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL);
            break;
        case OPT_CLASS: o->cls = glow_opt_long("--class", optarg, 0, 0x7fffffffL); break;
        case OPT_EMA: o->ema = 1; break;
        case OPT_BATCH: o->batch = glow_opt_long("--batch", optarg, 1, 65536); break;
        case OPT_DEVICE: o->device = optarg; break;
        case OPT_MEM: glow_tool_mem_limit(optarg); break;
        case 't':
            if (parse_double(optarg, &o->temperature) != 0 || !(o->temperature >= 0) ||
                o->temperature > 1000)
                glow_usage_error("invalid -t '%s' (expected a number from 0 to 1000)", optarg);
            break;
        case 'o': o->output = optarg; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case OPT_VERSION: glow_tool_print_version();
        case ':': glow_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: glow_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    o->args = argv + optind;
    o->nargs = argc - optind;
    glow_error err;
    if (glow_device_spec_check(o->device, &err) != 0)
        glow_usage_error("%s", err.msg);
}

/* An option that the command does not take, or a missing argument, is a usage error. */
static void only(const options *o, int ok, const char *what)
{
    if (!ok)
        glow_usage_error("%s %s", o->cmd, what);
}

static void check_args(options *o)
{
    const char *cmd = o->cmd;
#define CMD(name) (strcmp(cmd, name) == 0)
    only(o, !o->slerp || CMD("mix"), "does not take --slerp");
    only(o, !o->by_label || CMD("mean"), "does not take --by-label");
    only(o, !o->has_label || CMD("attr") || CMD("select"), "does not take --label");
    only(o, !o->has_alpha || CMD("add"), "does not take --alpha");
    only(o, !o->limit || CMD("select"), "does not take --limit");
    int rnd = CMD("random");
    only(o, rnd || (!o->ema && o->cls < 0 && !o->seed && strcmp(o->device, "auto") == 0),
         "does not take --ema, --class, --seed or --device (random does)");
    if (CMD("scale"))
        only(o, o->nargs >= 1, "needs the factors (scale T[,T]...)");
    if (CMD("add") || CMD("project"))
        only(o, o->nargs >= 1, "needs the direction (DIR, of glow-latent attr or mean)");
    if (CMD("add"))
        only(o, o->has_alpha, "needs --alpha A[,A]...");
    if (CMD("attr") && !o->has_label)
        only(o, o->nargs == 2, "needs two latent streams, POS and NEG (or --label K[,J])");
    if (CMD("attr") && o->has_label)
        only(o, o->nlabels <= 2, "--label takes K or K,J");
    if (rnd) {
        only(o, o->nargs == 2, "needs the checkpoint and a count (random CKPT N)");
        (void)glow_opt_long("N", o->args[1], 1, 1000000000L);
    }
    /* a stream on standard input must come from a pipe or a file */
    int first = CMD("scale") || CMD("add") || CMD("project") ? 1 : 0;
    if (!rnd && !(CMD("attr") && !o->has_label) && o->nargs == first && isatty(STDIN_FILENO))
        glow_usage_error("%s", "expected a latent stream on standard input; pipe one in or name "
                         "LATENTS");
#undef CMD
}

static int run(const options *o, const latent_out *out, glow_error *err)
{
    const char *cmd = o->cmd;
    char **in = o->args;
    int nin = o->nargs, rc;
    if (strcmp(cmd, "random") == 0) {
        glow_loaded_model lm;
        rc = glow_model_load(in[0], o->device, o->ema, &lm, err);
        if (rc != 0)
            glow_die(rc, "%s", err->msg);
        if (glow_model_plan_batch(lm.m, (int)o->batch, 0, err) != 0)
            glow_die(EXIT_BADINPUT, "--batch %ld: %s", o->batch, err->msg);
        if (o->cls >= 0 && !lm.cfg.y_condition)
            glow_die(EXIT_USAGE, "--class %ld: the model in %s is not class-conditional", o->cls,
                     in[0]);
        if (o->cls >= lm.cfg.n_classes && lm.cfg.y_condition)
            glow_die(EXIT_USAGE, "--class %ld: the model has %d classes (0..%d)", o->cls,
                     lm.cfg.n_classes, lm.cfg.n_classes - 1);
        latent_random_opts ro = {(uint64_t)strtoll(in[1], NULL, 10), (float)o->temperature,
                                 o->seed, o->cls, (int)o->batch};
        rc = latent_random(&lm, &ro, out->f, out->name, err);
        glow_loaded_model_free(&lm);
        return rc;
    }
    latent_direction dir;
    if (strcmp(cmd, "add") == 0 || strcmp(cmd, "project") == 0) {
        if (latent_direction_load(in[0], &dir, err) != 0)
            return -1;
        in++;
        nin--;
    }
    double s[256];
    int ns = 0;
    if (strcmp(cmd, "scale") == 0) {
        ns = parse_list("scale", in[0], s, 256);
        in++;
        nin--;
    }
    if (strcmp(cmd, "attr") == 0 && !o->has_label) {
        latent_reader *p = latent_reader_open(1, in), *q = latent_reader_open(1, in + 1);
        rc = latent_op_attr(p, q, out, err);
        latent_reader_close(p);
        latent_reader_close(q);
        return rc;
    }
    latent_reader *r = latent_reader_open(nin, in);
    if (strcmp(cmd, "mix") == 0)
        rc = latent_op_mix(r, (int)o->steps, o->slerp, out, err);
    else if (strcmp(cmd, "scale") == 0)
        rc = latent_op_scale(r, s, ns, out, err);
    else if (strcmp(cmd, "mean") == 0)
        rc = latent_op_mean(r, o->by_label, out, err);
    else if (strcmp(cmd, "attr") == 0)
        rc = latent_op_attr_label(r, o->labels[0], o->nlabels == 2, o->labels[1], out, err);
    else if (strcmp(cmd, "select") == 0)
        rc = latent_op_select(r, o->labels, o->nlabels, (uint64_t)o->limit, out, err);
    else if (strcmp(cmd, "add") == 0)
        rc = latent_op_add(r, &dir, o->alpha, o->nalpha, out, err);
    else
        rc = latent_op_project(r, &dir, out->f, err);
    latent_reader_close(r);
    if (strcmp(cmd, "add") == 0 || strcmp(cmd, "project") == 0)
        latent_direction_free(&dir);
    return rc;
}

int main(int argc, char **argv)
{
    /* only random computes (OpenMP): the others need no restart */
    glow_tool_start(argc, argv, argc > 1 && strcmp(argv[1], "random") == 0 ? GLOW_TOOL_OPENMP : 0);
    options o;
    parse_args(argc, argv, &o);
    check_args(&o);
    int text = strcmp(o.cmd, "project") == 0;
    int to_stdout = !o.output || strcmp(o.output, "-") == 0;
    if (to_stdout && !text)
        glow_tool_no_terminal("binary latent data", "pipe it on (glow-latent ... | glow-decode "
                                                    "CKPT), redirect it, or use -o FILE");
    glow_tool_no_overwrite(o.output, NULL, o.nargs, o.args);
    glow_error err;
    atomic_file af;
    if (atomic_open(&af, to_stdout ? "-" : o.output, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    latent_out out = {af.f, to_stdout ? "standard output" : o.output};
    if (run(&o, &out, &err) != 0) {
        atomic_abort(&af);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    if (atomic_commit(&af, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    return EXIT_OK;
}
