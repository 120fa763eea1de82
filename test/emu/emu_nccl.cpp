// The NCCL stand-in (include/nccl.h): the calls cuda/cuda_nccl.cu makes, over MPI
// between the processes and the emulator's "device" memory (host memory) inside
// each, with NCCL's argument checks and error codes.
//
// Stream order, and why it cannot deadlock where NCCL would not. A collective is
// an operation of its stream, as on a GPU: the result lands in recvbuff when the
// host synchronises with the stream (the emulator's deferred execution), and work
// queued after it sees the result. On a GPU a rank's collective makes progress as
// soon as every rank has *queued* it, whatever their hosts do next; a collective
// run only at each rank's synchronisation would instead need every rank to
// *synchronise*, and would hang where one rank synchronises while another waits on
// the host for it. So the exchange starts at the call: the stream's earlier work is
// run first (the call flushes the stream, which is the one difference a program
// can see: queued work runs earlier than it would otherwise), sendbuff is copied,
// and a non-blocking MPI collective (MPI_Iallgather, MPI_Ibcast) is started on the
// communicator's own MPI communicator; the queued operation waits for it
// (MPI_Waitall), reduces and writes recvbuff. A rank thus waits only for the other
// ranks to have made the same call, as on NCCL. Calls on one communicator must come
// in the same order on every rank, as NCCL requires.
//
// Determinism: the sum runs in rank order, ((x0 + x1) + x2) ..., in the data type
// (float sums in float; uint8 modulo 256), so every rank gets the same bits and a
// rerun repeats them (NCCL's own order depends on its algorithm and topology: the
// bits differ from a GPU's).
//
// Limits: ncclSum on ncclFloat and ncclUint8 (what cuda_nccl.cu uses; another valid
// op or type aborts as not emulated), ncclBroadcast of any type; several ranks need
// MPI (mpirun) with every MPI process in the communicator; one rank needs nothing.
#include <nccl.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "emu_internal.h"

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#if GLOW_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace {

constexpr uint64_t COMM_MAGIC = 0x31554d454c43434eULL; // "NCCLEMU1"
constexpr char ID_TAG[16] = "glow-emu-nccl";          // the first bytes of every id

// bytes per MPI call (MPI's counts are ints): 256 MiB, or GLOW_EMU_NCCL_SEGMENT (a
// test hook: small arrays in several segments)
size_t segment()
{
    static size_t seg = [] {
        const char *v = emu::env("GLOW_EMU_NCCL_SEGMENT");
        char *end = nullptr;
        long n = v ? strtol(v, &end, 10) : 0;
        if (v && (*end || n < 8 || n > (1L << 30)))
            emu::fatal("GLOW_EMU_NCCL_SEGMENT=%s: expected bytes from 8 to %ld", v, 1L << 30);
        return v ? (size_t)n : (size_t)1 << 28;
    }();
    return seg;
}

uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t host_hash()
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    return fnv(0xcbf29ce484222325ULL, host, strlen(host));
}

// What NCCL prints with NCCL_DEBUG=WARN, printed always here: the emulator is for
// finding out why.
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("emu: NCCL WARN ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *type_name(ncclDataType_t t)
{
    static const char *const names[] = {"ncclInt8",    "ncclUint8",      "ncclInt32",
                                        "ncclUint32",  "ncclInt64",      "ncclUint64",
                                        "ncclFloat16", "ncclFloat32",    "ncclFloat64",
                                        "ncclBfloat16", "ncclFloat8e4m3", "ncclFloat8e5m2"};
    return (int)t >= 0 && (int)t < ncclNumTypes ? names[t] : "(invalid type)";
}

size_t type_size(ncclDataType_t t)
{
    static const size_t sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
    return sizes[t];
}

const char *op_name(ncclRedOp_t op)
{
    static const char *const names[] = {"ncclSum", "ncclProd", "ncclMax", "ncclMin", "ncclAvg"};
    return (int)op >= 0 && (int)op < ncclNumOps ? names[op] : "(user op)";
}

} // namespace

struct ncclComm {
    uint64_t start_magic = COMM_MAGIC;
    int rank = 0, nranks = 1, device = 0;
#if GLOW_HAVE_MPI
    MPI_Comm mpi = MPI_COMM_NULL; // nranks > 1: the ranks in NCCL's order
#endif
    // the streams where operations of this communicator wait (one entry per operation)
    std::multiset<emu::stream_state *> queued;
    uint64_t end_magic = COMM_MAGIC;
};

