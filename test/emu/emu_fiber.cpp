// Running a grid: blocks one after another in order (x fastest; GLOW_EMU_ORDER=
// reverse: last first, blocks and threads), each block's threads as fibers on one
// host thread. A thread runs until it exits or reaches
// __syncthreads(); when every thread has done one or the other, the barrier is
// checked (all threads of the block at the same __syncthreads, none exited) and
// the waiting threads go on, in thread order. A kernel without barriers runs all
// its threads of a block on one fiber, one after another.
//
// Fibers switch with a few instructions on x86-64 (emu_ctx_switch below) and with
// ucontext elsewhere; under AddressSanitizer the switches are announced with
// __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber.
#include "emu_internal.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#include <sanitizer/common_interface_defs.h>
#else
#define EMU_ASAN 0
#endif

#if defined(__x86_64__) && !defined(EMU_FIBER_UCONTEXT)
#define EMU_ASM_SWITCH 1
#else
#define EMU_ASM_SWITCH 0
#include <ucontext.h>
#endif

#if EMU_ASM_SWITCH
// void emu_ctx_switch(void **save_sp, void *new_sp): saves the callee-saved
// registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer in *save_sp, and resumes the context saved at new_sp.
// emu_ctx_start: the first code of a fresh fiber; calls r13(r12) and never returns.
asm(R"(
    .text
    .globl emu_ctx_switch
    .type emu_ctx_switch, @function
emu_ctx_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_ctx_switch, .-emu_ctx_switch

    .globl emu_ctx_start
    .type emu_ctx_start, @function
emu_ctx_start:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size emu_ctx_start, .-emu_ctx_start
    .section .note.GNU-stack,"",@progbits
    .text
)");
extern "C" void emu_ctx_switch(void **save_sp, void *new_sp);
extern "C" void emu_ctx_start(void);
#endif

