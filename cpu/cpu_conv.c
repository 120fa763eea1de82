/* Convolutions through oneDNN. Activations stay in plain NHWC (so the element-wise
 * ops see a plain layout); weights go to whatever format oneDNN prefers through a
 * reorder per call (weights change every step; the reorder is small next to the
 * conv), except in the gemm form below: a 1x1 convolution between wide sides is a
 * matrix product, which oneDNN's sgemm computes from the weights as they are.
 *
 * The edge channel (docs/model.md section 4) is a separate contribution: a conv over
 * [x, edge] equals conv(x, W[:, :C]) plus, at border pixels only, the sum of the
 * edge taps that fall on the padding. Its filter gradient sums dy over the border
 * pixels whose taps reach the padding; its data gradient is not needed.
 *
 * Tap form. oneDNN's direct 3x3 kernels vectorise over channels, so a 3x3
 * convolution with few output channels (a coupling network's conv3: 128 -> 4)
 * or few input channels (conv1: 2 -> 128) runs at a fraction of the machine's
 * speed. Such a convolution is computed instead through a 1x1 convolution over
 * its nine taps, which has 9x the channels on the narrow side:
 *   few outputs: Z = X * Wv (1x1, cin -> 9 cout, Wv[t*cout + o][c] = W[o][c][t]),
 *                Y(p) = sum over taps t of Z(p + off_t)[t*cout + o];
 *                the filter gradient is the 1x1 filter gradient of X against
 *                S(p)[t*cout + o] = dY(p - off_t)[o] (zero outside the image);
 *   few inputs:  Y = S * Wu (1x1, 9 cin -> cout) with S(p)[t*cin + c] = X(p + off_t)[c],
 *                and the data gradient dX(p)[c] = sum over t of dS(p - off_t)[t*cin + c]
 *                from the 1x1 data gradient dS = dY * Wu.
 * The 1x1 convolutions are products by oneDNN's sgemm, like the gemm form below,
 * with the weights permuted into the layout each product reads, and the filter
 * gradient's partials in the layout of dw's taps. (As oneDNN 1x1 convolutions
 * they needed a weight reorder per pass on the calling thread while the other
 * threads waited, 4 per coupling layer; and sgemm's product takes 2.15 ms where
 * the 1x1 filter gradient took 3.11, 512 -> 108 at 16x16, batch 16, 2 threads.)
 * The same chunks as below, the taps summed in a fixed order: deterministic.
 *
 * Threads: the batch is cut into chunks of a fixed number of images. Each chunk
 * runs on one thread with primitives created for one thread (their own stream
 * and scratchpad), and the chunks run in parallel. This scales better on few
 * cores than oneDNN's own splitting of one call, and it makes the filter
 * gradient deterministic: oneDNN would split its reduction over images between
 * threads, so its bits would depend on the thread count; here each chunk's
 * partial gradient is computed alone and the partials are added in chunk order.
 * Primitives are created on first use of a shape and kept.
 *
 * Each pass is a plan (cpu_conv_plan.h): made ready (weights reordered, edge map
 * built), then run chunk by chunk, then finished (partial gradients added). The
 * single operations run a plan's chunks in parallel; the coupling network
 * (cpu_net.c) runs chunk c of its three layers' plans on one thread. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "backend/ew_math.h"
#include "cpu_conv_plan.h"

/* Images per chunk: at least 2, and enough for CONV_CHUNK_PIXELS pixels (small
 * images make small calls, whose fixed cost would dominate), but no more than a
 * quarter of the batch, so that threads can share the work. The filter gradient
 * of a convolution with a large weight (at least CONV_WIDE_W values) takes 4x the
 * pixels: each chunk writes a whole partial gradient, which the combine reads
 * again (512 -> 512 1x1 at 16x16, batch 32, before such shapes took the gemm
 * form: 86 -> 96 GFLOP/s per core, bench/conv_ops). Depends on the shape only,
 * never on the thread count. */
#define CONV_CHUNK_PIXELS 512
#define CONV_WIDE_W 65536
enum { OP_FWD = 0, OP_BWD_DATA = 1, OP_BWD_W = 2 };
static int op_chunk_images(const bk_conv *d, int op)
{
    int hw = d->h * d->w;
    const double nw = (double)d->cin * d->cout * d->k * d->k;
    const int px = op == OP_BWD_W && nw >= CONV_WIDE_W ? 4 * CONV_CHUNK_PIXELS : CONV_CHUNK_PIXELS;
    int c = (px + hw - 1) / hw;
    if (c < 2)
        c = 2;
    if (c > d->n / 4)
        c = d->n / 4 > 1 ? d->n / 4 : 1;
    return c < d->n ? c : d->n;
}

/* One operation of one shape, as chunk primitives: variant 0 for chunk_images
 * images, variant 1 for the last chunk (fewer images when n is not a multiple). */
typedef struct {
    int ready;
    int nchunk, chunk_n, last_n;
    dnnl_primitive_t prim[2];
    dnnl_memory_desc_t md_x[2], md_y[2];
    dnnl_memory_desc_t md_w;   /* weights (fwd, bwd data) or diff weights (bwd w) */
    dnnl_primitive_t wreorder; /* user -> md_w, or md_w -> user for bwd w; NULL: same */
    float *wbuf;               /* reordered weights, or nchunk partial gradients */
    size_t w_floats, scratch_bytes;
    void *scratch;             /* nchunk scratchpads */
    dnnl_stream_t *streams;    /* one per chunk */
} chunk_op;

struct conv_prim {
    bk_conv d;
    dnnl_memory_desc_t md_wuser; /* strided [cout, cin, k, k] view of [cout, cin+E, k, k] */
    chunk_op op[3];
    float *dx_tmp;
    /* tap form (3x3 only): per chunk a buffer of the chunk's rows x 9 x (cout or
     * cin) values; the weights in the layout of the product a pass takes; the
     * filter gradient's partials, one per chunk */
    float *tap;
    size_t tap_chunk;
    float *wtap;
    float *wpart;
    /* the edge channel: the border pixels and their map (built per forward pass),
     * the filter gradient's sums per border pixel; made on first use */
    struct edge_map *em;
    double *edge_s;
    conv_prim *next;
};

