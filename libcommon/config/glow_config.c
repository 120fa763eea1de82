#include "glow_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds keep every derived size (top channels 4*C0*2^(L-1), weights
 * width*width*9, D = C0*H*W) far inside int and size_t arithmetic. */
#define MAX_CHANNELS 64
#define MAX_LEVELS 10
#define MAX_STEPS 1024
#define MAX_WIDTH 16384
#define MAX_IMAGE 65536
#define MAX_CLASSES 1000000

void glow_config_default(glow_config *c)
{
    memset(c, 0, sizeof *c);
    c->image_h = c->image_w = 0;
    c->channels = 3;
    c->levels = 3;
    c->steps = 32;
    c->width = 512;
    c->coupling = COUPLING_AFFINE;
    c->permutation = PERM_INVCONV;
    c->lu = 0;
    c->edge_bias = 1;
    c->learn_top = 1;
    c->y_condition = 0;
    c->n_classes = 0;
    c->weight_y = 0.01;
    c->n_bits = 8;
}

const char *glow_coupling_name(glow_coupling c)
{
    return c == COUPLING_ADDITIVE ? "additive" : "affine";
}

const char *glow_permutation_name(glow_permutation p)
{
    switch (p) {
    case PERM_SHUFFLE: return "shuffle";
    case PERM_REVERSE: return "reverse";
    default: return "invconv";
    }
}

static int check_range(const char *key, long v, long lo, long hi, glow_error *err)
{
    if (v < lo || v > hi) {
        glow_errorf(err, "%s: %ld is out of range [%ld, %ld]", key, v, lo, hi);
        return -1;
    }
    return 0;
}

int glow_config_validate(const glow_config *c, glow_error *err)
{
    if (c->image_h == 0 || c->image_w == 0) {
        glow_errorf(err, "image_size: not set");
        return -1;
    }
    if (check_range("image_size", c->image_h, 1, MAX_IMAGE, err) ||
        check_range("image_size", c->image_w, 1, MAX_IMAGE, err) ||
        check_range("channels", c->channels, 1, MAX_CHANNELS, err) ||
        check_range("levels", c->levels, 1, MAX_LEVELS, err) ||
        check_range("steps", c->steps, 1, MAX_STEPS, err) ||
        check_range("width", c->width, 1, MAX_WIDTH, err) ||
        check_range("n_classes", c->n_classes, 0, MAX_CLASSES, err) ||
        check_range("n_bits", c->n_bits, 1, 8, err))
        return -1;
    if (c->coupling != COUPLING_AFFINE && c->coupling != COUPLING_ADDITIVE) {
        glow_errorf(err, "coupling: unknown value %d", (int)c->coupling);
        return -1;
    }
    if (c->permutation != PERM_INVCONV && c->permutation != PERM_SHUFFLE &&
        c->permutation != PERM_REVERSE) {
        glow_errorf(err, "permutation: unknown value %d", (int)c->permutation);
        return -1;
    }
    int m = 1 << c->levels;
    if (c->image_h % m != 0 || c->image_w % m != 0) {
        glow_errorf(err, "image_size: %dx%d is not divisible by 2^levels = %d", c->image_h,
                    c->image_w, m);
        return -1;
    }
    /* Every level must keep at least one pixel; the prior's H*W*C must fit int. */
    if ((long)c->channels * c->image_h * c->image_w > (1L << 30)) {
        glow_errorf(err, "image_size: %dx%d with %d channels is too large", c->image_h,
                    c->image_w, c->channels);
        return -1;
    }
    if (c->lu && c->permutation != PERM_INVCONV) {
        glow_errorf(err, "lu: needs permutation invconv, not %s",
                    glow_permutation_name(c->permutation));
        return -1;
    }
    if (c->y_condition && c->n_classes < 1) {
        glow_errorf(err, "n_classes: must be at least 1 with y_condition");
        return -1;
    }
    if (!isfinite(c->weight_y) || c->weight_y < 0) {
        glow_errorf(err, "weight_y: must be a finite number >= 0, not %g", c->weight_y);
        return -1;
    }
    return 0;
}

