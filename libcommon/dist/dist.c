#include "dist.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic_file.h"

#ifndef GLOW_HAVE_MPI
#define GLOW_HAVE_MPI 0
#endif
#ifndef GLOW_HAVE_NCCL
#define GLOW_HAVE_NCCL 0
#endif
#if GLOW_HAVE_MPI
#include <mpi.h>
#endif
#if GLOW_HAVE_NCCL
#include "cuda/cuda_nccl.h"
#endif

/* ---- who this process is ---- */

static int env_long(const char *name, long max, long *v)
{
    const char *s = getenv(name);
    return s && *s && parse_long(s, 0, max, v) == 0;
}

/* The launchers' variables, most specific first: our own (the NCCL-only launch),
 * Open MPI's mpirun, MPICH's Hydra and Slurm's PMI, srun. */
static const struct {
    const char *size, *rank, *local;
    int mpi; /* MPI_Init can join this launch */
} sources[] = {
    {"GLOW_WORLD_SIZE", "GLOW_RANK", "GLOW_LOCAL_RANK", 0},
    {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", 1},
    {"PMI_SIZE", "PMI_RANK", "MPI_LOCALRANKID", 1},
    {"SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_LOCALID", 1},
};

static char rank_prefix[32];

/* OMP_NUM_THREADS unset: the CPUs this process may use, shared among the
 * processes of its machine (mpirun binds each of 2 processes to a core by
 * default; then that is one thread each). */
static void share_threads(const glow_dist *d)
{
    if (getenv("OMP_NUM_THREADS") || d->local_size <= 1)
        return;
    cpu_set_t set;
    int cpus = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    if (cpus <= 0)
        cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus / d->local_size;
    omp_set_num_threads(n > 0 ? n : 1);
}

int glow_dist_init(glow_dist *d, int *argc, char ***argv, glow_error *err)
{
    memset(d, 0, sizeof *d);
    d->size = d->local_size = 1;
    snprintf(d->source, sizeof d->source, "none");
    int mpi_launch = 0;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        long size, rank = 0, local = 0;
        if (!env_long(sources[i].size, 1L << 24, &size))
            continue;
        if (size > 1 && !env_long(sources[i].rank, size - 1, &rank)) {
            glow_errorf(err, "%s=%ld but %s is %s", sources[i].size, size, sources[i].rank,
                        getenv(sources[i].rank) ? "not a rank below it" : "not set");
            return -1;
        }
        env_long(sources[i].local, size - 1, &local);
        d->size = (int)size;
        d->rank = (int)rank;
        d->local_rank = (int)local;
        snprintf(d->source, sizeof d->source, "%s", sources[i].size);
        mpi_launch = sources[i].mpi;
        break;
    }
    if (d->size == 1) {
        d->rank = d->local_rank = 0;
        return 0;
    }
    long ls;
    if (env_long("GLOW_LOCAL_SIZE", 1L << 24, &ls) && ls > 0)
        d->local_size = (int)ls;
    if (mpi_launch) {
#if GLOW_HAVE_MPI
        int provided;
        if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            glow_errorf(err, "MPI_Init failed");
            return -1;
        }
        d->mpi = 1;
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
        int size, rank;
        MPI_Comm_size(MPI_COMM_WORLD, &size);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        if (size != d->size) {
            glow_errorf(err, "%s=%d, but MPI sees %d process%s: this launcher does not talk to this "
                             "MPI (under Slurm: srun --mpi=pmix, or mpirun inside the allocation)",
                        d->source, d->size, size, size == 1 ? "" : "es");
            return -1;
        }
        d->rank = rank;
        MPI_Comm node;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
        MPI_Comm_rank(node, &d->local_rank);
        MPI_Comm_size(node, &d->local_size);
        MPI_Comm_free(&node);
#else
        (void)argc, (void)argv;
        if (!getenv("GLOW_NCCL_ID_FILE")) {
            glow_errorf(err, "started as process %d of %d (%s) but this build has no MPI: install "
                             "libopenmpi-dev and rebuild (make MPI=1), or give GLOW_NCCL_ID_FILE "
                             "for NCCL without MPI (docs/distributed.md)",
                        d->rank, d->size, d->source);
            return -1;
        }
#endif
    }
    if (d->rank > 0) {
        snprintf(rank_prefix, sizeof rank_prefix, "rank %d: ", d->rank);
        glow_set_message_prefix(rank_prefix);
    }
    share_threads(d);
    return 0;
}

