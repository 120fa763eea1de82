/* PNG decoding with libpng, from memory. libpng reports errors by calling our
 * error function, which records the message and longjmps back here, so corrupt
 * data ends in an error value, never in an abort. */
#include <png.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

typedef struct {
    const uint8_t *p;
    size_t n, off;
} png_mem;

static void png_mem_read(png_structp png, png_bytep out, size_t len)
{
    png_mem *m = png_get_io_ptr(png);
    if (len > m->n - m->off)
        png_error(png, "file is truncated");
    memcpy(out, m->p + m->off, len);
    m->off += len;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    glow_errorf(png_get_error_ptr(png), "PNG: %s", msg);
    png_longjmp(png, 1);
}

/* Warnings (an odd ancillary chunk, a known-bad sRGB profile) do not make the
 * pixels wrong, so they are not shown for every image of a data set. */
static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int image_is_png(const void *buf, size_t n)
{
    return n >= 8 && png_sig_cmp((png_const_bytep)buf, 0, 8) == 0;
}

int image_decode_png(const void *buf, size_t n, glow_image *out, glow_error *err)
{
    return image_decode_png_limited(buf, n, NULL, out, err);
}

int image_decode_png_limited(const void *buf, size_t n, const image_limits *lim, glow_image *out,
                             glow_error *err)
{
    memset(out, 0, sizeof *out);
    if (!image_is_png(buf, n)) {
        glow_errorf(err, "PNG: not a PNG file (bad signature)");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, err, png_on_error,
                                             png_on_warning);
    if (!png) {
        glow_errorf(err, "PNG: cannot create decoder");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        glow_errorf(err, "PNG: cannot create decoder");
        return -1;
    }
    png_mem src = {buf, n, 0};
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &src, png_mem_read);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), type = png_get_color_type(png, info);
    if (type == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (type == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    /* Expanding a palette also turns a tRNS chunk into alpha, dropped with the rest. */
    if ((type & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (c != 1 && c != 3)
        png_error(png, "unsupported colour layout");
    glow_error why;
    if (image_check_size(n, w, h, c, lim, &why) != 0)
        png_error(png, why.msg);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (rowbytes != (size_t)w * (size_t)c)
        png_error(png, "unexpected row size");
    px = xmalloc(rowbytes * h);
    rows = xmalloc(h * sizeof *rows);
    for (png_uint_32 y = 0; y < h; y++)
        rows[y] = px + (size_t)y * rowbytes;
    png_read_image(png, rows);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->px = px;
    return 0;
}
