#include "train_curves.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/path.h"

extern char **environ;

static void add(glow_series *s, double x, double y)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = xrealloc(s->x, (size_t)s->cap * sizeof *s->x);
        s->y = xrealloc(s->y, (size_t)s->cap * sizeof *s->y);
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

/* Drop the points past step x (a session resumed from an earlier checkpoint). */
static void cut(glow_series *s, double x)
{
    while (s->n > 0 && s->x[s->n - 1] > x)
        s->n--;
}

static void add_num(glow_series *s, double x, const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
        add(s, x, v->valuedouble);
}

static glow_series *all_series(glow_run_curves *c, int i)
{
    glow_series *s[] = {&c->train_bpd, &c->lr, &c->grad_norm, &c->images_per_s, &c->val_bpd,
                        &c->val_bpd_ema};
    return i < 6 ? s[i] : NULL;
}

/* One line of the log. Returns 0, or -1 with why set. */
static int read_line(glow_run_curves *c, const char *line, char *why, size_t n)
{
    cJSON *o = cJSON_Parse(line);
    if (!cJSON_IsObject(o)) {
        snprintf(why, n, "not a JSON object");
        cJSON_Delete(o);
        return -1;
    }
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
    if (!cJSON_IsNumber(st) || st->valuedouble < 0 || st->valuedouble != floor(st->valuedouble)) {
        snprintf(why, n, "no integer \"step\"");
        cJSON_Delete(o);
        return -1;
    }
    const double x = st->valuedouble;
    if (cJSON_GetObjectItemCaseSensitive(o, "start"))
        for (int i = 0; all_series(c, i); i++)
            cut(all_series(c, i), x);
    if (cJSON_GetObjectItemCaseSensitive(o, "loss") && !cJSON_GetObjectItemCaseSensitive(o, "skipped")) {
        add_num(&c->train_bpd, x, o, "bpd");
        add_num(&c->lr, x, o, "lr");
        add_num(&c->grad_norm, x, o, "grad_norm");
        add_num(&c->images_per_s, x, o, "images_per_s");
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "val_bpd")) {
        int legacy_ema = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ema"));
        add_num(legacy_ema ? &c->val_bpd_ema : &c->val_bpd, x, o, "val_bpd");
        add_num(&c->val_bpd_ema, x, o, "val_bpd_ema");
    }
    cJSON_Delete(o);
    return 0;
}

int glow_curves_read(const char *run, glow_run_curves *c, glow_error *err)
{
    memset(c, 0, sizeof *c);
    size_t len = strlen(run);
    while (len > 1 && run[len - 1] == '/')
        len--;
    c->name = xmalloc(len + 1);
    memcpy(c->name, run, len);
    c->name[len] = '\0';
    c->log = glow_is_dir(run) ? glow_path_join(c->name, "log.jsonl") : xstrdup(run);
    FILE *f = fopen(c->log, "rb");
    if (!f) {
        glow_errorf(err, "%s: %s", c->log, strerror(errno));
        glow_curves_free(c);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    long no = 0;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) > 0) {
        no++;
        int whole = line[got - 1] == '\n';
        char why[128];
        if (got == 1 && whole)
            continue;
        if (read_line(c, line, why, sizeof why) != 0) {
            if (!whole && fgetc(f) == EOF) { /* cut short by a kill: the run's last words */
                c->truncated = 1;
                break;
            }
            glow_errorf(err, "%s: line %ld: %s", c->log, no, why);
            rc = -1;
        }
    }
    if (rc == 0 && ferror(f)) {
        glow_errorf(err, "%s: read error", c->log);
        rc = -1;
    }
    free(line);
    fclose(f);
    if (rc == 0 && !c->train_bpd.n && !c->val_bpd.n && !c->val_bpd_ema.n) {
        glow_errorf(err, "%s: no training or validation lines (train.log_every 0, or a run that "
                         "has not logged yet)", c->log);
        rc = -1;
    }
    if (rc != 0)
        glow_curves_free(c);
    return rc;
}

void glow_curves_free(glow_run_curves *c)
{
    for (int i = 0; all_series(c, i); i++) {
        free(all_series(c, i)->x);
        free(all_series(c, i)->y);
    }
    free(c->name);
    free(c->log);
    memset(c, 0, sizeof *c);
}

/* ---- the gnuplot script ---- */

