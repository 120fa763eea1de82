/* Images: resize/crop/pad on hand-made images with known answers, channel
 * conversion, and the PNG and JPEG decoders on files written here with libpng
 * and libjpeg (every PNG colour type and depth, JPEG colour, gray and CMYK, DCT
 * scaling), plus corrupt data that must give an error, not a crash.
 *
 * With arguments the binary instead writes test images for the Bats tests:
 *   test_image --write KIND W H SEED FILE...
 * KIND is png-gray, png-rgb, png-rgba, png-palette, png-gray16, jpeg-rgb or
 * jpeg-gray; each FILE gets a different smooth image (seed, seed+1, ...). */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "check.h"
#include "data/image.h"

/* ---------- writing test files in memory ---------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void membuf_put(membuf *m, const void *src, size_t len)
{
    if (m->n + len > m->cap) {
        m->cap = (m->n + len) * 2;
        m->p = xrealloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, src, len);
    m->n += len;
}

static void png_write_mem(png_structp png, png_bytep data, size_t len)
{
    membuf_put(png_get_io_ptr(png), data, len);
}
static void png_flush_mem(png_structp png) { (void)png; }

/* Write a PNG whose rows are given already packed for (type, depth). */
static membuf make_png(int w, int h, int type, int depth, const uint8_t *rows, size_t rowbytes,
                       const png_color *palette, int npal, const uint8_t *trns, int ntrns,
                       int interlace)
{
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "make_png: libpng error\n");
        exit(1);
    }
    png_set_write_fn(png, &m, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    if (trns)
        png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rp = xmalloc((size_t)h * sizeof *rp);
    for (int y = 0; y < h; y++)
        rp[y] = (png_bytep)(rows + (size_t)y * rowbytes);
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rp);
    return m;
}

static membuf make_jpeg(int w, int h, int comps, J_COLOR_SPACE cs, const uint8_t *px, int quality)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    unsigned char *out = NULL;
    unsigned long outn = 0;
    jpeg_mem_dest(&ci, &out, &outn);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = cs;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * (size_t)w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    membuf m = {0};
    membuf_put(&m, out, outn);
    free(out);
    return m;
}

/* A smooth image (what JPEG keeps well): gradients plus a slow wave. */
static uint8_t smooth_px(int x, int y, int k, int w, int h, unsigned seed)
{
    double fx = (double)x / w, fy = (double)y / h;
    double v = 0.5 + 0.3 * sin(6.2831853 * (fx * (1 + seed % 3) + fy * (1 + (seed / 3) % 2)) + k +
                               seed) +
               0.2 * (k == 0 ? fx : k == 1 ? fy : 1 - fx);
    int iv = (int)(v * 255 + 0.5);
    return (uint8_t)(iv < 0 ? 0 : iv > 255 ? 255 : iv);
}

