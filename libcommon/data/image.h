/* Decoded 8-bit images and the few geometric operations data preparation needs:
 * channel conversion, crop, resize and zero padding.
 *
 * Pixels are interleaved (HWC, row-major, no row padding) because that is what
 * the decoders produce; image_to_chw turns an image into the planar NCHW layout
 * of the shard stream. Every function that makes a new image allocates with
 * xmalloc (so it never fails) and the caller frees it with image_free. */
#ifndef GLOW_IMAGE_H
#define GLOW_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct {
    int w, h, c;   /* c: 1 (gray) or 3 (RGB); the operations accept any c >= 1 */
    uint8_t *px;   /* h*w*c bytes, HWC */
} glow_image;

/* Largest decoded image accepted, in bytes, counted with the more of the decoded
 * channels and the channels it will be converted to (image_limits): a corrupt or
 * hostile header cannot make a decoder, or the conversion after it, ask for
 * more. */
#define IMAGE_MAX_BYTES ((size_t)1 << 30)

void image_alloc(glow_image *im, int w, int h, int c); /* contents undefined */
void image_free(glow_image *im);

/* Convert to c channels: 1 -> 3 replicates gray; 3 -> 1 uses the ITU-R BT.601
 * luma weights 0.299 R + 0.587 G + 0.114 B, rounded to nearest. */
void image_convert_channels(const glow_image *src, int c, glow_image *dst);

/* Copy the w x h window whose top-left pixel is (x0, y0); it must lie inside. */
void image_crop(const glow_image *src, int x0, int y0, int w, int h, glow_image *dst);
/* The centred square of side min(w, h); an odd excess puts the extra pixel on
 * the right/bottom side (offset = excess / 2, rounded down). */
void image_crop_center_square(const glow_image *src, glow_image *dst);

/* Resize to ow x oh, each axis on its own (separable):
 * - shrinking (or equal size): exact area averaging, each output pixel the mean
 *   of the source area it covers, fractional pixels weighted by their covered
 *   fraction (a box filter, so no aliasing);
 * - enlarging: bilinear interpolation with pixel centres at i + 0.5 and the
 *   edge pixels repeated.
 * Sums are kept in float between the two passes and rounded once at the end. */
void image_resize(const glow_image *src, int ow, int oh, glow_image *dst);

/* Add p zero pixels on every side. */
void image_pad(const glow_image *src, int p, glow_image *dst);

/* Write the image planar (CHW) into dst, c*h*w bytes. */
void image_to_chw(const glow_image *src, uint8_t *dst);
/* Build an image from planar CHW bytes. */
void image_from_chw(const uint8_t *chw, int w, int h, int c, glow_image *dst);

/* ---- Decoding ----
 * A hint lets a decoder that can scale while decoding (JPEG's DCT scaling) pick
 * the smallest scale that still gives at least the size later steps need. */
typedef struct {
    int need_w, need_h; /* 0: decode at full size */
    int crop_square;    /* the image will be centre-cropped to a square first */
} image_hint;

/* All decoders return 0, or -1 with err set to a reason (no file name). They
 * never print and never abort on corrupt data. Output has 1 channel for gray
 * sources and 3 otherwise: alpha is dropped (colour values kept as stored, not
 * composited on any background), 16-bit samples are scaled to 8 bits with
 * rounding, palette and low bit depths are expanded. */
int image_decode_png(const void *buf, size_t n, glow_image *out, glow_error *err);
int image_decode_jpeg(const void *buf, size_t n, const image_hint *hint, glow_image *out,
                      glow_error *err);
/* What a caller will do with a decoded image, asked once its size is known from
 * the header and before the pixels are allocated: out_channels (0: as decoded)
 * counts in the IMAGE_MAX_BYTES cap, and admit (NULL: none) may refuse the
 * image (returning -1 with err set) or wait until memory is free for it. */
typedef struct {
    int out_channels;
    int (*admit)(void *ctx, uint64_t file_bytes, int w, int h, int c, glow_error *err);
    void *ctx;
} image_limits;
int image_decode_png_limited(const void *buf, size_t n, const image_limits *lim, glow_image *out,
                             glow_error *err);
int image_decode_jpeg_limited(const void *buf, size_t n, const image_hint *hint,
                              const image_limits *lim, glow_image *out, glow_error *err);
int image_decode_limited(const void *buf, size_t n, const image_hint *hint,
                         const image_limits *lim, glow_image *out, glow_error *err);
int image_load_limited(const char *path, const image_hint *hint, const image_limits *lim,
                       glow_image *out, glow_error *err);
/* The cap check: w x h with the more of c and lim->out_channels within
 * IMAGE_MAX_BYTES, then lim->admit. Returns 0 or -1 with err set. */
int image_check_size(uint64_t file_bytes, uint64_t w, uint64_t h, int c, const image_limits *lim,
                     glow_error *err);

/* Choose the decoder by the data's signature. */
int image_decode(const void *buf, size_t n, const image_hint *hint, glow_image *out,
                 glow_error *err);
/* Read and decode a file; err gets the reason only (callers add the name). */
int image_load(const char *path, const image_hint *hint, glow_image *out, glow_error *err);

/* 1 when the bytes start with a PNG or JPEG signature. */
int image_is_png(const void *buf, size_t n);
int image_is_jpeg(const void *buf, size_t n);

#endif
