/* The process's memory budget: every allocation whose size comes from a file
 * (a shard record's raw_size, an image's width and height, a checkpoint's model
 * config, a shard file's image count) or from a config (batch size, width) is
 * reserved here before it is made, so untrusted input cannot make a tool ask for
 * more memory than the limit; the request fails first, with a message that says
 * what was asked for and how to raise the limit (docs/security.md).
 *
 * The limit: --mem-limit MiB of the tool (glow_mem_set_limit), at most the
 * memory the machine has available; without it, half the available memory
 * (MemAvailable of /proc/meminfo, and the cgroup's limit when lower), or a
 * tool's smaller default (glow_mem_set_default). Reservations are counted with
 * atomics, so threads may reserve and release. */
#ifndef GLOW_MEM_BUDGET_H
#define GLOW_MEM_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes the machine can give this process now: MemAvailable, and the cgroup's
 * memory.max minus memory.current when that is lower. UINT64_MAX when neither
 * can be read. */
uint64_t glow_mem_available(void);

/* The user's limit in bytes (--mem-limit; 0: none). */
void glow_mem_set_limit(uint64_t bytes);
/* A tool's default in bytes, used without --mem-limit when below half the
 * available memory (0: none). */
void glow_mem_set_default(uint64_t bytes);
/* The limit in force (computed on first use). */
uint64_t glow_mem_limit(void);
/* Bytes reserved now. */
uint64_t glow_mem_reserved(void);

/* Reserve bytes for WHAT (a phrase: "standard input: record 3: 1x3x64x64 uint8
 * images"). Returns 0, or -1 with err set to "WHAT need 1.2 GiB, more than the
 * memory limit of ... allows; ..." and nothing reserved. */
int glow_mem_reserve(uint64_t bytes, const char *what, glow_error *err);
/* Would a reservation of bytes succeed? The same message as glow_mem_reserve,
 * nothing reserved either way. */
int glow_mem_check(uint64_t bytes, const char *what, glow_error *err);
/* The same once `freed` bytes now reserved are released (a buffer replaced). */
int glow_mem_check_after(uint64_t bytes, uint64_t freed, const char *what, glow_error *err);
void glow_mem_release(uint64_t bytes);

/* "512 B", "3.0 KiB", "1.2 GiB" */
char *glow_mem_str(uint64_t bytes, char *buf, size_t n);

/* a * b, or UINT64_MAX when it overflows; sums the same way. */
static inline uint64_t glow_mem_mul(uint64_t a, uint64_t b)
{
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}
static inline uint64_t glow_mem_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

#ifdef __cplusplus
}
#endif

#endif
