/* Convolutions through oneDNN. One set of primitives per shape, created on first
 * use and kept: activations stay in plain NHWC (so the element-wise ops see a
 * plain layout), weights go to whatever format oneDNN prefers through a reorder
 * per call (weights change every step; the reorder is small next to the conv).
 *
 * The edge channel (spec section 4) is a separate contribution: a conv over
 * [x, edge] equals conv(x, W[:, :C]) plus, at border pixels only, the sum of the
 * edge taps that fall on the padding. Its filter gradient sums dy over the border
 * pixels whose taps reach the padding; its data gradient is not needed.
 *
 * Determinism: oneDNN splits the filter-gradient reduction over images between
 * threads, so its bits would depend on the thread count. The batch is therefore
 * cut into fixed chunks of images; each chunk runs single-threaded (its own
 * primitive, stream and scratchpad), chunks run in parallel, and their partial
 * gradients are added in chunk order. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

/* Images per chunk of the filter gradient. */
#define BWDW_CHUNK 2

struct conv_prim {
    bk_conv d;
    dnnl_memory_desc_t md_x, md_y, md_wuser; /* nhwc, nhwc, strided [cout, cin, k, k] */
    /* forward */
    dnnl_primitive_t fwd, fwd_wreorder;
    dnnl_memory_desc_t md_wfwd;
    float *wfwd;
    /* backward data */
    dnnl_primitive_t bwdd, bwdd_wreorder;
    dnnl_memory_desc_t md_wbwdd;
    float *wbwdd, *dx_tmp;
    /* backward filter, per chunk of images */
    int nchunk, chunk_n, last_n; /* chunks; images in each but the last; in the last */
    dnnl_primitive_t bwdw[2], dw_reorder; /* [0]: chunk_n images, [1]: last_n */
    dnnl_memory_desc_t md_xc[2], md_yc[2], md_dw;
    size_t dw_floats, scratch_bytes[2];
    float *dw_part; /* nchunk * dw_floats */
    void *scratch;  /* per chunk slot */
    dnnl_stream_t *streams;
    int nstreams;
    conv_prim *next;
};

_Noreturn void cpu_fail(const char *what, dnnl_status_t st)
{
    glow_die(1, "backend: oneDNN %s failed (status %d)", what, (int)st);
}

#define DN(call)                                  \
    do {                                          \
        dnnl_status_t st_ = (call);               \
        if (st_ != dnnl_success)                  \
            cpu_fail(#call, st_);                 \
    } while (0)

static void *amalloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64))
        glow_die(1, "backend: out of memory (%zu bytes)", bytes);
    return p;
}

static void md_act(dnnl_memory_desc_t *md, int n, int c, int h, int w)
{
    dnnl_dims_t dims = {n, c, h, w};
    DN(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_nhwc));
}

static void conv_geometry(const bk_conv *d, dnnl_dims_t strides, dnnl_dims_t pad)
{
    strides[0] = strides[1] = 1;
    pad[0] = pad[1] = d->k == 3 ? 1 : 0;
}

static dnnl_primitive_desc_t make_fwd_pd(cpu_ctx *ctx, const bk_conv *d, int n,
                                         const dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t x, y, w;
    md_act(&x, n, d->cin, d->h, d->w);
    md_act(&y, n, d->cout, d->h, d->w);
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k}, st, pad;
    DN(dnnl_memory_desc_init_by_tag(&w, 4, wd, dnnl_f32, dnnl_format_tag_any));
    conv_geometry(d, st, pad);
    dnnl_convolution_desc_t cd;
    DN(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct,
                                          &x, &w, NULL, &y, st, pad, pad));
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &cd, attr, ctx->eng, NULL));
    return pd;
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
    conv_prim *p = calloc(1, sizeof *p);
    if (!p)
        glow_die(1, "backend: out of memory");
    p->d = *d;
    md_act(&p->md_x, d->n, d->cin, d->h, d->w);
    md_act(&p->md_y, d->n, d->cout, d->h, d->w);
    const int e = d->edge ? 1 : 0;
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k};
    dnnl_dims_t ws = {(dnnl_dim_t)(d->cin + e) * d->k * d->k, d->k * d->k, d->k, 1};
    DN(dnnl_memory_desc_init_by_strides(&p->md_wuser, 4, wd, dnnl_f32, ws));
    p->next = ctx->convs;
    ctx->convs = p;
    return p;
}

