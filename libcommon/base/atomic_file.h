/* Files that appear whole or not at all: written under a temporary name in the
 * same directory (".NAME.tmp.PID"), flushed, fsync'ed and renamed over NAME on
 * commit. A killed process leaves only a temporary file, never a truncated NAME.
 * The path "-" means standard output, written directly; so is a path that names
 * something other than a regular file (a device such as /dev/null or /dev/full,
 * a FIFO): renaming over it would replace it. */
#ifndef GLOW_ATOMIC_FILE_H
#define GLOW_ATOMIC_FILE_H

#include <stdio.h>

#include "util.h"

typedef struct {
    FILE *f;
    char *path;     /* final name */
    char *tmp_path; /* NULL for stdout and direct writes */
    int direct;     /* path opened as it is (not a regular file) */
} atomic_file;

/* Returns 0 and fills af, or -1 with err set ("PATH: reason"). */
int atomic_open(atomic_file *af, const char *path, glow_error *err);
/* Flush, fsync and rename. Returns 0, or -1 with err set (the temp file removed). */
int atomic_commit(atomic_file *af, glow_error *err);
/* Close and remove the temporary file. */
void atomic_abort(atomic_file *af);

/* Make dst another name of the file src, atomically: a hard link made under the
 * temporary name and renamed over dst (no data copied, and a later rename over
 * src leaves dst as it was). Where the filesystem has no hard links (or src and
 * dst are on different ones), an atomic copy. Returns 0, or -1 with err set. */
int atomic_link(const char *src, const char *dst, glow_error *err);

/* Remove temporary files still open (called from a signal handler's exit path or
 * atexit): every atomic_open registers its temp name until commit or abort. */
void atomic_cleanup_all(void);

#endif
