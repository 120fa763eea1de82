#include "train_loop.h"

#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem_budget.h"
#include "base/path.h"
#include "data/safetensors.h"
#include "dist/dist.h"
#include "run_dir.h"

static int nproc(const glow_trainer *t) { return t->comm ? t->comm->size : 1; }
static int rank_of(const glow_trainer *t) { return t->comm ? t->comm->rank : 0; }
/* A communicator that does something (NCCL on one GPU too, GLOW_COMM=nccl). */
static int shared(const glow_trainer *t) { return t->comm && strcmp(t->comm->name, "single") != 0; }

void glow_trainer_setup(glow_trainer *t, const glow_run_config *cfg, const char *run_dir)
{
    memset(t, 0, sizeof *t);
    t->cfg = *cfg;
    t->run_dir = xstrdup(run_dir);
    size_t n = strlen(run_dir) + 32;
    t->ckpt_path = xmalloc(n);
    snprintf(t->ckpt_path, n, "%s/checkpoint.safetensors", run_dir);
    t->max_bad_steps = 5;
    t->last_saved_step = -1;
    t->check_every = GLOW_CHECK_EVERY;
    t->perturb_rank = -1;
    t->val_step = -1;
    t->val_bpd = t->val_bpd_ema = NAN;
    t->best_bpd = INFINITY;
    t->sampled_at = -1;
    const char *hook = getenv("GLOW_TEST_PERTURB");
    int r;
    long st;
    if (hook && sscanf(hook, "%d:%ld", &r, &st) == 2) {
        t->perturb_rank = r;
        t->perturb_step = st;
    }
}

long glow_train_run_length(const glow_train_config *tc, uint64_t n_images, int processes)
{
    if (tc->steps > 0)
        return tc->steps;
    double images = tc->epochs * (double)n_images;
    return (long)ceil(images / ((double)tc->batch_size * processes));
}

/* Steps of the whole run: the config's steps, or its epochs over this data. */
static long run_length(const glow_trainer *t)
{
    return glow_train_run_length(&t->cfg.train, dataset_get_info(t->train)->n_images, nproc(t));
}

/* Optimizer, EMA and batch buffers around a model built by a start function. */
/* A checkpoint's trained tensor, a piece at a time, from the backend arrays
 * (t->ck is a fetched checkpoint: glow_trainer_save writes it without a host
 * copy of the weights, the moments or the EMA). */
static void fetch_tensor(void *ctx, int set, const glow_param *p, size_t offset, void *dst, size_t nbytes)
{
    glow_trainer *t = ctx;
    const float *flat = set == GLOW_CK_PARAMS ? glow_model_params(t->m)
                      : set == GLOW_CK_OPTIM_M ? t->opt->m
                      : set == GLOW_CK_OPTIM_V ? t->opt->v
                                                : t->ema;
    const long off = glow_model_param_offset(t->m, p->name);
    if (off < 0 || !flat)
        glow_die(1, "checkpoint: tensor '%s' is not a trained parameter of the model", p->name);
    t->b->download(t->b, dst, (const char *)(flat + off) + offset, nbytes);
}

static int finish_start(glow_trainer *t, glow_error *err)
{
    const glow_train_config *tc = &t->cfg.train;
    /* train.precision from here on (the init above ran in fp32); the CPU backend
     * is fp32 only and glow-train has warned about it */
    if (tc->precision != PRECISION_FP32 && strcmp(t->b->name, "cpu") != 0 &&
        t->b->set_precision(t->b, tc->precision, err) != 0)
        return -1;
    t->n_trained = glow_model_n_trained(t->m);
    glow_memory mem = {tc->memory, tc->memory_every};
    glow_model_set_memory(t->m, &mem);
    /* optimizer moments and the EMA (backend memory: counted on the CPU), the
     * batch on the host */
    const size_t D = (size_t)glow_config_dims(&t->cfg.model);
    uint64_t state = (uint64_t)t->n_trained * 4 * (tc->ema_decay > 0 ? 4 : 2);
    uint64_t need = (strcmp(t->b->name, "cpu") == 0 ? state : 0) +
                    (uint64_t)tc->batch_size * (D + sizeof(int32_t));
    if (glow_mem_reserve(need, "the optimizer state, the EMA and the batch buffer", err) != 0)
        return -1;
    t->mem = need;
    t->opt = glow_optim_new(t->b, tc->optimizer, t->n_trained);
    t->opt->beta1 = (float)tc->beta1;
    t->opt->beta2 = (float)tc->beta2;
    if (tc->ema_decay > 0) {
        t->ema = t->b->alloc(t->b, t->n_trained * sizeof(float));
        t->swap = t->b->alloc(t->b, t->n_trained * sizeof(float));
        t->b->copy(t->b, t->ema, glow_model_params(t->m), t->n_trained * sizeof(float));
    }
    t->px = xmalloc((size_t)tc->batch_size * D);
    t->labels = xcalloc((size_t)tc->batch_size, sizeof(int32_t));
    if (glow_checkpoint_init_fetched(&t->ck, &t->cfg.model, fetch_tensor, t, err) != 0 ||
        glow_checkpoint_add_training_state(&t->ck, glow_optimizer_name(tc->optimizer),
                                           tc->ema_decay > 0, err) != 0)
        return -1;
    t->ck_ready = 1;
    t->run_steps = t->total_steps = run_length(t);
    if (rank_of(t) == 0 && tc->sample_every > 0 && glow_sampler_drawable(&t->cfg.model)) {
        if (glow_sampler_init(&t->sampler, &t->cfg.model, tc->batch_size, &tc->sample_temperatures,
                              tc->seed, t->val, err) != 0)
            return -1;
        t->sampling = 1;
    } else if (rank_of(t) == 0 && tc->sample_every > 0)
        glow_train_log_msg(&t->log, 1, "no sample grids: images of %d channels are not drawn as PNG "
                                       "(1 or 3 are)", t->cfg.model.channels);
    t->session_start = now_seconds();
    t->seconds_base = t->p.train_seconds;
    return 0;
}

