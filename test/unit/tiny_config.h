/* Small models for the tests: tiny_config() is the model of configs/tiny.yml (1x8x8,
 * L=2, K=2, width 8, the spec defaults otherwise; test_yaml_config checks that the
 * two agree), and tiny_config(.channels = 3, .width = 32) the same with the shape
 * fields given replaced (image_h, image_w, channels, levels, steps, width; a field
 * given as 0 keeps tiny.yml's value). Options other than the shape are set on the
 * result. */
#ifndef GLOW_TEST_TINY_CONFIG_H
#define GLOW_TEST_TINY_CONFIG_H

#include "config/glow_config.h"

typedef struct {
    int given_; /* lets tiny_config() take no arguments */
    int image_h, image_w, channels, levels, steps, width;
} tiny_shape;

static inline glow_config tiny_config_of(tiny_shape s)
{
    glow_config c;
    glow_config_default(&c);
    c.image_h = s.image_h ? s.image_h : 8;
    c.image_w = s.image_w ? s.image_w : 8;
    c.channels = s.channels ? s.channels : 1;
    c.levels = s.levels ? s.levels : 2;
    c.steps = s.steps ? s.steps : 2;
    c.width = s.width ? s.width : 8;
    return c;
}
#define tiny_config(...) tiny_config_of((tiny_shape){.given_ = 1, __VA_ARGS__})

#endif