/* Which 3x3 convolutions take the tap form, by shape alone (never by the thread
 * count or the machine), from single-core timings with bench/conv_ops (GFLOP/s,
 * direct -> tap form):
 *   few outputs (the forward pass and the filter gradient): conv3 128 -> 4 at
 *     16x16 29 -> 51 and 24 -> 61, 128 -> 8 at 8x8 65 -> 80 and 60 -> 85, 512 -> 12
 *     89 -> 93 and 79 -> 89; but 128 -> 16 at 4x4 118 -> 77, and with few inputs
 *     as well (a split prior, 2 -> 4) the 1x1 convolution is as narrow as before;
 *   few inputs, data gradient: conv1 2 -> 128 at 16x16 22 -> 60, 4 -> 128 43 -> 77,
 *     6 -> 512 43 -> 100; its forward pass only gains when the outputs are many
 *     (6 -> 512: 68 -> 97; 2 -> 128: 93 -> 91).
 * Those timings took the tap form's product as a oneDNN 1x1 convolution; with
 * sgemm, every op of every 3x3 convolution with a side of up to 64 channels in
 * the tap form measured within the spread of the runs (some ops better, some
 * worse; conv_ops B and A128, 2026-12-02), so the choice stays. */
#define TAP_COUT_MAX 12
#define TAP_CIN_MAX 8
#define TAP_WIDE 32  /* the other side at least this wide */
#define TAP_FWD_IN_WIDE 256
#define TAP_MAX 12 /* the larger of the two */
enum { FORM_DIRECT, FORM_TAPS_OUT, FORM_TAPS_IN };
static int tap_form(const bk_conv *d, int op)
{
    if (d->k != 3)
        return FORM_DIRECT;
    const int out = d->cout <= TAP_COUT_MAX && d->cin >= TAP_WIDE;
    switch (op) {
    case OP_FWD:
        return out ? FORM_TAPS_OUT
                   : d->cin <= TAP_CIN_MAX && d->cout >= TAP_FWD_IN_WIDE ? FORM_TAPS_IN : FORM_DIRECT;
    case OP_BWD_DATA:
        return d->cin <= TAP_CIN_MAX && d->cout >= TAP_WIDE ? FORM_TAPS_IN : FORM_DIRECT;
    default:
        return out ? FORM_TAPS_OUT : FORM_DIRECT;
    }
}

/* Gemm form: a 1x1 convolution is a matrix product over the pixels (NHWC rows):
 * y[p][o] = sum_c x[p][c] w[o][c], and the weights in the model's layout [cout,
 * cin] are already a matrix the product takes as it is. Between wide sides it is
 * computed by oneDNN's sgemm instead of its convolution, with no weight reorder
 * (the convolution reorders each weight to a blocked layout for each call), the
 * forward pass and data gradient by the same image chunks as a convolution, and
 * the filter gradient in blocks of GEMM_W_ROWS output channels, each over all the
 * pixels of the batch: no partial gradients to add, the result in the model's
 * layout. Every call runs on one thread with a shape fixed by the convolution's
 * shape: the same bits for any thread count. bench/conv_ops, wall ms with 2
 * threads, convolution -> sgemm: 512 -> 512, batch 16, at 16x16 / 8x8 / 4x4:
 * forward 10.96 -> 10.76 / 2.77 -> 2.65 / 1.07 -> 0.86, data gradient 10.57 ->
 * 9.89 / 2.75 -> 2.44 / 0.80 -> 0.64, filter gradient 12.85 -> 9.74 / 3.52 ->
 * 2.52 / 1.09 -> 0.69; 128 -> 128, batch 32, 16x16: 1.49 -> 1.34, 1.79 -> 1.26,
 * 3.00 -> 1.23. Narrow sides stay with the convolution (512 -> 108, a tap form's
 * product: sgemm 6.6 ms of CPU against 4.9). */
#define GEMM_MIN_CH 128
#define GEMM_W_ROWS 64
static int gemm_form(const bk_conv *d)
{
    return d->k == 1 && !d->edge && d->cin >= GEMM_MIN_CH && d->cout >= GEMM_MIN_CH;
}

_Noreturn void cpu_fail(const char *what, dnnl_status_t st)
{
    glow_die(1, "backend: oneDNN %s failed (status %d)", what, (int)st);
}

static void *amalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        glow_die(1, "backend: out of memory (%zu bytes)", bytes);
    return p;
}

/* C = op(A) op(B) + beta C (row-major) on the calling thread: oneDNN's sgemm
 * splits a call between threads when it is not inside a parallel region, and
 * its sums would then depend on the thread count. */
static void sgemm1(char ta, char tb, dnnl_dim_t m, dnnl_dim_t n, dnnl_dim_t k, const float *a,
                   dnnl_dim_t lda, const float *b, dnnl_dim_t ldb, float beta, float *c, dnnl_dim_t ldc)
{
    const int nt = omp_get_max_threads();
    if (nt > 1)
        omp_set_num_threads(1);
    dnnl_status_t st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    if (nt > 1)
        omp_set_num_threads(nt);
    if (st != dnnl_success)
        cpu_fail("sgemm", st);
}

static void md_act(dnnl_memory_desc_t *md, int n, int c, int h, int w)
{
    dnnl_dims_t dims = {n, c, h, w};
    DN(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nhwc));
}

static dnnl_primitive_t make_reorder(cpu_ctx *ctx, const dnnl_memory_desc_t *from,
                                     const dnnl_memory_desc_t *to)
{
    if (dnnl_memory_desc_equal(from, to))
        return NULL;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p;
    DN(dnnl_reorder_primitive_desc_create(&pd, from, ctx->eng, to, ctx->eng, NULL));
    DN(dnnl_primitive_create(&p, pd));
    dnnl_primitive_desc_destroy(pd);
    return p;
}

static conv_prim *get_prim(cpu_ctx *ctx, const bk_conv *d)
{
    for (conv_prim *p = ctx->convs; p; p = p->next)
        if (memcmp(&p->d, d, sizeof *d) == 0)
            return p;
    if (d->k != 1 && d->k != 3)
        glow_die(1, "backend: convolution kernel %d (1 or 3 expected)", d->k);
    conv_prim *p = xcalloc(1, sizeof *p);
    p->d = *d;
    const int e = d->edge ? 1 : 0;
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k};
    dnnl_dims_t ws = {(dnnl_dim_t)(d->cin + e) * d->k * d->k, d->k * d->k, d->k, 1};
    DN(dnnl_memory_desc_init_by_strides(&p->md_wuser, 4, wd, dnnl_f32, ws));
    p->next = ctx->convs;
    ctx->convs = p;
    return p;
}

/* A memory descriptor of pd; oneDNN returns NULL for one it does not have. */
static const dnnl_memory_desc_t *query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
    if (!md)
        glow_die(1, "backend: oneDNN convolution without memory descriptor %d", (int)what);
    return md;
}

