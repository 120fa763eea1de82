// The CUDA emulator's own tests (CUDA code, rewritten and compiled like cuda/):
// barriers, shared-memory poison, launch errors, device memory and memcpy kind
// checks, stream ordering, the number formats, and the cuBLAS and cuDNN stand-ins
// against naive references written here. A misuse that the emulator must refuse
// runs in a child process, whose abort message is checked.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "check.h"
#include "emu_dies_with.h"
#include "emu_stats.h"

#define OK(call) CHECKF((call) == cudaSuccess, "%s", #call)
#define BLAS_OK(call) CHECKF((call) == CUBLAS_STATUS_SUCCESS, "%s", #call)
#define DNN_OK(call) CHECKF((call) == CUDNN_STATUS_SUCCESS, "%s", #call)

// ---- helpers ----

static bool is_nan_bits(float f) { return f != f; }

static float *dev_floats(size_t n)
{
    float *p = nullptr;
    cudaMalloc(&p, n * sizeof(float));
    return p;
}

static void upload(float *d, const std::vector<float> &h)
{
    cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
}

static std::vector<float> download(const float *d, size_t n)
{
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}

static unsigned rng_state = 12345;
static float frand(float lo, float hi)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)((rng_state >> 8) & 0xffffff) / 16777216.0f;
}

static std::vector<float> rand_vec(size_t n, float lo = -1, float hi = 1)
{
    std::vector<float> v(n);
    for (auto &x : v)
        x = frand(lo, hi);
    return v;
}

static double max_rel(const std::vector<float> &got, const std::vector<double> &want)
{
    double m = 0, d = 0;
    for (size_t i = 0; i < want.size(); i++) {
        m = fmax(m, fabs(want[i]));
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= d))
            d = e;
    }
    return m > 0 ? d / m : d;
}

// ---- kernels ----

// block sum in shared memory with a tree of __syncthreads; one result per block
__global__ void k_block_sum(const float *x, int n, float *out)
{
    __shared__ float buf[1024];
    const unsigned t = threadIdx.x + threadIdx.y * blockDim.x;
    const unsigned nt = blockDim.x * blockDim.y;
    const unsigned i = blockIdx.x * nt + t;
    buf[t] = i < (unsigned)n ? x[i] : 0.0f;
    __syncthreads();
    for (unsigned s = 1; s < nt; s *= 2) {
        if (t % (2 * s) == 0 && t + s < nt)
            buf[t] += buf[t + s];
        __syncthreads();
    }
    if (t == 0)
        out[blockIdx.x] = buf[0];
}

__global__ void k_exit_early(float *out)
{
    __shared__ float v[64];
    if (threadIdx.x >= 32)
        return; // the other half waits below for threads that are gone
    v[threadIdx.x] = 1;
    __syncthreads();
    out[threadIdx.x] = v[(threadIdx.x + 1) % 32];
}

__global__ void k_two_barriers(float *out)
{
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1;
}

__global__ void k_uneven_loop(float *out)
{
    for (unsigned i = 0; i <= threadIdx.x % 3; i++)
        __syncthreads();
    out[threadIdx.x] = 1;
}

// reads shared memory before any thread wrote it (block 0 writes it afterwards:
// block 1 must still see poison)
__global__ void k_shared_unwritten(float *out, int *iout)
{
    __shared__ float f[32];
    __shared__ int k[32];
    out[blockIdx.x * 32 + threadIdx.x] = f[threadIdx.x];
    iout[blockIdx.x * 32 + threadIdx.x] = k[threadIdx.x];
    __syncthreads();
    f[threadIdx.x] = 1.0f;
    k[threadIdx.x] = 7;
}

// thread 0 publishes a value without a barrier: a race that the forward order hides
__global__ void k_missing_barrier(float *out)
{
    __shared__ float v;
    if (threadIdx.x == 0)
        v = 3.0f;
    out[threadIdx.x] = v;
}

__global__ void k_fill(float *p, float v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        p[i] = v;
}

__global__ void k_copy(const float *src, float *dst, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        dst[i] = src[i];
}

struct params {
    float a, b;
    float *out;
};
__global__ void k_params(params p)
{
    if (threadIdx.x == 0 && blockIdx.x == 0)
        p.out[0] = p.a + p.b;
}

template <int N, class F>
__global__ void k_functor(F f, float *out)
{
    out[threadIdx.x] = f(threadIdx.x) * N;
}

struct twice {
    __device__ float operator()(unsigned i) const { return 2.0f * (float)i; }
};

__global__ void k_idx(unsigned *out)
{
    const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    out[b * nt + t] = b * 10000 + t;
}

__global__ void k_nop(float *) {}

// ---- barriers and shared memory ----

static void test_barriers()
{
    const int n = 5000;
    std::vector<float> h = rand_vec(n);
    float *x = dev_floats(n), *out = dev_floats(n);
    upload(x, h);
    const dim3 blocks[] = {dim3(1), dim3(7), dim3(256), dim3(1024), dim3(32, 8), dim3(3, 5)};
    for (const dim3 &b : blocks) {
        const unsigned nt = b.x * b.y;
        const unsigned grid = (n + nt - 1) / nt;
        k_block_sum<<<grid, b>>>(x, n, out);
        OK(cudaGetLastError());
        std::vector<float> got = download(out, grid);
        bool ok = true;
        for (unsigned g = 0; g < grid; g++) {
            double s = 0;
            for (unsigned i = g * nt; i < (g + 1) * nt && i < (unsigned)n; i++)
                s += h[i];
            ok &= fabs(got[g] - s) <= 1e-4 * (1 + fabs(s));
        }
        CHECKF(ok, "block sum with block (%u,%u)", b.x, b.y);
    }
    cudaFree(x);
    cudaFree(out);

    CHECK(dies_with("exit before a barrier", "threads 0-31 wait at test/emu/test_emu.cu:", [] {
        float *o = dev_floats(64);
        k_exit_early<<<1, 64>>>(o);
        cudaDeviceSynchronize();
    }));
    CHECK(dies_with("exit before a barrier", "threads 32-63 have exited", [] {
        float *o = dev_floats(64);
        k_exit_early<<<1, 64>>>(o);
        cudaDeviceSynchronize();
    }));
    CHECK(dies_with("two barriers", "divergent __syncthreads() in kernel k_two_barriers", [] {
        float *o = dev_floats(64);
        k_two_barriers<<<1, 64>>>(o);
        cudaDeviceSynchronize();
    }));
    CHECK(dies_with("uneven loop", "have exited", [] {
        float *o = dev_floats(64);
        k_uneven_loop<<<2, 64>>>(o);
        cudaDeviceSynchronize();
    }));
    CHECK(dies_with("barrier on the host", "called outside a kernel", [] { __syncthreads(); }));

    // GLOW_EMU_ORDER=reverse runs the last thread first: the missing barrier shows
    {
        const char *was = getenv("GLOW_EMU_ORDER");
        std::string saved = was ? was : "";
        float *o = dev_floats(32);
        setenv("GLOW_EMU_ORDER", "forward", 1);
        k_missing_barrier<<<1, 32>>>(o);
        std::vector<float> fw = download(o, 32);
        setenv("GLOW_EMU_ORDER", "reverse", 1);
        k_missing_barrier<<<1, 32>>>(o);
        std::vector<float> rv = download(o, 32);
        if (was)
            setenv("GLOW_EMU_ORDER", saved.c_str(), 1);
        else
            unsetenv("GLOW_EMU_ORDER");
        CHECKF(fw[31] == 3.0f && is_nan_bits(rv[31]) && rv[0] == 3.0f,
               "forward order hides the race (%g), reverse order shows it (%g)", fw[31], rv[31]);
        cudaFree(o);
    }

    // shared memory: poisoned for every block until written
    float *f = dev_floats(64);
    int *k = nullptr;
    cudaMalloc(&k, 64 * sizeof(int));
    k_shared_unwritten<<<2, 32>>>(f, k);
    std::vector<float> hf = download(f, 64);
    std::vector<int> hk(64);
    cudaMemcpy(hk.data(), k, sizeof(int) * 64, cudaMemcpyDeviceToHost);
    bool poison = true;
    for (int i = 0; i < 64; i++)
        poison &= is_nan_bits(hf[i]) && hk[i] == -1;
    CHECKF(poison, "unwritten shared memory reads as NaN / -1 in every block");
    cudaFree(f);
    cudaFree(k);
}

