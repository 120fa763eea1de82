#include "train_log.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int glow_train_log_open(glow_train_log *lg, const char *run_dir, int quiet, glow_error *err)
{
    memset(lg, 0, sizeof *lg);
    size_t n = strlen(run_dir) + 16;
    lg->path = xmalloc(n);
    snprintf(lg->path, n, "%s/log.jsonl", run_dir);
    lg->f = fopen(lg->path, "a");
    if (!lg->f) {
        glow_errorf(err, "%s: %s", lg->path, strerror(errno));
        free(lg->path);
        lg->path = NULL;
        return -1;
    }
    lg->tty = stderr_is_tty();
    lg->quiet = quiet;
    lg->val_bpd = lg->val_bpd_ema = NAN;
    return 0;
}

static void end_progress(glow_train_log *lg)
{
    if (lg->progress_shown) {
        fputc('\n', stderr);
        lg->progress_shown = 0;
    }
}

void glow_train_log_silent(glow_train_log *lg)
{
    memset(lg, 0, sizeof *lg);
    lg->quiet = lg->silent = 1;
    lg->val_bpd = lg->val_bpd_ema = NAN;
}

void glow_train_log_close(glow_train_log *lg)
{
    end_progress(lg);
    if (lg->f && fclose(lg->f) != 0 && !lg->write_failed)
        glow_warn("%s: %s", lg->path, strerror(errno));
    lg->f = NULL;
    free(lg->path);
    lg->path = NULL;
}

const char *glow_json_num(char buf[32], double v)
{
    if (!isfinite(v))
        return "null";
    snprintf(buf, 32, "%.8g", v);
    return buf;
}

void glow_train_log_json(glow_train_log *lg, const char *fmt, ...)
{
    if (!lg->f)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputc('{', lg->f);
    vfprintf(lg->f, fmt, ap);
    fputs("}\n", lg->f);
    va_end(ap);
    /* Flushed per line: a killed run leaves whole lines up to its last step. */
    if ((fflush(lg->f) != 0 || ferror(lg->f)) && !lg->write_failed) {
        lg->write_failed = 1;
        glow_warn("%s: %s; training goes on without the log", lg->path, strerror(errno));
    }
}

/* ", val 3.9612 (EMA 4.7701)" after the first validation, else "". */
static void val_text(const glow_train_log *lg, char *buf, size_t n)
{
    buf[0] = '\0';
    if (isnan(lg->val_bpd))
        return;
    if (isnan(lg->val_bpd_ema))
        snprintf(buf, n, ", val %.4f", lg->val_bpd);
    else
        snprintf(buf, n, ", val %.4f (EMA %.4f)", lg->val_bpd, lg->val_bpd_ema);
}

void glow_train_log_stats(glow_train_log *lg, const glow_train_stats *s)
{
    char a[32], b[32], c[32], d[32], e[400] = "";
    if (s->has_inv_error) {
        /* %.3g keeps the line short; the threshold check uses the full value.
         * Per level too: the drift grows with the steps a rebuilt input passes
         * through, and the levels differ in size and depth of what they hand on. */
        size_t o = 0;
        o += (size_t)snprintf(e + o, sizeof e - o, ",\"inv_error\":");
        o += isfinite(s->inv_error) ? (size_t)snprintf(e + o, sizeof e - o, "%.3g", s->inv_error)
                                    : (size_t)snprintf(e + o, sizeof e - o, "null");
        o += (size_t)snprintf(e + o, sizeof e - o, ",\"inv_error_levels\":[");
        for (int l = 0; l < s->n_levels && o < sizeof e - 16; l++)
            o += isfinite(s->inv_level[l])
                     ? (size_t)snprintf(e + o, sizeof e - o, "%s%.3g", l ? "," : "", s->inv_level[l])
                     : (size_t)snprintf(e + o, sizeof e - o, "%snull", l ? "," : "");
        snprintf(e + o, sizeof e - o, "]");
    }
    glow_train_log_json(lg,
                        "\"step\":%ld,\"images\":%lld,\"loss\":%s,\"bpd\":%s,\"lr\":%s,"
                        "\"grad_norm\":%s,\"images_per_s\":%.1f,\"seconds\":%.1f%s",
                        s->step, (long long)s->images, glow_json_num(a, s->loss),
                        glow_json_num(b, s->bpd), glow_json_num(c, s->lr),
                        glow_json_num(d, s->grad_norm), s->images_per_s, s->seconds, e);
    if (lg->quiet || lg->tty || lg->silent)
        return;
    char val[64];
    val_text(lg, val, sizeof val);
    fprintf(stderr, "%s: step %ld/%ld: loss %.4f bpd %.4f lr %.3g grad %.3g, %.1f img/s%s\n",
            glow_progname(), s->step, s->total_steps, s->loss, s->bpd, s->lr, s->grad_norm,
            s->images_per_s, val);
}

void glow_train_log_progress(glow_train_log *lg, long step, long total, double bpd,
                             double images_per_s, double eta_s)
{
    if (!lg->tty || lg->quiet)
        return;
    double now = now_seconds();
    if (step < total && lg->progress_shown && now - lg->progress_at < 0.1)
        return;
    lg->progress_at = now;
    long eta = isfinite(eta_s) && eta_s >= 0 ? (long)(eta_s + 0.5) : 0;
    char val[64] = "";
    if (!isnan(lg->val_bpd) && isnan(lg->val_bpd_ema))
        snprintf(val, sizeof val, "  val %.4f", lg->val_bpd);
    else if (!isnan(lg->val_bpd))
        snprintf(val, sizeof val, "  val %.4f ema %.4f", lg->val_bpd, lg->val_bpd_ema);
    fprintf(stderr, "\r%s: step %ld/%ld  bpd %.4f%s  %.1f img/s  ETA %ld:%02ld:%02ld\033[K",
            glow_progname(), step, total, bpd, val, images_per_s, eta / 3600, eta / 60 % 60,
            eta % 60);
    fflush(stderr);
    lg->progress_shown = 1;
}

void glow_train_log_msg(glow_train_log *lg, int routine, const char *fmt, ...)
{
    if (lg->silent || (routine && lg->quiet))
        return;
    end_progress(lg);
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one write: the lines of processes sharing a stderr do not interleave */
    fprintf(stderr, "%s: %s%s\n", glow_progname(), glow_message_prefix(), msg);
}
