/* A minimal unit-test harness: CHECK records a failure with file and line and goes
 * on; main returns check_summary(), which prints "SUITE: N passed, M failed" and
 * gives the exit status (non-zero on any failure), or check_skip(reason) when the
 * suite cannot run here. SUITE is the file's name without "test_" and ".c"
 * (test_shard.c: "shard"); test/run.sh shows each suite's last line. */
#ifndef GLOW_CHECK_H
#define GLOW_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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

/* "test/unit/test_shard.c" -> "shard" */
static inline const char *check_suite_of(const char *file)
{
    static char name[64];
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    if (strncmp(base, "test_", 5) == 0)
        base += 5;
    size_t n = strcspn(base, ".");
    snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), base);
    return name;
}
#define CHECK_SUITE check_suite_of(__FILE__)

static inline int check_summary_of(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check_pass_count, check_fail_count);
    return check_fail_count ? 1 : 0;
}
#define check_summary() check_summary_of(CHECK_SUITE)

/* The suite cannot run here (no GPU, say): "SUITE: skipped: REASON", then the
 * summary of what ran so far. The exit status is 0, or 1 under GLOW_TEST_STRICT=1,
 * where a skip is a failure (test/run.sh). */
static inline int check_skip_of(const char *suite, const char *reason)
{
    printf("%s: skipped: %s\n", suite, reason);
    int rc = check_summary_of(suite);
    const char *strict = getenv("GLOW_TEST_STRICT");
    return rc || (strict && strcmp(strict, "1") == 0) ? 1 : 0;
}
#define check_skip(reason) check_skip_of(CHECK_SUITE, (reason))

#endif
