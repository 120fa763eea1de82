#include "tool.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <getopt.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/mem_budget.h"
#include "base/path.h"
#include "device/device.h"

/* libgomp's waiting threads spin (up to ~300000 rounds) before they sleep. On a
 * machine whose cores are shared with other busy processes, a spinning thread
 * holds the core the thread it waits for needs: a 2-thread run on 2 busy cores
 * measured 5-20x slower than with OMP_WAIT_POLICY=passive. On a machine of its
 * own, though, a sleeping thread takes tens of microseconds to wake (more on a
 * virtual machine), and a training step opens ~100 parallel regions: passive
 * cost 5-15% there (bench/README.md, "Load"). So the choice is made from the
 * load when the tool starts: a short spin (GLOW_SPIN_ROUNDS, ~0.2 ms, which
 * bridges the gaps between one step's regions) when this job's threads find
 * cores no other task is running on, passive otherwise. libgomp reads the policy
 * from the environment before main (its constructor runs before any of ours),
 * so the only way to change it is to start the program again with it set.
 * Called first in main, nothing has been read or written yet; the pid stays. */
#define GLOW_SPIN_ROUNDS "20000"

int glow_omp_spin_fits(int others_running, int job_threads, int cpus)
{
    return others_running >= 0 && job_threads > 0 && others_running + job_threads <= cpus;
}

/* The first number of a variable such as OMP_NUM_THREADS="2,1", or 0. */
static int env_count(const char *name)
{
    const char *v = getenv(name);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 && n < 1 << 20 ? (int)n : 0;
}

/* The tasks running or ready to run on the whole machine, this one included
 * (/proc/stat's procs_running), or -1. */
static int procs_running(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "procs_running %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* The processes of this job on this machine: a launcher's count of them, else
 * its count of all of them (as if all were here), else 1 (libcommon/dist reads
 * the same variables). */
static int job_processes(void)
{
    static const char *local[] = {"GLOW_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"};
    static const char *world[] = {"GLOW_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                  "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (env_count(local[i]))
            return env_count(local[i]);
    for (size_t i = 0; i < sizeof world / sizeof world[0]; i++)
        if (env_count(world[i]))
            return env_count(world[i]);
    return 1;
}

/* Whether this job's threads (OMP_NUM_THREADS, or the CPUs it may use shared
 * among its processes, as libcommon/dist does, times the processes on this
 * machine) find CPUs nothing else runs on: three looks 2 ms apart, the least
 * busy one counts (a busy process runs in all three; a task that only passes,
 * such as the one that ran before this one exiting, in one). */
static int machine_is_quiet(void)
{
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
    int procs = job_processes();
    int threads = env_count("OMP_NUM_THREADS");
    if (!threads)
        threads = cpus / procs > 0 ? cpus / procs : 1;
    int least = -1;
    for (int i = 0; i < 3; i++) {
        int n = procs_running();
        if (n < 0)
            return 0;
        if (least < 0 || n < least)
            least = n;
        if (i < 2)
            nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    return glow_omp_spin_fits(least - 1, threads * procs, cpus);
}

void glow_tool_omp_policy(char **argv, int passive)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || !argv || !argv[0])
        return;
    int ok = !passive && machine_is_quiet() ? setenv("GOMP_SPINCOUNT", GLOW_SPIN_ROUNDS, 1)
                                            : setenv("OMP_WAIT_POLICY", "passive", 1);
    if (ok != 0)
        return;
    /* By the program's own path, so that its process keeps its name (ps, pgrep:
     * exec names a process after the file it was given, here "exe"). */
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        execv(self, argv);
    }
    execv("/proc/self/exe", argv);
    /* no /proc: run on with libgomp's default */
}

void glow_tool_omp_wait_str(char *buf, size_t n)
{
    const char *pol = getenv("OMP_WAIT_POLICY"), *spin = getenv("GOMP_SPINCOUNT");
    if (!pol && !spin)
        snprintf(buf, n, "libgomp's default");
    else
        snprintf(buf, n, "%s%s%s%s%s", pol ? "OMP_WAIT_POLICY=" : "", pol ? pol : "", pol && spin ? " " : "",
                 spin ? "GOMP_SPINCOUNT=" : "", spin ? spin : "");
    for (char *c = buf; *c; c++) /* the user's values go into JSON strings as they are */
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
            *c = '?';
}

/* Temporary files go, then the signal does what it would have done. unlink,
 * sigaction and raise are async-signal-safe. */
static void die_on_signal(int sig)
{
    atomic_cleanup_all();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
}

/* With keep_ignored, a signal ignored when the tool started (nohup, a background
 * job of a shell) stays ignored. */