static glow_batch make_batch(const glow_trainer *t, int n, const uint8_t *px, const int32_t *labels,
                             uint64_t seed, uint64_t first)
{
    glow_batch bt = {n, px, NULL, seed, first, t->cfg.model.y_condition ? labels : NULL};
    return bt;
}

int glow_trainer_start_scratch(glow_trainer *t, glow_error *err)
{
    const glow_config *mc = &t->cfg.model;
    const glow_train_config *tc = &t->cfg.train;
    glow_paramset ps;
    if (glow_paramset_layout(mc, &ps, err) != 0)
        return -1;
    glow_params_init(mc, &ps, tc->seed);
    t->m = glow_model_new(t->b, mc, &ps, err);
    glow_paramset_free(&ps);
    if (!t->m)
        return -1;

    /* The init batch is the start of epoch 0, with the noise those images get
     * in training: nothing random beyond the seed. On several processes rank 0
     * runs it (docs/model.md section 5.2: rank 0's values) and hands the
     * parameters to the others. */
    int rc = 0;
    if (rank_of(t) == 0) {
        int n0 = glow_train_init_batch(tc, mc);
        const size_t D = (size_t)glow_config_dims(mc);
        uint8_t *px = xmalloc((size_t)n0 * D);
        int32_t *lb = xcalloc((size_t)n0, sizeof(int32_t));
        rc = dataset_seek(t->train, tc->seed, 0, 0, err);
        if (rc == 0)
            rc = dataset_next_batch(t->train, (uint32_t)n0, px, lb, err);
        if (rc == 0) {
            glow_batch bt = make_batch(t, n0, px, lb, tc->seed, 0);
            glow_result r;
            rc = glow_model_ddi(t->m, &bt, &r, err);
            if (rc == 0)
                glow_train_log_msg(&t->log, 1, "data-dependent init on %d images: bpd %.4f", n0,
                                   r.loss);
        }
        free(px);
        free(lb);
    }
    if (rc == 0 && shared(t))
        t->comm->broadcast(t->comm, glow_model_params(t->m),
                           glow_model_n_trained(t->m) * sizeof(float), 0);
    if (rc != 0 || dataset_seek(t->train, tc->seed, 0, 0, err) != 0)
        return -1;
    memset(&t->p, 0, sizeof t->p);
    return finish_start(t, err);
}