// ---- launches ----

static void test_launches()
{
    unsigned *idx = nullptr;
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    const unsigned nb = 12, nt = 24;
    OK(cudaMalloc(&idx, nb * nt * sizeof(unsigned)));
    k_idx<<<grid, block>>>(idx);
    OK(cudaGetLastError());
    std::vector<unsigned> h(nb * nt);
    cudaMemcpy(h.data(), idx, h.size() * sizeof(unsigned), cudaMemcpyDeviceToHost);
    bool ok = true;
    for (unsigned b = 0; b < nb; b++)
        for (unsigned t = 0; t < nt; t++)
            ok &= h[b * nt + t] == b * 10000 + t;
    CHECKF(ok, "threadIdx, blockIdx, blockDim, gridDim in 3-d");
    cudaFree(idx);

    float *p = dev_floats(4);
    cudaGetLastError();
    k_nop<<<1, 1025>>>(p);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    CHECK(cudaGetLastError() == cudaSuccess); // read and reset
    k_nop<<<0, 32>>>(p);
    CHECK(cudaPeekAtLastError() == cudaErrorInvalidConfiguration);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    k_nop<<<1, dim3(1, 1, 65)>>>(p);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
    k_nop<<<1, dim3(32, 32)>>>(p);
    CHECK(cudaGetLastError() == cudaSuccess);
    k_nop<<<1, 32, 64 << 10>>>(p);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue);
    CHECK(strcmp(cudaGetErrorString(cudaErrorInvalidConfiguration),
                 "invalid configuration argument") == 0);
    CHECK(strcmp(cudaGetErrorName(cudaErrorMemoryAllocation), "cudaErrorMemoryAllocation") == 0);

    // arguments: converted to the parameter types and captured at the launch
    params pa = {1.5f, 2.0f, p};
    cudaStream_t s;
    OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    k_params<<<1, 1, 0, s>>>(pa);
    pa.a = 100.0f;
    cudaStreamSynchronize(s);
    CHECK(download(p, 1)[0] == 3.5f);
    k_functor<3, twice><<<1, 4, 0, s>>>(twice(), p);
    cudaStreamSynchronize(s);
    std::vector<float> fv = download(p, 4);
    CHECK(fv[0] == 0 && fv[1] == 6 && fv[3] == 18);
    OK(cudaStreamDestroy(s));

    CHECK(dies_with("host pointer as a kernel argument", "kernels can only use device memory", [] {
        std::vector<float> host(8);
        k_fill<<<1, 8>>>(host.data(), 1.0f, 8);
    }));
    cudaFree(p);

    cudaDeviceProp prop;
    OK(cudaGetDeviceProperties(&prop, 0));
    const char *sms = getenv("GLOW_EMU_SMS");
    CHECK(strcmp(prop.name, "emulated") == 0 && prop.major == 9 && prop.minor == 0);
    CHECKF(prop.multiProcessorCount == (sms ? atoi(sms) : 132), "%d SMs",
           prop.multiProcessorCount);
    int n = 0;
    OK(cudaGetDeviceCount(&n));
    CHECK(n == 1);
    CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
    cudaGetLastError();
    CHECK(cudnnGetVersion() / 10000 == 9 && cudnnGetVersion() == CUDNN_VERSION);
}

// ---- memory ----

static void test_memory()
{
    float *d = dev_floats(16);
    std::vector<float> h = download(d, 16);
    bool nan = true;
    for (float v : h)
        nan &= is_nan_bits(v);
    CHECKF(nan, "fresh device memory is poisoned (NaN)");
    OK(cudaMemsetAsync(d, 0, 16 * sizeof(float), 0));
    h = download(d, 16);
    CHECK(h[0] == 0 && h[15] == 0);
    size_t fr = 0, tot = 0;
    OK(cudaMemGetInfo(&fr, &tot));
    CHECK(tot > fr && fr > 0);
    void *huge = nullptr;
    CHECK(cudaMalloc(&huge, (size_t)1 << 52) == cudaErrorMemoryAllocation && !huge);
    CHECK(cudaGetLastError() == cudaErrorMemoryAllocation);
    OK(cudaFree(nullptr));

    CHECK(dies_with("H2D into host memory", "is host memory", [] {
        std::vector<float> a(4), b(4);
        cudaMemcpy(a.data(), b.data(), 16, cudaMemcpyHostToDevice);
    }));
    CHECK(dies_with("D2H from host memory", "not device memory", [] {
        std::vector<float> a(4), b(4);
        cudaMemcpy(a.data(), b.data(), 16, cudaMemcpyDeviceToHost);
    }));
    CHECK(dies_with("H2D from device memory", "not host memory", [] {
        float *x = dev_floats(4), *y = dev_floats(4);
        cudaMemcpy(x, y, 16, cudaMemcpyHostToDevice);
    }));
    CHECK(dies_with("copy past the end", "runs past the end of its allocation", [] {
        float *x = dev_floats(4);
        std::vector<float> a(8);
        cudaMemcpy(x, a.data(), 32, cudaMemcpyHostToDevice);
    }));
    CHECK(dies_with("overlapping D2D", "overlap", [] {
        float *x = dev_floats(8);
        cudaMemcpyAsync(x, x + 2, 16, cudaMemcpyDeviceToDevice, 0);
    }));
    CHECK(dies_with("free of a host pointer", "not a pointer from cudaMalloc", [] {
        std::vector<float> a(4);
        cudaFree(a.data());
    }));
    CHECK(dies_with("free inside an allocation", "inside an allocation", [] {
        float *x = dev_floats(8);
        cudaFree(x + 1);
    }));
    CHECK(dies_with("double free", "freed device memory", [] {
        float *x = dev_floats(8);
        cudaFree(x);
        cudaFree(x);
    }));
    CHECK(dies_with("cudaFreeHost of device memory", "not a pointer from cudaMallocHost", [] {
        float *x = dev_floats(8);
        cudaFreeHost(x);
    }));
    CHECK(dies_with("free under queued work", "still uses this memory", [] {
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        float *x = dev_floats(8);
        k_fill<<<1, 8, 0, s>>>(x, 1.0f, 8);
        cudaFree(x);
    }));
    CHECK(dies_with("memset of host memory", "not device memory", [] {
        std::vector<float> a(4);
        cudaMemsetAsync(a.data(), 0, 16, 0);
    }));
    cudaFree(d);

    // fault injection: the second cudaMalloc fails
    CHECK(dies_with("GLOW_EMU_FAIL", "second failed", [] {
        setenv("GLOW_EMU_FAIL", "cudaMalloc@2", 1);
        void *a = nullptr, *b = nullptr;
        if (cudaMalloc(&a, 4) == cudaSuccess && cudaMalloc(&b, 4) == cudaErrorMemoryAllocation) {
            fprintf(stderr, "second failed\n");
            abort();
        }
    }));
}

// ---- streams ----