/* A JSON number that is an integer within [lo, hi]. */
static int json_int(const cJSON *it, const char *key, long lo, long hi, int *out, glow_error *err)
{
    if (!cJSON_IsNumber(it)) {
        glow_errorf(err, "%s: must be an integer", key);
        return -1;
    }
    double d = it->valuedouble;
    if (d != floor(d) || d < (double)lo || d > (double)hi) {
        glow_errorf(err, "%s: %g is not an integer in [%ld, %ld]", key, d, lo, hi);
        return -1;
    }
    *out = (int)d;
    return 0;
}

static int json_bool(const cJSON *it, const char *key, int *out, glow_error *err)
{
    if (!cJSON_IsBool(it)) {
        glow_errorf(err, "%s: must be true or false", key);
        return -1;
    }
    *out = cJSON_IsTrue(it) ? 1 : 0;
    return 0;
}

static int parse_image_size(const cJSON *it, glow_config *c, glow_error *err)
{
    int h, w;
    if (cJSON_IsNumber(it)) {
        if (json_int(it, "image_size", 1, MAX_IMAGE, &h, err))
            return -1;
        w = h;
    } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2) {
        if (json_int(cJSON_GetArrayItem(it, 0), "image_size", 1, MAX_IMAGE, &h, err) ||
            json_int(cJSON_GetArrayItem(it, 1), "image_size", 1, MAX_IMAGE, &w, err))
            return -1;
    } else {
        glow_errorf(err, "image_size: must be [H, W] or one integer");
        return -1;
    }
    c->image_h = h;
    c->image_w = w;
    return 0;
}

static int parse_key(const cJSON *it, glow_config *c, glow_error *err)
{
    const char *k = it->string;
    if (strcmp(k, "image_size") == 0)
        return parse_image_size(it, c, err);
    if (strcmp(k, "channels") == 0)
        return json_int(it, k, 1, MAX_CHANNELS, &c->channels, err);
    if (strcmp(k, "levels") == 0)
        return json_int(it, k, 1, MAX_LEVELS, &c->levels, err);
    if (strcmp(k, "steps") == 0)
        return json_int(it, k, 1, MAX_STEPS, &c->steps, err);
    if (strcmp(k, "width") == 0)
        return json_int(it, k, 1, MAX_WIDTH, &c->width, err);
    if (strcmp(k, "n_classes") == 0)
        return json_int(it, k, 0, MAX_CLASSES, &c->n_classes, err);
    if (strcmp(k, "n_bits") == 0)
        return json_int(it, k, 1, 8, &c->n_bits, err);
    if (strcmp(k, "lu") == 0)
        return json_bool(it, k, &c->lu, err);
    if (strcmp(k, "edge_bias") == 0)
        return json_bool(it, k, &c->edge_bias, err);
    if (strcmp(k, "learn_top") == 0)
        return json_bool(it, k, &c->learn_top, err);
    if (strcmp(k, "y_condition") == 0)
        return json_bool(it, k, &c->y_condition, err);
    if (strcmp(k, "weight_y") == 0) {
        if (!cJSON_IsNumber(it)) {
            glow_errorf(err, "weight_y: must be a number");
            return -1;
        }
        c->weight_y = it->valuedouble;
        return 0;
    }
    if (strcmp(k, "coupling") == 0) {
        const char *s = cJSON_GetStringValue(it);
        if (s && strcmp(s, "affine") == 0)
            c->coupling = COUPLING_AFFINE;
        else if (s && strcmp(s, "additive") == 0)
            c->coupling = COUPLING_ADDITIVE;
        else {
            glow_errorf(err, "coupling: must be \"affine\" or \"additive\"");
            return -1;
        }
        return 0;
    }
    if (strcmp(k, "permutation") == 0) {
        const char *s = cJSON_GetStringValue(it);
        if (s && strcmp(s, "invconv") == 0)
            c->permutation = PERM_INVCONV;
        else if (s && strcmp(s, "shuffle") == 0)
            c->permutation = PERM_SHUFFLE;
        else if (s && strcmp(s, "reverse") == 0)
            c->permutation = PERM_REVERSE;
        else {
            glow_errorf(err, "permutation: must be \"invconv\", \"shuffle\" or \"reverse\"");
            return -1;
        }
        return 0;
    }
    glow_errorf(err, "%s: unknown key", k);
    return -1;
}