/* The primitive descriptor of one operation for n images, weights md given (or any). */
static dnnl_primitive_desc_t make_pd(cpu_ctx *ctx, const bk_conv *d, int op, int n,
                                     const dnnl_memory_desc_t *wmd, dnnl_primitive_attr_t attr,
                                     dnnl_memory_desc_t *x, dnnl_memory_desc_t *y)
{
    md_act(x, n, d->cin, d->h, d->w);
    md_act(y, n, d->cout, d->h, d->w);
    dnnl_memory_desc_t wany;
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k}, st = {1, 1};
    dnnl_dim_t p = d->k == 3 ? 1 : 0;
    dnnl_dims_t pad = {p, p};
    if (wmd)
        wany = *wmd;
    else
        DN(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t fd, cd;
    DN(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct, x,
                                          &wany, NULL, y, st, pad, pad));
    dnnl_primitive_desc_t hint = NULL, pd;
    if (op == OP_FWD) {
        DN(dnnl_primitive_desc_create(&pd, &fd, attr, ctx->eng, NULL));
        return pd;
    }
    DN(dnnl_primitive_desc_create(&hint, &fd, attr, ctx->eng, NULL));
    if (op == OP_BWD_DATA)
        DN(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, x, &wany, y, st,
                                                    pad, pad));
    else
        DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, x, &wany,
                                                       NULL, y, st, pad, pad));
    DN(dnnl_primitive_desc_create(&pd, &cd, attr, ctx->eng, hint));
    dnnl_primitive_desc_destroy(hint);
    return pd;
}

#define REORDER_PAR_W 65536
static void setup_op(cpu_ctx *ctx, conv_prim *cp, int op)
{
    chunk_op *o = &cp->op[op];
    const bk_conv *d = &cp->d;
    o->chunk_n = op_chunk_images(d, op);
    o->nchunk = (d->n + o->chunk_n - 1) / o->chunk_n;
    o->last_n = d->n - (o->nchunk - 1) * o->chunk_n;
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr));
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    /* primitives that each run on one thread (the reorders of small weights too:
     * a parallel region costs more than it saves there): created while OpenMP
     * offers one thread */
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    size_t sb = 64;
    for (int v = 0; v < 2; v++) {
        int n = v == 0 ? o->chunk_n : o->last_n;
        dnnl_primitive_desc_t pd = make_pd(ctx, d, op, n, v ? &o->md_w : NULL, attr, &o->md_x[v],
                                           &o->md_y[v]);
        if (v == 0)
            o->md_w = *query_md(pd, op == OP_BWD_W ? dnnl_query_diff_weights_md
                                                   : dnnl_query_weights_md);
        size_t s = dnnl_memory_desc_get_size(query_md(pd, dnnl_query_scratchpad_md));
        if (s > sb)
            sb = s;
        DN(dnnl_primitive_create(&o->prim[v], pd));
        dnnl_primitive_desc_destroy(pd);
    }
    o->w_floats = dnnl_memory_desc_get_size(&o->md_w) / sizeof(float);
    /* a large weight's reorder is worth all threads (B's 3x3 weights at 8x8 and
     * 4x4 have 60-220 thousand values); a copy, so the same bits */
    if (o->w_floats >= REORDER_PAR_W)
        omp_set_num_threads(saved);
    if (op == OP_BWD_W)
        o->wreorder = make_reorder(ctx, &o->md_w, &cp->md_wuser);
    else
        o->wreorder = make_reorder(ctx, &cp->md_wuser, &o->md_w);
    omp_set_num_threads(saved);
    dnnl_primitive_attr_destroy(attr);
    o->scratch_bytes = (sb + 63) / 64 * 64;
    o->scratch = amalloc((size_t)o->nchunk * o->scratch_bytes);
    o->streams = xcalloc((size_t)o->nchunk, sizeof *o->streams);
    for (int i = 0; i < o->nchunk; i++)
        DN(dnnl_stream_create(&o->streams[i], ctx->eng, dnnl_stream_default_flags));
    o->wbuf = amalloc((op == OP_BWD_W ? (size_t)o->nchunk : 1) * o->w_floats * sizeof(float));
    o->ready = 1;
}

static void exec(cpu_ctx *ctx, dnnl_primitive_t prim, dnnl_stream_t s, int nargs,
                 const int *kinds, const dnnl_memory_desc_t *const *mds, void *const *ptrs)
{
    dnnl_exec_arg_t args[5];
    for (int i = 0; i < nargs; i++) {
        args[i].arg = kinds[i];
        DN(dnnl_memory_create(&args[i].memory, mds[i], ctx->eng, ptrs[i]));
    }
    DN(dnnl_primitive_execute(prim, s, nargs, args));
    DN(dnnl_stream_wait(s));
    for (int i = 0; i < nargs; i++)
        dnnl_memory_destroy(args[i].memory);
}

