#include "run_config.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"

void glow_run_config_default(glow_run_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    glow_config_default(&cfg->model);
    glow_train_config_default(&cfg->train);
}

int glow_run_config_validate(const glow_run_config *cfg, glow_error *err)
{
    if (glow_config_validate(&cfg->model, err)) {
        glow_error_prefix(err, "model");
        /* "model: key: reason" reads better as "model.key: reason". */
        char *colon = strchr(err->msg, ':');
        if (colon && colon[1] == ' ' && strchr(colon + 2, ':')) {
            colon[0] = '.';
            memmove(colon + 1, colon + 2, strlen(colon + 2) + 1);
        }
        return -1;
    }
    return glow_train_config_validate(&cfg->train, err);
}

int glow_train_config_validate(const glow_train_config *t, glow_error *err)
{
    /* The key table addresses fields of a whole run config. */
    glow_run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.train = *t;
    char why[256];
    for (int i = 0; i < config_nkeys; i++) {
        const key_def *k = &config_keys[i];
        if (config_same_section(k->section, "train") &&
            config_check_value(k, &cfg, why, sizeof why)) {
            glow_errorf(err, "train.%s: %s", k->name, why);
            return -1;
        }
    }
    if (t->warmup > 0 && t->warmup_steps > 0) {
        glow_errorf(err, "train.warmup, train.warmup_steps: both are set; give one (warmup counts "
                         "images, warmup_steps optimizer steps)");
        return -1;
    }
    if ((t->steps > 0) == (t->epochs > 0)) {
        glow_errorf(err, t->steps > 0 ? "train.steps, train.epochs: both are set; give one"
                                      : "train.steps or train.epochs: one of them is required");
        return -1;
    }
    return 0;
}

char *glow_train_config_to_json(const glow_train_config *t)
{
    glow_run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.train = *t;
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < config_nkeys; i++) {
        const key_def *k = &config_keys[i];
        if (!config_same_section(k->section, "train") || config_unset(k, &cfg) ||
            (k->omit_default && config_is_default(k, &cfg)))
            continue;
        const char *field = (const char *)&cfg + k->offset;
        int e;
        uint64_t u;
        char buf[32];
        switch (k->type) {
        case K_INT:
        case K_LONG:
            /* As an integer: cJSON would print 1000000 as 1e+06, which a config
             * does not take for an integer. */
            snprintf(buf, sizeof buf, "%.0f", config_number(k, &cfg));
            cJSON_AddRawToObject(o, k->name, buf);
            break;
        case K_LIST: {
            glow_number_list l;
            memcpy(&l, field, sizeof l);
            char text[GLOW_NUMBER_LIST_MAX * 26 + 4];
            config_format_list(&l, ",", text, sizeof text);
            cJSON_AddRawToObject(o, k->name, text);
            break;
        }
        case K_DOUBLE:
            /* cJSON's own printing rounds to 15 digits when that looks close
             * enough; a resumed run must get the exact value back. */
            if (!isfinite(config_number(k, &cfg))) {
                cJSON_AddNullToObject(o, k->name); /* JSON has no inf or nan */
                break;
            }
            config_format_double(config_number(k, &cfg), buf, sizeof buf);
            cJSON_AddRawToObject(o, k->name, buf);
            break;
        case K_U64:
            memcpy(&u, field, sizeof u);
            snprintf(buf, sizeof buf, "%" PRIu64, u);
            cJSON_AddStringToObject(o, k->name, buf);
            break;
        case K_ENUM:
            memcpy(&e, field, sizeof e);
            cJSON_AddStringToObject(o, k->name, config_enum_name(k, e));
            break;
        case K_STRING: cJSON_AddStringToObject(o, k->name, field); break;
        case K_BOOL:
        case K_SIZE: break; /* the train section has none */
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        glow_die(EXIT_BADINPUT, "out of memory writing the train config");
    return s;
}

int glow_train_config_from_json(const char *json, glow_train_config *t, glow_error *err)
{
    glow_run_config cfg;
    glow_run_config_default(&cfg);
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        glow_errorf(err, "train config: not a JSON object");
        cJSON_Delete(root);
        return -1;
    }
    int rc = 0;
    for (const cJSON *it = root->child; rc == 0 && it; it = it->next) {
        int i = config_find_key("train", it->string);
        if (i < 0) {
            glow_errorf(err, "train.%s: unknown key", it->string);
            rc = -1;
            break;
        }
        for (const cJSON *prev = root->child; prev != it; prev = prev->next)
            if (strcmp(prev->string, it->string) == 0) {
                glow_errorf(err, "train.%s: given twice", it->string);
                rc = -1;
            }
        if (rc)
            break;
        /* JSON strings are taken as they are, numbers in full precision; anything
         * else is read as YAML (JSON's true, false, null, arrays are YAML too) by
         * the same setters. */
        char why[512];
        if (cJSON_IsString(it)) {
            rc = config_set_text(&config_keys[i], &cfg, it->valuestring, 0, why, sizeof why);
        } else if (cJSON_IsNumber(it)) {
            char text[40];
            const key_type ty = config_keys[i].type;
            /* An integer key written as 1e+06 by an earlier version reads back as
             * the integer it is. */
            if ((ty == K_INT || ty == K_LONG) && it->valuedouble == floor(it->valuedouble) &&
                fabs(it->valuedouble) < 9e18)
                snprintf(text, sizeof text, "%.0f", it->valuedouble);
            else
                config_format_double(it->valuedouble, text, sizeof text);
            rc = config_set_text(&config_keys[i], &cfg, text, 1, why, sizeof why);
        } else {
            char *text = cJSON_PrintUnformatted(it);
            if (!text)
                glow_die(EXIT_BADINPUT, "out of memory");
            rc = config_set_text(&config_keys[i], &cfg, text, 1, why, sizeof why);
            free(text);
        }
        if (rc)
            glow_errorf(err, "train.%s: %s", it->string, why);
    }
    cJSON_Delete(root);
    if (rc)
        return -1;
    if (glow_train_config_validate(&cfg.train, err))
        return -1;
    *t = cfg.train;
    return 0;
}
