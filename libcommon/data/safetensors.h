/* safetensors files (https://huggingface.co/docs/safetensors): an 8-byte
 * little-endian header length, a JSON header (parsed with cJSON) mapping tensor
 * names to dtype, shape and data_offsets, an optional "__metadata__" object of
 * string values, then the raw little-endian tensor data. */
#ifndef GLOW_SAFETENSORS_H
#define GLOW_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef enum { ST_F32, ST_F64, ST_I32, ST_I64, ST_U8, ST_OTHER } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    char dtype_name[16]; /* as written in the file, e.g. "F32" */
    int ndim;
    int64_t shape[8];
    size_t count;        /* elements */
    size_t nbytes;
    const void *data;    /* points into the loaded file, or an aligned copy; NULL
                            after st_open */
    int data_owned;      /* data is the copy (st_free frees it) */
    uint64_t offset;     /* where its bytes start in the data section */
} st_tensor;

typedef struct {
    char *path;
    unsigned char *buf; /* the whole file (st_open: its first 8 + header bytes) */
    size_t size;        /* bytes of the file (st_open of a stream: those its header declares) */
    st_tensor *t;
    int n;
    char **meta_keys, **meta_vals;
    int n_meta;
    uint64_t mem;       /* bytes reserved in the memory budget (base/mem_budget.h) */
    /* st_open: the file being read, the data section's start in it, and for a
     * stream how far into the data section it has been read */
    FILE *fp;
    int stream;
    uint64_t data_start, pos;
} st_file;

/* Load and validate the whole file: header length within the file and at most
 * 100 MB, the header valid UTF-8 JSON (no \u0000 escape, numbers of shapes and
 * offsets plain non-negative integers, read exactly), every dtype known and every
 * shape consistent with its offsets, offsets inside the data section, in order
 * and not overlapping. Errors name the file and tensor. The file's bytes are
 * reserved in the memory budget first. A stream (path "-", or a pipe) is read up
 * to the end of the data its header declares, never further: more bytes after
 * that are an error. */
int st_load(const char *path, st_file *f, glow_error *err);
/* The same checks on a file's bytes in memory (copied); name stands for the file. */
int st_load_buffer(const char *name, const void *data, size_t n, st_file *f, glow_error *err);
void st_free(st_file *f);
/* Open a file to read some of its tensors: the header is read and checked as
 * st_load checks it (the tensors' offsets against the file's size; a stream's
 * against the data its header declares), the data is left in the file (every
 * t->data NULL), and st_read reads one tensor's bytes into dst (t->nbytes). A
 * regular file is read at each tensor's offset; a stream forward only, so its
 * tensors must be read in the order of their offsets (the bytes between are read
 * and dropped), and st_finish then reads it to the end its header declares and
 * finds nothing after. Only the header is reserved in the memory budget. Free with
 * st_free. */
int st_open(const char *path, st_file *f, glow_error *err);
int st_read(st_file *f, const st_tensor *t, void *dst, glow_error *err);
int st_finish(st_file *f, glow_error *err);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key); /* NULL when absent */

/* The header's metadata only, without reading the tensors (listing the
 * checkpoints of a run directory, safetensors_meta.c): f gets path, size (of the
 * file), n_meta, meta_keys and meta_vals, no tensors and no buf. Checks the
 * header length and that the header is a JSON object with string metadata.
 * Free with st_free. */
int st_load_meta(const char *path, st_file *f, glow_error *err);

/* Statistics of a tensor's finite elements (ok: a numeric dtype with at least
 * one finite element); mean and variance with Welford's update, so large tensors
 * keep their precision. */
typedef struct {
    int ok;
    double min, max, mean, std;
    size_t nonfinite;
} st_stats;
st_stats st_tensor_stats(const st_tensor *t);

/* Writing: collect tensors (data not copied: must live until st_writer_commit),
 * then write atomically (temp file, fsync, rename). */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
void st_writer_meta(st_writer *w, const char *key, const char *value);
void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const void *data);
/* A tensor whose bytes are not in host memory when added (a trainer's weights on
 * a backend): commit asks fetch for them in pieces of at most ST_FETCH_PIECE
 * bytes, in order (offset: bytes of the tensor before the piece), into a buffer
 * of its own (a piece, or the largest such tensor when smaller), so that writing
 * costs no host copy of the whole tensor. */
#define ST_FETCH_PIECE ((size_t)1 << 20)
typedef void (*st_fetch_fn)(void *ctx, size_t offset, void *dst, size_t nbytes);
void st_writer_add_fetch(st_writer *w, const char *name, st_dtype dtype, int ndim,
                         const int64_t *shape, st_fetch_fn fetch, void *ctx);
int st_writer_commit(st_writer *w, const char *path, glow_error *err); /* frees w */
void st_writer_free(st_writer *w);

#endif
