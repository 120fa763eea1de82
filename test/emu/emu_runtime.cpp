// The CUDA emulator's runtime: one emulated device (sm_90, "emulated"), device
// memory from the host heap (poisoned when fresh, tracked so that every pointer an
// API call gets is checked), streams that defer their work until the host
// synchronises with them (with CUDA's rules for the legacy default stream), and
// kernel launches (checked, queued, then run by emu_fiber.cpp).
#include "emu_internal.h"
#include "emu_stats.h"

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>
#include <string>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

namespace emu {

// ---- messages ----

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("emu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

std::recursive_mutex &api_lock()
{
    static std::recursive_mutex m;
    return m;
}

// ---- settings ----

const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : nullptr;
}

static long env_long(const char *name, long def, long lo, long hi)
{
    const char *v = env(name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        fatal("%s=%s: expected a number from %ld to %ld", name, v, lo, hi);
    return x;
}

const settings &config()
{
    static settings s = [] {
        settings c;
        c.sms = (int)env_long("GLOW_EMU_SMS", 132, 1, 1024);
        c.devices = (int)env_long("GLOW_EMU_DEVICES", 1, 0, 16);
        c.mem_bytes = (size_t)env_long("GLOW_EMU_MEM_MB", 16384, 1, 1L << 24) << 20;
        c.trace = env_long("GLOW_EMU_TRACE", 0, 0, 1) == 1;
        const char *o = env("NVIDIA_TF32_OVERRIDE");
        c.tf32_off = o && strcmp(o, "0") == 0;
        return c;
    }();
    return s;
}

namespace {
unsigned long long stat_n[ST_COUNT], stat_bytes[ST_COUNT];
const char *const stat_names[ST_COUNT] = {
    "kernel launches", "blocks",          "cuBLAS calls",     "cuDNN calls",
    "H2D copies",      "D2H copies",      "D2D copies",       "memsets",
    "stream syncs",    "device syncs",    "cudaMalloc calls", "cudaFree calls",
    "event records",   "event syncs"};

void print_stats()
{
    fprintf(stderr, "emu: statistics:");
    for (int i = 0; i < ST_COUNT; i++) {
        fprintf(stderr, "%s %llu %s", i ? "," : "", stat_n[i], stat_names[i]);
        if (stat_bytes[i])
            fprintf(stderr, " (%llu bytes)", stat_bytes[i]);
    }
    fputc('\n', stderr);
}

// GLOW_EMU_STATS_FILE: one "name<TAB>count<TAB>bytes" line per counter
void write_stats_file()
{
    const char *path = env("GLOW_EMU_STATS_FILE");
    FILE *f = path ? fopen(path, "w") : nullptr;
    if (!f) {
        if (path)
            note("GLOW_EMU_STATS_FILE=%s: cannot write it", path);
        return;
    }
    for (int i = 0; i < ST_COUNT; i++)
        fprintf(f, "%s\t%llu\t%llu\n", stat_names[i], stat_n[i], stat_bytes[i]);
    fclose(f);
}

void at_exit()
{
    const char *v = env("GLOW_EMU_STATS");
    if (v && strcmp(v, "1") == 0)
        print_stats();
    write_stats_file();
}
} // namespace

void count(stat which, size_t bytes)
{
    static bool registered = false;
    if (!registered) {
        registered = true;
        atexit(at_exit); // it reads GLOW_EMU_STATS and GLOW_EMU_STATS_FILE then
    }
    stat_n[which]++;
    stat_bytes[which] += bytes;
}

bool inject(const char *api)
{
    static std::map<std::string, long> calls;
    const char *spec = env("GLOW_EMU_FAIL");
    if (!spec)
        return false;
    long n = ++calls[api];
    size_t len = strlen(api);
    for (const char *p = spec; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        std::string item(p, l);
        std::string name = item, at;
        size_t a = item.find('@');
        if (a != std::string::npos) {
            name = item.substr(0, a);
            at = item.substr(a + 1);
        }
        if (name.size() == len && name == api && (at.empty() || atol(at.c_str()) == n)) {
            if (config().trace)
                note("GLOW_EMU_FAIL: call %ld of %s fails", n, api);
            return true;
        }
        p += l;
        if (*p == ',')
            p++;
    }
    return false;
}

// ---- errors ----

static thread_local cudaError_t last_error = cudaSuccess;

cudaError_t set_error(cudaError_t e)
{
    if (e != cudaSuccess)
        last_error = e;
    return e;
}

// ---- memory ----

namespace {
struct registry {
    std::map<uintptr_t, region> live;         // by base
    std::map<uintptr_t, region> freed;        // recently freed (quarantine), by base
    std::deque<std::pair<uintptr_t, void *>> quarantine; // oldest first
    size_t quarantined = 0, device_bytes = 0;
    uint64_t next_id = 1;
};
registry &reg()
{
    static registry *r = new registry; // never destroyed: used until exit
    return *r;
}

// Freed device memory stays allocated and poisoned for a while (NaN for reads; for
// AddressSanitizer, poisoned memory), so that a use after the free shows and the
// pointer is still known as freed device memory.
constexpr size_t QUARANTINE_BYTES = (size_t)256 << 20;

void asan_poison(void *p, size_t n, bool on)
{
#if defined(__SANITIZE_ADDRESS__)
    if (on)
        __asan_poison_memory_region(p, n);
    else
        __asan_unpoison_memory_region(p, n);
#else
    (void)p;
    (void)n;
    (void)on;
#endif
}

const region *lookup(const std::map<uintptr_t, region> &m, const void *p, bool end_ok)
{
    uintptr_t a = (uintptr_t)p;
    auto it = m.upper_bound(a);
    if (it == m.begin())
        return nullptr;
    --it;
    const region &r = it->second;
    if (a < r.base + r.size || (a == r.base + r.size && (end_ok || r.size == 0)))
        return &r;
    return nullptr;
}
} // namespace

const region *find(const void *p, bool end_ok) { return lookup(reg().live, p, end_ok); }

static const char *kind_name(mem_kind k)
{
    return k == mem_kind::device ? "device memory" : k == mem_kind::pinned ? "pinned host memory"
                                                                           : "host memory";
}

std::string describe(const void *p)
{
    char buf[200];
    if (!p)
        return "a null pointer";
    const region *r = find(p, true);
    if (r) {
        snprintf(buf, sizeof buf, "%s (allocation #%llu of %zu bytes, offset %zu)",
                 kind_name(r->kind), (unsigned long long)r->id, r->size,
                 (size_t)((uintptr_t)p - r->base));
        return buf;
    }
    r = lookup(reg().freed, p, true);
    if (r) {
        snprintf(buf, sizeof buf, "freed %s (allocation #%llu of %zu bytes, offset %zu)",
                 kind_name(r->kind), (unsigned long long)r->id, r->size,
                 (size_t)((uintptr_t)p - r->base));
        return buf;
    }
    snprintf(buf, sizeof buf, "host memory (%p, not from cudaMalloc)", p);
    return buf;
}

void require_device(const void *p, size_t bytes, const char *call, const char *what,
                    bool pinned_ok)
{
    const region *r = find(p, bytes == 0);
    if (!r || (r->kind != mem_kind::device && !(pinned_ok && r->kind == mem_kind::pinned)))
        fatal("%s: %s %p is %s, not device memory", call, what, p, describe(p).c_str());
    uintptr_t a = (uintptr_t)p;
    if (bytes > r->base + r->size - a)
        fatal("%s: %s [%p, +%zu bytes) runs past the end of its allocation (#%llu, %zu bytes, "
              "offset %zu)",
              call, what, p, bytes, (unsigned long long)r->id, r->size, (size_t)(a - r->base));
}

void require_host(const void *p, size_t bytes, const char *call, const char *what)
{
    const region *r = find(p, bytes == 0);
    if (r && r->kind == mem_kind::device)
        fatal("%s: %s %p is %s, not host memory", call, what, p, describe(p).c_str());
    if (!r && lookup(reg().freed, p, true))
        fatal("%s: %s %p is %s", call, what, p, describe(p).c_str());
    if (r && bytes > r->base + r->size - (uintptr_t)p)
        fatal("%s: %s [%p, +%zu bytes) runs past the end of its pinned allocation (#%llu, %zu "
              "bytes)",
              call, what, p, bytes, (unsigned long long)r->id, r->size);
}

static void *alloc_region(size_t size, mem_kind kind)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        return nullptr;
    memset(p, 0xff, size); // poison: NaN as float, -1 as int
    registry &g = reg();
    g.live[(uintptr_t)p] = region{(uintptr_t)p, size, kind, g.next_id++};
    if (kind == mem_kind::device)
        g.device_bytes += size;
    return p;
}

static void release_region(const region r)
{
    registry &g = reg();
    g.live.erase(r.base);
    if (r.kind == mem_kind::device)
        g.device_bytes -= r.size;
    if (QUARANTINE_BYTES == 0 || r.size > QUARANTINE_BYTES / 4) {
        free((void *)r.base);
        return;
    }
    memset((void *)r.base, 0xff, r.size);
    asan_poison((void *)r.base, r.size, true);
    g.freed[r.base] = r;
    g.quarantine.emplace_back(r.base, (void *)r.base);
    g.quarantined += r.size;
    while (g.quarantined > QUARANTINE_BYTES) {
        auto [base, ptr] = g.quarantine.front();
        g.quarantine.pop_front();
        auto it = g.freed.find(base);
        g.quarantined -= it->second.size;
        asan_poison(ptr, it->second.size, false);
        g.freed.erase(it);
        free(ptr);
    }
}

// ---- streams ----

struct stream_state {
    bool legacy = false;
    bool blocking = true; // synchronises with the legacy default stream
    uint64_t id = 0;
    std::deque<std::unique_ptr<op>> q;
    std::string name;
};

namespace {
struct streams {
    stream_state legacy;
    std::set<stream_state *> live;
    uint64_t seq = 0, next_id = 1;
    int running = 0; // inside an op (no API calls may queue work then)
    streams()
    {
        legacy.legacy = true;
        legacy.name = "the legacy default stream";
    }
};
streams &S()
{
    static streams *s = new streams;
    return *s;
}
} // namespace

stream_state *stream_of(cudaStream_t h)
{
    streams &s = S();
    if (h == nullptr || h == cudaStreamLegacy || h == cudaStreamPerThread)
        return &s.legacy;
    stream_state *st = reinterpret_cast<stream_state *>(h);
    return s.live.count(st) ? st : nullptr;
}

const char *stream_name(const stream_state *s) { return s->name.c_str(); }

void enqueue(stream_state *s, std::unique_ptr<op> o)
{
    streams &g = S();
    if (g.running)
        fatal("%s queued while device work runs (a callback calling CUDA?)", o->what.c_str());
    o->seq = ++g.seq;
    if (config().trace)
        note("queue #%llu on %s: %s", (unsigned long long)o->seq, s->name.c_str(),
             o->what.c_str());
    s->q.push_back(std::move(o));
}

static void complete_upto(stream_state *s, uint64_t upto)
{
    streams &g = S();
    while (!s->q.empty() && s->q.front()->seq <= upto) {
        uint64_t seq = s->q.front()->seq;
        // the legacy default stream waits for every blocking stream's earlier
        // work, and a blocking stream for the legacy stream's; non-blocking
        // streams wait for nothing but themselves
        if (s->legacy) {
            for (stream_state *b : std::vector<stream_state *>(g.live.begin(), g.live.end()))
                if (b->blocking)
                    complete_upto(b, seq - 1);
        } else if (s->blocking) {
            complete_upto(&g.legacy, seq - 1);
        }
        std::unique_ptr<op> o = std::move(s->q.front());
        s->q.pop_front();
        if (config().trace)
            note("run #%llu on %s: %s", (unsigned long long)o->seq, s->name.c_str(),
                 o->what.c_str());
        g.running++;
        o->run();
        g.running--;
    }
}

void complete(stream_state *s) { complete_upto(s, S().seq); }

void complete_all()
{
    streams &g = S();
    for (;;) {
        stream_state *first = nullptr;
        auto consider = [&](stream_state *st) {
            if (!st->q.empty() && (!first || st->q.front()->seq < first->q.front()->seq))
                first = st;
        };
        consider(&g.legacy);
        for (stream_state *st : g.live)
            consider(st);
        if (!first)
            return;
        complete_upto(first, first->q.front()->seq);
    }
}

// Queued work that still uses [base, base + size): the first such op, or null.
static const op *pending_use(uintptr_t base, size_t size, const stream_state **where)
{
    streams &g = S();
    auto scan = [&](stream_state *st) -> const op * {
        for (const auto &o : st->q)
            for (uintptr_t u : o->uses)
                if (u >= base && u < base + (size ? size : 1)) {
                    *where = st;
                    return o.get();
                }
        return nullptr;
    };
    if (const op *o = scan(&g.legacy))
        return o;
    for (stream_state *st : g.live)
        if (const op *o = scan(st))
            return o;
    return nullptr;
}

} // namespace emu