int glow_trainer_start_resume(glow_trainer *t, const glow_checkpoint *ck, const char *path,
                              glow_error *err)
{
    const glow_train_config *tc = &t->cfg.train;
    if (glow_train_state_resumable(ck, path, tc, err) != 0)
        return -1;
    if (glow_train_progress_get(ck, path, dataset_get_info(t->train)->n_images, &t->p, err) != 0)
        return -1;
    t->m = glow_model_new(t->b, &ck->cfg, &ck->params, err);
    if (!t->m) {
        glow_error_prefix(err, "%s", path);
        return -1;
    }
    if (finish_start(t, err) != 0)
        return -1;
    glow_model_flat_upload(t->m, t->opt->m, &ck->optim_m);
    glow_model_flat_upload(t->m, t->opt->v, &ck->optim_v);
    t->opt->t = t->p.optim_steps;
    const char *vs = glow_checkpoint_meta(ck, "val_step");
    long vstep;
    if (vs && parse_long(vs, 0, LONG_MAX, &vstep) == 0) {
        t->val_step = vstep;
        const char *a = glow_checkpoint_meta(ck, "val_bpd"), *e = glow_checkpoint_meta(ck, "val_bpd_ema");
        if (!a || parse_double(a, &t->val_bpd) != 0)
            t->val_bpd = NAN;
        if (!e || parse_double(e, &t->val_bpd_ema) != 0)
            t->val_bpd_ema = NAN;
    }
    if (rank_of(t) == 0) {
        /* the best so far: best.safetensors of this run directory */
        char *best = glow_path_join(t->run_dir, "best.safetensors");
        st_file f;
        glow_error e2;
        if (st_load_meta(best, &f, &e2) == 0) {
            const char *v = st_meta(&f, t->ema ? "val_bpd_ema" : "val_bpd");
            double b;
            if (v && parse_double(v, &b) == 0)
                t->best_bpd = b;
            st_free(&f);
        }
        free(best);
    }
    if (t->ema && ck->has_ema)
        glow_model_flat_upload(t->m, t->ema, &ck->ema);
    else if (t->ema)
        glow_train_log_msg(&t->log, 1, "%s has no EMA weights: the average starts from its weights",
                           path);
    return dataset_seek(t->train, tc->seed, t->p.data_epoch, t->p.data_offset, err);
}

int glow_trainer_start_init(glow_trainer *t, const glow_checkpoint *ck, const char *path,
                            int use_ema, glow_error *err)
{
    if (use_ema && !ck->has_ema) {
        glow_errorf(err, "%s: --init-ema: the checkpoint has no EMA weights", path);
        return -1;
    }
    t->m = glow_model_new(t->b, &ck->cfg, use_ema ? &ck->ema : &ck->params, err);
    if (!t->m) {
        glow_error_prefix(err, "%s", path);
        return -1;
    }
    memset(&t->p, 0, sizeof t->p);
    if (finish_start(t, err) != 0)
        return -1;
    return dataset_seek(t->train, t->cfg.train.seed, 0, 0, err);
}

int glow_trainer_validate(glow_trainer *t, int ema, double *bpd, glow_error *err)
{
    backend *b = t->b;
    float *params = glow_model_params(t->m);
    const size_t bytes = t->n_trained * sizeof(float);
    ema = ema && t->ema;
    if (ema) {
        b->copy(b, t->swap, params, bytes);
        b->copy(b, params, t->ema, bytes);
    }
    /* Batches of the training size, so the model keeps one set of buffers; the
     * last one is padded with copies of its last image, whose results are
     * dropped (images do not affect each other's results). Process r of R takes
     * images N*r/R..N*(r+1)/R-1, with the noise of their place in the set. */
    const int bs = t->cfg.train.batch_size;
    const size_t D = (size_t)glow_config_dims(&t->cfg.model);
    const uint64_t N = dataset_get_info(t->val)->n_images;
    const uint64_t lo = N * (uint64_t)rank_of(t) / (uint64_t)nproc(t);
    const uint64_t hi = N * (uint64_t)(rank_of(t) + 1) / (uint64_t)nproc(t);
    double sum = 0;
    uint64_t count = lo;
    int n = 0, rc = 0;
    dataset_seq_seek(t->val, lo);
    while (count < hi &&
           (n = dataset_read_seq(t->val, hi - count < (uint64_t)bs ? (uint32_t)(hi - count) : (uint32_t)bs,
                                 t->px, t->labels, err)) > 0) {
        for (int i = n; i < bs; i++) {
            memcpy(t->px + (size_t)i * D, t->px + (size_t)(n - 1) * D, D);
            t->labels[i] = t->labels[n - 1];
        }
        glow_batch bt = make_batch(t, bs, t->px, t->labels, GLOW_VAL_NOISE_SEED, count);
        glow_result r;
        if (glow_model_eval(t->m, &bt, &r, err) != 0) {
            glow_error_prefix(err, "validation images %llu..", (unsigned long long)count);
            rc = -1;
            break;
        }
        for (int i = 0; i < n; i++)
            sum += r.bpd[i];
        count += (uint64_t)n;
    }
    if (n < 0)
        rc = -1;
    if (ema)
        b->copy(b, params, t->swap, bytes);
    if (rc != 0)
        return rc;
    double tot[2] = {sum, (double)(count - lo)};
    if (shared(t))
        glow_comm_reduce(t->comm, tot, 2, GLOW_REDUCE_SUM);
    *bpd = tot[1] > 0 ? tot[0] / tot[1] : NAN;
    return rc;
}

static double elapsed(const glow_trainer *t) { return t->seconds_base + now_seconds() - t->session_start; }

