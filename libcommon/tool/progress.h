/* The progress line of a tool: "\rPROG: TEXT" redrawn in place on stderr, only
 * when stderr is a terminal (a log file or pipe gets none), at most twice a
 * second. A message while it is up ends it first (glow_progress_end). */
#ifndef GLOW_PROGRESS_H
#define GLOW_PROGRESS_H

#include <stdio.h>

#include "base/util.h"

typedef struct {
    FILE *out;       /* stderr; NULL: no progress line */
    int shown;       /* a line without its newline is up */
    double last;     /* when it was last drawn (or started) */
    double interval; /* seconds between drawings */
} glow_progress;

/* A progress line on stderr when it is a terminal and not quiet; the first
 * drawing comes half a second from now. */
void glow_progress_init(glow_progress *p, int quiet);
/* Draw TEXT when the interval has passed since the last drawing, or at once
 * with force. Returns 1 when drawn. */
int glow_progress_draw(glow_progress *p, int force, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* End the line with a newline when one is up. */
void glow_progress_end(glow_progress *p);

#endif
