/* glow-plot: the training curves of glow-train runs (their log.jsonl) as one PNG
 * (or SVG) drawn by gnuplot (libcommon/train/train_curves.h). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/util.h"
#include "tool/tool.h"
#include "train/train_curves.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-plot [OPTION]... RUN_DIR... > curves.png\n"
            "Draw the training curves of glow-train runs from their log.jsonl (a RUN_DIR, or\n"
            "the log file itself), several runs overlaid in one colour each, in four panels\n"
            "against the step: bits per dimension (training, and validation of the weights\n"
            "and of their EMA; log scale), learning rate, gradient norm (log scale) and\n"
            "images per second. Written as PNG by gnuplot's pngcairo terminal.\n"
            "\n"
            "      --svg            SVG (vector) instead of PNG\n"
            "      --size WxH       image size in pixels (default 1280x800)\n"
            "  -o, --output FILE    write to FILE (atomically) instead of standard output\n"
            "      --gnuplot        print the gnuplot script (data inline) instead, to\n"
            "                       adjust and run with gnuplot yourself\n"
            "  -h, --help           show this help and exit\n"
            "      --version        print the version and exit\n"
            "\n"
            "Needs gnuplot with the pngcairo terminal (Debian: gnuplot-nox; make deps\n"
            "installs it); GLOW_GNUPLOT names another program. A PNG is not written to a\n"
            "terminal. Exit status: 0 ok, 1 bad input (a missing or malformed log,\n"
            "gnuplot failing), 2 usage error.\n");
}

typedef struct {
    glow_plot_opts plot;
    const char *output;
    int script;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    enum { OPT_SVG = 256, OPT_SIZE, OPT_GNUPLOT, OPT_VERSION };
    static const struct option longs[] = {
        {"svg", no_argument, NULL, OPT_SVG},       {"size", required_argument, NULL, OPT_SIZE},
        {"output", required_argument, NULL, 'o'},  {"out", required_argument, NULL, 'o'},
        {"gnuplot", no_argument, NULL, OPT_GNUPLOT}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION}, {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->plot.width = 1280;
    o->plot.height = 800;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", longs, NULL)) != -1) {
        switch (c) {
        case OPT_SVG: o->plot.svg = 1; break;
        case OPT_GNUPLOT: o->script = 1; break;
        case 'o': o->output = optarg; break;
        case OPT_SIZE: {
            char *end;
            long w = strtol(optarg, &end, 10), h = *end == 'x' ? strtol(end + 1, &end, 10) : 0;
            if (*end || w < 200 || h < 150 || w > 20000 || h > 20000)
                glow_usage_error("--size %s: expected WxH, from 200x150 to 20000x20000 pixels",
                                 optarg);
            o->plot.width = (int)w;
            o->plot.height = (int)h;
            break;
        }
        case 'h': usage(stdout); exit(EXIT_OK);
        case OPT_VERSION: glow_tool_print_version();
        case ':': glow_usage_error("%s: missing value", argv[optind - 1]);
        default:
            if (optopt)
                glow_usage_error("-%c: unknown option", optopt);
            glow_usage_error("%s: unknown option", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        glow_usage_error("missing RUN_DIR (a glow-train run directory, or its log.jsonl)");
    return optind;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, 0);
    options o;
    int first = parse_args(argc, argv, &o);
    int to_stdout = !o.output || !strcmp(o.output, "-");
    if (to_stdout && !o.script && !o.plot.svg)
        glow_tool_no_terminal("a PNG image", "redirect it (glow-plot RUN > curves.png) or give -o FILE");

    int n = argc - first;
    glow_run_curves *runs = xcalloc((size_t)n, sizeof *runs);
    glow_error err;
    for (int i = 0; i < n; i++) {
        if (glow_curves_read(argv[first + i], &runs[i], &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        if (runs[i].truncated)
            glow_warn("%s: the last line is cut short (a run killed while writing it); left out",
                      runs[i].log);
        glow_tool_no_overwrite(o.output, NULL, 1, &runs[i].log);
    }
    char *script = glow_plot_script(runs, n, &o.plot);
    atomic_file af;
    if (atomic_open(&af, to_stdout ? "-" : o.output, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    int rc = 0;
    if (o.script)
        fputs(script, af.f);
    else {
        fflush(af.f);
        rc = glow_plot_run(script, fileno(af.f), &err);
    }
    if (rc != 0) {
        atomic_abort(&af);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    if (atomic_commit(&af, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    free(script);
    for (int i = 0; i < n; i++)
        glow_curves_free(&runs[i]);
    free(runs);
    return EXIT_OK;
}