void glow_dist_finish(glow_dist *d)
{
#if GLOW_HAVE_MPI
    if (d->mpi) {
        MPI_Finalize();
        d->mpi = 0;
    }
#else
    (void)d;
#endif
}

int glow_dist_device(const glow_dist *d, const char *spec, glow_device *dev, glow_error *err)
{
    if (glow_device_resolve(spec, dev, err) != 0)
        return -1;
    if (d->size == 1 || dev->kind != DEVICE_CUDA || strncmp(spec, "cuda:", 5) == 0)
        return 0;
    /* cuda or auto: the GPU of this process's place on its machine, modulo the
     * GPUs there (processes share GPUs when there are fewer) */
    int n = 1;
    for (glow_device probe; n < 1024; n++) {
        char s[32];
        glow_error e2;
        snprintf(s, sizeof s, "cuda:%d", n);
        if (glow_device_resolve(s, &probe, &e2) != 0)
            break;
    }
    char s[32];
    snprintf(s, sizeof s, "cuda:%d", d->local_rank % n);
    return glow_device_resolve(s, dev, err);
}

/* ---- reductions and checks over any communicator ---- */

void glow_comm_reduce(glow_comm *c, double *x, int n, glow_reduce_op op)
{
    if (n <= 0)
        return;
    double *all = xmalloc((size_t)c->size * (size_t)n * sizeof(double));
    c->allgather(c, x, all, (size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) {
        double v = all[i];
        for (int r = 1; r < c->size; r++) {
            double w = all[(size_t)r * (size_t)n + (size_t)i];
            if (op == GLOW_REDUCE_SUM)
                v += w;
            else if (v != v) /* NaN wins max and min, as a non-finite flag should */
                continue;
            else if (op == GLOW_REDUCE_MAX)
                v = w != w || w > v ? w : v;
            else
                v = w != w || w < v ? w : v;
        }
        x[i] = v;
    }
    free(all);
}

void glow_comm_bcast_host(glow_comm *c, void *buf, size_t bytes, int root)
{
    if (bytes == 0)
        return;
    char *all = xmalloc((size_t)c->size * bytes);
    c->allgather(c, buf, all, bytes);
    memcpy(buf, all + (size_t)root * bytes, bytes);
    free(all);
}

/* 64-bit FNV-1a over 8-byte words (the tail zero-padded), then a final mix. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, s + i, n - i);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h ^ (uint64_t)n;
}

uint64_t glow_dist_checksum(backend *b, const float *x, size_t n, uint64_t h)
{
    const size_t seg = (size_t)1 << 22;
    float *host = xmalloc((n < seg ? n : seg) * sizeof(float) + 1);
    for (size_t off = 0; off < n; off += seg) {
        size_t len = n - off < seg ? n - off : seg;
        b->download(b, host, x + off, len * sizeof(float));
        h = hash_bytes(h, host, len * sizeof(float));
    }
    free(host);
    return h;
}

int glow_dist_first_differing(glow_comm *c, uint64_t mine, uint64_t *theirs, uint64_t *rank0)
{
    uint64_t *all = xmalloc((size_t)c->size * sizeof *all);
    c->allgather(c, &mine, all, sizeof mine);
    int bad = -1;
    for (int r = 1; r < c->size && bad < 0; r++)
        if (all[r] != all[0])
            bad = r;
    if (theirs)
        *theirs = bad >= 0 ? all[bad] : mine;
    if (rank0)
        *rank0 = all[0];
    free(all);
    return bad;
}

/* The first line where a and b differ, as 'line' of each ("(end)" past the last). */
static void first_difference(const char *a, const char *b, char *la, char *lb, size_t n)
{
    while (*a || *b) {
        size_t ea = strcspn(a, "\n"), eb = strcspn(b, "\n");
        if (ea != eb || memcmp(a, b, ea) != 0) {
            snprintf(la, n, "'%.*s'", (int)(ea < 200 ? ea : 200), a);
            snprintf(lb, n, "'%.*s'", (int)(eb < 200 ? eb : 200), b);
            if (!*a)
                snprintf(la, n, "(end)");
            if (!*b)
                snprintf(lb, n, "(end)");
            return;
        }
        a += ea + (a[ea] != 0);
        b += eb + (b[eb] != 0);
    }
    snprintf(la, n, "(same text)");
    snprintf(lb, n, "(same text)");
}

/* A text of process `from`, on every process (length, then the bytes). */
static char *text_of(glow_comm *c, const char *mine, int from)
{
    uint64_t len = mine ? strlen(mine) : 0;
    glow_comm_bcast_host(c, &len, sizeof len, from);
    char *t = xmalloc((size_t)len + 1);
    if (c->rank == from)
        memcpy(t, mine, (size_t)len);
    glow_comm_bcast_host(c, t, (size_t)len, from);
    t[len] = '\0';
    return t;
}

int glow_dist_agree(glow_comm *c, const glow_dist_fact *facts, int n, glow_error *err)
{
    if (c->size == 1 || n <= 0)
        return 0;
    uint64_t *h = xmalloc((size_t)n * sizeof *h);
    uint64_t *all = xmalloc((size_t)n * (size_t)c->size * sizeof *all);
    for (int i = 0; i < n; i++)
        h[i] = hash_bytes(GLOW_CHECKSUM_START, facts[i].text, strlen(facts[i].text));
    c->allgather(c, h, all, (size_t)n * sizeof *h);
    int bad_rank = -1, bad_fact = -1;
    for (int r = 1; r < c->size && bad_rank < 0; r++)
        for (int i = 0; i < n && bad_rank < 0; i++)
            if (all[(size_t)r * (size_t)n + (size_t)i] != all[i]) {
                bad_rank = r;
                bad_fact = i;
            }
    free(h);
    free(all);
    if (bad_rank < 0)
        return 0;
    char *t0 = text_of(c, facts[bad_fact].text, 0);
    char *tr = text_of(c, facts[bad_fact].text, bad_rank);
    char la[256], lb[256];
    first_difference(tr, t0, la, lb, sizeof la);
    glow_errorf(err, "rank %d: %s: %s where rank 0 has %s; every process must run the same "
                     "build on the same config and data",
                bad_rank, facts[bad_fact].name, la, lb);
    free(t0);
    free(tr);
    return -1;
}

/* ---- the watchdog: no operation waits for ever ---- */

typedef struct {
    glow_comm pub;
    glow_comm *inner;
    double timeout;
    pthread_mutex_t lock;
    double since; /* when the operation under way started; 0 = none */
    const char *what;
    pthread_t thread;
    int stop;
} watched;

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *watch_thread(void *arg)
{
    watched *w = arg;
    for (;;) {
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&w->lock);
        int stop = w->stop;
        double since = w->since;
        const char *what = w->what;
        pthread_mutex_unlock(&w->lock);
        if (stop)
            return NULL;
        if (since > 0 && mono_now() - since > w->timeout) {
            fprintf(stderr,
                    "%s: %s%s waited %.0f s for the other processes: one of them has stopped "
                    "or hangs; ending (GLOW_DIST_TIMEOUT sets the limit)\n",
                    glow_progname(), glow_message_prefix(), what, w->timeout);
            atomic_cleanup_all();
            _exit(1);
        }
    }
}

