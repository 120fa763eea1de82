/* The inputs of glow-prep: what images there are, in which order, with which
 * labels, before anything is decoded.
 *
 * Image files (from a CSV, a list, a directory or named directly) become items
 * with a path; images inside data files (IDX, CIFAR) are loaded whole into
 * arrays and become items that point into them. */
#ifndef GLOW_PREP_INPUTS_H
#define GLOW_PREP_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef enum {
    PREP_AUTO,
    PREP_CSV,      /* header with a path column (name/filename/path/file), maybe label */
    PREP_LIST,     /* one path per line */
    PREP_DIR,      /* a folder of PNG/JPEG files, searched recursively */
    PREP_IDX,      /* MNIST-style IDX images (gzip or plain) */
    PREP_CIFAR10,  /* records of 1 label byte + 3072 pixel bytes */
    PREP_CIFAR100, /* records of 2 label bytes (coarse, fine) + 3072 pixel bytes */
    PREP_IMAGE     /* one PNG or JPEG file */
} prep_format;

/* Images held in memory, planar (CHW) per image. */
typedef struct {
    char *name; /* the file, for messages */
    int c, h, w;
    uint32_t n;
    uint8_t *data; /* n*c*h*w bytes */
} prep_array;

typedef struct {
    char *path;     /* image file; NULL for an image of an array */
    uint32_t array; /* otherwise: which array, and the image's index in it */
    uint32_t index;
    int32_t label;  /* -1 when the inputs carry no labels */
} prep_item;

typedef struct {
    prep_item *items;
    size_t n, cap;
    prep_array *arrays;
    uint32_t narrays;
    int labels;         /* -1 before the first input, then 0 or 1 for all inputs */
    uint64_t bad_lines; /* list entries reported and skipped */
    char **classes;     /* --labels-from-dirs: class names, index = label */
    int nclasses;
} prep_inputs;

typedef struct {
    prep_format format;     /* PREP_AUTO: recognise each input by name and content */
    const char *root;       /* folder for relative paths of CSV/list entries; NULL: the
                             * list file's own folder */
    const char *labels;     /* IDX label file; NULL: the sibling file if it exists */
    int labels_from_dirs;   /* directory input: first-level folder names are classes */
    int strict;             /* a bad list entry is fatal instead of skipped */
    int quiet;              /* no notices (which label file was found) */
} prep_options;

void prep_inputs_init(prep_inputs *in);
void prep_inputs_free(prep_inputs *in);

/* Add one input (path "-": a CSV or list on standard input). Bad entries of a
 * list are reported on stderr as "FILE: line N: reason", counted in bad_lines and
 * skipped; with opt->strict the first one is returned as the error instead.
 * Returns 0, or -1 with err set to "FILE: reason". */
int prep_inputs_add(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);

/* --format value -> format; -1 for an unknown name. "cifar" means CIFAR-10. */
int prep_parse_format(const char *s, prep_format *f);
const char *prep_format_name(prep_format f);
/* What an input is, by name and content (for PREP_AUTO). */
int prep_detect(const char *path, prep_format *f, glow_error *err);

/* The name of an item in messages: its path, or "FILE: image N" (N from 1). */
void prep_item_name(const prep_inputs *in, const prep_item *it, char *buf, size_t len);

/* ---- The input kinds (used by prep_inputs_add) ---- */
int prep_add_text(prep_inputs *in, const char *path, prep_format f, const prep_options *opt,
                  glow_error *err);
int prep_add_dir(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);
int prep_add_idx(prep_inputs *in, const char *path, const prep_options *opt, glow_error *err);
int prep_add_cifar(prep_inputs *in, const char *path, int hundred, glow_error *err);

/* Shared by the kinds: append an item (path is taken over), set the inputs'
 * label presence (error when it differs from earlier inputs), report a bad
 * entry (returns -1 when strict). */
void prep_push(prep_inputs *in, char *path, uint32_t array, uint32_t index, int32_t label);
int prep_set_labels(prep_inputs *in, const char *path, int has_labels, glow_error *err);
uint32_t prep_push_array(prep_inputs *in, prep_array a);
int prep_bad_entry(prep_inputs *in, const prep_options *opt, glow_error *err, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
/* dir/name, or name alone when it is absolute or dir is "." or empty. */
char *prep_join(const char *dir, const char *name);

#endif
