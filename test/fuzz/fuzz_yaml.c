/* libFuzzer harness: the YAML config reader (config/yaml_config.c) on any text;
 * a config it accepts and validates is written back and must read back the same
 * (the writer and the reader agree on every key). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/yaml_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) /* the reader's own file limit */
        return 0;
    glow_run_config cfg, back;
    glow_error err;
    if (glow_run_config_parse_string((const char *)data, size, "fuzz", &cfg, &err) != 0) {
        if (strncmp(err.msg, "fuzz", 4) != 0)
            __builtin_trap();
        return 0;
    }
    if (glow_run_config_validate(&cfg, &err) != 0)
        return 0;
    char *yaml = glow_run_config_to_yaml(&cfg);
    if (glow_run_config_parse_string(yaml, strlen(yaml), "again", &back, &err) != 0 ||
        glow_run_config_validate(&back, &err) != 0 || !glow_config_equal(&cfg.model, &back.model))
        __builtin_trap();
    char *yaml2 = glow_run_config_to_yaml(&back);
    if (strcmp(yaml, yaml2) != 0)
        __builtin_trap();
    free(yaml);
    free(yaml2);
    return 0;
}