namespace emu {

uint3 g_thread_idx, g_block_idx;
dim3 g_block_dim, g_grid_dim;

namespace {

#if EMU_ASAN
constexpr size_t STACK_BYTES = (size_t)1 << 20;
#else
constexpr size_t STACK_BYTES = (size_t)256 << 10;
#endif

struct fiber {
    char *stack = nullptr; // usable [stack, stack + size); a guard page below
    size_t size = 0;
    bool busy = false;     // holds a thread (running or waiting at a barrier)
#if EMU_ASM_SWITCH
    void *sp = nullptr;
#else
    ucontext_t uc;
#endif
#if EMU_ASAN
    void *fake_stack = nullptr;
#endif
};

enum : unsigned char { T_NEW, T_RUN, T_WAIT, T_DONE };

struct block_state {
    kernel_task *task = nullptr;
    const site *s = nullptr;
    unsigned n = 0;    // threads per block
    unsigned next = 0; // the next thread not yet started
    unsigned cur = 0;  // the thread running now
    std::vector<unsigned char> state;
    std::vector<fiber *> fib;
    std::vector<const char *> wfile;
    std::vector<int> wline;
    // shared memory: the block's arena, the sites allocated in it
    std::vector<unsigned char> arena;
    size_t used = 0, dynamic = 0;
    struct var {
        const void *key;
        size_t off;
    };
    std::vector<var> vars;
    bool running = false;
    bool reverse = false; // GLOW_EMU_ORDER=reverse: blocks and threads last first
};

block_state B;
fiber sched;                 // the host side: the thread that runs the grid
fiber *current = nullptr;    // the fiber running now, null on the host side
// every fiber ever made; idle ones are reused (never destroyed: used until exit)
std::vector<fiber *> &pool = *new std::vector<fiber *>;

constexpr size_t STATIC_SHARED_LIMIT = 48u << 10;

void set_thread(unsigned t)
{
    const unsigned bx = g_block_dim.x, by = g_block_dim.y;
    g_thread_idx.x = t % bx;
    g_thread_idx.y = (t / bx) % by;
    g_thread_idx.z = t / (bx * by);
    B.cur = t;
}

void switch_to(fiber *from, fiber *to)
{
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&from->fake_stack, to->stack, to->size);
#endif
#if EMU_ASM_SWITCH
    emu_ctx_switch(&from->sp, to->sp);
#else
    if (swapcontext(&from->uc, &to->uc) != 0)
        fatal("swapcontext failed");
#endif
#if EMU_ASAN
    const void *bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(from->fake_stack, &bottom, &size);
    if (from != &sched) { // a fiber resumed: it came from the host side
        sched.stack = (char *)const_cast<void *>(bottom);
        sched.size = size;
    }
#endif
}

// The life of a fiber: start the block's next threads one after another until
// one waits at a barrier (the fiber stays with it) or none is left (idle).
void fiber_main(fiber *f)
{
#if EMU_ASAN
    const void *bottom = nullptr;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(nullptr, &bottom, &size);
    sched.stack = (char *)const_cast<void *>(bottom);
    sched.size = size;
#endif
    for (;;) {
        while (B.next < B.n) {
            unsigned t = B.next++;
            if (B.reverse)
                t = B.n - 1 - t;
            B.fib[t] = f;
            B.state[t] = T_RUN;
            set_thread(t);
            B.task->run_thread();
            B.state[t] = T_DONE;
        }
        f->busy = false;
        switch_to(f, &sched);
    }
}

#if !EMU_ASM_SWITCH
fiber *start_arg;
void fiber_entry() { fiber_main(start_arg); }
#endif

fiber *idle_fiber()
{
    for (fiber *f : pool)
        if (!f->busy)
            return f;
    const long page = sysconf(_SC_PAGESIZE);
    void *mem = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED)
        fatal("cannot map a %zu-byte fiber stack (%zu fibers so far)", STACK_BYTES,
              pool.size());
    if (mprotect(mem, page, PROT_NONE) != 0) // overflow hits the guard page
        fatal("cannot protect a fiber stack's guard page");
    fiber *f = new fiber;
    f->stack = (char *)mem + page;
    f->size = STACK_BYTES;
#if EMU_ASM_SWITCH
    // the frame emu_ctx_switch pops: MXCSR/x87 control word, r15, r14, r13, r12,
    // rbx, rbp, then the return address emu_ctx_start; 16-byte aligned after it
    uintptr_t top = ((uintptr_t)(f->stack + f->size)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 80);
    uint32_t csr[2];
    asm volatile("stmxcsr %0" : "=m"(csr[0]));
    asm volatile("fnstcw %0" : "=m"(csr[1]));
    memcpy(&sp[0], csr, 8);
    sp[1] = nullptr;                                   // r15
    sp[2] = nullptr;                                   // r14
    sp[3] = (void *)&fiber_main;                       // r13: the function
    sp[4] = (void *)f;                                 // r12: its argument
    sp[5] = nullptr;                                   // rbx
    sp[6] = nullptr;                                   // rbp
    sp[7] = (void *)&emu_ctx_start;                    // return address
    f->sp = sp;
#else
    if (getcontext(&f->uc) != 0)
        fatal("getcontext failed");
    f->uc.uc_stack.ss_sp = f->stack;
    f->uc.uc_stack.ss_size = f->size;
    f->uc.uc_link = nullptr;
    start_arg = f;
    makecontext(&f->uc, (void (*)())fiber_entry, 0);
#endif
    pool.push_back(f);
    return f;
}

void resume(fiber *f)
{
    current = f;
    switch_to(&sched, f);
    current = nullptr;
}

std::string where() // "kernel K (file:line), block (x,y,z)"
{
    char buf[400];
    snprintf(buf, sizeof buf, "kernel %s launched at %s:%d, block (%u,%u,%u) of grid (%u,%u,%u)",
             B.s->kernel, B.s->file, B.s->line, g_block_idx.x, g_block_idx.y, g_block_idx.z,
             g_grid_dim.x, g_grid_dim.y, g_grid_dim.z);
    return buf;
}

