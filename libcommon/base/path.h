/* Paths and directories. */
#ifndef GLOW_PATH_H
#define GLOW_PATH_H

#include "util.h"

/* mkdir -p: create dir and its missing parents. Returns 0, or -1 with err set. */
int glow_mkdir_p(const char *dir, glow_error *err);
/* dir/name, or name alone when it is absolute or dir is NULL, "" or "."; one '/'
 * between them. Caller frees. */
char *glow_path_join(const char *dir, const char *name);
/* The folder of a path: "." for a bare name, "/" for "/name". Caller frees. */
char *glow_path_dir(const char *path);
/* Is path an existing directory (following links)? */
int glow_is_dir(const char *path);
/* Do both paths name one existing file (same device and inode)? */
int glow_same_file(const char *a, const char *b);
/* Would writing out overwrite one of the n inputs? out NULL or "-" stands for
 * standard output (compared when it is a file), an input "-" for standard input.
 * Returns the index of the first input that is the same file as out (device and
 * inode), or -1. */
int glow_output_is_input(const char *out, int n, char *const *inputs);

#endif
