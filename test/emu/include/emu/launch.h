// Kernel launches and __shared__ variables of the CUDA emulator. rewrite.py turns
//     kernel<<<grid, block, shmem, stream>>>(args...)
// into
//     ::emu::launch(kernel, "kernel", __FILE__, __LINE__, grid, block, shmem, stream)(args...)
// and
//     __shared__ T name[N][M];
// into
//     static char emu_shared_name; auto &name = ::emu::shared<T[N][M]>(&emu_shared_name, "name");
// The arguments are converted to the kernel's parameter types and captured by value
// when the launch is queued; the kernel runs when its stream is synchronised.
#ifndef EMU_LAUNCH_H
#define EMU_LAUNCH_H

#include <cstddef>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace emu {

struct site {
    const char *kernel; // the kernel expression as written
    const char *file;
    int line;
};

// One launch with its arguments: run_thread() runs the kernel body for the current
// thread (threadIdx etc. are set by the emulator).
struct kernel_task {
    virtual ~kernel_task() {}
    virtual void run_thread() = 0;
};

// Checks the launch (configuration, stream, pointer arguments) and queues it, or
// sets the launch error that cudaGetLastError returns. Takes ownership of t.
// ptrs[0..nptrs): pointer arguments (each must be device or pinned memory or
// null); words[0..nwords): the words of struct arguments (functors), of which
// those that point into device memory are recorded as uses of that memory.
void submit_kernel(kernel_task *t, const site &s, dim3 grid, dim3 block, size_t shmem,
                   cudaStream_t stream, const void *const *ptrs, size_t nptrs,
                   const void *const *words, size_t nwords);

void *shared_alloc(const void *key, size_t bytes, size_t align, const char *name);
void *dynamic_shared(const char *name);

template <class... P>
struct task final : kernel_task {
    void (*k)(P...);
    std::tuple<P...> args;
    task(void (*kernel)(P...), P... a) : k(kernel), args(a...) {}
    void run_thread() override { std::apply(k, args); }
};

template <class T>
inline void collect_arg(const T &a, const void **ptrs, size_t &np, const void **words,
                        size_t &nw)
{
    if constexpr (std::is_pointer_v<T>) {
        ptrs[np++] = (const void *)a;
    } else if constexpr (std::is_class_v<T> && std::is_trivially_copyable_v<T>) {
        // pointer members of functors and structs: every aligned word
        constexpr size_t n = sizeof(T) / sizeof(void *);
        for (size_t i = 0; i < n && nw < 64; i++) {
            const void *w;
            std::memcpy(&w, (const char *)&a + i * sizeof(void *), sizeof w);
            words[nw++] = w;
        }
    }
}

template <class... P>
class launcher {
  public:
    launcher(void (*k)(P...), site s, dim3 g, dim3 b, size_t sh, cudaStream_t st)
        : k_(k), s_(s), g_(g), b_(b), sh_(sh), st_(st)
    {
    }
    void operator()(P... args) const
    {
        const void *ptrs[sizeof...(P) + 1];
        const void *words[64];
        size_t np = 0, nw = 0;
        (collect_arg(args, ptrs, np, words, nw), ...);
        submit_kernel(new task<P...>(k_, args...), s_, g_, b_, sh_, st_, ptrs, np, words, nw);
    }

  private:
    void (*k_)(P...);
    site s_;
    dim3 g_, b_;
    size_t sh_;
    cudaStream_t st_;
};

template <class... P>
inline launcher<P...> launch(void (*k)(P...), const char *name, const char *file, int line,
                             dim3 grid, dim3 block, size_t shmem = 0, cudaStream_t stream = 0)
{
    return launcher<P...>(k, site{name, file, line}, grid, block, shmem, stream);
}

// A __shared__ variable: one per block and declaration site (key), fresh for each
// block and filled with 0xff bytes (NaN for floats), so that a read before any
// thread wrote it shows.
template <class T>
inline T &shared(const void *key, const char *name)
{
    static_assert(std::is_trivially_destructible_v<T>, "__shared__ of a type with a destructor");
    return *static_cast<T *>(shared_alloc(key, sizeof(T), alignof(T), name));
}

template <class T>
inline T *extern_shared(const char *name)
{
    return static_cast<T *>(dynamic_shared(name));
}

} // namespace emu

#endif
