#include "stats.h"

#include <math.h>
#include <stdlib.h>

#include "util.h"

void stats_mean_sem(const double *x, size_t n, double *mean, double *sem)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double m = n ? s / (double)n : NAN, ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sem = n > 1 ? sqrt(ss / (double)(n - 1)) / sqrt((double)n) : 0.0;
}

typedef struct {
    double v;
    int from_b;
} scored;

static int cmp_scored(const void *pa, const void *pb)
{
    double a = ((const scored *)pa)->v, b = ((const scored *)pb)->v;
    return (a > b) - (a < b);
}

double stats_auroc(const double *a, size_t na, const double *b, size_t nb)
{
    if (na == 0 || nb == 0)
        return NAN;
    size_t n = na + nb;
    scored *s = xmalloc(n * sizeof *s);
    for (size_t i = 0; i < na; i++)
        s[i] = (scored){a[i], 0};
    for (size_t i = 0; i < nb; i++)
        s[na + i] = (scored){b[i], 1};
    qsort(s, n, sizeof *s, cmp_scored);
    /* Sum of the (1-based, tie-averaged) ranks of the B scores. */
    double rank_sum_b = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && s[j].v == s[i].v)
            j++;
        double avg_rank = 0.5 * (double)(i + 1 + j); /* mean of ranks i+1 .. j */
        for (size_t k = i; k < j; k++)
            if (s[k].from_b)
                rank_sum_b += avg_rank;
        i = j;
    }
    free(s);
    double u = rank_sum_b - (double)nb * (double)(nb + 1) / 2.0;
    return u / ((double)na * (double)nb);
}