namespace {

std::set<ncclComm *> &live()
{
    static std::set<ncclComm *> *s = new std::set<ncclComm *>;
    return *s;
}

// One collective on its way: this rank's contribution taken at the call, the
// requests under way, and what the queued operation writes to recvbuff.
struct exchange {
    ncclComm *comm = nullptr;
    emu::stream_state *stream = nullptr;
    bool reduce = false; // all-reduce (else broadcast)
    ncclDataType_t type = ncclUint8;
    size_t bytes = 0;
    void *recv = nullptr;
    std::vector<unsigned char> mine;               // sendbuff at the call (the root's, for a broadcast)
    std::vector<std::vector<unsigned char>> parts; // all-reduce: each segment's rank-major copies
#if GLOW_HAVE_MPI
    std::vector<MPI_Request> reqs;
#endif
};

template <typename T> void sum_segment(T *out, const unsigned char *all, size_t n, int nranks)
{
    for (size_t i = 0; i < n; i++) {
        T s;
        memcpy(&s, all + i * sizeof(T), sizeof(T));
        for (int r = 1; r < nranks; r++) {
            T v;
            memcpy(&v, all + ((size_t)r * n + i) * sizeof(T), sizeof(T));
            s = (T)(s + v);
        }
        memcpy(out + i, &s, sizeof(T));
    }
}

// The queued operation: waits for the exchange, then writes recvbuff.
void land(exchange &x)
{
#if GLOW_HAVE_MPI
    if (!x.reqs.empty())
        MPI_Waitall((int)x.reqs.size(), x.reqs.data(), MPI_STATUSES_IGNORE);
#endif
    if (x.reduce && x.comm->nranks > 1) {
        size_t off = 0;
        for (const auto &seg : x.parts) {
            size_t len = seg.size() / (size_t)x.comm->nranks;
            unsigned char *out = (unsigned char *)x.recv + off;
            if (x.type == ncclFloat)
                sum_segment((float *)out, seg.data(), len / sizeof(float), x.comm->nranks);
            else
                sum_segment(out, seg.data(), len, x.comm->nranks);
            off += len;
        }
    } else {
        memcpy(x.recv, x.mine.data(), x.bytes);
    }
    x.comm->queued.erase(x.comm->queued.find(x.stream));
}

ncclResult_t check_comm(ncclComm_t comm, const char *call)
{
    if (!comm) {
        warn("%s : comm argument is NULL", call);
        return ncclInvalidArgument;
    }
    if (!live().count(comm) || comm->start_magic != COMM_MAGIC || comm->end_magic != COMM_MAGIC) {
        warn("%s : Error: corrupted comm object detected (%p is no communicator of "
             "ncclCommInitRank, or one already destroyed)",
             call, (void *)comm);
        return ncclInvalidArgument;
    }
    return ncclSuccess;
}

// [p, p + bytes) in one live allocation the device can address (device memory, or
// pinned host memory, which a GPU reaches too): what NCCL's pointer check
// (NCCL_CHECK_POINTERS=1) asks, always, and the extent besides.
ncclResult_t check_buffer(const void *p, size_t bytes, const char *call, const char *what)
{
    const emu::region *r = emu::find(p);
    if (!r || (r->kind != emu::mem_kind::device && r->kind != emu::mem_kind::pinned)) {
        warn("%s : %s %p is not a valid pointer (it is %s)", call, what, p, emu::describe(p).c_str());
        return ncclInvalidArgument;
    }
    if (bytes > r->base + r->size - (uintptr_t)p) {
        warn("%s : %s [%p, +%zu bytes) runs past the end of its allocation (%s)", call, what, p,
             bytes, emu::describe(p).c_str());
        return ncclInvalidArgument;
    }
    return ncclSuccess;
}

// The checks of NCCL's ncclEnqueueCheck and ArgsCheck, in their order, then the
// emulator's: the stream, the buffers, what is emulated.
ncclResult_t check_call(const char *call, const void *sendbuff, const void *recvbuff, size_t count,
                        ncclDataType_t type, int op, int root, ncclComm_t comm, cudaStream_t stream,
                        emu::stream_state **s, size_t *bytes)
{
    ncclResult_t r = check_comm(comm, call);
    if (r != ncclSuccess)
        return r;
    if (root < 0 || root >= comm->nranks) {
        warn("%s : invalid root %d (root should be in the 0..%d range)", call, root, comm->nranks);
        return ncclInvalidArgument;
    }
    if ((int)type < 0 || (int)type >= ncclNumTypes) {
        warn("%s : invalid type %d", call, (int)type);
        return ncclInvalidArgument;
    }
    if (op < 0 || op > (int)ncclMaxRedOp) {
        warn("%s : invalid reduction operation %d", call, op);
        return ncclInvalidArgument;
    }
    if (op >= (int)ncclNumOps) {
        warn("%s : reduction operation %d unknown to this communicator", call, op);
        return ncclInvalidArgument;
    }
    *s = emu::stream_of(stream);
    if (!*s) {
        warn("%s : stream %p is not a live stream (cudaErrorInvalidResourceHandle)", call,
             (void *)stream);
        return ncclUnhandledCudaError;
    }
    if (__builtin_mul_overflow(count, type_size(type), bytes)) {
        warn("%s : %zu elements of %s do not fit in memory", call, count, type_name(type));
        return ncclInvalidArgument;
    }
    if (count == 0)
        return ncclSuccess;
    // a broadcast reads sendbuff on the root only (NCCL ignores it elsewhere)
    const bool reads_send = strcmp(call, "Broadcast") != 0 || comm->rank == root;
    if (reads_send) {
        r = check_buffer(sendbuff, *bytes, call, "sendbuff");
        if (r != ncclSuccess)
            return r;
    }
    r = check_buffer(recvbuff, *bytes, call, "recvbuff");
    if (r != ncclSuccess)
        return r;
    const char *a = (const char *)sendbuff, *b = (const char *)recvbuff;
    if (reads_send && a != b && a < b + *bytes && b < a + *bytes)
        emu::fatal("nccl%s: sendbuff [%p, +%zu) and recvbuff [%p, +%zu) overlap without being "
                   "the same (in place): NCCL leaves that undefined",
                   call, (const void *)a, *bytes, (const void *)b, *bytes);
    return ncclSuccess;
}

void queue(std::shared_ptr<exchange> x, const char *call, const void *sendbuff, const char *detail)
{
    auto o = std::make_unique<emu::op>();
    char buf[240];
    snprintf(buf, sizeof buf, "nccl%s(%p -> %p, %zu bytes, %s, rank %d of %d)", call, sendbuff,
             x->recv, x->bytes, detail, x->comm->rank, x->comm->nranks);
    o->what = buf;
    if (sendbuff)
        o->uses.push_back((uintptr_t)sendbuff);
    o->uses.push_back((uintptr_t)x->recv);
    o->run = [x] { land(*x); };
    x->comm->queued.insert(x->stream);
    emu::enqueue(x->stream, std::move(o));
}

} // namespace