int glow_trainer_save(glow_trainer *t, glow_error *err)
{
    backend *b = t->b;
    /* A checkpoint that cannot be loaded (non-finite values) would replace the
     * last good one: keep that one instead. */
    double s = b->sumsq(b, glow_model_params(t->m), t->n_trained);
    if (t->ema)
        s += b->sumsq(b, t->ema, t->n_trained);
    if (!isfinite(s)) {
        glow_train_log_json(&t->log, "\"step\":%lld,\"checkpoint_skipped\":\"non-finite parameters\"",
                            (long long)t->p.step);
        glow_train_log_msg(&t->log, 0, "step %lld: parameters are not finite; checkpoint not written",
                           (long long)t->p.step);
        return 1;
    }
    if (rank_of(t) != 0) { /* rank 0 writes it */
        t->last_saved_step = t->p.step;
        return 0;
    }
    /* the fixed parameters here; the trained ones, the moments and the EMA are
     * read from the backend as the file is written (fetch_tensor) */
    glow_checkpoint *ck = &t->ck;
    glow_model_get_params(t->m, &ck->params);
    if (t->ema)
        for (int i = 0; i < ck->params.n; i++)
            if (!ck->params.v[i].trained)
                memcpy(ck->ema.v[i].data, ck->params.v[i].data, ck->params.v[i].count * 4);
    t->p.optim_steps = t->opt->t;
    t->p.train_seconds = elapsed(t);
    glow_train_state_put(ck, &t->cfg, &t->p);
    if (t->val_step >= 0) { /* the last validation, for glow-ckpt RUN_DIR and best */
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)t->val_step);
        glow_checkpoint_set_meta(ck, "val_step", buf);
        snprintf(buf, sizeof buf, "%.8g", t->val_bpd);
        glow_checkpoint_set_meta(ck, "val_bpd", buf);
        if (t->ema) {
            snprintf(buf, sizeof buf, "%.8g", t->val_bpd_ema);
            glow_checkpoint_set_meta(ck, "val_bpd_ema", buf);
        }
    }
    if (glow_checkpoint_save(t->ckpt_path, ck, err) != 0)
        return -1;
    t->last_saved_step = t->p.step;
    glow_train_log_json(&t->log, "\"step\":%lld,\"checkpoint\":\"checkpoint.safetensors\"",
                        (long long)t->p.step);
    const glow_train_config *tc = &t->cfg.train;
    if (t->best_pending && t->val_step == t->p.step) {
        if (glow_run_dir_set_best(t->run_dir, t->ckpt_path, err) != 0)
            return -1;
        char nb[32];
        glow_train_log_json(&t->log, "\"step\":%lld,\"best\":\"best.safetensors\",\"by\":\"%s\","
                                     "\"bpd\":%s",
                            (long long)t->p.step, t->ema ? "val_bpd_ema" : "val_bpd",
                            glow_json_num(nb, t->best_bpd));
    }
    t->best_pending = 0;
    if (tc->keep_every > 0 && t->p.step % tc->keep_every == 0) {
        int pruned;
        if (glow_run_dir_keep(t->run_dir, t->ckpt_path, t->p.step, tc->keep_last, &pruned, err) != 0)
            return -1;
        glow_train_log_json(&t->log, "\"step\":%lld,\"kept\":\"checkpoints/step-%07lld.safetensors\""
                                     ",\"pruned\":%d",
                            (long long)t->p.step, (long long)t->p.step, pruned);
    }
    return 0;
}

int glow_trainer_sample(glow_trainer *t, glow_error *err)
{
    if (!t->sampling || t->sampled_at == t->p.step)
        return 0;
    backend *b = t->b;
    float *params = glow_model_params(t->m);
    const size_t bytes = t->n_trained * sizeof(float);
    if (t->ema) { /* the weights glow-sample --ema draws with */
        b->copy(b, t->swap, params, bytes);
        b->copy(b, params, t->ema, bytes);
    }
    char names[160];
    int rc = glow_sampler_write(&t->sampler, t->m, t->run_dir, t->p.step, names, sizeof names, err);
    if (t->ema)
        b->copy(b, params, t->swap, bytes);
    if (rc != 0)
        return -1;
    t->sampled_at = t->p.step;
    char *sp = strchr(names, ' ');
    if (sp)
        *sp = '\0';
    glow_train_log_json(&t->log, "\"step\":%lld,\"samples\":\"%s\"%s%s%s", (long long)t->p.step,
                        names, sp ? ",\"reconstructions\":\"" : "", sp ? sp + 1 : "", sp ? "\"" : "");
    return 0;
}

typedef struct {
    double loss, bpd, gn, lr;
    int n_ok;
    int64_t images;
    double seconds;
    double inv_err; /* train.memory invert: the worst of the interval's backward passes */
    double inv_level[GLOW_LOG_MAX_LEVELS]; /* and of each level */
} interval;

