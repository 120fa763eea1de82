#include "config_keys.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Enums are written through an int, so they must be int-sized. */
_Static_assert(sizeof(glow_coupling) == sizeof(int), "enum size");
_Static_assert(sizeof(glow_permutation) == sizeof(int), "enum size");
_Static_assert(sizeof(glow_optimizer) == sizeof(int), "enum size");
_Static_assert(sizeof(glow_precision) == sizeof(int), "enum size");
_Static_assert(sizeof(glow_memory_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(glow_lr_decay) == sizeof(int), "enum size");

static const char *const coupling_names[] = {"affine", "additive", NULL};
static const char *const permutation_names[] = {"invconv", "shuffle", "reverse", NULL};
static const char *const optimizer_names[] = {"adam", "adamax", NULL};
static const char *const precision_names[] = {"fp32", "tf32", "bf16", NULL};
static const char *const memory_names[] = {"store", "recompute", "invert", NULL};
static const char *const lr_decay_names[] = {"none", "linear", "cosine", NULL};

static int check_device(const char *s, char *why, size_t n)
{
    if (strcmp(s, "cpu") == 0 || strcmp(s, "auto") == 0 || strcmp(s, "cuda") == 0)
        return 0;
    long idx;
    if (strncmp(s, "cuda:", 5) == 0 && parse_long(s + 5, 0, 1023, &idx) == 0)
        return 0;
    snprintf(why, n, "expected cpu, cuda, cuda:N or auto, got '%.60s'", s);
    return -1;
}

#define KEY(sec, key, typ, field, ...) \
    {.section = sec, .name = key, .type = typ, .offset = offsetof(glow_run_config, field), \
     __VA_ARGS__}
#define SIZE_OF(field) sizeof(((glow_run_config *)0)->field)
#define ANY_LONG .max = (double)LONG_MAX

/* Model bounds follow glow_config_validate, which has the final word. */
const key_def config_keys[] = {
    KEY(NULL, "name", K_STRING, name, .size = SIZE_OF(name)),
    KEY(NULL, "description", K_STRING, description, .size = SIZE_OF(description)),

    KEY("model", "image_size", K_SIZE, model.image_h, .min = 1, .max = 65536),
    KEY("model", "channels", K_INT, model.channels, .min = 1, .max = 64),
    KEY("model", "levels", K_INT, model.levels, .min = 1, .max = 10),
    KEY("model", "steps", K_INT, model.steps, .min = 1, .max = 1024),
    KEY("model", "width", K_INT, model.width, .min = 1, .max = 16384),
    KEY("model", "coupling", K_ENUM, model.coupling, .names = coupling_names),
    KEY("model", "permutation", K_ENUM, model.permutation, .names = permutation_names),
    KEY("model", "lu", K_BOOL, model.lu),
    KEY("model", "edge_bias", K_BOOL, model.edge_bias),
    KEY("model", "learn_top", K_BOOL, model.learn_top),
    KEY("model", "y_condition", K_BOOL, model.y_condition),
    KEY("model", "n_classes", K_INT, model.n_classes, .min = 0, .max = 1000000),
    KEY("model", "weight_y", K_DOUBLE, model.weight_y, .min = 0, .max = HUGE_VAL),
    KEY("model", "n_bits", K_INT, model.n_bits, .min = 1, .max = 8),

    KEY("train", "batch_size", K_INT, train.batch_size, .min = 1, .max = 1 << 20),
    KEY("train", "optimizer", K_ENUM, train.optimizer, .names = optimizer_names),
    KEY("train", "lr", K_DOUBLE, train.lr, .min = 0, .min_open = 1, .max = HUGE_VAL),
    KEY("train", "beta1", K_DOUBLE, train.beta1, .min = 0, .max = 1, .max_open = 1),
    KEY("train", "beta2", K_DOUBLE, train.beta2, .min = 0, .max = 1, .max_open = 1),
    KEY("train", "lr_decay", K_ENUM, train.lr_decay, .names = lr_decay_names, .omit_default = 1),
    KEY("train", "lr_final", K_DOUBLE, train.lr_final, .min = 0, .max = 1, .omit_default = 1),
    KEY("train", "warmup", K_LONG, train.warmup, .min = 0, ANY_LONG),
    KEY("train", "warmup_steps", K_LONG, train.warmup_steps, .min = 0, ANY_LONG,
        .omit_default = 1),
    KEY("train", "grad_clip", K_DOUBLE, train.grad_clip, .min = 0, .max = HUGE_VAL),
    KEY("train", "ema_decay", K_DOUBLE, train.ema_decay, .min = 0, .max = 1, .max_open = 1),
    KEY("train", "init_batch", K_INT, train.init_batch, .min = 0, .max = 1 << 20),
    KEY("train", "steps", K_LONG, train.steps, .min = 1, ANY_LONG, .zero_unset = 1),
    KEY("train", "epochs", K_DOUBLE, train.epochs, .min = 0, .min_open = 1, .max = HUGE_VAL,
        .zero_unset = 1),
    KEY("train", "checkpoint_every", K_LONG, train.checkpoint_every, .min = 0, ANY_LONG),
    KEY("train", "keep_every", K_LONG, train.keep_every, .min = 0, ANY_LONG, .omit_default = 1),
    KEY("train", "keep_last", K_LONG, train.keep_last, .min = 0, ANY_LONG, .omit_default = 1),
    KEY("train", "val_every", K_LONG, train.val_every, .min = 0, ANY_LONG),
    KEY("train", "log_every", K_LONG, train.log_every, .min = 0, ANY_LONG),
    KEY("train", "sample_every", K_LONG, train.sample_every, .min = 0, ANY_LONG,
        .omit_default = 1),
    KEY("train", "sample_temperatures", K_LIST, train.sample_temperatures, .min = 0, .max = 10,
        .omit_default = 1),
    KEY("train", "seed", K_U64, train.seed),
    KEY("train", "precision", K_ENUM, train.precision, .names = precision_names),
    KEY("train", "memory", K_ENUM, train.memory, .names = memory_names),
    KEY("train", "memory_every", K_INT, train.memory_every, .min = 0, .max = 1024),
    KEY("train", "memory_max_error", K_DOUBLE, train.memory_max_error, .min = 0,
        .max = HUGE_VAL),
    KEY("train", "device", K_STRING, train.device, .size = SIZE_OF(train.device),
        .check = check_device),
};
const int config_nkeys = (int)(sizeof config_keys / sizeof config_keys[0]);
_Static_assert(sizeof config_keys / sizeof config_keys[0] <= CONFIG_MAX_KEYS, "CONFIG_MAX_KEYS");

int config_same_section(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

int config_find_key(const char *section, const char *name)
{
    for (int i = 0; i < config_nkeys; i++)
        if (config_same_section(config_keys[i].section, section) &&
            strcmp(config_keys[i].name, name) == 0)
            return i;
    return -1;
}

int config_is_key(int i, const char *section, const char *name)
{
    return i >= 0 && config_same_section(config_keys[i].section, section) &&
           strcmp(config_keys[i].name, name) == 0;
}

void config_key_name(const key_def *k, char *buf, size_t n)
{
    if (k->section)
        snprintf(buf, n, "%s.%s", k->section, k->name);
    else
        snprintf(buf, n, "%s", k->name);
}

/* ---- "Did you mean" ----------------------------------------------------------- */

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            int best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            /* A swap of two neighbours counts as one typo. */
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* " (did you mean 'x'?)" for the closest of the candidates, or "". */
static void suggest(const char *word, const char *const *cands, int n, char *out, size_t len)
{
    int best = -1, bestd = 3;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, cands[i]);
        if (d < bestd) {
            bestd = d;
            best = i;
        }
    }
    if (best >= 0 && bestd <= (int)strlen(cands[best]) / 2)
        snprintf(out, len, " (did you mean '%s'?)", cands[best]);
    else
        out[0] = '\0';
}

