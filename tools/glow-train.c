/* glow-train: train a Glow model from shard files or a shard stream, with
 * checkpoints that resume bit for bit (libcommon/train/train_loop.h). Options,
 * wiring and messages; the config, device and data are train/train_setup, the
 * run directory train/run_dir and train/run_data. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
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
#include "base/path.h"
#include "base/util.h"
#include "config/config_find.h"
#include "device/device.h"
#include "dist/dist.h"
#include "model/checkpoint.h"
#include "tool/tool.h"
#include "train/run_dir.h"
#include "train/train_loop.h"
#include "train/train_setup.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: glow-prep ... | glow-train -c CONFIG -o RUN_DIR [OPTION]...\n"
            "       glow-train -c CONFIG -o RUN_DIR [OPTION]... SHARDS...\n"
            "       glow-train --resume RUN_DIR|CKPT [OPTION]... [SHARDS...]\n"
            "       glow-train --init CKPT -o RUN_DIR [-c CONFIG] [OPTION]... SHARDS...\n"
            "Train a Glow model on images from shard files (or directories of them),\n"
            "or from a shard stream on standard input, which is held in memory.\n"
            "RUN_DIR receives config.yml, data.json, checkpoint.safetensors (the latest),\n"
            "best.safetensors (by validation bpd), checkpoints/ (every train.keep_every\n"
            "steps), samples/ (every train.sample_every steps) and log.jsonl.\n"
            "\n"
            "  -c, --config FILE|NAME  YAML config with model: and train: (docs/configs.md),\n"
            "                        or the name of a shipped one (cifar10 finds\n"
            "                        share/glow/configs/cifar10.yml; GLOW_CONFIG_PATH\n"
            "                        first); with --resume, the checkpoint's config by\n"
            "                        default; with --init, the train section (the model\n"
            "                        is the checkpoint's)\n"
            "  -o, --out DIR         the run directory (a folder, created); one that holds a\n"
            "                        run is refused; with --resume, the checkpoint's own\n"
            "      --force           with -o DIR holding a run: move that run aside to\n"
            "                        DIR.old-N and start anew in DIR\n"
            "      --resume RUN|CKPT continue a run where it stopped: same data order,\n"
            "                        noise, optimizer state and step; the data recorded in\n"
            "                        RUN/data.json unless SHARDS or --val are given\n"
            "      --new-data        with --resume: train on SHARDS (or validate on --val)\n"
            "                        although they are not the data the run recorded\n"
            "      --init CKPT       start from a checkpoint's weights (fine-tuning): its\n"
            "                        model, a new optimizer and schedule, no data-dependent\n"
            "                        init; the train section from -c, else the checkpoint's\n"
            "      --init-ema        with --init: take the checkpoint's EMA weights\n"
            "      --val SHARDS      validation data (repeatable): mean bpd every\n"
            "                        train.val_every steps and at the end\n"
            "      --device D        cpu, cuda, cuda:N or auto (default: train.device)\n"
            "      --steps N         train until step N (sets train.steps); with --resume,\n"
            "                        this session stops at step N and the run keeps its end\n"
            "      --time-limit S    end the run after S seconds (the step under way\n"
            "                        finishes; then validated and saved as when done);\n"
            "                        a train.lr_decay reaches its end there too\n"
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
    glow_train_cli cli;
    const char *out;
    int init_ema, quiet, force, new_data;
    char **val;
    int nval;
    char **sets;
    long max_bad, check_every;
    double time_limit;
} options;

enum { OPT_RESUME = 256, OPT_INIT, OPT_INIT_EMA, OPT_VAL, OPT_DEVICE, OPT_STEPS, OPT_SEED, OPT_SET,
       OPT_MEM, OPT_MAXBAD, OPT_TIME, OPT_CHECK, OPT_FORCE, OPT_NEW_DATA, OPT_VERSION };

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
        {"force", no_argument, 0, OPT_FORCE},       {"new-data", no_argument, 0, OPT_NEW_DATA},
        {"quiet", no_argument, 0, 'q'},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    glow_train_cli *a = &o->cli;
    o->max_bad = 5;
    o->check_every = GLOW_CHECK_EVERY;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:o:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'o': o->out = optarg; break;
        case OPT_RESUME: a->resume = optarg; break;
        case OPT_INIT: a->init = optarg; break;
        case OPT_INIT_EMA: o->init_ema = 1; break;
        case OPT_VAL: push(&o->val, &o->nval, optarg); break;
        case OPT_DEVICE: a->device = optarg; break;
        case OPT_SET: push(&o->sets, &a->nsets, optarg); break;
        case OPT_FORCE: o->force = 1; break;
        case OPT_NEW_DATA: o->new_data = 1; break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case OPT_VERSION: glow_tool_print_version();
        case OPT_STEPS:
            if (parse_long(optarg, 1, 1L << 50, &a->steps) != 0)
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
            a->seed = v;
            a->has_seed = 1;
            break;
        }
        case ':': glow_usage_error("%s: missing value", argv[optind - 1]);
        default:
            if (optopt)
                glow_usage_error("-%c: unknown option", optopt);
            glow_usage_error("%s: unknown option", argv[optind - 1]);
        }
    }
    a->sets = o->sets;
    if (a->resume && a->init)
        glow_usage_error("--resume and --init exclude each other");
    if (o->init_ema && !a->init)
        glow_usage_error("--init-ema needs --init CKPT");
    if (o->new_data && !a->resume)
        glow_usage_error("--new-data goes with --resume (a new run records the data it is given)");
    if (!a->resume && !a->init && !a->config)
        glow_usage_error("-c CONFIG is required (or --resume RUN_DIR, or --init CKPT)");
    if (!a->resume && !o->out)
        glow_usage_error("-o RUN_DIR is required");
    if (o->out && !strcmp(o->out, "-"))
        glow_usage_error("-o -: the run directory is a folder, not standard output");
    if (a->device) {
        glow_error err;
        if (glow_device_spec_check(a->device, &err) != 0)
            glow_usage_error("%s", err.msg);
    }
    return optind;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
    options o;
    int first = parse_args(argc, argv, &o);
    const glow_train_cli *a = &o.cli;
    glow_error err = {{0}};
    /* Under a launcher: which process this is (MPI_Init when it is MPI's). */
    glow_dist dist;
    if (glow_dist_init(&dist, &argc, &argv, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    /* The checkpoint to start from, the config, the device. */
    glow_checkpoint ck;
    int have_ck = 0, rc;
    char *ck_path, *run_dir;
    glow_run_dir_paths(a->resume, o.out, a->init, &ck_path, &run_dir);
    if (ck_path) {
        if (glow_checkpoint_load(ck_path, &ck, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        have_ck = 1;
    }
    /* -c NAME: a shipped config by name (config/config_find.h) */
    char *cfg_path = NULL;
    if (o.cli.config) {
        if (!(cfg_path = glow_config_find(o.cli.config, &err)))
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        o.cli.config = cfg_path;
    }
    glow_run_config cfg;
    const char *cfg_name;
    long session_steps;
    rc = glow_train_make_config(a, have_ck ? &ck : NULL, ck_path, &cfg, &cfg_name, &session_steps,
                                &err);
    if (rc == EXIT_USAGE)
        glow_usage_error("%s", err.msg);
    if (rc)
        glow_die(rc, "%s", err.msg);
    glow_device dev;
    if (glow_train_device(&dist, a, &cfg, cfg_name, &dev, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    /* The memory the config asks for, before any of it is allocated. */
    if (glow_trainer_plan(&cfg, dev.kind == DEVICE_CPU, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s: %s", cfg_name, err.msg);

    /* The data: given, or what the run resumed recorded. */
    char *src_dir = a->resume ? glow_path_dir(ck_path) : NULL;
    glow_data_plan plan;
    if ((rc = glow_train_plan_data(src_dir, argc - first, argv + first, o.nval, o.val, &plan,
                                   &err)) != 0)
        glow_die(rc, "%s", err.msg);
    dataset *train, *val = NULL;
    if ((rc = glow_train_open_data(plan.ntrain, plan.train, "training", o.quiet, &cfg, &dist,
                                   &train, &err)) != 0)
        glow_die(rc, "%s%s%s", plan.train_recorded ? plan.rec_file : "",
                 plan.train_recorded ? ": " : "", err.msg);
    if (plan.nval) {
        if (plan.nval == 1 && !strcmp(plan.val[0], "-") && dataset_get_info(train)->from_stream)
            glow_usage_error("--val -: standard input already holds the training images");
        if ((rc = glow_train_open_data(plan.nval, plan.val, "validation", o.quiet, &cfg, &dist,
                                       &val, &err)) != 0)
            glow_die(rc, "%s%s%s", plan.val_recorded ? plan.rec_file : "",
                     plan.val_recorded ? ": " : "", err.msg);
    }
    if (cfg.train.precision != PRECISION_FP32 && dev.kind == DEVICE_CPU && !o.quiet && dist.rank == 0)
        glow_warn("train.precision %s applies to GPUs; the CPU computes in fp32",
                  glow_precision_name(cfg.train.precision));
    backend *b = backend_get(dev.kind, dev.index, &err);
    if (!b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_comm *comm = glow_dist_comm(&dist, b, &dev, &err);
    if (!comm)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    /* What rank 0 finds decides for all: the run directory free (or --force), the
     * data the run's own, a session end not behind the run. */
    const int64_t at = have_ck && a->resume ? ck.step : 0;
    const long end = session_steps ? session_steps
                                   : glow_train_run_length(&cfg.train, dataset_get_info(train)->n_images,
                                                           dist.size);
    int in_place = a->resume && glow_same_file(run_dir, src_dir), code = 0, val_changed = 0;
    glow_run_data record = {0};
    if (dist.rank == 0) {
        if (session_steps && session_steps < at) {
            glow_errorf(&err, "--steps %ld: the run is at step %lld already; --steps N with N >= "
                              "%lld trains this session on to step N",
                        session_steps, (long long)at, (long long)at);
            code = EXIT_USAGE;
        } else if (!in_place && glow_run_dir_check_new(run_dir, o.force, &err) != 0)
            code = EXIT_BADINPUT;
        else if (in_place && (rc = glow_run_dir_lock(run_dir, &err)) == -1)
            code = EXIT_BADINPUT;
        else if (glow_train_check_data(&plan, train, val, o.new_data, &record, &val_changed, &err) != 0)
            code = EXIT_BADINPUT;
    }
    glow_train_settle(comm, code, &err);
    if (a->resume && at >= end) {
        if (!o.quiet && dist.rank == 0)
            glow_warn("%s: nothing to do: the run is at step %lld, %s %ld", run_dir, (long long)at,
                      session_steps ? "and --steps asks for" : "its end is step", end);
        comm->barrier(comm);
        exit(EXIT_OK);
    }
    const char *mode = a->resume ? "resume" : a->init ? "init" : "scratch";
    char build[256];
    snprintf(build, sizeof build, "glow-train %s (cuda %d, mpi %d, nccl %d)", glow_version(),
             glow_device_cuda_built(), GLOW_HAVE_MPI, GLOW_HAVE_NCCL);
    if (dist.size > 1 && glow_train_agree(comm, &cfg, mode, at, train, val, build, &err) != 0)
        glow_train_settle(comm, EXIT_BADINPUT, &err);

    /* The run directory: rank 0's. */
    if (dist.rank == 0 && glow_train_open_run_dir(run_dir, in_place, &cfg, &record, &err) != 0)
        code = EXIT_BADINPUT;
    glow_train_settle(comm, code, &err);

    glow_trainer t;
    glow_trainer_setup(&t, &cfg, run_dir);
    t.train = train;
    t.val = val;
    t.max_bad_steps = (int)o.max_bad;
    t.time_limit = o.time_limit;
    t.check_every = o.check_every;
    t.b = b;
    t.comm = comm;
    if (dist.rank > 0)
        glow_train_log_silent(&t.log);
    else if (glow_train_log_open(&t.log, run_dir, o.quiet, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    volatile sig_atomic_t *stop = glow_tool_catch_stop();
    if (a->resume)
        rc = glow_trainer_start_resume(&t, &ck, ck_path, &err);
    else if (a->init)
        rc = glow_trainer_start_init(&t, &ck, ck_path, o.init_ema, &err);
    else
        rc = glow_trainer_start_scratch(&t, &err);
    if (have_ck)
        glow_checkpoint_free(&ck);
    /* Resuming in place: the checkpoint there is the last good one until the
     * next save, which the failure messages want to know. */
    if (rc == 0 && a->resume && glow_same_file(ck_path, t.ckpt_path))
        t.last_saved_step = t.p.step;
    if (rc != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    if (session_steps)
        t.total_steps = session_steps;
    if (val_changed)
        t.best_bpd = INFINITY; /* another validation set: its bpd compares with nothing before */

    char devname[32], line[512];
    glow_device_str(&dev, devname, sizeof devname);
    char procs[96] = "", wait[80] = "", policy[64];
    if (strcmp(comm->name, "single") != 0)
        snprintf(procs, sizeof procs, ",\"processes\":%d,\"comm\":\"%s\"", dist.size, comm->name);
    if (dev.kind == DEVICE_CPU) { /* how its threads wait (tool.h): it counts in the speed */
        glow_tool_omp_wait_str(policy, sizeof policy);
        snprintf(wait, sizeof wait, ",\"omp_wait\":\"%s\"", policy);
    }
    glow_train_log_json(&t.log, "\"step\":%lld,\"start\":\"%s\",\"device\":\"%s\",\"total_steps\":%ld,"
                                "\"run_steps\":%ld,\"train_images\":%llu,\"val_images\":%llu%s%s%s",
                        (long long)t.p.step, mode, devname, t.total_steps, t.run_steps,
                        (unsigned long long)dataset_get_info(train)->n_images,
                        (unsigned long long)(val ? dataset_get_info(val)->n_images : 0),
                        o.new_data ? ",\"new_data\":true" : "", procs, wait);
    glow_train_log_msg(&t.log, 1, "%s", glow_train_start_text(&t, mode, devname, line, sizeof line));
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
    comm->barrier(comm);
    comm->destroy(comm);
    glow_dist_finish(&dist);
    glow_trainer_free(&t);
    backend_release(b);
    dataset_close(train);
    dataset_close(val);
    glow_data_plan_free(&plan);
    glow_run_data_free(&record);
    free(src_dir);
    free(ck_path);
    free(cfg_path);
    free(run_dir);
    free(o.val);
    free(o.sets);
    return rc;
}