static void last_checkpoint_note(const glow_trainer *t, char *buf, size_t n);

/* train.memory invert: the worst error of the step inputs the backward pass
 * rebuilt (every process's), kept for the log line; over train.memory_max_error
 * the run stops before the step is taken, on every process. */
static int check_inv_error(glow_trainer *t, interval *iv, glow_error *err)
{
    const glow_train_config *tc = &t->cfg.train;
    const int L = t->cfg.model.levels;
    double lev[GLOW_LOG_MAX_LEVELS + 1];
    lev[L] = glow_model_inv_error(t->m, lev); /* the levels', then the worst */
    if (shared(t))
        glow_comm_reduce(t->comm, lev, L + 1, GLOW_REDUCE_MAX);
    const double e = lev[L];
    if (!(e <= iv->inv_err))
        iv->inv_err = e;
    int worst = 0;
    for (int l = 0; l < L; l++) {
        if (!(lev[l] <= iv->inv_level[l]))
            iv->inv_level[l] = lev[l];
        if (!(lev[l] <= lev[worst]))
            worst = l;
    }
    if (tc->memory_max_error <= 0 || e <= tc->memory_max_error)
        return 0;
    char note[600];
    last_checkpoint_note(t, note, sizeof note);
    glow_errorf(err, "step %lld: train.memory invert: a flow step's input rebuilt by the inverse "
                     "of level %d is off by %.3g (relative), more than train.memory_max_error "
                     "%g allows: "
                     "keep more step inputs (train.memory_every, now %d) or train with "
                     "train.memory: recompute; training stopped; %s",
                (long long)t->p.step + 1, worst, e, tc->memory_max_error, tc->memory_every, note);
    t->error_everywhere = 1;
    return -1;
}

/* One optimizer step. Returns 0 (done), 1 (skipped: *why says why) or -1. */
static int train_step(glow_trainer *t, interval *iv, const char **why, double *loss_out,
                      glow_error *err)
{
    const glow_train_config *tc = &t->cfg.train;
    backend *b = t->b;
    const int bs = tc->batch_size, R = nproc(t);
    const int64_t global = (int64_t)bs * R;          /* images of the step, all processes */
    const int64_t first = t->p.images_seen + (int64_t)bs * rank_of(t); /* this one's */
    double t0 = now_seconds();
    if (dataset_next_slice(t->train, (uint64_t)global, (uint64_t)bs * (uint64_t)rank_of(t),
                           (uint32_t)bs, t->px, t->labels, err) != 0)
        return -1;
    glow_batch bt = make_batch(t, bs, t->px, t->labels, tc->seed, (uint64_t)first);
    glow_result r;
    if (glow_model_forward(t->m, &bt, &r, err) != 0) {
        glow_error_prefix(err, "training images %lld..%lld", (long long)first,
                          (long long)first + bs - 1);
        return -1;
    }
    /* the loss and bpd of the global batch: the mean of the processes' means */
    double bpd = 0;
    for (int i = 0; i < r.n; i++)
        bpd += r.bpd[i];
    double mean[2] = {r.loss, bpd / r.n};
    if (shared(t)) {
        glow_comm_reduce(t->comm, mean, 2, GLOW_REDUCE_SUM);
        mean[0] /= R;
        mean[1] /= R;
    }
    *loss_out = mean[0];
    int skipped = 0;
    double gn = NAN;
    const double lr = glow_lr_at(tc, t->p.images_seen + global, t->p.step + 1, t->run_steps, t->clock);
    if (!isfinite(mean[0])) {
        *why = "non-finite loss";
        skipped = 1;
    } else {
        if (glow_model_backward(t->m, err) != 0)
            return -1;
        if (tc->memory == MEMORY_INVERT && check_inv_error(t, iv, err) != 0)
            return -1;
        float *g = glow_model_grads(t->m);
        /* the gradient of the global batch's loss, the same bits everywhere */
        if (shared(t))
            t->comm->allreduce(t->comm, g, t->n_trained, 1);
        gn = sqrt(b->sumsq(b, g, t->n_trained));
        if (!isfinite(gn)) {
            *why = "non-finite gradient";
            skipped = 1;
        } else {
            /* torch.nn.utils.clip_grad_norm_'s rule (optim.h glow_grad_clip),
             * with the norm already at hand */
            if (tc->grad_clip > 0) {
                double coef = tc->grad_clip / (gn + 1e-6);
                if (coef < 1.0)
                    b->scale(b, g, t->n_trained, (float)coef);
            }
            glow_optim_step(t->opt, glow_model_params(t->m), g, (float)lr);
            if (t->ema)
                glow_ema_update(b, t->ema, glow_model_params(t->m), t->n_trained,
                                (float)tc->ema_decay);
        }
    }
    t->p.step++;
    t->p.images_seen += global;
    dataset_position(t->train, &t->p.data_epoch, &t->p.data_offset);
    if (t->perturb_rank == rank_of(t) && t->perturb_step == t->p.step)
        b->add_scalar(b, glow_model_params(t->m), 1, 1e-3f); /* the test hook */
    if (!skipped) {
        iv->loss += mean[0];
        iv->bpd += mean[1];
        iv->gn += gn;
        iv->n_ok++;
    }
    iv->lr = lr;
    iv->images += global;
    iv->seconds += now_seconds() - t0;
    return skipped;
}

