/* The image shard stream: the one format that carries images between tools.
 *
 * A stream is a concatenation of self-describing records (so `cat a b | tool`
 * works and a pipe never needs seeking). A record is a 64-byte header followed by
 * a zlib stream. Header, all integers little-endian:
 *
 *   off size field
 *     0    8 magic "GLOWSHRD"
 *     8    4 version (1)
 *    12    4 dtype (1 = uint8, 2 = float32)
 *    16    4 flags (bit 0: labels present; bit 1: a latent record, below)
 *    20   16 n, c, h, w (uint32 each)
 *    36    4 reserved, must be 0
 *    40    8 raw_size: bytes of the uncompressed payload
 *    48    8 zsize: bytes of the zlib stream that follows the header
 *    56    4 CRC-32 of the uncompressed payload
 *    60    4 CRC-32 of header bytes 0..59
 *
 * Uncompressed payload: n int32 labels (if flagged), then n*c*h*w elements in
 * NCHW order. docs/formats.md is the user-facing description. */
#ifndef GLOW_SHARD_H
#define GLOW_SHARD_H

#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

#define SHARD_MAGIC "GLOWSHRD"
#define SHARD_VERSION 1
#define SHARD_HEADER_SIZE 64

typedef enum { SHARD_U8 = 1, SHARD_F32 = 2 } shard_dtype;

/* One record in memory: n images of c x h x w. */
typedef struct {
    shard_dtype dtype;
    uint32_t n, c, h, w;
    int32_t *labels; /* n labels, or NULL when the record has none */
    void *data;      /* n*c*h*w elements, NCHW */
} shard_record;

size_t shard_dtype_size(shard_dtype t);
size_t shard_record_elems(const shard_record *r); /* n*c*h*w */
void shard_record_free(shard_record *r);

/* ---- Writing ---- */

/* Append one record to f. Returns 0, or -1 with err set (write failure). */
int shard_write_record(FILE *f, const shard_record *rec, glow_error *err);

/* ---- Latent records (docs/formats.md "The latent stream"; data/latent_stream.h) ----
 * Flag bit 1 marks a latent record: dtype float32, and after the labels the payload
 * holds a SHARD_LATENT_PREFIX-byte prefix, n float32 factors and the n*c*h*w
 * values, so raw_size = labels + SHARD_LATENT_PREFIX + 4n + 4nchw. Image readers
 * refuse latent records ("a latent record ..."), latent readers image records. */
#define SHARD_FLAG_LATENT 2u
#define SHARD_LATENT_PREFIX 160

/* Append a latent record: body is the prefix, the factors and the values as
 * little-endian bytes (SHARD_LATENT_PREFIX + 4n + 4nchw of them). */
int shard_write_latent_record(FILE *f, uint32_t n, uint32_t c, uint32_t h, uint32_t w,
                              const int32_t *labels, const void *body, uint64_t body_bytes,
                              glow_error *err);

/* ---- Reading ---- */

typedef struct shard_reader shard_reader;

/* Open a file ("-" is stdin). Returns NULL with err set ("FILE: reason"). */
shard_reader *shard_reader_open(const char *path, glow_error *err);
/* The same for a stream of latent records: shard_reader_next then returns each
 * record with dtype SHARD_F32 and data holding its body as stored (little-endian
 * bytes: prefix, factors, values), and refuses image records. */
shard_reader *shard_reader_open_latent(const char *path, glow_error *err);
/* Wrap an open stream (not closed by shard_reader_close). */
shard_reader *shard_reader_from_file(FILE *f, const char *name);
/* Read the next record into rec (which the caller frees with shard_record_free).
 * Returns 1 when a record was read, 0 at a clean end of stream, -1 on error with
 * err set to "FILE: record N: reason" (N counts from 1). Every check runs here:
 * magic, version, dtype, reserved bits, header CRC, sizes consistent with the
 * shape, truncation, zlib errors, payload CRC, and shape changes between records
 * of one reader. */
int shard_reader_next(shard_reader *r, shard_record *rec, glow_error *err);
/* Records read so far. */
uint64_t shard_reader_records(const shard_reader *r);