static void reorder(cpu_ctx *ctx, dnnl_primitive_t r, const dnnl_memory_desc_t *from,
                    const void *src, const dnnl_memory_desc_t *to, void *dst)
{
    int kinds[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    const dnnl_memory_desc_t *mds[2] = {from, to};
    void *ptrs[2] = {(void *)src, dst};
    exec(ctx, r, ctx->stream, 2, kinds, mds, ptrs);
}

/* Border pixels of an h x w image, in a fixed order. */
static int is_border(int i, int j, int h, int w) { return i == 0 || j == 0 || i == h - 1 || j == w - 1; }

/* The edge channel's contribution at border pixel (i, j), output channel o. */
static float edge_tap_sum(const float *we, int i, int j, int H, int W)
{
    float s = 0;
    for (int ky = 0; ky < 3; ky++)
        for (int kx = 0; kx < 3; kx++) {
            int yy = i + ky - 1, xx = j + kx - 1;
            if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                s += we[ky * 3 + kx];
        }
    return s;
}

/* The edge channel's output: nonzero at border pixels only, the same for every
 * image, so it is a map of border pixels x output channels. */
typedef struct edge_map {
    int nb;
    int *pix;   /* border pixel indices i*W + j */
    float *map; /* nb x cout */
} edge_map;

/* cp's edge map, its border pixel list made (and its buffers) on first use; kept
 * with the shape, where allocating it per pass cost page faults on every call */
static edge_map *edge_ready(conv_prim *cp)
{
    if (cp->em)
        return cp->em;
    const bk_conv *d = &cp->d;
    const int H = d->h, W = d->w;
    edge_map *em = xcalloc(1, sizeof *em);
    em->pix = xmalloc((size_t)4 * (H + W) * sizeof *em->pix);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            if (is_border(i, j, H, W))
                em->pix[em->nb++] = i * W + j;
    em->map = amalloc((size_t)em->nb * d->cout * sizeof *em->map);
    cp->edge_s = amalloc((size_t)em->nb * d->cout * sizeof *cp->edge_s);
    cp->em = em;
    return em;
}

/* A border pixel's taps on the padding depend only on which sides of the image
 * it touches (top, bottom, left, right): each such class's sums are computed
 * once, for the first pixel of the class, and copied to the others (the same
 * taps added in the same order: the same values). */
static const edge_map *edge_map_build(conv_prim *cp, const float *wt)
{
    const bk_conv *d = &cp->d;
    const int cin1 = d->cin + 1, H = d->h, W = d->w, co = d->cout;
    edge_map *em = edge_ready(cp);
    int first[16];
    for (int k = 0; k < 16; k++)
        first[k] = -1;
    for (int p = 0; p < em->nb; p++) {
        const int i = em->pix[p] / W, j = em->pix[p] % W;
        const int k = (i == 0) | (i == H - 1) << 1 | (j == 0) << 2 | (j == W - 1) << 3;
        float *mp = em->map + (size_t)p * co;
        if (first[k] >= 0) {
            memcpy(mp, em->map + (size_t)first[k] * co, (size_t)co * sizeof *mp);
            continue;
        }
        first[k] = p;
        for (int o = 0; o < co; o++)
            mp[o] = edge_tap_sum(wt + ((size_t)o * cin1 + d->cin) * 9, i, j, H, W);
    }
    return em;
}

/* y += the map, for images n0 .. n0+nimg-1 */
static void edge_map_add(const bk_conv *d, const edge_map *em, float *y, size_t n0, int nimg)
{
    const int co = d->cout;
    for (size_t n = n0; n < n0 + (size_t)nimg; n++)
        for (int p = 0; p < em->nb; p++) {
            float *yp = y + (n * d->h * d->w + em->pix[p]) * co;
            const float *mp = em->map + (size_t)p * co;
#pragma omp simd
            for (int o = 0; o < co; o++)
                yp[o] += mp[o];
        }
}

/* What the forward pass does to each chunk's output right after its convolution,
 * on the same thread while the chunk is in cache: the edge map, then the affine
 * (x + bias) * s with optional ReLU (the formula of actnorm_fwd). */
typedef struct {
    const edge_map *em;
    const float *bias, *s; /* NULL: no affine */
    int relu;
} fwd_post;

static void apply_post(const bk_conv *d, const fwd_post *fp, float *y, size_t n0, int nimg)
{
    if (fp->em)
        edge_map_add(d, fp->em, y, n0, nimg);
    if (!fp->s)
        return;
    const int co = d->cout;
    const float lo = fp->relu ? 0.0f : -INFINITY;
    const size_t r0 = n0 * d->h * d->w, r1 = r0 + (size_t)nimg * d->h * d->w;
    for (size_t r = r0; r < r1; r++) {
        float *yp = y + r * co;
#pragma omp simd
        for (int o = 0; o < co; o++) {
            float v = ew_actnorm_fwd(yp[o], fp->bias[o], fp->s[o]);
            yp[o] = v > lo ? v : lo;
        }
    }
}

/* One call of op over the chunks: the weights in oneDNN's format, the argument
 * kinds and the scratchpad's descriptor. */
typedef struct {
    const void *w;
    const dnnl_memory_desc_t *wmd;
    dnnl_memory_desc_t md_scr;
    int kinds[4];
} op_call;

static void op_call_init(cpu_ctx *ctx, conv_prim *cp, int op, const float *w, op_call *oc)
{
    chunk_op *o = &cp->op[op];
    if (!o->ready)
        setup_op(ctx, cp, op);
    oc->w = w;
    if (op != OP_BWD_W && o->wreorder) {
        reorder(ctx, o->wreorder, &cp->md_wuser, w, &o->md_w, o->wbuf);
        oc->w = o->wbuf;
    }
    oc->wmd = op != OP_BWD_W && !o->wreorder ? &cp->md_wuser : &o->md_w;
    switch (op) {
    case OP_FWD:
        oc->kinds[0] = DNNL_ARG_SRC, oc->kinds[1] = DNNL_ARG_DST, oc->kinds[2] = DNNL_ARG_WEIGHTS;
        break;
    case OP_BWD_DATA:
        oc->kinds[0] = DNNL_ARG_DIFF_SRC, oc->kinds[1] = DNNL_ARG_DIFF_DST,
        oc->kinds[2] = DNNL_ARG_WEIGHTS;
        break;
    default:
        oc->kinds[0] = DNNL_ARG_SRC, oc->kinds[1] = DNNL_ARG_DIFF_DST,
        oc->kinds[2] = DNNL_ARG_DIFF_WEIGHTS;
    }
    oc->kinds[3] = DNNL_ARG_SCRATCHPAD;
    dnnl_dims_t sd = {(dnnl_dim_t)o->scratch_bytes};
    DN(dnnl_memory_desc_init_by_tag(&oc->md_scr, 1, sd, dnnl_u8, dnnl_x));
}

/* Chunk c of op on this thread: a is the chunk's x (fwd, bwd w) or dx (bwd data), b
 * its y or dy; the filter gradient goes to the chunk's partial. */
static void op_exec_chunk(cpu_ctx *ctx, conv_prim *cp, int op, const op_call *oc, int c, float *a,
                          float *b)
{
    chunk_op *o = &cp->op[op];
    const int v = c == o->nchunk - 1 ? 1 : 0;
    void *wc = op == OP_BWD_W ? (void *)(o->wbuf + (size_t)c * o->w_floats) : (void *)oc->w;
    void *ptrs[4] = {a, b, wc, (char *)o->scratch + (size_t)c * o->scratch_bytes};
    const dnnl_memory_desc_t *mds[4] = {&o->md_x[v], &o->md_y[v], oc->wmd, &oc->md_scr};
    exec(ctx, o->prim[v], o->streams[c], 4, oc->kinds, mds, ptrs);
}

/* Chunks run in parallel when there are several and the work is worth a region. */
static int parallel_chunks(const bk_conv *d, int nchunk)
{
    const double work = (double)d->n * d->h * d->w * d->cin * d->cout * d->k * d->k;
    return nchunk > 1 && work > 1e6;
}

static int chunk_nimg(const chunk_op *o, int c) { return c == o->nchunk - 1 ? o->last_n : o->chunk_n; }

/* The partial filter gradients of op's chunks, added in chunk order into the
 * first: each value is sum_0 + sum_1 + ... in that order. By blocks of the
 * weights, a partial at a time, so the adds are vector adds over contiguous
 * values (a loop over the chunks per value reads them 64 KiB apart, one float at
 * a time: 4-5 ms of A128's step, on the calling thread); the same adds in the
 * same order, so the same bits. */
#define COMBINE_BLOCK 2048
static void combine_partials(float *sum, size_t nw, int nchunk)
{
    const size_t nb = (nw + COMBINE_BLOCK - 1) / COMBINE_BLOCK;
#pragma omp parallel for schedule(static) if (nw * nchunk > CPU_PAR_MEM)
    for (size_t b = 0; b < nb; b++) {
        const size_t i0 = b * COMBINE_BLOCK, i1 = i0 + COMBINE_BLOCK < nw ? i0 + COMBINE_BLOCK : nw;
        for (int c = 1; c < nchunk; c++) {
            const float *part = sum + (size_t)c * nw;
#pragma omp simd
            for (size_t i = i0; i < i1; i++)
                sum[i] += part[i];
        }
    }
}

/* ---- the tap form ---- */

/* dst(p)[t*ch + c] = src(p + sign * off_t)[c], 0 where that falls outside the image;
 * nimg images of h x w, src dense [.., ch], dst dense [.., 9 ch] */
static inline __attribute__((always_inline)) void taps_spread_ch(const float *src, const int ch, int sign,
                                                                 float *dst, int nimg, int h, int w)
{
    const size_t hw = (size_t)h * w, ld = (size_t)9 * ch;
    for (int im = 0; im < nimg; im++)
        for (int i = 0; i < h; i++) {
            float *drow = dst + ((size_t)im * hw + (size_t)i * w) * ld;
            for (int ky = 0; ky < 3; ky++) {
                const int ii = i + sign * (ky - 1);
                const float *srow = ii >= 0 && ii < h ? src + ((size_t)im * hw + (size_t)ii * w) * ch : NULL;
                for (int kx = 0; kx < 3; kx++) {
                    const int sx = sign * (kx - 1), t = ky * 3 + kx;
                    for (int j = 0; j < w; j++) {
                        float *o = drow + (size_t)j * ld + (size_t)t * ch;
                        const int jj = j + sx;
                        if (!srow || jj < 0 || jj >= w) {
                            for (int c = 0; c < ch; c++)
                                o[c] = 0.0f;
                            continue;
                        }
                        const float *sp = srow + (size_t)jj * ch;
                        for (int c = 0; c < ch; c++)
                            o[c] = sp[c];
                    }
                }
            }
        }
}

/* dst(p)[c] (+)= the sum over taps t, in order, of src(p + sign * off_t)[t*ch + c]
 * inside the image; ch <= TAP_MAX */
static inline __attribute__((always_inline)) void taps_sum_ch(const float *src, const int ch, int sign,
                                                              float *dst, int accumulate, int nimg, int h,
                                                              int w)
{
    const size_t hw = (size_t)h * w, ld = (size_t)9 * ch;
    for (int im = 0; im < nimg; im++)
        for (int i = 0; i < h; i++) {
            const float *srow[3];
            for (int ky = 0; ky < 3; ky++) {
                const int ii = i + sign * (ky - 1);
                srow[ky] = ii >= 0 && ii < h ? src + ((size_t)im * hw + (size_t)ii * w) * ld + (size_t)ky * 3 * ch
                                             : NULL;
            }
            for (int j = 0; j < w; j++) {
                float acc[TAP_MAX];
                for (int c = 0; c < ch; c++)
                    acc[c] = 0.0f;
                for (int ky = 0; ky < 3; ky++) {
                    if (!srow[ky])
                        continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const int jj = j + sign * (kx - 1);
                        if (jj < 0 || jj >= w)
                            continue;
                        const float *sp = srow[ky] + (size_t)jj * ld + (size_t)kx * ch;
                        for (int c = 0; c < ch; c++)
                            acc[c] += sp[c];
                    }
                }
                float *o = dst + ((size_t)im * hw + (size_t)i * w + j) * ch;
                if (accumulate)
                    for (int c = 0; c < ch; c++)
                        o[c] += acc[c];
                else
                    for (int c = 0; c < ch; c++)
                        o[c] = acc[c];
            }
        }
}

