/* A run directory of glow-train: config.yml (the effective config),
 * checkpoint.safetensors and log.jsonl (train_log.h). */
#ifndef GLOW_RUN_DIR_H
#define GLOW_RUN_DIR_H

#include "config/run_config.h"

/* Where a run starts from and where it goes. With resume (a run directory or a
 * checkpoint file): its checkpoint, and the run directory out, else resume's
 * own directory. Without: the checkpoint init (NULL: none) and out. Caller
 * frees both. */
void glow_run_dir_paths(const char *resume, const char *out, const char *init, char **ck_path,
                        char **run_dir);

/* Create dir (and its parents), remove the temporary files of writers no longer
 * running (glow_run_dir_remove_stale), and write dir/config.yml atomically.
 * Returns 0, or -1 with err set. */
int glow_run_dir_prepare(const char *dir, const glow_run_config *cfg, glow_error *err);

/* Remove the temporary files of checkpoint.safetensors and config.yml
 * (".NAME.tmp.PID") whose writer PID no longer runs (a kill -9 during a save).
 * Returns how many were removed. */
int glow_run_dir_remove_stale(const char *dir);

#endif
