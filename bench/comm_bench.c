/* The gradient all-reduce alone (docs/distributed.md "Measured"): under
 * `mpirun -np R build/bench/comm_bench [N] [ROUNDS]`, the time of one all-reduce
 * (mean) of N floats (default 44,603,604: config B's trained parameters,
 * bench/README.md) with the MPI communicator on host memory, median of ROUNDS
 * (default 10), next to MPI_Allreduce's (whose order of summation is the
 * library's, so the project does not use it) for scale. Rank 0 prints
 * "allreduce N floats (M MiB), R ranks: glow X ms (Y GB/s bus), MPI_Allreduce Z ms". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_backend.h"
#include "dist/dist.h"
#include "tool/tool.h"

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#if GLOW_HAVE_MPI
#include <mpi.h>
#endif

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    glow_tool_start(argc, argv, GLOW_TOOL_OPENMP);
#if !GLOW_HAVE_MPI
    fprintf(stderr, "comm_bench: this build has no MPI\n");
    return 1;
#else
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 44603604;
    int rounds = argc > 2 ? atoi(argv[2]) : 10;
    glow_error err;
    glow_dist d;
    if (glow_dist_init(&d, &argc, &argv, &err) != 0 || !d.mpi) {
        fprintf(stderr, "comm_bench: %s\n", d.mpi ? err.msg : "run it under mpirun -np 2 or more");
        return 1;
    }
    backend *b = cpu_backend_new(&err);
    glow_comm *c = glow_comm_mpi_new(b, &err);
    float *x = b->alloc(b, n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
    double *t_ours = calloc((size_t)rounds, sizeof(double));
    double *t_mpi = calloc((size_t)rounds, sizeof(double));
    c->allreduce(c, x, n, 1); /* warm-up: pages, connections */
    for (int k = 0; k < rounds; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        c->allreduce(c, x, n, 1);
        t_ours[k] = MPI_Wtime() - t0;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        t_mpi[k] = MPI_Wtime() - t0;
    }
    qsort(t_ours, (size_t)rounds, sizeof(double), cmp_double);
    qsort(t_mpi, (size_t)rounds, sizeof(double), cmp_double);
    double med = t_ours[rounds / 2], medm = t_mpi[rounds / 2];
    /* bus bandwidth, as nccl-tests count it: 2 (R-1)/R bytes per byte reduced */
    double bus = 2.0 * (d.size - 1) / d.size * (double)n * 4 / med / 1e9;
    if (d.rank == 0)
        printf("allreduce %zu floats (%.0f MiB), %d ranks: glow %.1f ms (%.2f GB/s bus), "
               "MPI_Allreduce %.1f ms\n",
               n, (double)n * 4 / 1048576.0, d.size, med * 1e3, bus, medm * 1e3);
    c->destroy(c);
    b->free(b, x);
    b->destroy(b);
    free(t_ours);
    free(t_mpi);
    glow_dist_finish(&d);
    return 0;
#endif
}
