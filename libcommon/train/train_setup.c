#include "train_setup.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem_budget.h"
#include "base/path.h"
#include "run_dir.h"
#include "train_loop.h"
#include "train_data.h"
#include "train_state.h"

/* The model of a checkpoint as the base of a config without a train section of
 * its own: a fine-tuning of weights that recorded none. */
static void from_weights(const glow_checkpoint *ck, glow_run_config *cfg)
{
    glow_run_config_default(cfg);
    cfg->model = ck->cfg;
    const char *name = glow_checkpoint_meta(ck, "name");
    snprintf(cfg->name, sizeof cfg->name, "%s", name ? name : "");
}

/* Does the message start with key ("train.lr: ..." or "train.steps, ...")? */
static int names_key(const char *msg, const char *set)
{
    const char *eq = strchr(set, '=');
    size_t n = eq ? (size_t)(eq - set) : strlen(set);
    return strncmp(msg, set, n) == 0 && (msg[n] == ':' || msg[n] == ',' || msg[n] == ' ');
}

int glow_train_make_config(const glow_train_cli *a, const glow_checkpoint *ck, const char *ck_path,
                           glow_run_config *cfg, const char **cfg_name, long *session_steps,
                           glow_error *err)
{
    const char *mode = a->resume ? "--resume" : "--init";
    *session_steps = 0;
    if (a->config) {
        int has_model = 1;
        int rc = ck ? glow_run_config_parse_file_opt(a->config, cfg, &has_model, err)
                    : glow_run_config_parse_file(a->config, cfg, err);
        if (rc != 0)
            return EXIT_BADINPUT;
        *cfg_name = a->config;
        char why[512];
        if (ck && has_model &&
            glow_config_diff(&cfg->model, a->config, &ck->cfg, ck_path, why, sizeof why)) {
            glow_errorf(err, "%s: the config's model does not match the checkpoint's: %s", mode, why);
            return EXIT_BADINPUT;
        }
        if (ck)
            cfg->model = ck->cfg;
    } else {
        *cfg_name = ck_path;
        if (a->init && !ck->train_config)
            from_weights(ck, cfg);
        else if (glow_train_config_from_checkpoint(ck, ck_path, cfg, err) != 0)
            return EXIT_BADINPUT;
    }
    for (int i = 0; i < a->nsets; i++) {
        if (config_set_override(cfg, a->sets[i], err) != 0) {
            glow_error_prefix(err, "--set %s", a->sets[i]);
            return EXIT_USAGE;
        }
        char why[512];
        if (ck && glow_config_diff(&cfg->model, "the override", &ck->cfg, ck_path, why, sizeof why)) {
            glow_errorf(err, "--set %s: %s takes the model from the checkpoint, which %s: %s",
                        a->sets[i], mode,
                        a->resume ? "a resumed run cannot change" : "fine-tuning cannot change", why);
            return EXIT_BADINPUT;
        }
    }
    if (a->steps && a->resume)
        *session_steps = a->steps;
    else if (a->steps) {
        cfg->train.steps = a->steps;
        cfg->train.epochs = 0;
    }
    if (a->has_seed)
        cfg->train.seed = a->seed;
    if (a->device)
        snprintf(cfg->train.device, sizeof cfg->train.device, "%s", a->device);
    if (glow_run_config_validate(cfg, err) == 0)
        return a->resume && glow_train_state_resumable(ck, ck_path, &cfg->train, err) != 0
                   ? EXIT_BADINPUT
                   : 0;
    /* Name what set the key the message is about: the last --set of it, else the
     * file or checkpoint. */
    for (int i = a->nsets - 1; i >= 0; i--)
        if (names_key(err->msg, a->sets[i])) {
            glow_error_prefix(err, "--set %s", a->sets[i]);
            return EXIT_BADINPUT;
        }
    if (a->steps && !a->resume && strncmp(err->msg, "train.steps", 11) == 0)
        glow_error_prefix(err, "--steps %ld", a->steps);
    else
        glow_error_prefix(err, "%s", *cfg_name);
    return EXIT_BADINPUT;
}

int glow_train_device(const glow_dist *d, const glow_train_cli *a, const glow_run_config *cfg,
                      const char *cfg_name, glow_device *dev, glow_error *err)
{
    if (glow_dist_device(d, cfg->train.device, dev, err) == 0)
        return 0;
    char flag[64];
    snprintf(flag, sizeof flag, "--device %s:", cfg->train.device);
    if (!a->device && strncmp(err->msg, flag, strlen(flag)) == 0) {
        /* the device is the config's: say so, rather than blame a flag not given */
        char rest[1024];
        snprintf(rest, sizeof rest, "%s", err->msg + strlen(flag));
        glow_errorf(err, "%s: train.device %s:%s", cfg_name, cfg->train.device, rest);
    }
    return -1;
}

