#include "mem_budget.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t user_limit, tool_default;
static _Atomic uint64_t limit_cache; /* 0: not computed yet */
static _Atomic uint64_t reserved;
/* Where the limit in force comes from, for the message. */
enum { SRC_USER, SRC_USER_CAPPED, SRC_TOOL, SRC_HALF };
static _Atomic int limit_src;

/* The first number on the line of /proc/meminfo that starts with key, in kB. */
static int meminfo(const char *key, uint64_t *kb)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    int rc = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            unsigned long long v;
            if (sscanf(line + kl + 1, "%llu", &v) == 1) {
                *kb = v;
                rc = 0;
            }
            break;
        }
    fclose(f);
    return rc;
}

/* One decimal number from a file (cgroup files); -1 for "max" or anything else. */
static int read_u64_file(const char *path, uint64_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    unsigned long long v;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    if (!ok)
        return -1;
    *out = v;
    return 0;
}

uint64_t glow_mem_available(void)
{
    uint64_t avail = UINT64_MAX, kb;
    if (meminfo("MemAvailable", &kb) == 0)
        avail = glow_mem_mul(kb, 1024);
    else {
        long pages = sysconf(_SC_AVPHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psize > 0)
            avail = glow_mem_mul((uint64_t)pages, (uint64_t)psize);
    }
    /* cgroup v2, then v1: what the container may still take. */
    uint64_t max, cur;
    if ((read_u64_file("/sys/fs/cgroup/memory.max", &max) == 0 &&
         read_u64_file("/sys/fs/cgroup/memory.current", &cur) == 0) ||
        (read_u64_file("/sys/fs/cgroup/memory/memory.limit_in_bytes", &max) == 0 &&
         read_u64_file("/sys/fs/cgroup/memory/memory.usage_in_bytes", &cur) == 0)) {
        uint64_t left = max > cur ? max - cur : 0;
        if (left < avail)
            avail = left;
    }
    return avail;
}

void glow_mem_set_limit(uint64_t bytes)
{
    user_limit = bytes;
    atomic_store(&limit_cache, 0);
}

void glow_mem_set_default(uint64_t bytes)
{
    tool_default = bytes;
    atomic_store(&limit_cache, 0);
}

uint64_t glow_mem_limit(void)
{
    uint64_t lim = atomic_load(&limit_cache);
    if (lim)
        return lim;
    uint64_t avail = glow_mem_available();
    int src;
    if (user_limit) {
        lim = user_limit;
        src = SRC_USER;
        if (avail < lim) {
            lim = avail;
            src = SRC_USER_CAPPED;
        }
    } else {
        lim = avail == UINT64_MAX ? UINT64_MAX : avail / 2;
        src = SRC_HALF;
        if (tool_default && tool_default < lim) {
            lim = tool_default;
            src = SRC_TOOL;
        }
    }
    if (lim == 0)
        lim = 1;
    atomic_store(&limit_src, src);
    atomic_store(&limit_cache, lim);
    return lim;
}

uint64_t glow_mem_reserved(void) { return atomic_load(&reserved); }

char *glow_mem_str(uint64_t bytes, char *buf, size_t n)
{
    if (bytes == UINT64_MAX)
        snprintf(buf, n, "more than 16 EiB");
    else if (bytes < 1024)
        snprintf(buf, n, "%" PRIu64 " B", bytes);
    else {
        static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        double v = (double)bytes / 1024.0;
        int u = 0;
        while (v >= 1024.0 && u < 5) {
            v /= 1024.0;
            u++;
        }
        snprintf(buf, n, "%.1f %s", v, unit[u]);
    }
    return buf;
}

static void over_limit(uint64_t bytes, uint64_t in_use, const char *what, glow_error *err)
{
    uint64_t lim = glow_mem_limit();
    char need[32], limit[32], used[64] = "", src[96];
    glow_mem_str(bytes, need, sizeof need);
    glow_mem_str(lim, limit, sizeof limit);
    if (in_use) {
        char u[32];
        snprintf(used, sizeof used, ", of which %s is in use", glow_mem_str(in_use, u, sizeof u));
    }
    const char *advice = "raise it with --mem-limit MiB";
    switch (atomic_load(&limit_src)) {
    case SRC_USER: snprintf(src, sizeof src, "--mem-limit %" PRIu64, user_limit >> 20); break;
    case SRC_USER_CAPPED:
        snprintf(src, sizeof src, "the memory available; --mem-limit asked for %" PRIu64 " MiB",
                 user_limit >> 20);
        advice = "free memory, or ask for less";
        break;
    case SRC_TOOL: snprintf(src, sizeof src, "this tool's default"); break;
    default: snprintf(src, sizeof src, "half the memory available"); break;
    }
    glow_errorf(err, "%s would take %s of memory, over the limit of %s (%s)%s; %s", what, need,
                limit, src, used, advice);
}

int glow_mem_check_after(uint64_t bytes, uint64_t freed, const char *what, glow_error *err)
{
    uint64_t lim = glow_mem_limit(), cur = atomic_load(&reserved);
    cur = freed > cur ? 0 : cur - freed;
    if (bytes > lim || cur > lim - bytes) {
        over_limit(bytes, cur, what, err);
        return -1;
    }
    return 0;
}

int glow_mem_check(uint64_t bytes, const char *what, glow_error *err)
{
    uint64_t lim = glow_mem_limit(), cur = atomic_load(&reserved);
    if (bytes > lim || cur > lim - bytes) {
        over_limit(bytes, cur, what, err);
        return -1;
    }
    return 0;
}

int glow_mem_reserve(uint64_t bytes, const char *what, glow_error *err)
{
    uint64_t lim = glow_mem_limit(), cur = atomic_load(&reserved);
    do {
        if (bytes > lim || cur > lim - bytes) {
            over_limit(bytes, cur, what, err);
            return -1;
        }
    } while (!atomic_compare_exchange_weak(&reserved, &cur, cur + bytes));
    return 0;
}

void glow_mem_release(uint64_t bytes)
{
    uint64_t cur = atomic_load(&reserved);
    uint64_t next;
    do
        next = bytes > cur ? 0 : cur - bytes;
    while (!atomic_compare_exchange_weak(&reserved, &cur, next));
}
