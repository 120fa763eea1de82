/* A minimal unit-test harness: CHECK records a failure with file and line and goes
 * on; main returns check_summary(), which prints "N passed, N failed" and gives
 * the exit status (non-zero on any failure). */
#ifndef GLOW_CHECK_H
#define GLOW_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_pass_count, check_fail_count;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond)                                                                    \
            check_pass_count++;                                                      \
        else {                                                                       \
            check_fail_count++;                                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECKF(cond, ...)                                                    \
    do {                                                                     \
        if (cond)                                                            \
            check_pass_count++;                                              \
        else {                                                               \
            check_fail_count++;                                              \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
        }                                                                    \
    } while (0)

#define CHECK_NEAR(a, b, tol) \
    CHECKF(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b), (double)(tol))

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check_pass_count, check_fail_count);
    return check_fail_count ? 1 : 0;
}

#endif