int glow_train_open_data(int n, char **inputs, const char *what, int quiet,
                         const glow_run_config *cfg, const glow_dist *dist, dataset **out,
                         glow_error *err)
{
    *out = NULL;
    int stream = glow_train_data_is_stream(n, inputs);
    /* Only rank 0 has standard input (mpirun gives it to rank 0), and handing
     * the whole stream to every process would hold the data set in each. */
    if (stream && dist->size > 1) {
        glow_errorf(err, "no %s data: a stream on standard input cannot feed %d processes; write "
                         "shard files (glow-prep -o DIR) and give DIR to every process",
                    what, dist->size);
        return EXIT_USAGE;
    }
    if (stream && isatty(0)) {
        glow_errorf(err, "no %s data: give SHARDS, or pipe a stream (glow-prep ... | glow-train ...)",
                    what);
        return EXIT_USAGE;
    }
    if (stream && !quiet)
        glow_warn("reading the %s images from standard input into memory (at most %llu MiB; "
                  "for more, write shard files with glow-prep -o DIR)",
                  what, (unsigned long long)(glow_mem_limit() >> 20));
    /* a stream's records are held to the model's shape before decompression */
    dataset *d = dataset_open_expect(n, inputs, 0, glow_train_data_expect, (void *)&cfg->model, err);
    if (!d)
        return EXIT_BADINPUT;
    const dataset_info *in = dataset_get_info(d);
    if (stream && !quiet)
        glow_warn("%llu %s images (%.1f MiB) held in memory", (unsigned long long)in->n_images, what,
                  (double)in->n_images * in->c * in->h * in->w / 1048576.0);
    if (glow_train_data_check_part(d, what, &cfg->model, dist->rank, dist->size, err) != 0) {
        dataset_close(d);
        return EXIT_BADINPUT;
    }
    *out = d;
    return 0;
}

int glow_train_plan_data(const char *src_dir, int ntrain, char **train, int nval, char **val,
                         glow_data_plan *p, glow_error *err)
{
    memset(p, 0, sizeof *p);
    p->ntrain = ntrain;
    p->train = train;
    p->nval = nval;
    p->val = val;
    if (!src_dir)
        return 0;
    p->rec_file = glow_path_join(src_dir, "data.json");
    int r = glow_run_data_read(src_dir, &p->rec, err);
    if (r < 0)
        return EXIT_BADINPUT;
    p->has_rec = r;
    if (!p->has_rec)
        return 0;
    if (!ntrain) {
        p->ntrain = p->rec.train.n_inputs;
        p->train = p->rec.train.inputs;
        p->train_recorded = 1;
        if (glow_train_data_is_stream(p->ntrain, p->train) && isatty(0)) {
            glow_errorf(err, "%s: the run was trained on a stream on standard input, which cannot "
                             "be read again: pipe the same images in again, or give SHARDS",
                        p->rec_file);
            return EXIT_USAGE;
        }
    }
    if (!nval && p->rec.has_val) {
        p->nval = p->rec.val.n_inputs;
        p->val = p->rec.val.inputs;
        p->val_recorded = 1;
    }
    return 0;
}

/* One set against the record: 0, or -1 with err saying how it differs. */
static int check_one(const glow_data_plan *p, const char *what, const glow_data_print *now,
                     const glow_data_print *rec, int recorded, glow_error *err)
{
    char why[512], from[600] = "";
    if (glow_data_print_same(now, rec, why, sizeof why))
        return 0;
    for (int i = 0; i < rec->n_inputs; i++)
        snprintf(from + strlen(from), sizeof from - strlen(from), "%s%s", i ? ", " : "",
                 strcmp(rec->inputs[i], "-") ? rec->inputs[i] : "standard input");
    if (recorded)
        glow_errorf(err, "%s: the %s data of the run has changed since it was recorded: %s (%s); "
                         "give --new-data to go on with it as it is now",
                    p->rec_file, what, why, from);
    else
        glow_errorf(err, "%s data: %s (%s: %s); give --new-data if the change is intended", what,
                    why, p->rec_file, from);
    return -1;
}

/* The print of one set: with the record's CRC length when there is a record to
 * compare with, else (and for data taken in place of the record's) the default. */
static int print_of(dataset *d, int n, char **inputs, const glow_data_print *rec, int new_data,
                    glow_data_print *out, glow_error *err)
{
    if (glow_data_print_make(d, n, inputs, rec ? rec->crc_images : 0, out, err) != 0)
        return -1;
    char why[512];
    if (rec && new_data && !glow_data_print_same(out, rec, why, sizeof why)) {
        glow_data_print_free(out);
        return glow_data_print_make(d, n, inputs, 0, out, err);
    }
    return 0;
}

