/* The memory budget (base/mem_budget.h): limits, reservations and their
 * messages; the model's memory computed from its config (model/model_mem.c)
 * against what the model really allocates on a counting backend; the budget
 * refusing a model, a batch and a checkpoint before they are allocated. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem_budget.h"
#include "base/rng.h"
#include "check.h"
#include "device/device.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "tiny_config.h"

/* ---- a backend that counts what it holds ---- */

static backend *cpu;
static backend counting;
static struct {
    void *p;
    size_t n;
} held[4096];
static int nheld;
static uint64_t held_bytes;

static void *count_alloc(backend *b, size_t bytes)
{
    (void)b;
    void *p = cpu->alloc(cpu, bytes);
    if (nheld < (int)(sizeof held / sizeof held[0])) {
        held[nheld].p = p;
        held[nheld++].n = bytes;
    }
    held_bytes += bytes;
    return p;
}

static void count_free(backend *b, void *p)
{
    (void)b;
    for (int i = 0; i < nheld; i++)
        if (held[i].p == p) {
            held_bytes -= held[i].n;
            held[i] = held[--nheld];
            break;
        }
    cpu->free(cpu, p);
}

static void test_budget(void)
{
    glow_error err;
    CHECK(glow_mem_available() > 0);
    glow_mem_set_limit(10 << 20);
    CHECK(glow_mem_limit() == 10u << 20 || glow_mem_limit() == glow_mem_available());
    uint64_t base = glow_mem_reserved();
    CHECK(glow_mem_reserve(4 << 20, "four", &err) == 0);
    CHECK(glow_mem_reserved() == base + (4 << 20));
    CHECK(glow_mem_check(7 << 20, "seven", &err) == -1);
    CHECKF(strstr(err.msg, "seven would take 7.0 MiB of memory, over the limit of 10.0 MiB "
                           "(--mem-limit 10), of which 4.0 MiB is in use; raise it with "
                           "--mem-limit MiB") != NULL, "%s", err.msg);
    CHECK(glow_mem_check_after(7 << 20, 4 << 20, "seven", &err) == 0);
    CHECK(glow_mem_reserve(7 << 20, "seven", &err) == -1);
    CHECK(glow_mem_reserved() == base + (4 << 20)); /* a refusal reserves nothing */
    CHECK(glow_mem_reserve(UINT64_MAX, "all", &err) == -1 &&
          strstr(err.msg, "more than 16 EiB"));
    glow_mem_release(4 << 20);
    CHECK(glow_mem_reserved() == base);
    glow_mem_release(1 << 30); /* never below zero */
    CHECK(glow_mem_reserved() == 0);
    char b[32];
    CHECK(strcmp(glow_mem_str(512, b, sizeof b), "512 B") == 0);
    CHECK(strcmp(glow_mem_str(3 << 10, b, sizeof b), "3.0 KiB") == 0);
    CHECK(strcmp(glow_mem_str(5ull << 30, b, sizeof b), "5.0 GiB") == 0);
    CHECK(glow_mem_mul(1ull << 40, 1ull << 40) == UINT64_MAX && glow_mem_mul(3, 4) == 12);
    CHECK(glow_mem_add(UINT64_MAX - 1, 2) == UINT64_MAX && glow_mem_add(1, 2) == 3);
    /* a tool's default applies when it is below half the memory available */
    glow_mem_set_limit(0);
    glow_mem_set_default(1 << 20);
    CHECK(glow_mem_limit() <= 1u << 20);
    CHECK(glow_mem_reserve(2 << 20, "two", &err) == -1 && strstr(err.msg, "this tool's default"));
    glow_mem_set_default(0);
    uint64_t avail = glow_mem_available();
    CHECK(avail == UINT64_MAX || glow_mem_limit() == avail / 2);
}

static const char *const plan_names[] = {"store", "recompute", "invert"};

/* The model's buffers as model_mem.c counts them, and as the model allocates them:
 * after construction, after the pass (a training forward under the plan mem, or
 * an evaluation), and with train after the backward pass (the gradients). Returns
 * the bytes of the batch's buffers the model allocated. */
