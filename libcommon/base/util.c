#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *progname = "glow";

void glow_errorf(glow_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

void glow_error_prefix(glow_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* Truncation is fine here: the message is for humans. */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 3, m = strlen(old);
    if (m > room)
        m = room;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
}

void glow_set_progname(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    progname = slash ? slash + 1 : argv0;
}

const char *glow_progname(void) { return progname; }

static const char *message_prefix = "";

void glow_set_message_prefix(const char *prefix) { message_prefix = prefix ? prefix : ""; }

const char *glow_message_prefix(void) { return message_prefix; }

/* "progname: message" and tail on stderr, in one write where it fits, so that
 * the messages of processes sharing a stderr (mpirun) do not interleave */
static void vmessage(const char *fmt, va_list ap, const char *tail)
{
    char buf[4096];
    va_list aq;
    va_copy(aq, ap);
    int n = snprintf(buf, sizeof buf, "%s: %s", progname, message_prefix);
    int m = n >= 0 && (size_t)n < sizeof buf ? vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, aq) : -1;
    va_end(aq);
    if (m >= 0 && (size_t)n + (size_t)m + strlen(tail) < sizeof buf) {
        strcat(buf, tail);
        fputs(buf, stderr);
        return;
    }
    fprintf(stderr, "%s: %s", progname, message_prefix);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

void glow_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, "\n");
    va_end(ap);
}

void glow_die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, "\n");
    va_end(ap);
    exit(code);
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        glow_die(EXIT_BADINPUT, "out of memory (%zu bytes)", n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        glow_die(EXIT_BADINPUT, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        glow_die(EXIT_BADINPUT, "out of memory (%zu bytes)", n);
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xmalloc(n), s, n);
}

size_t read_full(FILE *f, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t r = fread((char *)buf + got, 1, n - got, f);
        if (r == 0)
            break;
        got += r;
    }
    return got;
}

int parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

void glow_usage_error(const char *fmt, ...)
{
    char tail[300];
    snprintf(tail, sizeof tail, "\nTry '%s --help' for more information.\n", progname);
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, tail);
    va_end(ap);
    exit(EXIT_USAGE);
}

long glow_opt_long(const char *name, const char *val, long min, long max)
{
    long v;
    if (parse_long(val, min, max, &v) != 0)
        glow_usage_error("invalid %s '%s' (expected an integer %ld..%ld)", name, val, min, max);
    return v;
}

double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int stderr_is_tty(void) { return isatty(STDERR_FILENO); }
