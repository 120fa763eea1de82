#include "model_load.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"

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

    /* The checks of every loader (glow_checkpoint_load: glow-ckpt --verify's):
     * a singular invconv or a broken permutation would give nonsense numbers
     * rather than an error later. */
    glow_checkpoint ck;
    if (glow_checkpoint_load(ckpt, &ck, err) != 0)
        return EXIT_BADINPUT;
    const char *name = strcmp(ckpt, "-") == 0 ? "standard input" : ckpt;
    if (use_ema && !ck.has_ema) {
        glow_errorf(err, "%s: --ema: this checkpoint has no EMA weights (no ema.* tensors; "
                         "train with ema_decay > 0, or drop --ema to use its weights)",
                    name);
        glow_checkpoint_free(&ck);
        return EXIT_BADINPUT;
    }
    lm->b = backend_get(lm->dev.kind, lm->dev.index, err);
    if (!lm->b) {
        glow_checkpoint_free(&ck);
        return EXIT_BADINPUT;
    }
    lm->m = glow_model_new(lm->b, &ck.cfg, use_ema ? &ck.ema : &ck.params, err);
    if (!lm->m) {
        glow_error_prefix(err, "%s", name);
        glow_checkpoint_free(&ck);
        backend_release(lm->b);
        lm->b = NULL;
        return EXIT_BADINPUT;
    }
    lm->cfg = ck.cfg;
    lm->ema = use_ema;
    lm->step = ck.step;
    lm->images_seen = ck.images_seen;
    glow_checkpoint_free(&ck);
    return 0;
}

void glow_loaded_model_free(glow_loaded_model *lm)
{
    glow_model_free(lm->m);
    backend_release(lm->b);
    memset(lm, 0, sizeof *lm);
}