/* taps_spread_ch and taps_sum_ch compiled for the channel counts of the model's
 * narrow sides (2, 4, 8 and 16 channels in a level for C0 = 1; 6, 12 for C0 = 3) */
static void taps_spread(const float *src, int ch, int sign, float *dst, int nimg, int h, int w)
{
    switch (ch) {
    case 2: taps_spread_ch(src, 2, sign, dst, nimg, h, w); break;
    case 4: taps_spread_ch(src, 4, sign, dst, nimg, h, w); break;
    case 6: taps_spread_ch(src, 6, sign, dst, nimg, h, w); break;
    case 8: taps_spread_ch(src, 8, sign, dst, nimg, h, w); break;
    case 12: taps_spread_ch(src, 12, sign, dst, nimg, h, w); break;
    default: taps_spread_ch(src, ch, sign, dst, nimg, h, w);
    }
}

static void taps_sum(const float *src, int ch, int sign, float *dst, int accumulate, int nimg, int h, int w)
{
    switch (ch) {
    case 2: taps_sum_ch(src, 2, sign, dst, accumulate, nimg, h, w); break;
    case 4: taps_sum_ch(src, 4, sign, dst, accumulate, nimg, h, w); break;
    case 6: taps_sum_ch(src, 6, sign, dst, accumulate, nimg, h, w); break;
    case 8: taps_sum_ch(src, 8, sign, dst, accumulate, nimg, h, w); break;
    case 12: taps_sum_ch(src, 12, sign, dst, accumulate, nimg, h, w); break;
    default: taps_sum_ch(src, ch, sign, dst, accumulate, nimg, h, w);
    }
}

/* The tap form's 1x1 convolution: cin -> 9 cout over the outputs, 9 cin -> cout
 * over the inputs; its chunks are those a 1x1 convolution of that shape takes. */
static bk_conv tap_shape(const bk_conv *d, int out)
{
    bk_conv v = {d->n, d->h, d->w, out ? d->cin : 9 * d->cin, out ? 9 * d->cout : d->cout, 1, 0};
    return v;
}

static void tap_chunks(const bk_conv *d, int out, int op, int *nchunk, int *chunk_n, int *last_n)
{
    const bk_conv v = tap_shape(d, out);
    *chunk_n = op_chunk_images(&v, op);
    *nchunk = (d->n + *chunk_n - 1) / *chunk_n;
    *last_n = d->n - (*nchunk - 1) * *chunk_n;
}

/* The tap form's buffers of cp, made on first use: a tap buffer per chunk for the
 * largest chunks of any pass in the tap form, the weights, the partials. */