extern "C" const char *ncclGetErrorString(ncclResult_t code)
{
    switch (code) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
    }
}

extern "C" ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    EMU_API;
    if (!id) {
        warn("GetUniqueId : uniqueId argument is NULL");
        return ncclInvalidArgument;
    }
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t f[4] = {host_hash(), (uint64_t)getpid(), ++counter,
                     (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec};
    memset(id->internal, 0, sizeof id->internal);
    memcpy(id->internal, ID_TAG, sizeof ID_TAG);
    memcpy(id->internal + 16, f, sizeof f);
    uint64_t sum = fnv(0xcbf29ce484222325ULL, id->internal, 48);
    memcpy(id->internal + 48, &sum, sizeof sum);
    return ncclSuccess;
}

extern "C" ncclResult_t ncclCommInitRank(ncclComm_t *newcomm, int nranks, ncclUniqueId id, int rank)
{
    EMU_API;
    if (!newcomm) {
        warn("CommInitRank : newcomm argument is NULL");
        return ncclInvalidArgument;
    }
    *newcomm = nullptr;
    if (nranks < 1 || rank < 0 || rank >= nranks) {
        warn("Invalid rank requested : %d/%d", rank, nranks);
        return ncclInvalidArgument;
    }
    uint64_t sum = fnv(0xcbf29ce484222325ULL, id.internal, 48), had;
    memcpy(&had, id.internal + 48, sizeof had);
    if (memcmp(id.internal, ID_TAG, sizeof ID_TAG) != 0 || sum != had) {
        // NCCL would try to reach a bootstrap root at whatever address the bytes say
        warn("bootstrap : the unique id was not made by ncclGetUniqueId (its first bytes "
             "%02x %02x %02x %02x): no root to connect to",
             (unsigned char)id.internal[0], (unsigned char)id.internal[1],
             (unsigned char)id.internal[2], (unsigned char)id.internal[3]);
        return ncclSystemError;
    }
    int device = 0;
    cudaGetDevice(&device);
    if (device < 0 || device >= emu::config().devices) {
        warn("CommInitRank : no CUDA device (cudaErrorNoDevice)");
        return ncclUnhandledCudaError;
    }
    auto c = std::make_unique<ncclComm>();
    c->rank = rank;
    c->nranks = nranks;
    c->device = device;
    if (nranks > 1) {
#if GLOW_HAVE_MPI
        int inited = 0, finalized = 0, world = 0;
        MPI_Initialized(&inited);
        MPI_Finalized(&finalized);
        if (!inited || finalized) {
            emu::note("ncclCommInitRank: the emulator's NCCL joins %d ranks over MPI, and MPI is "
                      "%s in this process: start the ranks with mpirun (NCCL's own bootstrap, "
                      "as with GLOW_NCCL_ID_FILE, is not emulated)",
                      nranks, finalized ? "finalised" : "not initialised");
            return ncclSystemError;
        }
        MPI_Comm_size(MPI_COMM_WORLD, &world);
        if (world != nranks) {
            emu::note("ncclCommInitRank: the emulator's NCCL needs every MPI process in the "
                      "communicator: %d ranks asked for, %d MPI processes",
                      nranks, world);
            return ncclInvalidUsage;
        }
        struct join {
            char id[NCCL_UNIQUE_ID_BYTES];
            int nranks, rank, device, pad;
            uint64_t host;
        } me, *all = new join[(size_t)world];
        memset(&me, 0, sizeof me);
        memcpy(me.id, id.internal, sizeof me.id);
        me.nranks = nranks;
        me.rank = rank;
        me.device = device;
        me.host = host_hash();
        MPI_Allgather(&me, (int)sizeof me, MPI_BYTE, all, (int)sizeof me, MPI_BYTE, MPI_COMM_WORLD);
        // every process sees the same table, so all of them fail alike (none is left
        // waiting for the others)
        ncclResult_t bad = ncclSuccess;
        for (int p = 0; p < world && bad == ncclSuccess; p++) {
            if (memcmp(all[p].id, all[0].id, sizeof me.id) != 0 || all[p].nranks != all[0].nranks) {
                warn("CommInitRank : MPI process %d joins another communicator (another unique "
                     "id or number of ranks) than MPI process 0: the emulator's NCCL needs every "
                     "MPI process in one communicator",
                     p);
                bad = ncclInvalidUsage;
            }
            for (int q = 0; q < p && bad == ncclSuccess; q++) {
                if (all[q].rank == all[p].rank) {
                    warn("CommInitRank : rank %d requested by MPI processes %d and %d", all[p].rank,
                         q, p);
                    bad = ncclInvalidUsage;
                } else if (all[q].host == all[p].host && all[q].device == all[p].device) {
                    warn("Duplicate GPU detected : rank %d and rank %d both on CUDA device %d",
                         all[q].rank, all[p].rank, all[p].device);
                    bad = ncclInvalidUsage;
                }
            }
        }
        delete[] all;
        if (bad != ncclSuccess)
            return bad;
        MPI_Comm_split(MPI_COMM_WORLD, 0, rank, &c->mpi);
#else
        emu::note("ncclCommInitRank: the emulator's NCCL joins %d ranks over MPI, and this build "
                  "has none (make MPI=1 with libopenmpi-dev installed)",
                  nranks);
        return ncclSystemError;
#endif
    }
    if (emu::config().trace)
        emu::note("ncclCommInitRank: rank %d of %d on device %d", rank, nranks, device);
    *newcomm = c.release();
    live().insert(*newcomm);
    return ncclSuccess;
}