using namespace emu;

// ---- the counters, for tests (emu_stats.h) ----

extern "C" int glow_emu_stats(unsigned long long *out, int n)
{
    EMU_API;
    static_assert((int)ST_COUNT == (int)GLOW_EMU_NSTATS, "emu_stats.h and emu_internal.h disagree");
    for (int i = 0; i < n && i < ST_COUNT; i++)
        out[i] = stat_n[i];
    return ST_COUNT;
}

// ---- device ----

static const char *const error_strings[][3] = {
    {"0", "cudaSuccess", "no error"},
    {"1", "cudaErrorInvalidValue", "invalid argument"},
    {"2", "cudaErrorMemoryAllocation", "out of memory"},
    {"3", "cudaErrorInitializationError", "initialization error"},
    {"4", "cudaErrorCudartUnloading", "driver shutting down"},
    {"9", "cudaErrorInvalidConfiguration", "invalid configuration argument"},
    {"12", "cudaErrorInvalidPitchValue", "invalid pitch argument"},
    {"13", "cudaErrorInvalidSymbol", "invalid device symbol"},
    {"17", "cudaErrorInvalidDevicePointer", "invalid device pointer"},
    {"21", "cudaErrorInvalidMemcpyDirection", "invalid copy direction for memcpy"},
    {"35", "cudaErrorInsufficientDriver",
     "CUDA driver version is insufficient for CUDA runtime version"},
    {"98", "cudaErrorInvalidDeviceFunction", "invalid device function"},
    {"100", "cudaErrorNoDevice", "no CUDA-capable device is detected"},
    {"101", "cudaErrorInvalidDevice", "invalid device ordinal"},
    {"400", "cudaErrorInvalidResourceHandle", "invalid resource handle"},
    {"600", "cudaErrorNotReady", "device not ready"},
    {"700", "cudaErrorIllegalAddress", "an illegal memory access was encountered"},
    {"701", "cudaErrorLaunchOutOfResources", "too many resources requested for launch"},
    {"715", "cudaErrorIllegalInstruction", "an illegal instruction was encountered"},
    {"719", "cudaErrorLaunchFailure", "unspecified launch failure"},
    {"999", "cudaErrorUnknown", "unknown error"},
};

