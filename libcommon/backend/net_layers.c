/* The coupling network layer by layer (net_layers.h). */
#include "net_layers.h"

void bk_net_fwd_layers(backend *b, const bk_net *n, const float *x, float *a1, float *a2, float *h)
{
    b->conv_fwd_affine(b, &n->c[0], x, n->w[0], n->bias[0], n->logs[0], 1, a1);
    b->conv_fwd_affine(b, &n->c[1], a1, n->w[1], n->bias[1], n->logs[1], 1, a2);
    b->conv_fwd_affine(b, &n->c[2], a2, n->w[2], n->bias[2], n->logs[2], 0, h);
}

/* from the last layer: the actnorm's backward in place in the output's gradient
 * (ReLU for the first two), then the filter and the data gradient */
void bk_net_bwd_layers(backend *b, const bk_net *n, const float *x, const float *a1, const float *a2,
                       const float *h, float *g_h, float *g_a2, float *g_a1, float *g_x, float *const dw[3],
                       float *const dbias[3], float *const dlogs[3])
{
    const float *in[3] = {x, a1, a2}, *out[3] = {a1, a2, h};
    float *g_out[3] = {g_a1, g_a2, g_h};
    for (int k = 2; k >= 0; k--) {
        const bk_conv *d = &n->c[k];
        const size_t rows = (size_t)d->n * d->h * d->w;
        b->actnorm_bwd(b, g_out[k], d->cout, out[k], d->cout, g_out[k], d->cout, rows, d->cout, n->logs[k], k < 2,
                       dbias[k], dlogs[k]);
        b->conv_bwd_filter(b, d, in[k], g_out[k], dw[k]);
        b->conv_bwd_data(b, d, g_out[k], n->w[k], k ? g_out[k - 1] : g_x, 0);
    }
}