static void smooth_image(glow_image *im, int w, int h, int c, unsigned seed)
{
    image_alloc(im, w, h, c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                im->px[((size_t)y * (size_t)w + (size_t)x) * (size_t)c + (size_t)k] =
                    smooth_px(x, y, k, w, h, seed);
}

static uint8_t px_at(const glow_image *im, int x, int y, int k)
{
    return im->px[((size_t)y * (size_t)im->w + (size_t)x) * (size_t)im->c + (size_t)k];
}

/* ---------- geometry ---------- */

static void test_resize(void)
{
    /* 4x4 -> 2x2: each output is the mean of a 2x2 block (exact, .5 rounds up). */
    uint8_t v[16] = {0, 2, 10, 20, 4, 6, 30, 40, 100, 100, 7, 8, 100, 101, 9, 9};
    glow_image a = {4, 4, 1, v}, b;
    image_resize(&a, 2, 2, &b);
    CHECK(b.w == 2 && b.h == 2 && b.c == 1);
    CHECK(b.px[0] == 3);   /* (0+2+4+6)/4 = 3 */
    CHECK(b.px[1] == 25);  /* (10+20+30+40)/4 = 25 */
    CHECK(b.px[2] == 100); /* (100+100+100+101)/4 = 100.25 */
    CHECK(b.px[3] == 8);   /* (7+8+9+9)/4 = 8.25 */
    image_free(&b);

    /* Same size is the identity. */
    image_resize(&a, 4, 4, &b);
    CHECK(memcmp(a.px, b.px, 16) == 0);
    image_free(&b);

    /* 3 -> 2 (odd): output 0 covers [0,1.5): (1*p0 + 0.5*p1)/1.5. */
    uint8_t r[9] = {0, 30, 90, 0, 30, 90, 0, 30, 90};
    glow_image c3 = {3, 3, 1, r};
    image_resize(&c3, 2, 3, &b); /* width 3 -> 2, height kept */
    CHECK(b.w == 2 && b.h == 3);
    CHECK(b.px[0] == 10 && b.px[1] == 70 && b.px[4] == 10 && b.px[5] == 70);
    image_free(&b);

    /* 5 -> 2 in one axis: [0,2.5) and [2.5,5) */
    uint8_t f[5] = {10, 20, 30, 40, 50};
    glow_image g5 = {5, 1, 1, f};
    image_resize(&g5, 2, 1, &b);
    CHECK(b.px[0] == 18 && b.px[1] == 42); /* 45/2.5 = 18, 105/2.5 = 42 */
    image_free(&b);

    /* Upscaling is bilinear with centres at i+0.5 and clamped edges. */
    uint8_t u[2] = {0, 100};
    glow_image g2 = {2, 1, 1, u};
    image_resize(&g2, 4, 1, &b);
    CHECK(b.px[0] == 0 && b.px[1] == 25 && b.px[2] == 75 && b.px[3] == 100);
    image_free(&b);

    /* A constant image stays constant through odd down and up sizes, 3 channels. */
    glow_image k;
    image_alloc(&k, 7, 5, 3);
    for (int i = 0; i < 7 * 5; i++) {
        k.px[3 * i] = 200;
        k.px[3 * i + 1] = 17;
        k.px[3 * i + 2] = 255;
    }
    int sizes[][2] = {{3, 2}, {1, 1}, {6, 4}, {13, 11}, {7, 9}, {2, 5}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        image_resize(&k, sizes[s][0], sizes[s][1], &b);
        int ok = b.w == sizes[s][0] && b.h == sizes[s][1] && b.c == 3;
        for (int i = 0; ok && i < b.w * b.h; i++)
            ok = b.px[3 * i] == 200 && b.px[3 * i + 1] == 17 && b.px[3 * i + 2] == 255;
        CHECKF(ok, "constant image changed at %dx%d", sizes[s][0], sizes[s][1]);
        image_free(&b);
    }
    image_free(&k);

    /* Area averaging keeps the mean: a 6x6 ramp to 2x2 (blocks of 3x3). */
    glow_image ramp;
    image_alloc(&ramp, 6, 6, 1);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++)
            ramp.px[y * 6 + x] = (uint8_t)(x * 10 + y);
    image_resize(&ramp, 2, 2, &b);
    CHECK(b.px[0] == 11 && b.px[1] == 41 && b.px[2] == 14 && b.px[3] == 44);
    image_free(&b);
    image_free(&ramp);
}

