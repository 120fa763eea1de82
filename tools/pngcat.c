/* pngcat: look at a shard stream. Writes all images as one grid PNG, or one PNG
 * per image with --split. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <errno.h>

#include "base/atomic_file.h"
#include "base/mem_budget.h"
#include "base/path.h"
#include "base/util.h"
#include "data/png_write.h"
#include "data/shard.h"
#include "tool/progress.h"
#include "tool/tool.h"

/* The grid is held as 8-bit pixels before encoding; beyond this, --split. */
#define GRID_MAX_BYTES ((uint64_t)2 << 30)
/* The memory limit without --mem-limit (when below half the available memory):
 * a record, the grid and its PNG of any real use fit in it. */
#define DEFAULT_MEM ((uint64_t)2 << 30)
#define PNG_MAX_SIDE 1000000u

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: pngcat [OPTION]... [FILE]...\n"
            "Write the images of a shard stream (FILEs in order, or standard input when\n"
            "there are none or FILE is -) as PNG: one grid of every image to standard\n"
            "output, or one file per image with --split. A FILE that is a folder stands\n"
            "for every *.glow file below it (docs/formats.md, \"Shard folders\").\n"
            "\n"
            "  -o, --output FILE  write the grid PNG to the file FILE (atomically) instead\n"
            "                     of standard output ('-o -': standard output)\n"
            "      --cols N       grid columns (default: ceil(sqrt(images)))\n"
            "      --pad P        pixels between tiles (default 2)\n"
            "      --bg V         gray level 0..255 of the padding (default 0, black)\n"
            "      --limit N      use only the first N images\n"
            "      --split DIR    write DIR/PREFIX000000.png, PREFIX000001.png, ...\n"
            "      --prefix STR   file name prefix for --split (default none)\n"
            "      --mem-limit MiB  memory for the records, the grid and its PNG (default\n"
            "                     2048, at most half the available memory); a record\n"
            "                     that would need more is refused before it is read\n"
            "  -h, --help         show this help and exit\n"
            "      --version      print the version and exit\n"
            "\n"
            "Images with 1 channel become gray PNGs, 3 channels RGB; other channel counts\n"
            "are an error. float32 values are taken as [0,1]: clamped, times 255, rounded\n"
            "(NaN becomes 0). Labels are ignored.\n"
            "Exit status: 0 ok, 1 bad or empty input, 2 usage error.\n");
}

typedef struct {
    const char *output, *split, *prefix;
    long cols, pad, bg, limit;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    enum { OPT_COLS = 256, OPT_PAD, OPT_BG, OPT_LIMIT, OPT_SPLIT, OPT_PREFIX, OPT_VERSION,
           OPT_MEM };
    static const struct option longs[] = {
        {"output", required_argument, NULL, 'o'}, {"cols", required_argument, NULL, OPT_COLS},
        {"pad", required_argument, NULL, OPT_PAD}, {"bg", required_argument, NULL, OPT_BG},
        {"limit", required_argument, NULL, OPT_LIMIT},
        {"split", required_argument, NULL, OPT_SPLIT},
        {"prefix", required_argument, NULL, OPT_PREFIX}, {"help", no_argument, NULL, 'h'},
        {"mem-limit", required_argument, NULL, OPT_MEM},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0}};
    *o = (options){NULL, NULL, "", 0, -1, -1, 0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":o:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o': o->output = optarg; break;
        case OPT_COLS: o->cols = glow_opt_long("--cols", optarg, 1, PNG_MAX_SIDE); break;
        case OPT_PAD: o->pad = glow_opt_long("--pad", optarg, 0, 1000); break;
        case OPT_BG: o->bg = glow_opt_long("--bg", optarg, 0, 255); break;
        case OPT_LIMIT: o->limit = glow_opt_long("--limit", optarg, 1, 2000000000L); break;
        case OPT_SPLIT: o->split = optarg; break;
        case OPT_PREFIX: o->prefix = optarg; break;
        case OPT_MEM: glow_tool_mem_limit(optarg); break;
        case 'h': usage(stdout); exit(EXIT_OK);
        case OPT_VERSION: glow_tool_print_version();
        case ':': glow_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: glow_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (o->split) {
        if (o->output || o->cols || o->pad >= 0 || o->bg >= 0)
            glow_usage_error("%s", "-o, --cols, --pad and --bg are for the grid, not --split");
        if (strchr(o->prefix, '/'))
            glow_usage_error("--prefix '%s' must not contain '/'", o->prefix);
    } else if (*o->prefix) {
        glow_usage_error("%s", "--prefix needs --split");
    }
    if (o->pad < 0)
        o->pad = 2;
    if (o->bg < 0)
        o->bg = 0;
    return optind;
}