std::string thread_name(unsigned t)
{
    char buf[64];
    const unsigned bx = g_block_dim.x, by = g_block_dim.y;
    if (g_block_dim.y == 1 && g_block_dim.z == 1)
        snprintf(buf, sizeof buf, "%u", t);
    else
        snprintf(buf, sizeof buf, "(%u,%u,%u)", t % bx, (t / bx) % by, t / (bx * by));
    return buf;
}

// "threads 0-127, 130" of those t with pred(t)
template <class Pred>
std::string thread_list(Pred pred)
{
    std::string out;
    unsigned count = 0;
    for (unsigned t = 0; t < B.n;) {
        if (!pred(t)) {
            t++;
            continue;
        }
        unsigned e = t;
        while (e + 1 < B.n && pred(e + 1))
            e++;
        if (count++ < 8) {
            out += out.empty() ? "" : ", ";
            out += thread_name(t);
            if (e > t)
                out += "-" + thread_name(e);
        } else if (count == 9) {
            out += ", ...";
        }
        t = e + 1;
    }
    return out;
}

[[noreturn]] void divergent(const std::vector<unsigned> &waiting)
{
    std::string msg = "divergent __syncthreads() in " + where() + ":";
    std::vector<std::pair<const char *, int>> sites;
    for (unsigned t : waiting) {
        std::pair<const char *, int> s(B.wfile[t], B.wline[t]);
        bool seen = false;
        for (auto &x : sites)
            seen |= x.second == s.second && strcmp(x.first, s.first) == 0;
        if (!seen)
            sites.push_back(s);
    }
    for (auto &s : sites) {
        std::string l = thread_list([&](unsigned t) {
            return B.state[t] == T_WAIT && B.wline[t] == s.second && strcmp(B.wfile[t], s.first) == 0;
        });
        msg += "\n  threads " + l + " wait at " + s.first + ":" + std::to_string(s.second);
    }
    std::string done = thread_list([](unsigned t) { return B.state[t] == T_DONE; });
    if (!done.empty())
        msg += "\n  threads " + done + " have exited";
    msg += "\n  (every thread of a block must reach the same __syncthreads(); the GPU would "
           "hang or compute garbage)";
    fatal("%s", msg.c_str());
}

void run_block(unsigned bx, unsigned by, unsigned bz)
{
    g_block_idx.x = bx;
    g_block_idx.y = by;
    g_block_idx.z = bz;
    B.next = 0;
    std::fill(B.state.begin(), B.state.end(), (unsigned char)T_NEW);
    B.used = B.dynamic;
    B.vars.clear();
    memset(B.arena.data(), 0xff, B.dynamic);
    // start every thread; a fiber that leaves one waiting at a barrier keeps it
    while (B.next < B.n) {
        fiber *f = idle_fiber();
        f->busy = true;
        resume(f);
    }
    std::vector<unsigned> waiting;
    for (;;) {
        waiting.clear();
        bool any_done = false;
        for (unsigned t = 0; t < B.n; t++) {
            if (B.state[t] == T_WAIT)
                waiting.push_back(t);
            else if (B.state[t] == T_DONE)
                any_done = true;
            else
                fatal("internal: thread %u in state %d at a barrier", t, B.state[t]);
        }
        if (waiting.empty())
            return;
        if (any_done)
            divergent(waiting);
        for (unsigned t : waiting)
            if (B.wline[t] != B.wline[waiting[0]] || strcmp(B.wfile[t], B.wfile[waiting[0]]) != 0)
                divergent(waiting);
        if (B.reverse)
            std::reverse(waiting.begin(), waiting.end());
        for (unsigned t : waiting) {
            B.state[t] = T_RUN;
            set_thread(t);
            resume(B.fib[t]);
        }
    }
}

} // namespace

void syncthreads(const char *file, int line)
{
    if (!current)
        fatal("__syncthreads() at %s:%d called outside a kernel", file, line);
    const unsigned t = B.cur;
    B.state[t] = T_WAIT;
    B.wfile[t] = file;
    B.wline[t] = line;
    fiber *f = current;
    switch_to(f, &sched);
    // resumed by run_block, which has set this thread's index again
}

