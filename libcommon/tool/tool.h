/* The start-up every tool shares: the program name, signals, the OpenMP wait
 * policy, --version, and the terminal (no binary data written to one). The
 * progress line, drawn on a terminal only, is in progress.h. */
#ifndef GLOW_TOOL_H
#define GLOW_TOOL_H

#include <signal.h>

#include "base/util.h"

/* Flags of glow_tool_start. */
enum {
    /* The tool computes with the CPU backend (OpenMP): restart it with the
     * wait policy glow_tool_omp_policy chooses, unless the user chose one. */
    GLOW_TOOL_OPENMP = 1 << 0,
    /* With GLOW_TOOL_OPENMP: passive whatever the load, for programs that
     * measure CPU time (bench/): Linux counts a spinning thread's time at the
     * scheduler's ticks, up to a tick late, a sleeping one's when it sleeps. */
    GLOW_TOOL_OMP_PASSIVE = 1 << 1,
};

/* The first thing in main. Sets the name messages start with (glow_progname),
 * then, with GLOW_TOOL_OPENMP, restarts the program as glow_tool_omp_policy
 * does, then makes SIGINT, SIGTERM, SIGHUP and SIGPIPE, and exit, remove the
 * temporary files of atomic files still open (base/atomic_file.h); a signal then
 * ends the tool as it would have without the handler. A signal ignored when the
 * tool starts (nohup; SIGINT of a background job) stays ignored. */
void glow_tool_start(int argc, char **argv, unsigned flags);

/* libgomp's waiting threads spin before they sleep: on cores shared with other
 * busy processes that costs 5-20x, and sleeping costs 5-15% on a machine of
 * the tool's own (bench/README.md, "Load"). libgomp reads the policy from the
 * environment before main, so the only way to choose is to start the program
 * again with it set: done here (execv of the program with the same argv, same
 * pid) when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set (a user's setting
 * wins): GOMP_SPINCOUNT=20000 (a short spin) when the job's threads (those of
 * all its processes on this machine, as a launcher's variables count them) fit
 * on the cores other running tasks leave (glow_omp_spin_fits, from /proc/stat
 * when the tool starts), else OMP_WAIT_POLICY=passive (always, with passive).
 * Call it before reading or writing anything. The restarted process keeps its
 * name (it is started by its own path). Returns when nothing needs doing, or
 * when the restart is not possible. */
void glow_tool_omp_policy(char **argv, int passive);

/* The wait policy this process runs with, for logs: "OMP_WAIT_POLICY=passive",
 * "GOMP_SPINCOUNT=20000" (both when both are set), or "libgomp's default";
 * quotes, backslashes and bytes outside printable ASCII of the user's values
 * as '?', so that it can go into a JSON string. */
void glow_tool_omp_wait_str(char *buf, size_t n);

/* Whether threads that spin cost nothing to others: others_running tasks besides
 * this one are running, the job runs job_threads threads (all its processes on
 * this machine), and cpus CPUs are there for it. */
int glow_omp_spin_fits(int others_running, int job_threads, int cpus);

/* glow-train's signals: from now on the first SIGINT or SIGTERM (even when it
 * was ignored) only sets the returned flag to the signal's number (the tool
 * stops at a safe point); a second one ends the tool at once, temporary files
 * removed. */
volatile sig_atomic_t *glow_tool_catch_stop(void);

/* --mem-limit MiB: the memory budget of base/mem_budget.h (at most the memory
 * available). A value that is not a positive number of MiB is a usage error. */
void glow_tool_mem_limit(const char *arg);
/* This build's version: `git describe --tags --always --dirty` of the checkout
 * at build time, or the VERSION file without git (scripts/version.sh). */
const char *glow_version(void);
/* --version: "PROG (Glow in C and CUDA) VERSION" on standard output, exit 0. */
GLOW_NORETURN void glow_tool_print_version(void);

/* Before writing binary data to standard output: when it is a terminal, print
 * "PROG: refusing to write WHAT to a terminal; HOW" and exit 2 (usage). */
void glow_tool_no_terminal(const char *what, const char *how);

/* Before writing out (a file; NULL or "-": standard output): when it is the file
 * also (a checkpoint read; NULL: none) or one of the n inputs (none: standard
 * input) -- the same file by device and inode, base/path.h -- print "PROG: OUT:
 * is also the input INPUT; writing it would destroy the input: write to another
 * file" and exit 1. Call it before anything is written. */
void glow_tool_no_overwrite(const char *out, const char *also, int n, char *const *inputs);

/* The options every tool that runs a checkpoint's model shares (glow-bpd,
 * glow-sample, glow-encode, glow-decode): --ema, --batch N (1..65536), --device D,
 * --mem-limit MiB, --times FILE (a file, not "-": tool/batch_times.h), -v,
 * --version. GLOW_TOOL_MODEL_LONGOPTS goes into the tool's getopt_long table;
 * glow_tool_model_opt takes getopt_long's answer for any option the tool's own
 * switch did not handle: one of these, or ':' (a missing value) and anything
 * else (an unknown option), which are usage errors. */
enum {
    GLOW_OPT_EMA = 0x4000, GLOW_OPT_BATCH, GLOW_OPT_DEVICE, GLOW_OPT_MEM, GLOW_OPT_TIMES,
    GLOW_OPT_VERSION
};
#define GLOW_TOOL_MODEL_LONGOPTS                                                                   \
    {"ema", no_argument, 0, GLOW_OPT_EMA}, {"batch", required_argument, 0, GLOW_OPT_BATCH},       \
        {"device", required_argument, 0, GLOW_OPT_DEVICE},                                         \
        {"mem-limit", required_argument, 0, GLOW_OPT_MEM},                                         \
        {"times", required_argument, 0, GLOW_OPT_TIMES},                                           \
        {"version", no_argument, 0, GLOW_OPT_VERSION}
typedef struct {
    int ema, verbose;
    long batch;
    const char *device;
    const char *times; /* --times FILE, or NULL */
} glow_tool_model_opts;
void glow_tool_model_opt(int c, const char *arg, char **argv, glow_tool_model_opts *m);

/* The operands of a tool that reads a checkpoint and then data (glow-encode,
 * glow-decode): CKPT [INPUTS...] from argv[first], device checked
 * (device/device.h). Usage errors: no CKPT ("missing the checkpoint (CKPT)"), a
 * bad device, both CKPT and the data ("-" or no INPUTS) on standard input, or
 * data expected from a terminal. data names them in the messages ("the
 * images"), stream what standard input should carry ("a shard stream"), operand
 * the usage's name for INPUTS ("IMAGES"). */
typedef struct {
    const char *ckpt;
    char **inputs;
    int ninputs;
} glow_tool_operands;
void glow_tool_ckpt_operands(int argc, char **argv, int first, const char *device, const char *data,
                             const char *stream, const char *operand, glow_tool_operands *out);

#endif