extern "C" ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    EMU_API;
    if (!comm)
        return ncclSuccess;
    if (!live().count(comm)) {
        warn("comm %p has already been destroyed", (void *)comm);
        return ncclInvalidArgument;
    }
    // NCCL finishes the communicator's operations first (ncclCommFinalize)
    while (!comm->queued.empty())
        emu::complete(*comm->queued.begin());
#if GLOW_HAVE_MPI
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (comm->mpi != MPI_COMM_NULL && !finalized)
        MPI_Comm_free(&comm->mpi);
#endif
    live().erase(comm);
    delete comm;
    return ncclSuccess;
}

extern "C" ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                      ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                      cudaStream_t stream)
{
    EMU_API;
    emu::stream_state *s = nullptr;
    size_t bytes = 0;
    ncclResult_t r = check_call("AllReduce", sendbuff, recvbuff, count, datatype, (int)op, 0, comm,
                                stream, &s, &bytes);
    if (r != ncclSuccess || count == 0)
        return r;
    if (op != ncclSum || (datatype != ncclFloat && datatype != ncclUint8))
        emu::fatal("ncclAllReduce: %s on %s is not emulated (the emulator's NCCL has ncclSum on "
                   "ncclFloat and ncclUint8, what cuda/cuda_nccl.cu uses)",
                   op_name(op), type_name(datatype));
    emu::complete(s); // the stream's earlier work: it wrote sendbuff
    auto x = std::make_shared<exchange>();
    x->comm = comm;
    x->stream = s;
    x->reduce = true;
    x->type = datatype;
    x->bytes = bytes;
    x->recv = recvbuff;
    x->mine.assign((const unsigned char *)sendbuff, (const unsigned char *)sendbuff + bytes);
#if GLOW_HAVE_MPI
    if (comm->nranks > 1) {
        // segments of whole elements, each gathered rank-major
        const size_t seg = segment() / type_size(datatype) * type_size(datatype);
        x->parts.reserve(bytes / seg + 1);
        x->reqs.reserve(bytes / seg + 1);
        for (size_t off = 0; off < bytes; off += seg) {
            size_t len = bytes - off < seg ? bytes - off : seg;
            x->parts.emplace_back(len * (size_t)comm->nranks);
            x->reqs.emplace_back();
            MPI_Iallgather(x->mine.data() + off, (int)len, MPI_BYTE, x->parts.back().data(),
                           (int)len, MPI_BYTE, comm->mpi, &x->reqs.back());
        }
    }
#endif
    queue(x, "AllReduce", sendbuff, type_name(datatype));
    return ncclSuccess;
}