static const char *const *error_entry(cudaError_t e)
{
    for (const auto &row : error_strings)
        if (atoi(row[0]) == (int)e)
            return row;
    return nullptr;
}

extern "C" const char *cudaGetErrorString(cudaError_t e)
{
    const char *const *r = error_entry(e);
    return r ? r[2] : "unrecognized error code";
}

extern "C" const char *cudaGetErrorName(cudaError_t e)
{
    const char *const *r = error_entry(e);
    return r ? r[1] : "cudaErrorUnknown";
}

extern "C" cudaError_t cudaGetLastError(void)
{
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

extern "C" cudaError_t cudaPeekAtLastError(void) { return last_error; }

static thread_local int current_device = 0;

extern "C" cudaError_t cudaGetDeviceCount(int *count)
{
    EMU_API;
    if (!count)
        return set_error(cudaErrorInvalidValue);
    *count = config().devices;
    return config().devices ? cudaSuccess : set_error(cudaErrorNoDevice);
}

static bool bad_device(int d) { return d < 0 || d >= config().devices; }

extern "C" cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device)
{
    EMU_API;
    if (!p)
        return set_error(cudaErrorInvalidValue);
    if (bad_device(device))
        return set_error(config().devices ? cudaErrorInvalidDevice : cudaErrorNoDevice);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "emulated");
    p->totalGlobalMem = config().mem_bytes;
    p->sharedMemPerBlock = 48 << 10;
    p->sharedMemPerBlockOptin = 227 << 10;
    p->sharedMemPerMultiprocessor = 228 << 10;
    p->regsPerBlock = 65536;
    p->regsPerMultiprocessor = 65536;
    p->warpSize = 32;
    p->memPitch = (size_t)1 << 31;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = 1024;
    p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 2147483647;
    p->maxGridSize[1] = 65535;
    p->maxGridSize[2] = 65535;
    p->totalConstMem = 65536;
    p->major = 9;
    p->minor = 0;
    p->textureAlignment = 512;
    p->multiProcessorCount = config().sms;
    p->canMapHostMemory = 1;
    p->concurrentKernels = 1;
    p->ECCEnabled = 1;
    p->pciBusID = device + 1;
    p->asyncEngineCount = 2;
    p->unifiedAddressing = 1;
    p->memoryBusWidth = 6144;
    p->l2CacheSize = 50 << 20;
    p->maxThreadsPerMultiProcessor = 2048;
    p->managedMemory = 1;
    p->maxBlocksPerMultiProcessor = 32;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, device);
    if (e != cudaSuccess)
        return e;
    if (!value)
        return set_error(cudaErrorInvalidValue);
    switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: *value = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: *value = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: *value = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: *value = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: *value = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: *value = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)p.sharedMemPerBlock; break;
    case cudaDevAttrWarpSize: *value = p.warpSize; break;
    case cudaDevAttrMultiProcessorCount: *value = p.multiProcessorCount; break;
    case cudaDevAttrComputeCapabilityMajor: *value = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: *value = p.minor; break;
    default: return set_error(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

extern "C" cudaError_t cudaSetDevice(int device)
{
    EMU_API;
    if (bad_device(device))
        return set_error(config().devices ? cudaErrorInvalidDevice : cudaErrorNoDevice);
    current_device = device;
    return cudaSuccess;
}

extern "C" cudaError_t cudaGetDevice(int *device)
{
    if (!device)
        return set_error(cudaErrorInvalidValue);
    *device = current_device;
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceSynchronize(void)
{
    EMU_API;
    count(ST_DEVICE_SYNC);
    complete_all();
    return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceReset(void)
{
    EMU_API;
    complete_all();
    return cudaSuccess;
}

extern "C" cudaError_t cudaDriverGetVersion(int *v)
{
    if (!v)
        return set_error(cudaErrorInvalidValue);
    *v = 13000;
    return cudaSuccess;
}

extern "C" cudaError_t cudaRuntimeGetVersion(int *v)
{
    if (!v)
        return set_error(cudaErrorInvalidValue);
    *v = CUDART_VERSION;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    EMU_API;
    if (!free_bytes || !total_bytes)
        return set_error(cudaErrorInvalidValue);
    size_t used = reg().device_bytes, total = config().mem_bytes;
    *total_bytes = total;
    *free_bytes = used < total ? total - used : 0;
    return cudaSuccess;
}

// ---- memory ----

extern "C" cudaError_t cudaMalloc(void **ptr, size_t size)
{
    EMU_API;
    if (!ptr)
        return set_error(cudaErrorInvalidValue);
    *ptr = nullptr;
    if (inject("cudaMalloc") || size > config().mem_bytes - std::min(config().mem_bytes,
                                                                      reg().device_bytes))
        return set_error(cudaErrorMemoryAllocation);
    count(ST_MALLOC, size);
    if (size == 0)
        return cudaSuccess; // as CUDA: success, null pointer
    void *p = alloc_region(size, mem_kind::device);
    if (!p)
        return set_error(cudaErrorMemoryAllocation);
    *ptr = p;
    return cudaSuccess;
}

static cudaError_t free_region(void *ptr, mem_kind kind, const char *call)
{
    const region *r = find(ptr);
    if (!r || r->base != (uintptr_t)ptr || r->kind != kind) {
        if (r && r->kind == kind)
            fatal("%s(%p): the pointer is inside an allocation, not its start (%s)", call, ptr,
                  describe(ptr).c_str());
        fatal("%s(%p): not a pointer from %s: it is %s", call, ptr,
              kind == mem_kind::device ? "cudaMalloc" : "cudaMallocHost/cudaHostAlloc",
              describe(ptr).c_str());
    }
    const stream_state *where = nullptr;
    if (const op *o = pending_use(r->base, r->size, &where))
        fatal("%s(%p): queued work on %s still uses this memory: %s (synchronise the stream "
              "first)",
              call, ptr, stream_name(where), o->what.c_str());
    release_region(*r);
    return cudaSuccess;
}

extern "C" cudaError_t cudaFree(void *ptr)
{
    EMU_API;
    if (!ptr)
        return cudaSuccess;
    count(ST_FREE);
    return free_region(ptr, mem_kind::device, "cudaFree");
}

extern "C" cudaError_t cudaHostAlloc(void **ptr, size_t size, unsigned int flags)
{
    EMU_API;
    if (!ptr || flags > 0x0f)
        return set_error(cudaErrorInvalidValue);
    *ptr = nullptr;
    if (inject("cudaMallocHost") || inject("cudaHostAlloc"))
        return set_error(cudaErrorMemoryAllocation);
    void *p = alloc_region(size, mem_kind::pinned);
    if (!p)
        return set_error(cudaErrorMemoryAllocation);
    *ptr = p;
    return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void **ptr, size_t size)
{
    return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

extern "C" cudaError_t cudaFreeHost(void *ptr)
{
    EMU_API;
    if (!ptr)
        return cudaSuccess;
    return free_region(ptr, mem_kind::pinned, "cudaFreeHost");
}

extern "C" cudaError_t cudaPointerGetAttributes(cudaPointerAttributes *attr, const void *ptr)
{
    EMU_API;
    if (!attr)
        return set_error(cudaErrorInvalidValue);
    memset(attr, 0, sizeof *attr);
    const region *r = find(ptr);
    attr->type = !r ? cudaMemoryTypeUnregistered
                    : r->kind == mem_kind::device ? cudaMemoryTypeDevice : cudaMemoryTypeHost;
    attr->device = 0;
    if (r) {
        attr->devicePointer = const_cast<void *>(ptr);
        attr->hostPointer = r->kind == mem_kind::pinned ? const_cast<void *>(ptr) : nullptr;
    }
    return cudaSuccess;
}

// ---- copies and fills ----

// GLOW_EMU_LAZY_DEFAULT_STREAM=1, read at every call (tests switch it on)
static bool lazy_default_stream()
{
    const char *v = env("GLOW_EMU_LAZY_DEFAULT_STREAM");
    return v && strcmp(v, "1") == 0;
}

static const char *const kind_names[] = {"cudaMemcpyHostToHost", "cudaMemcpyHostToDevice",
                                         "cudaMemcpyDeviceToHost", "cudaMemcpyDeviceToDevice",
                                         "cudaMemcpyDefault"};

static bool is_device(const void *p)
{
    const region *r = find(p);
    return r && r->kind == mem_kind::device;
}

static bool is_pinned(const void *p)
{
    const region *r = find(p);
    return r && r->kind == mem_kind::pinned;
}

// Checks a copy's pointers against its kind; returns the kind with Default resolved.
static cudaMemcpyKind check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                                 const char *call)
{
    if ((int)kind < 0 || (int)kind > 4)
        fatal("%s: invalid cudaMemcpyKind %d", call, (int)kind);
    if (kind == cudaMemcpyDefault)
        kind = (cudaMemcpyKind)((is_device(src) ? 2 : 0) + (is_device(dst) ? 1 : 0));
    char what[160];
    snprintf(what, sizeof what, "%s with %s:", call, kind_names[kind]);
    const bool dev_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool dev_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dev_dst)
        require_device(dst, n, what, "the destination");
    else
        require_host(dst, n, what, "the destination");
    if (dev_src)
        require_device(src, n, what, "the source");
    else
        require_host(src, n, what, "the source");
    if (n && (const char *)dst < (const char *)src + n && (const char *)src < (char *)dst + n &&
        dst != src)
        fatal("%s [%p, +%zu) and [%p, +%zu) overlap: CUDA copies are undefined for "
              "overlapping ranges",
              what, dst, n, src, n);
    return kind;
}

static std::unique_ptr<op> copy_op(void *dst, const void *src, size_t n, cudaMemcpyKind kind,
                                   const char *call, bool capture)
{
    count(kind == cudaMemcpyHostToDevice   ? ST_H2D
          : kind == cudaMemcpyDeviceToHost ? ST_D2H
                                           : ST_D2D,
          n);
    auto o = std::make_unique<op>();
    char buf[200];
    snprintf(buf, sizeof buf, "%s(%p <- %p, %zu bytes, %s)", call, dst, src, n,
             kind_names[kind]);
    o->what = buf;
    if (kind != cudaMemcpyHostToHost) {
        if (kind != cudaMemcpyDeviceToHost)
            o->uses.push_back((uintptr_t)dst);
        if (kind != cudaMemcpyHostToDevice)
            o->uses.push_back((uintptr_t)src);
    }
    if (capture) {
        // the source as it is now (pageable host memory is staged at the call)
        auto data = std::make_shared<std::vector<unsigned char>>(
            (const unsigned char *)src, (const unsigned char *)src + n);
        o->run = [dst, data] { memcpy(dst, data->data(), data->size()); };
    } else {
        o->run = [dst, src, n] { memcpy(dst, src, n); };
    }
    return o;
}

extern "C" cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n,
                                       cudaMemcpyKind kind, cudaStream_t stream)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s)
        fatal("cudaMemcpyAsync: stream %p is not a live stream", (void *)stream);
    if (n == 0)
        return cudaSuccess;
    kind = check_copy(dst, src, n, kind, "cudaMemcpyAsync");
    // H2D from pageable memory: staged now (the caller may reuse the buffer);
    // D2H into pageable memory: returns only when done (synchronous); with
    // pinned memory both wait in the stream and touch the host buffer when they run.
    const bool capture = kind == cudaMemcpyHostToDevice && !is_pinned(src);
    enqueue(s, copy_op(dst, src, n, kind, "cudaMemcpyAsync", capture));
    if ((kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost) && !is_pinned(dst))
        complete(s);
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind)
{
    EMU_API;
    if (n == 0)
        return cudaSuccess;
    kind = check_copy(dst, src, n, kind, "cudaMemcpy");
    stream_state *legacy = stream_of(nullptr);
    // The legacy default stream: waits for the earlier work of the legacy and of
    // every blocking stream, never for a non-blocking stream. H2D from pageable
    // memory and D2D may return before the copy lands (GLOW_EMU_LAZY_DEFAULT_STREAM=1
    // defers them to the next synchronisation with the legacy stream).
    const bool capture = kind == cudaMemcpyHostToDevice && !is_pinned(src);
    enqueue(legacy, copy_op(dst, src, n, kind, "cudaMemcpy", capture));
    const bool may_return_early =
        (kind == cudaMemcpyHostToDevice && !is_pinned(src)) || kind == cudaMemcpyDeviceToDevice;
    if (!(lazy_default_stream() && may_return_early))
        complete(legacy);
    return cudaSuccess;
}