static void watch_begin(glow_comm *c, const char *what)
{
    watched *w = (watched *)c;
    pthread_mutex_lock(&w->lock);
    w->since = mono_now();
    w->what = what;
    pthread_mutex_unlock(&w->lock);
}

static void watch_end(glow_comm *c)
{
    watched *w = (watched *)c;
    pthread_mutex_lock(&w->lock);
    w->since = 0;
    pthread_mutex_unlock(&w->lock);
}

static glow_comm *inner_of(glow_comm *c) { return ((watched *)c)->inner; }

static void watched_allreduce(glow_comm *c, float *x, size_t n, int average)
{
    watch_begin(c, "the gradient all-reduce");
    inner_of(c)->allreduce(inner_of(c), x, n, average);
    watch_end(c);
}

static void watched_broadcast(glow_comm *c, void *x, size_t bytes, int root)
{
    watch_begin(c, "a broadcast");
    inner_of(c)->broadcast(inner_of(c), x, bytes, root);
    watch_end(c);
}

static void watched_allgather(glow_comm *c, const void *mine, void *all, size_t bytes)
{
    watch_begin(c, "an exchange of small values");
    inner_of(c)->allgather(inner_of(c), mine, all, bytes);
    watch_end(c);
}

static void watched_barrier(glow_comm *c)
{
    watch_begin(c, "a barrier");
    inner_of(c)->barrier(inner_of(c));
    watch_end(c);
}