static void test_crop_pad(void)
{
    glow_image im, out;
    image_alloc(&im, 5, 3, 1);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 5; x++)
            im.px[y * 5 + x] = (uint8_t)(10 * y + x);
    image_crop_center_square(&im, &out); /* 3x3 at x0 = 1 */
    CHECK(out.w == 3 && out.h == 3);
    CHECK(out.px[0] == 1 && out.px[2] == 3 && out.px[8] == 23);
    image_free(&out);
    image_free(&im);

    image_alloc(&im, 4, 7, 1); /* side 4, y0 = (7-4)/2 = 1 */
    for (int y = 0; y < 7; y++)
        for (int x = 0; x < 4; x++)
            im.px[y * 4 + x] = (uint8_t)(10 * y + x);
    image_crop_center_square(&im, &out);
    CHECK(out.w == 4 && out.h == 4 && out.px[0] == 10 && out.px[15] == 43);
    image_free(&out);

    image_crop(&im, 2, 5, 2, 2, &out);
    CHECK(out.px[0] == 52 && out.px[1] == 53 && out.px[2] == 62 && out.px[3] == 63);
    image_free(&out);
    image_free(&im);

    /* Padding: 2x2 RGB with p = 2 -> 6x6, zeros around, pixels in the middle. */
    uint8_t p[12];
    for (int i = 0; i < 12; i++)
        p[i] = (uint8_t)(i + 1);
    glow_image s = {2, 2, 3, p};
    image_pad(&s, 2, &out);
    CHECK(out.w == 6 && out.h == 6 && out.c == 3);
    int zeros = 1, inside = 1;
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++)
            for (int k = 0; k < 3; k++) {
                uint8_t v = px_at(&out, x, y, k);
                if (x >= 2 && x < 4 && y >= 2 && y < 4)
                    inside &= v == p[((y - 2) * 2 + (x - 2)) * 3 + k];
                else
                    zeros &= v == 0;
            }
    CHECK(zeros);
    CHECK(inside);
    image_free(&out);

    /* 28x28 -> 32x32 with pad 2 (the MNIST case). */
    glow_image m;
    image_alloc(&m, 28, 28, 1);
    memset(m.px, 255, 28 * 28);
    image_pad(&m, 2, &out);
    int sum = 0;
    for (int i = 0; i < 32 * 32; i++)
        sum += out.px[i] == 255;
    CHECK(out.w == 32 && out.h == 32 && sum == 28 * 28 && out.px[0] == 0 && out.px[2 * 32 + 2] == 255);
    image_free(&out);
    image_free(&m);
}

static void test_channels_layout(void)
{
    uint8_t rgb[15] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30};
    glow_image c3 = {5, 1, 3, rgb}, g, back;
    image_convert_channels(&c3, 1, &g);
    CHECK(g.c == 1 && g.w == 5);
    /* 0.299*255 = 76.2, 0.587*255 = 149.7, 0.114*255 = 29.1, 10*.299+20*.587+30*.114 = 18.15 */
    CHECK(g.px[0] == 76 && g.px[1] == 150 && g.px[2] == 29 && g.px[3] == 255 && g.px[4] == 18);
    image_convert_channels(&g, 3, &back);
    CHECK(back.c == 3 && back.px[3] == 150 && back.px[4] == 150 && back.px[5] == 150);
    image_free(&g);
    image_free(&back);

    /* HWC <-> CHW */
    uint8_t chw[15];
    image_to_chw(&c3, chw);
    CHECK(chw[0] == 255 && chw[1] == 0 && chw[4] == 10 && chw[5] == 0 && chw[6] == 255 &&
          chw[9] == 20 && chw[14] == 30);
    glow_image r;
    image_from_chw(chw, 5, 1, 3, &r);
    CHECK(memcmp(r.px, rgb, 15) == 0);
    image_free(&r);
}

/* ---------- PNG ---------- */

static int decode_png_ok(const membuf *m, glow_image *out)
{
    glow_error err = {{0}};
    int rc = image_decode(m->p, m->n, NULL, out, &err);
    if (rc != 0)
        fprintf(stderr, "decode failed: %s\n", err.msg);
    return rc == 0;
}

