/* Comparing two backends op by op: a reference (the CPU backend) and one under test
 * hold "twins", arrays with the same contents on each side; an op is run on both
 * and the outputs are compared relative to the reference's largest magnitude, with
 * the worst element reported. Include after check.h. */
#ifndef GLOW_BACKEND_COMPARE_H
#define GLOW_BACKEND_COMPARE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/rng.h"
#include "check.h"

typedef struct {
    backend *ref, *dut; /* reference, device under test */
    uint64_t seed, drawn;
} bk_pair;

typedef struct {
    void *r, *d; /* the reference's and the tested backend's copy */
    size_t bytes;
} bk_twin;

static inline bk_twin bk_twin_from(bk_pair *p, const void *host, size_t bytes)
{
    bk_twin t = {p->ref->alloc(p->ref, bytes), p->dut->alloc(p->dut, bytes), bytes};
    if (bytes) {
        p->ref->upload(p->ref, t.r, host, bytes);
        p->dut->upload(p->dut, t.d, host, bytes);
    }
    return t;
}

/* n floats uniform in [lo, hi), a fresh draw each call */
static inline bk_twin bk_twin_rand(bk_pair *p, size_t n, float lo, float hi)
{
    float *h = (float *)malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = lo + (hi - lo) * (float)rng_uniform_at(p->seed, RNG_STREAM_TEST, p->drawn + i);
    p->drawn += n;
    bk_twin t = bk_twin_from(p, h, n * sizeof *h);
    free(h);
    return t;
}

static inline void bk_twin_free(bk_pair *p, bk_twin *t)
{
    p->ref->free(p->ref, t->r);
    p->dut->free(p->dut, t->d);
    t->r = t->d = NULL;
}

/* max |dut - ref| / max |ref| over n floats (NaN/inf mismatches count as infinite);
 * a CHECK that it is within tol, naming the worst element when not. */
static inline double bk_compare(bk_pair *p, const bk_twin *t, size_t n, double tol,
                                const char *what)
{
    float *a = (float *)malloc((n ? n : 1) * sizeof *a);
    float *b = (float *)malloc((n ? n : 1) * sizeof *b);
    p->ref->download(p->ref, a, t->r, n * sizeof *a);
    p->dut->download(p->dut, b, t->d, n * sizeof *b);
    double maxabs = 0, maxd = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (isfinite(a[i]) && fabs(a[i]) > maxabs)
            maxabs = fabs(a[i]);
        double d = fabs((double)a[i] - (double)b[i]);
        if (isnan(a[i]) != isnan(b[i]) || (isinf(a[i]) && a[i] != b[i]) ||
            (isinf(b[i]) && a[i] != b[i]))
            d = INFINITY;
        else if (isnan(a[i]) || isinf(a[i]))
            d = 0;
        if (!(d <= maxd)) {
            maxd = d;
            at = i;
        }
    }
    double e = maxabs > 0 ? maxd / maxabs : maxd;
    CHECKF(e <= tol, "%s: error %.3g > %.3g at element %zu of %zu (%s %.9g, %s %.9g)", what, e,
           tol, at, n, p->ref->name, n ? (double)a[at] : 0.0, p->dut->name,
           n ? (double)b[at] : 0.0);
    free(a);
    free(b);
    return e;
}

/* Are n bytes of two arrays of the tested backend identical? */
static inline int bk_same_bits(bk_pair *p, const void *x, const void *y, size_t bytes)
{
    unsigned char *a = (unsigned char *)malloc(bytes ? bytes : 1);
    unsigned char *b = (unsigned char *)malloc(bytes ? bytes : 1);
    p->dut->download(p->dut, a, x, bytes);
    p->dut->download(p->dut, b, y, bytes);
    int same = memcmp(a, b, bytes) == 0;
    free(a);
    free(b);
    return same;
}

#endif
