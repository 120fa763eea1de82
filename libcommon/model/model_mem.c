/* The memory of a model, computed from its config before anything is allocated:
 * what glow_model_new keeps for the model's life and what mdl_ensure_batch
 * allocates for a batch size (model.c; the two must change together, and
 * test/unit/test_mem_budget.c compares them with a counting backend). The model
 * reserves these bytes in the memory budget (base/mem_budget.h) as it
 * allocates them. */
#include <string.h>

#include "base/mem_budget.h"
#include "model_internal.h"

#define F 4u /* bytes of a float */

int mdl_host_backend(const backend *b) { return strcmp(b->name, "cpu") == 0; }

static uint64_t fixed_bytes(const glow_config *c, const glow_paramset_count *pc, uint64_t *dev)
{
    uint64_t host = 0, d = 0, maxc = 0;
    /* the layout with a host copy of the fixed parameters, the flat params (the
     * gradients come with the first backward pass: grads_dev) */
    host += 4 * (pc->values - pc->trained) + 8 * pc->tensors + 64 * pc->tensors;
    d += F * pc->trained;
    uint64_t np = 0, nm = 0; /* invconv.c: packed parameters, matrices of all steps */
    for (int l = 0; l < c->levels; l++) {
        uint64_t C = (uint64_t)glow_level_channels(c, l), CC = C * C;
        if (C > maxc)
            maxc = C;
        for (int k = 0; k < c->steps; k++) {
            host += sizeof(mdl_step);
            if (c->permutation == PERM_INVCONV) {
                host += 2 * 8 * CC; /* W, Winv */
                np += c->lu ? 2 * CC + C : CC;
                nm += CC;
            } else
                d += 2 * 4 * C;     /* perm, iperm */
        }
        host += sizeof(mdl_level);
    }
    host += 6 * 8 * maxc * maxc; /* hW */
    if (c->permutation == PERM_INVCONV) {
        const uint64_t mats = (c->lu ? 2 : 1) * nm; /* [LU products] W^-1 */
        d += F * (np + mats + nm);                  /* inv_pack, inv_mats, inv_dW */
        host += F * (2 * np + mats + nm);           /* h_pack, h_prev, h_mats, h_dW */
    }
    *dev = d;
    return host;
}

/* The outputs a level keeps, as mdl_ensure_batch allocates them: store and
 * recompute one per step; invert the level's output, every kept step input and two
 * ping-pong buffers; evaluation two ping-pong buffers (one with K = 1). */
static uint64_t level_outputs(int K, int train, const glow_memory *mem)
{
    if (!train)
        return K < 2 ? 1 : 2;
    if (mem->mode != MEMORY_INVERT)
        return (uint64_t)K;
    uint64_t outs = 2;
    for (int k = 0; k < K; k++)
        outs += k == K - 1 || mdl_kept_input(k + 1, mem->every);
    return outs;
}

static uint64_t batch_bytes(const glow_config *c, uint64_t n, int train, const glow_memory *mem,
                            uint64_t *dev)
{
    const uint64_t D = (uint64_t)glow_config_dims(c), Wd = (uint64_t)c->width;
    const int L = c->levels, K = c->steps;
    const int per_step = train && mem->mode == MEMORY_STORE;
    uint64_t d = n * D + 2 * F * n * D + 4 * n; /* img, noise, x, labels */
    uint64_t maxpc = 0, maxpw = 0, maxph = 0;
    for (int l = 0; l < L; l++) {
        const uint64_t C = (uint64_t)glow_level_channels(c, l);
        const uint64_t Cout = c->coupling == COUPLING_AFFINE ? C : C / 2;
        const uint64_t P = n * (uint64_t)glow_level_h(c, l) * (uint64_t)glow_level_w(c, l);
        d += F * P * C; /* lin */
        if (per_step) /* an_out, pm, z1, a1, a2, h of every step */
            d += (uint64_t)K * F * (P * C + P * C + P * C / 2 + 2 * P * Wd + P * Cout);
        d += level_outputs(K, train, mem) * F * P * C;
        if (l < L - 1)
            d += F * (P * C / 2 + P * C);
        if (P * C > maxpc)
            maxpc = P * C;
        if (P * Wd > maxpw)
            maxpw = P * Wd;
        if (P * Cout > maxph)
            maxph = P * Cout;
    }
    if (!per_step) /* the one set every step shares, sized for the largest level */
        d += F * (2 * maxpc + maxpc / 2 + 2 * maxpw + maxph);
    const uint64_t Ct = (uint64_t)glow_level_channels(c, L - 1);
    const uint64_t Pt = n * (uint64_t)glow_level_h(c, L - 1) * (uint64_t)glow_level_w(c, L - 1);
    if (2 * Pt * Ct > maxpc)
        maxpc = 2 * Pt * Ct;
    d += 3 * F * Pt * 2 * Ct + 3 * F * n;
    d += 3 * F * maxpc;                             /* g_cur, g_tmp, g_h */
    if (train)
        d += F * maxpc + 2 * F * maxpw;             /* g_z1, g_a1, g_a2 */
    *dev = d;
    return 4 * F * n; /* h_bpd, h_logdet, h_logp, h_ce */
}

