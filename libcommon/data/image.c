#include "image.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void image_alloc(glow_image *im, int w, int h, int c)
{
    im->w = w;
    im->h = h;
    im->c = c;
    im->px = xmalloc((size_t)w * (size_t)h * (size_t)c);
}

void image_free(glow_image *im)
{
    if (!im)
        return;
    free(im->px);
    im->px = NULL;
    im->w = im->h = im->c = 0;
}

void image_convert_channels(const glow_image *src, int c, glow_image *dst)
{
    size_t npx = (size_t)src->w * (size_t)src->h;
    image_alloc(dst, src->w, src->h, c);
    const uint8_t *s = src->px;
    uint8_t *d = dst->px;
    if (src->c == c) {
        memcpy(d, s, npx * (size_t)c);
    } else if (c == 1) {
        /* Integer weights out of 1000 give the exact rounding of 0.299/0.587/0.114. */
        for (size_t i = 0; i < npx; i++, s += src->c)
            d[i] = (uint8_t)((299u * s[0] + 587u * s[1] + 114u * s[2] + 500u) / 1000u);
    } else if (src->c == 1) {
        for (size_t i = 0; i < npx; i++, d += c)
            for (int k = 0; k < c; k++)
                d[k] = s[i];
    } else {
        /* Other counts (2 or 4 from a caller's own data): keep the first channels,
         * fill missing ones with the last available. */
        for (size_t i = 0; i < npx; i++, s += src->c, d += c)
            for (int k = 0; k < c; k++)
                d[k] = s[k < src->c ? k : src->c - 1];
    }
}

void image_crop(const glow_image *src, int x0, int y0, int w, int h, glow_image *dst)
{
    image_alloc(dst, w, h, src->c);
    size_t row = (size_t)w * (size_t)src->c;
    for (int y = 0; y < h; y++)
        memcpy(dst->px + (size_t)y * row,
               src->px + ((size_t)(y0 + y) * (size_t)src->w + (size_t)x0) * (size_t)src->c, row);
}

void image_crop_center_square(const glow_image *src, glow_image *dst)
{
    int s = src->w < src->h ? src->w : src->h;
    image_crop(src, (src->w - s) / 2, (src->h - s) / 2, s, s, dst);
}

/* The source pixels that make one output pixel along one axis, with weights
 * summing to 1. */
typedef struct {
    int first, count;
    float *wt;
} axis_tap;

static axis_tap *axis_taps(int n_in, int n_out)
{
    axis_tap *t = xcalloc((size_t)n_out, sizeof *t);
    double scale = (double)n_in / (double)n_out;
    for (int i = 0; i < n_out; i++) {
        if (n_out <= n_in) {
            /* Box filter: output pixel i covers [i*scale, (i+1)*scale) of the source. */
            double lo = i * scale, hi = (i + 1) * scale;
            int j0 = (int)floor(lo), j1 = (int)ceil(hi);
            if (j1 > n_in)
                j1 = n_in;
            if (j1 <= j0)
                j1 = j0 + 1;
            t[i].first = j0;
            t[i].count = j1 - j0;
            t[i].wt = xmalloc((size_t)t[i].count * sizeof(float));
            double sum = 0, w[t[i].count];
            for (int j = j0; j < j1; j++) {
                double a = j < lo ? lo : j, b = j + 1 > hi ? hi : j + 1;
                w[j - j0] = b > a ? b - a : 0;
                sum += w[j - j0];
            }
            for (int k = 0; k < t[i].count; k++)
                t[i].wt[k] = (float)(w[k] / sum);
        } else {
            double x = (i + 0.5) * scale - 0.5;
            if (x < 0)
                x = 0;
            if (x > n_in - 1)
                x = n_in - 1;
            int j0 = (int)floor(x);
            double f = x - j0;
            t[i].first = j0;
            t[i].wt = xmalloc(2 * sizeof(float));
            if (j0 + 1 < n_in && f > 0) {
                t[i].count = 2;
                t[i].wt[0] = (float)(1 - f);
                t[i].wt[1] = (float)f;
            } else {
                t[i].count = 1;
                t[i].wt[0] = 1.0f;
            }
        }
    }
    return t;
}

static void axis_taps_free(axis_tap *t, int n)
{
    for (int i = 0; i < n; i++)
        free(t[i].wt);
    free(t);
}