static void test_streams()
{
    const int n = 256;
    cudaStream_t nb, bl;
    OK(cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking));
    OK(cudaStreamCreate(&bl));
    float *a = dev_floats(n), *b = dev_floats(n);
    OK(cudaMemsetAsync(a, 0, n * sizeof(float), nb));
    OK(cudaStreamSynchronize(nb));

    // the legacy default stream does not wait for a non-blocking stream
    k_fill<<<2, 64, 0, nb>>>(a, 5.0f, n);
    CHECK(cudaStreamQuery(nb) == cudaErrorNotReady);
    std::vector<float> h = download(a, n);
    CHECKF(h[0] == 0.0f, "a blocking cudaMemcpy does not wait for a non-blocking stream (%g)",
           h[0]);
    OK(cudaStreamSynchronize(nb));
    CHECK(cudaStreamQuery(nb) == cudaSuccess);
    CHECK(download(a, n)[n - 1] == 5.0f);

    // ... but waits for a blocking stream
    k_fill<<<2, 64, 0, bl>>>(a, 6.0f, n);
    CHECKF(download(a, n)[0] == 6.0f, "a blocking cudaMemcpy waits for a blocking stream");

    // the ordering bug: a kernel queued on the non-blocking stream reads b, then
    // a synchronous cudaMemcpy overwrites b before that kernel ran
    std::vector<float> ones(n, 1.0f), twos(n, 2.0f);
    upload(b, ones);
    k_copy<<<4, 64, 0, nb>>>(b, a, n);
    upload(b, twos);
    OK(cudaStreamSynchronize(nb));
    CHECKF(download(a, n)[0] == 2.0f, "the queued kernel saw the later copy (wrong order)");

    // H2D from pageable memory: the source as it was at the call
    std::vector<float> src(n, 3.0f);
    OK(cudaMemcpyAsync(b, src.data(), n * sizeof(float), cudaMemcpyHostToDevice, nb));
    src.assign(n, 4.0f);
    OK(cudaStreamSynchronize(nb));
    CHECK(download(b, n)[0] == 3.0f);

    // pinned memory: H2D reads it when the copy runs, D2H lands at the synchronisation
    float *pin = nullptr;
    OK(cudaMallocHost(&pin, n * sizeof(float)));
    for (int i = 0; i < n; i++)
        pin[i] = 7.0f;
    OK(cudaMemcpyAsync(b, pin, n * sizeof(float), cudaMemcpyHostToDevice, nb));
    pin[0] = 8.0f;
    OK(cudaStreamSynchronize(nb));
    CHECK(download(b, 1)[0] == 8.0f);
    pin[0] = -1.0f;
    OK(cudaMemcpyAsync(pin, b, sizeof(float), cudaMemcpyDeviceToHost, nb));
    CHECKF(pin[0] == -1.0f, "D2H into pinned memory waits in the stream");
    OK(cudaStreamSynchronize(nb));
    CHECK(pin[0] == 8.0f);
    // D2H into pageable memory is synchronous
    float one = -1;
    k_fill<<<1, 32, 0, nb>>>(b, 9.0f, n);
    OK(cudaMemcpyAsync(&one, b, sizeof one, cudaMemcpyDeviceToHost, nb));
    CHECK(one == 9.0f);
    OK(cudaFreeHost(pin));

    // GLOW_EMU_LAZY_DEFAULT_STREAM=1: a synchronous H2D copy lands only when the
    // legacy stream is synchronised, so a kernel on a non-blocking stream can
    // read the buffer before it
    CHECK(dies_with("lazy legacy stream", "the kernel read x before the copy landed", [] {
        setenv("GLOW_EMU_LAZY_DEFAULT_STREAM", "1", 1);
        cudaStream_t s;
        cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
        float *x = dev_floats(4), *y = dev_floats(4);
        cudaMemsetAsync(x, 0, 16, s);
        cudaStreamSynchronize(s);
        const float v[4] = {1, 1, 1, 1};
        float *vh = (float *)malloc(sizeof v);
        memcpy(vh, v, sizeof v);
        cudaMemcpy(x, vh, sizeof v, cudaMemcpyHostToDevice);
        k_fill<<<1, 4, 0, s>>>(y, 42.0f, 4);
        k_copy<<<1, 4, 0, s>>>(x, y, 4);
        cudaStreamSynchronize(s);
        float got = -1;
        cudaMemcpyAsync(&got, y, 4, cudaMemcpyDeviceToHost, s);
        if (got == 0.0f) {
            fprintf(stderr, "the kernel read x before the copy landed\n");
            abort();
        }
    }));

    // events: recorded in stream order, complete when the stream has run up to them;
    // no timing (0 ms); the counters see records and synchronisations
    {
        unsigned long long c0[GLOW_EMU_NSTATS], c1[GLOW_EMU_NSTATS];
        CHECK(glow_emu_stats(c0, GLOW_EMU_NSTATS) == GLOW_EMU_NSTATS);
        cudaEvent_t e0, e1, nt;
        OK(cudaEventCreate(&e0));
        OK(cudaEventCreateWithFlags(&e1, cudaEventDefault));
        OK(cudaEventCreateWithFlags(&nt, cudaEventDisableTiming));
        CHECK(cudaEventQuery(e0) == cudaSuccess); // never recorded: complete
        OK(cudaEventRecord(e0, nb));
        k_fill<<<1, 32, 0, nb>>>(b, 5.0f, n);
        OK(cudaEventRecord(e1, nb));
        OK(cudaEventRecord(nt, nb));
        float ms = -1;
        CHECK(cudaEventQuery(e1) == cudaErrorNotReady);
        CHECK(cudaEventElapsedTime(&ms, e0, e1) == cudaErrorNotReady && ms == -1);
        CHECK(cudaGetLastError() == cudaSuccess); // not ready is no error
        OK(cudaEventSynchronize(e1));
        CHECK(cudaEventQuery(e1) == cudaSuccess && cudaEventQuery(e0) == cudaSuccess);
        CHECKF(cudaEventQuery(nt) == cudaErrorNotReady, "an event records only its stream's work up to it");
        OK(cudaEventElapsedTime(&ms, e0, e1));
        CHECKF(ms == 0.0f, "the emulator reports 0 ms (%g)", ms);
        OK(cudaStreamSynchronize(nb));
        CHECK(cudaEventElapsedTime(&ms, e0, nt) == cudaErrorInvalidResourceHandle);
        cudaGetLastError();
        float v = -1;
        OK(cudaMemcpyAsync(&v, b, sizeof v, cudaMemcpyDeviceToHost, nb));
        CHECK(v == 5.0f);
        OK(cudaEventDestroy(e0));
        OK(cudaEventDestroy(e1));
        OK(cudaEventDestroy(nt));
        glow_emu_stats(c1, GLOW_EMU_NSTATS);
        CHECKF(c1[GLOW_EMU_EVENT_RECORDS] - c0[GLOW_EMU_EVENT_RECORDS] == 3 &&
                   c1[GLOW_EMU_EVENT_SYNCS] - c0[GLOW_EMU_EVENT_SYNCS] == 1 &&
                   c1[GLOW_EMU_KERNELS] - c0[GLOW_EMU_KERNELS] == 1 &&
                   c1[GLOW_EMU_STREAM_SYNCS] - c0[GLOW_EMU_STREAM_SYNCS] == 1 &&
                   c1[GLOW_EMU_D2H] - c0[GLOW_EMU_D2H] == 1,
               "counters: %llu records, %llu event syncs, %llu kernels, %llu stream syncs, %llu D2H",
               c1[GLOW_EMU_EVENT_RECORDS] - c0[GLOW_EMU_EVENT_RECORDS],
               c1[GLOW_EMU_EVENT_SYNCS] - c0[GLOW_EMU_EVENT_SYNCS],
               c1[GLOW_EMU_KERNELS] - c0[GLOW_EMU_KERNELS],
               c1[GLOW_EMU_STREAM_SYNCS] - c0[GLOW_EMU_STREAM_SYNCS], c1[GLOW_EMU_D2H] - c0[GLOW_EMU_D2H]);
        CHECK(dies_with("destroyed event", "not a live event", [e0] { cudaEventSynchronize(e0); }));
    }
    // GLOW_EMU_STATS_FILE: the counters written at exit
    {
        char path[] = "/tmp/emu-stats-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        close(fd);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("GLOW_EMU_STATS_FILE", path, 1);
            float *z = dev_floats(4);
            k_fill<<<1, 4>>>(z, 1.0f, 4);
            cudaDeviceSynchronize();
            exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        FILE *f = fopen(path, "r");
        char line[128];
        unsigned long long k = 0, launches = ~0ull;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "kernel launches\t%llu", &k) == 1)
                launches = k;
        if (f)
            fclose(f);
        unlink(path);
        CHECKF(WIFEXITED(st) && launches >= 1 && launches != ~0ull,
               "GLOW_EMU_STATS_FILE: the kernel launches of the child (%llu)", launches);
    }

    OK(cudaStreamDestroy(nb));
    OK(cudaStreamDestroy(bl));
    cudaFree(a);
    cudaFree(b);
}