/* Validation of the weights and, with an EMA, of their average; best.safetensors
 * goes by the EMA's bpd when there is one (the weights glow-sample --ema and
 * glow-bpd --ema use), else by the weights'. */
static int do_validate(glow_trainer *t, glow_error *err)
{
    double bpd, ema = NAN;
    if (glow_trainer_validate(t, 0, &bpd, err) != 0 ||
        (t->ema && glow_trainer_validate(t, 1, &ema, err) != 0))
        return -1;
    t->val_step = t->p.step;
    t->val_bpd = bpd;
    t->val_bpd_ema = ema;
    t->log.val_bpd = bpd;
    t->log.val_bpd_ema = ema;
    double by = t->ema ? ema : bpd;
    if (isfinite(by) && by < t->best_bpd) {
        t->best_bpd = by;
        t->best_pending = 1;
    }
    char nb[32], ne[32];
    if (t->ema) {
        glow_train_log_json(&t->log, "\"step\":%lld,\"val_bpd\":%s,\"val_bpd_ema\":%s",
                            (long long)t->p.step, glow_json_num(nb, bpd), glow_json_num(ne, ema));
        glow_train_log_msg(&t->log, 1, "step %lld: validation bpd %.4f, EMA weights %.4f%s",
                           (long long)t->p.step, bpd, ema, t->best_pending ? " (best so far)" : "");
    } else {
        glow_train_log_json(&t->log, "\"step\":%lld,\"val_bpd\":%s", (long long)t->p.step,
                            glow_json_num(nb, bpd));
        glow_train_log_msg(&t->log, 1, "step %lld: validation bpd %.4f%s", (long long)t->p.step, bpd,
                           t->best_pending ? " (best so far)" : "");
    }
    return 0;
}

static void last_checkpoint_note(const glow_trainer *t, char *buf, size_t n)
{
    if (t->last_saved_step >= 0)
        snprintf(buf, n, "the last checkpoint (step %lld) is kept in %s", (long long)t->last_saved_step,
                 t->ckpt_path);
    else
        snprintf(buf, n, "no checkpoint was written in this session");
}

/* Do all processes hold the same parameters, moments and EMA? 0, or -1 with
 * err naming the first rank that differs (the same error on every process). */
static int check_same(glow_trainer *t, const char *when, glow_error *err)
{
    if (!shared(t))
        return 0;
    backend *b = t->b;
    uint64_t h = GLOW_CHECKSUM_START;
    h = glow_dist_checksum(b, glow_model_params(t->m), t->n_trained, h);
    h = glow_dist_checksum(b, t->opt->m, t->n_trained, h);
    h = glow_dist_checksum(b, t->opt->v, t->n_trained, h);
    if (t->ema)
        h = glow_dist_checksum(b, t->ema, t->n_trained, h);
    uint64_t theirs, r0;
    int bad = glow_dist_first_differing(t->comm, h, &theirs, &r0);
    if (bad < 0)
        return 0;
    glow_errorf(err, "rank %d: the parameters differ from rank 0's %s step %lld (checksum %016" PRIx64
                     ", rank 0 %016" PRIx64 "): the processes have diverged; every process must "
                     "run the same build on the same kind of device",
                bad, when, (long long)t->p.step, theirs, r0);
    t->error_everywhere = 1;
    return -1;
}

/* Stop before the next step? A signal (its number) or the time limit (-1), on
 * any process: every process answers alike. It also reads the clock for the
 * learning rate's decay (t->clock: the fraction of the time limit spent, the
 * largest over the processes, so that they all take the same rate). */
static int stop_now(glow_trainer *t, volatile sig_atomic_t *stop)
{
    const double spent = t->time_limit > 0 ? (now_seconds() - t->session_start) / t->time_limit : 0;
    double v[3] = {(double)*stop, spent >= 1, spent};
    if (shared(t))
        glow_comm_reduce(t->comm, v, 3, GLOW_REDUCE_MAX);
    t->clock = v[2];
    return v[0] > 0 ? (int)v[0] : v[1] > 0 ? -1 : 0;
}

