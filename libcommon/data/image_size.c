/* The size cap every decoder applies once an image's header is read (image.h
 * image_check_size), apart from the decoders so that they and image.c, which
 * calls them, do not depend on each other. */
#include "image.h"

int image_check_size(uint64_t file_bytes, uint64_t w, uint64_t h, int c, const image_limits *lim,
                     glow_error *err)
{
    int oc = lim && lim->out_channels > c ? lim->out_channels : c;
    uint64_t bytes = w * h * (uint64_t)oc; /* w, h < 2^32 each: no overflow for oc < 2^32 */
    if (w && h > UINT64_MAX / w / (uint64_t)oc)
        bytes = UINT64_MAX;
    if (bytes > IMAGE_MAX_BYTES) {
        glow_errorf(err, "image of %llux%llu is too large: %llu bytes with %d channel%s, over the "
                         "limit of %zu",
                    (unsigned long long)w, (unsigned long long)h, (unsigned long long)bytes, oc,
                    oc == 1 ? "" : "s", (size_t)IMAGE_MAX_BYTES);
        return -1;
    }
    if (lim && lim->admit)
        return lim->admit(lim->ctx, file_bytes, (int)w, (int)h, c, err);
    return 0;
}