// ---- number formats ----

static void test_formats()
{
    CHECK(emu::round_f16(65504.0f) == 65504.0f);
    CHECK(isinf(emu::round_f16(65520.0f)) && emu::round_f16(65519.0f) == 65504.0f);
    CHECK(emu::round_f16(1.0f + 1.0f / 4096) == 1.0f);          // tie to even
    CHECK(emu::round_f16(1.0f + 3.0f / 2048) == 1.0f + 1.0f / 512); // tie to even, up
    CHECK(emu::round_f16(5.9604645e-8f) == 5.9604645e-8f);       // 2^-24, subnormal
    CHECK(emu::round_f16(2.0e-8f) == 0.0f);
    CHECK(emu::round_f16(-3.0e-5f) == -503.0f / 16777216.0f);     // subnormal rounding
    CHECK(isnan(emu::round_f16(NAN)));
    CHECK(emu::round_tf32(1.0f + 1.0f / 4096) == 1.0f);
    CHECK(emu::round_tf32(1.0f + 3.0f / 2048) == 1.0f + 1.0f / 512);
    CHECK(emu::round_tf32(1e30f) > 9.9e29f); // fp32 range
    CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + 1.0f / 256)) == 1.0f);
    CHECK(__bfloat162float(__float2bfloat16_rn(1.0f + 3.0f / 256)) == 1.0f + 1.0f / 64);
    CHECK(__float2bfloat16_rn(NAN).__x == 0x7fff);
    CHECK(__half2float(__float2half_rn(0.1f)) == 0.099975586f);
}

// ---- cuBLAS ----

// C = alpha op(A) op(B) + beta C, column-major, in double
static std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha,
                                    const std::vector<float> &A, int lda,
                                    const std::vector<float> &B, int ldb, double beta,
                                    const std::vector<float> &C, int ldc,
                                    float (*rnd)(float) = nullptr)
{
    std::vector<double> out(C.begin(), C.end());
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int l = 0; l < k; l++) {
                float a = ta ? A[(size_t)i * lda + l] : A[(size_t)l * lda + i];
                float b = tb ? B[(size_t)l * ldb + j] : B[(size_t)j * ldb + l];
                if (rnd) {
                    a = rnd(a);
                    b = rnd(b);
                }
                s += (double)a * b;
            }
            out[(size_t)j * ldc + i] = alpha * s + (beta != 0 ? beta * C[(size_t)j * ldc + i] : 0);
        }
    return out;
}

static void test_cublas()
{
    cublasHandle_t h;
    BLAS_OK(cublasCreate(&h));
    cudaStream_t s;
    OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    BLAS_OK(cublasSetStream(h, s));
    BLAS_OK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
    const int m = 13, n = 9, k = 11;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 3; bi++) {
                const float alpha = bi == 2 ? -0.5f : 1.0f, beta = bi == 0 ? 0.0f : 0.75f;
                const int lda = (ta ? k : m) + 2, ldb = (tb ? n : k) + 1, ldc = m + 3;
                std::vector<float> A = rand_vec((size_t)lda * (ta ? m : k));
                std::vector<float> B = rand_vec((size_t)ldb * (tb ? k : n));
                std::vector<float> C = rand_vec((size_t)ldc * n);
                float *dA = dev_floats(A.size()), *dB = dev_floats(B.size()), *dC = dev_floats(C.size());
                upload(dA, A);
                upload(dB, B);
                if (beta != 0)
                    upload(dC, C); // else: left poisoned (NaN), must not be read
                BLAS_OK(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                                    m, n, k, &alpha, dA, lda, dB, ldb, &beta, dC, ldc));
                cudaStreamSynchronize(s);
                std::vector<float> got = download(dC, C.size());
                std::vector<double> want = ref_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
                double e = 0;
                for (int j = 0; j < n; j++)
                    for (int i = 0; i < m; i++) {
                        size_t at = (size_t)j * ldc + i;
                        e = fmax(e, fabs(got[at] - want[at]));
                        if (got[at] != got[at])
                            e = INFINITY;
                    }
                CHECKF(e < 1e-5, "sgemm op(A)=%c op(B)=%c alpha=%g beta=%g: error %g", ta ? 'T' : 'N',
                       tb ? 'T' : 'N', alpha, beta, e);
                cudaFree(dA);
                cudaFree(dB);
                cudaFree(dC);
            }
    // argument checks
    float *d = dev_floats(64);
    const float one = 1, zero = 0;
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, 3, d, 4, &zero, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE); // lda < m
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, 4, 4, 5, &one, d, 4, d, 5, &zero, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE); // op(A) = T: lda < k
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, 4, d, 4, &zero, d, 3) ==
          CUBLAS_STATUS_INVALID_VALUE); // ldc < m
    CHECK(cublasSgemm(h, (cublasOperation_t)3, CUBLAS_OP_N, 4, 4, 4, &one, d, 4, d, 4, &zero, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 4, 4, &one, d, 4, d, 4, &zero, d, 4) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16BF, 4, d, CUDA_R_32F,
                       4, &zero, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
          CUBLAS_STATUS_NOT_SUPPORTED);
    CHECK(strcmp(cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE),
                 "an unsupported value or parameter was passed to the function") == 0);
    CHECK(dies_with("sgemm past the end of A", "runs past the end", [h, d, one, zero] {
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 9, 9, 9, &one, d, 9, d, 9, &zero, d, 9);
    }));
    CHECK(dies_with("sgemm with a host matrix", "not device memory", [h, d, one, zero] {
        std::vector<float> a(16);
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, a.data(), 4, d, 4, &zero, d, 4);
    }));
    cudaFree(d);

    // math modes: tf32 rounds the operands to 10 mantissa bits; the deprecated
    // TENSOR_OP_MATH converts them to fp16 (70000 overflows)
    const int q = 8;
    std::vector<float> A = rand_vec(q * q), B = rand_vec(q * q), C(q * q, 0.0f);
    float *dA = dev_floats(q * q), *dB = dev_floats(q * q), *dC = dev_floats(q * q);
    upload(dA, A);
    upload(dB, B);
    BLAS_OK(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH));
    BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, q, q, q, &one, dA, q, dB, q, &zero, dC, q));
    cudaStreamSynchronize(s);
    std::vector<float> got = download(dC, q * q);
    std::vector<double> exact = ref_gemm(false, false, q, q, q, 1, A, q, B, q, 0, C, q);
    std::vector<double> tf = ref_gemm(false, false, q, q, q, 1, A, q, B, q, 0, C, q, emu::round_tf32);
    CHECKF(max_rel(got, tf) < 1e-6 && max_rel(got, exact) > 1e-5, "tf32 math: %g from tf32, %g from fp32",
           max_rel(got, tf), max_rel(got, exact));
    A[0] = 70000.0f;
    upload(dA, A);
    BLAS_OK(cublasSetMathMode(h, CUBLAS_TENSOR_OP_MATH));
    BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, q, q, q, &one, dA, q, dB, q, &zero, dC, q));
    cudaStreamSynchronize(s);
    CHECKF(isinf(download(dC, 1)[0]), "fp16 conversion overflows at 70000");
    BLAS_OK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    BLAS_OK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, q, q, q, &one, dA, CUDA_R_32F, q, dB, CUDA_R_32F,
                         q, &zero, dC, CUDA_R_32F, q, CUBLAS_COMPUTE_32F_FAST_16F, CUBLAS_GEMM_DEFAULT));
    cudaStreamSynchronize(s);
    CHECKF(isinf(download(dC, 1)[0]), "CUBLAS_COMPUTE_32F_FAST_16F overflows at 70000");
    // bf16 operands (cublasGemmEx), fp32 result
    A[0] = 0.3f;
    upload(dA, A);
    std::vector<uint16_t> Ab(q * q), Bb(q * q);
    std::vector<float> Ar(q * q), Br(q * q);
    for (int i = 0; i < q * q; i++) {
        Ab[i] = emu::bf16_bits(A[i]);
        Bb[i] = emu::bf16_bits(B[i]);
        Ar[i] = emu::bf16_to_f32(Ab[i]);
        Br[i] = emu::bf16_to_f32(Bb[i]);
    }
    void *dAb = nullptr, *dBb = nullptr;
    cudaMalloc(&dAb, q * q * 2);
    cudaMalloc(&dBb, q * q * 2);
    cudaMemcpy(dAb, Ab.data(), q * q * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dBb, Bb.data(), q * q * 2, cudaMemcpyHostToDevice);
    BLAS_OK(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, q, q, q, &one, dAb, CUDA_R_16BF, q, dBb,
                         CUDA_R_16BF, q, &zero, dC, CUDA_R_32F, q, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT));
    cudaStreamSynchronize(s);
    got = download(dC, q * q);
    CHECKF(max_rel(got, ref_gemm(true, false, q, q, q, 1, Ar, q, Br, q, 0, C, q)) < 1e-6,
           "bf16 GemmEx");
    // pointer mode device: alpha and beta read when the GEMM runs
    float *ab = dev_floats(2);
    upload(ab, {2.0f, 0.0f});
    BLAS_OK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE));
    BLAS_OK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, q, q, q, ab, dA, q, dB, q, ab + 1, dC, q));
    upload(ab, {-1.0f, 0.0f});
    cudaStreamSynchronize(s);
    got = download(dC, q * q);
    CHECKF(max_rel(got, ref_gemm(false, false, q, q, q, -1, A, q, B, q, 0, C, q)) < 1e-6,
           "pointer mode device reads alpha when the GEMM runs");
    CHECK(dies_with("pointer mode device with host alpha", "not device memory", [h, dA, dB, dC, q] {
        const float a = 1, b = 0;
        cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, q, q, q, &a, dA, q, dB, q, &b, dC, q);
    }));
    BLAS_OK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
    cudaFree(ab);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    cudaFree(dAb);
    cudaFree(dBb);
    BLAS_OK(cublasDestroy(h));
    OK(cudaStreamDestroy(s));
}

