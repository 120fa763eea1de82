/* glow-ckpt: inspect, verify and export Glow checkpoints (docs/checkpoints.md). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/path.h"
#include "base/util.h"
#include "data/safetensors.h"
#include "model/checkpoint.h"
#include "model/import_torch.h"
#include "tool/tool.h"
#include "train/run_dir.h"
#include "train/train_state.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-ckpt [OPTION]... FILE\n"
            "  or:  glow-ckpt [--json] RUN_DIR   the checkpoints of a glow-train run: step, bpd\n"
            "  or:  glow-ckpt import [OPTION]... PT_FILE -o OUT   (glow-ckpt import --help)\n"
            "Summarise a Glow checkpoint (a safetensors file, docs/model.md section 8): the model\n"
            "config, parameter counts, file size and any training state.\n"
            "\n"
            "  -l, --list               also list every tensor: dtype, shape, min, max,\n"
            "                           mean, std (works on any safetensors file)\n"
            "  -v, --verify             full consistency check, the one every tool that\n"
            "                           loads a checkpoint makes: invconv W invertible,\n"
            "                           LU p a permutation matrix, sign_s +-1,\n"
            "                           shuffle.perm a permutation, optimizer/EMA tensors\n"
            "                           matching the parameters, the training state\n"
            "                           --resume uses; lists each problem\n"
            "  -j, --json               machine-readable output (summary, tensors with\n"
            "                           --list, problems with --verify)\n"
            "  -e, --export-weights OUT write a weights-only checkpoint (no optimizer\n"
            "                           state, no EMA) to the file OUT (atomically; - for\n"
            "                           standard output)\n"
            "      --ema                with --export-weights: export the EMA weights\n"
            "      --mem-limit MiB      memory this tool may use (default: half the\n"
            "                           available memory); a file that would need more\n"
            "                           is refused before it is read\n"
            "  -h, --help               show this help and exit\n"
            "      --version            print the version and exit\n"
            "\n"
            "Exit status: 0 ok, 1 bad input or a failed --verify, 2 usage error.\n");
}

typedef struct {
    int list, verify, json, ema;
    const char *export_path, *file;
} options;

/* ---- listing ---- */

static void shape_text(const st_tensor *t, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* ---- summary ---- */

static const char *yes_no(int b) { return b ? "yes" : "no"; }

static void print_summary(const char *path, const st_file *f, const glow_checkpoint *ck)
{
    const glow_config *c = &ck->cfg;
    printf("file: %s\n", path);
    printf("size: %zu bytes\n", f->size);
    printf("format: glow, version 1\n");
    printf("model:\n");
    printf("  image_size: %d x %d\n", c->image_h, c->image_w);
    printf("  channels: %d\n  levels: %d\n  steps: %d\n  width: %d\n", c->channels, c->levels,
           c->steps, c->width);
    printf("  coupling: %s\n  permutation: %s\n", glow_coupling_name(c->coupling),
           glow_permutation_name(c->permutation));
    printf("  lu: %s\n  edge_bias: %s\n  learn_top: %s\n  y_condition: %s\n", yes_no(c->lu),
           yes_no(c->edge_bias), yes_no(c->learn_top), yes_no(c->y_condition));
    printf("  n_classes: %d\n  weight_y: %g\n  n_bits: %d\n", c->n_classes, c->weight_y,
           c->n_bits);
    size_t total = 0;
    for (int i = 0; i < ck->params.n; i++)
        total += ck->params.v[i].count;
    printf("parameters: %zu trained, %zu total, in %d tensors\n",
           glow_paramset_trained_count(&ck->params), total, ck->params.n);
    printf("step: %lld\nimages_seen: %lld\n", (long long)ck->step, (long long)ck->images_seen);
    printf("optimizer state: %s\n", ck->has_optim ? ck->optimizer : "none");
    printf("ema: %s\n", yes_no(ck->has_ema));
    if (ck->rng)
        printf("rng: %s\n", ck->rng);
    if (ck->train_config)
        printf("train_config: %s\n", ck->train_config);
    for (int i = 0; i < ck->n_extra; i++)
        printf("metadata %s: %s\n", ck->extra[i].key, ck->extra[i].value);
}

static void print_list(const st_file *f)
{
    printf("%-44s %-5s %-18s %13s %13s %13s %13s\n", "tensor", "dtype", "shape", "min", "max",
           "mean", "std");
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->t[i];
        char sh[96];
        shape_text(t, sh, sizeof sh);
        st_stats s = st_tensor_stats(t);
        printf("%-44s %-5s %-18s", t->name, t->dtype_name, sh);
        if (s.ok)
            printf(" %13.6g %13.6g %13.6g %13.6g", s.min, s.max, s.mean, s.std);
        else
            printf(" %13s %13s %13s %13s", "-", "-", "-", "-");
        if (s.nonfinite)
            printf("  (%zu non-finite)", s.nonfinite);
        putchar('\n');
    }
}

