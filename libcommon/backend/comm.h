/* The communicator: what the processes of a data-parallel run (docs/distributed.md)
 * do together, beside the backend that computes for each of them. One table, one
 * instance per process; dist/ fills it for one process (comm_single.c) and for MPI
 * over host memory (comm_mpi.c: CPU ranks, and GPU ranks staged through pinned host
 * memory with the backend's download and upload), cuda/ for NCCL over device memory
 * (cuda_nccl.cu). dist/dist.h picks one.
 *
 * Determinism. allreduce sums in a fixed order that depends on the number of
 * processes only (MPI: rank order, in float64; NCCL: its algorithm's order, fixed
 * for a given number of ranks, topology and NCCL version), and every process gets
 * the same bits: a rerun with the same number of processes repeats bit for bit,
 * and the processes' copies of the parameters never drift apart.
 *
 * Errors inside a communicator (a peer gone, a library refusing) are fatal, as in
 * backends: "progname: comm: reason" and exit 1; the launcher (mpirun, srun) then
 * ends the other processes. */
#ifndef GLOW_COMM_H
#define GLOW_COMM_H

#include <stddef.h>

#include "backend.h"

typedef struct glow_comm glow_comm;
struct glow_comm {
    const char *name; /* "single", "mpi", "nccl" */
    int rank, size;   /* this process, 0..size-1; the number of processes */
    void *impl;

    /* ---- backend memory (of the backend the communicator was made for) ---- */
    /* x[i] = the sum over processes of x[i], divided by size when average (n floats) */
    void (*allreduce)(glow_comm *c, float *x, size_t n, int average);
    /* bytes of backend memory at x on process root to x on every process */
    void (*broadcast)(glow_comm *c, void *x, size_t bytes, int root);

    /* ---- host memory: the small things the processes agree on ---- */
    /* every process's `bytes` at mine into all[size * bytes], in rank order, on every
     * process (reductions of scalars are built on it: dist/dist.h glow_comm_reduce) */
    void (*allgather)(glow_comm *c, const void *mine, void *all, size_t bytes);
    /* returns when every process has called it */
    void (*barrier)(glow_comm *c);
    void (*destroy)(glow_comm *c);
};

/* Every slot, as BACKEND_SLOTS is for the backend. */
#define COMM_SLOTS(X) X(allreduce) X(broadcast) X(allgather) X(barrier) X(destroy)

#endif