void config_suggest_key(const char *section, const char *word, char *out, size_t len)
{
    const char *cands[CONFIG_MAX_KEYS + 2];
    int n = 0;
    for (int i = 0; i < config_nkeys; i++)
        if (config_same_section(config_keys[i].section, section))
            cands[n++] = config_keys[i].name;
    if (!section) {
        cands[n++] = "model";
        cands[n++] = "train";
    }
    suggest(word, cands, n, out, len);
}

/* ---- Typed setters: one YAML node -> one field ----------------------------------- */

static int is_null_scalar(const yaml_node_t *v)
{
    if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)v->data.scalar.value;
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* What the user wrote, for "expected ..., got X". */
void config_describe(const yaml_node_t *v, char *buf, size_t n)
{
    if (!v || (v->type == YAML_SCALAR_NODE && is_null_scalar(v)))
        snprintf(buf, n, "nothing");
    else if (v->type == YAML_SEQUENCE_NODE)
        snprintf(buf, n, "a list of %d",
                 (int)(v->data.sequence.items.top - v->data.sequence.items.start));
    else if (v->type == YAML_MAPPING_NODE)
        snprintf(buf, n, "a mapping");
    else if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        snprintf(buf, n, "the quoted string \"%.60s\"", (const char *)v->data.scalar.value);
    else
        snprintf(buf, n, "'%.60s'", (const char *)v->data.scalar.value);
}