/* A gnuplot string in double quotes: backslash and quote escaped. */
static void put_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

static void put_block(FILE *f, const char *name, int run, const glow_series *s)
{
    fprintf(f, "$%s%d << EOD\n", name, run);
    for (int i = 0; i < s->n; i++)
        fprintf(f, "%.17g %.9g\n", s->x[i], s->y[i]);
    fputs("EOD\n", f);
}

typedef struct {
    const char *title, *ylabel;
    int log;                 /* log scale (only positive values are drawn) */
} panel;

/* One panel: every run's series k (and for the bpd panel the validation ones). */
static void put_panel(FILE *f, const panel *p, const glow_run_curves *runs, int n, const char *block,
                      size_t off, int bpd)
{
    fprintf(f, "set title ");
    put_string(f, p->title);
    fprintf(f, "\nset ylabel ");
    put_string(f, p->ylabel);
    fputc('\n', f);
    /* A log scale where it helps: values over more than a decade (an early bpd of
     * 50 before 3s, spikes of the gradient norm), with tics a factor 2 apart while
     * the range is under two decades; a linear scale otherwise. */
    double lo = INFINITY, hi = 0;
    for (int r = 0; r < n; r++) {
        const glow_series *ss[3] = {(const glow_series *)((const char *)&runs[r] + off),
                                    &runs[r].val_bpd, &runs[r].val_bpd_ema};
        for (int k = 0; k < (bpd ? 3 : 1); k++)
            for (int i = 0; i < ss[k]->n; i++)
                if (ss[k]->y[i] > 0) {
                    lo = fmin(lo, ss[k]->y[i]);
                    hi = fmax(hi, ss[k]->y[i]);
                }
    }
    int log = p->log && hi >= 10 * lo;
    if (log && hi < 100 * lo)
        fprintf(f, "set logscale y\nset ytics %g, 2\n", pow(10, floor(log10(lo))));
    else if (log)
        fputs("set logscale y\nset ytics autofreq\n", f);
    else
        fputs("unset logscale y\nset ytics autofreq\n", f);
    /* Head room above the curves for the key (opaque, top right), one line per
     * entry: without it a learning rate at its plateau or a falling bpd's start
     * runs under the key. */
    int entries = 0;
    for (int r = 0; r < n; r++) {
        const glow_series *ss[3] = {(const glow_series *)((const char *)&runs[r] + off),
                                    &runs[r].val_bpd, &runs[r].val_bpd_ema};
        for (int k = 0; k < (bpd ? 3 : 1); k++)
            entries += ss[k]->n > 0;
    }
    fprintf(f, "set offsets 0, 0, graph %.3f, graph 0.08\n", fmin(0.08 + 0.075 * entries, 0.6));
    int items = 0;
    for (int r = 0; r < n; r++) {
        const glow_series *s = (const glow_series *)((const char *)&runs[r] + off);
        const char *kinds[3] = {block, "val", "vema"};
        const glow_series *ss[3] = {s, &runs[r].val_bpd, &runs[r].val_bpd_ema};
        const char *what[3] = {bpd ? "train" : "", "validation", "validation, EMA"};
        for (int k = 0; k < (bpd ? 3 : 1); k++) {
            if (!ss[k]->n)
                continue;
            fprintf(f, "%s$%s%d using 1:%s ", items++ ? ", \\\n     " : "plot ", kinds[k], r,
                    log ? "($2 > 0 ? $2 : NaN)" : "2");
            if (k == 0)
                fprintf(f, "with lines lw 1.5 dt 1 lc %d", r + 1);
            else
                fprintf(f, "with linespoints lw 1.5 dt %d pt %d ps 0.7 lc %d", k == 1 ? 2 : 3,
                        k == 1 ? 7 : 6, r + 1);
            char t[600];
            if (n > 1 && what[k][0])
                snprintf(t, sizeof t, "%s: %s", runs[r].name, what[k]);
            else
                snprintf(t, sizeof t, "%s", n > 1 ? runs[r].name : what[k][0] ? what[k] : p->ylabel);
            fprintf(f, " title ");
            put_string(f, t);
        }
    }
    if (!items) /* nothing logged for this panel: an empty frame */
        fputs("set yrange [1:10]\nplot 1e9 notitle\nset autoscale yfix", f);
    fputc('\n', f);
}