static void taps_ready(conv_prim *cp)
{
    if (cp->tap)
        return;
    const bk_conv *d = &cp->d;
    int out = 0, in = 0;
    for (int op = 0; op < 3; op++) {
        out |= tap_form(d, op) == FORM_TAPS_OUT;
        in |= tap_form(d, op) == FORM_TAPS_IN;
    }
    const int cols = 9 * ((out ? d->cout : 0) > (in ? d->cin : 0) ? d->cout : d->cin);
    int cn = 1, nchunk = 1;
    for (int op = 0; op < 3; op++)
        for (int k = 0; k < 2; k++) {
            if (!(k ? in : out))
                continue;
            int nc, c, last;
            tap_chunks(d, !k, op, &nc, &c, &last);
            cn = c > cn ? c : cn;
            nchunk = nc > nchunk ? nc : nchunk;
        }
    cp->tap_chunk = (size_t)cn * d->h * d->w * cols;
    cp->tap = amalloc((size_t)nchunk * cp->tap_chunk * sizeof(float));
    cp->wtap = amalloc((size_t)9 * d->cout * d->cin * sizeof(float));
    if (tap_form(d, OP_BWD_W) == FORM_TAPS_OUT) {
        int nc, c, last;
        tap_chunks(d, 1, OP_BWD_W, &nc, &c, &last);
        cp->wpart = amalloc((size_t)nc * 9 * d->cout * d->cin * sizeof(float));
    }
}

/* W [cout, cin+E, 3, 3] -> the tap form's weights, as its product reads them
 * (row-major, the 9 taps t outer to the channels):
 *   TAPW_OUT [cin, 9 cout] (the forward over the outputs: Z = X Wt),
 *   TAPW_IN  [9 cin, cout] (the forward over the inputs: Y = S Wt),
 *   TAPW_IN_T [cout, 9 cin] (the data gradient over the inputs: dS = dY Wt). */
enum { TAPW_OUT, TAPW_IN, TAPW_IN_T };
static void weights_to_taps(const bk_conv *d, const float *w, int layout, float *wt)
{
    const int ci = d->cin, co = d->cout, cin1 = d->cin + (d->edge ? 1 : 0);
    for (int o = 0; o < co; o++)
        for (int c = 0; c < ci; c++)
            for (int t = 0; t < 9; t++) {
                const float v = w[((size_t)o * cin1 + c) * 9 + t];
                if (layout == TAPW_OUT)
                    wt[(size_t)c * 9 * co + (size_t)t * co + o] = v;
                else if (layout == TAPW_IN)
                    wt[((size_t)t * ci + c) * co + o] = v;
                else
                    wt[(size_t)o * 9 * ci + (size_t)t * ci + c] = v;
            }
}

/* The edge taps' filter gradient, by blocks of output channels in parallel: per
 * border pixel, dy summed over the images (in image order), then for each tap
 * the sum over the border pixels where the tap falls on the padding (in pixel
 * order). Each value's adds in a fixed order: the same bits for any thread count. */
#define EDGE_O_BLOCK 64
static void edge_bwd_filter(conv_prim *cp, const float *dy, float *dw)
{
    const bk_conv *d = &cp->d;
    const int cin1 = d->cin + 1, H = d->h, W = d->w, co = d->cout;
    const edge_map *em = edge_ready(cp);
    double *S = cp->edge_s; /* [nb, co]: each block its own columns */
    const int nblk = (co + EDGE_O_BLOCK - 1) / EDGE_O_BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)d->n * em->nb * co > 32768)
    for (int b = 0; b < nblk; b++) {
        const int o0 = b * EDGE_O_BLOCK, no = co - o0 < EDGE_O_BLOCK ? co - o0 : EDGE_O_BLOCK;
        for (int p = 0; p < em->nb; p++) {
            double *sp = S + (size_t)p * co + o0;
            for (int o = 0; o < no; o++)
                sp[o] = 0.0;
            for (int n = 0; n < d->n; n++) {
                const float *g = dy + ((size_t)n * H * W + em->pix[p]) * co + o0;
#pragma omp simd
                for (int o = 0; o < no; o++)
                    sp[o] += g[o];
            }
        }
        for (int t = 0; t < 9; t++) {
            const int ky = t / 3, kx = t % 3;
            double acc[EDGE_O_BLOCK] = {0};
            for (int p = 0; p < em->nb; p++) {
                const int yy = em->pix[p] / W + ky - 1, xx = em->pix[p] % W + kx - 1;
                if (yy >= 0 && yy < H && xx >= 0 && xx < W)
                    continue;
                const double *sp = S + (size_t)p * co + o0;
#pragma omp simd
                for (int o = 0; o < no; o++)
                    acc[o] += sp[o];
            }
            for (int o = 0; o < no; o++)
                dw[((size_t)(o0 + o) * cin1 + d->cin) * 9 + t] = (float)acc[o];
        }
    }
}

/* ---- plans: a pass made ready, then run chunk by chunk ---- */

enum { PLAN_FWD, PLAN_BWD_DATA, PLAN_BWD_FILTER };

struct cpu_plan {
    int kind;
    cpu_ctx *ctx;
    conv_prim *cp;
    int form;     /* FORM_DIRECT or the tap form over the outputs or the inputs */
    op_call oc;
    chunk_op *o;       /* cp's operation for the pass; NULL in the gemm and tap forms */
    int gemm;          /* the gemm form */
    int nchunk, chunk_n, last_n; /* the chunks (chunk_n 0: blocks of the filter gradient) */
    const float *w;    /* the gemm form's weights */
    const float *a;    /* x (forward, filter gradient) or dy (data gradient) */
    const float *dy;   /* the filter gradient's dy */
    float *out_p;      /* y, dx or dw */
    float *dst;        /* where the direct data gradient's chunks go (dx, or the tmp) */
    int accumulate;
    float *s;
    fwd_post post;
    const fwd_post *pp;
};

static cpu_plan *plan_new(int kind, cpu_ctx *ctx, const bk_conv *d)
{
    cpu_plan *p = xcalloc(1, sizeof *p);
    p->kind = kind;
    p->ctx = ctx;
    p->cp = get_prim(ctx, d);
    return p;
}

/* What runs op: sgemm (the gemm form, or the tap form's product with the
 * weights in cp's wtap) or cp's convolution primitives. */
