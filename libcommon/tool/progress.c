#include "progress.h"

#include <stdarg.h>

void glow_progress_init(glow_progress *p, int quiet)
{
    p->out = stderr_is_tty() && !quiet ? stderr : NULL;
    p->shown = 0;
    p->last = now_seconds();
    p->interval = 0.5;
}

int glow_progress_draw(glow_progress *p, int force, const char *fmt, ...)
{
    if (!p->out)
        return 0;
    double t = now_seconds();
    if (!force && t - p->last < p->interval)
        return 0;
    p->last = t;
    fprintf(p->out, "\r%s: ", glow_progname());
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->out, fmt, ap);
    va_end(ap);
    fflush(p->out);
    p->shown = 1;
    return 1;
}

void glow_progress_end(glow_progress *p)
{
    if (p->out && p->shown)
        fputc('\n', p->out);
    p->shown = 0;
}
