/* Configuration files (YAML, docs/configs.md) and command-line overrides.
 *
 * A file has the top-level keys `name`, `description`, `model` (the keys of spec
 * section 1) and `train` (train_config.h). One table of keys, each with its type,
 * range and place in glow_run_config, serves the YAML reader, the KEY=VALUE
 * overrides (`--set train.lr=1e-4`), the YAML writer, the train section's JSON
 * (train_config.h) and the range checks, so they cannot disagree on a key.
 *
 * Errors name the file and line: "configs/x.yml: line 7: unknown key 'widht' in
 * model (did you mean 'width'?)". */
#ifndef GLOW_YAML_CONFIG_H
#define GLOW_YAML_CONFIG_H

#include <stddef.h>

#include "base/util.h"
#include "run_config.h"

/* Read a YAML file into cfg, starting from the defaults. Checks syntax, keys,
 * types, per-key ranges, duplicates, the presence of model.image_size and that
 * train sets at most one of steps and epochs; not the cross-key rules (call
 * glow_run_config_validate after any overrides). Returns 0 or -1 with err set. */
int glow_run_config_parse_file(const char *path, glow_run_config *cfg, glow_error *err);
/* The same for a file whose model section may be missing (the train section of
 * a fine-tuning, whose model is its checkpoint's): *has_model says whether the
 * file had one (without, cfg->model keeps the defaults). */
int glow_run_config_parse_file_opt(const char *path, glow_run_config *cfg, int *has_model,
                                   glow_error *err);
/* The same for text in memory; `name` stands for the file in messages. */
int glow_run_config_parse_string(const char *text, size_t len, const char *name,
                                 glow_run_config *cfg, glow_error *err);

/* Apply one "section.key=value" override ("train.lr=0.001", "model.image_size=[64,
 * 48]", "name=run7"). The value is read as YAML, so it is typed exactly as in a
 * file; string keys take the text as it is. Setting train.steps clears
 * train.epochs and the other way round: the command line picks the run length.
 * Returns 0 or -1 with err set (the message names the key, not "--set"). */
int config_set_override(glow_run_config *cfg, const char *key_eq_value, glow_error *err);

/* parse_file, then each override in order, then validate. On error the message
 * starts with the file name, or with "--set KEY=VALUE" for a bad override. */
int glow_run_config_load(const char *path, const char *const *overrides, int n_overrides,
                         glow_run_config *cfg, glow_error *err);

/* The whole config as a YAML document with every key written out, readable by
 * glow_run_config_parse_string to an equal config (caller frees). */
char *glow_run_config_to_yaml(const glow_run_config *cfg);

#endif
