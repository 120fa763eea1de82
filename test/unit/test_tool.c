/* The tool start-up (libcommon/tool/): the version string, the progress line,
 * temporary files removed on signals and exit, glow-train's stop flag, the
 * OpenMP wait-policy restart, and the refusal to write binary data to a
 * terminal. Behaviours that end a process run in a child. */
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "check.h"
#include "tool/progress.h"
#include "tool/tool.h"

static char tmpdir[256];
static char *self_argv0;
static int ignore_hup; /* the child starts with SIGHUP ignored, as under nohup */

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void test_version(void)
{
    const char *v = glow_version();
    CHECK(v && *v);
    CHECKF(strpbrk(v, " \t\n\"") == NULL, "'%s'", v);
}

static void test_progress(void)
{
    glow_progress p;
    glow_progress_init(&p, 1);
    CHECK(p.out == NULL);                        /* quiet: no line */
    CHECK(glow_progress_draw(&p, 1, "x") == 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    p.out = m;
    p.interval = 1000;
    CHECK(glow_progress_draw(&p, 0, "%d images", 1) == 0); /* too soon */
    CHECK(!p.shown);
    glow_progress_end(&p);                       /* nothing up: nothing written */
    CHECK(glow_progress_draw(&p, 1, "%d images", 2) == 1);
    CHECK(p.shown);
    p.interval = 0;
    CHECK(glow_progress_draw(&p, 0, "%d images", 3) == 1);
    glow_progress_end(&p);
    glow_progress_end(&p);
    CHECK(!p.shown);
    fclose(m);
    CHECKF(strcmp(buf, "\rtest_tool: 2 images\rtest_tool: 3 images\n") == 0, "'%s'", buf);
    free(buf);
}

/* A child that opens an atomic file and then ends by how(): the temporary file
 * must be gone, and the final name never made. Returns the wait status. */
static int temp_left(void (*how)(void), int *left)
{
    char path[300], tmp[320];
    snprintf(path, sizeof path, "%s/out.bin", tmpdir);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = {"test_tool", NULL};
        /* the dispositions a terminal gives: a test run in the background (sh's
         * '&' ignores SIGINT) or under nohup (SIGHUP) starts with them ignored,
         * which the tool keeps, and the child would wait in pause() for ever */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, ignore_hup ? SIG_IGN : SIG_DFL);
        glow_tool_start(1, argv, 0);
        atomic_file af;
        glow_error err;
        if (atomic_open(&af, path, &err) != 0)
            _exit(3);
        fputs("partial", af.f);
        fflush(af.f);
        snprintf(tmp, sizeof tmp, "%s/.out.bin.tmp.%ld", tmpdir, (long)getpid());
        if (!exists(tmp))
            _exit(4);
        how();
        _exit(5);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    snprintf(tmp, sizeof tmp, "%s/.out.bin.tmp.%ld", tmpdir, (long)pid);
    *left = exists(tmp) + exists(path);
    unlink(tmp);
    return st;
}

static void by_sigterm(void) { kill(getpid(), SIGTERM); pause(); }
static void by_sigint(void) { raise(SIGINT); pause(); }
static void by_sighup(void) { raise(SIGHUP); pause(); }
static void by_exit(void) { exit(1); }
static void by_ignored_hup(void) { raise(SIGHUP); exit(8); }

static void test_cleanup(void)
{
    int left, st;
    st = temp_left(by_sigterm, &left);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %#x", st);
    CHECK(left == 0);
    st = temp_left(by_sigint, &left);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
    CHECK(left == 0);
    st = temp_left(by_sighup, &left);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGHUP, "status %#x", st);
    CHECK(left == 0);
    st = temp_left(by_exit, &left);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %#x", st);
    CHECK(left == 0);
    ignore_hup = 1; /* stays ignored: the child goes on to exit(8) */
    st = temp_left(by_ignored_hup, &left);
    ignore_hup = 0;
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 8, "status %#x", st);
    CHECK(left == 0);
}

/* glow-train's signals: the first sets the flag, the second ends the tool. */
static void by_two_signals(void)
{
    volatile sig_atomic_t *stop = glow_tool_catch_stop();
    if (*stop != 0)
        _exit(6);
    kill(getpid(), SIGTERM);
    if (*stop != SIGTERM)
        _exit(7);
    kill(getpid(), SIGINT);
    pause();
}

static void test_catch_stop(void)
{
    int left;
    int st = temp_left(by_two_signals, &left);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT, "status %#x", st);
    CHECK(left == 0);
}

/* Runs this program again as "--omp-child" with the environment given, and
 * returns what it saw after glow_tool_omp_policy: OMP_WAIT_POLICY and
 * GOMP_SPINCOUNT, as "policy/spincount" ('-' for one not set). */
static void omp_child_env(const char *policy, const char *spincount, const char *var, const char *val,
                          int passive, char *out, size_t n)
{
    int fd[2];
    out[0] = 0;
    if (pipe(fd) != 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], STDOUT_FILENO);
        policy ? setenv("OMP_WAIT_POLICY", policy, 1) : unsetenv("OMP_WAIT_POLICY");
        spincount ? setenv("GOMP_SPINCOUNT", spincount, 1) : unsetenv("GOMP_SPINCOUNT");
        if (var)
            setenv(var, val, 1);
        char *argv[] = {self_argv0, "--omp-child", passive ? "--passive" : NULL, NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], out, n - 1);
    out[got > 0 ? got : 0] = 0;
    close(fd[0]);
    waitpid(pid, NULL, 0);
}

static void omp_child(const char *policy, const char *spincount, char *out, size_t n)
{
    omp_child_env(policy, spincount, NULL, NULL, 0, out, n);
}

