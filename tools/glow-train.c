/* glow-train: train a Glow model from shard files or a shard stream, with
 * checkpoints that resume bit for bit (libcommon/train/train_loop.h). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "base/atomic_file.h"
#include "base/path.h"
#include "base/util.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "device/device.h"
#include "model/checkpoint.h"
#include "model/model_load.h"
#include "train/train_loop.h"
#include "train/train_state.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-prep ... | glow-train -c CONFIG -o RUN_DIR [OPTION]...\n"
            "       glow-train -c CONFIG -o RUN_DIR [OPTION]... SHARDS...\n"
            "       glow-train --resume RUN_DIR|CKPT [OPTION]... [SHARDS...]\n"
            "Train a Glow model on images from shard files (or directories of them),\n"
            "or from a shard stream on standard input, which is held in memory.\n"
            "RUN_DIR receives config.yml (the effective config), checkpoint.safetensors\n"
            "and log.jsonl (one JSON object per line).\n"
            "\n"
            "  -c, --config FILE     YAML config with model: and train: (docs/configs.md);\n"
            "                        with --resume, the checkpoint's config by default\n"
            "  -o, --out DIR         run directory (created); with --resume, the\n"
            "                        checkpoint's directory by default\n"
            "      --resume RUN|CKPT continue a run where it stopped: same data order,\n"
            "                        noise, optimizer state and step\n"
            "      --init CKPT       start from a checkpoint's weights (fine-tuning): new\n"
            "                        optimizer and schedule, no data-dependent init; the\n"
            "                        config's model must equal the checkpoint's\n"
            "      --init-ema        with --init: take the checkpoint's EMA weights\n"
            "      --val SHARDS      validation data (repeatable): mean bpd every\n"
            "                        train.val_every steps and at the end\n"
            "      --device D        cpu, cuda, cuda:N or auto (default: train.device)\n"
            "      --steps N         train until step N (sets train.steps)\n"
            "      --time-limit S    end the run after S seconds (the step under way\n"
            "                        finishes; then validated and saved as when done)\n"
            "      --seed S          sets train.seed\n"
            "      --set KEY=VALUE   override a config key, e.g. train.lr=1e-4 (repeatable)\n"
            "      --mem-limit MiB   largest stream held in memory (default 4096)\n"
            "      --max-bad-steps N stop after N steps in a row with a non-finite loss or\n"
            "                        gradient (default 5)\n"
            "  -q, --quiet           no routine messages on stderr\n"
            "  -h, --help            show this help and exit\n"
            "\n"
            "SIGINT or SIGTERM finishes the current step, saves a checkpoint and exits\n"
            "with 130 or 143. Exit status: 0 done, 1 bad input or failure, 2 usage error.\n");
}

typedef struct {
    const char *config, *out, *resume, *init, *device;
    int init_ema, quiet;
    char **val;
    int nval;
    char **sets;
    int nsets;
    long steps, max_bad, mem_mib;
    int has_seed;
    uint64_t seed;
    double time_limit;
} options;

enum { OPT_RESUME = 256, OPT_INIT, OPT_INIT_EMA, OPT_VAL, OPT_DEVICE, OPT_STEPS, OPT_SEED, OPT_SET,
       OPT_MEM, OPT_MAXBAD, OPT_TIME };

static void push(char ***list, int *n, char *s)
{
    *list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = s;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},     {"out", required_argument, 0, 'o'},
        {"resume", required_argument, 0, OPT_RESUME}, {"init", required_argument, 0, OPT_INIT},
        {"init-ema", no_argument, 0, OPT_INIT_EMA}, {"val", required_argument, 0, OPT_VAL},
        {"device", required_argument, 0, OPT_DEVICE}, {"steps", required_argument, 0, OPT_STEPS},
        {"seed", required_argument, 0, OPT_SEED},   {"set", required_argument, 0, OPT_SET},
        {"mem-limit", required_argument, 0, OPT_MEM}, {"max-bad-steps", required_argument, 0, OPT_MAXBAD},
        {"time-limit", required_argument, 0, OPT_TIME},
        {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->max_bad = 5;
    o->mem_mib = 4096;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_RESUME: o->resume = optarg; break;
        case OPT_INIT: o->init = optarg; break;
        case OPT_INIT_EMA: o->init_ema = 1; break;
        case OPT_VAL: push(&o->val, &o->nval, optarg); break;
        case OPT_DEVICE: o->device = optarg; break;
        case OPT_SET: push(&o->sets, &o->nsets, optarg); break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case OPT_STEPS:
            if (parse_long(optarg, 1, 1L << 50, &o->steps) != 0)
                glow_usage_error("--steps %s: expected a positive integer", optarg);
            break;
        case OPT_MAXBAD:
            if (parse_long(optarg, 1, 1000000, &o->max_bad) != 0)
                glow_usage_error("--max-bad-steps %s: expected a positive integer", optarg);
            break;
        case OPT_TIME: {
            char *end;
            errno = 0;
            o->time_limit = strtod(optarg, &end);
            if (!*optarg || *end || errno || !(o->time_limit > 0) || o->time_limit > 1e9)
                glow_usage_error("--time-limit %s: expected a positive number of seconds", optarg);
            break;
        }
        case OPT_MEM:
            if (parse_long(optarg, 1, 1L << 30, &o->mem_mib) != 0)
                glow_usage_error("--mem-limit %s: expected a positive number of MiB", optarg);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (!*optarg || *end || *optarg == '-' || errno)
                glow_usage_error("--seed %s: expected an integer 0..2^64-1", optarg);
            o->seed = v;
            o->has_seed = 1;
            break;
        }
        case ':': glow_usage_error("%s: missing value", argv[optind - 1]);
        default:
            if (optopt)
                glow_usage_error("-%c: unknown option", optopt);
            glow_usage_error("%s: unknown option", argv[optind - 1]);
        }
    }
    if (o->resume && o->init)
        glow_usage_error("--resume and --init exclude each other");
    if (o->init_ema && !o->init)
        glow_usage_error("--init-ema needs --init CKPT");
    if (!o->resume && !o->config)
        glow_usage_error("-c CONFIG is required (or --resume RUN_DIR)");
    if (!o->resume && !o->out)
        glow_usage_error("-o RUN_DIR is required");
    if (o->device) {
        glow_error err;
        if (glow_device_spec_check(o->device, &err) != 0)
            glow_usage_error("%s", err.msg);
    }
    return optind;
}

/* A shape hint for images that do not fit the model. */
static void shape_hint(const dataset_info *in, const glow_config *m, char *buf, size_t n)
{
    if ((int)in->c != m->channels)
        snprintf(buf, n, "glow-prep --channels %d", m->channels);
    else if ((int)in->h < m->image_h && (int)in->w < m->image_w && m->image_h - (int)in->h == m->image_w - (int)in->w &&
             (m->image_h - (int)in->h) % 2 == 0)
        snprintf(buf, n, "glow-prep --pad %d", (m->image_h - (int)in->h) / 2);
    else
        snprintf(buf, n, "glow-prep --size %dx%d", m->image_h, m->image_w);
}