/* One image of rec (index i) as interleaved 8-bit HWC. */
static void image_to_hwc(const shard_record *rec, uint32_t i, uint8_t *out)
{
    size_t plane = (size_t)rec->h * rec->w, img = plane * rec->c;
    if (rec->dtype == SHARD_U8) {
        const uint8_t *src = (const uint8_t *)rec->data + (size_t)i * img;
        if (rec->c == 1) {
            memcpy(out, src, plane);
            return;
        }
        for (size_t p = 0; p < plane; p++)
            for (uint32_t ch = 0; ch < rec->c; ch++)
                out[p * rec->c + ch] = src[ch * plane + p];
        return;
    }
    const float *src = (const float *)rec->data + (size_t)i * img;
    for (size_t p = 0; p < plane; p++)
        for (uint32_t ch = 0; ch < rec->c; ch++) {
            float v = src[ch * plane + p];
            /* !(v > 0) also catches NaN. */
            v = !(v > 0.0f) ? 0.0f : v > 1.0f ? 1.0f : v;
            out[p * rec->c + ch] = (uint8_t)(v * 255.0f + 0.5f);
        }
}


static void show_progress(glow_progress *p, uint64_t n, int final)
{
    glow_progress_draw(p, final, "%llu images", (unsigned long long)n);
    if (final)
        glow_progress_end(p);
}

typedef struct {
    uint8_t *pix; /* n images, HWC each */
    uint64_t n, cap;
    uint32_t c, h, w;
    size_t img; /* bytes per image */
    uint32_t cols, pad;
    uint8_t bg;
    uint64_t mem; /* bytes of pix reserved in the memory budget */
} grid;

/* Bytes a PNG of w x h x c pixels may take in memory (stored deflate blocks,
 * filter bytes, chunks), times two for open_memstream's growth. */
static uint64_t png_bound(uint64_t w, uint64_t h, uint64_t c)
{
    uint64_t raw = glow_mem_mul(glow_mem_mul(w, c) + 1, h);
    return glow_mem_mul(glow_mem_add(raw, raw / 1000 + 4096), 2);
}

/* What pngcat needs of a record, asked before it is decompressed: 1 or 3
 * channels, and room in the budget for it, its share of the grid (or one image
 * with --split) and, for the grid to standard output, the PNG encoded in memory. */
typedef struct {
    const options *o;
    const grid *g; /* NULL with --split */
} expect_ctx;

static int expect_record(void *ctx, const shard_record *hdr, int has_labels, glow_error *err)
{
    const expect_ctx *e = ctx;
    if (hdr->c != 1 && hdr->c != 3) {
        glow_errorf(err, "%u channels; PNG needs 1 (gray) or 3 (RGB)", hdr->c);
        return -1;
    }
    uint64_t img = (uint64_t)hdr->c * hdr->h * hdr->w;
    uint64_t raw = glow_mem_mul(img * (hdr->dtype == SHARD_F32 ? 4 : 1), hdr->n) +
                   (has_labels ? 4ull * hdr->n : 0);
    /* the PNG writer's row and zlib state come on top */
    const uint64_t writer = (uint64_t)hdr->w * hdr->c + (1u << 20);
    uint64_t need = glow_mem_add(raw, img + writer), held = 0;
    const char *what = "the record and one image";
    if (e->g) {
        uint64_t take = hdr->n, before = e->g->n;
        if (e->o->limit && before + take > (uint64_t)e->o->limit)
            take = (uint64_t)e->o->limit - before;
        uint64_t pix = glow_mem_mul(before + take, img);
        need = glow_mem_add(raw, glow_mem_add(pix, writer));
        held = e->g->mem;
        what = "the record and the grid";
        if (!e->o->output || strcmp(e->o->output, "-") == 0) {
            /* the grid's PNG, at most this many pixels (the grid is about square) */
            need = glow_mem_add(need, png_bound(pix, 1, 1));
            what = "the record, the grid and its PNG";
        }
    }
    char w[200], shape[96];
    snprintf(shape, sizeof shape, "%ux%ux%ux%u %s images", hdr->n, hdr->c, hdr->h, hdr->w,
             hdr->dtype == SHARD_F32 ? "float32" : "uint8");
    snprintf(w, sizeof w, "%s (%s)", what, shape);
    return glow_mem_check_after(need, held, w, err);
}