/* What a reader expects of a record, asked with its header fields (rec->data and
 * rec->labels NULL; has_labels from the flags) after the header's own checks and
 * before anything of the record's size is allocated or decompressed. Returns 0,
 * or -1 with err set to the reason, which the reader reports as
 * "NAME: record N: reason". Beyond it, every reader reserves a record's payload
 * in the memory budget (base/mem_budget.h) before allocating it, so raw_size
 * never asks for more than the limit (the reservation is held until the next
 * read or the close: the caller frees or copies a record before reading the
 * next), and refuses a raw_size that zlib cannot produce from zsize bytes (more
 * than 1032 bytes per compressed byte). */
typedef int (*shard_expect_fn)(void *ctx, const shard_record *hdr, int has_labels,
                               glow_error *err);
void shard_reader_expect(shard_reader *r, shard_expect_fn fn, void *ctx);
void shard_reader_close(shard_reader *r);

/* What a shard file holds, from its record headers alone (payloads are skipped,
 * not decompressed, but must be present in full). A regular file only. */
typedef struct {
    shard_dtype dtype;
    uint32_t c, h, w;
    int has_labels;
    uint64_t n_images, records;
} shard_scan;
int shard_scan_file(const char *path, shard_scan *out, glow_error *err);

/* ---- A stream over several files ----
 * Reads the files in order as one stream (stdin when there are none, or for
 * "-"), enforcing one shape and dtype across all of them. A folder among them
 * stands for its shard files in shard_dir_list's order. */
typedef struct shard_multi shard_multi;
shard_multi *shard_multi_open(int nfiles, char **files);
/* The expectation of shard_reader_expect, for every file of the stream. */
void shard_multi_expect(shard_multi *m, shard_expect_fn fn, void *ctx);
int shard_multi_next(shard_multi *m, shard_record *rec, glow_error *err);
void shard_multi_close(shard_multi *m);

/* ---- Shard files in a directory ----
 * Writes DIR/PREFIX-00000.glow, -00001, ... each holding up to `images_per_file`
 * images, every file written atomically (atomic_file.h). Records inside a file
 * hold up to `images_per_record` images so readers stream in bounded memory. */
typedef struct shard_dir_writer shard_dir_writer;
shard_dir_writer *shard_dir_writer_open(const char *dir, const char *prefix,
                                        uint64_t images_per_file, uint32_t images_per_record,
                                        glow_error *err);
/* Append images (one record's worth or less is buffered). All calls must have the
 * same dtype/shape and the same presence of labels. */
int shard_dir_writer_add(shard_dir_writer *w, const shard_record *images, glow_error *err);
/* Flush and commit the last file; returns files written via *nfiles. Files of
 * the same prefix with higher numbers, left by an earlier, larger run, are then
 * removed so the directory holds exactly this run's data. Frees w, also on error.
 * After a failed add, call shard_dir_writer_abort instead (committed files stay). */
int shard_dir_writer_close(shard_dir_writer *w, int *nfiles, glow_error *err);
void shard_dir_writer_abort(shard_dir_writer *w);

/* Every *.glow file below a directory, searched recursively (for every tool that
 * takes shard folders). Names starting with '.' (atomic_file's temporaries) are
 * skipped, and links to folders are not followed. The order is fixed: the paths
 * compared folder by folder, each name in natural order (digit runs by value:
 * shard-99999 < shard-100000, bytewise otherwise), so DIR/a.glow, DIR/b/x.glow,
 * DIR/b-2/y.glow, DIR/c.glow (docs/formats.md, "Shard folders"). */
int shard_dir_list(const char *dir, char ***files, int *nfiles, glow_error *err);
void shard_dir_list_free(char **files, int nfiles);

/* Where the record last returned by shard_multi_next came from: the file's name
 * as used in messages ("standard input" for "-") and its record number there
 * (from 1). NULL before the first record. */
const char *shard_multi_where(const shard_multi *m, uint64_t *record);


/* Readers refuse records whose payload would exceed this (16 GiB) rather than
 * attempt the allocation; writers aim for records of at most SHARD_RECORD_TARGET. */
#define SHARD_MAX_RAW ((uint64_t)1 << 34)
#define SHARD_RECORD_TARGET ((uint64_t)64 << 20)

#endif