extern "C" ncclResult_t ncclBroadcast(const void *sendbuff, void *recvbuff, size_t count,
                                      ncclDataType_t datatype, int root, ncclComm_t comm,
                                      cudaStream_t stream)
{
    EMU_API;
    emu::stream_state *s = nullptr;
    size_t bytes = 0;
    ncclResult_t r = check_call("Broadcast", sendbuff, recvbuff, count, datatype, (int)ncclSum, root,
                                comm, stream, &s, &bytes);
    if (r != ncclSuccess || count == 0)
        return r;
    emu::complete(s);
    auto x = std::make_shared<exchange>();
    x->comm = comm;
    x->stream = s;
    x->type = datatype;
    x->bytes = bytes;
    x->recv = recvbuff;
    const bool is_root = comm->rank == root;
    if (is_root)
        x->mine.assign((const unsigned char *)sendbuff, (const unsigned char *)sendbuff + bytes);
    else
        x->mine.resize(bytes);
#if GLOW_HAVE_MPI
    if (comm->nranks > 1)
        for (size_t off = 0; off < bytes; off += segment()) {
            size_t len = bytes - off < segment() ? bytes - off : segment();
            x->reqs.emplace_back();
            MPI_Ibcast(x->mine.data() + off, (int)len, MPI_BYTE, root, comm->mpi, &x->reqs.back());
        }
#endif
    char detail[64];
    snprintf(detail, sizeof detail, "%s from rank %d", type_name(datatype), root);
    queue(x, "Broadcast", is_root ? sendbuff : nullptr, detail);
    return ncclSuccess;
}