static void test_png(void)
{
    const int W = 5, H = 3;
    glow_image im;

    /* 8-bit gray, and the same interlaced. */
    uint8_t g8[15];
    for (int i = 0; i < 15; i++)
        g8[i] = (uint8_t)(i * 17);
    for (int il = 0; il < 2; il++) {
        membuf m = make_png(W, H, PNG_COLOR_TYPE_GRAY, 8, g8, W, NULL, 0, NULL, 0, il);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.w == W && im.h == H && im.c == 1 && memcmp(im.px, g8, 15) == 0);
        image_free(&im);
        free(m.p);
    }

    /* Gray with a transparent colour (tRNS) stays one channel. */
    {
        uint8_t row[3] = {5, 6, 7};
        png_color_16 tc = {0, 0, 0, 0, 6};
        membuf m = {0};
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        png_set_write_fn(png, &m, png_write_mem, png_flush_mem);
        png_set_IHDR(png, info, 3, 1, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_set_tRNS(png, info, NULL, 0, &tc);
        png_write_info(png, info);
        png_write_row(png, row);
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 1 && im.px[0] == 5 && im.px[1] == 6 && im.px[2] == 7);
        image_free(&im);
        free(m.p);
    }

    /* Low bit depths expand to the full 0..255 range. */
    {
        uint8_t row1[1] = {0xA0};        /* 1-bit: 1,0,1,0,0 */
        membuf m = make_png(5, 1, PNG_COLOR_TYPE_GRAY, 1, row1, 1, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 1 && im.px[0] == 255 && im.px[1] == 0 && im.px[2] == 255 && im.px[4] == 0);
        image_free(&im);
        free(m.p);
        uint8_t row2[1] = {0x1B};        /* 2-bit: 0,1,2,3 */
        m = make_png(4, 1, PNG_COLOR_TYPE_GRAY, 2, row2, 1, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.px[0] == 0 && im.px[1] == 85 && im.px[2] == 170 && im.px[3] == 255);
        image_free(&im);
        free(m.p);
        uint8_t row4[2] = {0x1F, 0x80};  /* 4-bit: 1,15,8 */
        m = make_png(3, 1, PNG_COLOR_TYPE_GRAY, 4, row4, 2, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.px[0] == 17 && im.px[1] == 255 && im.px[2] == 136);
        image_free(&im);
        free(m.p);
    }

    /* 16-bit gray: scaled with rounding (v * 255 / 65535). */
    {
        uint16_t v[4] = {0, 65535, 0x8080, 1000};
        uint8_t row[8];
        for (int i = 0; i < 4; i++) {
            row[2 * i] = (uint8_t)(v[i] >> 8); /* PNG is big-endian */
            row[2 * i + 1] = (uint8_t)v[i];
        }
        membuf m = make_png(4, 1, PNG_COLOR_TYPE_GRAY, 16, row, 8, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 1 && im.px[0] == 0 && im.px[1] == 255 && im.px[2] == 128 && im.px[3] == 4);
        image_free(&im);
        free(m.p);
    }

    /* Gray + alpha (8 and 16 bit): alpha dropped, gray kept as stored. */
    {
        uint8_t ga[6] = {10, 0, 200, 128, 255, 255};
        membuf m = make_png(3, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 6, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 1 && im.px[0] == 10 && im.px[1] == 200 && im.px[2] == 255);
        image_free(&im);
        free(m.p);
        uint8_t ga16[8] = {0x12, 0x34, 0, 0, 0xFF, 0xFF, 0x80, 0x00};
        m = make_png(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, 16, ga16, 8, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 1 && im.px[0] == 18 && im.px[1] == 255); /* 0x1234*255/65535 = 18.1 */
        image_free(&im);
        free(m.p);
    }

    /* RGB 8 and 16 bit; RGBA 8 and 16 bit. */
    {
        uint8_t rgb[15];
        for (int i = 0; i < 15; i++)
            rgb[i] = (uint8_t)(250 - i * 13);
        membuf m = make_png(5, 1, PNG_COLOR_TYPE_RGB, 8, rgb, 15, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 3 && memcmp(im.px, rgb, 15) == 0);
        image_free(&im);
        free(m.p);

        uint8_t rgb16[12] = {0xFF, 0xFF, 0, 0, 0x80, 0x80, 0x01, 0x01, 0x02, 0x02, 0xFE, 0xFE};
        m = make_png(2, 1, PNG_COLOR_TYPE_RGB, 16, rgb16, 12, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 3 && im.px[0] == 255 && im.px[1] == 0 && im.px[2] == 128 && im.px[3] == 1 &&
              im.px[4] == 2 && im.px[5] == 254);
        image_free(&im);
        free(m.p);

        uint8_t rgba[8] = {1, 2, 3, 0, 250, 251, 252, 255};
        m = make_png(2, 1, PNG_COLOR_TYPE_RGBA, 8, rgba, 8, NULL, 0, NULL, 0, 1);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 3 && im.px[0] == 1 && im.px[2] == 3 && im.px[3] == 250 && im.px[5] == 252);
        image_free(&im);
        free(m.p);

        uint8_t rgba16[8] = {0x00, 0x01, 0x7F, 0xFF, 0xFF, 0x00, 0x12, 0x34};
        m = make_png(1, 1, PNG_COLOR_TYPE_RGBA, 16, rgba16, 8, NULL, 0, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 3 && im.px[0] == 0 && im.px[1] == 127 && im.px[2] == 254);
        image_free(&im);
        free(m.p);
    }

    /* Palette at 8, 4, 2 and 1 bits, one with transparency (tRNS ignored). */
    {
        png_color pal[4] = {{10, 20, 30}, {200, 0, 100}, {0, 255, 0}, {255, 255, 255}};
        uint8_t idx8[4] = {3, 0, 2, 1};
        uint8_t trns[2] = {0, 128};
        membuf m = make_png(4, 1, PNG_COLOR_TYPE_PALETTE, 8, idx8, 4, pal, 4, trns, 2, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.c == 3 && im.px[0] == 255 && im.px[3] == 10 && im.px[4] == 20 && im.px[5] == 30 &&
              im.px[7] == 255 && im.px[9] == 200 && im.px[11] == 100);
        image_free(&im);
        free(m.p);
        uint8_t idx4[2] = {0x30, 0x21}, idx2[1] = {0xC6}, idx1[1] = {0x40};
        m = make_png(4, 1, PNG_COLOR_TYPE_PALETTE, 4, idx4, 2, pal, 4, NULL, 0, 0);
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.px[0] == 255 && im.px[3] == 10 && im.px[7] == 255 && im.px[9] == 200);
        image_free(&im);
        free(m.p);
        m = make_png(4, 1, PNG_COLOR_TYPE_PALETTE, 2, idx2, 1, pal, 4, NULL, 0, 0); /* 3,0,1,2 */
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.px[0] == 255 && im.px[3] == 10 && im.px[6] == 200 && im.px[10] == 255);
        image_free(&im);
        free(m.p);
        m = make_png(2, 1, PNG_COLOR_TYPE_PALETTE, 1, idx1, 1, pal, 2, NULL, 0, 0); /* 0,1 */
        CHECK(decode_png_ok(&m, &im));
        CHECK(im.px[0] == 10 && im.px[3] == 200 && im.px[5] == 100);
        image_free(&im);
        free(m.p);
    }
}