char *glow_plot_script(const glow_run_curves *runs, int n, const glow_plot_opts *o)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        glow_die(EXIT_BADINPUT, "out of memory writing the plot");
    if (o->svg)
        fprintf(f, "set terminal svg size %d,%d dynamic noenhanced font \"sans,11\" background "
                   "\"white\"\n", o->width, o->height);
    else
        fprintf(f, "set terminal pngcairo size %d,%d noenhanced font \"sans,10\" background "
                   "\"white\"\n", o->width, o->height);
    fputs("set encoding utf8\n", f);
    for (int r = 0; r < n; r++) {
        put_block(f, "bpd", r, &runs[r].train_bpd);
        put_block(f, "lr", r, &runs[r].lr);
        put_block(f, "grad", r, &runs[r].grad_norm);
        put_block(f, "ips", r, &runs[r].images_per_s);
        put_block(f, "val", r, &runs[r].val_bpd);
        put_block(f, "vema", r, &runs[r].val_bpd_ema);
    }
    fputs("set multiplot layout 2,2 title ", f);
    char title[512] = "Glow training";
    if (n == 1)
        snprintf(title, sizeof title, "Glow training: %s", runs[0].name);
    else
        snprintf(title, sizeof title, "Glow training: %d runs", n);
    put_string(f, title);
    fputs("\nset grid\nset key top right box opaque\nset xlabel \"step\"\nset format y \"%g\"\n"
          "set xrange [0:*]\nset autoscale yfix\n"
          "set mytics\n", f);
    const panel panels[4] = {{"bits per dimension", "bpd", 1},
                             {"learning rate", "learning rate", 0},
                             {"gradient norm (before clipping)", "gradient L2 norm", 1},
                             {"throughput", "images per second", 0}};
    put_panel(f, &panels[0], runs, n, "bpd", offsetof(glow_run_curves, train_bpd), 1);
    put_panel(f, &panels[1], runs, n, "lr", offsetof(glow_run_curves, lr), 0);
    put_panel(f, &panels[2], runs, n, "grad", offsetof(glow_run_curves, grad_norm), 0);
    put_panel(f, &panels[3], runs, n, "ips", offsetof(glow_run_curves, images_per_s), 0);
    fputs("unset multiplot\n", f);
    if (fclose(f) != 0)
        glow_die(EXIT_BADINPUT, "out of memory writing the plot");
    return out;
}

/* ---- running gnuplot ---- */

int glow_plot_run(const char *script, int out_fd, glow_error *err)
{
    const char *prog = getenv("GLOW_GNUPLOT");
    if (!prog || !*prog)
        prog = "gnuplot";
    int in[2];
    FILE *errf = tmpfile();
    if (!errf || pipe(in) != 0) {
        glow_errorf(err, "cannot start %s: %s", prog, strerror(errno));
        if (errf)
            fclose(errf);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, fileno(errf), STDERR_FILENO);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    char *argv[] = {(char *)prog, NULL};
    pid_t pid;
    int e = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    if (e != 0) {
        close(in[1]);
        fclose(errf);
        if (e == ENOENT)
            glow_errorf(err, "%s: not found; glow-plot draws with gnuplot (Debian: apt-get install "
                             "gnuplot-nox, which make deps installs; or set GLOW_GNUPLOT)", prog);
        else
            glow_errorf(err, "cannot start %s: %s", prog, strerror(e));
        return -1;
    }
    /* gnuplot may stop reading early (an error): no SIGPIPE for us */
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    size_t len = strlen(script), done = 0;
    while (done < len) {
        ssize_t w = write(in[1], script + done, len - done);
        if (w <= 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    close(in[1]);
    signal(SIGPIPE, old);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!ok) {
        char first[512] = "", line[512];
        rewind(errf);
        while (fgets(line, sizeof line, errf)) /* gnuplot's message: its last non-blank line */
            if (strspn(line, " \t\r\n^") < strlen(line))
                snprintf(first, sizeof first, "%s", line);
        first[strcspn(first, "\r\n")] = '\0';
        if (WIFEXITED(status))
            glow_errorf(err, "%s failed (exit status %d)%s%s", prog, WEXITSTATUS(status),
                        first[0] ? ": " : "", first);
        else
            glow_errorf(err, "%s was killed by signal %d", prog, WTERMSIG(status));
    }
    fclose(errf);
    return ok ? 0 : -1;
}