int glow_trainer_run(glow_trainer *t, volatile sig_atomic_t *stop, glow_error *err)
{
    const glow_train_config *tc = &t->cfg.train;
    interval iv = {0};
    int bad_in_row = 0;
    int64_t first_bad = 0;
    int64_t validated_at = -1;
    double step_time = 0; /* smoothed seconds per step, for the ETA */
    double shown_bpd = 0; /* smoothed loss for the progress line */
    int timed_out = 0;
    int sig = 0;
    t->error_everywhere = 0;
    /* The start-up's buffers are gone (the parameters built before the model, the
     * data-dependent init's activations for its larger batch, a resumed
     * checkpoint's tensors), but malloc keeps what it freed of its heap for
     * reuse, which the steps' allocations, fixed from here on, never ask for
     * again: hand it back, so that it does not count in the run's memory (config
     * B: 55 MiB of a 870 MiB run). */
    malloc_trim(0);
    if (t->perturb_rank == rank_of(t) && t->perturb_step == 0)
        t->b->add_scalar(t->b, glow_model_params(t->m), 1, 1e-3f); /* the test hook */
    if (check_same(t, "at the start, at", err) != 0)
        return 1;
    while (t->p.step < t->total_steps) {
        int why_stop = stop_now(t, stop);
        if (why_stop > 0) {
            sig = why_stop;
            break;
        }
        if (why_stop < 0) {
            timed_out = 1;
            break;
        }
        const char *why = NULL;
        double loss = NAN;
        double t0 = now_seconds();
        int rc = train_step(t, &iv, &why, &loss, err);
        if (rc < 0)
            return 1;
        double dt = now_seconds() - t0;
        step_time = step_time > 0 ? 0.9 * step_time + 0.1 * dt : dt;
        const long step = (long)t->p.step;
        if (rc == 1) {
            char nb[32];
            if (bad_in_row++ == 0)
                first_bad = step;
            glow_train_log_json(&t->log, "\"step\":%ld,\"skipped\":\"%s\",\"loss\":%s", step, why,
                                glow_json_num(nb, loss));
            glow_train_log_msg(&t->log, 0, "step %ld: %s (loss %g); step skipped", step, why, loss);
            if (bad_in_row >= t->max_bad_steps) {
                char note[600];
                last_checkpoint_note(t, note, sizeof note);
                glow_errorf(err, "%d bad steps in a row (steps %lld-%ld): training stopped; %s",
                            bad_in_row, (long long)first_bad, step, note);
                t->error_everywhere = 1;
                return 1;
            }
        } else
            bad_in_row = 0;

        if (tc->log_every > 0 && step % tc->log_every == 0) {
            glow_train_stats s = {step, t->total_steps, t->p.images_seen,
                                  iv.n_ok ? iv.loss / iv.n_ok : NAN, iv.n_ok ? iv.bpd / iv.n_ok : NAN,
                                  iv.lr, iv.n_ok ? iv.gn / iv.n_ok : NAN,
                                  iv.seconds > 0 ? iv.images / iv.seconds : 0, elapsed(t),
                                  tc->memory == MEMORY_INVERT, iv.inv_err,
                                  t->cfg.model.levels, iv.inv_level};
            glow_train_log_stats(&t->log, &s);
            memset(&iv, 0, sizeof iv);
        }
        if (isfinite(loss))
            shown_bpd = shown_bpd > 0 ? 0.9 * shown_bpd + 0.1 * loss : loss;
        glow_train_log_progress(&t->log, step, t->total_steps, shown_bpd,
                                step_time > 0 ? tc->batch_size / step_time : 0,
                                step_time * (double)(t->total_steps - step));
        if (t->val && tc->val_every > 0 && step % tc->val_every == 0) {
            if (do_validate(t, err) != 0)
                return 1;
            validated_at = step;
        }
        if (tc->sample_every > 0 && step % tc->sample_every == 0 && glow_trainer_sample(t, err) != 0)
            return 1;
        if (t->check_every > 0 && step % t->check_every == 0 && check_same(t, "at", err) != 0)
            return 1;
        /* a checkpoint when one is due, and for best.safetensors and the numbered ones */
        int due = (tc->checkpoint_every > 0 && step % tc->checkpoint_every == 0) ||
                  t->best_pending || (tc->keep_every > 0 && step % tc->keep_every == 0);
        if (due && t->p.step < t->total_steps && glow_trainer_save(t, err) < 0)
            return 1;
    }
    if (!sig) { /* a signal after the last step, or during the time-limit check */
        int why_stop = stop_now(t, stop);
        sig = why_stop > 0 ? why_stop : 0;
    }
    if (check_same(t, "at the end, at", err) != 0)
        return 1;
    if (sig) {
        int rc = glow_trainer_save(t, err);
        if (rc < 0)
            return 1;
        glow_train_log_json(&t->log, "\"step\":%lld,\"interrupted\":%d", (long long)t->p.step, sig);
        if (rc == 0)
            glow_train_log_msg(&t->log, 0, "interrupted at step %lld, checkpoint saved",
                               (long long)t->p.step);
        else {
            char note[600];
            last_checkpoint_note(t, note, sizeof note);
            glow_train_log_msg(&t->log, 0, "interrupted at step %lld; %s", (long long)t->p.step, note);
        }
        return 128 + sig;
    }
    if (t->val && validated_at != t->p.step && do_validate(t, err) != 0)
        return 1;
    if (tc->sample_every > 0 && glow_trainer_sample(t, err) != 0)
        return 1;
    int rc = glow_trainer_save(t, err);
    if (rc < 0)
        return 1;
    if (rc > 0) {
        char note[600];
        last_checkpoint_note(t, note, sizeof note);
        glow_errorf(err, "the parameters are not finite at step %lld; %s", (long long)t->p.step, note);
        t->error_everywhere = 1;
        return 1;
    }
    glow_train_log_json(&t->log, "\"step\":%lld,\"done\":true,\"seconds\":%.1f%s", (long long)t->p.step,
                        elapsed(t), timed_out ? ",\"time_limit\":true" : "");
    glow_train_log_msg(&t->log, 1, "done: step %lld, %lld images, checkpoint %s", (long long)t->p.step,
                       (long long)t->p.images_seen, t->ckpt_path);
    return 0;
}