static std::unique_ptr<op> memset_op(void *ptr, int value, size_t n, const char *call)
{
    count(ST_MEMSET, n);
    auto o = std::make_unique<op>();
    char buf[160];
    snprintf(buf, sizeof buf, "%s(%p, %d, %zu bytes)", call, ptr, value, n);
    o->what = buf;
    o->uses.push_back((uintptr_t)ptr);
    o->run = [ptr, value, n] { memset(ptr, value, n); };
    return o;
}

extern "C" cudaError_t cudaMemsetAsync(void *ptr, int value, size_t n, cudaStream_t stream)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s)
        fatal("cudaMemsetAsync: stream %p is not a live stream", (void *)stream);
    if (n == 0)
        return cudaSuccess;
    require_device(ptr, n, "cudaMemsetAsync", "the destination");
    enqueue(s, memset_op(ptr, value, n, "cudaMemsetAsync"));
    return cudaSuccess;
}

extern "C" cudaError_t cudaMemset(void *ptr, int value, size_t n)
{
    EMU_API;
    if (n == 0)
        return cudaSuccess;
    require_device(ptr, n, "cudaMemset", "the destination");
    enqueue(stream_of(nullptr), memset_op(ptr, value, n, "cudaMemset"));
    if (!lazy_default_stream())
        complete(stream_of(nullptr));
    return cudaSuccess;
}

