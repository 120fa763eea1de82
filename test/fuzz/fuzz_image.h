/* The PNG and JPEG harnesses: decode as glow-prep does (to 3 channels, each
 * image admitted by its size first), then glow-prep's steps: centre crop,
 * resize to 32x32, pad, planar. Images over 16 MiB on their way are refused by
 * the admission, as a small --mem-limit would. */
#include <stdint.h>
#include <string.h>

#include "data/image.h"

static int admit(void *ctx, uint64_t file, int w, int h, int c, glow_error *err)
{
    (void)ctx;
    if ((uint64_t)w * (uint64_t)h * (uint64_t)(c > 3 ? c : 3) * 3 + file > (16u << 20)) {
        glow_errorf(err, "too large for the fuzzer");
        return -1;
    }
    return 0;
}

static int decode_like_prep(const uint8_t *data, size_t size, int jpeg)
{
    image_limits lim = {3, admit, NULL};
    image_hint hint = {32, 32, 1};
    glow_image im, t;
    glow_error err;
    int rc = jpeg ? image_decode_jpeg_limited(data, size, &hint, &lim, &im, &err)
                  : image_decode_png_limited(data, size, &lim, &im, &err);
    if (rc != 0)
        return 0;
    if (im.w <= 0 || im.h <= 0 || (im.c != 1 && im.c != 3) || !im.px)
        __builtin_trap();
    image_convert_channels(&im, 3, &t);
    image_free(&im);
    im = t;
    if (im.w != im.h) {
        image_crop_center_square(&im, &t);
        image_free(&im);
        im = t;
    }
    image_resize(&im, 32, 32, &t);
    image_free(&im);
    im = t;
    image_pad(&im, 2, &t);
    image_free(&im);
    im = t;
    uint8_t chw[3 * 36 * 36];
    image_to_chw(&im, chw);
    image_free(&im);
    return chw[0] & 0;
}
