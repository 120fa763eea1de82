#include "model_load.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "model_internal.h"

/* glow_checkpoint_load_weights's sink: the backend and the model once the file's
 * checks have passed, then each parameter straight into the model. */
typedef struct {
    glow_loaded_model *lm;
    const char *name;
    int use_ema;
} load_ctx;

static int load_begin(void *ctx, const glow_weights_info *info, glow_error *err)
{
    load_ctx *c = ctx;
    glow_loaded_model *lm = c->lm;
    if (c->use_ema && !info->has_ema) {
        glow_errorf(err, "%s: --ema: this checkpoint has no EMA weights (no ema.* tensors; "
                         "train with ema_decay > 0, or drop --ema to use its weights)",
                    c->name);
        return -1;
    }
    lm->b = backend_get(lm->dev.kind, lm->dev.index, err);
    if (!lm->b)
        return -1;
    lm->m = mdl_new(lm->b, &info->cfg, err);
    if (!lm->m) {
        glow_error_prefix(err, "%s", c->name);
        return -1;
    }
    lm->cfg = info->cfg;
    lm->ema = c->use_ema;
    lm->step = info->step;
    lm->images_seen = info->images_seen;
    return 0;
}

static int load_param(void *ctx, const glow_param *p, glow_error *err)
{
    load_ctx *c = ctx;
    if (mdl_set_param(c->lm->m, p, err) != 0) {
        glow_error_prefix(err, "%s", c->name);
        return -1;
    }
    return 0;
}

int glow_model_load(const char *ckpt, const char *device, int use_ema, glow_loaded_model *lm,
                    glow_error *err)
{
    memset(lm, 0, sizeof *lm);
    if (!device)
        device = "auto";
    if (glow_device_spec_check(device, err) != 0)
        return EXIT_USAGE;
    /* GPU availability first: it is cheap, and a big checkpoint is not read in
     * vain when the device is missing. */
    if (glow_device_resolve(device, &lm->dev, err) != 0)
        return EXIT_BADINPUT;

    /* The weights alone (checkpoint.h glow_checkpoint_load_weights): the checks
     * of every loader on what is used, a singular invconv or a broken permutation
     * refused rather than giving nonsense numbers later; the optimizer state and
     * an unused EMA are not read. Each tensor goes straight into the model, so
     * the weights are held once. */
    load_ctx c = {lm, strcmp(ckpt, "-") == 0 ? "standard input" : ckpt, use_ema};
    static const glow_weights_sink sink = {load_begin, load_param};
    glow_device dev = lm->dev;
    if (glow_checkpoint_load_weights(ckpt, use_ema, &sink, &c, err) != 0 ||
        mdl_params_set(lm->m, err) != 0) {
        if (lm->m && strncmp(err->msg, c.name, strlen(c.name)) != 0)
            glow_error_prefix(err, "%s", c.name);
        glow_loaded_model_free(lm);
        lm->dev = dev;
        return EXIT_BADINPUT;
    }
    return 0;
}

void glow_loaded_model_free(glow_loaded_model *lm)
{
    glow_model_free(lm->m);
    if (lm->b)
        backend_release(lm->b);
    memset(lm, 0, sizeof *lm);
}