// ---- streams ----

extern "C" cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags)
{
    EMU_API;
    if (!stream || (flags & ~1u))
        return set_error(cudaErrorInvalidValue);
    if (inject("cudaStreamCreateWithFlags") || inject("cudaStreamCreate"))
        return set_error(cudaErrorMemoryAllocation);
    auto *st = new stream_state;
    st->blocking = !(flags & cudaStreamNonBlocking);
    st->id = S().next_id++;
    st->name = "stream " + std::to_string(st->id) + (st->blocking ? "" : " (non-blocking)");
    S().live.insert(st);
    *stream = reinterpret_cast<cudaStream_t>(st);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamCreate(cudaStream_t *stream)
{
    return cudaStreamCreateWithFlags(stream, cudaStreamDefault);
}

extern "C" cudaError_t cudaStreamGetFlags(cudaStream_t stream, unsigned int *flags)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s || !flags)
        return set_error(!s ? cudaErrorInvalidResourceHandle : cudaErrorInvalidValue);
    *flags = s->blocking ? cudaStreamDefault : cudaStreamNonBlocking;
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s)
        fatal("cudaStreamSynchronize: stream %p is not a live stream", (void *)stream);
    count(ST_STREAM_SYNC);
    complete(s);
    return cudaSuccess;
}