static void exec(dnnl_primitive_t prim, dnnl_stream_t s, int nargs, const int *kinds,
                 const dnnl_memory_desc_t *const *mds, void *const *ptrs, cpu_ctx *ctx)
{
    dnnl_exec_arg_t args[6];
    for (int i = 0; i < nargs; i++) {
        args[i].arg = kinds[i];
        DN(dnnl_memory_create(&args[i].memory, mds[i], ctx->eng, ptrs[i]));
    }
    DN(dnnl_primitive_execute(prim, s, nargs, args));
    DN(dnnl_stream_wait(s));
    for (int i = 0; i < nargs; i++)
        dnnl_memory_destroy(args[i].memory);
}

static void reorder_weights(cpu_ctx *ctx, dnnl_primitive_t r, const dnnl_memory_desc_t *from,
                            const float *w, const dnnl_memory_desc_t *to, float *out)
{
    int kinds[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
    const dnnl_memory_desc_t *mds[2] = {from, to};
    void *ptrs[2] = {(void *)w, out};
    exec(r, ctx->stream, 2, kinds, mds, ptrs, ctx);
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

static void edge_fwd(const bk_conv *d, const float *wt, float *y)
{
    const int cin1 = d->cin + 1, H = d->h, W = d->w, co = d->cout;
    /* border pixels in a fixed order, and the per-pixel map (the same for every image) */
    int nb = 0;
    int *pix = malloc((size_t)2 * (H + W) * 2 * sizeof *pix);
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++)
            if (is_border(i, j, H, W))
                pix[nb++] = i * W + j;
    float *map = malloc((size_t)nb * co * sizeof *map);
    for (int p = 0; p < nb; p++)
        for (int o = 0; o < co; o++)
            map[(size_t)p * co + o] =
                edge_tap_sum(wt + ((size_t)o * cin1 + d->cin) * 9, pix[p] / W, pix[p] % W, H, W);
#pragma omp parallel for schedule(static) if ((size_t)d->n * nb * co > 32768)
    for (int n = 0; n < d->n; n++)
        for (int p = 0; p < nb; p++) {
            float *yp = y + ((size_t)n * H * W + pix[p]) * co;
            const float *mp = map + (size_t)p * co;
#pragma omp simd
            for (int o = 0; o < co; o++)
                yp[o] += mp[o];
        }
    free(map);
    free(pix);
}

static void edge_bwd_filter(const bk_conv *d, const float *dy, float *dw)
{
    const int cin1 = d->cin + 1, H = d->h, W = d->w;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < d->cout; o++) {
        double acc[9] = {0};
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                if (!is_border(i, j, H, W))
                    continue;
                double s = 0;
                for (int n = 0; n < d->n; n++)
                    s += dy[(((size_t)n * H + i) * W + j) * d->cout + o];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int yy = i + ky - 1, xx = j + kx - 1;
                        if (yy < 0 || yy >= H || xx < 0 || xx >= W)
                            acc[ky * 3 + kx] += s;
                    }
            }
        float *we = dw + ((size_t)o * cin1 + d->cin) * 9;
        for (int t = 0; t < 9; t++)
            we[t] = (float)acc[t];
    }
}