static void plan_prim(cpu_plan *p, int form, int op, const float *w)
{
    const bk_conv *d = &p->cp->d;
    if (gemm_form(d)) {
        p->gemm = 1;
        p->w = w;
        if (op == OP_BWD_W) {
            p->nchunk = (d->cout + GEMM_W_ROWS - 1) / GEMM_W_ROWS;
            p->chunk_n = 0;
            p->last_n = 0;
        } else {
            p->chunk_n = op_chunk_images(d, op);
            p->nchunk = (d->n + p->chunk_n - 1) / p->chunk_n;
            p->last_n = d->n - (p->nchunk - 1) * p->chunk_n;
        }
        return;
    }
    if (form != FORM_DIRECT) {
        const int out = form == FORM_TAPS_OUT;
        p->form = form;
        taps_ready(p->cp);
        if (op != OP_BWD_W)
            weights_to_taps(d, w, out ? TAPW_OUT : op == OP_FWD ? TAPW_IN : TAPW_IN_T, p->cp->wtap);
        tap_chunks(d, out, op, &p->nchunk, &p->chunk_n, &p->last_n);
        return;
    }
    op_call_init(p->ctx, p->cp, op, w, &p->oc);
    p->o = &p->cp->op[op];
    p->nchunk = p->o->nchunk;
    p->chunk_n = p->o->chunk_n;
    p->last_n = p->o->last_n;
}

cpu_plan *cpu_plan_fwd(cpu_ctx *ctx, const bk_conv *d, const float *x, const float *w, const float *bias,
                       const float *logs, int relu, float *y)
{
    cpu_plan *p = plan_new(PLAN_FWD, ctx, d);
    p->a = x;
    p->out_p = y;
    p->post = (fwd_post){NULL, bias, NULL, relu};
    if (d->edge)
        p->post.em = edge_map_build(p->cp, w);
    if (logs) {
        p->s = cpu_actnorm_scales(logs, d->cout);
        p->post.s = p->s;
    }
    p->pp = p->post.em || p->post.s ? &p->post : NULL;
    plan_prim(p, tap_form(d, OP_FWD), OP_FWD, w);
    return p;
}

cpu_plan *cpu_plan_bwd_data(cpu_ctx *ctx, const bk_conv *d, const float *dy, const float *w, float *dx,
                            int accumulate)
{
    cpu_plan *p = plan_new(PLAN_BWD_DATA, ctx, d);
    p->a = dy;
    p->out_p = p->dst = dx;
    p->accumulate = accumulate;
    plan_prim(p, tap_form(d, OP_BWD_DATA), OP_BWD_DATA, w);
    /* the direct primitive writes: with accumulate it writes a tmp, added at the end */
    if (p->form == FORM_DIRECT && !p->gemm && accumulate) {
        if (!p->cp->dx_tmp)
            p->cp->dx_tmp = amalloc((size_t)d->n * d->h * d->w * d->cin * sizeof(float));
        p->dst = p->cp->dx_tmp;
    }
    return p;
}

cpu_plan *cpu_plan_bwd_filter(cpu_ctx *ctx, const bk_conv *d, const float *x, const float *dy, float *dw)
{
    cpu_plan *p = plan_new(PLAN_BWD_FILTER, ctx, d);
    p->a = x;
    p->dy = dy;
    p->out_p = dw;
    plan_prim(p, tap_form(d, OP_BWD_W), OP_BWD_W, NULL);
    return p;
}

int cpu_plan_chunks(const cpu_plan *p) { return p->nchunk; }
int cpu_plan_chunk_images(const cpu_plan *p) { return p->chunk_n; }
int cpu_plan_parallel(const cpu_plan *p) { return parallel_chunks(&p->cp->d, p->nchunk); }
int cpu_plan_same_buffers(const cpu_plan *p, const cpu_plan *q) { return p->cp == q->cp; }

/* Chunk c of a plan in the gemm form: the forward pass and the data gradient of
 * the chunk's images, or the filter gradient's block c of output channels. */
static void gemm_run_chunk(const cpu_plan *p, int c)
{
    const bk_conv *d = &p->cp->d;
    const size_t hw = (size_t)d->h * d->w;
    if (p->kind == PLAN_BWD_FILTER) {
        const int o0 = c * GEMM_W_ROWS, m = o0 + GEMM_W_ROWS < d->cout ? GEMM_W_ROWS : d->cout - o0;
        sgemm1('T', 'N', m, d->cin, (dnnl_dim_t)(d->n * hw), p->dy + o0, d->cout, p->a, d->cin, 0.0f,
               p->out_p + (size_t)o0 * d->cin, d->cin);
        return;
    }
    const size_t n0 = (size_t)c * p->chunk_n;
    const int nimg = c == p->nchunk - 1 ? p->last_n : p->chunk_n;
    const dnnl_dim_t rows = (dnnl_dim_t)(nimg * hw);
    if (p->kind == PLAN_FWD) {
        sgemm1('N', 'T', rows, d->cout, d->cin, p->a + n0 * hw * d->cin, d->cin, p->w, d->cin, 0.0f,
               p->out_p + n0 * hw * d->cout, d->cout);
        if (p->pp)
            apply_post(d, p->pp, p->out_p, n0, nimg);
    } else {
        sgemm1('N', 'N', rows, d->cin, d->cout, p->a + n0 * hw * d->cout, d->cout, p->w, d->cin,
               p->accumulate ? 1.0f : 0.0f, p->out_p + n0 * hw * d->cin, d->cin);
    }
}

/* Chunk c of a plan in the tap form: the product and the taps of its images, the
 * filter gradient's as the chunk's partial [9 cout, cin]. */
static void taps_run_chunk(const cpu_plan *p, int c)
{
    const bk_conv *d = &p->cp->d;
    const size_t hw = (size_t)d->h * d->w, n0 = (size_t)c * p->chunk_n;
    const int nimg = c == p->nchunk - 1 ? p->last_n : p->chunk_n;
    const dnnl_dim_t rows = (dnnl_dim_t)(nimg * hw), ci9 = 9 * d->cin, co9 = 9 * d->cout;
    const float *wt = p->cp->wtap;
    float *z = p->cp->tap + (size_t)c * p->cp->tap_chunk;
    switch (p->kind) {
    case PLAN_FWD: {
        const float *xc = p->a + n0 * hw * d->cin;
        float *yc = p->out_p + n0 * hw * d->cout;
        if (p->form == FORM_TAPS_OUT) {
            sgemm1('N', 'N', rows, co9, d->cin, xc, d->cin, wt, co9, 0.0f, z, co9);
            taps_sum(z, d->cout, 1, yc, 0, nimg, d->h, d->w);
        } else {
            taps_spread(xc, d->cin, 1, z, nimg, d->h, d->w);
            sgemm1('N', 'N', rows, d->cout, ci9, z, ci9, wt, d->cout, 0.0f, yc, d->cout);
        }
        if (p->pp)
            apply_post(d, p->pp, p->out_p, n0, nimg);
        break;
    }
    case PLAN_BWD_DATA: /* over the inputs */
        sgemm1('N', 'N', rows, ci9, d->cout, p->a + n0 * hw * d->cout, d->cout, wt, ci9, 0.0f, z, ci9);
        taps_sum(z, d->cin, -1, p->out_p + n0 * hw * d->cin, p->accumulate, nimg, d->h, d->w);
        break;
    default: /* over the outputs */
        taps_spread(p->dy + n0 * hw * d->cout, d->cout, -1, z, nimg, d->h, d->w);
        sgemm1('T', 'N', co9, d->cin, rows, z, co9, p->a + n0 * hw * d->cin, d->cin, 0.0f,
               p->cp->wpart + (size_t)c * co9 * d->cin, d->cin);
    }
}