extern "C" cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s)
        fatal("cudaStreamQuery: stream %p is not a live stream", (void *)stream);
    // nothing runs in the background: pending work is "not ready" until a
    // synchronisation runs it
    return s->q.empty() ? cudaSuccess : cudaErrorNotReady;
}

extern "C" cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    EMU_API;
    stream_state *s = stream_of(stream);
    if (!s || s->legacy)
        fatal("cudaStreamDestroy: %p is not a stream from cudaStreamCreate*", (void *)stream);
    // CUDA lets queued work finish after the destroy returns
    complete(s);
    S().live.erase(s);
    delete s;
    return cudaSuccess;
}

// ---- events ----
// An event is recorded as an operation of its stream, complete when that operation
// has run. Nothing is timed: cudaEventElapsedTime reports 0 ms between two
// completed timing events (so a choice "by the fastest" keeps its first candidate).

namespace {
struct event_rec {
    bool timing = true;
    bool recorded = false;
    bool done = false;
    uint64_t gen = 0;          // the current record's number (re-recording replaces it)
    stream_state *s = nullptr; // where it was recorded
    uint64_t seq = 0;          // the record's operation
};
struct event_obj {
    std::shared_ptr<event_rec> r;
};
std::set<event_obj *> &live_events()
{
    static std::set<event_obj *> *e = new std::set<event_obj *>;
    return *e;
}
event_rec *event_of(cudaEvent_t e, const char *call)
{
    event_obj *o = reinterpret_cast<event_obj *>(e);
    if (!o || !live_events().count(o))
        fatal("%s: %p is not a live event (cudaEventCreate)", call, (void *)e);
    return o->r.get();
}
} // namespace