/* The text of a plain, non-null scalar (numbers and booleans), else NULL. */
static const char *plain_text(const yaml_node_t *v)
{
    if (!v || v->type != YAML_SCALAR_NODE || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        is_null_scalar(v))
        return NULL;
    return (const char *)v->data.scalar.value;
}

static int expected(const yaml_node_t *v, const char *what, char *why, size_t n)
{
    char got[128];
    config_describe(v, got, sizeof got);
    snprintf(why, n, "expected %s, got %s", what, got);
    return -1;
}

static void range_text(const key_def *k, char *buf, size_t n)
{
    int ints = k->type == K_INT || k->type == K_LONG || k->type == K_SIZE;
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, ints ? "%.0f" : "%g", k->min);
    snprintf(hi, sizeof hi, ints ? "%.0f" : "%g", k->max);
    if (isinf(k->max) || k->max >= (double)LONG_MAX)
        snprintf(buf, n, "must be %s %s", k->min_open ? ">" : ">=", lo);
    else if (ints)
        snprintf(buf, n, "must be between %s and %s", lo, hi);
    else
        snprintf(buf, n, "must be in %c%s, %s%c", k->min_open ? '(' : '[', lo, hi,
                 k->max_open ? ')' : ']');
}

static int in_range(const key_def *k, double v)
{
    if (k->zero_unset && v == 0)
        return 1;
    if (!isfinite(v))
        return 0;
    if (k->min_open ? v <= k->min : v < k->min)
        return 0;
    if (k->max_open ? v >= k->max : v > k->max)
        return 0;
    return 1;
}

static int out_of_range(const key_def *k, const char *got, char *why, size_t n)
{
    if (k->type == K_LIST) {
        char r[96];
        range_text(k, r, sizeof r);
        snprintf(why, n, "each number %s, got %s", r, got);
        return -1;
    }
    char r[96];
    range_text(k, r, sizeof r);
    snprintf(why, n, "%s, got %s", r, got);
    return -1;
}

static int read_long(const key_def *k, const yaml_node_t *v, long *out, char *why, size_t n)
{
    const char *s = plain_text(v);
    if (!s)
        return expected(v, "an integer", why, n);
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (*end || end == s || (*s != '-' && *s != '+' && (*s < '0' || *s > '9')))
        return expected(v, "an integer", why, n);
    if (errno == ERANGE || !in_range(k, (double)x) || (k->zero_unset && x == 0))
        return out_of_range(k, s, why, n);
    *out = x;
    return 0;
}

static int read_double(const key_def *k, const yaml_node_t *v, double *out, char *why, size_t n)
{
    const char *s = plain_text(v);
    if (!s)
        return expected(v, "a number", why, n);
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    /* strtod also takes "inf", "nan" and hex floats; a config wants decimals. */
    if (*end || end == s || strpbrk(s, "xXnN"))
        return expected(v, "a number", why, n);
    if (errno == ERANGE || !in_range(k, x) || (k->zero_unset && x == 0))
        return out_of_range(k, s, why, n);
    *out = x;
    return 0;
}