// ---- cuDNN ----

struct conv_shape {
    int n, c, h, w, k, r, s, ph, pw, u, v, dh, dw;
    bool flip; // CUDNN_CONVOLUTION
};

// NCHW x, KCRS w, NKPQ y, all dense, in double
static void ref_conv(const conv_shape &g, int oh, int ow, const std::vector<float> &x,
                     const std::vector<float> &w, std::vector<double> &y)
{
    y.assign((size_t)g.n * g.k * oh * ow, 0.0);
    for (int n = 0; n < g.n; n++)
        for (int k = 0; k < g.k; k++)
            for (int p = 0; p < oh; p++)
                for (int q = 0; q < ow; q++) {
                    double s = 0;
                    for (int c = 0; c < g.c; c++)
                        for (int r = 0; r < g.r; r++)
                            for (int t = 0; t < g.s; t++) {
                                int iy = p * g.u - g.ph + r * g.dh, ix = q * g.v - g.pw + t * g.dw;
                                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
                                    continue;
                                int rr = g.flip ? g.r - 1 - r : r, tt = g.flip ? g.s - 1 - t : t;
                                s += (double)x[(((size_t)n * g.c + c) * g.h + iy) * g.w + ix] *
                                     w[(((size_t)k * g.c + c) * g.r + rr) * g.s + tt];
                            }
                    y[(((size_t)n * g.k + k) * oh + p) * ow + q] = s;
                }
}

// index of an NCHW-ordered element in a tensor of format f
static size_t at(cudnnTensorFormat_t f, int N, int C, int H, int W, int n, int c, int h, int w)
{
    (void)N;
    if (f == CUDNN_TENSOR_NHWC)
        return (((size_t)n * H + h) * W + w) * C + c;
    return (((size_t)n * C + c) * H + h) * W + w;
}

static std::vector<float> to_format(cudnnTensorFormat_t f, int N, int C, int H, int W,
                                    const std::vector<float> &nchw)
{
    std::vector<float> out(nchw.size());
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    out[at(f, N, C, H, W, n, c, h, w)] = nchw[at(CUDNN_TENSOR_NCHW, N, C, H, W, n, c, h, w)];
    return out;
}

static std::vector<double> from_format(cudnnTensorFormat_t f, int N, int C, int H, int W,
                                       const std::vector<float> &v)
{
    std::vector<double> out(v.size());
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    out[at(CUDNN_TENSOR_NCHW, N, C, H, W, n, c, h, w)] = v[at(f, N, C, H, W, n, c, h, w)];
    return out;
}

struct dnn {
    cudnnHandle_t h;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
};