int glow_config_from_json(const char *json, glow_config *c, glow_error *err)
{
    glow_config_default(c);
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        glow_errorf(err, "model config: not valid JSON");
        return -1;
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        glow_errorf(err, "model config: not a JSON object");
        rc = -1;
    }
    for (const cJSON *it = root->child; rc == 0 && it; it = it->next) {
        for (const cJSON *prev = root->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0) {
                glow_errorf(err, "%s: given twice", it->string);
                rc = -1;
                break;
            }
        if (rc == 0)
            rc = parse_key(it, c, err);
    }
    cJSON_Delete(root);
    if (rc == 0)
        rc = glow_config_validate(c, err);
    return rc;
}

char *glow_config_to_json(const glow_config *c)
{
    cJSON *o = cJSON_CreateObject();
    int hw[2] = {c->image_h, c->image_w};
    cJSON_AddItemToObject(o, "image_size", cJSON_CreateIntArray(hw, 2));
    cJSON_AddNumberToObject(o, "channels", c->channels);
    cJSON_AddNumberToObject(o, "levels", c->levels);
    cJSON_AddNumberToObject(o, "steps", c->steps);
    cJSON_AddNumberToObject(o, "width", c->width);
    cJSON_AddStringToObject(o, "coupling", glow_coupling_name(c->coupling));
    cJSON_AddStringToObject(o, "permutation", glow_permutation_name(c->permutation));
    cJSON_AddBoolToObject(o, "lu", c->lu != 0);
    cJSON_AddBoolToObject(o, "edge_bias", c->edge_bias != 0);
    cJSON_AddBoolToObject(o, "learn_top", c->learn_top != 0);
    cJSON_AddBoolToObject(o, "y_condition", c->y_condition != 0);
    cJSON_AddNumberToObject(o, "n_classes", c->n_classes);
    cJSON_AddNumberToObject(o, "weight_y", c->weight_y);
    cJSON_AddNumberToObject(o, "n_bits", c->n_bits);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        glow_die(EXIT_BADINPUT, "out of memory writing the model config");
    /* cJSON allocates with malloc by default, so the caller's free() matches. */
    return s;
}

int glow_config_equal(const glow_config *a, const glow_config *b)
{
    return a->image_h == b->image_h && a->image_w == b->image_w && a->channels == b->channels &&
           a->levels == b->levels && a->steps == b->steps && a->width == b->width &&
           a->coupling == b->coupling && a->permutation == b->permutation &&
           !a->lu == !b->lu && !a->edge_bias == !b->edge_bias &&
           !a->learn_top == !b->learn_top && !a->y_condition == !b->y_condition &&
           a->n_classes == b->n_classes && a->weight_y == b->weight_y &&
           a->n_bits == b->n_bits;
}

int glow_config_diff(const glow_config *a, const char *name_a, const glow_config *b,
                    const char *name_b, char *msg, size_t len)
{
    if (glow_config_equal(a, b))
        return 0;
    /* The JSON form writes every key out, so comparing it key by key finds the
     * first difference without a second list of the model's fields. */
    char *ja = glow_config_to_json(a), *jb = glow_config_to_json(b);
    cJSON *oa = cJSON_Parse(ja), *ob = cJSON_Parse(jb);
    snprintf(msg, len, "the models differ");
    for (cJSON *ia = oa ? oa->child : NULL; ia; ia = ia->next) {
        cJSON *ib = cJSON_GetObjectItemCaseSensitive(ob, ia->string);
        char *ta = cJSON_PrintUnformatted(ia), *tb = ib ? cJSON_PrintUnformatted(ib) : NULL;
        int differ = !tb || strcmp(ta, tb) != 0;
        if (differ)
            snprintf(msg, len, "model.%s: %s in %s, %s in %s", ia->string, ta, name_a,
                     tb ? tb : "absent", name_b);
        free(ta);
        free(tb);
        if (differ)
            break;
    }
    cJSON_Delete(oa);
    cJSON_Delete(ob);
    free(ja);
    free(jb);
    return 1;
}
