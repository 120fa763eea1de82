/* A trained model ready to use, for the tools that read checkpoints (glow-sample,
 * glow-bpd, ...): resolve --device, get its backend, load and check the checkpoint,
 * and build the glow_model from its weights or from its EMA weights. */
#ifndef GLOW_MODEL_LOAD_H
#define GLOW_MODEL_LOAD_H

#include <stdint.h>

#include "backend/backend.h"
#include "config/glow_config.h"
#include "device/device.h"
#include "model.h"

typedef struct {
    glow_device dev;
    backend *b;
    glow_model *m;
    glow_config cfg;
    int ema;                    /* built from the EMA weights */
    int64_t step, images_seen;  /* from the checkpoint's metadata */
} glow_loaded_model;

/* Load CKPT ("-": standard input) onto the device `device` (NULL: "auto"); with
 * use_ema, the checkpoint's ema.* weights (an error when it has none). Returns 0,
 * or the exit code for the error in err: EXIT_USAGE for a malformed --device
 * value, EXIT_BADINPUT otherwise (unreadable or invalid checkpoint, no EMA, no
 * usable GPU). Messages name the file. */
int glow_model_load(const char *ckpt, const char *device, int use_ema, glow_loaded_model *lm,
                    glow_error *err);
void glow_loaded_model_free(glow_loaded_model *lm);

#endif