static void test_omp_policy(void)
{
    char out[64];
    omp_child(NULL, NULL, out, sizeof out); /* restarted with one of the two set */
    CHECKF(strcmp(out, "passive/-") == 0 || strcmp(out, "-/20000") == 0, "'%s'", out);
    omp_child("active", NULL, out, sizeof out);
    CHECKF(strcmp(out, "active/-") == 0, "'%s'", out); /* the user's wins */
    omp_child(NULL, "1000", out, sizeof out);
    CHECKF(strcmp(out, "-/1000") == 0, "'%s'", out);   /* so does a spin count */
    /* More threads than CPUs, whatever the load: passive. */
    omp_child_env(NULL, NULL, "OMP_NUM_THREADS", "100000", 0, out, sizeof out);
    CHECKF(strcmp(out, "passive/-") == 0, "'%s'", out);
    /* A launcher's 100000 processes on this machine, one thread each at least. */
    omp_child_env(NULL, NULL, "OMPI_COMM_WORLD_LOCAL_SIZE", "100000", 0, out, sizeof out);
    CHECKF(strcmp(out, "passive/-") == 0, "'%s'", out);
    omp_child_env(NULL, NULL, "PMI_SIZE", "100000", 0, out, sizeof out);
    CHECKF(strcmp(out, "passive/-") == 0, "'%s'", out);
    /* GLOW_TOOL_OMP_PASSIVE: passive whatever the load; a user's policy still wins */
    omp_child_env(NULL, NULL, NULL, NULL, 1, out, sizeof out);
    CHECKF(strcmp(out, "passive/-") == 0, "'%s'", out);
    omp_child_env(NULL, "300", NULL, NULL, 1, out, sizeof out);
    CHECKF(strcmp(out, "-/300") == 0, "'%s'", out);
    /* the string logs give it */
    char w[64];
    setenv("OMP_WAIT_POLICY", "passive", 1);
    glow_tool_omp_wait_str(w, sizeof w);
    CHECKF(strcmp(w, "OMP_WAIT_POLICY=passive") == 0, "'%s'", w);
    setenv("GOMP_SPINCOUNT", "20000", 1);
    glow_tool_omp_wait_str(w, sizeof w);
    CHECKF(strcmp(w, "OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=20000") == 0, "'%s'", w);
    unsetenv("OMP_WAIT_POLICY");
    glow_tool_omp_wait_str(w, sizeof w);
    CHECKF(strcmp(w, "GOMP_SPINCOUNT=20000") == 0, "'%s'", w);
    setenv("GOMP_SPINCOUNT", "1\"\\\n", 1); /* made safe for a JSON string */
    glow_tool_omp_wait_str(w, sizeof w);
    CHECKF(strcmp(w, "GOMP_SPINCOUNT=1???") == 0, "'%s'", w);
    unsetenv("GOMP_SPINCOUNT");
    glow_tool_omp_wait_str(w, sizeof w);
    CHECKF(strcmp(w, "libgomp's default") == 0, "'%s'", w);

    /* The rule: spin only where the job's threads find free CPUs. */
    CHECK(glow_omp_spin_fits(0, 2, 2));
    CHECK(glow_omp_spin_fits(1, 2, 4));
    CHECK(!glow_omp_spin_fits(1, 2, 2));  /* one other busy task on 2 CPUs */
    CHECK(!glow_omp_spin_fits(0, 4, 2));  /* more threads than CPUs */
    CHECK(!glow_omp_spin_fits(0, 0, 2));
    CHECK(!glow_omp_spin_fits(-1, 2, 2)); /* the load unknown */
}

/* glow_tool_no_terminal with standard output on a pseudo-terminal, then on a
 * pipe: exit 2 and the message, then nothing. */
static void test_no_terminal(void)
{
    int err_pipe[2];
    if (pipe(err_pipe) != 0)
        return;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        printf("tool: skipped the terminal case: no pseudo-terminal\n");
        return;
    }
    const char *slave = ptsname(master);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int s = open(slave, O_RDWR | O_NOCTTY);
        if (s < 0)
            _exit(9);
        dup2(s, STDOUT_FILENO);
        dup2(err_pipe[1], STDERR_FILENO);
        glow_set_progname("glow-x");
        glow_tool_no_terminal("binary data", "redirect it");
        _exit(0);
    }
    close(err_pipe[1]);
    char msg[256];
    ssize_t got = read(err_pipe[0], msg, sizeof msg - 1);
    msg[got > 0 ? got : 0] = 0;
    close(err_pipe[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    close(master);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %#x", st);
    CHECKF(strcmp(msg, "glow-x: refusing to write binary data to a terminal; redirect it\n") == 0,
           "'%s'", msg);

    /* Not a terminal: it returns. */
    int fd[2];
    if (pipe(fd) != 0)
        return;
    int saved = dup(STDOUT_FILENO);
    fflush(stdout);
    dup2(fd[1], STDOUT_FILENO);
    glow_tool_no_terminal("binary data", "redirect it");
    dup2(saved, STDOUT_FILENO);
    close(saved);
    close(fd[0]);
    close(fd[1]);
    CHECK(1);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--omp-child")) {
        glow_tool_omp_policy(argv, argc > 2 && !strcmp(argv[2], "--passive"));
        const char *v = getenv("OMP_WAIT_POLICY"), *c = getenv("GOMP_SPINCOUNT");
        printf("%s/%s", v ? v : "-", c ? c : "-");
        return 0;
    }
    self_argv0 = argv[0];
    glow_set_progname("test_tool");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_tool.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_version();
    test_progress();
    test_cleanup();
    test_catch_stop();
    test_omp_policy();
    test_no_terminal();
    rmdir(tmpdir);
    return check_summary();
}