static uint64_t check_model_mem(const glow_config *c, int n, int train, const glow_memory *mem)
{
    glow_error err;
    glow_paramset ps;
    CHECK(glow_paramset_layout(c, &ps, &err) == 0);
    glow_params_init(c, &ps, 3);
    glow_paramset_count pc;
    CHECK(glow_paramset_size(c, &pc, &err) == 0);
    uint64_t values = 0;
    for (int i = 0; i < ps.n; i++)
        values += ps.v[i].count;
    CHECK(pc.values == values && pc.tensors == (uint64_t)ps.n &&
          pc.trained == glow_paramset_trained_count(&ps));

    glow_model_mem_parts mp;
    CHECK(glow_model_mem(c, n, train, mem, &mp, &err) == 0);
    CHECK(mp.params == 4 * values);
    CHECK(mp.grads_dev == (train ? 4 * pc.trained : 0));
    uint64_t before = held_bytes;
    glow_model *m = glow_model_new(&counting, c, &ps, &err);
    CHECKF(m != NULL, "%s", err.msg);
    if (!m) {
        glow_paramset_free(&ps);
        return 0;
    }
    if (mem)
        glow_model_set_memory(m, mem);
    const char *plan = train ? plan_names[mem ? mem->mode : 0] : "eval";
    CHECKF(held_bytes - before == mp.fixed_dev, "fixed: %llu allocated, %llu counted",
           (unsigned long long)(held_bytes - before), (unsigned long long)mp.fixed_dev);
    const size_t D = (size_t)glow_config_dims(c);
    uint8_t *img = calloc((size_t)n, D);
    int32_t *lab = calloc((size_t)n, sizeof *lab);
    glow_batch bt = {n, img, NULL, 1, 0, c->y_condition ? lab : NULL};
    glow_result r;
    int rc = train ? glow_model_forward(m, &bt, &r, &err) : glow_model_eval(m, &bt, &r, &err);
    CHECKF(rc == 0, "%s", err.msg);
    const uint64_t batch = held_bytes - before - mp.fixed_dev;
    CHECKF(batch == mp.batch_dev, "batch %d %s (every %d): %llu allocated, %llu counted", n, plan,
           mem ? mem->every : 0, (unsigned long long)batch, (unsigned long long)mp.batch_dev);
    if (train) {
        CHECKF(glow_model_backward(m, &err) == 0, "%s", err.msg);
        CHECKF(held_bytes - before == mp.fixed_dev + mp.batch_dev + mp.grads_dev,
               "gradients: %llu allocated, %llu counted",
               (unsigned long long)(held_bytes - before - mp.fixed_dev - mp.batch_dev),
               (unsigned long long)mp.grads_dev);
    }
    /* the budget holds what the model holds (the CPU backend's memory is host memory) */
    CHECK(glow_mem_reserved() >= glow_model_mem_total(&mp, 1));
    glow_model_free(m);
    CHECK(held_bytes == before);
    free(img);
    free(lab);
    glow_paramset_free(&ps);
    return batch;
}

static void test_model_mem(void)
{
    glow_mem_set_limit(0);
    for (int v = 0; v < 12; v++) {
        glow_config c = tiny_config(.channels = v % 2 ? 3 : 1, .levels = v % 3 == 0 ? 3 : 2,
                                    .steps = v % 4 == 1 ? 1 : 3, .width = 5 + v);
        c.coupling = v % 2 ? COUPLING_ADDITIVE : COUPLING_AFFINE;
        c.permutation = v % 4 < 2 ? PERM_INVCONV : v % 4 == 2 ? PERM_SHUFFLE : PERM_REVERSE;
        c.lu = v % 4 == 1;
        c.edge_bias = v % 3 != 2;
        c.y_condition = v % 5 == 0;
        c.n_classes = c.y_condition ? 4 : 0;
        check_model_mem(&c, 1 + v, 0, NULL);
        /* every plan, invert with and without kept step inputs */
        for (int p = 0; p < 4; p++) {
            glow_memory mem = {p < 3 ? (glow_memory_mode)p : MEMORY_INVERT, p == 3 ? 1 + v % 3 : 0};
            check_model_mem(&c, 1 + v, 1, &mem);
        }
    }
    CHECK(glow_mem_reserved() == 0);
}

/* The activation bytes a training batch allocates, through the backend, for K = 4
 * and K = 32: invert's do not grow with K (every = 0), store's and recompute's
 * do, and invert with every = 4 keeps 7 more step inputs per level at K = 32. */
static void test_depth(void)
{
    glow_mem_set_limit(0);
    uint64_t bytes[4][2];
    for (int p = 0; p < 4; p++)
        for (int i = 0; i < 2; i++) {
            glow_config c = tiny_config(.image_h = 16, .image_w = 16, .channels = 3, .levels = 2,
                                        .steps = i ? 32 : 4, .width = 16);
            glow_memory mem = {p < 3 ? (glow_memory_mode)p : MEMORY_INVERT, p == 3 ? 4 : 0};
            bytes[p][i] = check_model_mem(&c, 4, 1, &mem);
        }
    printf("activation bytes of a batch of 4 (3x16x16, L=2, width 16), K=4 -> K=32: store %llu -> "
           "%llu, recompute %llu -> %llu, invert %llu -> %llu, invert every 4 %llu -> %llu\n",
           (unsigned long long)bytes[0][0], (unsigned long long)bytes[0][1],
           (unsigned long long)bytes[1][0], (unsigned long long)bytes[1][1],
           (unsigned long long)bytes[2][0], (unsigned long long)bytes[2][1],
           (unsigned long long)bytes[3][0], (unsigned long long)bytes[3][1]);
    CHECKF(bytes[2][1] == bytes[2][0], "invert: %llu bytes at K=4, %llu at K=32",
           (unsigned long long)bytes[2][0], (unsigned long long)bytes[2][1]);
    CHECK(bytes[0][1] > 4 * bytes[0][0] && bytes[1][1] > 2 * bytes[1][0]);
    CHECK(bytes[1][1] < bytes[0][1] / 4 && bytes[2][0] < bytes[1][0]);
    /* evaluation and the inverse pass (glow-bpd, glow-encode, glow-sample): two
     * ping-pong outputs per level, nothing that grows with K either */
    uint64_t ev[2];
    for (int i = 0; i < 2; i++) {
        glow_config c = tiny_config(.image_h = 16, .image_w = 16, .channels = 3, .levels = 2,
                                    .steps = i ? 32 : 4, .width = 16);
        ev[i] = check_model_mem(&c, 4, 0, NULL);
    }
    CHECKF(ev[0] == ev[1] && ev[0] < bytes[2][0], "eval: %llu bytes at K=4, %llu at K=32",
           (unsigned long long)ev[0], (unsigned long long)ev[1]);
    /* level l's output is n * D / 2^l floats (D = 768): 7 more per level at K = 32 */
    CHECK(bytes[3][1] - bytes[3][0] == 7 * 4 * 4 * 768 * (1 + 1 / 2.0));
    CHECK(glow_mem_reserved() == 0);
}

