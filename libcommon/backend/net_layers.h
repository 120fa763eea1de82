/* The coupling network's passes (backend.h net_fwd, net_bwd) layer by layer,
 * through any backend's table: the CUDA backend's net_fwd and net_bwd, and the
 * CPU backend's where its fused pass does not apply. */
#ifndef GLOW_NET_LAYERS_H
#define GLOW_NET_LAYERS_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

void bk_net_fwd_layers(backend *b, const bk_net *n, const float *x, float *a1, float *a2, float *h);
void bk_net_bwd_layers(backend *b, const bk_net *n, const float *x, const float *a1, const float *a2,
                       const float *h, float *g_h, float *g_a2, float *g_a1, float *g_x, float *const dw[3],
                       float *const dbias[3], float *const dlogs[3]);

#ifdef __cplusplus
}
#endif

#endif
