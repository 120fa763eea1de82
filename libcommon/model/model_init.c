/* Random initial parameters (docs/model.md section 5). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/linalg.h"
#include "base/rng.h"
#include "model.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* Q of a QR decomposition of a Gaussian matrix (modified Gram-Schmidt over columns,
 * in float64; a Gaussian matrix is full rank with probability one). */
static void random_orthogonal(glow_rng *r, int n, double *q)
{
    for (int i = 0; i < n * n; i++)
        q[i] = rng_next_normal(r);
    for (int j = 0; j < n; j++) {
        for (int k = 0; k < j; k++) {
            double d = 0;
            for (int i = 0; i < n; i++)
                d += q[i * n + j] * q[i * n + k];
            for (int i = 0; i < n; i++)
                q[i * n + j] -= d * q[i * n + k];
        }
        double nrm = 0;
        for (int i = 0; i < n; i++)
            nrm += q[i * n + j] * q[i * n + j];
        nrm = sqrt(nrm);
        for (int i = 0; i < n; i++)
            q[i * n + j] /= nrm;
    }
}

static float *pdata(glow_paramset *ps, const char *prefix, const char *name)
{
    char full[300];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    glow_param *p = glow_paramset_find(ps, full);
    return p ? p->data : NULL;
}

void glow_params_init(const glow_config *cfg, glow_paramset *ps, uint64_t seed)
{
    glow_rng r = rng_make(seed, RNG_STREAM_INIT);
    (void)cfg;
    for (int i = 0; i < ps->n; i++)
        if (ps->v[i].dtype == PARAM_F32)
            memset(ps->v[i].data, 0, ps->v[i].count * 4);
    for (int i = 0; i < ps->n; i++) {
        glow_param *p = &ps->v[i];
        if (ends_with(p->name, ".conv1.weight") || ends_with(p->name, ".conv2.weight")) {
            float *w = p->data;
            for (size_t j = 0; j < p->count; j++)
                w[j] = (float)(0.05 * rng_next_normal(&r));
        } else if (ends_with(p->name, ".shuffle.perm")) {
            uint32_t n = (uint32_t)p->count;
            uint32_t *perm = xmalloc(n * sizeof *perm);
            for (uint32_t j = 0; j < n; j++)
                perm[j] = j;
            rng_shuffle_u32(&r, perm, n);
            for (uint32_t j = 0; j < n; j++)
                ((int32_t *)p->data)[j] = (int32_t)perm[j];
            free(perm);
        } else if (ends_with(p->name, ".invconv.weight") || ends_with(p->name, ".invconv.p")) {
            const int n = (int)p->shape[0];
            double *q = xmalloc((size_t)n * n * sizeof *q);
            random_orthogonal(&r, n, q);
            if (ends_with(p->name, ".weight")) {
                for (int j = 0; j < n * n; j++)
                    ((float *)p->data)[j] = (float)q[j];
            } else {
                /* q = P L U: row i of L U is row perm[i] of q, so P[perm[i], i] = 1 */
                char prefix[200]; /* the name without its final "p" */
                size_t len = strlen(p->name) - 1;
                if (len >= sizeof prefix)
                    len = sizeof prefix - 1;
                memcpy(prefix, p->name, len);
                prefix[len] = '\0';
                int *perm = xmalloc((size_t)n * sizeof *perm), sign;
                if (linalg_lu(q, n, perm, &sign))
                    glow_die(1, "%s: the random matrix is singular", p->name);
                float *P = p->data, *lo = pdata(ps, prefix, "lower"), *up = pdata(ps, prefix, "upper");
                float *ls = pdata(ps, prefix, "log_s"), *ss = pdata(ps, prefix, "sign_s");
                for (int a = 0; a < n; a++) {
                    P[perm[a] * n + a] = 1.0f;
                    for (int b = 0; b < n; b++) {
                        double v = q[a * n + b];
                        lo[a * n + b] = b < a ? (float)v : 0.0f;
                        up[a * n + b] = b > a ? (float)v : 0.0f;
                    }
                    double d = q[a * n + a];
                    ss[a] = d < 0 ? -1.0f : 1.0f;
                    ls[a] = (float)log(fabs(d));
                }
                free(perm);
            }
            free(q);
        }
    }
}
