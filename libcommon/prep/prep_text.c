/* glow-prep text inputs: CSV files with a header, and plain lists of paths.
 *
 * CSV: the header names the columns; the path column is the first named name,
 * filename, path or file (any case), and a column named label gives integer
 * labels. The seed project's meta files are pandas output: header ",name", then
 * "index,filename" lines. Fields may be double-quoted ("" is a quote inside);
 * a quoted field cannot span lines. Blank lines are ignored. Relative paths are
 * taken from opt->root, or the CSV's own folder. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/path.h"
#include "prep_kinds.h"

/* Split a line into fields in place. Returns the count, or -1 with *why set. */
static int split_csv(char *line, char ***fields, int *cap, const char **why)
{
    int n = 0;
    char *r = line, *w = line;
    for (;;) {
        if (n == *cap) {
            *cap = *cap ? 2 * *cap : 8;
            *fields = xrealloc(*fields, (size_t)*cap * sizeof **fields);
        }
        char *start = w;
        if (*r == '"') {
            r++;
            for (;;) {
                if (*r == '\0') {
                    *why = "unterminated quoted field";
                    return -1;
                }
                if (*r == '"') {
                    if (r[1] == '"') {
                        *w++ = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                *w++ = *r++;
            }
            if (*r != ',' && *r != '\0') {
                *why = "text after a closing quote";
                return -1;
            }
        } else {
            while (*r != ',' && *r != '\0')
                *w++ = *r++;
        }
        int more = *r == ',';
        if (more)
            r++;
        *w++ = '\0';
        (*fields)[n++] = start;
        if (!more)
            return n;
    }
}

/* Lines longer than this are not a list or CSV of paths (and an endless input
 * such as /dev/zero must not be read whole to find out). */
#define MAX_LINE ((size_t)1 << 20)

/* The next line of fp into *buf, with its newline: its length, -1 at the end of
 * the input, -2 when it is longer than MAX_LINE, -3 when it holds a NUL byte
 * (binary data). */
static ssize_t read_line(FILE *fp, char **buf, size_t *cap)
{
    size_t n = 0;
    int c, nul = 0;
    while ((c = getc(fp)) != EOF) {
        if (n + 2 > *cap) {
            *cap = *cap ? 2 * *cap : 256;
            *buf = xrealloc(*buf, *cap);
        }
        (*buf)[n++] = (char)c;
        nul |= c == 0;
        if (c == '\n')
            break;
        if (n > MAX_LINE)
            return -2;
    }
    if (n == 0)
        return -1;
    (*buf)[n] = '\0';
    return nul ? -3 : (ssize_t)n;
}

static void strip_eol(char *s, ssize_t *len)
{
    while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
        s[--*len] = '\0';
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

int prep_add_text(prep_inputs *in, const char *path, prep_format f, const prep_options *opt,
                  glow_error *err)
{
    int is_stdin = !strcmp(path, "-");
    const char *name = is_stdin ? "standard input" : path;
    FILE *fp = is_stdin ? prep_stdin(in) : fopen(path, "r");
    if (!fp) {
        glow_errorf(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *root = opt->root ? xstrdup(opt->root) : is_stdin ? xstrdup(".") : glow_path_dir(path);
    char *line = NULL, **fields = NULL;
    size_t linecap = 0;
    int fcap = 0, rc = 0, ncols = 0, path_col = -1, label_col = -1;
    unsigned long ln = 0;
    ssize_t len;
    while ((len = read_line(fp, &line, &linecap)) != -1) {
        ln++;
        if (len < 0) {
            glow_errorf(err, "%s: line %lu: %s; not a list of image files or a CSV", name, ln,
                        len == -2 ? "longer than 1 MiB" : "a NUL byte (binary data)");
            rc = -1;
            break;
        }
        strip_eol(line, &len);
        char *s = line;
        if (ln == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
            (unsigned char)s[2] == 0xBF)
            s += 3; /* UTF-8 byte order mark */
        if (ln == 1 && is_stdin && opt->format == PREP_AUTO) {
            /* Standard input was not peeked at: its first line decides. */
            const char *names[] = {"name", "filename", "path", "file"};
            char *copy = xstrdup(s), **hf = NULL;
            int hcap = 0;
            const char *why;
            int k = strchr(copy, ',') ? split_csv(copy, &hf, &hcap, &why) : -1;
            for (int i = 0; i < k && f != PREP_CSV; i++)
                for (int j = 0; j < 4; j++)
                    if (!strcasecmp(trim(hf[i]), names[j]))
                        f = PREP_CSV;
            free(hf);
            free(copy);
        }
        if (f == PREP_LIST) {
            if (*s == '\0')
                continue;
            prep_push(in, glow_path_join(root, s), 0, 0, -1);
            continue;
        }
        if (ln == 1) {
            const char *why = NULL;
            ncols = split_csv(s, &fields, &fcap, &why);
            if (ncols < 0) {
                glow_errorf(err, "%s: line 1: bad header: %s", name, why);
                rc = -1;
                break;
            }
            const char *names[] = {"name", "filename", "path", "file"};
            for (int j = 0; j < 4 && path_col < 0; j++)
                for (int i = 0; i < ncols; i++)
                    if (!strcasecmp(trim(fields[i]), names[j])) {
                        path_col = i;
                        break;
                    }
            for (int i = 0; i < ncols; i++)
                if (!strcasecmp(trim(fields[i]), "label"))
                    label_col = i;
            if (path_col < 0) {
                glow_errorf(err, "%s: line 1: the header names no path column (name, filename, "
                                 "path or file)", name);
                rc = -1;
                break;
            }
            if (prep_set_labels(in, name, label_col >= 0, err) != 0) {
                rc = -1;
                break;
            }
            continue;
        }
        if (*trim(s) == '\0')
            continue;
        const char *why = NULL;
        int k = split_csv(s, &fields, &fcap, &why);
        if (k >= 0 && k != ncols) {
            if (prep_bad_entry(in, opt, err, "%s: line %lu: %d fields, the header has %d", name,
                               ln, k, ncols)) {
                rc = -1;
                break;
            }
            continue;
        }
        if (k < 0) {
            if (prep_bad_entry(in, opt, err, "%s: line %lu: %s", name, ln, why)) {
                rc = -1;
                break;
            }
            continue;
        }
        char *p = trim(fields[path_col]);
        if (*p == '\0') {
            if (prep_bad_entry(in, opt, err, "%s: line %lu: empty file name", name, ln)) {
                rc = -1;
                break;
            }
            continue;
        }
        long label = -1;
        if (label_col >= 0 && parse_long(trim(fields[label_col]), 0, INT32_MAX, &label) != 0) {
            if (prep_bad_entry(in, opt, err,
                               "%s: line %lu: label '%s' is not a non-negative integer", name, ln,
                               trim(fields[label_col]))) {
                rc = -1;
                break;
            }
            continue;
        }
        prep_push(in, glow_path_join(root, p), 0, 0, (int32_t)label);
    }
    if (rc == 0 && ferror(fp)) {
        glow_errorf(err, "%s: read error", name);
        rc = -1;
    }
    if (rc == 0 && f == PREP_LIST)
        rc = prep_set_labels(in, name, 0, err);
    if (rc == 0 && f == PREP_CSV && ln == 0) {
        glow_errorf(err, "%s: empty CSV file (no header)", name);
        rc = -1;
    }
    free(fields);
    free(line);
    free(root);
    if (!is_stdin)
        fclose(fp);
    return rc;
}
