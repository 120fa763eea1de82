/* PNG encoding (libpng): 8-bit gray or RGB, to any FILE*. Decoding lives with
 * the image readers (image_*.c). */
#ifndef GLOW_PNG_WRITE_H
#define GLOW_PNG_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

/* Fills row y (w * channels bytes, interleaved) of the image being written. */
typedef void (*glow_png_row_fn)(void *ctx, uint32_t y, uint8_t *row);

/* Write a w x h image with 1 (gray) or 3 (RGB) channels, asking fill for each row
 * in order, so a large image never has to exist whole in memory. Returns 0, or
 * -1 with err set ("PNG: reason"); on error f may hold a partial image. */
int glow_png_write_rows(FILE *f, uint32_t w, uint32_t h, int channels, glow_png_row_fn fill,
                        void *ctx, glow_error *err);

/* Write pix, h rows of w * channels bytes (HWC). */
int glow_png_write_u8(FILE *f, const uint8_t *pix, uint32_t w, uint32_t h, int channels,
                      glow_error *err);

#endif