int glow_train_check_data(const glow_data_plan *p, dataset *train, dataset *val, int new_data,
                          glow_run_data *out, int *val_changed, glow_error *err)
{
    memset(out, 0, sizeof *out);
    *val_changed = 0;
    const glow_run_data *rec = &p->rec;
    if (print_of(train, p->ntrain, p->train, p->has_rec ? &rec->train : NULL, new_data, &out->train,
                 err) != 0)
        return -1;
    out->has_train = 1;
    const glow_data_print *rv = p->has_rec && rec->has_val ? &rec->val : NULL;
    if (val) {
        if (print_of(val, p->nval, p->val, rv, new_data, &out->val, err) != 0)
            return -1;
        out->has_val = 1;
    }
    if (!p->has_rec)
        return 0;
    if (!new_data && check_one(p, "training", &out->train, &rec->train, p->train_recorded, err) != 0)
        return -1;
    char why[512];
    *val_changed = val && (!rv || !glow_data_print_same(&out->val, rv, why, sizeof why));
    if (*val_changed && rv && !new_data)
        return check_one(p, "validation", &out->val, rv, p->val_recorded, err);
    return 0;
}

void glow_data_plan_free(glow_data_plan *p)
{
    glow_run_data_free(&p->rec);
    free(p->rec_file);
    memset(p, 0, sizeof *p);
}

int glow_train_agree(glow_comm *comm, const glow_run_config *cfg, const char *mode, int64_t step,
                     const dataset *train, const dataset *val, const char *build, glow_error *err)
{
    char *config = glow_run_config_to_yaml(cfg);
    char *data = dataset_fingerprint(train);
    char *vdata = val ? dataset_fingerprint(val) : xstrdup("none");
    char start[96];
    snprintf(start, sizeof start, "%s from step %lld", mode, (long long)step);
    const glow_dist_fact facts[] = {{"build", build}, {"config", config}, {"training data", data},
                                    {"validation data", vdata}, {"start", start}};
    int rc = glow_dist_agree(comm, facts, (int)(sizeof facts / sizeof facts[0]), err);
    free(config);
    free(data);
    free(vdata);
    return rc;
}

void glow_train_share(glow_comm *comm, int *code, glow_error *err)
{
    if (comm->size <= 1)
        return;
    struct {
        int code;
        glow_error e;
    } m;
    memset(&m, 0, sizeof m);
    if (comm->rank == 0) {
        m.code = *code;
        m.e = *err;
    }
    glow_comm_bcast_host(comm, &m, sizeof m, 0);
    *code = m.code;
    *err = m.e;
}

void glow_train_settle(glow_comm *comm, int code, glow_error *err)
{
    glow_train_share(comm, &code, err);
    if (!code)
        return;
    if (comm->rank == 0)
        glow_warn("%s", err->msg);
    comm->barrier(comm);
    exit(code);
}

int glow_train_open_run_dir(const char *run_dir, int in_place, const glow_run_config *cfg,
                            const glow_run_data *record, glow_error *err)
{
    glow_run_info ri;
    glow_run_dir_inspect(run_dir, &ri);
    if (!in_place && ri.holds_run) {
        char *moved, what[256];
        if (glow_run_dir_move_aside(run_dir, &moved, err) != 0)
            return -1;
        glow_run_dir_describe(&ri, what, sizeof what);
        glow_warn("--force: moved %s from %s to %s; starting anew in %s", what, run_dir, moved,
                  run_dir);
        free(moved);
    }
    if (glow_run_dir_prepare(run_dir, cfg, err) != 0 ||
        (!in_place && glow_run_dir_lock(run_dir, err) == -1))
        return -1;
    return glow_run_data_write(run_dir, record, err);
}

const char *glow_train_start_text(const glow_trainer *t, const char *mode, const char *dev, char *buf,
                                  size_t n)
{
    char end[96] = "";
    if (t->total_steps != t->run_steps)
        snprintf(end, sizeof end, " (this session; the run ends at step %ld)", t->run_steps);
    const dataset_info *in = dataset_get_info(t->train);
    const int nproc = t->comm ? t->comm->size : 1;
    size_t o = (size_t)snprintf(buf, n, "%s from step %lld to %ld%s on ",
                                strcmp(mode, "resume") ? "training" : "resuming", (long long)t->p.step,
                                t->total_steps, end);
    if (o >= n)
        return buf;
    if (nproc > 1)
        snprintf(buf + o, n - o, "%d processes (%s, %s on rank 0), %llu training images, batch %d "
                                 "per process (%d per step)",
                 nproc, t->comm->name, dev, (unsigned long long)in->n_images,
                 t->cfg.train.batch_size, t->cfg.train.batch_size * nproc);
    else
        snprintf(buf + o, n - o, "%s, %llu training images, batch %d", dev,
                 (unsigned long long)in->n_images, t->cfg.train.batch_size);
    return buf;
}