static void conv_case(dnn &D, const conv_shape &g, cudnnTensorFormat_t tf, cudnnTensorFormat_t ff)
{
    char what[160];
    snprintf(what, sizeof what, "conv %s/%s n%d c%d %dx%d k%d %dx%d pad %d,%d stride %d,%d dil %d,%d%s",
             tf == CUDNN_TENSOR_NHWC ? "NHWC" : "NCHW", ff == CUDNN_TENSOR_NHWC ? "KRSC" : "KCRS", g.n, g.c,
             g.h, g.w, g.k, g.r, g.s, g.ph, g.pw, g.u, g.v, g.dh, g.dw, g.flip ? " flipped" : "");
    DNN_OK(cudnnSetTensor4dDescriptor(D.xd, tf, CUDNN_DATA_FLOAT, g.n, g.c, g.h, g.w));
    DNN_OK(cudnnSetFilter4dDescriptor(D.wd, CUDNN_DATA_FLOAT, ff, g.k, g.c, g.r, g.s));
    DNN_OK(cudnnSetConvolution2dDescriptor(D.cd, g.ph, g.pw, g.u, g.v, g.dh, g.dw,
                                           g.flip ? CUDNN_CONVOLUTION : CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT));
    DNN_OK(cudnnSetConvolutionMathType(D.cd, CUDNN_FMA_MATH));
    int on, ok_, oh, ow;
    DNN_OK(cudnnGetConvolution2dForwardOutputDim(D.cd, D.xd, D.wd, &on, &ok_, &oh, &ow));
    DNN_OK(cudnnSetTensor4dDescriptor(D.yd, tf, CUDNN_DATA_FLOAT, g.n, g.k, oh, ow));
    const size_t nx = (size_t)g.n * g.c * g.h * g.w, nw = (size_t)g.k * g.c * g.r * g.s,
                 ny = (size_t)g.n * g.k * oh * ow;
    std::vector<float> x = rand_vec(nx), w = rand_vec(nw), dy = rand_vec(ny);
    std::vector<double> yref;
    ref_conv(g, oh, ow, x, w, yref);
    // the filter in its format: KRSC is the NHWC order of a [k c r s] tensor
    std::vector<float> wf = ff == CUDNN_TENSOR_NHWC ? to_format(CUDNN_TENSOR_NHWC, g.k, g.c, g.r, g.s, w) : w;
    float *dx = dev_floats(nx), *dw = dev_floats(nw), *ddy = dev_floats(ny), *dyo = dev_floats(ny);
    upload(dx, to_format(tf, g.n, g.c, g.h, g.w, x));
    upload(dw, wf);
    upload(ddy, to_format(tf, g.n, g.k, oh, ow, dy));
    void *ws = nullptr;
    cudaMalloc(&ws, (size_t)64 << 20);
    const float one = 1, zero = 0;
    size_t need = 0;
    DNN_OK(cudnnGetConvolutionForwardWorkspaceSize(D.h, D.xd, D.wd, D.cd, D.yd,
                                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, &need));
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd,
                                   CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws, need, &zero, D.yd, dyo));
    cudaDeviceSynchronize();
    std::vector<double> got = from_format(tf, g.n, g.k, oh, ow, download(dyo, ny));
    double e = 0;
    for (size_t i = 0; i < ny; i++)
        e = fmax(e, fabs(got[i] - yref[i]) + (got[i] != got[i] ? INFINITY : 0));
    CHECKF(e < 1e-5, "%s forward: error %g", what, e);

    // backward data: <dy, conv(x)> = <conv^T(dy), x> for every x: check against
    // the reference by its definition, dx = sum over taps
    std::vector<double> dxref(nx, 0.0), dwref(nw, 0.0);
    for (int n = 0; n < g.n; n++)
        for (int k = 0; k < g.k; k++)
            for (int p = 0; p < oh; p++)
                for (int q = 0; q < ow; q++) {
                    double gy = dy[(((size_t)n * g.k + k) * oh + p) * ow + q];
                    for (int c = 0; c < g.c; c++)
                        for (int r = 0; r < g.r; r++)
                            for (int t = 0; t < g.s; t++) {
                                int iy = p * g.u - g.ph + r * g.dh, ix = q * g.v - g.pw + t * g.dw;
                                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w)
                                    continue;
                                int rr = g.flip ? g.r - 1 - r : r, tt = g.flip ? g.s - 1 - t : t;
                                size_t xi = (((size_t)n * g.c + c) * g.h + iy) * g.w + ix;
                                size_t wi = (((size_t)k * g.c + c) * g.r + rr) * g.s + tt;
                                dxref[xi] += gy * w[wi];
                                dwref[wi] += gy * x[xi];
                            }
                }
    float *ddx = dev_floats(nx), *ddw = dev_floats(nw);
    DNN_OK(cudnnGetConvolutionBackwardDataWorkspaceSize(D.h, D.wd, D.yd, D.cd, D.xd,
                                                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, &need));
    DNN_OK(cudnnConvolutionBackwardData(D.h, &one, D.wd, dw, D.yd, ddy, D.cd, CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                                        ws, need, &zero, D.xd, ddx));
    DNN_OK(cudnnGetConvolutionBackwardFilterWorkspaceSize(D.h, D.xd, D.yd, D.cd, D.wd,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &need));
    DNN_OK(cudnnConvolutionBackwardFilter(D.h, &one, D.xd, dx, D.yd, ddy, D.cd,
                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ws, need, &zero, D.wd, ddw));
    cudaDeviceSynchronize();
    got = from_format(tf, g.n, g.c, g.h, g.w, download(ddx, nx));
    e = 0;
    for (size_t i = 0; i < nx; i++)
        e = fmax(e, fabs(got[i] - dxref[i]) + (got[i] != got[i] ? INFINITY : 0));
    CHECKF(e < 1e-5, "%s backward data: error %g", what, e);
    std::vector<float> gw = download(ddw, nw);
    std::vector<double> gwn = ff == CUDNN_TENSOR_NHWC ? from_format(CUDNN_TENSOR_NHWC, g.k, g.c, g.r, g.s, gw)
                                                      : std::vector<double>(gw.begin(), gw.end());
    e = 0;
    for (size_t i = 0; i < nw; i++)
        e = fmax(e, fabs(gwn[i] - dwref[i]) + (gwn[i] != gwn[i] ? INFINITY : 0));
    CHECKF(e < 1e-4, "%s backward filter: error %g", what, e);
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(ddy);
    cudaFree(dyo);
    cudaFree(ddx);
    cudaFree(ddw);
    cudaFree(ws);
}

