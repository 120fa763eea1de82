/* The communicators (backend/comm.h, dist/): run alone, the single communicator
 * and the checks over it; run under `mpirun -np R` (test/distributed.bats), the
 * MPI communicator on host memory and staged through a second "device" (the CPU
 * backend under another name, so the download/upload path runs here too):
 * all-reduce against a rank-order sum computed on every process, its bits equal
 * everywhere, segments, broadcast, all-gather, reductions with NaN, the parameter
 * checksum and the start-up agreement naming a rank.
 *
 * `test_comm --device cuda[:N]` adds the CUDA backend of each process's GPU (as
 * glow-train picks it): alone, the NCCL communicator of one rank (GLOW_COMM=nccl,
 * the same bits back); under mpirun, the MPI communicator staged through that GPU
 * and, when no two ranks share a GPU, the NCCL communicator over device memory
 * (the same checks, the all-reduce within 1e-6 of the rank-order mean: NCCL's order
 * is its own); ranks that share a GPU must be refused by NCCL. On the CUDA emulator
 * (test/emu/mpi.bats) that is the NCCL stand-in with GLOW_EMU_DEVICES=2; on a
 * GPU machine with one GPU, the staged communicator and the refusal (gpu-check).
 *
 * `test_comm --hang` (under mpirun, with GLOW_DIST_TIMEOUT=1): rank 1 sleeps
 * before the barrier; the watchdog must end rank 0 with a message.
 * `test_comm --built`: "mpi 0|1 nccl 0|1", what this build has. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cpu/cpu_backend.h"
#include "device/device.h"
#include "dist/dist.h"

/* Element i of process r's array: distinct, with rounding in the sums. */
static float value(int r, size_t i) { return (float)(sin(0.37 * (double)i + 1.3 * r) * (1 + r)) / 3.0f; }

