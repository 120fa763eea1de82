#include "train_data.h"

#include <stdlib.h>
#include <string.h>

int glow_train_data_is_stream(int n, char *const *inputs)
{
    return n == 0 || (n == 1 && strcmp(inputs[0], "-") == 0);
}

void glow_train_shape_hint(const dataset_info *in, const glow_config *m, char *buf, size_t n)
{
    int dh = m->image_h - (int)in->h, dw = m->image_w - (int)in->w;
    if ((int)in->c != m->channels)
        snprintf(buf, n, "glow-prep --channels %d", m->channels);
    else if (dh > 0 && dw > 0 && dh == dw && dh % 2 == 0)
        snprintf(buf, n, "glow-prep --pad %d", dh / 2);
    else
        snprintf(buf, n, "glow-prep --size %dx%d", m->image_h, m->image_w);
}

static int check_labels(dataset *d, const char *what, int n_classes, int part, int parts,
                        glow_error *err)
{
    const dataset_info *in = dataset_get_info(d);
    /* 4096 images at a time, or fewer when they are large (16 MiB at most) */
    const size_t img = (size_t)in->c * in->h * in->w;
    const uint32_t chunk = img > (16u << 20) / 4096 ? (uint32_t)((16u << 20) / img + 1) : 4096;
    uint8_t *px = xmalloc((size_t)chunk * img);
    int32_t *lb = xmalloc(chunk * sizeof(int32_t));
    const uint64_t lo = in->n_images * (uint64_t)part / (uint64_t)parts;
    const uint64_t hi = in->n_images * (uint64_t)(part + 1) / (uint64_t)parts;
    uint64_t index = lo;
    int n = 0, rc = 0;
    dataset_seq_seek(d, lo);
    while (rc == 0 && index < hi &&
           (n = dataset_read_seq(d, hi - index < chunk ? (uint32_t)(hi - index) : chunk, px, lb,
                                 err)) > 0) {
        for (int i = 0; i < n && rc == 0; i++)
            if (lb[i] < 0 || lb[i] >= n_classes) {
                glow_errorf(err, "%s image %llu (in stored order): label %d outside 0..%d "
                                 "(model.n_classes is %d)",
                            what, (unsigned long long)(index + (uint64_t)i), lb[i], n_classes - 1,
                            n_classes);
                rc = -1;
            }
        index += (uint64_t)n;
    }
    if (rc == 0 && n < 0)
        rc = -1;
    dataset_rewind(d);
    free(px);
    free(lb);
    return rc;
}

static int shape_check(const dataset_info *in, const char *what, const glow_config *m,
                       glow_error *err)
{
    if ((int)in->c != m->channels || (int)in->h != m->image_h || (int)in->w != m->image_w) {
        char hint[64];
        glow_train_shape_hint(in, m, hint, sizeof hint);
        glow_errorf(err, "%s%simages are %ux%ux%u but the model expects %dx%dx%d; %s", what,
                    *what ? " " : "", in->c, in->h, in->w, m->channels, m->image_h, m->image_w,
                    hint);
        return -1;
    }
    return 0;
}

int glow_train_data_expect(void *ctx, const shard_record *hdr, int has_labels, glow_error *err)
{
    dataset_info in = {hdr->c, hdr->h, hdr->w, has_labels, hdr->n, 1};
    return shape_check(&in, "", ctx, err);
}

int glow_train_data_check(dataset *d, const char *what, const glow_config *m, glow_error *err)
{
    return glow_train_data_check_part(d, what, m, 0, 1, err);
}

int glow_train_data_check_part(dataset *d, const char *what, const glow_config *m, int part,
                               int parts, glow_error *err)
{
    const dataset_info *in = dataset_get_info(d);
    if (shape_check(in, what, m, err) != 0)
        return -1;
    if (m->y_condition && !in->has_labels) {
        glow_errorf(err, "the model is class-conditional (y_condition) but the %s images have no "
                         "labels (glow-prep --labels ...)",
                    what);
        return -1;
    }
    return m->y_condition ? check_labels(d, what, m->n_classes, part, parts, err) : 0;
}