/* ---------- JPEG ---------- */

static double max_diff(const glow_image *a, const glow_image *b)
{
    double d = 0;
    for (size_t i = 0; i < (size_t)a->w * (size_t)a->h * (size_t)a->c; i++) {
        double e = fabs((double)a->px[i] - (double)b->px[i]);
        if (e > d)
            d = e;
    }
    return d;
}

static double mean_diff(const glow_image *a, const glow_image *b)
{
    double d = 0;
    size_t n = (size_t)a->w * (size_t)a->h * (size_t)a->c;
    for (size_t i = 0; i < n; i++)
        d += fabs((double)a->px[i] - (double)b->px[i]);
    return d / (double)n;
}

static void test_jpeg(void)
{
    glow_image src, im;
    glow_error err = {{0}};
    smooth_image(&src, 64, 48, 3, 1);
    membuf m = make_jpeg(64, 48, 3, JCS_RGB, src.px, 95);
    CHECK(image_decode(m.p, m.n, NULL, &im, &err) == 0);
    CHECK(im.w == 64 && im.h == 48 && im.c == 3);
    /* 4:2:0 chroma subsampling costs a little colour at sharp colour changes. */
    CHECKF(max_diff(&src, &im) <= 24, "max diff %g", max_diff(&src, &im));
    CHECKF(mean_diff(&src, &im) <= 2.5, "mean diff %g", mean_diff(&src, &im));
    image_free(&im);

    /* DCT scaling: the smallest M/8 scale still >= the need. */
    image_hint hint = {16, 16, 0};
    CHECK(image_decode_jpeg(m.p, m.n, &hint, &im, &err) == 0);
    CHECKF(im.w == 24 && im.h == 18, "%dx%d", im.w, im.h); /* 3/8: 48*3/8 = 18 >= 16 */
    /* The reduced decode still approximates the area-averaged full image. */
    glow_image ref;
    image_resize(&src, 24, 18, &ref);
    CHECKF(max_diff(&ref, &im) <= 24, "max diff %g", max_diff(&ref, &im));
    CHECKF(mean_diff(&ref, &im) <= 3, "mean diff %g", mean_diff(&ref, &im));
    image_free(&ref);
    image_free(&im);
    image_hint hint2 = {8, 6, 0};
    CHECK(image_decode_jpeg(m.p, m.n, &hint2, &im, &err) == 0);
    CHECK(im.w == 8 && im.h == 6);
    image_free(&im);
    image_hint hint3 = {20, 20, 1}; /* square crop: min side 48*m/8 >= 20 -> m = 4 */
    CHECK(image_decode_jpeg(m.p, m.n, &hint3, &im, &err) == 0);
    CHECK(im.w == 32 && im.h == 24);
    image_free(&im);
    image_hint big = {1000, 1000, 0}; /* never enlarges */
    CHECK(image_decode_jpeg(m.p, m.n, &big, &im, &err) == 0);
    CHECK(im.w == 64 && im.h == 48);
    image_free(&im);

    /* Corrupt JPEG data: truncated, and garbage after the start of the scan. */
    glow_error e2 = {{0}};
    CHECK(image_decode(m.p, m.n / 2, NULL, &im, &e2) == -1);
    CHECKF(strstr(e2.msg, "JPEG") != NULL, "%s", e2.msg);
    CHECK(im.px == NULL);
    uint8_t *bad = xmalloc(m.n);
    memcpy(bad, m.p, m.n);
    for (size_t i = 20; i < 200 && i < m.n; i++)
        bad[i] = (uint8_t)(i * 37);
    e2.msg[0] = 0;
    CHECK(image_decode(bad, m.n, NULL, &im, &e2) == -1);
    CHECK(e2.msg[0] != 0);
    /* Damaged entropy-coded data (libjpeg would only warn and fill gray). */
    memcpy(bad, m.p, m.n);
    for (size_t i = m.n / 2; i < m.n / 2 + 64; i++)
        bad[i] = 0xFF;
    e2.msg[0] = 0;
    int rc = image_decode(bad, m.n, NULL, &im, &e2);
    CHECKF(rc == -1, "damaged scan data decoded");
    if (rc == 0)
        image_free(&im);
    free(bad);
    free(m.p);
    image_free(&src);

    /* Grayscale JPEG decodes to one channel. */
    smooth_image(&src, 40, 40, 1, 2);
    m = make_jpeg(40, 40, 1, JCS_GRAYSCALE, src.px, 95);
    CHECK(image_decode(m.p, m.n, NULL, &im, &err) == 0);
    CHECK(im.c == 1 && im.w == 40 && max_diff(&src, &im) <= 10);
    image_free(&im);
    free(m.p);
    image_free(&src);

    /* CMYK (Adobe, inverted): 255 = no ink. Flat colours survive JPEG exactly enough. */
    uint8_t cmyk[16 * 16 * 4];
    for (int i = 0; i < 256; i++) {
        uint8_t *p = cmyk + 4 * i;
        if (i % 16 < 8) { /* white */
            p[0] = p[1] = p[2] = p[3] = 255;
        } else { /* full magenta ink: C none, M full, Y none, K none */
            p[0] = 255; p[1] = 0; p[2] = 255; p[3] = 255;
        }
    }
    m = make_jpeg(16, 16, 4, JCS_CMYK, cmyk, 100);
    CHECK(image_decode(m.p, m.n, NULL, &im, &err) == 0);
    CHECK(im.c == 3 && im.w == 16);
    if (im.px) {
        CHECK(px_at(&im, 2, 5, 0) > 245 && px_at(&im, 2, 5, 1) > 245 && px_at(&im, 2, 5, 2) > 245);
        CHECK(px_at(&im, 13, 5, 0) > 245 && px_at(&im, 13, 5, 1) < 10 && px_at(&im, 13, 5, 2) > 245);
    }
    image_free(&im);
    free(m.p);
}

