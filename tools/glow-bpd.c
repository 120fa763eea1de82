/* glow-bpd: bits per dimension of images under a trained Glow model (docs/model.md
 * sections 2-6), their mean and standard error, and optionally the AUROC of
 * telling another data set apart by bpd (Nalisnick et al., 2019). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem_budget.h"
#include "base/stats.h"
#include "base/util.h"
#include "data/dataset.h"
#include "model/model_load.h"
#include "tool/batch_times.h"
#include "tool/progress.h"
#include "tool/tool.h"


static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-bpd [OPTION]... CKPT [SHARDS]...\n"
            "Bits per dimension of every image in SHARDS (shard files or folders of\n"
            "*.glow files; standard input when there are none) under the Glow model in\n"
            "checkpoint CKPT. Prints the mean and its standard error:\n"
            "  bpd 3.2145 ± 0.0031 (n=10000)\n"
            "\n"
            "  --seed S          dequantisation noise seed (default 0): one noise draw\n"
            "                    per image, a function of (S, image index) only, so the\n"
            "                    numbers do not depend on --batch\n"
            "  --per-image       one TSV line per image on stdout after a header:\n"
            "                    index, bpd, label ('-' without labels); with --ood a\n"
            "                    first column 'set' (data or ood). The summary then goes\n"
            "                    to stderr\n"
            "  --json            the summary as one JSON object on stdout\n"
            "  --ood SHARDS      also score this other set (repeat the option or give a\n"
            "                    comma-separated list) and print the AUROC of telling it\n"
            "                    from SHARDS by bpd, higher bpd meaning the other set\n"
            "  --batch B         images per forward pass (default 64)\n"
            "  --limit N         score only the first N images of each set\n"
            "  --ema             use the checkpoint's EMA weights\n"
            "  --device D        cpu, cuda, cuda:N or auto (default auto)\n"
            "  --mem-limit MiB   memory this tool may use: the model, its activations for\n"
            "                    a batch, the images held (default: half the available\n"
            "                    memory); what would need more is refused first\n"
            "  --times FILE      one JSON line per batch in FILE: its images, seconds,\n"
            "                    CPU seconds and images/s\n"
            "  -v, --verbose     report images/s on stderr at the end\n"
            "  -h, --help        show this help and exit\n"
            "      --version     print the version and exit\n"
            "\n"
            "The bpd is the model's -log p(x) / (D ln 2) of docs/model.md section 3, with the\n"
            "-D log(n_bins) term of the n_bits quantisation; a class-conditional model\n"
            "needs labelled images (its class head's loss is not part of the bpd).\n"
            "Images must have the model's shape; glow-prep --pad/--size make them fit.\n"
            "Progress goes to stderr when it is a terminal.\n"
            "Exit status: 0 ok, 1 bad input (checkpoint, data, device), 2 usage error.\n");
}

typedef struct {
    const char *ckpt;
    char **inputs;
    int ninputs;
    char **ood;
    int nood;
    long limit;
    uint64_t seed;
    int per_image, json;
    glow_tool_model_opts m; /* --ema, --batch, --device, -v */
} options;

static void add_ood(options *o, const char *arg)
{
    char *copy = xstrdup(arg), *save = NULL;
    int any = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        o->ood = xrealloc(o->ood, (size_t)(o->nood + 1) * sizeof *o->ood);
        o->ood[o->nood++] = xstrdup(t);
        any = 1;
    }
    free(copy);
    if (!any)
        glow_usage_error("--ood '%s': expected shard files or folders", arg);
}

