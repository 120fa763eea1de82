/* glow-prep outputs: images gathered into records and written, to a stream
 * (standard output, or a --val-out file written atomically) or to a shard
 * directory (shard_dir_writer).
 *
 * Compressing a record costs more than decoding its images when they are small,
 * so a writer thread compresses and writes one record while the caller fills
 * the next (each sink has two record buffers). Records are written in the order
 * they are filled, so the bytes are the same as with no thread. */
#ifndef GLOW_PREP_OUTPUT_H
#define GLOW_PREP_OUTPUT_H

#include <pthread.h>
#include <stdio.h>

#include "base/atomic_file.h"
#include "data/shard.h"

#include "prep_items.h"

/* Records hold at most this many images and about this many bytes, so readers
 * downstream work in bounded memory. */
#define PREP_RECORD_MAX_IMAGES 1024u
#define PREP_RECORD_TARGET_BYTES ((size_t)8 << 20)

typedef struct {
    const char *dest;     /* name for messages and the summary */
    FILE *f;              /* stream, or NULL for a directory */
    atomic_file af;       /* when the stream is a file of ours */
    int use_af;
    char *dir;            /* shard directory (owned), or NULL */
    shard_dir_writer *dw;
    shard_record rec;     /* filling */
    shard_record spare;   /* with the writer, or free */
    uint32_t cap;         /* images per record */
    uint64_t images, records;
    int nfiles, started;
} prep_sink;

typedef struct {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    prep_sink *job_sink;
    shard_record job;
    int busy, quit, failed, running;
    glow_error err;
} prep_writer;

/* Start the writer thread (without one, records are written by the caller). */
void prep_writer_start(prep_writer *w);
/* Wait for the last record, end the thread. */
void prep_writer_stop(prep_writer *w);

/* Allocate the record buffers and open the directory writer (per_file images
 * per shard file). Returns 0, or -1 with err set. */
int prep_sink_start(prep_sink *s, uint64_t per_file, uint32_t c, uint32_t h, uint32_t w,
                    int labels, glow_error *err);
/* Append one CHW image; a full record goes to the writer. Returns 0, or -1 with
 * err set when writing (this or an earlier record) failed. */
int prep_sink_add(prep_writer *w, prep_sink *s, const uint8_t *chw, int32_t label,
                  glow_error *err);
/* Write what is left and commit (stream flushed, file or directory committed). */
int prep_sink_finish(prep_writer *w, prep_sink *s, glow_error *err);
/* Drop what was not committed: temporary files are removed. */
void prep_sink_abort(prep_writer *w, prep_sink *s);

/* The sinks of a run. With out_dir: shard files in out_dir, or with split in
 * out_dir/train and out_dir/val. Without: the train stream on standard output
 * and, with split, the val stream in the file val_out (written atomically).
 * The dir members are owned by the caller afterwards. Returns 0, or -1 with err
 * set. */
int prep_sinks_open(prep_sink *train, prep_sink *val, const char *out_dir, int split,
                    const char *val_out, glow_error *err);
/* Finish train, then val if it was started; when train fails, val is aborted. */
int prep_sinks_finish(prep_writer *w, prep_sink *train, prep_sink *val, glow_error *err);

/* The class mapping of --labels-from-dirs as "LABEL<TAB>NAME" lines, written
 * atomically to path. Returns 0, or -1 with err set. */
int prep_write_classes(const char *path, const prep_inputs *in, glow_error *err);

#endif