static void watched_destroy(glow_comm *c)
{
    watched *w = (watched *)c;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    w->inner->destroy(w->inner);
    free(w);
}

static glow_comm *watch(glow_comm *inner)
{
    long t = 600;
    const char *s = getenv("GLOW_DIST_TIMEOUT");
    if (s && *s && parse_long(s, 0, 1L << 30, &t) != 0)
        glow_warn("GLOW_DIST_TIMEOUT=%s: expected seconds; using 600", s);
    if (t == 0)
        return inner;
    watched *w = xcalloc(1, sizeof *w);
    w->pub = *inner;
    w->inner = inner;
    w->timeout = (double)t;
    pthread_mutex_init(&w->lock, NULL);
#define WATCH_SET_SLOT(slot) w->pub.slot = watched_##slot;
    COMM_SLOTS(WATCH_SET_SLOT)
#undef WATCH_SET_SLOT
    if (pthread_create(&w->thread, NULL, watch_thread, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        free(w);
        return inner;
    }
    return &w->pub;
}

/* ---- choosing the communicator ---- */

#if GLOW_HAVE_NCCL
/* NCCL's unique id from rank 0 through a file (no MPI): written atomically by
 * rank 0, waited for by the others. */
static int id_through_file(const glow_dist *d, const char *path, unsigned char *id,
                           glow_error *err)
{
    const size_t nb = GLOW_NCCL_ID_BYTES;
    if (d->rank == 0) {
        if (cuda_nccl_unique_id(id, err) != 0)
            return -1;
        atomic_file af;
        if (atomic_open(&af, path, err) != 0)
            return -1;
        fprintf(af.f, "glow-nccl-id %d ", d->size);
        for (size_t i = 0; i < nb; i++)
            fprintf(af.f, "%02x", id[i]);
        fputc('\n', af.f);
        return atomic_commit(&af, err);
    }
    long timeout = 600;
    const char *s = getenv("GLOW_DIST_TIMEOUT");
    if (s && *s)
        parse_long(s, 0, 1L << 30, &timeout);
    double start = mono_now();
    for (;;) {
        FILE *f = fopen(path, "r");
        if (f) {
            int size = 0;
            char hex[2 * GLOW_NCCL_ID_BYTES + 2];
            int ok = fscanf(f, "glow-nccl-id %d %257s", &size, hex) == 2 &&
                     strlen(hex) == 2 * nb;
            fclose(f);
            if (ok && size != d->size) {
                glow_errorf(err, "GLOW_NCCL_ID_FILE %s: written for %d processes, not %d (a file of "
                                 "another run? give each run its own path)",
                            path, size, d->size);
                return -1;
            }
            if (ok) {
                for (size_t i = 0; i < nb; i++) {
                    unsigned v;
                    sscanf(hex + 2 * i, "%2x", &v);
                    id[i] = (unsigned char)v;
                }
                return 0;
            }
        }
        if (timeout > 0 && mono_now() - start > (double)timeout) {
            glow_errorf(err, "GLOW_NCCL_ID_FILE %s: no NCCL id from rank 0 after %ld s", path,
                        timeout);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
#endif

/* Do two processes on one machine use the same GPU? (NCCL refuses that.) */
static int gpus_shared(glow_comm *c, const glow_device *dev)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    uint64_t me[2] = {hash_bytes(0, host, strlen(host)), (uint64_t)dev->index};
    uint64_t *all = xmalloc((size_t)c->size * sizeof me);
    c->allgather(c, me, all, sizeof me);
    int shared = 0;
    for (int a = 0; a < c->size && !shared; a++)
        for (int b = a + 1; b < c->size && !shared; b++)
            shared = all[2 * a] == all[2 * b] && all[2 * a + 1] == all[2 * b + 1];
    free(all);
    return shared;
}

glow_comm *glow_dist_comm(glow_dist *d, backend *b, const glow_device *dev, glow_error *err)
{
    const char *want = getenv("GLOW_COMM");
    if (!want || !*want)
        want = "auto";
    if (strcmp(want, "auto") != 0 && strcmp(want, "mpi") != 0 && strcmp(want, "nccl") != 0) {
        glow_errorf(err, "GLOW_COMM=%s: expected auto, mpi or nccl", want);
        return NULL;
    }
    if (d->size == 1 && strcmp(want, "nccl") != 0)
        return glow_comm_single_new();
#if GLOW_HAVE_NCCL
    if (d->size == 1) { /* GLOW_COMM=nccl on one process: NCCL's code run on one GPU */
        unsigned char id[GLOW_NCCL_ID_BYTES];
        if (dev->kind != DEVICE_CUDA) {
            glow_errorf(err, "GLOW_COMM=nccl: NCCL needs --device cuda");
            return NULL;
        }
        if (cuda_nccl_unique_id(id, err) != 0)
            return NULL;
        return cuda_nccl_comm_new(b, 0, 1, id, err);
    }
#endif
    glow_comm *mpi = NULL;
    if (d->mpi && !(mpi = glow_comm_mpi_new(b, err)))
        return NULL;
    int nccl = strcmp(want, "nccl") == 0;
    if (strcmp(want, "auto") == 0)
        nccl = GLOW_HAVE_NCCL && dev->kind == DEVICE_CUDA && (!mpi || !gpus_shared(mpi, dev));
    if (!nccl) {
        if (!mpi) {
            glow_errorf(err, "GLOW_COMM=%s: MPI over host memory needs a launch by mpirun or srun "
                             "(this one is %s)", want, d->source);
            return NULL;
        }
        return watch(mpi);
    }
#if GLOW_HAVE_NCCL
    if (dev->kind != DEVICE_CUDA) {
        glow_errorf(err, "GLOW_COMM=nccl: NCCL needs --device cuda");
        if (mpi)
            mpi->destroy(mpi);
        return NULL;
    }
    unsigned char id[GLOW_NCCL_ID_BYTES];
    const char *file = getenv("GLOW_NCCL_ID_FILE");
    if (mpi) {
        if (d->rank == 0 && cuda_nccl_unique_id(id, err) != 0)
            return NULL;
        glow_comm_bcast_host(mpi, id, sizeof id, 0);
    } else if (!file || !*file) {
        glow_errorf(err, "NCCL without MPI (%s) needs GLOW_NCCL_ID_FILE, a path every process "
                         "can read", d->source);
        return NULL;
    } else if (id_through_file(d, file, id, err) != 0)
        return NULL;
    glow_comm *c = cuda_nccl_comm_new(b, d->rank, d->size, id, err);
    if (mpi)
        mpi->destroy(mpi);
    if (!c)
        return NULL;
    c = watch(c);
    if (!mpi && file) { /* everyone has read it */
        c->barrier(c);
        if (d->rank == 0)
            unlink(file);
    }
    return c;
#else
    glow_errorf(err, "GLOW_COMM=nccl: this build has no NCCL (nccl.h and libnccl under %s were "
                     "not found; make NCCL=1 forces it)", "/usr/local/cuda");
    if (mpi)
        mpi->destroy(mpi);
    return NULL;
#endif
}
