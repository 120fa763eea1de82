#include "linalg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int linalg_lu(double *a, int n, int *perm, int *sign)
{
    int s = 1;
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int k = 0; k < n; k++) {
        int piv = k;
        double best = fabs(a[(size_t)k * n + k]);
        for (int i = k + 1; i < n; i++) {
            double v = fabs(a[(size_t)i * n + k]);
            if (v > best) {
                best = v;
                piv = i;
            }
        }
        if (best == 0.0 || !isfinite(best)) {
            *sign = 0;
            return -1;
        }
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                double t = a[(size_t)k * n + j];
                a[(size_t)k * n + j] = a[(size_t)piv * n + j];
                a[(size_t)piv * n + j] = t;
            }
            int t = perm[k];
            perm[k] = perm[piv];
            perm[piv] = t;
            s = -s;
        }
        double d = a[(size_t)k * n + k];
        for (int i = k + 1; i < n; i++) {
            double f = a[(size_t)i * n + k] / d;
            a[(size_t)i * n + k] = f;
            if (f != 0.0)
                for (int j = k + 1; j < n; j++)
                    a[(size_t)i * n + j] -= f * a[(size_t)k * n + j];
        }
    }
    *sign = s;
    return 0;
}

double linalg_logabsdet(const double *a, int n, int *sign)
{
    double *lu = xmalloc((size_t)n * n * sizeof *lu);
    int *perm = xmalloc((size_t)(n ? n : 1) * sizeof *perm);
    memcpy(lu, a, (size_t)n * n * sizeof *lu);
    int s;
    double r = -INFINITY;
    if (linalg_lu(lu, n, perm, &s) == 0) {
        r = 0.0;
        for (int i = 0; i < n; i++) {
            double d = lu[(size_t)i * n + i];
            if (d < 0)
                s = -s;
            r += log(fabs(d));
        }
    }
    free(lu);
    free(perm);
    *sign = isfinite(r) ? s : 0;
    return r;
}

double linalg_det(const double *a, int n)
{
    int s;
    double l = linalg_logabsdet(a, n, &s);
    return s == 0 ? 0.0 : s * exp(l);
}

int linalg_inverse(const double *a, int n, double *inv)
{
    double *lu = xmalloc((size_t)n * n * sizeof *lu);
    int *perm = xmalloc((size_t)(n ? n : 1) * sizeof *perm);
    memcpy(lu, a, (size_t)n * n * sizeof *lu);
    int s, rc = linalg_lu(lu, n, perm, &s);
    if (rc == 0) {
        /* Column j of the inverse solves L U x = P e_j. */
        double *x = xmalloc((size_t)(n ? n : 1) * sizeof *x);
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < n; i++) {
                double v = perm[i] == j ? 1.0 : 0.0;
                for (int k = 0; k < i; k++)
                    v -= lu[(size_t)i * n + k] * x[k];
                x[i] = v;
            }
            for (int i = n - 1; i >= 0; i--) {
                double v = x[i];
                for (int k = i + 1; k < n; k++)
                    v -= lu[(size_t)i * n + k] * x[k];
                x[i] = v / lu[(size_t)i * n + i];
            }
            for (int i = 0; i < n; i++)
                inv[(size_t)i * n + j] = x[i];
        }
        free(x);
    }
    free(lu);
    free(perm);
    return rc;
}

void linalg_matmul(const double *a, const double *b, int n, double *c)
{
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0.0;
            for (int k = 0; k < n; k++)
                s += a[(size_t)i * n + k] * b[(size_t)k * n + j];
            c[(size_t)i * n + j] = s;
        }
}