static cJSON *json_tensors(const st_file *f)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->t[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "dtype", t->dtype_name);
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        st_stats s = st_tensor_stats(t);
        if (s.ok) {
            cJSON_AddNumberToObject(o, "min", s.min);
            cJSON_AddNumberToObject(o, "max", s.max);
            cJSON_AddNumberToObject(o, "mean", s.mean);
            cJSON_AddNumberToObject(o, "std", s.std);
        } else {
            cJSON_AddNullToObject(o, "min");
            cJSON_AddNullToObject(o, "max");
            cJSON_AddNullToObject(o, "mean");
            cJSON_AddNullToObject(o, "std");
        }
        cJSON_AddNumberToObject(o, "nonfinite", (double)s.nonfinite);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *json_summary(const char *path, const st_file *f, const glow_checkpoint *ck)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddNumberToObject(o, "size", (double)f->size);
    if (!ck)
        return o;
    cJSON_AddStringToObject(o, "format", "glow");
    cJSON_AddStringToObject(o, "version", "1");
    char *model = glow_config_to_json(&ck->cfg);
    cJSON_AddItemToObject(o, "model", cJSON_Parse(model));
    free(model);
    size_t total = 0;
    for (int i = 0; i < ck->params.n; i++)
        total += ck->params.v[i].count;
    cJSON *p = cJSON_AddObjectToObject(o, "parameters");
    cJSON_AddNumberToObject(p, "trained", (double)glow_paramset_trained_count(&ck->params));
    cJSON_AddNumberToObject(p, "total", (double)total);
    cJSON_AddNumberToObject(p, "tensors", ck->params.n);
    cJSON_AddNumberToObject(o, "step", (double)ck->step);
    cJSON_AddNumberToObject(o, "images_seen", (double)ck->images_seen);
    if (ck->has_optim)
        cJSON_AddStringToObject(o, "optimizer", ck->optimizer);
    else
        cJSON_AddNullToObject(o, "optimizer");
    cJSON_AddBoolToObject(o, "ema", ck->has_ema);
    if (ck->rng)
        cJSON_AddStringToObject(o, "rng", ck->rng);
    if (ck->train_config) {
        /* Embedded as JSON when it is JSON, else kept as the string it is. */
        cJSON *tc = cJSON_Parse(ck->train_config);
        cJSON_AddItemToObject(o, "train_config", tc ? tc : cJSON_CreateString(ck->train_config));
    }
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    for (int i = 0; i < ck->n_extra; i++)
        cJSON_AddStringToObject(md, ck->extra[i].key, ck->extra[i].value);
    return o;
}

static void print_json(cJSON *o)
{
    char *s = cJSON_Print(o);
    if (!s)
        glow_die(EXIT_BADINPUT, "out of memory printing JSON");
    puts(s);
    free(s);
    cJSON_Delete(o);
}

/* ---- verify ---- */

typedef struct {
    cJSON *arr; /* JSON mode: collected messages */
    const char *path;
    int n;
} problems;

static void on_problem(void *ctx, const char *msg)
{
    problems *p = ctx;
    p->n++;
    if (p->arr)
        cJSON_AddItemToArray(p->arr, cJSON_CreateString(msg));
    else
        glow_warn("%s", msg);
}

static int run_verify(const options *o)
{
    problems pr = {o->json ? cJSON_CreateArray() : NULL, o->file, 0};
    glow_checkpoint ck;
    st_file f;
    glow_error err = {{0}};
    int bad = st_load(o->file, &f, &err);
    if (bad)
        on_problem(&pr, err.msg);
    else if (glow_checkpoint_check_st(&f, &ck, on_problem, &pr) == 0) {
        glow_train_state_check(&ck, f.path, on_problem, &pr);
        glow_checkpoint_free(&ck);
    }
    if (!bad)
        st_free(&f);
    if (o->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "file", o->file);
        cJSON_AddBoolToObject(j, "ok", pr.n == 0);
        cJSON_AddItemToObject(j, "problems", pr.arr);
        print_json(j);
    } else if (pr.n == 0)
        printf("%s: ok\n", o->file);
    else
        printf("%s: %d problem%s\n", o->file, pr.n, pr.n == 1 ? "" : "s");
    return pr.n ? EXIT_BADINPUT : EXIT_OK;
}

/* ---- export ---- */

static void first_problem(void *ctx, const char *msg)
{
    glow_error *e = ctx;
    if (!e->msg[0])
        glow_errorf(e, "%s", msg);
}


