// The NCCL stand-in's tests (test/emu/emu_nccl.cpp; CUDA code, rewritten and
// compiled like cuda/). Alone: one rank (no MPI needed): NCCL's argument checks and
// error codes, the error strings, stream order (the stream's earlier work is seen,
// the result lands at the synchronisation, later work sees it), the queued result
// and the memory checks. Under `mpirun -np R` (test/emu/mpi.bats; needs
// GLOW_EMU_DEVICES >= R, which it sets): the sums in rank order (float and uint8),
// bit-identical on every rank; segments; broadcast from any root; NCCL ranks in
// another order than MPI's; progress while another rank waits on the host between
// its call and its synchronisation; and the refusals: another unique id, a
// duplicated rank, two ranks on one GPU, a communicator smaller than MPI's world.
#include <cuda_runtime.h>
#include <nccl.h>
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

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#if GLOW_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#define NC_OK(call) CHECKF((call) == ncclSuccess, "%s", #call)
#define NC_IS(want, call)                                                                  \
    do {                                                                                   \
        ncclResult_t r_ = (call);                                                          \
        CHECKF(r_ == (want), "%s returned %d (%s), not %s", #call, (int)r_,                \
               ncclGetErrorString(r_), #want);                                             \
    } while (0)

__global__ void k_fill(float *p, float v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        p[i] = v;
}

__global__ void k_scale(float *p, float a, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        p[i] *= a;
}

// Element i of rank r's array: distinct values whose float sums round.
static float value(int r, size_t i) { return (float)((double)(i % 97) * 0.013 + 1.0 / (r + 3)) * (r % 2 ? -1 : 1); }

static std::vector<float> get(const float *d, size_t n)
{
    std::vector<float> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
}

static void put(float *d, const std::vector<float> &h)
{
    cudaMemcpy(d, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice);
}

static ncclComm_t one_rank()
{
    ncclUniqueId id;
    ncclComm_t c = nullptr;
    NC_OK(ncclGetUniqueId(&id));
    NC_OK(ncclCommInitRank(&c, 1, id, 0));
    return c;
}

// ---- one rank ----

static void test_strings()
{
    CHECK(strcmp(ncclGetErrorString(ncclSuccess), "no error") == 0);
    CHECK(strcmp(ncclGetErrorString(ncclInvalidArgument),
                 "invalid argument (run with NCCL_DEBUG=WARN for details)") == 0);
    CHECK(strcmp(ncclGetErrorString(ncclInvalidUsage),
                 "invalid usage (run with NCCL_DEBUG=WARN for details)") == 0);
    CHECK(strcmp(ncclGetErrorString(ncclSystemError),
                 "unhandled system error (run with NCCL_DEBUG=INFO for details)") == 0);
    CHECK(strcmp(ncclGetErrorString(ncclUnhandledCudaError),
                 "unhandled cuda error (run with NCCL_DEBUG=INFO for details)") == 0);
    CHECK(strcmp(ncclGetErrorString(ncclRemoteError),
                 "remote process exited or there was a network error") == 0);
    CHECK(strcmp(ncclGetErrorString((ncclResult_t)99), "unknown result code") == 0);
    CHECK(NCCL_UNIQUE_ID_BYTES == 128 && sizeof(ncclUniqueId) == 128);
}

static void test_init()
{
    ncclUniqueId a, b;
    NC_IS(ncclInvalidArgument, ncclGetUniqueId(nullptr));
    NC_OK(ncclGetUniqueId(&a));
    NC_OK(ncclGetUniqueId(&b));
    CHECK(memcmp(&a, &b, sizeof a) != 0);
    ncclComm_t c = (ncclComm_t)&a;
    NC_IS(ncclInvalidArgument, ncclCommInitRank(nullptr, 1, a, 0));
    NC_IS(ncclInvalidArgument, ncclCommInitRank(&c, 0, a, 0));
    CHECK(c == nullptr); // set on failure, as NCCL does
    NC_IS(ncclInvalidArgument, ncclCommInitRank(&c, 1, a, -1));
    NC_IS(ncclInvalidArgument, ncclCommInitRank(&c, 2, a, 2));
    ncclUniqueId zero;
    memset(&zero, 0, sizeof zero);
    NC_IS(ncclSystemError, ncclCommInitRank(&c, 1, zero, 0)); // not from ncclGetUniqueId
    ncclUniqueId bent = a;
    bent.internal[20] ^= 1;
    NC_IS(ncclSystemError, ncclCommInitRank(&c, 1, bent, 0));
#if GLOW_HAVE_MPI
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) // several ranks without mpirun: the emulator cannot join them
        NC_IS(ncclSystemError, ncclCommInitRank(&c, 2, a, 0));
#else
    NC_IS(ncclSystemError, ncclCommInitRank(&c, 2, a, 0));
#endif
    NC_OK(ncclCommInitRank(&c, 1, a, 0));
    CHECK(c != nullptr);
    NC_OK(ncclCommDestroy(c));
    NC_OK(ncclCommDestroy(nullptr));
    NC_IS(ncclInvalidArgument, ncclCommDestroy(c)); // already destroyed
}