static void conv_fwd(backend *b, const bk_conv *d, const float *x, const float *w, float *y)
{
    cpu_ctx *ctx = b->impl;
    conv_prim *p = get_prim(ctx, d);
    if (!p->fwd) {
        dnnl_primitive_desc_t pd = make_fwd_pd(ctx, d, d->n, NULL);
        p->md_wfwd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        DN(dnnl_primitive_create(&p->fwd, pd));
        dnnl_primitive_desc_destroy(pd);
        p->fwd_wreorder = make_reorder(ctx, &p->md_wuser, &p->md_wfwd);
        p->wfwd = amalloc(dnnl_memory_desc_get_size(&p->md_wfwd));
    }
    const float *wk = w;
    if (p->fwd_wreorder) {
        reorder_weights(ctx, p->fwd_wreorder, &p->md_wuser, w, &p->md_wfwd, p->wfwd);
        wk = p->wfwd;
    }
    int kinds[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
    const dnnl_memory_desc_t *mds[3] = {&p->md_x, p->fwd_wreorder ? &p->md_wfwd : &p->md_wuser,
                                        &p->md_y};
    void *ptrs[3] = {(void *)x, (void *)wk, y};
    exec(p->fwd, ctx->stream, 3, kinds, mds, ptrs, ctx);
    if (d->edge)
        edge_fwd(d, w, y);
}

static void conv_bwd_data(backend *b, const bk_conv *d, const float *dy, const float *w,
                          float *dx, int accumulate)
{
    cpu_ctx *ctx = b->impl;
    conv_prim *p = get_prim(ctx, d);
    if (!p->bwdd) {
        dnnl_primitive_desc_t hint = make_fwd_pd(ctx, d, d->n, NULL);
        dnnl_memory_desc_t wany;
        dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k}, st, pad;
        DN(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any));
        conv_geometry(d, st, pad);
        dnnl_convolution_desc_t cd;
        DN(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &p->md_x,
                                                    &wany, &p->md_y, st, pad, pad));
        dnnl_primitive_desc_t pd;
        DN(dnnl_primitive_desc_create(&pd, &cd, NULL, ctx->eng, hint));
        p->md_wbwdd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
        DN(dnnl_primitive_create(&p->bwdd, pd));
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_desc_destroy(hint);
        p->bwdd_wreorder = make_reorder(ctx, &p->md_wuser, &p->md_wbwdd);
        p->wbwdd = amalloc(dnnl_memory_desc_get_size(&p->md_wbwdd));
    }
    const float *wk = w;
    if (p->bwdd_wreorder) {
        reorder_weights(ctx, p->bwdd_wreorder, &p->md_wuser, w, &p->md_wbwdd, p->wbwdd);
        wk = p->wbwdd;
    }
    size_t nx = (size_t)d->n * d->h * d->w * d->cin;
    float *out = dx;
    if (accumulate) {
        if (!p->dx_tmp)
            p->dx_tmp = amalloc(nx * sizeof(float));
        out = p->dx_tmp;
    }
    int kinds[3] = {DNNL_ARG_DIFF_DST, DNNL_ARG_WEIGHTS, DNNL_ARG_DIFF_SRC};
    const dnnl_memory_desc_t *mds[3] = {&p->md_y,
                                        p->bwdd_wreorder ? &p->md_wbwdd : &p->md_wuser, &p->md_x};
    void *ptrs[3] = {(void *)dy, (void *)wk, out};
    exec(p->bwdd, ctx->stream, 3, kinds, mds, ptrs, ctx);
    if (accumulate) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nx; i++)
            dx[i] += out[i];
    }
}

static void setup_bwdw(cpu_ctx *ctx, conv_prim *p)
{
    const bk_conv *d = &p->d;
    p->chunk_n = d->n < BWDW_CHUNK ? d->n : BWDW_CHUNK;
    p->nchunk = (d->n + p->chunk_n - 1) / p->chunk_n;
    p->last_n = d->n - (p->nchunk - 1) * p->chunk_n;
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr));
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    /* Primitives that each run on one thread: created while OpenMP offers one. */
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int v = 0; v < 2; v++) {
        int n = v == 0 ? p->chunk_n : p->last_n;
        dnnl_primitive_desc_t hint = make_fwd_pd(ctx, d, n, attr);
        md_act(&p->md_xc[v], n, d->cin, d->h, d->w);
        md_act(&p->md_yc[v], n, d->cout, d->h, d->w);
        dnnl_memory_desc_t wany;
        dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k}, st, pad;
        DN(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32,
                                        v == 0 ? dnnl_format_tag_any : dnnl_format_tag_undef));
        if (v == 1)
            wany = p->md_dw; /* both variants write partials in one format */
        conv_geometry(d, st, pad);
        dnnl_convolution_desc_t cd;
        DN(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct,
                                                       &p->md_xc[v], &wany, NULL, &p->md_yc[v],
                                                       st, pad, pad));
        dnnl_primitive_desc_t pd;
        DN(dnnl_primitive_desc_create(&pd, &cd, attr, ctx->eng, hint));
        if (v == 0)
            p->md_dw = *dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
        p->scratch_bytes[v] =
            dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
        DN(dnnl_primitive_create(&p->bwdw[v], pd));
        dnnl_primitive_desc_destroy(pd);
        dnnl_primitive_desc_destroy(hint);
    }
    omp_set_num_threads(saved);
    dnnl_primitive_attr_destroy(attr);
    p->dw_floats = dnnl_memory_desc_get_size(&p->md_dw) / sizeof(float);
    p->dw_part = amalloc((size_t)p->nchunk * p->dw_floats * sizeof(float));
    size_t sb = p->scratch_bytes[0] > p->scratch_bytes[1] ? p->scratch_bytes[0] : p->scratch_bytes[1];
    p->scratch_bytes[0] = (sb + 64) / 64 * 64;
    p->scratch = amalloc((size_t)p->nchunk * p->scratch_bytes[0] + 64);
    p->nstreams = p->nchunk;
    p->streams = calloc((size_t)p->nstreams, sizeof *p->streams);
    for (int i = 0; i < p->nstreams; i++)
        DN(dnnl_stream_create(&p->streams[i], ctx->eng, dnnl_stream_default_flags));
    p->dw_reorder = make_reorder(ctx, &p->md_dw, &p->md_wuser);
}

