/* glow-train: train a Glow model from shard files or a shard stream, with
 * checkpoints that resume bit for bit (libcommon/train/train_loop.h). Options,
 * wiring and messages; the run directory is train/run_dir, the data checks
 * train/train_data. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#ifndef GLOW_HAVE_NCCL
#define GLOW_HAVE_NCCL 0
#endif

#include "backend/backend.h"
#include "base/mem_budget.h"
#include "base/path.h"
#include "base/util.h"
#include "config/yaml_config.h"
#include "data/dataset.h"
#include "device/device.h"
#include "dist/dist.h"
#include "model/checkpoint.h"
#include "model/model_load.h"
#include "tool/tool.h"
#include "train/run_dir.h"
#include "train/train_data.h"
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
            "  -o, --out DIR         the run directory (a folder, created) that receives\n"
            "                        config.yml, checkpoint.safetensors and log.jsonl;\n"
            "                        with --resume, the checkpoint's directory by default\n"
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
            "      --mem-limit MiB   memory the run may use: the model, its optimizer\n"
            "                        state and activations, and a stream held in memory\n"
            "                        (default: half the available memory); a config or\n"
            "                        data that would need more is refused at the start\n"
            "      --max-bad-steps N stop after N steps in a row with a non-finite loss or\n"
            "                        gradient (default 5)\n"
            "      --check-every N   on several processes: check every N steps that all hold\n"
            "                        the same parameters (default 1000; 0: at start and end)\n"
            "  -q, --quiet           no routine messages on stderr\n"
            "  -h, --help            show this help and exit\n"
            "      --version         print the version and exit\n"
            "\n"
            "SIGINT or SIGTERM finishes the current step, saves a checkpoint and exits\n"
            "with 130 or 143. Exit status: 0 done, 1 bad input or failure, 2 usage error.\n"
            "\n"
            "Under mpirun or srun, each process trains on its slice of every global batch of\n"
            "batch_size images per process, on GPU LOCAL_RANK with --device cuda\n"
            "(docs/distributed.md); rank 0 writes the run directory. Shard files only: a\n"
            "stream on standard input cannot feed several processes.\n");
}

typedef struct {
    const char *config, *out, *resume, *init, *device;
    int init_ema, quiet;
    char **val;
    int nval;
    char **sets;
    int nsets;
    long steps, max_bad, check_every;
    int has_seed;
    uint64_t seed;
    double time_limit;
} options;

enum { OPT_RESUME = 256, OPT_INIT, OPT_INIT_EMA, OPT_VAL, OPT_DEVICE, OPT_STEPS, OPT_SEED, OPT_SET,
       OPT_MEM, OPT_MAXBAD, OPT_TIME, OPT_CHECK, OPT_VERSION };

static void push(char ***list, int *n, char *s)
{
    *list = xrealloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = s;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'},     {"out", required_argument, 0, 'o'},
        {"output", required_argument, 0, 'o'},     {"version", no_argument, 0, OPT_VERSION},
        {"resume", required_argument, 0, OPT_RESUME}, {"init", required_argument, 0, OPT_INIT},
        {"init-ema", no_argument, 0, OPT_INIT_EMA}, {"val", required_argument, 0, OPT_VAL},
        {"device", required_argument, 0, OPT_DEVICE}, {"steps", required_argument, 0, OPT_STEPS},
        {"seed", required_argument, 0, OPT_SEED},   {"set", required_argument, 0, OPT_SET},
        {"mem-limit", required_argument, 0, OPT_MEM}, {"max-bad-steps", required_argument, 0, OPT_MAXBAD},
        {"time-limit", required_argument, 0, OPT_TIME},
        {"check-every", required_argument, 0, OPT_CHECK},
        {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->max_bad = 5;
    o->check_every = GLOW_CHECK_EVERY;
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
        case OPT_VERSION: glow_tool_print_version();
        case OPT_STEPS:
            if (parse_long(optarg, 1, 1L << 50, &o->steps) != 0)
                glow_usage_error("--steps %s: expected a positive integer", optarg);
            break;
        case OPT_CHECK:
            if (parse_long(optarg, 0, 1L << 50, &o->check_every) != 0)
                glow_usage_error("--check-every %s: expected a number of steps (0 or more)", optarg);
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
        case OPT_MEM: glow_tool_mem_limit(optarg); break;
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
    if (o->out && !strcmp(o->out, "-"))
        glow_usage_error("-o -: the run directory is a folder, not standard output");
    if (o->device) {
        glow_error err;
        if (glow_device_spec_check(o->device, &err) != 0)
            glow_usage_error("%s", err.msg);
    }
    return optind;
}

static dataset *open_data(int n, char **inputs, const char *what, const options *o,
                          const glow_run_config *cfg, const glow_dist *dist)
{
    glow_error err;
    int stream = glow_train_data_is_stream(n, inputs);
    /* Only rank 0 has standard input (mpirun gives it to rank 0), and handing
     * the whole stream to every process would hold the data set in each. */
    if (stream && dist->size > 1)
        glow_usage_error("no %s data: a stream on standard input cannot feed %d processes; write "
                         "shard files (glow-prep -o DIR) and give DIR to every process",
                         what, dist->size);
    if (stream && isatty(0))
        glow_usage_error("no %s data: give SHARDS, or pipe a stream (glow-prep ... | glow-train ...)",
                    what);
    if (stream && !o->quiet)
        glow_warn("reading the %s images from standard input into memory (at most %llu MiB; "
                  "for more, write shard files with glow-prep -o DIR)",
                  what, (unsigned long long)(glow_mem_limit() >> 20));
    /* a stream's records are held to the model's shape before decompression */
    dataset *d = dataset_open_expect(n, inputs, 0, glow_train_data_expect, (void *)&cfg->model,
                                     &err);
    if (!d)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const dataset_info *in = dataset_get_info(d);
    if (stream && !o->quiet)
        glow_warn("%llu %s images (%.1f MiB) held in memory", (unsigned long long)in->n_images, what,
                  (double)in->n_images * in->c * in->h * in->w / 1048576.0);
    if (glow_train_data_check_part(d, what, &cfg->model, dist->rank, dist->size, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    return d;
}

/* Every process must train the same model on the same data with the same build:
 * compared at the start, the first difference named (exit 1 on every process,
 * rank 0 reporting it). */
static void agree(glow_comm *comm, const glow_run_config *cfg, const char *mode, int64_t step,
                  const dataset *train, const dataset *val)
{
    char *config = glow_run_config_to_yaml(cfg);
    char *data = dataset_fingerprint(train);
    char *vdata = val ? dataset_fingerprint(val) : xstrdup("none");
    char build[256], start[96];
    snprintf(build, sizeof build, "glow-train %s (cuda %d, mpi %d, nccl %d)", glow_version(),
             glow_device_cuda_built(), GLOW_HAVE_MPI, GLOW_HAVE_NCCL);
    snprintf(start, sizeof start, "%s from step %lld", mode, (long long)step);
    const glow_dist_fact facts[] = {{"build", build}, {"config", config}, {"training data", data},
                                    {"validation data", vdata}, {"start", start}};
    glow_error err;
    int rc = glow_dist_agree(comm, facts, (int)(sizeof facts / sizeof facts[0]), &err);
    free(config);
    free(data);
    free(vdata);
    if (rc == 0)
        return;
    if (comm->rank == 0)
        glow_warn("%s", err.msg);
    comm->barrier(comm);
    exit(EXIT_BADINPUT);
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
    options o;
    int first = parse_args(argc, argv, &o);
    glow_error err;
    /* Under a launcher: which process this is (MPI_Init when it is MPI's). */
    glow_dist dist;
    if (glow_dist_init(&dist, &argc, &argv, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    /* The checkpoint to start from, and where the run goes. */
    glow_checkpoint ck;
    int have_ck = 0;
    char *ck_path, *run_dir;
    glow_run_dir_paths(o.resume, o.out, o.init, &ck_path, &run_dir);
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
    if (glow_dist_device(&dist, cfg.train.device, &dev, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    /* The memory the config asks for, before any of it is allocated. */
    if (glow_trainer_plan(&cfg, dev.kind == DEVICE_CPU, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s: %s", cfg_name, err.msg);

    /* Data. */
    int ntrain = argc - first;
    dataset *train = open_data(ntrain, argv + first, "training", &o, &cfg, &dist);
    dataset *val = NULL;
    if (o.nval) {
        int val_stream = o.nval == 1 && strcmp(o.val[0], "-") == 0;
        if (val_stream && dataset_get_info(train)->from_stream)
            glow_usage_error("--val -: standard input already holds the training images");
        val = open_data(o.nval, o.val, "validation", &o, &cfg, &dist);
    }
    if (cfg.train.precision != PRECISION_FP32 && dev.kind == DEVICE_CPU && !o.quiet && dist.rank == 0)
        glow_warn("train.precision %s applies to GPUs; the CPU computes in fp32",
                  glow_precision_name(cfg.train.precision));

    /* The run directory: rank 0's. */
    if (dist.rank == 0 && glow_run_dir_prepare(run_dir, &cfg, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    glow_trainer t;
    glow_trainer_setup(&t, &cfg, run_dir);
    t.train = train;
    t.val = val;
    t.max_bad_steps = (int)o.max_bad;
    t.time_limit = o.time_limit;
    t.check_every = o.check_every;
    if (dist.rank > 0)
        glow_train_log_silent(&t.log);
    else if (glow_train_log_open(&t.log, run_dir, o.quiet, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    t.b = backend_get(dev.kind, dev.index, &err);
    if (!t.b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    t.comm = glow_dist_comm(&dist, t.b, &dev, &err);
    if (!t.comm)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const char *mode = o.resume ? "resume" : o.init ? "init" : "scratch";
    if (dist.size > 1)
        agree(t.comm, &cfg, mode, have_ck ? ck.step : 0, train, val);

    volatile sig_atomic_t *stop = glow_tool_catch_stop();
    int rc;
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
    if (rc == 0 && o.resume && glow_same_file(ck_path, t.ckpt_path))
        t.last_saved_step = t.p.step;
    if (rc != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    char devname[32];
    glow_device_str(&dev, devname, sizeof devname);
    char procs[96] = "";
    if (strcmp(t.comm->name, "single") != 0)
        snprintf(procs, sizeof procs, ",\"processes\":%d,\"comm\":\"%s\"", dist.size, t.comm->name);
    glow_train_log_json(&t.log, "\"step\":%lld,\"start\":\"%s\",\"device\":\"%s\",\"total_steps\":%ld,"
                                "\"train_images\":%llu%s",
                        (long long)t.p.step, mode, devname, t.total_steps,
                        (unsigned long long)dataset_get_info(train)->n_images, procs);
    if (dist.size > 1)
        glow_train_log_msg(&t.log, 1, "%s from step %lld to %ld on %d processes (%s, %s on rank 0), "
                                      "%llu training images, batch %d per process (%d per step)",
                           o.resume ? "resuming" : "training", (long long)t.p.step, t.total_steps,
                           dist.size, t.comm->name, devname,
                           (unsigned long long)dataset_get_info(train)->n_images,
                           cfg.train.batch_size, cfg.train.batch_size * dist.size);
    else
        glow_train_log_msg(&t.log, 1, "%s from step %lld to %ld on %s, %llu training images, batch %d",
                           o.resume ? "resuming" : "training", (long long)t.p.step, t.total_steps,
                           devname, (unsigned long long)dataset_get_info(train)->n_images,
                           cfg.train.batch_size);
    rc = glow_trainer_run(&t, stop, &err);
    if (rc == 1 && dist.size > 1 && !t.error_everywhere) {
        /* this process's own failure: say so and go; the launcher ends the others */
        glow_warn("%s", err.msg);
        exit(EXIT_BADINPUT);
    }
    if (rc == 1)
        glow_train_log_msg(&t.log, 0, "%s", err.msg);
    glow_train_log_close(&t.log);
    /* every process ends together: rank 0 has saved and said what happened */
    t.comm->barrier(t.comm);
    t.comm->destroy(t.comm);
    glow_dist_finish(&dist);
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