static void test_one_rank_ops()
{
    const int n = 1000;
    ncclComm_t c = one_rank();
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    float *x = nullptr, *y = nullptr;
    cudaMalloc(&x, n * sizeof(float));
    cudaMalloc(&y, n * sizeof(float));
    std::vector<float> h(n);
    for (int i = 0; i < n; i++)
        h[i] = value(0, (size_t)i);
    h[5] = NAN;
    put(x, h);
    // in place and out of place: one rank's sum is its own bits
    NC_OK(ncclAllReduce(x, x, n, ncclFloat, ncclSum, c, s));
    NC_OK(ncclAllReduce(x, y, n, ncclFloat32, ncclSum, c, s));
    cudaStreamSynchronize(s);
    CHECK(memcmp(get(y, n).data(), h.data(), n * sizeof(float)) == 0);
    NC_OK(ncclBroadcast(y, x, n * sizeof(float), ncclUint8, 0, c, s));
    NC_OK(ncclAllReduce(x, x, n * sizeof(float), ncclUint8, ncclSum, c, s));
    cudaStreamSynchronize(s);
    CHECK(memcmp(get(x, n).data(), h.data(), n * sizeof(float)) == 0);
    // nothing to do: any pointers
    NC_OK(ncclAllReduce(nullptr, nullptr, 0, ncclFloat, ncclSum, c, s));
    NC_OK(ncclBroadcast(nullptr, nullptr, 0, ncclUint8, 0, c, s));

    // stream order: a kernel queued before the call wrote sendbuff; the result is
    // in recvbuff only after the synchronisation; a kernel queued after it sees it
    k_fill<<<4, 64, 0, s>>>(x, 2.5f, n);
    k_fill<<<4, 64, 0, s>>>(y, -1.0f, n);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    CHECK(y[3] == -1.0f); // the emulator's device memory is host memory: a peek
    k_scale<<<4, 64, 0, s>>>(y, 2.0f, n);
    CHECK(y[3] == -1.0f);
    cudaStreamSynchronize(s);
    CHECK(y[3] == 5.0f && y[n - 1] == 5.0f);
    CHECK(cudaStreamQuery(s) == cudaSuccess);
    // the legacy default stream (0) works as well
    NC_OK(ncclAllReduce(y, x, n, ncclFloat, ncclSum, c, 0));
    cudaDeviceSynchronize();
    CHECK(x[0] == 5.0f);
    // ncclCommDestroy waits for the communicator's queued operations
    ncclComm_t c2 = one_rank();
    k_fill<<<4, 64, 0, s>>>(x, 7.0f, n);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c2, s));
    CHECK(cudaStreamQuery(s) == cudaErrorNotReady);
    NC_OK(ncclCommDestroy(c2));
    CHECK(y[0] == 7.0f && cudaStreamQuery(s) == cudaSuccess);

    // NCCL's checks, in its order, with its codes
    float *host = (float *)malloc(n * sizeof(float)), *pinned = nullptr;
    cudaMallocHost(&pinned, n * sizeof(float));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclFloat, ncclSum, nullptr, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclFloat, ncclSum, (ncclComm_t)host, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclNumTypes, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, (ncclDataType_t)-1, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclFloat, (ncclRedOp_t)-1, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclFloat, ncclNumOps, c, s)); // no user ops
    NC_IS(ncclInvalidArgument, ncclBroadcast(x, y, n, ncclFloat, 1, c, s));
    NC_IS(ncclInvalidArgument, ncclBroadcast(x, y, n, ncclFloat, -1, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(host, y, n, ncclFloat, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, host, n, ncclFloat, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, nullptr, n, ncclFloat, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n + 1, ncclFloat, ncclSum, c, s)); // past the end
    NC_IS(ncclInvalidArgument, ncclAllReduce(x + 1, y, n, ncclFloat, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, (size_t)-1 / 2, ncclFloat, ncclSum, c, s));
    NC_IS(ncclInvalidArgument, ncclBroadcast(host, y, n, ncclFloat, 0, c, s));
    NC_IS(ncclUnhandledCudaError, ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, (cudaStream_t)host));
    CHECK(cudaStreamQuery(s) == cudaSuccess); // nothing was queued by the refused calls
    // pinned host memory: device-addressable, accepted as NCCL's pointer check does
    for (int i = 0; i < n; i++)
        pinned[i] = 1.0f;
    NC_OK(ncclAllReduce(pinned, y, n, ncclFloat, ncclSum, c, s));
    cudaStreamSynchronize(s);
    CHECK(y[n - 1] == 1.0f);
    // what NCCL leaves undefined, or the emulator does not have: aborts
    CHECK(dies_with("partial overlap", "overlap without being the same", [&] {
        ncclAllReduce(x, x + 1, n - 1, ncclFloat, ncclSum, c, s);
    }));
    CHECK(dies_with("ncclProd", "ncclProd on ncclFloat32 is not emulated", [&] {
        ncclAllReduce(x, y, n, ncclFloat, ncclProd, c, s);
    }));
    CHECK(dies_with("ncclInt32", "ncclSum on ncclInt32 is not emulated", [&] {
        ncclAllReduce(x, y, n, ncclInt32, ncclSum, c, s);
    }));
    CHECK(dies_with("free under a queued collective", "still uses this memory: ncclAllReduce", [&] {
        ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s);
        cudaFree(y);
    }));
    NC_OK(ncclCommDestroy(c));
    NC_IS(ncclInvalidArgument, ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s)); // destroyed
    cudaFreeHost(pinned);
    free(host);
    cudaFree(x);
    cudaFree(y);
    cudaStreamDestroy(s);
}