static void conv_bwd_filter(backend *b, const bk_conv *d, const float *x, const float *dy,
                            float *dw)
{
    cpu_ctx *ctx = b->impl;
    conv_prim *p = get_prim(ctx, d);
    if (!p->bwdw[0])
        setup_bwdw(ctx, p);
    const size_t xs = (size_t)d->h * d->w * d->cin, ys = (size_t)d->h * d->w * d->cout;
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < p->nchunk; c++) {
        int v = c == p->nchunk - 1 ? 1 : 0;
        size_t n0 = (size_t)c * p->chunk_n;
        dnnl_exec_arg_t args[4];
        void *ptrs[4] = {(void *)(x + n0 * xs), (void *)(dy + n0 * ys),
                         p->dw_part + (size_t)c * p->dw_floats,
                         (char *)p->scratch + (size_t)c * p->scratch_bytes[0]};
        const dnnl_memory_desc_t *mds[4] = {&p->md_xc[v], &p->md_yc[v], &p->md_dw, NULL};
        dnnl_memory_desc_t md_scr;
        dnnl_dims_t sd = {(dnnl_dim_t)p->scratch_bytes[0]};
        DN(dnnl_memory_desc_init_by_tag(&md_scr, 1, sd, dnnl_u8, dnnl_x));
        mds[3] = &md_scr;
        int kinds[4] = {DNNL_ARG_SRC, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_SCRATCHPAD};
        for (int i = 0; i < 4; i++) {
            args[i].arg = kinds[i];
            DN(dnnl_memory_create(&args[i].memory, mds[i], ctx->eng, ptrs[i]));
        }
        DN(dnnl_primitive_execute(p->bwdw[v], p->streams[c], 4, args));
        DN(dnnl_stream_wait(p->streams[c]));
        for (int i = 0; i < 4; i++)
            dnnl_memory_destroy(args[i].memory);
    }
    /* fixed-order combine of the partial gradients */
    float *sum = p->dw_part;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < p->dw_floats; i++) {
        float s = sum[i];
        for (int c = 1; c < p->nchunk; c++)
            s += p->dw_part[(size_t)c * p->dw_floats + i];
        sum[i] = s;
    }
    if (p->dw_reorder) {
        int kinds[2] = {DNNL_ARG_FROM, DNNL_ARG_TO};
        const dnnl_memory_desc_t *mds[2] = {&p->md_dw, &p->md_wuser};
        void *ptrs[2] = {sum, dw};
        exec(p->dw_reorder, ctx->stream, 2, kinds, mds, ptrs, ctx);
    } else {
        memcpy(dw, sum, p->dw_floats * sizeof(float));
    }
    if (d->edge)
        edge_bwd_filter(d, dy, dw);
}

void cpu_conv_release(cpu_ctx *ctx)
{
    conv_prim *p = ctx->convs;
    while (p) {
        conv_prim *next = p->next;
        dnnl_primitive_t prims[] = {p->fwd, p->fwd_wreorder, p->bwdd, p->bwdd_wreorder,
                                    p->bwdw[0], p->bwdw[1], p->dw_reorder};
        for (size_t i = 0; i < sizeof prims / sizeof *prims; i++)
            if (prims[i])
                dnnl_primitive_destroy(prims[i]);
        for (int i = 0; i < p->nstreams; i++)
            dnnl_stream_destroy(p->streams[i]);
        free(p->streams);
        free(p->wfwd);
        free(p->wbwdd);
        free(p->dx_tmp);
        free(p->dw_part);
        free(p->scratch);
        free(p);
        p = next;
    }
    ctx->convs = NULL;
}

void cpu_conv_init(backend *b)
{
    b->conv_fwd = conv_fwd;
    b->conv_bwd_data = conv_bwd_data;
    b->conv_bwd_filter = conv_bwd_filter;
}
