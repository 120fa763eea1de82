// The emulator's tests of its own refusals: a call that must abort() is run in
// a child process, and its stderr is searched for the message (test_emu.cu,
// test_emu_nccl.cu).
#ifndef GLOW_EMU_DIES_WITH_H
#define GLOW_EMU_DIES_WITH_H

#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

// Runs f in a child process; true when it died of abort() with `msg` in its stderr.
static inline bool dies_with(const char *what, const char *msg, const std::function<void()> &f)
{
    int fd[2];
    if (pipe(fd) != 0)
        return false;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        close(fd[1]);
        f();
        _exit(0);
    }
    close(fd[1]);
    std::string err;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0)
        err.append(buf, (size_t)n);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && err.find(msg) != std::string::npos;
    if (!ok)
        fprintf(stderr, "%s: expected an abort with \"%s\", got status %d and stderr:\n%s\n", what,
                msg, st, err.c_str());
    return ok;
}

#endif
