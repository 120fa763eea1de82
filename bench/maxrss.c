/* Runs a command and writes its peak resident set size (KiB, ru_maxrss of wait4)
 * and its CPU time (seconds, user + system, of it and its waited-for children)
 * to a file, one line "KIB SECONDS": maxrss OUT CMD [ARGS...]; exits with the
 * command's status.
 *
 * For make bench (run_bench.py), which cannot measure this itself: Linux records
 * the peak RSS of the memory image a process leaves at exec, and a child forked
 * from the benchmark's Python (PyTorch imported, ~250 MiB) starts as a copy of
 * it, so every command's ru_maxrss would read at least that. This small
 * program's own image is what its child copies. The CPU time lets make bench
 * compare work done independently of how much of the machine others hold. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: maxrss OUT CMD [ARGS...]\n");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("maxrss: fork");
        return 2;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("maxrss: wait4");
        return 2;
    }
    FILE *f = fopen(argv[1], "w");
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec * 1e-6;
    if (!f || fprintf(f, "%ld %.6f\n", ru.ru_maxrss, cpu) < 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 2;
    }
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