static void test_cudnn()
{
    dnn D;
    DNN_OK(cudnnCreate(&D.h));
    DNN_OK(cudnnCreateTensorDescriptor(&D.xd));
    DNN_OK(cudnnCreateTensorDescriptor(&D.yd));
    DNN_OK(cudnnCreateFilterDescriptor(&D.wd));
    DNN_OK(cudnnCreateConvolutionDescriptor(&D.cd));
    const conv_shape shapes[] = {
        {2, 3, 5, 7, 4, 3, 3, 1, 1, 1, 1, 1, 1, false},
        {1, 2, 6, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, true},
        {2, 3, 9, 8, 2, 3, 2, 0, 1, 2, 2, 1, 1, false},
        {1, 2, 9, 9, 2, 3, 3, 2, 2, 1, 1, 2, 2, false},
        {3, 5, 4, 4, 6, 1, 1, 0, 0, 1, 1, 1, 1, false},
    };
    for (const conv_shape &g : shapes)
        for (int tf = 0; tf < 2; tf++)
            for (int ff = 0; ff < 2; ff++)
                conv_case(D, g, (cudnnTensorFormat_t)tf, (cudnnTensorFormat_t)ff);

    // one 3x3 NHWC problem for the algorithm, workspace and math checks
    const int N = 2, C = 8, H = 6, W = 6, K = 8;
    DNN_OK(cudnnSetTensor4dDescriptor(D.xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, C, H, W));
    DNN_OK(cudnnSetTensor4dDescriptor(D.yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, K, H, W));
    DNN_OK(cudnnSetFilter4dDescriptor(D.wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, K, C, 3, 3));
    DNN_OK(cudnnSetConvolution2dDescriptor(D.cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                           CUDNN_DATA_FLOAT));
    DNN_OK(cudnnSetConvolutionMathType(D.cd, CUDNN_FMA_MATH));
    cudnnConvolutionBwdFilterAlgoPerf_t perf[16];
    int got = 0;
    DNN_OK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(D.h, D.xd, D.yd, D.cd, D.wd, 16, &got, perf));
    CHECK(got == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    CHECK(perf[0].status == CUDNN_STATUS_SUCCESS && perf[0].determinism == CUDNN_NON_DETERMINISTIC);
    CHECK(perf[got - 1].status == CUDNN_STATUS_NOT_SUPPORTED);
    std::vector<size_t> sizes;
    for (int i = 0; i < got; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS) {
            CHECK(perf[i].mathType == CUDNN_FMA_MATH);
            sizes.push_back(perf[i].memory);
        }
    bool differ = false;
    for (size_t i = 1; i < sizes.size(); i++)
        differ |= sizes[i] != sizes[0];
    CHECKF(differ, "workspace sizes differ between algorithms");
    cudnnConvolutionFwdAlgoPerf_t fperf[16];
    DNN_OK(cudnnGetConvolutionForwardAlgorithm_v7(D.h, D.xd, D.wd, D.cd, D.yd, 3, &got, fperf));
    CHECK(got == 3 && fperf[0].determinism == CUDNN_NON_DETERMINISTIC &&
          fperf[1].determinism == CUDNN_DETERMINISTIC);
    CHECK(cudnnGetConvolutionForwardAlgorithm_v7(D.h, D.xd, D.wd, D.cd, D.yd, 0, &got, fperf) ==
          CUDNN_STATUS_BAD_PARAM);

    const size_t nx = (size_t)N * H * W * C, nw = (size_t)K * 9 * C;
    std::vector<float> x = rand_vec(nx), w = rand_vec(nw), y0 = rand_vec(nx);
    float *dx = dev_floats(nx), *dw = dev_floats(nw), *dy = dev_floats(nx), *dw2 = dev_floats(nw);
    upload(dx, x);
    upload(dw, w);
    upload(dy, y0);
    void *ws = nullptr;
    cudaMalloc(&ws, (size_t)64 << 20);
    const float one = 1, zero = 0, half = 0.5f;
    // workspace: smaller than the query's size is refused
    size_t need = 0;
    DNN_OK(cudnnGetConvolutionBackwardFilterWorkspaceSize(D.h, D.xd, D.yd, D.cd, D.wd,
                                                          CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &need));
    CHECK(need > 0);
    CHECK(cudnnConvolutionBackwardFilter(D.h, &one, D.xd, dx, D.yd, dy, D.cd,
                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, ws, need - 1, &zero,
                                         D.wd, dw2) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionBackwardFilter(D.h, &one, D.xd, dx, D.yd, dy, D.cd,
                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, nullptr, need, &zero,
                                         D.wd, dw2) == CUDNN_STATUS_BAD_PARAM);
    CHECK(cudnnConvolutionBackwardFilter(D.h, &one, D.xd, dx, D.yd, dy, D.cd,
                                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, ws, need, &zero,
                                         D.wd, dw2) == CUDNN_STATUS_NOT_SUPPORTED);
    // determinism: ALGO_1 twice gives the same bits, ALGO_0 (non-deterministic) not
    auto bwd_filter = [&](cudnnConvolutionBwdFilterAlgo_t a) {
        size_t n2 = 0;
        cudnnGetConvolutionBackwardFilterWorkspaceSize(D.h, D.xd, D.yd, D.cd, D.wd, a, &n2);
        cudnnConvolutionBackwardFilter(D.h, &one, D.xd, dx, D.yd, dy, D.cd, a, ws, n2, &zero, D.wd, dw2);
        return download(dw2, nw);
    };
    CHECK(bwd_filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1) == bwd_filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1));
    CHECK(bwd_filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0) != bwd_filter(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0));
    // alpha, beta: beta = 0 never reads the (poisoned) output; beta accumulates
    float *yo = dev_floats(nx);
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &zero, D.yd, yo));
    std::vector<float> y1 = download(yo, nx);
    bool finite = true;
    for (float v : y1)
        finite &= v == v;
    CHECKF(finite, "beta = 0 does not read the output");
    DNN_OK(cudnnConvolutionForward(D.h, &half, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &one, D.yd, yo));
    std::vector<float> y2 = download(yo, nx);
    double e = 0;
    for (size_t i = 0; i < nx; i++)
        e = fmax(e, fabs(y2[i] - 1.5 * y1[i]));
    CHECKF(e < 1e-5, "alpha 0.5 with beta 1 accumulates (%g)", e);
    // math types on fp32 data: TENSOR_OP = tf32; ALLOW_CONVERSION = fp16 (overflow)
    auto fwd = [&](cudnnMathType_t m) {
        cudnnSetConvolutionMathType(D.cd, m);
        cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                nullptr, 0, &zero, D.yd, yo);
        return download(yo, nx);
    };
    std::vector<float> fma = fwd(CUDNN_FMA_MATH), tc = fwd(CUDNN_TENSOR_OP_MATH);
    std::vector<float> xr = x, wr = w;
    for (auto &v : xr)
        v = emu::round_tf32(v);
    for (auto &v : wr)
        v = emu::round_tf32(v);
    upload(dx, xr);
    upload(dw, wr);
    std::vector<float> tc_ref = fwd(CUDNN_FMA_MATH);
    CHECKF(tc == tc_ref && tc != fma, "TENSOR_OP math rounds fp32 operands to tf32");
    x[5 * C] = 1e5f; // pixel 5, channel 0
    upload(dx, x);
    upload(dw, w);
    std::vector<float> conv16 = fwd(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION), conv32 = fwd(CUDNN_FMA_MATH);
    bool inf16 = false, inf32 = false;
    for (size_t i = 0; i < nx; i++) {
        inf16 |= isinf(conv16[i]);
        inf32 |= isinf(conv32[i]);
    }
    CHECKF(inf16 && !inf32, "TENSOR_OP_MATH_ALLOW_CONVERSION converts fp32 operands to fp16");
    // descriptor checks
    DNN_OK(cudnnSetTensor4dDescriptor(D.yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, N, K, H - 1, W));
    CHECK(cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                  nullptr, 0, &zero, D.yd, yo) == CUDNN_STATUS_BAD_PARAM);
    DNN_OK(cudnnSetTensor4dDescriptor(D.yd, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, N, K, H, W));
    CHECK(cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                  nullptr, 0, &zero, D.yd, yo) == CUDNN_STATUS_BAD_PARAM);
    CHECK(strcmp(cudnnGetErrorString(CUDNN_STATUS_BAD_PARAM), "CUDNN_STATUS_BAD_PARAM") == 0);
    // bf16 data: bf16 operands, fp32 accumulation, a bf16 result
    DNN_OK(cudnnSetTensor4dDescriptor(D.xd, CUDNN_TENSOR_NHWC, CUDNN_DATA_BFLOAT16, N, C, H, W));
    DNN_OK(cudnnSetFilter4dDescriptor(D.wd, CUDNN_DATA_BFLOAT16, CUDNN_TENSOR_NHWC, K, C, 3, 3));
    DNN_OK(cudnnSetConvolutionMathType(D.cd, CUDNN_TENSOR_OP_MATH));
    x[5 * C] = 0.25f;
    std::vector<uint16_t> xb(nx), wb(nw), yb(nx);
    std::vector<float> xbf(nx), wbf(nw);
    for (size_t i = 0; i < nx; i++)
        xbf[i] = emu::bf16_to_f32(xb[i] = emu::bf16_bits(x[i]));
    for (size_t i = 0; i < nw; i++)
        wbf[i] = emu::bf16_to_f32(wb[i] = emu::bf16_bits(w[i]));
    cudaMemcpy(dx, xb.data(), nx * 2, cudaMemcpyHostToDevice);
    cudaMemcpy(dw, wb.data(), nw * 2, cudaMemcpyHostToDevice);
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, dx, D.wd, dw, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &zero, D.yd, yo));
    cudaMemcpy(yb.data(), yo, nx * 2, cudaMemcpyDeviceToHost);
    conv_shape g3 = {N, C, H, W, K, 3, 3, 1, 1, 1, 1, 1, 1, false};
    std::vector<double> yref, xn = from_format(CUDNN_TENSOR_NHWC, N, C, H, W, xbf),
                              wn = from_format(CUDNN_TENSOR_NHWC, K, C, 3, 3, wbf);
    ref_conv(g3, H, W, std::vector<float>(xn.begin(), xn.end()),
             std::vector<float>(wn.begin(), wn.end()), yref);
    bool bf_ok = true;
    {
        // compare in NCHW
        std::vector<float> ybf(nx);
        for (size_t i = 0; i < nx; i++)
            ybf[i] = emu::bf16_to_f32(yb[i]);
        std::vector<double> gotn = from_format(CUDNN_TENSOR_NHWC, N, K, H, W, ybf);
        for (size_t i = 0; i < nx; i++)
            bf_ok &= fabs(gotn[i] - yref[i]) <= fabs(yref[i]) / 128 + 1e-6 &&
                     (float)gotn[i] == emu::round_bf16((float)gotn[i]);
    }
    CHECKF(bf_ok, "bf16 convolution: bf16 result within bf16 rounding of the reference");
    // the test hooks: no deterministic algorithm, no bf16
    CHECK(dies_with("GLOW_EMU_CUDNN_NODET", "no deterministic algorithm", [D] {
        setenv("GLOW_EMU_CUDNN_NODET", "bwd_filter:c=8,k=8", 1);
        cudnnConvolutionBwdFilterAlgoPerf_t p[16];
        int n = 0;
        cudnnGetConvolutionBackwardFilterAlgorithm_v7(D.h, D.xd, D.yd, D.cd, D.wd, 16, &n, p);
        int det = 0;
        for (int i = 0; i < n; i++)
            det += p[i].status == CUDNN_STATUS_SUCCESS && p[i].determinism == CUDNN_DETERMINISTIC;
        size_t sz;
        if (det == 0 && cudnnGetConvolutionBackwardFilterWorkspaceSize(
                            D.h, D.xd, D.yd, D.cd, D.wd, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &sz) ==
                            CUDNN_STATUS_NOT_SUPPORTED) {
            fprintf(stderr, "no deterministic algorithm\n");
            abort();
        }
    }));
    CHECK(dies_with("GLOW_EMU_CUDNN_NO_BF16", "no bf16", [D] {
        setenv("GLOW_EMU_CUDNN_NO_BF16", "all", 1);
        size_t sz;
        if (cudnnGetConvolutionForwardWorkspaceSize(D.h, D.xd, D.wd, D.cd, D.yd,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, &sz) ==
            CUDNN_STATUS_NOT_SUPPORTED) {
            fprintf(stderr, "no bf16\n");
            abort();
        }
    }));
    CHECK(dies_with("host pointer to cuDNN", "not device memory", [D, dw, yo, one, zero] {
        std::vector<uint16_t> hx(4096);
        cudnnConvolutionForward(D.h, &one, D.xd, hx.data(), D.wd, dw, D.cd,
                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, nullptr, 0, &zero, D.yd, yo);
    }));
    cudaFree(dx);
    cudaFree(dw);
    cudaFree(dy);
    cudaFree(dw2);
    cudaFree(yo);
    cudaFree(ws);
    DNN_OK(cudnnDestroyConvolutionDescriptor(D.cd));
    DNN_OK(cudnnDestroyFilterDescriptor(D.wd));
    DNN_OK(cudnnDestroyTensorDescriptor(D.yd));
    DNN_OK(cudnnDestroyTensorDescriptor(D.xd));
    DNN_OK(cudnnDestroy(D.h));
}