static void test_corrupt_png(void)
{
    glow_image im;
    glow_error err = {{0}};
    uint8_t g[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        g[i] = (uint8_t)(i * 7 + i / 64);
    membuf m = make_png(64, 64, PNG_COLOR_TYPE_GRAY, 8, g, 64, NULL, 0, NULL, 0, 0);

    CHECK(image_decode(m.p, m.n - 40, NULL, &im, &err) == -1); /* truncated */
    CHECKF(strstr(err.msg, "PNG") != NULL, "%s", err.msg);
    CHECK(image_decode(m.p, 20, NULL, &im, &err) == -1);        /* header only */
    uint8_t *bad = xmalloc(m.n);
    memcpy(bad, m.p, m.n);
    bad[m.n / 2] ^= 0x55; /* IDAT CRC mismatch */
    CHECK(image_decode(bad, m.n, NULL, &im, &err) == -1);
    memcpy(bad, m.p, m.n);
    bad[16] = 0xFF; /* absurd width */
    CHECK(image_decode(bad, m.n, NULL, &im, &err) == -1);
    free(bad);
    CHECK(image_decode(m.p, 0, NULL, &im, &err) == -1);
    CHECK(strcmp(err.msg, "empty file") == 0);
    CHECK(image_decode("GIF89a....", 10, NULL, &im, &err) == -1);
    CHECK(strstr(err.msg, "not a PNG or JPEG") != NULL);
    free(m.p);

    CHECK(image_load("/nonexistent/x.png", NULL, &im, &err) == -1);
    CHECK(strstr(err.msg, "No such file") != NULL);
}

/* ---------- fixture writer for the Bats tests ---------- */

static int write_file(const char *path, const membuf *m)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(m->p, 1, m->n, f) != m->n || fclose(f) != 0) {
        fprintf(stderr, "test_image: %s: cannot write\n", path);
        return -1;
    }
    return 0;
}