static void set_handler(int sig, void (*fn)(int), int flags, int keep_ignored)
{
    struct sigaction sa;
    if (keep_ignored && sigaction(sig, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = flags;
    sigaction(sig, &sa, NULL);
}

void glow_tool_start(int argc, char **argv, unsigned flags)
{
    (void)argc;
    glow_set_progname(argv && argv[0] ? argv[0] : "glow");
    if (flags & GLOW_TOOL_OPENMP)
        glow_tool_omp_policy(argv, (flags & GLOW_TOOL_OMP_PASSIVE) != 0);
    atexit(atomic_cleanup_all);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        set_handler(sigs[i], die_on_signal, 0, 1);
}

static volatile sig_atomic_t stop_signal;

static void stop_on_signal(int sig)
{
    if (stop_signal) { /* a second one: stop at once */
        die_on_signal(sig);
        return;
    }
    stop_signal = sig;
}

volatile sig_atomic_t *glow_tool_catch_stop(void)
{
    set_handler(SIGINT, stop_on_signal, SA_RESTART, 0);
    set_handler(SIGTERM, stop_on_signal, SA_RESTART, 0);
    return &stop_signal;
}

void glow_tool_print_version(void)
{
    printf("%s (Glow in C and CUDA) %s\n", glow_progname(), glow_version());
    if (fflush(stdout) != 0 || ferror(stdout))
        exit(EXIT_BADINPUT);
    exit(EXIT_OK);
}

void glow_tool_no_terminal(const char *what, const char *how)
{
    if (!isatty(STDOUT_FILENO))
        return;
    fprintf(stderr, "%s: refusing to write %s to a terminal; %s\n", glow_progname(), what, how);
    exit(EXIT_USAGE);
}

void glow_tool_mem_limit(const char *arg)
{
    long mib;
    if (parse_long(arg, 1, 1L << 40, &mib) != 0)
        glow_usage_error("--mem-limit %s: expected a positive number of MiB", arg);
    glow_mem_set_limit((uint64_t)mib << 20);
}

void glow_tool_no_overwrite(const char *out, const char *also, int n, char *const *inputs)
{
    char *dash = "-";
    char **all = xmalloc((size_t)(n + 2) * sizeof *all);
    int k = 0;
    if (also)
        all[k++] = (char *)also;
    for (int i = 0; i < n; i++)
        all[k++] = inputs[i];
    if (n == 0)
        all[k++] = dash;
    int i = glow_output_is_input(out, k, all);
    const char *in = i < 0 ? NULL : strcmp(all[i], "-") == 0 ? "standard input" : all[i];
    free(all);
    if (!in)
        return;
    if (!out || strcmp(out, "-") == 0)
        glow_die(EXIT_BADINPUT, "standard output is the input %s; writing it would destroy the "
                                "input: redirect to another file", in);
    glow_die(EXIT_BADINPUT, "%s: is also the input %s; writing it would destroy the input: write "
                            "to another file", out, in);
}

void glow_tool_ckpt_operands(int argc, char **argv, int first, const char *device, const char *data,
                             const char *stream, const char *operand, glow_tool_operands *out)
{
    if (first >= argc)
        glow_usage_error("%s", "missing the checkpoint (CKPT)");
    out->ckpt = argv[first];
    out->inputs = argv + first + 1;
    out->ninputs = argc - first - 1;
    glow_error err;
    if (glow_device_spec_check(device, &err) != 0)
        glow_usage_error("%s", err.msg);
    int data_stdin = out->ninputs == 0;
    for (int i = 0; i < out->ninputs; i++)
        data_stdin += strcmp(out->inputs[i], "-") == 0;
    if (data_stdin + (strcmp(out->ckpt, "-") == 0) > 1)
        glow_usage_error("only one of the checkpoint and %s can come from standard input", data);
    if (data_stdin && isatty(STDIN_FILENO))
        glow_usage_error("expected %s on standard input; pipe one in or name %s", stream, operand);
}

void glow_tool_model_opt(int c, const char *arg, char **argv, glow_tool_model_opts *m)
{
    switch (c) {
    case GLOW_OPT_EMA: m->ema = 1; break;
    case GLOW_OPT_BATCH: m->batch = glow_opt_long("--batch", arg, 1, 65536); break;
    case GLOW_OPT_DEVICE: m->device = arg; break;
    case GLOW_OPT_MEM: glow_tool_mem_limit(arg); break;
    case GLOW_OPT_TIMES:
        if (strcmp(arg, "-") == 0 || !*arg)
            glow_usage_error("--times needs a file name: standard output carries the tool's "
                             "results (/dev/stderr shows the lines on the terminal)");
        m->times = arg;
        break;
    case GLOW_OPT_VERSION: glow_tool_print_version();
    case 'v': m->verbose = 1; break;
    case ':': glow_usage_error("option '%s' needs a value", argv[optind - 1]);
    default: glow_usage_error("unknown option '%s'", argv[optind - 1]);
    }
}