/* ---- --split: one PNG per image, streamed record by record ---- */

static int run_split(const options *o, shard_multi *m)
{
    glow_error err;
    if (glow_mkdir_p(o->split, &err) != 0)
        glow_die(EXIT_BADINPUT, "%s", err.msg);
    uint64_t count = 0;
    uint8_t *img = NULL;
    size_t name_len = strlen(o->prefix) + 32;
    char *name = xmalloc(name_len);
    glow_progress pr;
    glow_progress_init(&pr, 0);
    shard_record rec;
    int rc = 0;
    expect_ctx ec = {o, NULL};
    shard_multi_expect(m, expect_record, &ec);
    while ((o->limit == 0 || count < (uint64_t)o->limit) &&
           (rc = shard_multi_next(m, &rec, &err)) == 1) {
        if (!img)
            img = xmalloc((size_t)rec.c * rec.h * rec.w);
        for (uint32_t i = 0; i < rec.n && (o->limit == 0 || count < (uint64_t)o->limit); i++) {
            image_to_hwc(&rec, i, img);
            snprintf(name, name_len, "%s%06llu.png", o->prefix, (unsigned long long)count);
            char *path = glow_path_join(o->split, name);
            atomic_file af;
            if (atomic_open(&af, path, &err) != 0)
                glow_die(EXIT_BADINPUT, "%s", err.msg);
            if (glow_png_write_u8(af.f, img, rec.w, rec.h, (int)rec.c, &err) != 0) {
                atomic_abort(&af);
                glow_die(EXIT_BADINPUT, "%s: %s", path, err.msg);
            }
            if (atomic_commit(&af, &err) != 0)
                glow_die(EXIT_BADINPUT, "%s", err.msg);
            free(path);
            count++;
            show_progress(&pr, count, 0);
        }
        shard_record_free(&rec);
    }
    if (o->limit == 0 || count < (uint64_t)o->limit)
        if (rc < 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    free(img);
    free(name);
    if (count == 0)
        glow_die(EXIT_BADINPUT, "no images");
    show_progress(&pr, count, 1);
    return EXIT_OK;
}

/* ---- The grid ---- */

static void grid_row(void *ctx, uint32_t y, uint8_t *row)
{
    const grid *g = ctx;
    size_t tile = (size_t)g->w * g->c, gap = (size_t)g->pad * g->c;
    uint32_t r = y / (g->h + g->pad), off = y % (g->h + g->pad);
    if (off >= g->h) {
        memset(row, g->bg, g->cols * (tile + gap) - gap);
        return;
    }
    for (uint32_t col = 0; col < g->cols; col++) {
        uint64_t idx = (uint64_t)r * g->cols + col;
        uint8_t *dst = row + col * (tile + gap);
        if (idx < g->n)
            memcpy(dst, g->pix + idx * g->img + off * tile, tile);
        else
            memset(dst, g->bg, tile);
        if (col + 1 < g->cols)
            memset(dst + tile, g->bg, gap);
    }
}

static void grid_load(grid *g, const options *o, shard_multi *m)
{
    glow_error err;
    shard_record rec;
    int rc = 0;
    expect_ctx ec = {o, g};
    shard_multi_expect(m, expect_record, &ec);
    while ((o->limit == 0 || g->n < (uint64_t)o->limit) &&
           (rc = shard_multi_next(m, &rec, &err)) == 1) {
        if (!g->pix) {
            g->c = rec.c;
            g->h = rec.h;
            g->w = rec.w;
            g->img = (size_t)rec.c * rec.h * rec.w;
        }
        uint64_t take = rec.n;
        if (o->limit && g->n + take > (uint64_t)o->limit)
            take = (uint64_t)o->limit - g->n;
        if ((g->n + take) * g->img > GRID_MAX_BYTES)
            glow_die(EXIT_BADINPUT,
                     "more than %llu images of %ux%ux%u do not fit in one grid; "
                     "use --limit or --split",
                     (unsigned long long)(GRID_MAX_BYTES / g->img), g->c, g->h, g->w);
        if (g->n + take > g->cap) {
            uint64_t want = g->n + take, cap = g->cap ? g->cap * 2 : 256;
            if (cap < want)
                cap = want;
            if (cap * g->img > GRID_MAX_BYTES)
                cap = GRID_MAX_BYTES / g->img;
            /* the doubled capacity when the budget has room, else what is needed */
            if (cap * g->img > g->mem &&
                glow_mem_reserve(cap * g->img - g->mem, "the grid", &err) != 0) {
                cap = want;
                if (cap * g->img > g->mem &&
                    glow_mem_reserve(cap * g->img - g->mem, "the grid", &err) != 0)
                    glow_die(EXIT_BADINPUT, "%s", err.msg);
            }
            if (cap * g->img > g->mem)
                g->mem = cap * g->img;
            g->cap = cap;
            g->pix = xrealloc(g->pix, g->cap * g->img);
        }
        for (uint32_t i = 0; i < take; i++)
            image_to_hwc(&rec, i, g->pix + (g->n + i) * g->img);
        g->n += take;
        shard_record_free(&rec);
    }
    if (o->limit == 0 || g->n < (uint64_t)o->limit)
        if (rc < 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
}

static int run_grid(const options *o, shard_multi *m)
{
    grid g = {0};
    grid_load(&g, o, m);
    if (g.n == 0)
        glow_die(EXIT_BADINPUT, "no images");
    uint64_t cols = (uint64_t)o->cols;
    if (cols == 0) {
        cols = (uint64_t)sqrt((double)g.n);
        while (cols * cols < g.n)
            cols++;
    }
    if (cols > g.n)
        cols = g.n;
    uint64_t rows = (g.n + cols - 1) / cols;
    uint64_t width = cols * g.w + (cols - 1) * (uint64_t)o->pad;
    uint64_t height = rows * g.h + (rows - 1) * (uint64_t)o->pad;
    if (width > PNG_MAX_SIDE || height > PNG_MAX_SIDE)
        glow_die(EXIT_BADINPUT,
                 "a grid of %llu images in %llu columns would be %llux%llu pixels, over PNG's "
                 "%u; use --cols, --limit or --split",
                 (unsigned long long)g.n, (unsigned long long)cols, (unsigned long long)width,
                 (unsigned long long)height, PNG_MAX_SIDE);
    g.cols = (uint32_t)cols;
    g.pad = (uint32_t)o->pad;
    g.bg = (uint8_t)o->bg;

    glow_error err;
    if (o->output && strcmp(o->output, "-") != 0) {
        atomic_file af;
        if (atomic_open(&af, o->output, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        if (glow_png_write_rows(af.f, (uint32_t)width, (uint32_t)height, (int)g.c, grid_row, &g,
                                &err) != 0) {
            atomic_abort(&af);
            glow_die(EXIT_BADINPUT, "%s: %s", o->output, err.msg);
        }
        if (atomic_commit(&af, &err) != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
    } else {
        /* Encode in memory so a failure leaves stdout empty, never half a PNG. */
        char *buf = NULL;
        size_t len = 0;
        uint64_t bound = png_bound(width, height, g.c);
        if (glow_mem_reserve(bound, "the grid's PNG, encoded in memory", &err) != 0)
            glow_die(EXIT_BADINPUT, "%s (or write it with -o FILE)", err.msg);
        FILE *mem = open_memstream(&buf, &len);
        if (!mem)
            glow_die(EXIT_BADINPUT, "out of memory");
        int rc = glow_png_write_rows(mem, (uint32_t)width, (uint32_t)height, (int)g.c, grid_row,
                                     &g, &err);
        fclose(mem);
        if (rc != 0)
            glow_die(EXIT_BADINPUT, "%s", err.msg);
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
            glow_die(EXIT_BADINPUT, "standard output: write failed: %s", strerror(errno));
        free(buf);
        glow_mem_release(bound);
    }
    free(g.pix);
    glow_mem_release(g.mem);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, 0);
    glow_mem_set_default(DEFAULT_MEM);
    options o;
    int first = parse_args(argc, argv, &o);
    if (!o.split && (!o.output || strcmp(o.output, "-") == 0))
        glow_tool_no_terminal("PNG data", "redirect standard output (pngcat ... > grid.png) or "
                                          "use -o FILE");
    if (first == argc && isatty(STDIN_FILENO))
        glow_usage_error("%s", "expected a shard stream on standard input; pipe one in or name "
                               "FILEs");
    if (!o.split)
        glow_tool_no_overwrite(o.output, NULL, argc - first, argv + first);
    shard_multi *m = shard_multi_open(argc - first, argv + first);
    int rc = o.split ? run_split(&o, m) : run_grid(&o, m);
    shard_multi_close(m);
    return rc;
}
