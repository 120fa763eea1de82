/* Several processes training one model (docs/distributed.md): who this process is
 * (rank, size, local rank, from the launcher's environment), MPI's start and end,
 * each process's device, the communicator (backend/comm.h) a run uses, and what
 * the processes check together: reductions of scalars in rank order, equal
 * parameters, equal start-up facts.
 *
 * Without a launcher (or with one process) there is one rank and the single
 * communicator, whose operations are the identity: a run computes what it did
 * before any of this existed. */
#ifndef GLOW_DIST_H
#define GLOW_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "backend/comm.h"
#include "device/device.h"

typedef struct {
    int rank, size;             /* this process and the number of processes */
    int local_rank, local_size; /* among the processes on this machine */
    char source[32];            /* where rank and size came from: "none", or an
                                   environment variable (OMPI_COMM_WORLD_SIZE, ...) */
    int mpi;                    /* MPI was initialised by glow_dist_init */
} glow_dist;

/* Who this process is. With several processes: MPI_Init (when the launcher is
 * MPI's: mpirun, or srun with PMI; not for GLOW_WORLD_SIZE, the NCCL-only launch),
 * message prefix "rank N: " on ranks above 0, and OMP_NUM_THREADS, when unset,
 * the CPUs this process may use divided among the processes of its machine.
 * Returns 0 or -1 with err set (a launcher's size that MPI does not see, a build
 * without MPI under mpirun). */
int glow_dist_init(glow_dist *d, int *argc, char ***argv, glow_error *err);
/* MPI_Finalize when glow_dist_init started MPI. */
void glow_dist_finish(glow_dist *d);

/* The device of this process for a --device value: with several processes, cuda
 * and auto take GPU local_rank (modulo the GPUs present, so processes share GPUs
 * when there are fewer); cpu and cuda:N are the same for every process. */
int glow_dist_device(const glow_dist *d, const char *spec, glow_device *dev, glow_error *err);

/* The communicator for this process on backend b (device dev): single with one
 * process (unless GLOW_COMM=nccl: NCCL on one GPU, for checking it); else by GLOW_COMM (auto, mpi, nccl; default auto): NCCL when the
 * device is a GPU, the build has NCCL and no two processes share a GPU, else MPI
 * over host memory. NCCL's unique id goes through MPI, or without MPI through
 * the file GLOW_NCCL_ID_FILE (written by rank 0, removed once every process has
 * joined). Every operation of a multi-process communicator is watched: one that
 * waits more than GLOW_DIST_TIMEOUT seconds (default 600; 0 = never) ends the
 * process with a message saying that another process has stopped or hangs.
 * Returns NULL with err set. */
glow_comm *glow_dist_comm(glow_dist *d, backend *b, const glow_device *dev, glow_error *err);

/* The implementations (comm_single.c, comm_mpi.c). */
glow_comm *glow_comm_single_new(void);
glow_comm *glow_comm_mpi_new(backend *b, glow_error *err);

/* ---- over any communicator ---- */
typedef enum { GLOW_REDUCE_SUM = 0, GLOW_REDUCE_MAX = 1, GLOW_REDUCE_MIN = 2 } glow_reduce_op;
/* x[0..n) = op over processes, combined in rank order (the same bits everywhere;
 * with one process x is unchanged). */
void glow_comm_reduce(glow_comm *c, double *x, int n, glow_reduce_op op);
/* bytes of host memory from root to every process (small things: texts, ids) */
void glow_comm_bcast_host(glow_comm *c, void *buf, size_t bytes, int root);

/* A checksum of n floats of backend memory (their bits); h chains several arrays
 * (start with GLOW_CHECKSUM_START). */
#define GLOW_CHECKSUM_START 0xcbf29ce484222325ULL
uint64_t glow_dist_checksum(backend *b, const float *x, size_t n, uint64_t h);
/* Do all processes hold the same checksum? Returns -1 when they do, else the first
 * rank whose checksum differs from rank 0's, with both checksums in *theirs and
 * *rank0. */
int glow_dist_first_differing(glow_comm *c, uint64_t mine, uint64_t *theirs, uint64_t *rank0);

/* Start-up facts every process must share, as name and text: the effective
 * config, the data, the build. Returns 0 when every process has the same, else -1
 * with err naming the first rank that differs and how, e.g. "rank 1: config:
 * 'lr: 0.002' where rank 0 has 'lr: 0.001'" (the first differing line). */
typedef struct {
    const char *name;
    const char *text;
} glow_dist_fact;
int glow_dist_agree(glow_comm *c, const glow_dist_fact *facts, int n, glow_error *err);

#endif