static int read_u64(const yaml_node_t *v, uint64_t *out, char *why, size_t n)
{
    const char *s = plain_text(v);
    if (!s || *s < '0' || *s > '9')
        return expected(v, "an integer from 0 to 2^64-1", why, n);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (*end || errno == ERANGE)
        return expected(v, "an integer from 0 to 2^64-1", why, n);
    *out = (uint64_t)x;
    return 0;
}

static int read_bool(const yaml_node_t *v, int *out, char *why, size_t n)
{
    const char *s = plain_text(v);
    if (s && (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0)) {
        *out = 1;
        return 0;
    }
    if (s && (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0)) {
        *out = 0;
        return 0;
    }
    return expected(v, "true or false", why, n);
}

static int read_enum(const key_def *k, const yaml_node_t *v, int *out, char *why, size_t n)
{
    char what[128] = "one of ";
    for (int i = 0; k->names[i]; i++) {
        if (v && v->type == YAML_SCALAR_NODE && !is_null_scalar(v) &&
            strcmp((const char *)v->data.scalar.value, k->names[i]) == 0) {
            *out = i;
            return 0;
        }
        snprintf(what + strlen(what), sizeof what - strlen(what), "%s%s", i ? ", " : "",
                 k->names[i]);
    }
    return expected(v, what, why, n);
}

static int read_size(const key_def *k, yaml_document_t *doc, const yaml_node_t *v, int hw[2],
                     char *why, size_t n)
{
    const char *what = "[H, W] or one integer";
    long x[2];
    if (v && v->type == YAML_SCALAR_NODE && plain_text(v)) {
        if (read_long(k, v, &x[0], why, n) != 0)
            return strncmp(why, "expected", 8) == 0 ? expected(v, what, why, n) : -1;
        x[1] = x[0];
    } else if (v && v->type == YAML_SEQUENCE_NODE &&
               v->data.sequence.items.top - v->data.sequence.items.start == 2) {
        for (int i = 0; i < 2; i++) {
            const yaml_node_t *e = yaml_document_get_node(doc, v->data.sequence.items.start[i]);
            if (!plain_text(e))
                return expected(v, what, why, n);
            if (read_long(k, e, &x[i], why, n) != 0)
                return strncmp(why, "expected", 8) == 0 ? expected(v, what, why, n) : -1;
        }
    } else {
        return expected(v, what, why, n);
    }
    hw[0] = (int)x[0];
    hw[1] = (int)x[1];
    return 0;
}

/* A list of 1..GLOW_NUMBER_LIST_MAX numbers, or one number. */
static int read_list(const key_def *k, yaml_document_t *doc, const yaml_node_t *v,
                     glow_number_list *l, char *why, size_t n)
{
    char what[96];
    snprintf(what, sizeof what, "a number or a list of 1 to %d numbers", GLOW_NUMBER_LIST_MAX);
    memset(l, 0, sizeof *l);
    if (v && v->type == YAML_SCALAR_NODE && plain_text(v)) {
        if (read_double(k, v, &l->v[0], why, n) != 0)
            return strncmp(why, "expected", 8) == 0 ? expected(v, what, why, n) : -1;
        l->n = 1;
        return 0;
    }
    if (!v || v->type != YAML_SEQUENCE_NODE)
        return expected(v, what, why, n);
    long count = v->data.sequence.items.top - v->data.sequence.items.start;
    if (count < 1 || count > GLOW_NUMBER_LIST_MAX)
        return expected(v, what, why, n);
    for (long i = 0; i < count; i++) {
        const yaml_node_t *e = yaml_document_get_node(doc, v->data.sequence.items.start[i]);
        if (!plain_text(e))
            return expected(v, what, why, n);
        if (read_double(k, e, &l->v[i], why, n) != 0)
            return strncmp(why, "expected", 8) == 0 ? expected(v, what, why, n) : -1;
    }
    l->n = (int)count;
    return 0;
}