static void parse_args(int argc, char **argv, options *o)
{
    enum { OPT_SEED = 256, OPT_PER_IMAGE, OPT_JSON, OPT_OOD, OPT_LIMIT };
    static const struct option longs[] = {
        {"seed", required_argument, NULL, OPT_SEED},
        {"per-image", no_argument, NULL, OPT_PER_IMAGE}, {"json", no_argument, NULL, OPT_JSON},
        {"ood", required_argument, NULL, OPT_OOD}, {"limit", required_argument, NULL, OPT_LIMIT}, {"verbose", no_argument, NULL, 'v'}, {"help", no_argument, NULL, 'h'},
        GLOW_TOOL_MODEL_LONGOPTS, {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->m.device = "auto";
    o->m.batch = 64;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":vh", longs, NULL)) != -1) {
        switch (c) {
        case OPT_SEED: o->seed = (uint64_t)glow_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL); break;
        case OPT_PER_IMAGE: o->per_image = 1; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_OOD: add_ood(o, optarg); break;
        case OPT_LIMIT: o->limit = glow_opt_long("--limit", optarg, 1, 0x7fffffffffffffffL); break;
        case 'h': usage(stdout); exit(EXIT_OK);
        default: glow_tool_model_opt(c, optarg, argv, &o->m);
        }
    }
    if (optind == argc)
        glow_usage_error("%s", "missing the checkpoint (CKPT)");
    o->ckpt = argv[optind];
    o->inputs = argv + optind + 1;
    o->ninputs = argc - optind - 1;
    if (o->json && o->per_image)
        glow_usage_error("%s", "--json and --per-image both write to stdout; choose one");
    glow_error err;
    if (glow_device_spec_check(o->m.device, &err) != 0)
        glow_usage_error("%s", err.msg);
    int data_stdin = o->ninputs == 0 || (o->ninputs == 1 && strcmp(o->inputs[0], "-") == 0);
    int ood_stdin = o->nood == 1 && strcmp(o->ood[0], "-") == 0;
    if (data_stdin + ood_stdin + (strcmp(o->ckpt, "-") == 0) > 1)
        glow_usage_error("%s", "only one of the checkpoint, the data and the --ood set can come "
                          "from standard input");
    if ((data_stdin || ood_stdin) && isatty(STDIN_FILENO))
        glow_usage_error("%s", "expected a shard stream on standard input; pipe one in or name "
                          "SHARDS");
}

/* The per-image results of one set. */
typedef struct {
    const char *name; /* for messages: the first input or "standard input" */
    double *bpd;
    int32_t *labels;
    int has_labels;
    uint64_t n;
    double seconds;
} scored_set;

static void show_progress(const scored_set *s, uint64_t total, glow_progress *p, int final)
{
    glow_progress_draw(p, final, "%s: %llu/%llu images", s->name, (unsigned long long)s->n,
                       (unsigned long long)total);
    if (final)
        glow_progress_end(p);
}

static void shape_error(glow_error *err, uint32_t c, uint32_t h, uint32_t w,
                        const glow_config *cfg)
{
    glow_errorf(err, "images are %ux%ux%u (CxHxW) but the model takes %dx%dx%d; make them fit "
                     "with glow-prep --pad/--size (and --channels)",
                c, h, w, cfg->channels, cfg->image_h, cfg->image_w);
}

/* A record of a stream is held to the model's shape before it is decompressed. */
static int expect_shape(void *ctx, const shard_record *hdr, int has_labels, glow_error *err)
{
    const glow_config *cfg = ctx;
    (void)has_labels;
    if ((int)hdr->c == cfg->channels && (int)hdr->h == cfg->image_h &&
        (int)hdr->w == cfg->image_w)
        return 0;
    shape_error(err, hdr->c, hdr->h, hdr->w, cfg);
    return -1;
}

