/* Throughput of one config's model on a device, in each precision: training
 * (forward, backward, gradient norm, Adam step) and evaluation (forward without
 * keeping activations) images/s on random images, after warm-up steps that build
 * the convolution plans. scripts/gpu-check.sh runs it on the GPU machine.
 * Usage: gpu_bench CONFIG BATCH [--device D] [--warmup N] [--iters N]
 *                  [--precision fp32,tf32,bf16]
 * One line per precision on stdout:
 *   RESULT config=NAME batch=B precision=P train_ips=X eval_ips=Y loss=L */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "config/yaml_config.h"
#include "device/device.h"
#include "model/model.h"
#include "tool/tool.h"
#include "train/optim.h"

#ifndef GLOW_HAVE_CUDA
#define GLOW_HAVE_CUDA 0
#endif
#if GLOW_HAVE_CUDA
#include "cuda/cuda_device.h"
size_t cudnnGetVersion(void); /* cudnn.h, which a C file here does not include */
#endif

static void usage(void)
{
    fprintf(stderr, "usage: gpu_bench CONFIG BATCH [--device D] [--warmup N] [--iters N] "
                    "[--precision fp32,tf32,bf16]\n"
                    "       gpu_bench --query [--device D]\n");
    exit(EXIT_USAGE);
}

/* The device, its backend and one round trip through its memory. */
static int query(const char *device)
{
    glow_error err;
    glow_device dev;
    if (glow_device_resolve(device, &dev, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    char devname[32], name[160] = "cpu";
    glow_device_str(&dev, devname, sizeof devname);
#if GLOW_HAVE_CUDA
    if (dev.kind == DEVICE_CUDA && glow_cuda_device_name(dev.index, name, sizeof name))
        snprintf(name, sizeof name, "?");
#endif
    backend *b = backend_get(dev.kind, dev.index, &err);
    if (!b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const size_t n = 1 << 20;
    float *a = b->alloc(b, n * sizeof *a), *c = b->alloc(b, n * sizeof *c);
    float *h = xmalloc(n * sizeof *h);
    b->fill(b, a, 0.5f, n);
    b->copy(b, c, a, n * sizeof *a);
    b->download(b, h, c, n * sizeof *h);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += h[i] != 0.5f;
    printf("QUERY device=%s name=\"%s\"", devname, name);
#if GLOW_HAVE_CUDA
    if (dev.kind == DEVICE_CUDA)
        printf(" cudnn=%zu", cudnnGetVersion());
#endif
    printf(" roundtrip=%s\n", bad ? "FAILED" : "ok");
    if (bad)
        fprintf(stderr, "gpu_bench: %zu of %zu floats wrong after fill, copy and download\n", bad, n);
    b->free(b, a);
    b->free(b, c);
    free(h);
    backend_release(b);
    return bad ? EXIT_BADINPUT : 0;
}

static int parse_prec(const char *s, glow_precision *p)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, glow_precision_name((glow_precision)i)) == 0) {
            *p = (glow_precision)i;
            return 0;
        }
    return -1;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP); /* OpenMP waiting as the tools choose it */
    if (argc >= 2 && strcmp(argv[1], "--query") == 0) {
        if (argc == 2)
            return query("cuda");
        if (argc == 4 && strcmp(argv[2], "--device") == 0)
            return query(argv[3]);
        usage();
    }
    if (argc < 3)
        usage();
    const char *cfg_path = argv[1], *device = "cuda", *precs = "fp32,tf32,bf16";
    int batch = atoi(argv[2]), warmup = 3, iters = 10;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--device") == 0)
            device = argv[++i];
        else if (strcmp(argv[i], "--warmup") == 0)
            warmup = atoi(argv[++i]);
        else if (strcmp(argv[i], "--iters") == 0)
            iters = atoi(argv[++i]);
        else if (strcmp(argv[i], "--precision") == 0)
            precs = argv[++i];
        else
            usage();
    }
    if (batch < 1 || warmup < 0 || iters < 1)
        usage();

    glow_error err;
    glow_run_config rc;
    if (glow_run_config_load(cfg_path, NULL, 0, &rc, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_device dev;
    if (glow_device_resolve(device, &dev, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    backend *b = backend_get(dev.kind, dev.index, &err);
    if (!b)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const glow_config *c = &rc.model;
    glow_paramset ps;
    if (glow_paramset_layout(c, &ps, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    glow_params_init(c, &ps, 1);
    glow_model *m = glow_model_new(b, c, &ps, &err);
    if (!m)
        glow_die(EXIT_BADINPUT, "%s", err.msg);

    const size_t D = (size_t)glow_config_dims(c);
    uint8_t *img = xmalloc((size_t)batch * D);
    int32_t *lab = xcalloc((size_t)batch, sizeof *lab);
    glow_rng r = rng_make(7, RNG_STREAM_TEST);
    for (size_t i = 0; i < (size_t)batch * D; i++)
        img[i] = (uint8_t)rng_next_below(&r, 256);
    glow_batch bt = {batch, img, NULL, 3, 0, c->y_condition ? lab : NULL};
    glow_result res;
    if (glow_model_ddi(m, &bt, &res, &err))
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    const size_t nt = glow_model_n_trained(m);
    glow_optim *o = glow_optim_new(b, OPTIM_ADAM, nt);

    char *list = xstrdup(precs), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        glow_precision p;
        if (parse_prec(tok, &p))
            usage();
        if (b->set_precision(b, p, &err)) {
            fprintf(stderr, "gpu_bench: %s\n", err.msg);
            printf("RESULT config=%s batch=%d precision=%s error=unsupported\n", rc.name, batch, tok);
            fflush(stdout);
            continue;
        }
        double loss = 0;
        /* training: a tiny learning rate keeps the model where it is across precisions */
        for (int i = 0; i < warmup + iters; i++) {
            if (i == warmup)
                loss = now_seconds();
            if (glow_model_forward(m, &bt, &res, &err) || glow_model_backward(m, &err))
                glow_die(EXIT_BADINPUT, "%s", err.msg);
            glow_grad_norm(b, glow_model_grads(m), nt); /* waits for the device */
            glow_optim_step(o, glow_model_params(m), glow_model_grads(m), 1e-7f);
        }
        glow_grad_norm(b, glow_model_grads(m), nt);
        double train_s = now_seconds() - loss;
        for (int i = 0; i < warmup + iters; i++) {
            if (i == warmup)
                loss = now_seconds();
            if (glow_model_eval(m, &bt, &res, &err)) /* results come back: synchronous */
                glow_die(EXIT_BADINPUT, "%s", err.msg);
        }
        double eval_s = now_seconds() - loss;
        printf("RESULT config=%s batch=%d precision=%s train_ips=%.1f eval_ips=%.1f loss=%.4f\n",
               rc.name, batch, tok, iters * batch / train_s, iters * batch / eval_s, res.loss);
        fflush(stdout);
    }
    free(list);
    glow_optim_free(o);
    glow_model_free(m);
    glow_paramset_free(&ps);
    free(img);
    free(lab);
    backend_release(b);
    return 0;
}