static const glow_memory store_plan = {MEMORY_STORE, 0};

int glow_model_mem(const glow_config *c, int batch, int train, const glow_memory *mem,
                   glow_model_mem_parts *out, glow_error *err)
{
    memset(out, 0, sizeof *out);
    glow_paramset_count pc;
    if (glow_paramset_size(c, &pc, err) != 0)
        return -1;
    out->params = 4 * pc.values;
    out->trained = pc.trained;
    out->fixed_host = fixed_bytes(c, &pc, &out->fixed_dev);
    if (train)
        out->grads_dev = F * pc.trained;
    glow_memory plan = mem ? *mem : store_plan;
    if (plan.mode != MEMORY_INVERT || plan.every < 0)
        plan.every = 0;
    if (batch > 0)
        out->batch_host = batch_bytes(c, (uint64_t)batch, train, &plan, &out->batch_dev);
    return 0;
}

/* The CPU backend's own memory next to a batch's buffers: oneDNN scratchpads,
 * reordered weights and the per-chunk partial filter gradients (cpu/cpu_conv.c),
 * measured at 15% of the buffers for the tiny model at a batch of 2^20 images;
 * a quarter is allowed. */
static uint64_t workspace(uint64_t batch_dev) { return batch_dev / 4; }

uint64_t glow_model_mem_total(const glow_model_mem_parts *p, int device_counts)
{
    return p->fixed_host + p->batch_host +
           (device_counts ? p->fixed_dev + p->grads_dev + p->batch_dev + workspace(p->batch_dev)
                          : 0);
}

/* The bytes of the batch buffers of n images, host and (when it is host memory)
 * the backend's: a training allocation under plan, or an evaluation one. */
static uint64_t model_batch_need(const glow_model *m, int n, int train, const glow_memory *plan)
{
    uint64_t dev, host = batch_bytes(&m->cfg, (uint64_t)n, train, plan, &dev);
    return host + (mdl_host_backend(m->b) ? dev + workspace(dev) : 0);
}

int glow_model_plan_batch(glow_model *m, int n, int train, glow_error *err)
{
    if (n == m->n && (m->train || !train) &&
        (!train || (m->buf_mem.mode == m->mem.mode && m->buf_mem.every == m->mem.every)))
        return 0;
    uint64_t need = model_batch_need(m, n, train, &m->mem);
    /* a training pass allocates the gradients too, the first time */
    if (train && !m->grads && mdl_host_backend(m->b))
        need = glow_mem_add(need, F * (uint64_t)m->n_trained);
    char what[160];
    snprintf(what, sizeof what, "the model's activations for a batch of %d image%s%s", n,
             n == 1 ? "" : "s", train ? " (training)" : "");
    /* the buffers of the batch size before are freed first */
    return glow_mem_check_after(need, m->mem_batch, what, err);
}

void mdl_reserve_batch(glow_model *m, int n, int train)
{
    glow_mem_release(m->mem_batch);
    m->mem_batch = 0;
    uint64_t need = model_batch_need(m, n, train, &m->buf_mem);
    glow_error err;
    char what[160];
    snprintf(what, sizeof what, "the model's activations for a batch of %d image%s%s", n,
             n == 1 ? "" : "s", train ? " (training)" : "");
    if (glow_mem_reserve(need, what, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    m->mem_batch = need;
}

void mdl_reserve_grads(glow_model *m)
{
    uint64_t need = mdl_host_backend(m->b) ? F * (uint64_t)m->n_trained : 0;
    glow_error err;
    if (glow_mem_reserve(need, "the model's gradients", &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    m->mem_grads = need;
}

int mdl_reserve_fixed(glow_model *m, glow_error *err)
{
    glow_model_mem_parts p;
    if (glow_model_mem(&m->cfg, 0, 0, NULL, &p, err) != 0)
        return -1;
    uint64_t need = p.fixed_host + (mdl_host_backend(m->b) ? p.fixed_dev : 0);
    if (glow_mem_reserve(need, "the model (parameters, gradients)", err) != 0)
        return -1;
    m->mem_fixed = need;
    return 0;
}

void mdl_release_mem(glow_model *m)
{
    glow_mem_release(m->mem_fixed + m->mem_batch + m->mem_grads);
    m->mem_fixed = m->mem_batch = m->mem_grads = 0;
}
