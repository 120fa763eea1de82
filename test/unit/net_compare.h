/* The coupling network's fused passes (backend.h net_fwd, net_bwd) against the
 * same layers run one by one: the tested backend's net_fwd and net_bwd on one
 * twin of every array, the reference backend's conv_fwd_affine, actnorm_bwd,
 * conv_bwd_filter and conv_bwd_data on the other, the results compared. With the
 * CPU backend on both sides the tolerances are 0 (the same bits) but for the
 * actnorm's parameter gradients when their sums are cut differently (sums_tol).
 * Include after backend_compare.h. */
#ifndef GLOW_NET_COMPARE_H
#define GLOW_NET_COMPARE_H

#include <stdio.h>

#include "backend_compare.h"

typedef struct {
    double fwd, bwd, sums; /* the activations, the gradients, the actnorms' sums */
} net_tols;

/* f of n images h x w: cin (+ the edge channel) -> width -> width -> cout */
static inline void net_compare(bk_pair *p, int n, int h, int w, int cin, int width, int cout, int edge,
                               net_tols t)
{
    const int e = edge ? 1 : 0;
    const bk_conv c[3] = {{n, h, w, cin, width, 3, e}, {n, h, w, width, width, 1, 0}, {n, h, w, width, cout, 3, e}};
    const size_t rows = (size_t)n * h * w;
    char what[160], buf[220];
    snprintf(what, sizeof what, "n=%d %dx%d %d%s -> %d -> %d", n, h, w, cin, edge ? "+e" : "", width, cout);
    backend *r = p->ref, *g = p->dut;

    bk_twin wt[3], bias[3], logs[3], dw[3], db[3], dl[3], act[3], gact[3];
    size_t nw[3], nact[3];
    for (int k = 0; k < 3; k++) {
        nw[k] = (size_t)c[k].cout * (c[k].cin + c[k].edge) * c[k].k * c[k].k;
        nact[k] = rows * c[k].cout;
        wt[k] = bk_twin_rand(p, nw[k], -0.4f, 0.4f);
        bias[k] = bk_twin_rand(p, (size_t)c[k].cout, -0.3f, 0.3f);
        logs[k] = bk_twin_rand(p, (size_t)c[k].cout, -0.2f, 0.2f);
        dw[k] = bk_twin_rand(p, nw[k], -1, 1);
        db[k] = bk_twin_rand(p, (size_t)c[k].cout, -1, 1);
        dl[k] = bk_twin_rand(p, (size_t)c[k].cout, -1, 1);
        act[k] = bk_twin_rand(p, nact[k], -5, 5);
        gact[k] = bk_twin_rand(p, nact[k], -1, 1); /* gact[2]: dL/dh, the input */
    }
    bk_twin x = bk_twin_rand(p, rows * cin, -1, 1), gx = bk_twin_rand(p, rows * cin, -1, 1);

    /* forward */
    const bk_net net_d = {{c[0], c[1], c[2]},
                          {wt[0].d, wt[1].d, wt[2].d},
                          {bias[0].d, bias[1].d, bias[2].d},
                          {logs[0].d, logs[1].d, logs[2].d}};
    g->net_fwd(g, &net_d, x.d, act[0].d, act[1].d, act[2].d);
    const void *in_r[3] = {x.r, act[0].r, act[1].r};
    for (int k = 0; k < 3; k++)
        r->conv_fwd_affine(r, &c[k], in_r[k], wt[k].r, bias[k].r, logs[k].r, k < 2, act[k].r);
    const char *an[3] = {"a1", "a2", "h"};
    for (int k = 0; k < 3; k++) {
        snprintf(buf, sizeof buf, "net_fwd %s %s", an[k], what);
        bk_compare(p, &act[k], nact[k], t.fwd, buf);
    }

    /* backward, from the same activations (the reference's) on both sides */
    for (int k = 0; k < 3; k++) {
        float *hbuf = (float *)malloc(nact[k] * sizeof *hbuf);
        r->download(r, hbuf, act[k].r, nact[k] * sizeof *hbuf);
        g->upload(g, act[k].d, hbuf, nact[k] * sizeof *hbuf);
        free(hbuf);
    }
    float *dw_d[3] = {dw[0].d, dw[1].d, dw[2].d}, *db_d[3] = {db[0].d, db[1].d, db[2].d},
          *dl_d[3] = {dl[0].d, dl[1].d, dl[2].d};
    g->net_bwd(g, &net_d, x.d, act[0].d, act[1].d, act[2].d, gact[2].d, gact[1].d, gact[0].d, gx.d, dw_d, db_d,
               dl_d);
    const float *x_r = x.r;
    const float *ins[3] = {x_r, act[0].r, act[1].r};
    for (int k = 2; k >= 0; k--) {
        const int co = c[k].cout;
        r->actnorm_bwd(r, gact[k].r, co, act[k].r, co, gact[k].r, co, rows, co, logs[k].r, k < 2, db[k].r,
                       dl[k].r);
        r->conv_bwd_filter(r, &c[k], ins[k], gact[k].r, dw[k].r);
        r->conv_bwd_data(r, &c[k], gact[k].r, wt[k].r, k ? gact[k - 1].r : gx.r, 0);
    }
    const char *gn[3] = {"g_a1", "g_a2", "g_h"};
    for (int k = 0; k < 3; k++) {
        snprintf(buf, sizeof buf, "net_bwd %s %s", gn[k], what);
        bk_compare(p, &gact[k], nact[k], t.bwd, buf);
        snprintf(buf, sizeof buf, "net_bwd dw%d %s", k + 1, what);
        bk_compare(p, &dw[k], nw[k], t.bwd, buf);
        snprintf(buf, sizeof buf, "net_bwd dbias%d %s", k + 1, what);
        bk_compare(p, &db[k], (size_t)c[k].cout, t.sums, buf);
        snprintf(buf, sizeof buf, "net_bwd dlogs%d %s", k + 1, what);
        bk_compare(p, &dl[k], (size_t)c[k].cout, t.sums, buf);
    }
    snprintf(buf, sizeof buf, "net_bwd g_x %s", what);
    bk_compare(p, &gx, rows * cin, t.bwd, buf);

    for (int k = 0; k < 3; k++) {
        bk_twin *all[] = {&wt[k], &bias[k], &logs[k], &dw[k], &db[k], &dl[k], &act[k], &gact[k]};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            bk_twin_free(p, all[i]);
    }
    bk_twin_free(p, &x);
    bk_twin_free(p, &gx);
}

#endif