static int write_fixtures(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: test_image --write KIND W H SEED FILE...\n");
        return 2;
    }
    const char *kind = argv[2];
    int w = atoi(argv[3]), h = atoi(argv[4]);
    unsigned seed = (unsigned)strtoul(argv[5], NULL, 10);
    if (w <= 0 || h <= 0)
        return 2;
    for (int i = 6; i < argc; i++, seed++) {
        glow_image im;
        membuf m = {0};
        int gray = strstr(kind, "gray") != NULL;
        smooth_image(&im, w, h, gray ? 1 : 3, seed);
        if (!strcmp(kind, "png-gray") || !strcmp(kind, "png-rgb")) {
            m = make_png(w, h, gray ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, im.px,
                         (size_t)w * (gray ? 1 : 3), NULL, 0, NULL, 0, 0);
        } else if (!strcmp(kind, "png-rgba")) {
            uint8_t *p = xmalloc((size_t)w * (size_t)h * 4);
            for (size_t j = 0; j < (size_t)w * (size_t)h; j++) {
                memcpy(p + 4 * j, im.px + 3 * j, 3);
                p[4 * j + 3] = (uint8_t)(j * 11);
            }
            m = make_png(w, h, PNG_COLOR_TYPE_RGBA, 8, p, (size_t)w * 4, NULL, 0, NULL, 0, 0);
            free(p);
        } else if (!strcmp(kind, "png-gray16")) {
            uint8_t *p = xmalloc((size_t)w * (size_t)h * 2);
            for (size_t j = 0; j < (size_t)w * (size_t)h; j++)
                p[2 * j] = p[2 * j + 1] = im.px[j]; /* v*257 decodes back to v */
            m = make_png(w, h, PNG_COLOR_TYPE_GRAY, 16, p, (size_t)w * 2, NULL, 0, NULL, 0, 0);
            free(p);
        } else if (!strcmp(kind, "png-palette")) {
            png_color pal[256];
            for (int j = 0; j < 256; j++)
                pal[j] = (png_color){(png_byte)j, (png_byte)(255 - j), (png_byte)(j / 2)};
            uint8_t *p = xmalloc((size_t)w * (size_t)h);
            for (size_t j = 0; j < (size_t)w * (size_t)h; j++)
                p[j] = im.px[3 * j];
            m = make_png(w, h, PNG_COLOR_TYPE_PALETTE, 8, p, (size_t)w, pal, 256, NULL, 0, 0);
            free(p);
        } else if (!strcmp(kind, "jpeg-rgb") || !strcmp(kind, "jpeg-gray")) {
            m = make_jpeg(w, h, gray ? 1 : 3, gray ? JCS_GRAYSCALE : JCS_RGB, im.px, 90);
        } else {
            fprintf(stderr, "test_image: unknown kind %s\n", kind);
            image_free(&im);
            return 2;
        }
        int rc = write_file(argv[i], &m);
        free(m.p);
        image_free(&im);
        if (rc)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--write"))
        return write_fixtures(argc, argv);
    test_resize();
    test_crop_pad();
    test_channels_layout();
    test_png();
    test_jpeg();
    test_corrupt_png();
    return check_summary();
}