// The hooks' layout and math keys, the all-zero shortcut of trial runs, and cuBLAS
// fault injection.
static void test_hooks()
{
    dnn D;
    DNN_OK(cudnnCreate(&D.h));
    DNN_OK(cudnnCreateTensorDescriptor(&D.xd));
    DNN_OK(cudnnCreateTensorDescriptor(&D.yd));
    DNN_OK(cudnnCreateFilterDescriptor(&D.wd));
    DNN_OK(cudnnCreateConvolutionDescriptor(&D.cd));
    const int N = 1, C = 2, H = 4, W = 4, K = 3;
    auto describe = [&](cudnnTensorFormat_t f) {
        DNN_OK(cudnnSetTensor4dDescriptor(D.xd, f, CUDNN_DATA_FLOAT, N, C, H, W));
        DNN_OK(cudnnSetTensor4dDescriptor(D.yd, f, CUDNN_DATA_FLOAT, N, K, H, W));
        DNN_OK(cudnnSetFilter4dDescriptor(D.wd, CUDNN_DATA_FLOAT, f, K, C, 3, 3));
    };
    describe(CUDNN_TENSOR_NHWC);
    DNN_OK(cudnnSetConvolution2dDescriptor(D.cd, 1, 1, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_OK(cudnnSetConvolutionMathType(D.cd, CUDNN_FMA_MATH));
    size_t sz;
    auto bwf = [&] {
        return cudnnGetConvolutionBackwardFilterWorkspaceSize(D.h, D.xd, D.yd, D.cd, D.wd,
                                                              CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, &sz);
    };
    auto fwd = [&] {
        return cudnnGetConvolutionForwardWorkspaceSize(D.h, D.xd, D.wd, D.cd, D.yd,
                                                       CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, &sz);
    };
    setenv("GLOW_EMU_CUDNN_NODET", "bwd_filter:c=2,layout=nhwc;fwd:k=3,math=fma", 1);
    CHECKF(bwf() == CUDNN_STATUS_NOT_SUPPORTED, "layout=nhwc refuses the NHWC filter gradient");
    CHECKF(fwd() == CUDNN_STATUS_NOT_SUPPORTED, "math=fma refuses the FMA forward");
    DNN_OK(cudnnSetConvolutionMathType(D.cd, CUDNN_TENSOR_OP_MATH));
    CHECKF(fwd() == CUDNN_STATUS_SUCCESS, "math=fma leaves tensor-op math alone");
    describe(CUDNN_TENSOR_NCHW);
    CHECKF(bwf() == CUDNN_STATUS_SUCCESS, "layout=nhwc leaves NCHW alone");
    unsetenv("GLOW_EMU_CUDNN_NODET");
    CHECK(dies_with("GLOW_EMU_CUDNN_NODET layout", "expected nhwc or nchw", [&] {
        setenv("GLOW_EMU_CUDNN_NODET", "fwd:layout=chwn", 1);
        fwd();
    }));

    // all-zero operands: the result the sums would give (zeros, beta * y)
    const size_t nx = (size_t)N * C * H * W, ny = (size_t)N * K * H * W, nw = (size_t)K * C * 9;
    float *x = dev_floats(nx), *w = dev_floats(nw), *y = dev_floats(ny);
    cudaMemset(x, 0, nx * 4);
    cudaMemset(w, 0, nw * 4);
    upload(y, std::vector<float>(ny, 3.0f));
    const float one = 1, half = 0.5f, zero = 0;
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, x, D.wd, w, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &half, D.yd, y));
    std::vector<float> got = download(y, ny);
    CHECKF(got == std::vector<float>(ny, 1.5f), "zero operands, beta 0.5: y = 0.5 y");
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, x, D.wd, w, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &zero, D.yd, y));
    got = download(y, ny);
    bool pos_zero = true;
    for (float v : got)
        pos_zero &= v == 0.0f && !signbit(v);
    CHECKF(pos_zero, "zero operands, beta 0: +0 everywhere");
    // one non-zero operand: computed (a NaN filter gives NaN)
    upload(w, std::vector<float>(nw, NAN));
    DNN_OK(cudnnConvolutionForward(D.h, &one, D.xd, x, D.wd, w, D.cd, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
                                   nullptr, 0, &zero, D.yd, y));
    CHECKF(is_nan_bits(download(y, ny)[0]), "0 * NaN is computed as NaN");
    cudaFree(x);
    cudaFree(w);
    cudaFree(y);
    DNN_OK(cudnnDestroyConvolutionDescriptor(D.cd));
    DNN_OK(cudnnDestroyFilterDescriptor(D.wd));
    DNN_OK(cudnnDestroyTensorDescriptor(D.yd));
    DNN_OK(cudnnDestroyTensorDescriptor(D.xd));
    DNN_OK(cudnnDestroy(D.h));

    // GLOW_EMU_FAIL=cublasSgemm / cublasGemmEx: the GEMM is refused
    CHECK(dies_with("GLOW_EMU_FAIL=cublasSgemm", "gemm refused", [] {
        setenv("GLOW_EMU_FAIL", "cublasSgemm,cublasGemmEx", 1);
        cublasHandle_t h;
        cublasCreate(&h);
        float *a = dev_floats(4);
        const float one = 1, zero = 0;
        if (cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a, 2, a, 2, &zero, a, 2) ==
                CUBLAS_STATUS_NOT_SUPPORTED &&
            cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, a, CUDA_R_32F, 2, a, CUDA_R_32F, 2,
                         &zero, a, CUDA_R_32F, 2, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) ==
                CUBLAS_STATUS_NOT_SUPPORTED) {
            fprintf(stderr, "gemm refused\n");
            abort();
        }
    }));
}

int main(void)
{
    test_formats();
    test_barriers();
    test_launches();
    test_memory();
    test_streams();
    test_cublas();
    test_cudnn();
    test_hooks();
    return check_summary();
}