int config_set_node(const key_def *k, glow_run_config *cfg, yaml_document_t *doc,
                    const yaml_node_t *v, char *why, size_t n)
{
    char *field = (char *)cfg + k->offset;
    switch (k->type) {
    case K_INT: {
        long x;
        if (read_long(k, v, &x, why, n))
            return -1;
        int i = (int)x;
        memcpy(field, &i, sizeof i);
        return 0;
    }
    case K_LONG: {
        long x;
        if (read_long(k, v, &x, why, n))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_U64: {
        uint64_t x;
        if (read_u64(v, &x, why, n))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_DOUBLE: {
        double x;
        if (read_double(k, v, &x, why, n))
            return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case K_BOOL: {
        int b;
        if (read_bool(v, &b, why, n))
            return -1;
        memcpy(field, &b, sizeof b);
        return 0;
    }
    case K_ENUM: {
        int e;
        if (read_enum(k, v, &e, why, n))
            return -1;
        memcpy(field, &e, sizeof e);
        return 0;
    }
    case K_SIZE: {
        int hw[2];
        if (read_size(k, doc, v, hw, why, n))
            return -1;
        cfg->model.image_h = hw[0];
        cfg->model.image_w = hw[1];
        return 0;
    }
    case K_LIST: {
        glow_number_list l;
        if (read_list(k, doc, v, &l, why, n))
            return -1;
        memcpy(field, &l, sizeof l);
        return 0;
    }
    case K_STRING: {
        if (!v || v->type != YAML_SCALAR_NODE)
            return expected(v, "a string", why, n);
        const char *s = (const char *)v->data.scalar.value;
        if (v->data.scalar.length + 1 > k->size) {
            snprintf(why, n, "longer than %zu characters", k->size - 1);
            return -1;
        }
        if (strlen(s) != v->data.scalar.length) {
            snprintf(why, n, "contains a NUL character");
            return -1;
        }
        if (k->check && k->check(s, why, n))
            return -1;
        memcpy(field, s, v->data.scalar.length + 1);
        return 0;
    }
    }
    return -1;
}

/* ---- Text to a key: overrides and JSON ------------------------------------------------ */

static int set_scalar(const key_def *k, glow_run_config *cfg, const char *text, char *why,
                      size_t n)
{
    yaml_document_t doc;
    if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1))
        glow_die(EXIT_BADINPUT, "out of memory");
    int id = yaml_document_add_scalar(&doc, NULL, (const yaml_char_t *)text, (int)strlen(text),
                                      YAML_PLAIN_SCALAR_STYLE);
    if (!id)
        glow_die(EXIT_BADINPUT, "out of memory");
    int rc = config_set_node(k, cfg, &doc, yaml_document_get_node(&doc, id), why, n);
    yaml_document_delete(&doc);
    return rc;
}

int config_set_text(const key_def *k, glow_run_config *cfg, const char *text, int as_yaml,
                    char *why, size_t n)
{
    if (!as_yaml || k->type == K_STRING)
        return set_scalar(k, cfg, text, why, n);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        glow_die(EXIT_BADINPUT, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(why, n, "cannot read '%.60s': %s", text,
                 parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        return -1;
    }
    int rc = config_set_node(k, cfg, &doc, yaml_document_get_root_node(&doc), why, n);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int config_lookup(const char *key, glow_error *err)
{
    char section[32];
    const char *dot = strchr(key, '.');
    int i = -1;
    if (!dot)
        i = config_find_key(NULL, key);
    else if ((size_t)(dot - key) < sizeof section) {
        memcpy(section, key, (size_t)(dot - key));
        section[dot - key] = '\0';
        i = config_find_key(section, dot + 1);
    }
    if (i >= 0)
        return i;
    char names[CONFIG_MAX_KEYS][64];
    const char *cands[CONFIG_MAX_KEYS];
    for (int j = 0; j < config_nkeys; j++) {
        config_key_name(&config_keys[j], names[j], sizeof names[j]);
        cands[j] = names[j];
    }
    char hint[96];
    suggest(key, cands, config_nkeys, hint, sizeof hint);
    glow_errorf(err, "unknown key '%.100s'%s", key, hint);
    return -1;
}

/* ---- Reading values back ------------------------------------------------------------- */

double config_number(const key_def *k, const glow_run_config *cfg)
{
    const char *field = (const char *)cfg + k->offset;
    int i;
    long l;
    double d;
    switch (k->type) {
    case K_INT: memcpy(&i, field, sizeof i); return i;
    case K_LONG: memcpy(&l, field, sizeof l); return (double)l;
    case K_DOUBLE: memcpy(&d, field, sizeof d); return d;
    default: return 0;
    }
}

int config_unset(const key_def *k, const glow_run_config *cfg)
{
    return k->zero_unset && config_number(k, cfg) == 0;
}

const char *config_enum_name(const key_def *k, int e)
{
    for (int i = 0; k->names[i]; i++)
        if (i == e)
            return k->names[i];
    return "invalid";
}

void config_format_double(double v, char *buf, size_t n)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

int config_check_value(const key_def *k, const glow_run_config *cfg, char *why, size_t n)
{
    const char *field = (const char *)cfg + k->offset;
    int e;
    switch (k->type) {
    case K_INT:
    case K_LONG:
    case K_DOUBLE: {
        double v = config_number(k, cfg);
        if (in_range(k, v))
            return 0;
        char got[48];
        config_format_double(v, got, sizeof got);
        return out_of_range(k, got, why, n);
    }
    case K_BOOL:
    case K_ENUM:
        memcpy(&e, field, sizeof e);
        if (k->type == K_BOOL ? (e == 0 || e == 1) : strcmp(config_enum_name(k, e), "invalid") != 0)
            return 0;
        snprintf(why, n, "unknown value %d", e);
        return -1;
    case K_STRING:
        if (!memchr(field, '\0', k->size)) {
            snprintf(why, n, "not terminated");
            return -1;
        }
        return k->check ? k->check(field, why, n) : 0;
    case K_LIST: {
        glow_number_list l;
        memcpy(&l, field, sizeof l);
        if (l.n < 1 || l.n > GLOW_NUMBER_LIST_MAX) {
            snprintf(why, n, "expected 1 to %d numbers, got %d", GLOW_NUMBER_LIST_MAX, l.n);
            return -1;
        }
        for (int i = 0; i < l.n; i++)
            if (!in_range(k, l.v[i])) {
                char got[48];
                config_format_double(l.v[i], got, sizeof got);
                return out_of_range(k, got, why, n);
            }
        return 0;
    }
    case K_U64:
    case K_SIZE: return 0; /* every u64 is a seed; image_size is glow_config_validate's */
    }
    return 0;
}

static size_t field_size(const key_def *k)
{
    switch (k->type) {
    case K_INT:
    case K_BOOL:
    case K_ENUM: return sizeof(int);
    case K_LONG: return sizeof(long);
    case K_U64: return sizeof(uint64_t);
    case K_DOUBLE: return sizeof(double);
    case K_STRING: return k->size;
    case K_SIZE: return 2 * sizeof(int);
    case K_LIST: return sizeof(glow_number_list);
    }
    return 0;
}

int config_is_default(const key_def *k, const glow_run_config *cfg)
{
    glow_run_config d; /* glow_run_config_default, which is run_config.c's, which calls here */
    memset(&d, 0, sizeof d);
    glow_config_default(&d.model);
    glow_train_config_default(&d.train);
    if (k->type == K_LIST) { /* the numbers in use, not what lies past n */
        glow_number_list a, b;
        memcpy(&a, (const char *)cfg + k->offset, sizeof a);
        memcpy(&b, (const char *)&d + k->offset, sizeof b);
        if (a.n != b.n)
            return 0;
        for (int i = 0; i < a.n; i++)
            if (a.v[i] != b.v[i])
                return 0;
        return 1;
    }
    if (k->type == K_STRING)
        return strcmp((const char *)cfg + k->offset, (const char *)&d + k->offset) == 0;
    return memcmp((const char *)cfg + k->offset, (const char *)&d + k->offset, field_size(k)) == 0;
}

void config_format_list(const glow_number_list *l, const char *sep, char *buf, size_t n)
{
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < l->n && o < n; i++) {
        char num[40];
        config_format_double(l->v[i], num, sizeof num);
        o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? sep : "", num);
    }
    if (o < n)
        snprintf(buf + o, n - o, "]");
}
