/* The one table of configuration keys (internal to yaml_config.c and
 * run_config.c): each key's section, type, range and place in glow_run_config,
 * and the typed setters that turn a YAML node or a KEY=VALUE text into a field.
 * The file reader, the overrides, the writer, the train JSON and validation all
 * go through it, so they cannot disagree on a key. */
#ifndef GLOW_CONFIG_KEYS_H
#define GLOW_CONFIG_KEYS_H

#include <stddef.h>
#include <yaml.h>

#include "run_config.h"

typedef enum { K_INT, K_LONG, K_U64, K_DOUBLE, K_BOOL, K_ENUM, K_STRING, K_SIZE, K_LIST } key_type;

typedef struct {
    const char *section; /* "model", "train", or NULL for a top-level key */
    const char *name;
    key_type type;
    size_t offset;       /* into glow_run_config */
    size_t size;         /* K_STRING: buffer size including the NUL */
    double min, max;     /* numeric range */
    int min_open, max_open;
    int zero_unset;      /* 0 is allowed as "not set" in spite of min (steps, epochs) */
    int omit_default;    /* left out of the train JSON while at its default (keys added
                            after checkpoints existed: their train_config stays as it was) */
    const char *const *names;                         /* K_ENUM: values, NULL-terminated */
    int (*check)(const char *s, char *why, size_t n); /* K_STRING: extra syntax rule */
} key_def;

#define CONFIG_MAX_KEYS 64 /* bound for per-key arrays; the table is smaller */

extern const key_def config_keys[];
extern const int config_nkeys;

/* Index of a key in its section (NULL: top level), or -1. */
int config_find_key(const char *section, const char *name);
int config_is_key(int i, const char *section, const char *name);
int config_same_section(const char *a, const char *b);
/* "train.lr", or "name" at the top level. */
void config_key_name(const key_def *k, char *buf, size_t n);
/* Index of "section.key" / "key", or -1 with err "unknown key 'x' (did you mean
 * 'y'?)". */
int config_lookup(const char *qualified, glow_error *err);
/* " (did you mean 'x'?)" among the keys of one section (NULL: top level, the
 * sections included), or "". */
void config_suggest_key(const char *section, const char *word, char *out, size_t len);

/* What a node holds, for "expected ..., got X": nothing, 'text', a list of N, ... */
void config_describe(const yaml_node_t *v, char *buf, size_t n);

/* Set key k from node v (NULL: no value). On error why holds the reason, without
 * the key name; cfg is unchanged. */
int config_set_node(const key_def *k, glow_run_config *cfg, yaml_document_t *doc,
                    const yaml_node_t *v, char *why, size_t n);
/* Set key k from text: read as a YAML value when as_yaml (string keys excepted:
 * their text is taken as it is), else as one plain scalar. */
int config_set_text(const key_def *k, glow_run_config *cfg, const char *text, int as_yaml,
                    char *why, size_t n);
/* Is the current value of key k in its range (enum known, string well-formed,
 * every number of a list)? */
int config_check_value(const key_def *k, const glow_run_config *cfg, char *why, size_t n);

/* Numeric keys as double (0 for others). */
double config_number(const key_def *k, const glow_run_config *cfg);
/* An unset run length (steps or epochs at 0): left out when writing. */
int config_unset(const key_def *k, const glow_run_config *cfg);
const char *config_enum_name(const key_def *k, int e);
/* Shortest decimal text that reads back to exactly v. */
void config_format_double(double v, char *buf, size_t n);
/* Does key k hold its default value (glow_run_config_default's)? */
int config_is_default(const key_def *k, const glow_run_config *cfg);
/* A K_LIST value as "[0.7, 1]" (sep ", ") or "[0.7,1]" (sep ","). */
void config_format_list(const glow_number_list *l, const char *sep, char *buf, size_t n);

#endif
