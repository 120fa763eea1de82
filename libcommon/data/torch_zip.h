/* The zip container of PyTorch's torch.save files (PyTorch 1.6 and later): a strict
 * reader of the central directory (zip64 records included) and of stored or
 * deflated (zlib) entries, with every entry's CRC-32 checked on reading.
 *
 * Refused, with a message naming the file and the entry: a file that is no zip
 * (the legacy pickle-only torch.save format gets its own message), several disks,
 * encryption, a compression method other than stored or deflate, an entry whose
 * data runs outside the file or into the central directory or another entry, a
 * name given twice or holding a NUL byte, a local header that disagrees with the
 * central directory, a deflated entry that declares more than deflate can expand
 * its bytes to (1032:1), and data that does not inflate to exactly the declared
 * size and CRC. */
#ifndef GLOW_TORCH_ZIP_H
#define GLOW_TORCH_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct {
    char *name;
    int method;          /* 0 stored, 8 deflate */
    uint32_t crc;
    uint64_t csize, usize;
    uint64_t header;     /* offset of the local header */
    uint64_t data;       /* offset of the entry's bytes */
} tz_entry;

typedef struct {
    char *path;          /* for messages */
    unsigned char *buf;  /* the whole file */
    size_t size;
    int own;             /* buf is freed by tz_close */
    tz_entry *e;         /* central directory order */
    int n;
    int *sorted;         /* entry indices by name, for tz_find */
} tz_archive;

/* Read the file (path "-": standard input) and its central directory. */
int tz_open(const char *path, tz_archive *z, glow_error *err);
/* The same on bytes in memory (not copied: they must outlive z). */
int tz_open_buffer(const char *path, const unsigned char *buf, size_t size, tz_archive *z,
                   glow_error *err);
void tz_close(tz_archive *z);

const tz_entry *tz_find(const tz_archive *z, const char *name);

/* An entry's bytes: for a stored entry they point into the archive, for a
 * deflated one into a new block (own), freed by tz_data_free. */
typedef struct {
    const unsigned char *p;
    size_t n;
    void *own;
} tz_data;
int tz_read(const tz_archive *z, const tz_entry *e, tz_data *out, glow_error *err);
void tz_data_free(tz_data *d);

/* A name as it may be printed: at most 200 bytes, bytes outside printable ASCII
 * as '?'. Returns buf. */
const char *tz_printable(const char *s, char *buf, size_t len);

#endif