static void test_single(backend *b)
{
    glow_comm *c = glow_comm_single_new();
    CHECK(c->size == 1 && c->rank == 0 && strcmp(c->name, "single") == 0);
    float x[5] = {1.5f, -2, 3, 1e-30f, NAN};
    float y[5];
    memcpy(y, x, sizeof x);
    c->allreduce(c, x, 5, 1);
    c->broadcast(c, x, sizeof x, 0);
    CHECK(memcmp(x, y, sizeof x) == 0);
    double v[3] = {1, 2, 3}, all[3];
    c->allgather(c, v, all, sizeof v);
    CHECK(memcmp(v, all, sizeof v) == 0);
    glow_comm_reduce(c, v, 3, GLOW_REDUCE_SUM);
    CHECK(v[0] == 1 && v[1] == 2 && v[2] == 3);
    c->barrier(c);

    /* checksums: the bits, chained */
    float *p = b->alloc(b, 1000 * sizeof(float));
    for (int i = 0; i < 1000; i++)
        p[i] = value(0, (size_t)i);
    uint64_t h1 = glow_dist_checksum(b, p, 1000, GLOW_CHECKSUM_START);
    CHECK(h1 == glow_dist_checksum(b, p, 1000, GLOW_CHECKSUM_START));
    p[999] = nextafterf(p[999], 10);
    CHECK(h1 != glow_dist_checksum(b, p, 1000, GLOW_CHECKSUM_START));
    CHECK(h1 != glow_dist_checksum(b, p, 999, GLOW_CHECKSUM_START));
    CHECK(glow_dist_checksum(b, p, 10, h1) != glow_dist_checksum(b, p, 10, GLOW_CHECKSUM_START));
    b->free(b, p);
    CHECK(glow_dist_first_differing(c, 42, NULL, NULL) == -1);
    glow_dist_fact f[] = {{"config", "a\nb\n"}};
    glow_error err;
    CHECK(glow_dist_agree(c, f, 1, &err) == 0);
    c->destroy(c);

    /* no launcher: one process, nothing initialised */
    glow_dist ds;
    CHECKF(glow_dist_init(&ds, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(ds.size == 1 && ds.rank == 0 && ds.mpi == 0 && strcmp(ds.source, "none") == 0);
    glow_device dev;
    CHECK(glow_dist_device(&ds, "cpu", &dev, &err) == 0 && dev.kind == DEVICE_CPU);
    c = glow_dist_comm(&ds, b, &dev, &err);
    CHECK(c && strcmp(c->name, "single") == 0);
    if (c)
        c->destroy(c);
    glow_dist_finish(&ds);
}

/* The CPU backend under another name: the MPI communicator stages through
 * host_alloc, download and upload as it does for a GPU. */
static backend *staged_backend(backend *cpu)
{
    backend *s = xmalloc(sizeof *s);
    *s = *cpu;
    s->name = "staged";
    return s;
}

/* The rank-order mean the MPI communicator promises, for element i. */
static float expected_mean(int R, size_t i)
{
    double s = value(0, i);
    for (int r = 1; r < R; r++)
        s += value(r, i);
    return (float)(s / R);
}

/* exact: the bits of the rank-order mean (MPI); else within 1e-6 of it (NCCL) */
static void check_allreduce(glow_comm *c, backend *b, size_t n, int exact)
{
    const int R = c->size;
    float *x = b->alloc(b, n * sizeof(float));
    float *h = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = value(c->rank, i);
    b->upload(b, x, h, n * sizeof(float));
    c->allreduce(c, x, n, 1);
    b->download(b, h, x, n * sizeof(float));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float e = expected_mean(R, i);
        bad += exact ? memcmp(&h[i], &e, sizeof e) != 0
                     : !(fabsf(h[i] - e) <= 1e-6f * fmaxf(1.0f, fabsf(e)));
    }
    CHECKF(bad == 0, "%s/%s, n=%zu: %zu elements differ from the rank-order mean", c->name, b->name,
           n, bad);
    /* the same bits on every process */
    uint64_t mine = glow_dist_checksum(b, x, n, GLOW_CHECKSUM_START);
    CHECK(glow_dist_first_differing(c, mine, NULL, NULL) == -1);
    /* sum without averaging */
    for (size_t i = 0; i < n && i < 100; i++)
        h[i] = (float)(c->rank + 1);
    size_t m = n < 100 ? n : 100;
    b->upload(b, x, h, m * sizeof(float));
    c->allreduce(c, x, m, 0);
    b->download(b, h, x, m * sizeof(float));
    int ok = 1;
    for (size_t i = 0; i < m; i++)
        ok &= h[i] == (float)(R * (R + 1) / 2);
    CHECK(ok);
    b->free(b, x);
    free(h);
}

/* Every operation of communicator c over backend b (exact: the MPI communicator's
 * bits; big: the all-reduce in two segments too). */
static void check_ops(glow_comm *c, backend *b, int exact, int big)
{
    glow_error err;
    check_allreduce(c, b, 1, exact);
    check_allreduce(c, b, 1001, exact); /* parts of unequal sizes */
    if (big)
        check_allreduce(c, b, ((size_t)1 << 24) + 7, exact); /* two segments */

    /* broadcast from the last rank */
    float *x = b->alloc(b, 777 * sizeof(float));
    float h[777];
    for (int i = 0; i < 777; i++)
        h[i] = value(c->rank, (size_t)i);
    b->upload(b, x, h, sizeof h);
    c->broadcast(c, x, sizeof h, c->size - 1);
    b->download(b, h, x, sizeof h);
    int ok = 1;
    for (int i = 0; i < 777; i++)
        ok &= h[i] == value(c->size - 1, (size_t)i);
    CHECK(ok);
    b->free(b, x);

    /* all-gather in rank order; reductions in rank order, NaN winning max */
    int me[2] = {c->rank, 100 + c->rank}, all[64];
    if (c->size <= 32) {
        c->allgather(c, me, all, sizeof me);
        ok = 1;
        for (int r = 0; r < c->size; r++)
            ok &= all[2 * r] == r && all[2 * r + 1] == 100 + r;
        CHECK(ok);
    }
    double v[3] = {0.1 * (c->rank + 1), (double)c->rank, c->rank == 1 ? NAN : 1.0};
    glow_comm_reduce(c, v, 1, GLOW_REDUCE_SUM);
    double s = 0.1;
    for (int r = 1; r < c->size; r++)
        s += 0.1 * (r + 1);
    CHECK(v[0] == s);
    glow_comm_reduce(c, v + 1, 1, GLOW_REDUCE_MAX);
    CHECK(v[1] == c->size - 1);
    glow_comm_reduce(c, v + 2, 1, GLOW_REDUCE_MAX);
    CHECK(isnan(v[2]));
    double w = (double)c->rank;
    glow_comm_reduce(c, &w, 1, GLOW_REDUCE_MIN);
    CHECK(w == 0);
    char text[32];
    snprintf(text, sizeof text, "%s", c->rank == 0 ? "from rank 0" : "not this");
    glow_comm_bcast_host(c, text, sizeof text, 0);
    CHECK(strcmp(text, "from rank 0") == 0);

    /* a checksum that differs on the last rank is found, and named */
    uint64_t theirs, r0;
    int bad = glow_dist_first_differing(c, c->rank == c->size - 1 ? 7 : 5, &theirs, &r0);
    CHECK(bad == c->size - 1 && theirs == 7 && r0 == 5);
    char cfg[64];
    snprintf(cfg, sizeof cfg, "model:\n  width: 8\n  lr: %s\n", c->rank == 1 ? "0.002" : "0.001");
    glow_dist_fact f[] = {{"build", "v1"}, {"config", cfg}};
    CHECK(glow_dist_agree(c, f, 1, &err) == 0);
    CHECK(glow_dist_agree(c, f, 2, &err) == -1);
    CHECKF(strstr(err.msg, "rank 1: config: '  lr: 0.002' where rank 0 has '  lr: 0.001'") != NULL,
           "%s", err.msg);
    c->barrier(c);
}

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#ifndef GLOW_HAVE_NCCL
#define GLOW_HAVE_NCCL 0
#endif

/* The backend of --device SPEC for this process (glow-train's choice: with several
 * processes, cuda is GPU local_rank), or NULL with a failed check. */
static backend *device_backend(const glow_dist *d, const char *spec, glow_device *dev)
{
    glow_error err;
    if (glow_dist_device(d, spec, dev, &err) != 0) {
        CHECKF(0, "--device %s: %s", spec, err.msg);
        return NULL;
    }
    backend *b = backend_get(dev->kind, dev->index, &err);
    CHECKF(b != NULL, "--device %s: %s", spec, b ? "" : err.msg);
    return b;
}

/* One process, GLOW_COMM=nccl: NCCL's code on one GPU (a sum over one rank: the
 * same bits), or the refusal of a build without NCCL or of the CPU. */
static void test_single_nccl(backend *cpu, const char *spec)
{
    glow_dist ds;
    glow_error err;
    CHECKF(glow_dist_init(&ds, NULL, NULL, &err) == 0, "%s", err.msg);
    setenv("GLOW_COMM", "nccl", 1);
    glow_device cdev = {DEVICE_CPU, 0};
    glow_comm *c = glow_dist_comm(&ds, cpu, &cdev, &err);
    CHECKF(c == NULL && (strstr(err.msg, "NCCL") || strstr(err.msg, "nccl")), "%s",
           c ? c->name : err.msg);
    glow_device dev;
    backend *gpu = spec ? device_backend(&ds, spec, &dev) : NULL;
    if (gpu) {
        c = glow_dist_comm(&ds, gpu, &dev, &err);
        if (GLOW_HAVE_NCCL) {
            CHECKF(c && strcmp(c->name, "nccl") == 0 && c->size == 1 && c->rank == 0, "%s",
                   c ? c->name : err.msg);
        } else {
            CHECKF(c == NULL && strstr(err.msg, "no NCCL"), "%s", c ? c->name : err.msg);
        }
        if (c && strcmp(c->name, "nccl") == 0) {
            const size_t n = 1001;
            float *x = gpu->alloc(gpu, n * sizeof(float));
            float *h = xmalloc(n * sizeof(float)), *back = xmalloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++)
                h[i] = value(0, i);
            h[7] = NAN;
            gpu->upload(gpu, x, h, n * sizeof(float));
            c->allreduce(c, x, n, 1);
            c->allreduce(c, x, n, 0);
            c->broadcast(c, x, n * sizeof(float), 0);
            gpu->download(gpu, back, x, n * sizeof(float));
            CHECK(memcmp(h, back, n * sizeof(float)) == 0);
            double v[2] = {1.5, -2}, all[2];
            c->allgather(c, v, all, sizeof v);
            CHECK(all[0] == 1.5 && all[1] == -2);
            glow_comm_reduce(c, v, 2, GLOW_REDUCE_SUM);
            CHECK(v[0] == 1.5 && v[1] == -2);
            uint64_t mine = glow_dist_checksum(gpu, x, n, GLOW_CHECKSUM_START);
            CHECK(glow_dist_first_differing(c, mine, NULL, NULL) == -1);
            c->barrier(c);
            gpu->free(gpu, x);
            free(h);
            free(back);
        }
        if (c)
            c->destroy(c);
        backend_release(gpu);
    }
    unsetenv("GLOW_COMM");
    glow_dist_finish(&ds);
}