static void score_set(glow_loaded_model *lm, const options *o, int ninputs, char **inputs,
                      glow_batch_times *bt, scored_set *s)
{
    const glow_config *cfg = &lm->cfg;
    glow_error err;
    int from_stdin = ninputs == 0 || (ninputs == 1 && strcmp(inputs[0], "-") == 0);
    s->name = from_stdin ? "standard input" : inputs[0];
    dataset *d = dataset_open_expect(ninputs, inputs, 0, expect_shape, (void *)cfg, &err);
    if (!d)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const dataset_info *info = dataset_get_info(d);
    if ((int)info->c != cfg->channels || (int)info->h != cfg->image_h ||
        (int)info->w != cfg->image_w) {
        shape_error(&err, info->c, info->h, info->w, cfg);
        glow_die(EXIT_BADINPUT, "%s: %s", s->name, err.msg);
    }
    if (cfg->y_condition && !info->has_labels)
        glow_die(EXIT_BADINPUT,
                 "%s: the images have no labels, but the model is class-conditional (its "
                 "prior needs each image's class); pack labelled data with glow-prep",
                 s->name);
    uint64_t total = info->n_images;
    if (o->limit && (uint64_t)o->limit < total)
        total = (uint64_t)o->limit;
    s->has_labels = info->has_labels;
    /* the results of every image, and one batch of them */
    size_t img = (size_t)glow_config_dims(cfg);
    char what[600];
    snprintf(what, sizeof what, "%s: the results of %llu images and a batch of %ld", s->name,
             (unsigned long long)total, o->m.batch);
    uint64_t held = glow_mem_add(glow_mem_mul(total, sizeof *s->bpd + sizeof *s->labels),
                                 glow_mem_mul((uint64_t)o->m.batch, img));
    if (glow_mem_reserve(held, what, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    s->bpd = xmalloc((total ? total : 1) * sizeof *s->bpd);
    s->labels = xmalloc((total ? total : 1) * sizeof *s->labels);
    uint8_t *pix = xmalloc((size_t)o->m.batch * img);
    glow_progress pr;
    glow_progress_init(&pr, 0);
    double t0 = pr.last;
    glow_batch_times_start(bt);
    s->n = 0;
    while (s->n < total) {
        uint32_t want = (uint32_t)(total - s->n < (uint64_t)o->m.batch ? total - s->n
                                                                    : (uint64_t)o->m.batch);
        int32_t *lab = s->labels + s->n;
        int got = dataset_read_seq(d, want, pix, lab, &err);
        if (got < 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        if (got == 0)
            break;
        if (cfg->y_condition)
            for (int i = 0; i < got; i++)
                if (lab[i] < 0 || lab[i] >= cfg->n_classes)
                    glow_die(EXIT_BADINPUT, "%s: image %llu: label %d outside the model's "
                             "classes 0..%d", s->name, (unsigned long long)(s->n + (uint64_t)i),
                             lab[i], cfg->n_classes - 1);
        /* Noise index = image index within the set: batching changes nothing. */
        glow_batch b = {got, pix, NULL, o->seed, s->n, cfg->y_condition ? lab : NULL};
        /* eval, not forward: no activations kept for a backward pass, so the
         * steps of a level share buffers (less memory, warmer caches) */
        glow_result r;
        if (glow_model_eval(lm->m, &b, &r, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s: %s", s->name, err.msg);
        for (int i = 0; i < got; i++)
            s->bpd[s->n + (uint64_t)i] = r.bpd[i];
        s->n += (uint64_t)got;
        if (glow_batch_times_mark(bt, (uint64_t)got, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        show_progress(s, total, &pr, 0);
    }
    show_progress(s, total, &pr, 1);
    s->seconds = now_seconds() - t0;
    free(pix);
    dataset_close(d);
    glow_mem_release(glow_mem_mul((uint64_t)o->m.batch, img));

    /* A NaN or infinite bpd makes the mean, its error and the AUROC meaningless:
     * the weights pass every check but overflow on these images. */
    uint64_t bad = 0, first_bad = 0;
    for (uint64_t i = 0; i < s->n; i++)
        if (!isfinite(s->bpd[i]) && bad++ == 0)
            first_bad = i;
    if (bad)
        glow_die(EXIT_BADINPUT, "%s: image %llu: the bpd is %g, not a finite number (%llu image%s "
                 "of %llu); the model cannot score %s",
                 s->name, (unsigned long long)first_bad, s->bpd[first_bad],
                 (unsigned long long)bad, bad == 1 ? "" : "s", (unsigned long long)s->n,
                 bad == 1 ? "it" : "them");
}

static void print_per_image(const scored_set *s, const char *set)
{
    for (uint64_t i = 0; i < s->n; i++) {
        if (set)
            printf("%s\t", set);
        printf("%llu\t%.6f\t", (unsigned long long)i, s->bpd[i]);
        if (s->has_labels)
            printf("%d\n", s->labels[i]);
        else
            printf("-\n");
    }
}

static void add_set_json(cJSON *obj, const scored_set *s, double mean, double sem)
{
    cJSON_AddNumberToObject(obj, "n", (double)s->n);
    cJSON_AddNumberToObject(obj, "bpd", mean);
    cJSON_AddNumberToObject(obj, "sem", sem);
}


int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
    options o;
    parse_args(argc, argv, &o);
    /* the report redirected onto what it scores */
    glow_tool_no_overwrite(NULL, o.ckpt, o.ninputs, o.inputs);
    if (o.nood)
        glow_tool_no_overwrite(NULL, NULL, o.nood, o.ood);
    if (o.m.times) {
        glow_tool_no_overwrite(o.m.times, o.ckpt, o.ninputs, o.inputs);
        if (o.nood)
            glow_tool_no_overwrite(o.m.times, NULL, o.nood, o.ood);
    }

    glow_error err;
    glow_loaded_model lm;
    int rc = glow_model_load(o.ckpt, o.m.device, o.m.ema, &lm, &err);
    if (rc != 0)
        glow_die(rc, "%s", err.msg);
    if (glow_model_plan_batch(lm.m, (int)o.m.batch, 0, &err) != 0)
        glow_die(EXIT_BADINPUT, "--batch %ld: %s", o.m.batch, err.msg);

    glow_batch_times bt;
    if (glow_batch_times_open(&bt, o.m.times, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    scored_set data = {0}, ood = {0};
    score_set(&lm, &o, o.ninputs, o.inputs, &bt, &data);
    if (o.nood)
        score_set(&lm, &o, o.nood, o.ood, &bt, &ood);
    if (glow_batch_times_commit(&bt, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    double m, se, om = 0, ose = 0, auroc = NAN;
    stats_mean_sem(data.bpd, data.n, &m, &se);
    if (o.nood) {
        stats_mean_sem(ood.bpd, ood.n, &om, &ose);
        auroc = stats_auroc(data.bpd, data.n, ood.bpd, ood.n);
    }

    if (o.per_image) {
        printf(o.nood ? "set\tindex\tbpd\tlabel\n" : "index\tbpd\tlabel\n");
        print_per_image(&data, o.nood ? "data" : NULL);
        if (o.nood)
            print_per_image(&ood, "ood");
    }
    if (o.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "checkpoint", o.ckpt);
        cJSON_AddBoolToObject(j, "ema", o.m.ema);
        cJSON_AddNumberToObject(j, "seed", (double)o.seed);
        add_set_json(j, &data, m, se);
        if (o.nood) {
            add_set_json(cJSON_AddObjectToObject(j, "ood"), &ood, om, ose);
            cJSON_AddNumberToObject(j, "auroc", auroc);
        }
        char *txt = cJSON_PrintUnformatted(j);
        printf("%s\n", txt);
        free(txt);
        cJSON_Delete(j);
    } else {
        FILE *out = o.per_image ? stderr : stdout;
        fprintf(out, "bpd %.4f ± %.4f (n=%llu)\n", m, se, (unsigned long long)data.n);
        if (o.nood) {
            fprintf(out, "ood bpd %.4f ± %.4f (n=%llu)\n", om, ose, (unsigned long long)ood.n);
            fprintf(out, "auroc %.4f (higher bpd taken as the ood set)\n", auroc);
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout))
        glow_die(EXIT_BADINPUT, "standard output: write failed");

    if (o.m.verbose || stderr_is_tty()) {
        char dev[32];
        double secs = data.seconds + ood.seconds;
        uint64_t n = data.n + ood.n;
        fprintf(stderr, "%s: %llu images in %.3f s (%.1f images/s, %s, batch %ld)\n",
                glow_progname(), (unsigned long long)n, secs, secs > 0 ? (double)n / secs : 0.0,
                glow_device_str(&lm.dev, dev, sizeof dev), o.m.batch);
    }
    free(data.bpd);
    free(data.labels);
    free(ood.bpd);
    free(ood.labels);
    for (int i = 0; i < o.nood; i++)
        free(o.ood[i]);
    free(o.ood);
    glow_loaded_model_free(&lm);
    return EXIT_OK;
}
