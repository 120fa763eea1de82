#include "png_write.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* libpng reports errors through a callback that must not return; it records the
 * message here and longjmps back to glow_png_write_rows. */
typedef struct {
    glow_error *err;
} png_err_ctx;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err_ctx *c = png_get_error_ptr(png);
    glow_errorf(c->err, "PNG: %s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

/* libpng's own writer says only "Write Error": this one says why (a full disk). */
static void write_data(png_structp png, png_bytep data, size_t len)
{
    FILE *f = png_get_io_ptr(png);
    if (fwrite(data, 1, len, f) != len) {
        char msg[128];
        snprintf(msg, sizeof msg, "write failed: %s", strerror(errno));
        png_error(png, msg);
    }
}

static void flush_data(png_structp png) { fflush(png_get_io_ptr(png)); }

int glow_png_write_rows(FILE *f, uint32_t w, uint32_t h, int channels, glow_png_row_fn fill,
                        void *ctx, glow_error *err)
{
    if (channels != 1 && channels != 3) {
        glow_errorf(err, "PNG: %d channels; only 1 (gray) or 3 (RGB) can be written", channels);
        return -1;
    }
    if (w == 0 || h == 0 || w > PNG_USER_WIDTH_MAX || h > PNG_USER_HEIGHT_MAX) {
        glow_errorf(err, "PNG: image size %ux%u is outside 1..%d", w, h, PNG_USER_WIDTH_MAX);
        return -1;
    }
    png_err_ctx ec = {err};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ec, on_error, on_warning);
    if (!png) {
        glow_errorf(err, "PNG: out of memory");
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    /* volatile: assigned after setjmp and freed after a longjmp. */
    uint8_t *volatile row = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        if (!info)
            glow_errorf(err, "PNG: out of memory");
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(row);
        return -1;
    }
    png_set_write_fn(png, f, write_data, flush_data);
    /* Speed over size: these files are for looking at, and level 3 with the
     * cheap filters costs a fraction of libpng's defaults for a few % more. */
    png_set_compression_level(png, 3);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB | PNG_FILTER_UP);
    png_set_IHDR(png, info, w, h, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    png_write_info(png, info);
    row = xmalloc((size_t)w * (size_t)channels);
    for (uint32_t y = 0; y < h; y++) {
        fill(ctx, y, row);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    if (fflush(f) != 0 || ferror(f)) {
        glow_errorf(err, "write failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

typedef struct {
    const uint8_t *pix;
    size_t stride;
} whole_image;

static void copy_row(void *ctx, uint32_t y, uint8_t *row)
{
    const whole_image *im = ctx;
    memcpy(row, im->pix + (size_t)y * im->stride, im->stride);
}

int glow_png_write_u8(FILE *f, const uint8_t *pix, uint32_t w, uint32_t h, int channels,
                      glow_error *err)
{
    whole_image im = {pix, (size_t)w * (size_t)channels};
    return glow_png_write_rows(f, w, h, channels, copy_row, &im, err);
}
