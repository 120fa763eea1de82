/* JPEG decoding with libjpeg(-turbo), from memory.
 *
 * Errors longjmp out of libjpeg back to the decoder. libjpeg only warns about
 * corrupt or truncated entropy data and fills the rest of the image with gray;
 * here such warnings are errors, because a half-gray image is a bad training
 * example. Harmless warnings (stray bytes between markers, an unknown JFIF
 * revision) are ignored.
 *
 * When shrinking, the decoder uses libjpeg's DCT scaling (scale M/8) to decode
 * at the smallest size that is still at least what the caller needs, which is
 * much cheaper than decoding at full size and averaging afterwards. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "image.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    longjmp(((jpeg_err *)cinfo->err)->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return; /* trace messages */
    int code = cinfo->err->msg_code;
    if (code == JWRN_EXTRANEOUS_DATA || code == JWRN_JFIF_MAJOR)
        return;
    longjmp(((jpeg_err *)cinfo->err)->jb, 1);
}

int image_is_jpeg(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    return n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF;
}

/* Does an output of w x h satisfy the hint? */
static int big_enough(const image_hint *hint, unsigned w, unsigned h)
{
    unsigned nw = (unsigned)hint->need_w, nh = (unsigned)hint->need_h;
    if (hint->crop_square) {
        unsigned side = w < h ? w : h, need = nw > nh ? nw : nh;
        return side >= need;
    }
    return w >= nw && h >= nh;
}

static uint8_t mul255(unsigned a, unsigned b) { return (uint8_t)((a * b + 127u) / 255u); }

int image_decode_jpeg(const void *buf, size_t n, const image_hint *hint, glow_image *out,
                      glow_error *err)
{
    return image_decode_jpeg_limited(buf, n, hint, NULL, out, err);
}

int image_decode_jpeg_limited(const void *buf, size_t n, const image_hint *hint,
                              const image_limits *lim, glow_image *out, glow_error *err)
{
    memset(out, 0, sizeof *out);
    if (!image_is_jpeg(buf, n)) {
        glow_errorf(err, "JPEG: not a JPEG file (bad signature)");
        return -1;
    }
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    uint8_t *volatile px = NULL;
    uint8_t *volatile cmyk = NULL;
    if (setjmp(jerr.jb)) {
        char msg[JMSG_LENGTH_MAX];
        jerr.pub.format_message((j_common_ptr)&cinfo, msg);
        glow_errorf(err, "JPEG: %s", msg);
        free(px);
        free(cmyk);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, (unsigned char *)buf, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);

    int is_cmyk = 0, c;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        c = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        is_cmyk = 1;
        c = 3;
        break;
    default:
        cinfo.out_color_space = JCS_RGB;
        c = 3;
        break;
    }

    cinfo.scale_denom = 8;
    cinfo.scale_num = 8;
    if (hint && (hint->need_w > 0 || hint->need_h > 0)) {
        for (unsigned m = 1; m <= 8; m++) {
            cinfo.scale_num = m;
            jpeg_calc_output_dimensions(&cinfo);
            if (big_enough(hint, cinfo.output_width, cinfo.output_height))
                break;
        }
    }
    /* The size before libjpeg allocates for it: a progressive image keeps the
     * coefficients of the whole image (2 bytes each), and libjpeg's own memory is
     * held to the same cap. */
    jpeg_calc_output_dimensions(&cinfo);
    {
        glow_error why;
        uint64_t iw = cinfo.image_width, ih = cinfo.image_height;
        int coef_c = 2 * cinfo.num_components;
        if ((cinfo.progressive_mode && image_check_size(0, iw, ih, coef_c, NULL, &why) != 0) ||
            image_check_size(n, cinfo.output_width, cinfo.output_height, is_cmyk ? 4 : c, lim,
                             &why) != 0) {
            glow_errorf(err, "JPEG: %s", why.msg);
            jpeg_destroy_decompress(&cinfo);
            return -1;
        }
    }
    cinfo.mem->max_memory_to_use = 2 * (long)IMAGE_MAX_BYTES;
    jpeg_start_decompress(&cinfo);
    size_t w = cinfo.output_width, h = cinfo.output_height;
    int oc = cinfo.output_components;
    if (oc != (is_cmyk ? 4 : c))
        ERREXIT(&cinfo, JERR_CONVERSION_NOTIMPL);
    size_t rowbytes = w * (size_t)oc;
    uint8_t *dst = xmalloc(w * h * (size_t)oc);
    if (is_cmyk)
        cmyk = dst;
    else
        px = dst;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = dst + (size_t)cinfo.output_scanline * rowbytes;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);

    if (is_cmyk) {
        /* Adobe writers (the only common source of CMYK JPEGs) store inverted
         * ink amounts, flagged by the Adobe marker. */
        int inverted = cinfo.saw_Adobe_marker;
        px = xmalloc(w * h * 3);
        for (size_t i = 0; i < w * h; i++) {
            const uint8_t *s = cmyk + 4 * i;
            unsigned k = inverted ? s[3] : 255u - s[3];
            for (int j = 0; j < 3; j++)
                px[3 * i + (size_t)j] = mul255(inverted ? s[j] : 255u - s[j], k);
        }
        free(cmyk);
        cmyk = NULL;
    }
    jpeg_destroy_decompress(&cinfo);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->px = px;
    return 0;
}