void glow_trainer_free(glow_trainer *t)
{
    if (t->opt)
        glow_optim_free(t->opt);
    if (t->b) {
        if (t->ema)
            t->b->free(t->b, t->ema);
        if (t->swap)
            t->b->free(t->b, t->swap);
    }
    glow_model_free(t->m);
    glow_sampler_free(&t->sampler);
    if (t->ck_ready)
        glow_checkpoint_free(&t->ck);
    free(t->px);
    free(t->labels);
    free(t->run_dir);
    free(t->ckpt_path);
    glow_mem_release(t->mem);
    memset(t, 0, sizeof *t);
}

int glow_trainer_plan(const glow_run_config *cfg, int host_backend, glow_error *err)
{
    const glow_config *mc = &cfg->model;
    const glow_train_config *tc = &cfg->train;
    const int n0 = glow_train_init_batch(tc, mc);
    glow_model_mem_parts tr, init;
    const glow_memory mem = {tc->memory, tc->memory_every};
    if (glow_model_mem(mc, tc->batch_size, 1, &mem, &tr, err) != 0 ||
        glow_model_mem(mc, n0, 0, NULL, &init, err) != 0)
        return -1;
    const uint64_t D = (uint64_t)glow_config_dims(mc), P = tr.params, T = 4 * tr.trained;
    /* the model with the larger of its two batch allocations (init, training) */
    uint64_t model = glow_model_mem_total(&tr, host_backend);
    uint64_t model_init = glow_model_mem_total(&init, host_backend);
    uint64_t acts = tr.batch_host + (host_backend ? tr.batch_dev + tr.batch_dev / 4 : 0);
    if (model_init > model)
        model = model_init;
    /* optimizer moments and EMA (and its swap) on the backend; the checkpoint's
     * host tensors (the fixed parameters, and the EMA's copy of them: the trained
     * ones are written from the backend, a piece at a time); the parameters built
     * before the model; the batch */
    uint64_t state = (host_backend ? 1 : 0) * T * (tc->ema_decay > 0 ? 4 : 2);
    uint64_t host_ck = (P - T) * (tc->ema_decay > 0 ? 2 : 1) + (T < ST_FETCH_PIECE ? T : ST_FETCH_PIECE);
    uint64_t batch = (uint64_t)(tc->batch_size > n0 ? tc->batch_size : n0) * (D + 4);
    uint64_t need = glow_mem_add(glow_mem_add(model, state), glow_mem_add(host_ck + P, batch));
    char what[400], a[32], b[32], c[32];
    snprintf(what, sizeof what,
             "training this model (parameters %s, activations for a batch of %d %s, optimizer "
             "and EMA state %s)",
             glow_mem_str(P, a, sizeof a), tc->batch_size, glow_mem_str(acts, b, sizeof b),
             glow_mem_str(T * (tc->ema_decay > 0 ? 4 : 2), c, sizeof c));
    return glow_mem_check(need, what, err);
}
