// The NCCL communicator (backend/comm.h) over the device memory of the CUDA
// backend, on the backend's stream, so it is ordered with the ops around it.
//
// NCCL calls used, and only these: ncclGetUniqueId, ncclCommInitRank,
// ncclAllReduce (ncclSum, on ncclFloat for gradients and ncclUint8 for the host
// exchanges), ncclBroadcast (ncclUint8), ncclCommDestroy, ncclGetErrorString.
//
// Determinism: ncclAllReduce hands every rank the same bits (the reduced parts
// are broadcast), and its order of summation is fixed for a given number of
// ranks, topology, NCCL version and NCCL_ALGO/NCCL_PROTO choice, so reruns repeat;
// the MPI communicator's rank order is the one that needs nothing fixed.
// The host all-gather is an all-reduce of a zeroed buffer in which each rank has
// written its own slot: uint8 sums with only one non-zero term are exact.
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_nccl.h"

static_assert(NCCL_UNIQUE_ID_BYTES == GLOW_NCCL_ID_BYTES, "cuda_nccl.h: GLOW_NCCL_ID_BYTES");

#define NCCL_CHECK(call)                                                                        \
    do {                                                                                        \
        ncclResult_t r_ = (call);                                                               \
        if (r_ != ncclSuccess) {                                                                \
            fprintf(stderr, "%s: %scomm: nccl: %s: %s\n", glow_progname(), glow_message_prefix(), \
                    #call, ncclGetErrorString(r_));                                             \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

struct nccl_impl {
    backend *b;
    ncclComm_t comm;
    cudaStream_t stream;
    unsigned char *scratch; // device memory for the host exchanges
    size_t scratch_bytes;
};

static nccl_impl *impl_of(glow_comm *c) { return (nccl_impl *)c->impl; }

static void nccl_allreduce(glow_comm *c, float *x, size_t n, int average)
{
    nccl_impl *m = impl_of(c);
    if (n == 0)
        return;
    NCCL_CHECK(ncclAllReduce(x, x, n, ncclFloat, ncclSum, m->comm, m->stream));
    if (average)
        cuda_scale(m->b, x, n, 1.0f / (float)c->size);
}

static void nccl_broadcast(glow_comm *c, void *x, size_t bytes, int root)
{
    nccl_impl *m = impl_of(c);
    if (bytes)
        NCCL_CHECK(ncclBroadcast(x, x, bytes, ncclUint8, root, m->comm, m->stream));
}

static void nccl_allgather(glow_comm *c, const void *mine, void *all, size_t bytes)
{
    nccl_impl *m = impl_of(c);
    size_t total = bytes * (size_t)c->size;
    if (total == 0)
        total = (size_t)c->size; // a barrier: one byte each
    if (total > m->scratch_bytes) {
        if (m->scratch)
            CUDA_CHECK(cudaFree(m->scratch));
        CUDA_CHECK(cudaMalloc((void **)&m->scratch, total));
        m->scratch_bytes = total;
    }
    CUDA_CHECK(cudaMemsetAsync(m->scratch, 0, total, m->stream));
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(m->scratch + (size_t)c->rank * bytes, mine, bytes,
                                   cudaMemcpyHostToDevice, m->stream));
    NCCL_CHECK(ncclAllReduce(m->scratch, m->scratch, total, ncclUint8, ncclSum, m->comm, m->stream));
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(all, m->scratch, bytes * (size_t)c->size, cudaMemcpyDeviceToHost,
                                   m->stream));
    CUDA_CHECK(cudaStreamSynchronize(m->stream));
}

static void nccl_barrier(glow_comm *c) { nccl_allgather(c, NULL, NULL, 0); }

static void nccl_destroy(glow_comm *c)
{
    nccl_impl *m = impl_of(c);
    CUDA_CHECK(cudaStreamSynchronize(m->stream));
    NCCL_CHECK(ncclCommDestroy(m->comm));
    if (m->scratch)
        CUDA_CHECK(cudaFree(m->scratch));
    free(m);
    free(c);
}

extern "C" int cuda_nccl_unique_id(unsigned char id[GLOW_NCCL_ID_BYTES], glow_error *err)
{
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        glow_errorf(err, "comm: nccl: ncclGetUniqueId: %s", ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, u.internal, GLOW_NCCL_ID_BYTES);
    return 0;
}

extern "C" glow_comm *cuda_nccl_comm_new(backend *b, int rank, int size,
                                         const unsigned char id[GLOW_NCCL_ID_BYTES], glow_error *err)
{
    cuda_ctx *ctx = cuda_ctx_of(b);
    CUDA_CHECK(cudaSetDevice(ctx->device));
    ncclUniqueId u;
    memcpy(u.internal, id, GLOW_NCCL_ID_BYTES);
    ncclComm_t comm;
    ncclResult_t r = ncclCommInitRank(&comm, size, u, rank);
    if (r != ncclSuccess) {
        glow_errorf(err, "comm: nccl: ncclCommInitRank (rank %d of %d on cuda:%d): %s", rank, size,
                    ctx->device, ncclGetErrorString(r));
        return NULL;
    }
    glow_comm *c = (glow_comm *)xcalloc(1, sizeof *c);
    nccl_impl *m = (nccl_impl *)xcalloc(1, sizeof *m);
    m->b = b;
    m->comm = comm;
    m->stream = ctx->stream;
    c->name = "nccl";
    c->rank = rank;
    c->size = size;
    c->impl = m;
#define NCCL_SET_SLOT(slot) c->slot = nccl_##slot;
    COMM_SLOTS(NCCL_SET_SLOT)
#undef NCCL_SET_SLOT
    return c;
}
