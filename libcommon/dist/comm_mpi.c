/* The MPI communicator over host memory: CPU ranks compute in host memory and
 * reduce it in place; GPU ranks stage their arrays through page-locked host memory
 * (the backend's host_alloc, download and upload), which also lets two processes
 * share one GPU (for tests; NCCL refuses that).
 *
 * The all-reduce is a reduce-scatter and an all-gather, as a ring's, with the sum
 * in a fixed order: the array is cut into one part per rank; every rank receives
 * its part from every rank (MPI_Alltoallv), adds the copies in rank order in
 * float64, divides, rounds to float32 once, and MPI_Allgatherv hands every part
 * to everyone. MPI_Allreduce's order is up to the MPI library; this one is not.
 * Each rank sends and receives 2 (R-1)/R of the array, as a ring does. Arrays are
 * taken in segments of MPI_SEGMENT floats, so buffers stay bounded and counts fit
 * MPI's ints. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif

#if GLOW_HAVE_MPI
#include <mpi.h>

#define MPI_SEGMENT ((size_t)1 << 24) /* floats per round: 64 MiB */

typedef struct {
    backend *b;
    int host;     /* backend memory is host memory (the CPU backend) */
    float *stage; /* GPU: one segment in page-locked host memory */
    float *parts; /* the R copies of this rank's part of a segment */
    int *counts, *displs, *scounts, *rcounts, *rdispls;
} mpi_impl;

static mpi_impl *impl_of(glow_comm *c) { return (mpi_impl *)c->impl; }

static void mpi_allreduce(glow_comm *c, float *x, size_t n, int average)
{
    mpi_impl *m = impl_of(c);
    const int R = c->size, me = c->rank;
    for (size_t off = 0; off < n; off += MPI_SEGMENT) {
        size_t len = n - off < MPI_SEGMENT ? n - off : MPI_SEGMENT;
        float *buf = x + off;
        if (!m->host) {
            m->b->download(m->b, m->stage, x + off, len * sizeof(float));
            buf = m->stage;
        }
        for (int r = 0; r < R; r++) {
            size_t lo = len * (size_t)r / (size_t)R, hi = len * (size_t)(r + 1) / (size_t)R;
            m->counts[r] = (int)(hi - lo);
            m->displs[r] = (int)lo;
        }
        /* this rank's own copy of its part stays where it is */
        const int mine = m->counts[me];
        for (int r = 0; r < R; r++) {
            m->scounts[r] = r == me ? 0 : m->counts[r];
            m->rcounts[r] = r == me ? 0 : mine;
            m->rdispls[r] = r * mine;
        }
        MPI_Alltoallv(buf, m->scounts, m->displs, MPI_FLOAT, m->parts, m->rcounts, m->rdispls,
                      MPI_FLOAT, MPI_COMM_WORLD);
        float *out = buf + m->displs[me];
        const float *parts = m->parts;
#pragma omp parallel for schedule(static) if (mine > 65536)
        for (int i = 0; i < mine; i++) {
            double s = me == 0 ? out[i] : parts[i];
            for (int r = 1; r < R; r++)
                s += r == me ? out[i] : parts[(size_t)r * (size_t)mine + (size_t)i];
            out[i] = (float)(average ? s / R : s);
        }
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, m->counts, m->displs, MPI_FLOAT,
                       MPI_COMM_WORLD);
        if (!m->host)
            m->b->upload(m->b, x + off, m->stage, len * sizeof(float));
    }
}

static void mpi_broadcast(glow_comm *c, void *x, size_t bytes, int root)
{
    mpi_impl *m = impl_of(c);
    const size_t seg = MPI_SEGMENT * sizeof(float);
    for (size_t off = 0; off < bytes; off += seg) {
        size_t len = bytes - off < seg ? bytes - off : seg;
        char *buf = (char *)x + off;
        if (!m->host) {
            if (c->rank == root)
                m->b->download(m->b, m->stage, buf, len);
            buf = (char *)m->stage;
        }
        MPI_Bcast(buf, (int)len, MPI_BYTE, root, MPI_COMM_WORLD);
        if (!m->host && c->rank != root)
            m->b->upload(m->b, (char *)x + off, m->stage, len);
    }
}

static void mpi_allgather(glow_comm *c, const void *mine, void *all, size_t bytes)
{
    if (bytes > INT_MAX / (size_t)c->size)
        glow_die(1, "comm: allgather of %zu bytes from %d processes is too large", bytes, c->size);
    MPI_Allgather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
}

static void mpi_barrier(glow_comm *c)
{
    (void)c;
    MPI_Barrier(MPI_COMM_WORLD);
}

static void mpi_destroy(glow_comm *c)
{
    mpi_impl *m = impl_of(c);
    if (m->stage)
        m->b->host_free(m->b, m->stage);
    free(m->parts);
    free(m->counts);
    free(m->displs);
    free(m->scounts);
    free(m->rcounts);
    free(m->rdispls);
    free(m);
    free(c);
}

glow_comm *glow_comm_mpi_new(backend *b, glow_error *err)
{
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        glow_errorf(err, "comm: MPI is not initialised (glow_dist_init)");
        return NULL;
    }
    glow_comm *c = xcalloc(1, sizeof *c);
    mpi_impl *m = xcalloc(1, sizeof *m);
    c->name = "mpi";
    c->impl = m;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    m->b = b;
    m->host = b == NULL || strcmp(b->name, "cpu") == 0;
    if (!m->host)
        m->stage = b->host_alloc(b, MPI_SEGMENT * sizeof(float));
    m->parts = xmalloc((MPI_SEGMENT / (size_t)c->size + 1) * (size_t)c->size * sizeof(float));
    m->counts = xcalloc((size_t)c->size, sizeof(int));
    m->displs = xcalloc((size_t)c->size, sizeof(int));
    m->scounts = xcalloc((size_t)c->size, sizeof(int));
    m->rcounts = xcalloc((size_t)c->size, sizeof(int));
    m->rdispls = xcalloc((size_t)c->size, sizeof(int));
#define MPI_SET_SLOT(slot) c->slot = mpi_##slot;
    COMM_SLOTS(MPI_SET_SLOT)
#undef MPI_SET_SLOT
    return c;
}

#else

glow_comm *glow_comm_mpi_new(backend *b, glow_error *err)
{
    (void)b;
    glow_errorf(err, "comm: this build has no MPI (built without mpicc; install libopenmpi-dev "
                     "and rebuild, or make MPI=1)");
    return NULL;
}

#endif
