// Shared between the CUDA emulator's sources (not seen by emulated code): fatal
// errors, settings from the environment, the memory registry, streams and their
// queued operations, and the block runner.
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace emu {

// "emu: MESSAGE" on stderr, then abort(): a misuse of the API that the real CUDA
// would turn into undefined behaviour, a crash or a hang.
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2))); // "emu: ..." only

// One lock for the whole emulator: the API may be called from several host threads.
std::recursive_mutex &api_lock();
#define EMU_API std::lock_guard<std::recursive_mutex> emu_api_guard_(::emu::api_lock())

// ---- settings (environment, read once) ----
struct settings {
    int sms;          // GLOW_EMU_SMS (default 132, an H200)
    int devices;      // GLOW_EMU_DEVICES (default 1)
    size_t mem_bytes; // GLOW_EMU_MEM_MB (default 16384)
    bool trace;       // GLOW_EMU_TRACE=1
    bool tf32_off;    // NVIDIA_TF32_OVERRIDE=0
};
const settings &config();
// GLOW_EMU_FAIL=NAME[@N][,...]: the call of API function NAME (the N-th only)
// fails as if the device refused it.
bool inject(const char *api);
// "SPEC[;SPEC...]" of cudnn hooks, each OP[:key=value,...] (emu_cudnn.cpp)
const char *env(const char *name);

// ---- statistics (always counted; GLOW_EMU_STATS=1: printed at exit,
// GLOW_EMU_STATS_FILE=PATH: written there at exit; glow_emu_stats() of emu_stats.h
// reads them). The order is emu_stats.h's. ----
enum stat {
    ST_KERNELS,
    ST_BLOCKS,
    ST_CUBLAS,
    ST_CUDNN,
    ST_H2D,
    ST_D2H,
    ST_D2D,
    ST_MEMSET,
    ST_STREAM_SYNC,
    ST_DEVICE_SYNC,
    ST_MALLOC,
    ST_FREE,
    ST_EVENT_RECORD,
    ST_EVENT_SYNC,
    ST_COUNT
};
void count(stat which, size_t bytes = 0);

// ---- errors ----
cudaError_t set_error(cudaError_t e); // records e as the last error, returns it

// ---- memory ----
enum class mem_kind { none, device, pinned };
struct region {
    uintptr_t base;
    size_t size;
    mem_kind kind;
    uint64_t id;
};
// The live allocation holding p (p == base + size counts when size is 0 or
// end_ok), or null.
const region *find(const void *p, bool end_ok = false);
// Describes p for messages: "device memory (allocation #3 of 1024 bytes, offset 8)",
// "pinned host memory", "freed device memory", "host memory".
std::string describe(const void *p);
// [p, p + bytes) must lie in one live device (or, with pinned_ok, pinned)
// allocation; otherwise fatal, naming the call and the argument.
void require_device(const void *p, size_t bytes, const char *call, const char *what,
                    bool pinned_ok = false);
// p must not be device memory (a host argument)
void require_host(const void *p, size_t bytes, const char *call, const char *what);

// ---- streams and their work ----
struct op {
    std::string what;  // for messages: "kernel k_fill (cuda/x.cu:12)", "cudaMemcpyAsync"
    std::vector<uintptr_t> uses; // device addresses it reads or writes
    std::function<void()> run;
    uint64_t seq = 0;
};
struct stream_state;
// The stream of a handle (0 and cudaStreamLegacy: the legacy default stream); null
// when the handle is not a live stream.
stream_state *stream_of(cudaStream_t s);
const char *stream_name(const stream_state *s);
void enqueue(stream_state *s, std::unique_ptr<op> o);
// Runs s's queued work (and the work it implicitly waits for) up to and including
// the most recent op.
void complete(stream_state *s);
void complete_all();

// ---- kernels (emu_fiber.cpp) ----
void run_grid(kernel_task *t, const site &s, dim3 grid, dim3 block, size_t shmem);
void fiber_init();

} // namespace emu

#endif
