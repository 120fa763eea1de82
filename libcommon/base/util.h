/* Shared helpers: error values, program name, checked allocation, small I/O. */
#ifndef GLOW_UTIL_H
#define GLOW_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The headers are C11 and also read by nvcc as C++ (the CUDA backend). */
#ifdef __cplusplus
#define GLOW_NORETURN [[noreturn]]
extern "C" {
#else
#define GLOW_NORETURN _Noreturn
#ifdef __cplusplus
}
#endif

#endif

/* Exit codes of every tool: 0 ok, 1 bad input, 2 usage. */
enum { EXIT_OK = 0, EXIT_BADINPUT = 1, EXIT_USAGE = 2 };

/* An error travels up as a message; the tool prints "progname: msg". */
typedef struct {
    char msg[1024];
} glow_error;

void glow_errorf(glow_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefix an existing message: "prefix: old message". */
void glow_error_prefix(glow_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void glow_set_progname(const char *argv0);
const char *glow_progname(void);
/* Text after "progname: " in every message (warn, die, usage errors), "" by
 * default: "rank 3: " in process 3 of a run on several (dist/dist.h). The string
 * is not copied. */
void glow_set_message_prefix(const char *prefix);
const char *glow_message_prefix(void);

/* Print "progname: message" to stderr. */
void glow_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "progname: message" and exit with code. */
GLOW_NORETURN void glow_die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Read exactly n bytes; returns bytes read (< n only at end of file or on error,
 * with ferror() telling which). */
size_t read_full(FILE *f, void *buf, size_t n);

/* Little-endian load/store, independent of the host's byte order. */
static inline uint32_t load_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t load_le64(const unsigned char *p)
{
    return (uint64_t)load_le32(p) | (uint64_t)load_le32(p + 4) << 32;
}
static inline void store_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}
static inline void store_le64(unsigned char *p, uint64_t v)
{
    store_le32(p, (uint32_t)v);
    store_le32(p + 4, (uint32_t)(v >> 32));
}

/* Parse helpers for command-line values: return 0 on success, -1 if the text is
 * not a complete number in range. */
int parse_long(const char *s, long min, long max, long *out);
int parse_double(const char *s, double *out);

/* Command-line errors: print "progname: message" and "Try 'progname --help' for
 * more information.", then exit with EXIT_USAGE. */
GLOW_NORETURN void glow_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The integer value of option `name`, or a usage error naming the range. */
long glow_opt_long(const char *name, const char *val, long min, long max);

/* Monotonic seconds, for throughput and ETA. */
double now_seconds(void);

/* True when stderr is a terminal: progress lines are printed only then. */
int stderr_is_tty(void);

#ifdef __cplusplus
}
#endif

#endif
