#include "yaml_config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_keys.h"

/* ---- Reading a YAML document ------------------------------------------------------ */

typedef struct {
    const char *file;
    glow_run_config *cfg;
    yaml_document_t *doc;
    glow_error *err;
    int line_of[CONFIG_MAX_KEYS]; /* line where each key was set; 0: not in the file */
    int model_line;               /* line of `model:`; 0 when absent */
    int model_optional;           /* a file of the train section alone is fine */
} reader;

static int line_of_node(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static void libyaml_error(const yaml_parser_t *p, const char *file, glow_error *err)
{
    const char *problem = p->problem ? p->problem : "cannot parse";
    switch (p->error) {
    case YAML_READER_ERROR:
        glow_errorf(err, "%s: byte %zu: %s", file, p->problem_offset, problem);
        break;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
    case YAML_COMPOSER_ERROR:
        if (p->context)
            glow_errorf(err, "%s: line %zu, column %zu: YAML syntax error: %s (%s at line %zu)",
                        file, p->problem_mark.line + 1, p->problem_mark.column + 1, problem,
                        p->context, p->context_mark.line + 1);
        else
            glow_errorf(err, "%s: line %zu, column %zu: YAML syntax error: %s", file,
                        p->problem_mark.line + 1, p->problem_mark.column + 1, problem);
        break;
    default:
        glow_errorf(err, "%s: YAML error: %s", file, problem);
        break;
    }
}

/* Quoted keys are accepted, so that a JSON file is a config too. */
static const char *scalar_key(reader *r, const yaml_node_t *kn)
{
    if (kn->type != YAML_SCALAR_NODE) {
        glow_errorf(r->err, "%s: line %d: keys must be names", r->file, line_of_node(kn));
        return NULL;
    }
    return (const char *)kn->data.scalar.value;
}

/* The keys of one section ("model"/"train") or of the top level (NULL). */
static int read_mapping(reader *r, const char *section, const yaml_node_t *map)
{
    int top_seen[2] = {0, 0}; /* lines of model: and train: */
    const yaml_node_pair_t *end = map->data.mapping.pairs.top;
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < end; p++) {
        const yaml_node_t *kn = yaml_document_get_node(r->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(r->doc, p->value);
        const char *name = scalar_key(r, kn);
        if (!name)
            return -1;
        int line = line_of_node(kn);
        if (!section && (strcmp(name, "model") == 0 || strcmp(name, "train") == 0)) {
            int s = name[0] == 't';
            if (top_seen[s]) {
                glow_errorf(r->err, "%s: line %d: duplicate key '%s' at top level "
                            "(first at line %d)", r->file, line, name, top_seen[s]);
                return -1;
            }
            top_seen[s] = line;
            if (vn->type != YAML_MAPPING_NODE) {
                char got[128];
                config_describe(vn, got, sizeof got);
                glow_errorf(r->err, "%s: line %d: %s: expected a mapping of keys, got %s", r->file,
                            line, name, got);
                return -1;
            }
            if (s == 0)
                r->model_line = line;
            if (read_mapping(r, name, vn))
                return -1;
            continue;
        }
        int i = config_find_key(section, name);
        if (i < 0) {
            char hint[96];
            config_suggest_key(section, name, hint, sizeof hint);
            if (!section)
                glow_errorf(r->err, "%s: line %d: unknown key '%s' at top level%s", r->file, line,
                            name, hint);
            else
                glow_errorf(r->err, "%s: line %d: unknown key '%s' in %s%s", r->file, line, name,
                            section, hint);
            return -1;
        }
        if (r->line_of[i]) {
            char in[32];
            if (section)
                snprintf(in, sizeof in, "in %s", section);
            else
                snprintf(in, sizeof in, "at top level");
            glow_errorf(r->err, "%s: line %d: duplicate key '%s' %s (first at line %d)", r->file,
                        line, name, in, r->line_of[i]);
            return -1;
        }
        char why[512], q[64];
        config_key_name(&config_keys[i], q, sizeof q);
        if (config_set_node(&config_keys[i], r->cfg, r->doc, vn, why, sizeof why)) {
            glow_errorf(r->err, "%s: line %d: %s: %s", r->file, line, q, why);
            return -1;
        }
        r->line_of[i] = line;
    }
    return 0;
}

static int read_document(reader *r)
{
    const yaml_node_t *root = yaml_document_get_root_node(r->doc);
    if (!root) {
        glow_errorf(r->err, "%s: empty file: a config needs a 'model' section", r->file);
        return -1;
    }
    if (root->type != YAML_MAPPING_NODE) {
        char got[128];
        config_describe(root, got, sizeof got);
        glow_errorf(r->err, "%s: line %d: expected a mapping of keys (name, model, train), got %s",
                    r->file, line_of_node(root), got);
        return -1;
    }
    if (read_mapping(r, NULL, root))
        return -1;
    if (!r->model_line && !r->model_optional) {
        glow_errorf(r->err, "%s: missing the 'model' section", r->file);
        return -1;
    }
    if (r->model_line && !r->line_of[config_find_key("model", "image_size")]) {
        glow_errorf(r->err, "%s: line %d: model.image_size is required", r->file, r->model_line);
        return -1;
    }
    int ls = r->line_of[config_find_key("train", "steps")];
    int le = r->line_of[config_find_key("train", "epochs")];
    if (ls && le) {
        glow_errorf(r->err, "%s: line %d: train.%s: steps (line %d) and epochs (line %d) are "
                    "both set; give one", r->file, ls > le ? ls : le, ls > le ? "steps" : "epochs",
                    ls, le);
        return -1;
    }
    return 0;
}

/* Deeper than this, a document is no config (they are three levels deep); and
 * libyaml's time grows with the square of the depth (100000 brackets: a minute). */
#define MAX_DEPTH 32

/* Walk the events up to the first that nests too deep: stopping there keeps the
 * cost linear. Syntax errors are left to the load that follows. */
static int check_depth(const char *text, size_t len, const char *file, glow_error *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        glow_die(EXIT_BADINPUT, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev))
            break;
        yaml_event_type_t t = ev.type;
        size_t line = ev.start_mark.line + 1;
        yaml_event_delete(&ev);
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_DEPTH) {
                glow_errorf(err, "%s: line %zu: nested more than %d levels deep; not a config",
                            file, line, MAX_DEPTH);
                rc = -1;
                break;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
            depth--;
        else if (t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}

static int parse_text(const char *text, size_t len, const char *file, glow_run_config *cfg,
                      reader *r, glow_error *err)
{
    int model_optional = r->model_optional;
    glow_run_config_default(cfg);
    memset(r, 0, sizeof *r);
    r->model_optional = model_optional;
    r->file = file;
    r->cfg = cfg;
    r->err = err;
    if (check_depth(text, len, file, err) != 0)
        return -1;
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        glow_die(EXIT_BADINPUT, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        libyaml_error(&parser, file, err);
        yaml_parser_delete(&parser);
        return -1;
    }
    r->doc = &doc;
    int rc = read_document(r);
    if (rc == 0) {
        /* A second document would be silently ignored; say so instead. */
        yaml_document_t more;
        if (!yaml_parser_load(&parser, &more)) {
            libyaml_error(&parser, file, err);
            rc = -1;
        } else {
            const yaml_node_t *root2 = yaml_document_get_root_node(&more);
            if (root2) {
                glow_errorf(err, "%s: line %d: a second YAML document; a config file holds one",
                            file, line_of_node(root2));
                rc = -1;
            }
            yaml_document_delete(&more);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    r->doc = NULL;
    return rc;
}

/* ---- Public entry points ------------------------------------------------------------ */

int glow_run_config_parse_string(const char *text, size_t len, const char *name,
                                 glow_run_config *cfg, glow_error *err)
{
    reader r = {0};
    return parse_text(text, len, name, cfg, &r, err);
}

/* The whole file in memory (configs are small; 1 MiB is far beyond any). */
static char *slurp(const char *path, size_t *len, glow_error *err)
{
    const size_t limit = 1 << 20;
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        glow_errorf(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = xmalloc(limit + 1);
    size_t n = read_full(f, buf, limit + 1);
    int bad = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (bad) {
        glow_errorf(err, "%s: read error", path);
        free(buf);
        return NULL;
    }
    if (n > limit) {
        glow_errorf(err, "%s: larger than 1 MiB; not a config file", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int glow_run_config_parse_file_opt(const char *path, glow_run_config *cfg, int *has_model,
                                   glow_error *err)
{
    size_t len;
    char *text = slurp(path, &len, err);
    if (!text)
        return -1;
    reader r = {0};
    r.model_optional = 1;
    int rc = parse_text(text, len, path, cfg, &r, err);
    free(text);
    *has_model = r.model_line != 0;
    return rc;
}

int glow_run_config_parse_file(const char *path, glow_run_config *cfg, glow_error *err)
{
    size_t len;
    char *text = slurp(path, &len, err);
    if (!text)
        return -1;
    int rc = glow_run_config_parse_string(text, len, path, cfg, err);
    free(text);
    return rc;
}

/* After a successful set: the command line chooses the run length. */
static void after_set(int i, glow_run_config *cfg)
{
    if (config_is_key(i, "train", "steps"))
        cfg->train.epochs = 0;
    else if (config_is_key(i, "train", "epochs"))
        cfg->train.steps = 0;
    else if (config_is_key(i, "train", "warmup"))
        cfg->train.warmup_steps = 0;
    else if (config_is_key(i, "train", "warmup_steps"))
        cfg->train.warmup = 0;
}

int config_set_override(glow_run_config *cfg, const char *key_eq_value, glow_error *err)
{
    const char *eq = strchr(key_eq_value, '=');
    if (!eq || eq == key_eq_value) {
        glow_errorf(err, "expected KEY=VALUE (like train.lr=1e-4), got '%.100s'", key_eq_value);
        return -1;
    }
    char key[128];
    size_t kl = (size_t)(eq - key_eq_value);
    if (kl >= sizeof key) {
        glow_errorf(err, "unknown key '%.100s'", key_eq_value);
        return -1;
    }
    memcpy(key, key_eq_value, kl);
    key[kl] = '\0';
    int i = config_lookup(key, err);
    if (i < 0)
        return -1;
    char why[512];
    if (config_set_text(&config_keys[i], cfg, eq + 1, 1, why, sizeof why)) {
        glow_errorf(err, "%s: %s", key, why);
        return -1;
    }
    after_set(i, cfg);
    return 0;
}

/* ---- Validation and loading ------------------------------------------------------ */

int glow_run_config_load(const char *path, const char *const *overrides, int n_overrides,
                         glow_run_config *cfg, glow_error *err)
{
    size_t len;
    char *text = slurp(path, &len, err);
    if (!text)
        return -1;
    reader r = {0};
    int rc = parse_text(text, len, path, cfg, &r, err);
    free(text);
    if (rc)
        return -1;
    for (int o = 0; o < n_overrides; o++) {
        if (config_set_override(cfg, overrides[o], err)) {
            glow_error_prefix(err, "--set %.200s", overrides[o]);
            return -1;
        }
        /* The value no longer comes from the file. */
        const char *eq = strchr(overrides[o], '=');
        for (int i = 0; i < config_nkeys; i++) {
            char q[64];
            config_key_name(&config_keys[i], q, sizeof q);
            size_t ql = strlen(q);
            if (ql == (size_t)(eq - overrides[o]) && strncmp(q, overrides[o], ql) == 0)
                r.line_of[i] = 0;
        }
    }
    if (glow_run_config_validate(cfg, err) == 0)
        return 0;
    /* Point at the line of the key the message names, when the file set it. */
    for (int i = 0; i < config_nkeys; i++) {
        char q[64];
        config_key_name(&config_keys[i], q, sizeof q);
        size_t ql = strlen(q);
        if (r.line_of[i] && strncmp(err->msg, q, ql) == 0 &&
            (err->msg[ql] == ':' || err->msg[ql] == ',')) {
            glow_error_prefix(err, "%s: line %d", path, r.line_of[i]);
            return -1;
        }
    }
    glow_error_prefix(err, "%s", path);
    return -1;
}

/* ---- Writing ------------------------------------------------------------------------- */

/* A double-quoted YAML scalar that reads back as s (valid UTF-8, as the reader
 * gives it): the characters YAML takes for line breaks inside quotes (NEL,
 * U+2028, U+2029: a raw one reads back as a space) and those it does not accept
 * raw (C0 and C1 controls, DEL, U+FEFF, U+FFFE, U+FFFF) are escaped. */
static void write_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) /* U+0080..U+009F */
            fprintf(f, "\\x%02x", *++p);
        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            fputs(p[2] == 0xa8 ? "\\L" : "\\P", f), p += 2;
        else if ((p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) ||
                 (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)))
            fprintf(f, "\\u%04X", ((p[0] & 0x0f) << 12) | ((p[1] & 0x3f) << 6) | (p[2] & 0x3f)), p += 2;
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void write_value(FILE *f, const key_def *k, const glow_run_config *cfg)
{
    const char *field = (const char *)cfg + k->offset;
    int i;
    long l;
    uint64_t u;
    double d;
    char buf[40];
    switch (k->type) {
    case K_INT: memcpy(&i, field, sizeof i); fprintf(f, "%d", i); break;
    case K_LONG: memcpy(&l, field, sizeof l); fprintf(f, "%ld", l); break;
    case K_U64: memcpy(&u, field, sizeof u); fprintf(f, "%" PRIu64, u); break;
    case K_DOUBLE:
        memcpy(&d, field, sizeof d);
        config_format_double(d, buf, sizeof buf);
        fputs(buf, f);
        break;
    case K_BOOL: memcpy(&i, field, sizeof i); fputs(i ? "true" : "false", f); break;
    case K_ENUM: memcpy(&i, field, sizeof i); fputs(config_enum_name(k, i), f); break;
    case K_SIZE: fprintf(f, "[%d, %d]", cfg->model.image_h, cfg->model.image_w); break;
    case K_STRING: write_quoted(f, field); break;
    case K_LIST: {
        glow_number_list l;
        memcpy(&l, field, sizeof l);
        char text[GLOW_NUMBER_LIST_MAX * 26 + 4];
        config_format_list(&l, ", ", text, sizeof text);
        fputs(text, f);
        break;
    }
    }
}

char *glow_run_config_to_yaml(const glow_run_config *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        glow_die(EXIT_BADINPUT, "out of memory writing a config");
    const char *sections[] = {NULL, "model", "train"};
    for (int s = 0; s < 3; s++) {
        if (sections[s])
            fprintf(f, "%s:\n", sections[s]);
        for (int i = 0; i < config_nkeys; i++) {
            const key_def *k = &config_keys[i];
            if (!config_same_section(k->section, sections[s]) || config_unset(k, cfg))
                continue;
            fprintf(f, "%s%s: ", sections[s] ? "  " : "", k->name);
            write_value(f, k, cfg);
            fputc('\n', f);
        }
    }
    if (fclose(f) != 0)
        glow_die(EXIT_BADINPUT, "out of memory writing a config");
    return out;
}

