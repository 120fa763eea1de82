/* Small statistics for evaluation summaries. */
#ifndef GLOW_STATS_H
#define GLOW_STATS_H

#include <stddef.h>

/* Mean and standard error of the mean (sample standard deviation / sqrt(n);
 * 0 when n < 2). */
void stats_mean_sem(const double *x, size_t n, double *mean, double *sem);

/* Area under the ROC curve of telling set B from set A by score, where higher
 * scores are taken to mean "B" (for out-of-distribution detection by bpd, B is
 * the other set and the score is bpd). Equals P(b > a) + P(b == a)/2 over all
 * pairs (the Mann-Whitney U statistic / (na*nb)); ties count half. O((na+nb)
 * log(na+nb)). Returns NaN when a set is empty. */
double stats_auroc(const double *a, size_t na, const double *b, size_t nb);

#endif
