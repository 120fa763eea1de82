#include "latent_id.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

void latent_model_text(const glow_config *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "glow-model image_size=%dx%d channels=%d levels=%d steps=%d width=%d coupling=%s "
             "permutation=%s lu=%d edge_bias=%d learn_top=%d y_condition=%d n_classes=%d "
             "weight_y=%.17g n_bits=%d",
             c->image_h, c->image_w, c->channels, c->levels, c->steps, c->width,
             glow_coupling_name(c->coupling), glow_permutation_name(c->permutation), c->lu ? 1 : 0,
             c->edge_bias ? 1 : 0, c->learn_top ? 1 : 0, c->y_condition ? 1 : 0, c->n_classes,
             c->weight_y, c->n_bits);
}

uint64_t latent_model_id(const glow_config *c)
{
    char text[512];
    latent_model_text(c, text, sizeof text);
    uint64_t h = FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * FNV_PRIME;
    return h;
}

void latent_model_describe(const glow_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "%dx%dx%d, L=%d, K=%d, width %d, %s, %s%s%s", c->channels, c->image_h,
             c->image_w, c->levels, c->steps, c->width, glow_coupling_name(c->coupling),
             glow_permutation_name(c->permutation), c->lu ? " (LU)" : "",
             c->y_condition ? ", class-conditional" : "");
}

uint64_t latent_weights_id(glow_model *m, const glow_config *c)
{
    glow_paramset ps;
    glow_error err;
    if (glow_paramset_layout(c, &ps, &err) != 0)
        return 0;
    glow_model_get_params(m, &ps);
    uint64_t h = FNV_OFFSET;
    for (int i = 0; i < ps.n; i++) {
        const unsigned char *d = ps.v[i].data; /* float32 and int32 alike: 4 bytes each */
        for (size_t j = 0; j < ps.v[i].count; j++) {
            uint32_t w;
            memcpy(&w, d + 4 * j, 4);
            h = (h ^ w) * FNV_PRIME;
        }
    }
    glow_paramset_free(&ps);
    return h;
}

void latent_info_of(const glow_config *c, latent_layout layout, latent_info *info)
{
    memset(info, 0, sizeof *info);
    info->layout = layout;
    info->model = latent_model_id(c);
    info->levels = c->levels;
    info->c = (uint32_t)c->channels;
    info->h = (uint32_t)c->image_h;
    info->w = (uint32_t)c->image_w;
    for (int l = 0; l < c->levels; l++) {
        const int C = glow_level_channels(c, l);
        info->lat[l][0] = (uint32_t)(l == c->levels - 1 ? C : C / 2);
        info->lat[l][1] = (uint32_t)glow_level_h(c, l);
        info->lat[l][2] = (uint32_t)glow_level_w(c, l);
    }
}

int latent_check_model(const latent_info *in, const glow_config *c, const char *ckpt,
                       glow_error *err)
{
    latent_info want;
    latent_info_of(c, in->layout, &want);
    if (latent_info_equal(in, &want))
        return 0;
    char desc[256], lat[160] = "";
    latent_model_describe(c, desc, sizeof desc);
    size_t k = 0;
    for (int l = 0; l < in->levels && k + 32 < sizeof lat; l++)
        k += (size_t)snprintf(lat + k, sizeof lat - k, "%s%ux%ux%u", l ? ", " : "", in->lat[l][0],
                              in->lat[l][1], in->lat[l][2]);
    glow_errorf(err,
                "latents of model %016llx (%ux%ux%u images, %d levels: %s), but %s holds model "
                "%016llx (%s); decode with the checkpoint that made them",
                (unsigned long long)in->model, in->c, in->h, in->w, in->levels, lat, ckpt,
                (unsigned long long)want.model, desc);
    return -1;
}