/* Every label in range, checked once up front (one pass over the data) rather
 * than failing whenever a bad one is drawn, perhaps hours in. */
static void check_labels(dataset *d, const char *what, int n_classes)
{
    const dataset_info *in = dataset_get_info(d);
    const uint32_t chunk = 4096;
    uint8_t *px = xmalloc((size_t)chunk * in->c * in->h * in->w);
    int32_t *lb = xmalloc(chunk * sizeof(int32_t));
    glow_error err;
    uint64_t index = 0;
    int n;
    while ((n = dataset_read_seq(d, chunk, px, lb, &err)) > 0) {
        for (int i = 0; i < n; i++)
            if (lb[i] < 0 || lb[i] >= n_classes)
                glow_die(EXIT_BADINPUT, "%s image %llu (in stored order): label %d outside 0..%d "
                                        "(model.n_classes is %d)",
                         what, (unsigned long long)(index + (uint64_t)i), lb[i], n_classes - 1,
                         n_classes);
        index += (uint64_t)n;
    }
    if (n < 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    dataset_rewind(d);
    free(px);
    free(lb);
}

static dataset *open_data(int n, char **inputs, const char *what, const options *o,
                          const glow_run_config *cfg)
{
    glow_error err;
    int stream = n == 0 || (n == 1 && strcmp(inputs[0], "-") == 0);
    if (stream && isatty(0))
        glow_usage_error("no %s data: give SHARDS, or pipe a stream (glow-prep ... | glow-train ...)",
                    what);
    if (stream && !o->quiet)
        glow_warn("reading the %s images from standard input into memory (at most %ld MiB; "
                  "for more, write shard files with glow-prep -o DIR)",
                  what, o->mem_mib);
    dataset *d = dataset_open(n, inputs, (uint64_t)o->mem_mib << 20, &err);
    if (!d)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const dataset_info *in = dataset_get_info(d);
    if (stream && !o->quiet)
        glow_warn("%llu %s images (%.1f MiB) held in memory", (unsigned long long)in->n_images, what,
                  (double)in->n_images * in->c * in->h * in->w / 1048576.0);
    const glow_config *m = &cfg->model;
    if ((int)in->c != m->channels || (int)in->h != m->image_h || (int)in->w != m->image_w) {
        char hint[64];
        shape_hint(in, m, hint, sizeof hint);
        glow_die(EXIT_BADINPUT, "%s images are %ux%ux%u but the model expects %dx%dx%d; %s", what,
                 in->c, in->h, in->w, m->channels, m->image_h, m->image_w, hint);
    }
    if (m->y_condition && !in->has_labels)
        glow_die(EXIT_BADINPUT, "the model is class-conditional (y_condition) but the %s images "
                                "have no labels (glow-prep --labels ...)",
                 what);
    if (m->y_condition)
        check_labels(d, what, m->n_classes);
    return d;
}

/* Temporary files of a writer that no longer runs (kill -9 during a save). */
static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        if (e->d_name[0] != '.' || !tmp)
            continue;
        if (strncmp(e->d_name, ".checkpoint.safetensors.tmp.", 28) != 0 &&
            strncmp(e->d_name, ".config.yml.tmp.", 16) != 0)
            continue;
        long pid;
        if (parse_long(tmp + 5, 1, 1L << 31, &pid) != 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char *p = glow_path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
}

static int write_config(const char *dir, const glow_run_config *cfg, glow_error *err)
{
    char *path = glow_path_join(dir, "config.yml");
    char *text = glow_run_config_to_yaml(cfg);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        fputs(text, af.f);
        rc = atomic_commit(&af, err);
    }
    free(text);
    free(path);
    return rc;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_signal) { /* a second one: stop at once */
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_signal = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int main(int argc, char **argv)
{
    glow_set_progname(argv[0]);
    options o;
    int first = parse_args(argc, argv, &o);
    glow_error err;

    /* The checkpoint to start from, and where the run goes. */
    glow_checkpoint ck;
    int have_ck = 0;
    char *ck_path = NULL, *run_dir = NULL;
    if (o.resume) {
        ck_path = glow_is_dir(o.resume) ? glow_path_join(o.resume, "checkpoint.safetensors") : xstrdup(o.resume);
        run_dir = o.out ? xstrdup(o.out) : glow_is_dir(o.resume) ? xstrdup(o.resume) : glow_path_dir(o.resume);
    } else {
        run_dir = xstrdup(o.out);
        if (o.init)
            ck_path = xstrdup(o.init);
    }
    if (ck_path) {
        if (glow_checkpoint_load(ck_path, &ck, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        have_ck = 1;
    }

    /* The config: the file, or the checkpoint's; then the command line. */
    glow_run_config cfg;
    const char *cfg_name = o.config;
    if (o.config) {
        if (glow_run_config_parse_file(o.config, &cfg, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    } else {
        if (glow_train_config_from_checkpoint(&ck, ck_path, &cfg, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        cfg_name = ck_path;
    }
    for (int i = 0; i < o.nsets; i++)
        if (config_set_override(&cfg, o.sets[i], &err) != 0)
            glow_usage_error("--set %s: %s", o.sets[i], err.msg);
    if (o.steps) {
        cfg.train.steps = o.steps;
        cfg.train.epochs = 0;
    }
    if (o.has_seed)
        cfg.train.seed = o.seed;
    if (o.device)
        snprintf(cfg.train.device, sizeof cfg.train.device, "%s", o.device);
    if (glow_run_config_validate(&cfg, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s: %s", cfg_name, err.msg);
    if (have_ck) {
        char why[512];
        if (glow_config_diff(&cfg.model, cfg_name, &ck.cfg, ck_path, why, sizeof why))
            glow_die(EXIT_BADINPUT, "%s: the config's model does not match the checkpoint's: %s",
                     o.resume ? "--resume" : "--init", why);
    }
    glow_device dev;
    if (glow_device_resolve(cfg.train.device, &dev, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    /* Data. */
    int ntrain = argc - first;
    dataset *train = open_data(ntrain, argv + first, "training", &o, &cfg);
    dataset *val = NULL;
    if (o.nval) {
        int val_stream = o.nval == 1 && strcmp(o.val[0], "-") == 0;
        if (val_stream && dataset_get_info(train)->from_stream)
            glow_usage_error("--val -: standard input already holds the training images");
        val = open_data(o.nval, o.val, "validation", &o, &cfg);
    }
    if (cfg.train.precision != PRECISION_FP32 && dev.kind == DEVICE_CPU && !o.quiet)
        glow_warn("train.precision %s applies to GPUs; the CPU computes in fp32",
                  glow_precision_name(cfg.train.precision));

    /* The run directory. */
    if (glow_mkdir_p(run_dir, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    remove_stale_temps(run_dir);
    if (write_config(run_dir, &cfg, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    glow_trainer t;
    glow_trainer_setup(&t, &cfg, run_dir);
    t.train = train;
    t.val = val;
    t.max_bad_steps = (int)o.max_bad;
    t.time_limit = o.time_limit;
    if (glow_train_log_open(&t.log, run_dir, o.quiet, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    t.b = backend_get(dev.kind, dev.index, &err);
    if (!t.b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    catch_signals();
    int rc;
    const char *mode = o.resume ? "resume" : o.init ? "init" : "scratch";
    if (o.resume)
        rc = glow_trainer_start_resume(&t, &ck, ck_path, &err);
    else if (o.init)
        rc = glow_trainer_start_init(&t, &ck, ck_path, o.init_ema, &err);
    else
        rc = glow_trainer_start_scratch(&t, &err);
    if (have_ck)
        glow_checkpoint_free(&ck);
    /* Resuming in place: the checkpoint there is the last good one until the
     * next save, which the failure messages want to know. */
    struct stat s1, s2;
    if (rc == 0 && o.resume && stat(ck_path, &s1) == 0 && stat(t.ckpt_path, &s2) == 0 &&
        s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino)
        t.last_saved_step = t.p.step;
    if (rc != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    char devname[32];
    glow_device_str(&dev, devname, sizeof devname);
    glow_train_log_json(&t.log, "\"step\":%lld,\"start\":\"%s\",\"device\":\"%s\",\"total_steps\":%ld,"
                                "\"train_images\":%llu",
                        (long long)t.p.step, mode, devname, t.total_steps,
                        (unsigned long long)dataset_get_info(train)->n_images);
    glow_train_log_msg(&t.log, 1, "%s from step %lld to %ld on %s, %llu training images, batch %d",
                       o.resume ? "resuming" : "training", (long long)t.p.step, t.total_steps, devname,
                       (unsigned long long)dataset_get_info(train)->n_images, cfg.train.batch_size);
    rc = glow_trainer_run(&t, &stop_signal, &err);
    if (rc == 1)
        glow_train_log_msg(&t.log, 0, "%s", err.msg);
    glow_train_log_close(&t.log);
    backend *b = t.b;
    glow_trainer_free(&t);
    backend_release(b);
    dataset_close(train);
    dataset_close(val);
    free(ck_path);
    free(run_dir);
    free(o.val);
    free(o.sets);
    return rc;
}