void threadfence() {}

void *shared_alloc(const void *key, size_t bytes, size_t align, const char *name)
{
    if (!current)
        fatal("__shared__ %s used outside a kernel", name);
    for (const auto &v : B.vars)
        if (v.key == key)
            return B.arena.data() + v.off;
    size_t off = (B.used + align - 1) / align * align;
    if (off + bytes - B.dynamic > STATIC_SHARED_LIMIT || off + bytes > B.arena.size())
        fatal("__shared__ %s (%zu bytes) in %s: the block's static shared memory exceeds %zu "
              "bytes",
              name, bytes, where().c_str(), STATIC_SHARED_LIMIT);
    memset(B.arena.data() + off, 0xff, bytes); // poison: NaN as float or double
    B.used = off + bytes;
    B.vars.push_back({key, off});
    return B.arena.data() + off;
}

void *dynamic_shared(const char *name)
{
    if (!current)
        fatal("extern __shared__ %s used outside a kernel", name);
    if (B.dynamic == 0)
        fatal("extern __shared__ %s in %s: the launch gave no dynamic shared memory", name,
              where().c_str());
    return B.arena.data();
}

#if !EMU_ASAN
// A crash inside a kernel (a wild index, a bad pointer in a struct argument, a
// fiber stack overflow) names the kernel, block and thread, then dies as usual.
// Under ASan its own handler reports the crash instead.
void on_crash(int sig)
{
    char buf[700];
    int n;
    if (B.running && B.s)
        n = snprintf(buf, sizeof buf,
                     "emu: %s in %s, thread %s (an index out of range, a pointer that is "
                     "not device memory, or a fiber stack overflow)\n",
                     sig == SIGSEGV ? "segmentation fault" : sig == SIGBUS ? "bus error"
                                                                             : "fatal signal",
                     where().c_str(), thread_name(B.cur).c_str());
    else
        n = 0;
    if (n > 0 && write(2, buf, (size_t)n) < 0)
        n = 0;
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_crash_handler()
{
    static bool done = false;
    if (done)
        return;
    done = true;
    static std::vector<char> alt(1 << 16);
    stack_t ss = {};
    ss.ss_sp = alt.data();
    ss.ss_size = alt.size();
    sigaltstack(&ss, nullptr);
    struct sigaction sa = {};
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE})
        if (sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
            sigaction(sig, &sa, nullptr);
}
#endif

void run_grid(kernel_task *t, const site &s, dim3 grid, dim3 block, size_t shmem)
{
#if !EMU_ASAN
    install_crash_handler();
#endif
    if (B.running)
        fatal("kernel %s launched from inside a kernel", s.kernel);
    B.running = true;
    B.task = t;
    B.s = &s;
    B.n = block.x * block.y * block.z;
    B.state.assign(B.n, T_NEW);
    B.fib.assign(B.n, nullptr);
    B.wfile.assign(B.n, nullptr);
    B.wline.assign(B.n, 0);
    B.dynamic = shmem;
    B.arena.resize(shmem + STATIC_SHARED_LIMIT + 64);
    g_grid_dim = grid;
    g_block_dim = block;
    const char *order = env("GLOW_EMU_ORDER");
    B.reverse = order && strcmp(order, "reverse") == 0;
    if (order && !B.reverse && strcmp(order, "forward") != 0)
        fatal("GLOW_EMU_ORDER=%s: expected forward or reverse", order);
    for (unsigned zz = 0; zz < grid.z; zz++)
        for (unsigned yy = 0; yy < grid.y; yy++)
            for (unsigned xx = 0; xx < grid.x; xx++) {
                if (B.reverse)
                    run_block(grid.x - 1 - xx, grid.y - 1 - yy, grid.z - 1 - zz);
                else
                    run_block(xx, yy, zz);
            }
    B.running = false;
    B.task = nullptr;
}

} // namespace emu