/* Chunk c, on this thread: the convolution of its images, and in the forward pass
 * the edge map and the affine while the chunk is in cache; a filter gradient's
 * chunk is a partial, added in cpu_plan_finish (the gemm and tap forms: above). */
void cpu_plan_run_chunk(const cpu_plan *p, int c)
{
    if (p->gemm) {
        gemm_run_chunk(p, c);
        return;
    }
    if (p->form != FORM_DIRECT) {
        taps_run_chunk(p, c);
        return;
    }
    const bk_conv *d = &p->cp->d;
    const size_t hw = (size_t)d->h * d->w, n0 = (size_t)c * p->o->chunk_n;
    float *xin = (float *)p->a + n0 * hw * (p->kind == PLAN_BWD_DATA ? d->cout : d->cin);
    switch (p->kind) {
    case PLAN_FWD:
        op_exec_chunk(p->ctx, p->cp, OP_FWD, &p->oc, c, xin, p->out_p + n0 * hw * d->cout);
        if (p->pp)
            apply_post(d, p->pp, p->out_p, n0, chunk_nimg(p->o, c));
        break;
    case PLAN_BWD_DATA:
        op_exec_chunk(p->ctx, p->cp, OP_BWD_DATA, &p->oc, c, p->dst + n0 * hw * d->cin, xin);
        break;
    default:
        op_exec_chunk(p->ctx, p->cp, OP_BWD_W, &p->oc, c, xin, (float *)p->dy + n0 * hw * d->cout);
    }
}

/* After every chunk: a filter gradient's partials added in chunk order, in the
 * layout of dw, with its edge taps; a direct data gradient's tmp added to dx. Frees p. */
void cpu_plan_finish(cpu_plan *p)
{
    const bk_conv *d = &p->cp->d;
    if (p->gemm) {
        /* written in place by the chunks */
    } else if (p->kind == PLAN_BWD_FILTER) {
        float *dw = p->out_p;
        if (p->form == FORM_DIRECT) {
            chunk_op *o = p->o;
            combine_partials(o->wbuf, o->w_floats, o->nchunk);
            if (o->wreorder)
                reorder(p->ctx, o->wreorder, &o->md_w, o->wbuf, &p->cp->md_wuser, dw);
            else
                memcpy(dw, o->wbuf, o->w_floats * sizeof(float));
        } else { /* [9 cout, cin] (row t*cout + o) */
            const float *wv = p->cp->wpart;
            combine_partials(p->cp->wpart, (size_t)9 * d->cout * d->cin, p->nchunk);
            const int ci = d->cin, co = d->cout, cin1 = d->cin + (d->edge ? 1 : 0);
            /* row by row of the partial's layout: contiguous reads, dw's writes 9 apart */
#pragma omp parallel for schedule(static) if ((size_t)9 * co * ci > CPU_PAR_MEM)
            for (int oo = 0; oo < co; oo++)
                for (int t = 0; t < 9; t++) {
                    const float *row = wv + ((size_t)t * co + oo) * ci;
                    float *dp = dw + (size_t)oo * cin1 * 9 + t;
                    for (int c = 0; c < ci; c++)
                        dp[(size_t)c * 9] = row[c];
                }
        }
        if (d->edge)
            edge_bwd_filter(p->cp, p->dy, dw);
    } else if (p->kind == PLAN_BWD_DATA && p->dst != p->out_p) {
        const size_t nx = (size_t)d->n * d->h * d->w * d->cin;
        float *dx = p->out_p;
        const float *t = p->dst;
#pragma omp parallel for schedule(static) if (nx > CPU_PAR_MEM)
        for (size_t i = 0; i < nx; i++)
            dx[i] += t[i];
    }
    cpu_plan_discard(p);
}

void cpu_plan_discard(cpu_plan *p)
{
    free(p->s);
    free(p);
}

void cpu_plan_run(cpu_plan *p)
{
#pragma omp parallel for schedule(dynamic, 1) if (cpu_plan_parallel(p))
    for (int c = 0; c < cpu_plan_chunks(p); c++)
        cpu_plan_run_chunk(p, c);
    cpu_plan_finish(p);
}

void cpu_conv_fwd(backend *b, const bk_conv *d, const float *x, const float *w, float *y)
{
    cpu_plan_run(cpu_plan_fwd(b->impl, d, x, w, NULL, NULL, 0, y));
}

void cpu_conv_fwd_affine(backend *b, const bk_conv *d, const float *x, const float *w,
                         const float *bias, const float *logs, int relu, float *y)
{
    cpu_plan_run(cpu_plan_fwd(b->impl, d, x, w, bias, logs, relu, y));
}

void cpu_conv_bwd_data(backend *b, const bk_conv *d, const float *dy, const float *w,
                       float *dx, int accumulate)
{
    cpu_plan_run(cpu_plan_bwd_data(b->impl, d, dy, w, dx, accumulate));
}

void cpu_conv_bwd_filter(backend *b, const bk_conv *d, const float *x, const float *dy,
                         float *dw)
{
    cpu_plan_run(cpu_plan_bwd_filter(b->impl, d, x, dy, dw));
}

void cpu_conv_release(cpu_ctx *ctx)
{
    conv_prim *p = ctx->convs;
    while (p) {
        conv_prim *next = p->next;
        for (int k = 0; k < 3; k++) {
            chunk_op *o = &p->op[k];
            if (!o->ready)
                continue;
            for (int v = 0; v < 2; v++)
                dnnl_primitive_destroy(o->prim[v]);
            if (o->wreorder)
                dnnl_primitive_destroy(o->wreorder);
            for (int i = 0; i < o->nchunk; i++)
                dnnl_stream_destroy(o->streams[i]);
            free(o->streams);
            free(o->wbuf);
            free(o->scratch);
        }
        free(p->dx_tmp);
        free(p->tap);
        free(p->wtap);
        free(p->wpart);
        if (p->em) {
            free(p->em->pix);
            free(p->em->map);
            free(p->em);
        }
        free(p->edge_s);
        free(p);
        p = next;
    }
    ctx->convs = NULL;
}