static __attribute__((unused)) void test_mpi(backend *cpu, const char *spec)
{
    glow_dist d;
    glow_error err;
    CHECKF(glow_dist_init(&d, NULL, NULL, &err) == 0, "%s", err.msg);
    CHECK(d.mpi == 1);
    CHECK(d.local_size >= 1 && d.local_rank < d.local_size);
    glow_device gdev = {DEVICE_CPU, 0};
    backend *gpu = spec ? device_backend(&d, spec, &gdev) : NULL;
    backend *staged = staged_backend(cpu);
    backend *backends[] = {cpu, staged, gpu};
    for (int k = 0; k < 3; k++) {
        backend *b = backends[k];
        if (!b)
            continue;
        glow_comm *c = glow_comm_mpi_new(b, &err);
        CHECKF(c != NULL, "%s", err.msg);
        if (!c)
            continue;
        CHECK(strcmp(c->name, "mpi") == 0 && c->size == d.size && c->rank == d.rank);
        check_ops(c, b, 1, k == 1 && c->size == 2);
        c->destroy(c);
    }
    /* glow_dist_comm's choice on the CPU: MPI over host memory, watched */
    glow_device dev = {DEVICE_CPU, 0};
    glow_comm *c = glow_dist_comm(&d, cpu, &dev, &err);
    CHECKF(c && strcmp(c->name, "mpi") == 0, "%s", c ? c->name : err.msg);
    if (c) {
        check_allreduce(c, cpu, 5000, 1);
        c->destroy(c);
    }
    setenv("GLOW_COMM", "nccl", 1);
    c = glow_dist_comm(&d, cpu, &dev, &err);
    CHECK(c == NULL);
    if (!c)
        CHECKF(strstr(err.msg, "nccl") != NULL || strstr(err.msg, "NCCL") != NULL, "%s", err.msg);
    unsetenv("GLOW_COMM");
    if (gpu) {
        /* do two processes of this machine have the same GPU? (NCCL refuses them) */
        glow_comm *m = glow_comm_mpi_new(cpu, &err);
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        uint64_t me[2] = {GLOW_CHECKSUM_START, (uint64_t)gdev.index};
        for (const char *p = host; *p; p++)
            me[0] = (me[0] ^ (unsigned char)*p) * 0x100000001b3ULL;
        uint64_t *all = xmalloc((size_t)d.size * sizeof me);
        m->allgather(m, me, all, sizeof me);
        int shared = 0;
        for (int a = 0; a < d.size; a++)
            for (int b = a + 1; b < d.size; b++)
                shared |= all[2 * a] == all[2 * b] && all[2 * a + 1] == all[2 * b + 1];
        free(all);
        m->destroy(m);
        /* GLOW_COMM=nccl: NCCL over device memory, or its refusal of a shared GPU */
        setenv("GLOW_COMM", "nccl", 1);
        c = glow_dist_comm(&d, gpu, &gdev, &err);
        if (!GLOW_HAVE_NCCL) {
            CHECKF(c == NULL && strstr(err.msg, "no NCCL"), "%s", c ? c->name : err.msg);
        } else if (shared) {
            CHECKF(c == NULL && strstr(err.msg, "ncclCommInitRank"), "ranks sharing a GPU: %s",
                   c ? c->name : err.msg);
        } else {
            CHECKF(c && strcmp(c->name, "nccl") == 0 && c->size == d.size && c->rank == d.rank,
                   "%s", c ? c->name : err.msg);
            if (c)
                check_ops(c, gpu, 0, 0);
        }
        if (c)
            c->destroy(c);
        /* auto: NCCL when built and no GPU is shared, else MPI staged through the GPU */
        setenv("GLOW_COMM", "auto", 1);
        c = glow_dist_comm(&d, gpu, &gdev, &err);
        const char *want = GLOW_HAVE_NCCL && !shared ? "nccl" : "mpi";
        CHECKF(c && strcmp(c->name, want) == 0, "auto chose %s, not %s", c ? c->name : err.msg, want);
        if (c) {
            check_allreduce(c, gpu, 3000, strcmp(c->name, "mpi") == 0);
            c->destroy(c);
        }
        unsetenv("GLOW_COMM");
        printf("comm: rank %d: %s, %s\n", d.rank, gpu->name,
               shared ? "GPU shared with another rank (NCCL refused)" : "NCCL over device memory");
        backend_release(gpu);
    }
    free(staged);
    /* every process prints its own summary; make sure the counts add up */
    glow_dist_finish(&d);
}

static int hang(backend *cpu)
{
    glow_dist d;
    glow_error err;
    if (glow_dist_init(&d, NULL, NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    glow_device dev = {DEVICE_CPU, 0};
    glow_comm *c = glow_dist_comm(&d, cpu, &dev, &err);
    if (!c) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (d.rank == 1)
        sleep(30);
    c->barrier(c);
    printf("rank %d: past the barrier\n", d.rank);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--built") == 0) { /* for test/distributed.bats */
        printf("mpi %d nccl %d\n", GLOW_HAVE_MPI, GLOW_HAVE_NCCL);
        return 0;
    }
    glow_error err;
    backend *cpu = cpu_backend_new(&err);
    if (!cpu) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--hang") == 0)
        return hang(cpu);
    const char *spec = argc > 2 && strcmp(argv[1], "--device") == 0 ? argv[2] : NULL;
    const char *size = getenv("OMPI_COMM_WORLD_SIZE");
    if (size && atoi(size) > 1) {
#if GLOW_HAVE_MPI
        test_mpi(cpu, spec);
#else
        return check_skip("a build without MPI");
#endif
    } else {
        test_single(cpu);
        test_single_nccl(cpu, spec);
    }
    cpu->destroy(cpu);
    return check_summary();
}
