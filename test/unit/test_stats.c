/* Mean, standard error and AUROC on hand-checked examples. */
#include "base/stats.h"
#include "check.h"

int main(void)
{
    double x[] = {1, 2, 3, 4};
    double m, se;
    stats_mean_sem(x, 4, &m, &se);
    CHECK_NEAR(m, 2.5, 1e-12);
    CHECK_NEAR(se, sqrt(5.0 / 3.0) / 2.0, 1e-12); /* sd = sqrt(5/3) */
    stats_mean_sem(x, 1, &m, &se);
    CHECK_NEAR(se, 0.0, 0.0);

    double a[] = {1, 2, 3}, b[] = {4, 5};
    CHECK_NEAR(stats_auroc(a, 3, b, 2), 1.0, 1e-12); /* perfectly separated */
    CHECK_NEAR(stats_auroc(b, 2, a, 3), 0.0, 1e-12);
    double c[] = {1, 2, 3};
    CHECK_NEAR(stats_auroc(a, 3, c, 3), 0.5, 1e-12); /* identical sets: chance */
    /* a = {1, 3}, b = {2, 3}: pairs (b>a): 2>1, 3>1 ; tie 3=3 counts half; 2<3 → 2.5/4 */
    double a2[] = {1, 3}, b2[] = {2, 3};
    CHECK_NEAR(stats_auroc(a2, 2, b2, 2), 2.5 / 4.0, 1e-12);
    CHECK(isnan(stats_auroc(a, 3, b, 0)));
    return check_summary();
}