void image_resize(const glow_image *src, int ow, int oh, glow_image *dst)
{
    int c = src->c, iw = src->w, ih = src->h;
    image_alloc(dst, ow, oh, c);
    axis_tap *tx = axis_taps(iw, ow), *ty = axis_taps(ih, oh);
    /* Horizontal pass over every source row into floats, then the vertical pass. */
    size_t trow = (size_t)ow * (size_t)c;
    float *tmp = xmalloc((size_t)ih * trow * sizeof(float));
    for (int y = 0; y < ih; y++) {
        const uint8_t *s = src->px + (size_t)y * (size_t)iw * (size_t)c;
        float *d = tmp + (size_t)y * trow;
        for (int x = 0; x < ow; x++) {
            const axis_tap *t = &tx[x];
            for (int k = 0; k < c; k++) {
                float acc = 0;
                for (int j = 0; j < t->count; j++)
                    acc += t->wt[j] * s[(size_t)(t->first + j) * (size_t)c + (size_t)k];
                d[(size_t)x * (size_t)c + (size_t)k] = acc;
            }
        }
    }
    float *acc = xmalloc(trow * sizeof(float));
    for (int y = 0; y < oh; y++) {
        const axis_tap *t = &ty[y];
        memset(acc, 0, trow * sizeof(float));
        for (int j = 0; j < t->count; j++) {
            const float *r = tmp + (size_t)(t->first + j) * trow;
            float wgt = t->wt[j];
            for (size_t k = 0; k < trow; k++)
                acc[k] += wgt * r[k];
        }
        uint8_t *d = dst->px + (size_t)y * trow;
        for (size_t k = 0; k < trow; k++) {
            float v = floorf(acc[k] + 0.5f);
            d[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
    free(acc);
    free(tmp);
    axis_taps_free(tx, ow);
    axis_taps_free(ty, oh);
}

void image_pad(const glow_image *src, int p, glow_image *dst)
{
    int w = src->w + 2 * p, h = src->h + 2 * p, c = src->c;
    image_alloc(dst, w, h, c);
    memset(dst->px, 0, (size_t)w * (size_t)h * (size_t)c);
    size_t row = (size_t)src->w * (size_t)c;
    for (int y = 0; y < src->h; y++)
        memcpy(dst->px + ((size_t)(y + p) * (size_t)w + (size_t)p) * (size_t)c,
               src->px + (size_t)y * row, row);
}

void image_to_chw(const glow_image *src, uint8_t *dst)
{
    size_t npx = (size_t)src->w * (size_t)src->h;
    int c = src->c;
    if (c == 1) {
        memcpy(dst, src->px, npx);
        return;
    }
    for (int k = 0; k < c; k++) {
        const uint8_t *s = src->px + k;
        uint8_t *d = dst + (size_t)k * npx;
        for (size_t i = 0; i < npx; i++)
            d[i] = s[i * (size_t)c];
    }
}

void image_from_chw(const uint8_t *chw, int w, int h, int c, glow_image *dst)
{
    image_alloc(dst, w, h, c);
    size_t npx = (size_t)w * (size_t)h;
    if (c == 1) {
        memcpy(dst->px, chw, npx);
        return;
    }
    for (int k = 0; k < c; k++) {
        const uint8_t *s = chw + (size_t)k * npx;
        uint8_t *d = dst->px + k;
        for (size_t i = 0; i < npx; i++)
            d[i * (size_t)c] = s[i];
    }
}

int image_decode_limited(const void *buf, size_t n, const image_hint *hint,
                         const image_limits *lim, glow_image *out, glow_error *err)
{
    if (image_is_png(buf, n))
        return image_decode_png_limited(buf, n, lim, out, err);
    if (image_is_jpeg(buf, n))
        return image_decode_jpeg_limited(buf, n, hint, lim, out, err);
    memset(out, 0, sizeof *out);
    glow_errorf(err, n == 0 ? "empty file" : "not a PNG or JPEG file");
    return -1;
}

int image_decode(const void *buf, size_t n, const image_hint *hint, glow_image *out,
                 glow_error *err)
{
    return image_decode_limited(buf, n, hint, NULL, out, err);
}

int image_load(const char *path, const image_hint *hint, glow_image *out, glow_error *err)
{
    return image_load_limited(path, hint, NULL, out, err);
}

int image_load_limited(const char *path, const image_hint *hint, const image_limits *lim,
                       glow_image *out, glow_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        glow_errorf(err, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        glow_errorf(err, "not a regular file");
        fclose(f);
        return -1;
    }
    if ((uint64_t)st.st_size > IMAGE_MAX_BYTES) {
        glow_errorf(err, "file too large (%lld bytes)", (long long)st.st_size);
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = xmalloc(n);
    size_t got = read_full(f, buf, n);
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad || got != n) {
        glow_errorf(err, "read error%s%s", bad ? ": " : "", bad ? strerror(e) : " (file changed while reading)");
        free(buf);
        return -1;
    }
    int rc = image_decode_limited(buf, n, hint, lim, out, err);
    free(buf);
    return rc;
}
