/* Everything one training run is configured by: the model (glow_config.h) and how it
 * is trained (train_config.h), with the range checks and the train section's JSON
 * form, all driven by the one table of keys (config_keys.h). */
#ifndef GLOW_RUN_CONFIG_H
#define GLOW_RUN_CONFIG_H

#include "base/util.h"
#include "glow_config.h"
#include "train_config.h"

/* Everything one training run is configured by. */
typedef struct {
    char name[128];         /* short run name, for logs and checkpoint metadata */
    char description[1024]; /* free text */
    glow_config model;      /* what is trained: stored with every checkpoint */
    glow_train_config train;/* how it is trained */
} glow_run_config;

/* Spec defaults for the model (image size unset), train defaults, empty name. */
void glow_run_config_default(glow_run_config *cfg);

/* glow_config_validate plus the train rules (ranges, exactly one of steps and
 * epochs). The model's messages get the prefix "model.", the train's "train.". */
int glow_run_config_validate(const glow_run_config *cfg, glow_error *err);

/* Ranges of every key and exactly one of steps and epochs. Returns 0 or -1 with
 * err naming the key ("train.lr: must be > 0, got -1"). */
int glow_train_config_validate(const glow_train_config *t, glow_error *err);

/* The train section as one JSON object (for checkpoint metadata; the seed is a
 * decimal string because JSON numbers lose precision above 2^53, other numbers
 * are written in full precision). Caller frees. */
char *glow_train_config_to_json(const glow_train_config *t);
/* Back from that JSON: missing keys take the defaults, unknown keys and wrong
 * types are errors naming the key; the result is validated. */
int glow_train_config_from_json(const char *json, glow_train_config *t, glow_error *err);

#endif