extern "C" cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags)
{
    EMU_API;
    if (!event || (flags & ~(unsigned)(cudaEventBlockingSync | cudaEventDisableTiming)))
        return set_error(cudaErrorInvalidValue);
    auto *o = new event_obj;
    o->r = std::make_shared<event_rec>();
    o->r->timing = !(flags & cudaEventDisableTiming);
    live_events().insert(o);
    *event = reinterpret_cast<cudaEvent_t>(o);
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventCreate(cudaEvent_t *event)
{
    return cudaEventCreateWithFlags(event, cudaEventDefault);
}

extern "C" cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    EMU_API;
    event_obj *eo = reinterpret_cast<event_obj *>(event);
    event_of(event, "cudaEventRecord");
    stream_state *st = stream_of(stream);
    if (!st)
        fatal("cudaEventRecord: stream %p is not a live stream", (void *)stream);
    std::shared_ptr<event_rec> r = eo->r;
    const uint64_t gen = ++r->gen;
    r->recorded = true;
    r->done = false;
    r->s = st;
    auto o = std::make_unique<op>();
    o->what = "cudaEventRecord";
    o->run = [r, gen] {
        if (r->gen == gen)
            r->done = true;
    };
    count(ST_EVENT_RECORD);
    enqueue(st, std::move(o));
    r->seq = S().seq;
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    EMU_API;
    event_rec *r = event_of(event, "cudaEventSynchronize");
    count(ST_EVENT_SYNC);
    if (r->recorded && !r->done)
        complete_upto(r->s, r->seq);
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventQuery(cudaEvent_t event)
{
    EMU_API;
    event_rec *r = event_of(event, "cudaEventQuery");
    return r->recorded && !r->done ? cudaErrorNotReady : cudaSuccess;
}

extern "C" cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end)
{
    EMU_API;
    event_rec *a = event_of(start, "cudaEventElapsedTime"), *b = event_of(end, "cudaEventElapsedTime");
    if (!ms)
        return set_error(cudaErrorInvalidValue);
    if (!a->timing || !b->timing || !a->recorded || !b->recorded)
        return set_error(cudaErrorInvalidResourceHandle);
    if (!a->done || !b->done)
        return cudaErrorNotReady; // as cudaStreamQuery's: not recorded as the last error
    *ms = 0.0f;
    return cudaSuccess;
}

