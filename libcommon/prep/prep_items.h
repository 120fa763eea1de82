/* What glow-prep's inputs hold before anything is decoded: the items (image files,
 * or images inside data files loaded whole into arrays), their labels, and the
 * bookkeeping that every input kind shares. */
#ifndef GLOW_PREP_ITEMS_H
#define GLOW_PREP_ITEMS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

typedef enum {
    PREP_AUTO,
    PREP_CSV,      /* header with a path column (name/filename/path/file), maybe label */
    PREP_LIST,     /* one path per line */
    PREP_DIR,      /* a folder of PNG/JPEG files, searched recursively */
    PREP_IDX,      /* MNIST-style IDX images (gzip or plain) */
    PREP_CIFAR10,  /* records of 1 label byte + 3072 pixel bytes */
    PREP_CIFAR100, /* records of 2 label bytes (coarse, fine) + 3072 pixel bytes */
    PREP_IMAGE,    /* one PNG or JPEG file */
    PREP_SHARD     /* the shard stream: a file, a folder of them (recursively), stdin */
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

/* Standard input with its first bytes peeked at (prep_shard.c): f reads head[pos..n)
 * and then src. */
typedef struct {
    FILE *src, *f;
    unsigned char head[8];
    size_t n, pos;
} prep_peek;

typedef struct {
    prep_item *items;
    size_t n, cap;
    prep_array *arrays;
    uint32_t narrays;
    int labels;         /* -1 before the first input, then 0 or 1 for all inputs */
    uint64_t bad_lines; /* list entries reported and skipped */
    char **classes;     /* --labels-from-dirs: class names, index = label */
    int nclasses;
    uint64_t mem;       /* bytes of the arrays reserved in the memory budget */
    prep_peek *peek;    /* standard input, once an input "-" was looked at */
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

/* The name of an item in messages: its path, or "FILE: image N" (N from 1). */
void prep_item_name(const prep_inputs *in, const prep_item *it, char *buf, size_t len);

/* Append an item (path is taken over), set the inputs'
 * label presence (error when it differs from earlier inputs), report a bad
 * entry (returns -1 when strict). */
void prep_push(prep_inputs *in, char *path, uint32_t array, uint32_t index, int32_t label);
int prep_set_labels(prep_inputs *in, const char *path, int has_labels, glow_error *err);
uint32_t prep_push_array(prep_inputs *in, prep_array a);
int prep_bad_entry(prep_inputs *in, const prep_options *opt, glow_error *err, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

#endif