/* Refused before allocation: a model, a batch, a checkpoint whose config claims
 * far more than its tensors. */
static void test_refusals(void)
{
    glow_error err;
    glow_config big = tiny_config(.image_h = 4096, .image_w = 4096, .channels = 3, .levels = 3,
                                  .steps = 1024, .width = 16384);
    glow_model_mem_parts mp;
    CHECK(glow_model_mem(&big, 64, 1, NULL, &mp, &err) == 0);
    CHECK(mp.params > (1ull << 40)); /* terabytes of parameters */
    glow_mem_set_limit(64 << 20);
    glow_paramset none = {NULL, 0};
    CHECK(glow_model_new(&counting, &big, &none, &err) == NULL);
    CHECKF(strstr(err.msg, "the model (parameters, gradients) would take") &&
               strstr(err.msg, "--mem-limit 64"), "%s", err.msg);
    CHECK(glow_mem_reserved() == 0 && held_bytes == 0);

    /* a tiny model, a batch too large for the limit */
    glow_config c = tiny_config();
    glow_paramset ps;
    CHECK(glow_paramset_layout(&c, &ps, &err) == 0);
    glow_params_init(&c, &ps, 1);
    glow_model *m = glow_model_new(&counting, &c, &ps, &err);
    CHECKF(m != NULL, "%s", err.msg);
    CHECK(glow_model_plan_batch(m, 1 << 20, 1, &err) == -1);
    CHECKF(strstr(err.msg, "activations for a batch of 1048576 images (training) would take"),
           "%s", err.msg);
    CHECK(glow_model_plan_batch(m, 8, 1, &err) == 0);
    uint8_t img[64 * 2] = {0};
    glow_batch bt = {2, img, NULL, 1, 0, NULL};
    glow_result r;
    bt.n = 1 << 20; /* refused by the pass itself, before its buffers */
    CHECK(glow_model_forward(m, &bt, &r, &err) == -1 && strstr(err.msg, "would take"));
    glow_model_free(m);

    /* a checkpoint of the tiny model whose metadata claims the big one */
    glow_checkpoint ck;
    CHECK(glow_checkpoint_init(&ck, &c, &err) == 0);
    glow_params_init(&c, &ck.params, 1);
    char path[] = "/tmp/test_mem_budget.XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    CHECK(glow_checkpoint_save(path, &ck, &err) == 0);
    glow_checkpoint_free(&ck);
    st_file f;
    glow_mem_set_limit(0);
    CHECK(st_load(path, &f, &err) == 0);
    st_writer *w = st_writer_new();
    char *model = glow_config_to_json(&big);
    for (int i = 0; i < f.n_meta; i++)
        st_writer_meta(w, f.meta_keys[i],
                       strcmp(f.meta_keys[i], "model") ? f.meta_vals[i] : model);
    for (int i = 0; i < f.n; i++)
        st_writer_add(w, f.t[i].name, f.t[i].dtype, f.t[i].ndim, f.t[i].shape, f.t[i].data);
    CHECK(st_writer_commit(w, path, &err) == 0);
    free(model);
    st_free(&f);
    CHECK(glow_mem_reserved() == 0);
    CHECK(glow_checkpoint_load(path, &ck, &err) == -1);
    CHECKF(strstr(err.msg, "metadata 'model': the model has") &&
               strstr(err.msg, "more than the file's tensors hold"), "%s", err.msg);
    CHECK(glow_mem_reserved() == 0);
    unlink(path);
    glow_paramset_free(&ps);
}

int main(void)
{
    glow_error err;
    cpu = backend_get(DEVICE_CPU, 0, &err);
    if (!cpu) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    counting = *cpu;
    counting.alloc = count_alloc;
    counting.free = count_free;
    test_budget();
    test_model_mem();
    test_depth();
    test_refusals();
    backend_release(cpu);
    return check_summary();
}