// ---- several ranks (mpirun) ----

#if GLOW_HAVE_MPI
static int me, R;

// A communicator of every rank (NCCL rank `rank`), the id from MPI process 0.
static ncclResult_t join(ncclComm_t *c, int rank, bool own_id = false, int nranks = 0)
{
    ncclUniqueId id;
    ncclGetUniqueId(&id);
    if (!own_id)
        MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
    return ncclCommInitRank(c, nranks ? nranks : R, id, rank);
}

static void test_ranks()
{
    cudaSetDevice(me); // one emulated GPU per rank (GLOW_EMU_DEVICES=R)
    ncclComm_t c = nullptr;
    NC_OK(join(&c, me));
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    const size_t n = 3001;
    float *x = nullptr, *y = nullptr;
    cudaMalloc(&x, n * sizeof(float));
    cudaMalloc(&y, n * sizeof(float));
    std::vector<float> h(n), want(n);
    for (size_t i = 0; i < n; i++) {
        h[i] = value(me, i);
        float sum = value(0, i);
        for (int r = 1; r < R; r++)
            sum += value(r, i); // in rank order, in float
        want[i] = sum;
    }
    put(x, h);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    cudaStreamSynchronize(s);
    std::vector<float> got = get(y, n);
    CHECK(memcmp(got.data(), want.data(), n * sizeof(float)) == 0);
    // the same bits on every rank
    std::vector<float> r0 = got;
    MPI_Bcast(r0.data(), (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    CHECK(memcmp(got.data(), r0.data(), n * sizeof(float)) == 0);
    // uint8 modulo 256, in place
    std::vector<unsigned char> b(257, (unsigned char)(200 + me));
    unsigned char *db = nullptr;
    cudaMalloc(&db, b.size());
    cudaMemcpy(db, b.data(), b.size(), cudaMemcpyHostToDevice);
    NC_OK(ncclAllReduce(db, db, b.size(), ncclUint8, ncclSum, c, s));
    cudaStreamSynchronize(s);
    cudaMemcpy(b.data(), db, b.size(), cudaMemcpyDeviceToHost);
    unsigned want8 = 0;
    for (int r = 0; r < R; r++)
        want8 += 200u + (unsigned)r;
    CHECK(b[0] == (unsigned char)want8 && b[256] == (unsigned char)want8);
    // broadcast from every root; non-root sendbuff ignored
    for (int root = 0; root < R; root++) {
        put(x, h);
        NC_OK(ncclBroadcast(me == root ? x : nullptr, y, n, ncclFloat, root, c, s));
        cudaStreamSynchronize(s);
        std::vector<float> g = get(y, n);
        CHECK(g[0] == value(root, 0) && g[n - 1] == value(root, n - 1));
    }
    // several collectives queued before one synchronisation land in order
    k_fill<<<2, 32, 0, s>>>(x, (float)(me + 1), (int)n);
    NC_OK(ncclAllReduce(x, x, n, ncclFloat, ncclSum, c, s));
    NC_OK(ncclAllReduce(x, x, n, ncclFloat, ncclSum, c, s));
    NC_OK(ncclBroadcast(x, y, n, ncclFloat, R - 1, c, s));
    cudaStreamSynchronize(s);
    float tri = (float)(R * (R + 1) / 2);
    CHECK(get(y, n)[7] == tri * (float)R);
    // progress: rank 0 synchronises at once, the others first wait on the host for
    // rank 0 (a barrier); a collective that ran only at each rank's synchronisation
    // would hang here (the alarm ends the test then)
    alarm(60);
    k_fill<<<2, 32, 0, s>>>(x, 1.0f, (int)n);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    if (me == 0) {
        cudaStreamSynchronize(s);
        MPI_Barrier(MPI_COMM_WORLD);
    } else {
        MPI_Barrier(MPI_COMM_WORLD);
        cudaStreamSynchronize(s);
    }
    alarm(0);
    CHECK(get(y, n)[0] == (float)R);
    NC_OK(ncclCommDestroy(c));

    // segments (GLOW_EMU_NCCL_SEGMENT is set small by the caller): the same sums
    c = nullptr;
    NC_OK(join(&c, me));
    put(x, h);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    NC_OK(ncclBroadcast(x, x, n, ncclFloat, 0, c, s));
    cudaStreamSynchronize(s);
    CHECK(memcmp(get(y, n).data(), want.data(), n * sizeof(float)) == 0);
    CHECK(get(x, n)[n - 1] == value(0, n - 1));
    NC_OK(ncclCommDestroy(c));

    // NCCL ranks in the reverse order of MPI's: the sum runs in NCCL's rank order
    c = nullptr;
    const int nr = R - 1 - me;
    NC_OK(join(&c, nr));
    for (size_t i = 0; i < n; i++)
        h[i] = value(nr, i);
    put(x, h);
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    NC_OK(ncclBroadcast(x, x, n, ncclFloat, 0, c, s)); // NCCL rank 0: the last MPI process
    cudaStreamSynchronize(s);
    CHECK(memcmp(get(y, n).data(), want.data(), n * sizeof(float)) == 0);
    CHECK(get(x, n)[1] == value(0, 1));
    NC_OK(ncclCommDestroy(c));

    // refusals, on every rank alike (none is left waiting)
    c = (ncclComm_t)&h;
    NC_IS(ncclInvalidUsage, join(&c, me, true)); // each rank its own id
    CHECK(c == nullptr);
    NC_IS(ncclInvalidUsage, join(&c, 0));        // rank 0 requested by every process
    NC_IS(ncclInvalidUsage, join(&c, me, false, R + 1)); // R+1 ranks of R processes
    cudaSetDevice(0);
    NC_IS(ncclInvalidUsage, join(&c, me)); // two ranks on one GPU
    cudaSetDevice(me);
    NC_OK(join(&c, me)); // and afterwards all is well
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    cudaStreamSynchronize(s);
    NC_OK(ncclCommDestroy(c));
    // a communicator of one rank in each process needs no MPI
    c = nullptr;
    NC_OK(join(&c, 0, true, 1));
    NC_OK(ncclAllReduce(x, y, n, ncclFloat, ncclSum, c, s));
    cudaStreamSynchronize(s);
    CHECK(memcmp(get(x, n).data(), get(y, n).data(), n * sizeof(float)) == 0);
    NC_OK(ncclCommDestroy(c));

    cudaFree(x);
    cudaFree(y);
    cudaFree(db);
    cudaStreamDestroy(s);
}
#endif

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (size && atoi(size) > 1) {
#if GLOW_HAVE_MPI
        char devs[16];
        snprintf(devs, sizeof devs, "%d", atoi(size));
        setenv("GLOW_EMU_DEVICES", devs, 0); // before the emulator reads its settings
        MPI_Init(&argc, &argv);
        MPI_Comm_rank(MPI_COMM_WORLD, &me);
        MPI_Comm_size(MPI_COMM_WORLD, &R);
        test_ranks();
        int rc = check_summary();
        MPI_Finalize();
        return rc;
#else
        return check_skip("a build without MPI: the stand-in joins ranks over MPI");
#endif
    }
    test_strings();
    test_init();
    test_one_rank_ops();
    return check_summary();
}