static int run_export(const options *o)
{
    glow_checkpoint ck;
    glow_error err = {{0}};
    if (glow_checkpoint_load(o->file, &ck, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    /* What --verify checks of the training state: the export keeps
     * train_config and the trainer's keys. */
    glow_error first = {{0}};
    if (glow_train_state_check(&ck, strcmp(o->file, "-") ? o->file : "standard input",
                               first_problem, &first) != 0) {
        glow_checkpoint_free(&ck);
        glow_die(EXIT_BADINPUT, "%s", first.msg);
    }
    if (o->ema) {
        if (!ck.has_ema) {
            glow_checkpoint_free(&ck);
            glow_die(EXIT_BADINPUT, "%s: no EMA weights in this checkpoint", o->file);
        }
        glow_paramset t = ck.params;
        ck.params = ck.ema;
        ck.ema = t;
    }
    glow_checkpoint_drop_training_state(&ck);
    int rc = glow_checkpoint_save(o->export_path, &ck, &err);
    glow_checkpoint_free(&ck);
    if (rc)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    return EXIT_OK;
}

/* ---- summary and list ---- */

static int run_show(const options *o)
{
    st_file f;
    glow_error err = {{0}};
    if (st_load(o->file, &f, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_checkpoint ck;
    glow_error first = {{0}};
    int is_ck = glow_checkpoint_inspect_st(&f, &ck, first_problem, &first) == 0;
    err = first;
    if (!is_ck && !o->list) {
        st_free(&f);
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    }
    if (!is_ck)
        glow_warn("%s (listing the tensors anyway)", err.msg);
    if (o->json) {
        cJSON *j = json_summary(o->file, &f, is_ck ? &ck : NULL);
        if (!is_ck) {
            cJSON *md = cJSON_AddObjectToObject(j, "metadata");
            for (int i = 0; i < f.n_meta; i++)
                cJSON_AddStringToObject(md, f.meta_keys[i], f.meta_vals[i]);
        }
        cJSON_AddItemToObject(j, "tensors", json_tensors(&f));
        if (!o->list)
            cJSON_DeleteItemFromObject(j, "tensors");
        print_json(j);
    } else {
        if (is_ck)
            print_summary(o->file, &f, &ck);
        else {
            printf("file: %s\nsize: %zu bytes\n", o->file, f.size);
            for (int i = 0; i < f.n_meta; i++)
                printf("metadata %s: %s\n", f.meta_keys[i], f.meta_vals[i]);
        }
        if (o->list)
            print_list(&f);
    }
    if (is_ck)
        glow_checkpoint_free(&ck);
    st_free(&f);
    if (fflush(stdout) != 0 || ferror(stdout))
        glow_die(EXIT_BADINPUT, "standard output: write failed");
    return EXIT_OK;
}

/* ---- import (libcommon/model/import_torch.h) ---- */

static void import_usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-ckpt import [OPTION]... PT_FILE -o OUT\n"
            "Convert the state dict of a PyTorch Glow (torch.save; y0ast/Glow-PyTorch or\n"
            "chaiyujin/glow-pytorch) into a weights-only checkpoint OUT, written atomically.\n"
            "The file's pickle is read, never run. The model config comes from the tensors;\n"
            "the options give what they do not record.\n"
            "\n"
            "  -o, --out FILE           the checkpoint to write (- for standard output)\n"
            "      --image-size HxW     image size (N for NxN); default: from prior_h\n"
            "      --n-bits B           bits per sub-pixel the model saw (default 8)\n"
            "      --permutation reverse  the model used the 'reverse' permutation, which\n"
            "                           leaves no tensors ('shuffle' cannot be imported)\n"
            "      --weight-y W         our weight_y of the class head (default 0.01; 0\n"
            "                           drops project_class)\n"
            "      --input centered|unit  what the port fed its model: centered\n"
            "                           u/2^n_bits - 0.5 (y0ast), unit u/255 (chaiyujin's\n"
            "                           ToTensor); folded into the first actnorm; default:\n"
            "                           the port's own\n"
            "  -h, --help               show this help and exit\n"
            "\n"
            "Exit status: 0 ok, 1 bad input (also a port that cannot be imported exactly),\n"
            "2 usage error.\n");
}

static int run_import(int argc, char **argv)
{
    enum { OPT_SIZE = 256, OPT_BITS, OPT_PERM, OPT_WY, OPT_INPUT };
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},  {"output", required_argument, NULL, 'o'},
        {"image-size", required_argument, NULL, OPT_SIZE},
        {"n-bits", required_argument, NULL, OPT_BITS},
        {"permutation", required_argument, NULL, OPT_PERM},
        {"weight-y", required_argument, NULL, OPT_WY},
        {"input", required_argument, NULL, OPT_INPUT},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    glow_import_opts io;
    glow_import_opts_default(&io);
    const char *out = NULL;
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_SIZE:
            io.image_h = (int)strtol(optarg, &end, 10);
            io.image_w = io.image_h;
            if (*end == 'x')
                io.image_w = (int)strtol(end + 1, &end, 10);
            if (*end || io.image_h < 1 || io.image_w < 1 || io.image_h > 65536 ||
                io.image_w > 65536)
                glow_usage_error("--image-size '%s': expected N or HxW", optarg);
            break;
        case OPT_BITS: io.n_bits = (int)glow_opt_long("--n-bits", optarg, 1, 8); break;
        case OPT_PERM:
            if (strcmp(optarg, "reverse") != 0)
                glow_usage_error("--permutation '%s': only 'reverse' can be given (invconv and "
                                 "LU are read from the tensors; shuffle is not saved)",
                                 optarg);
            io.reverse = 1;
            break;
        case OPT_WY:
            if (parse_double(optarg, &io.weight_y) != 0 || !(io.weight_y >= 0) ||
                io.weight_y > 1e30)
                glow_usage_error("--weight-y '%s': expected a number >= 0", optarg);
            break;
        case OPT_INPUT:
            if (!strcmp(optarg, "centered"))
                io.input = IMPORT_INPUT_CENTERED;
            else if (!strcmp(optarg, "unit"))
                io.input = IMPORT_INPUT_UNIT;
            else
                glow_usage_error("--input '%s': expected centered or unit", optarg);
            break;
        case 'h': import_usage(stdout); return EXIT_OK;
        default:
            fprintf(stderr, "Try 'glow-ckpt import --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        glow_usage_error("%s", "import: missing PT_FILE");
    if (argc - optind > 1)
        glow_usage_error("import: extra operand '%s'", argv[optind + 1]);
    if (!out)
        glow_usage_error("%s", "import: -o OUT is required");
    if (!strcmp(out, "-"))
        glow_tool_no_terminal("a checkpoint", "redirect standard output or give -o FILE");
    glow_tool_no_overwrite(out, NULL, 1, argv + optind);
    glow_checkpoint ck;
    glow_error err = {{0}};
    if (glow_import_torch_file(argv[optind], &io, &ck, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    int rc = glow_checkpoint_save(out, &ck, &err);
    glow_checkpoint_free(&ck);
    if (rc)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, 0);
    if (argc > 1 && !strcmp(argv[1], "import"))
        return run_import(argc - 1, argv + 1);
    enum { OPT_EMA = 256, OPT_VERSION, OPT_MEM };
    static const struct option longopts[] = {
        {"list", no_argument, NULL, 'l'},
        {"verify", no_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {"export-weights", required_argument, NULL, 'e'},
        {"ema", no_argument, NULL, OPT_EMA},
        {"mem-limit", required_argument, NULL, OPT_MEM},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    options o = {0};
    int c;
    while ((c = getopt_long(argc, argv, "lvje:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'l': o.list = 1; break;
        case 'v': o.verify = 1; break;
        case 'j': o.json = 1; break;
        case 'e': o.export_path = optarg; break;
        case OPT_EMA: o.ema = 1; break;
        case OPT_MEM: glow_tool_mem_limit(optarg); break;
        case 'h': usage(stdout); return EXIT_OK;
        case OPT_VERSION: glow_tool_print_version();
        default:
            fprintf(stderr, "Try 'glow-ckpt --help' for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        glow_usage_error("%s", "missing FILE");
    if (argc - optind > 1)
        glow_usage_error("extra operand '%s'", argv[optind + 1]);
    o.file = argv[optind];
    if (o.ema && !o.export_path)
        glow_usage_error("%s", "--ema needs --export-weights");
    if (o.export_path && (o.list || o.verify || o.json))
        glow_usage_error("%s", "--export-weights cannot be combined with --list, --verify or --json");
    if (o.verify && o.list)
        glow_usage_error("%s", "--verify cannot be combined with --list");
    if (o.export_path && !strcmp(o.export_path, "-"))
        glow_tool_no_terminal("a checkpoint", "redirect standard output or give "
                                              "--export-weights FILE");
    if (glow_is_dir(o.file)) { /* a run directory: its checkpoints */
        if (o.list || o.verify || o.export_path)
            glow_usage_error("%s: a run directory; --list, --verify and --export-weights take a "
                             "checkpoint file (such as %s/checkpoint.safetensors)", o.file, o.file);
        glow_error err;
        if (glow_run_dir_report(o.file, o.json, stdout, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        return EXIT_OK;
    }
    if (o.export_path) {
        glow_tool_no_overwrite(o.export_path, NULL, 1, (char *[]){(char *)o.file});
        return run_export(&o);
    }
    if (o.verify)
        return run_verify(&o);
    return run_show(&o);
}