extern "C" cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    EMU_API;
    event_obj *o = reinterpret_cast<event_obj *>(event);
    if (!o)
        return set_error(cudaErrorInvalidResourceHandle);
    event_of(event, "cudaEventDestroy");
    live_events().erase(o);
    delete o; // a record still queued keeps its state alive
    return cudaSuccess;
}

// ---- kernels ----

namespace emu {

void submit_kernel(kernel_task *t, const site &s, dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t stream, const void *const *ptrs, size_t nptrs,
                   const void *const *words, size_t nwords)
{
    EMU_API;
    std::unique_ptr<kernel_task> task(t);
    stream_state *st = stream_of(stream);
    if (!st) {
        set_error(cudaErrorInvalidResourceHandle);
        return;
    }
    const unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
        grid.z > 65535 || threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 ||
        block.z > 64) {
        if (config().trace)
            note("launch of %s at %s:%d fails: grid (%u,%u,%u) block (%u,%u,%u)", s.kernel,
                 s.file, s.line, grid.x, grid.y, grid.z, block.x, block.y, block.z);
        set_error(cudaErrorInvalidConfiguration);
        return;
    }
    if (shmem > (48u << 10)) {
        set_error(cudaErrorInvalidValue);
        return;
    }
    auto o = std::make_unique<op>();
    char buf[300];
    snprintf(buf, sizeof buf, "kernel %s (%s:%d) grid (%u,%u,%u) block (%u,%u,%u)", s.kernel,
             s.file, s.line, grid.x, grid.y, grid.z, block.x, block.y, block.z);
    o->what = buf;
    for (size_t i = 0; i < nptrs; i++) {
        const void *p = ptrs[i];
        if (!p)
            continue;
        const region *r = find(p, true);
        if (!r)
            fatal("launch of %s at %s:%d: pointer argument %zu (%p) is %s; kernels can only "
                  "use device memory",
                  s.kernel, s.file, s.line, i + 1, p, describe(p).c_str());
        o->uses.push_back((uintptr_t)p);
    }
    for (size_t i = 0; i < nwords; i++) {
        const region *r = find(words[i], true);
        if (r && r->kind == mem_kind::device)
            o->uses.push_back((uintptr_t)words[i]);
    }
    count(ST_KERNELS);
    count(ST_BLOCKS, 0);
    stat_n[ST_BLOCKS] += (unsigned long long)grid.x * grid.y * grid.z - 1;
    const site ks = s;
    kernel_task *raw = task.release();
    std::shared_ptr<kernel_task> keep(raw);
    o->run = [keep, ks, grid, block, shmem] { run_grid(keep.get(), ks, grid, block, shmem); };
    enqueue(st, std::move(o));
}

} // namespace emu
