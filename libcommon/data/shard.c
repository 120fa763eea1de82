/* Shard records: writing, and a reader that trusts nothing it reads. The file is
 * consumed strictly in order (header, then exactly zsize bytes), so pipes work
 * and `cat a b` is a valid stream. */
#include "shard.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "base/mem_budget.h"
#include "base/path.h"

/* Favour speed: level 1 is several times faster than 6 and image data barely
 * compresses better at higher levels. */
#define SHARD_ZLEVEL 1
#define IO_CHUNK (256u << 10)
/* zlib's avail_in/avail_out are 32-bit; feed huge buffers in slices. */
#define Z_SLICE (1u << 30)

size_t shard_dtype_size(shard_dtype t)
{
    switch (t) {
    case SHARD_U8: return 1;
    case SHARD_F32: return 4;
    }
    return 0;
}

static const char *dtype_name(uint32_t t)
{
    return t == SHARD_U8 ? "uint8" : t == SHARD_F32 ? "float32" : "unknown";
}

size_t shard_record_elems(const shard_record *r)
{
    return (size_t)r->n * r->c * r->h * r->w;
}

void shard_record_free(shard_record *r)
{
    if (!r)
        return;
    free(r->labels);
    free(r->data);
    memset(r, 0, sizeof *r);
}

static int host_is_le(void)
{
    const uint16_t x = 1;
    unsigned char b;
    memcpy(&b, &x, 1);
    return b == 1;
}

/* Element count n*c*h*w, or 0 when it would pass SHARD_MAX_RAW bytes with
 * elem_size-byte elements (each factor is at most 2^32, so check step by step). */
static uint64_t checked_elems(uint32_t n, uint32_t c, uint32_t h, uint32_t w, size_t elem_size)
{
    uint64_t lim = SHARD_MAX_RAW / elem_size, e = n;
    const uint32_t f[3] = {c, h, w};
    for (int i = 0; i < 3; i++) {
        if (f[i] && e > lim / f[i])
            return 0;
        e *= f[i];
    }
    return e <= lim ? e : 0;
}

/* ---- Writing ---- */

/* A deflate stream into one preallocated buffer, handed to zlib in slices
 * because avail_in/avail_out are 32-bit. */
typedef struct {
    z_stream zs;
    unsigned char *out; /* start of the next unassigned output slice */
    uint64_t out_left;
    uLong crc;
} zwriter;

static int zw_feed(zwriter *w, const unsigned char *in, uint64_t len, int flush)
{
    if (len > 0) /* crc32 with a NULL buffer would restart the CRC */
        w->crc = crc32_z(w->crc, in, (z_size_t)len);
    for (;;) {
        if (w->zs.avail_in == 0 && len > 0) {
            uint64_t k = len < Z_SLICE ? len : Z_SLICE;
            w->zs.next_in = (Bytef *)in;
            w->zs.avail_in = (uInt)k;
            in += k;
            len -= k;
        }
        if (w->zs.avail_out == 0) {
            if (w->out_left == 0)
                return -1;
            uint64_t k = w->out_left < Z_SLICE ? w->out_left : Z_SLICE;
            w->zs.next_out = w->out;
            w->zs.avail_out = (uInt)k;
            w->out += k;
            w->out_left -= k;
        }
        int last = len == 0;
        int rc = deflate(&w->zs, last ? flush : Z_NO_FLUSH);
        if (rc == Z_STREAM_END)
            return 0;
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return -1;
        if (flush == Z_NO_FLUSH && last && w->zs.avail_in == 0)
            return 0;
    }
}

/* Feed 4-byte elements as little-endian bytes whatever the host order. */
static int zw_feed_le32(zwriter *w, const unsigned char *p, uint64_t len)
{
    if (host_is_le())
        return zw_feed(w, p, len, Z_NO_FLUSH);
    unsigned char conv[4096];
    while (len > 0) {
        uint64_t k = len < sizeof conv ? len : sizeof conv;
        for (uint64_t i = 0; i < k; i += 4) {
            uint32_t v;
            memcpy(&v, p + i, 4);
            store_le32(conv + i, v);
        }
        if (zw_feed(w, conv, k, Z_NO_FLUSH) != 0)
            return -1;
        p += k;
        len -= k;
    }
    return 0;
}

static int write_record(FILE *f, uint32_t dtype, uint32_t flags, uint32_t n, uint32_t c,
                        uint32_t h, uint32_t width, const int32_t *labels, const void *data,
                        uint64_t dbytes, int le32, glow_error *err);

int shard_write_record(FILE *f, const shard_record *rec, glow_error *err)
{
    size_t es = shard_dtype_size(rec->dtype);
    if (es == 0) {
        glow_errorf(err, "cannot write a record of unknown dtype %d", (int)rec->dtype);
        return -1;
    }
    if (!rec->n || !rec->c || !rec->h || !rec->w) {
        glow_errorf(err, "cannot write an empty record (%ux%ux%ux%u)", rec->n, rec->c, rec->h,
                    rec->w);
        return -1;
    }
    uint64_t elems = checked_elems(rec->n, rec->c, rec->h, rec->w, es);
    uint64_t lbytes = rec->labels ? 4ull * rec->n : 0;
    if (elems == 0 || elems * es + lbytes > SHARD_MAX_RAW) {
        glow_errorf(err, "record of %ux%ux%ux%u %s is larger than the 16 GiB limit", rec->n,
                    rec->c, rec->h, rec->w, dtype_name(rec->dtype));
        return -1;
    }
    return write_record(f, (uint32_t)rec->dtype, rec->labels ? 1u : 0u, rec->n, rec->c, rec->h,
                        rec->w, rec->labels, rec->data, elems * es, es == 4, err);
}

int shard_write_latent_record(FILE *f, uint32_t n, uint32_t c, uint32_t h, uint32_t w,
                              const int32_t *labels, const void *body, uint64_t body_bytes,
                              glow_error *err)
{
    uint64_t elems = n && c && h && w ? checked_elems(n, c, h, w, 4) : 0;
    uint64_t want = elems * 4 + SHARD_LATENT_PREFIX + 4ull * n;
    if (elems == 0 || body_bytes != want || want + (labels ? 4ull * n : 0) > SHARD_MAX_RAW) {
        glow_errorf(err, "cannot write a latent record of %ux%ux%ux%u with a %llu-byte body", n, c,
                    h, w, (unsigned long long)body_bytes);
        return -1;
    }
    return write_record(f, SHARD_F32, (labels ? 1u : 0u) | SHARD_FLAG_LATENT, n, c, h, w, labels,
                        body, body_bytes, 0, err);
}

/* One record: the header, then labels and dbytes of data (4-byte elements put
 * little-endian when le32, else bytes as they are) as one zlib stream. */
static int write_record(FILE *f, uint32_t dtype, uint32_t flags, uint32_t n, uint32_t c,
                        uint32_t h, uint32_t width, const int32_t *labels, const void *data,
                        uint64_t dbytes, int le32, glow_error *err)
{
    uint64_t lbytes = labels ? 4ull * n : 0, raw = lbytes + dbytes;

    /* The header carries zsize and the payload CRC, and the stream cannot seek,
     * so the record is compressed in memory first; compressBound guarantees
     * deflate never runs out of room. */
    uint64_t bound = (uint64_t)compressBound((uLong)raw) + 64;
    unsigned char *zbuf = malloc(bound);
    if (!zbuf) {
        glow_errorf(err, "out of memory compressing a %llu-byte record", (unsigned long long)raw);
        return -1;
    }
    zwriter w;
    memset(&w, 0, sizeof w);
    w.out = zbuf;
    w.out_left = bound;
    w.crc = crc32(0, Z_NULL, 0);
    if (deflateInit(&w.zs, SHARD_ZLEVEL) != Z_OK) {
        free(zbuf);
        glow_errorf(err, "zlib: cannot initialise compression");
        return -1;
    }
    int bad = 0;
    if (lbytes) {
        unsigned char *lb = xmalloc(lbytes);
        for (uint32_t i = 0; i < n; i++)
            store_le32(lb + 4ull * i, (uint32_t)labels[i]);
        bad = zw_feed(&w, lb, lbytes, Z_NO_FLUSH);
        free(lb);
    }
    if (!bad)
        bad = le32 ? zw_feed_le32(&w, data, dbytes) : zw_feed(&w, data, dbytes, Z_NO_FLUSH);
    if (!bad)
        bad = zw_feed(&w, NULL, 0, Z_FINISH);
    uint64_t zlen = w.zs.total_out;
    uLong crc = w.crc;
    deflateEnd(&w.zs);
    if (bad) {
        free(zbuf);
        glow_errorf(err, "zlib: compression failed");
        return -1;
    }

    unsigned char hd[SHARD_HEADER_SIZE];
    memset(hd, 0, sizeof hd);
    memcpy(hd, SHARD_MAGIC, 8);
    store_le32(hd + 8, SHARD_VERSION);
    store_le32(hd + 12, dtype);
    store_le32(hd + 16, flags);
    store_le32(hd + 20, n);
    store_le32(hd + 24, c);
    store_le32(hd + 28, h);
    store_le32(hd + 32, width);
    store_le64(hd + 40, raw);
    store_le64(hd + 48, zlen);
    store_le32(hd + 56, (uint32_t)crc);
    store_le32(hd + 60, (uint32_t)crc32(0, hd, 60));
    int ok = fwrite(hd, 1, sizeof hd, f) == sizeof hd && fwrite(zbuf, 1, zlen, f) == zlen;
    free(zbuf);
    if (!ok) {
        glow_errorf(err, "write error: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- Reading ---- */

/* What every later record of one stream must match. */
typedef struct {
    int set;
    uint32_t dtype, c, h, w;
    int labels;
} shard_shape;

struct shard_reader {
    FILE *f;
    char *name;
    int own;
    uint64_t records;
    shard_shape shape;
    int failed;
    glow_error saved;
    unsigned char *buf; /* compressed input chunk */
    int latent;         /* takes latent records (flag bit 1) and only those */
    shard_expect_fn expect;
    void *expect_ctx;
    uint64_t held; /* the last record's bytes, reserved in the memory budget */
};

static shard_reader *reader_new(FILE *f, const char *name, int own)
{
    shard_reader *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->name = xstrdup(strcmp(name, "-") == 0 ? "standard input" : name);
    r->own = own;
    return r;
}

shard_reader *shard_reader_open(const char *path, glow_error *err)
{
    if (strcmp(path, "-") == 0)
        return reader_new(stdin, path, 0);
    FILE *f = fopen(path, "rb");
    if (!f) {
        glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        glow_errorf(err, "%s: is a directory", path);
        return NULL;
    }
    return reader_new(f, path, 1);
}

shard_reader *shard_reader_open_latent(const char *path, glow_error *err)
{
    shard_reader *r = shard_reader_open(path, err);
    if (r)
        r->latent = 1;
    return r;
}

shard_reader *shard_reader_from_file(FILE *f, const char *name)
{
    return reader_new(f, name, 0);
}

uint64_t shard_reader_records(const shard_reader *r) { return r->records; }

void shard_reader_expect(shard_reader *r, shard_expect_fn fn, void *ctx)
{
    r->expect = fn;
    r->expect_ctx = ctx;
}

void shard_reader_close(shard_reader *r)
{
    if (!r)
        return;
    if (r->own)
        fclose(r->f);
    glow_mem_release(r->held);
    free(r->name);
    free(r->buf);
    free(r);
}

/* Record the error as "NAME: record N: reason"; the reader stays failed. */
__attribute__((format(printf, 3, 4))) static int fail(shard_reader *r, glow_error *err,
                                                      const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    glow_errorf(&r->saved, "%s: record %llu: %s", r->name, (unsigned long long)r->records + 1,
                why);
    r->failed = 1;
    if (err)
        *err = r->saved;
    return -1;
}

static void shape_str(char *b, size_t n, uint32_t c, uint32_t h, uint32_t w)
{
    snprintf(b, n, "%ux%ux%u", c, h, w);
}

/* The reasons a header is rejected, in the order they are checked: a wrong magic
 * says "not this format" before any field is trusted, the version decides how
 * the rest is read, and the CRC comes before the fields it protects. */
static int check_header(shard_reader *r, const unsigned char *hd, shard_record *out,
                        uint64_t *lbytes, uint64_t *dbytes, uint64_t *zsize, uint32_t *pcrc,
                        glow_error *err)
{
    if (memcmp(hd, SHARD_MAGIC, 8) != 0)
        return fail(r, err, "bad magic (not a shard stream)");
    uint32_t version = load_le32(hd + 8);
    if (version != SHARD_VERSION)
        return fail(r, err, "unsupported version %u (this program reads version %d)", version,
                    SHARD_VERSION);
    uint32_t hcrc = load_le32(hd + 60), calc = (uint32_t)crc32(0, hd, 60);
    if (hcrc != calc)
        return fail(r, err, "header CRC mismatch (stored %08x, computed %08x)", hcrc, calc);
    uint32_t dtype = load_le32(hd + 12), flags = load_le32(hd + 16);
    if (dtype != SHARD_U8 && dtype != SHARD_F32)
        return fail(r, err, "unknown dtype %u (1 = uint8, 2 = float32)", dtype);
    if (flags & ~(1u | SHARD_FLAG_LATENT))
        return fail(r, err, "unknown flag bits 0x%x", flags & ~(1u | SHARD_FLAG_LATENT));
    const int latent = (flags & SHARD_FLAG_LATENT) != 0;
    if (latent && !r->latent)
        return fail(r, err, "a latent record (of glow-encode or glow-latent), not images: "
                            "glow-decode turns latents into images");
    if (!latent && r->latent)
        return fail(r, err, "an image record, not latents: glow-encode turns images into "
                            "latents");
    if (latent && dtype != SHARD_F32)
        return fail(r, err, "a latent record of dtype %s (latents are float32)",
                    dtype_name(dtype));
    uint32_t n = load_le32(hd + 20), c = load_le32(hd + 24), h = load_le32(hd + 28),
             w = load_le32(hd + 32), reserved = load_le32(hd + 36);
    if (reserved != 0)
        return fail(r, err, "reserved field is %u, must be 0", reserved);
    if (!n || !c || !h || !w)
        return fail(r, err, "empty shape %ux%ux%ux%u (n x c x h x w)", n, c, h, w);
    size_t es = shard_dtype_size((shard_dtype)dtype);
    uint64_t elems = checked_elems(n, c, h, w, es);
    *lbytes = (flags & 1) ? 4ull * n : 0;
    /* a latent record's data starts with its prefix and n factors */
    const uint64_t extra = latent ? SHARD_LATENT_PREFIX + 4ull * n : 0;
    if (elems == 0 || elems * es + extra + *lbytes > SHARD_MAX_RAW)
        return fail(r, err, "%ux%ux%ux%u %s images are larger than the 16 GiB record limit", n,
                    c, h, w, dtype_name(dtype));
    *dbytes = elems * es + extra;
    uint64_t raw = load_le64(hd + 40), want = *lbytes + *dbytes;
    if (raw != want)
        return fail(r, err, "raw_size %llu does not match %ux%ux%ux%u %s%s%s (%llu bytes)",
                    (unsigned long long)raw, n, c, h, w, dtype_name(dtype),
                    latent ? " latents" : "", (flags & 1) ? " with labels" : "",
                    (unsigned long long)want);
    *zsize = load_le64(hd + 48);
    /* Even stored (level 0) zlib data stays within compressBound; the slack
     * allows for writers that flush often. */
    uint64_t zmax = (uint64_t)compressBound((uLong)raw) + raw / 256 + 4096;
    if (*zsize > zmax)
        return fail(r, err, "zsize %llu is impossible for raw_size %llu",
                    (unsigned long long)*zsize, (unsigned long long)raw);
    /* deflate spends at least 2 bits on 258 bytes: raw_size over 1032 times
     * zsize cannot come from zsize bytes (a claim a reader would otherwise
     * allocate for) */
    if (raw / 1032 > *zsize)
        return fail(r, err, "raw_size %llu cannot come from zsize %llu (zlib expands at most "
                            "1032 times)", (unsigned long long)raw, (unsigned long long)*zsize);
    *pcrc = load_le32(hd + 56);

    const shard_shape *s = &r->shape;
    if (s->set) {
        char a[64], b[64];
        if (dtype != s->dtype)
            return fail(r, err, "dtype %s differs from %s of earlier records", dtype_name(dtype),
                        dtype_name(s->dtype));
        if (c != s->c || h != s->h || w != s->w) {
            shape_str(a, sizeof a, c, h, w);
            shape_str(b, sizeof b, s->c, s->h, s->w);
            return fail(r, err, "shape %s differs from %s of earlier records", a, b);
        }
        if ((int)(flags & 1) != s->labels)
            return fail(r, err, (flags & 1) ? "has labels, but earlier records have none"
                                            : "has no labels, but earlier records have them");
    }
    out->dtype = (shard_dtype)dtype;
    out->n = n;
    out->c = c;
    out->h = h;
    out->w = w;
    return 0;
}

/* Inflate exactly zsize input bytes into the two output segments (labels, then
 * data), checking that the stream ends exactly where both sizes say it does. */
static int read_payload(shard_reader *r, unsigned char *seg0, uint64_t len0, unsigned char *seg1,
                        uint64_t len1, uint64_t zsize, uint32_t pcrc, glow_error *err)
{
    if (!r->buf)
        r->buf = xmalloc(IO_CHUNK);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return fail(r, err, "zlib: cannot initialise decompression");
    uint64_t raw = len0 + len1, produced = 0, in_left = zsize;
    uLong crc = crc32(0, Z_NULL, 0);
    unsigned char scratch[64];
    int rc = 0;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            size_t want = in_left < IO_CHUNK ? (size_t)in_left : IO_CHUNK;
            size_t got = read_full(r->f, r->buf, want);
            if (got < want) {
                if (ferror(r->f))
                    rc = fail(r, err, "read error: %s", strerror(errno));
                else
                    rc = fail(r, err, "truncated payload: %llu of %llu compressed bytes present",
                              (unsigned long long)(zsize - in_left + got),
                              (unsigned long long)zsize);
                break;
            }
            zs.next_in = r->buf;
            zs.avail_in = (uInt)got;
            in_left -= got;
        }
        unsigned char *dst;
        uint64_t room;
        if (produced < len0) {
            dst = seg0 + produced;
            room = len0 - produced;
        } else if (produced < raw) {
            dst = seg1 + (produced - len0);
            room = raw - produced;
        } else { /* everything arrived: anything more is an overrun */
            dst = scratch;
            room = sizeof scratch;
        }
        uInt avail = (uInt)(room < Z_SLICE ? room : Z_SLICE);
        zs.next_out = dst;
        zs.avail_out = avail;
        int z = inflate(&zs, Z_NO_FLUSH);
        uInt made = avail - zs.avail_out;
        if (dst == scratch && made > 0) {
            rc = fail(r, err, "payload decompresses to more than raw_size %llu bytes",
                      (unsigned long long)raw);
            break;
        }
        crc = crc32(crc, dst, made);
        produced += made;
        if (z == Z_STREAM_END)
            break;
        if (z == Z_BUF_ERROR && zs.avail_in == 0 && in_left == 0) {
            rc = fail(r, err, "zlib stream is incomplete after %llu bytes (zsize too small?)",
                      (unsigned long long)zsize);
            break;
        }
        if (z != Z_OK && z != Z_BUF_ERROR) {
            rc = fail(r, err, "zlib error: %s",
                      z == Z_NEED_DICT ? "stream needs a preset dictionary"
                      : zs.msg         ? zs.msg
                                       : zError(z));
            break;
        }
    }
    inflateEnd(&zs);
    if (rc)
        return rc;
    if (produced != raw)
        return fail(r, err, "payload decompresses to %llu bytes, raw_size says %llu",
                    (unsigned long long)produced, (unsigned long long)raw);
    if (zs.avail_in > 0 || in_left > 0)
    {
        uint64_t extra = zs.avail_in + in_left;
        return fail(r, err, "zlib stream ends %llu byte%s before zsize %llu",
                    (unsigned long long)extra, extra == 1 ? "" : "s", (unsigned long long)zsize);
    }
    if ((uint32_t)crc != pcrc)
        return fail(r, err, "payload CRC mismatch (stored %08x, computed %08x)", pcrc,
                    (uint32_t)crc);
    return 0;
}

int shard_reader_next(shard_reader *r, shard_record *rec, glow_error *err)
{
    memset(rec, 0, sizeof *rec);
    glow_mem_release(r->held); /* the record before is the caller's business now */
    r->held = 0;
    if (r->failed) {
        if (err)
            *err = r->saved;
        return -1;
    }
    unsigned char hd[SHARD_HEADER_SIZE];
    size_t got = read_full(r->f, hd, sizeof hd);
    if (got < sizeof hd && ferror(r->f))
        return fail(r, err, "read error: %s", strerror(errno));
    if (got == 0)
        return 0;
    if (got < sizeof hd)
        return fail(r, err, "truncated header: %zu of %d bytes present", got, SHARD_HEADER_SIZE);

    shard_record hdr;
    memset(&hdr, 0, sizeof hdr);
    uint64_t lbytes = 0, dbytes = 0, zsize = 0;
    uint32_t pcrc = 0;
    if (check_header(r, hd, &hdr, &lbytes, &dbytes, &zsize, &pcrc, err) != 0)
        return -1;

    /* Sizes are validated, but may still be more than the reader expects or
     * the budget allows: both are asked before anything is allocated. */
    glow_error why;
    if (r->expect && r->expect(r->expect_ctx, &hdr, lbytes != 0, &why) != 0)
        return fail(r, err, "%s", why.msg);
    char what[128];
    snprintf(what, sizeof what, "%ux%ux%ux%u %s images", hdr.n, hdr.c, hdr.h, hdr.w,
             dtype_name(hdr.dtype));
    if (glow_mem_reserve(lbytes + dbytes, what, &why) != 0)
        return fail(r, err, "%s", why.msg);
    unsigned char *lab = lbytes ? malloc(lbytes) : NULL;
    unsigned char *data = malloc(dbytes);
    if ((lbytes && !lab) || !data) {
        free(lab);
        free(data);
        glow_mem_release(lbytes + dbytes);
        return fail(r, err, "out of memory for a %llu-byte record",
                    (unsigned long long)(lbytes + dbytes));
    }
    if (read_payload(r, lab, lbytes, data, dbytes, zsize, pcrc, err) != 0) {
        free(lab);
        free(data);
        glow_mem_release(lbytes + dbytes);
        return -1;
    }
    if (!host_is_le()) {
        for (uint64_t i = 0; i < lbytes; i += 4) {
            uint32_t v = load_le32(lab + i);
            memcpy(lab + i, &v, 4);
        }
        if (hdr.dtype == SHARD_F32 && !r->latent)
            for (uint64_t i = 0; i < dbytes; i += 4) {
                uint32_t v = load_le32(data + i);
                memcpy(data + i, &v, 4);
            }
    }
    if (!r->shape.set) {
        r->shape = (shard_shape){1, hdr.dtype, hdr.c, hdr.h, hdr.w, lbytes ? 1 : 0};
    }
    r->records++;
    *rec = hdr;
    rec->labels = (int32_t *)(void *)lab;
    rec->data = data;
    r->held = lbytes + dbytes;
    return 1;
}

/* ---- Counting without decompressing ---- */

int shard_scan_file(const char *path, shard_scan *out, glow_error *err)
{
    memset(out, 0, sizeof *out);
    shard_reader *r = shard_reader_open(path, err);
    if (!r)
        return -1;
    for (;;) {
        unsigned char hd[SHARD_HEADER_SIZE];
        size_t got = read_full(r->f, hd, sizeof hd);
        if (got < sizeof hd && ferror(r->f)) {
            fail(r, err, "read error: %s", strerror(errno));
            break;
        }
        if (got == 0) {
            shard_reader_close(r);
            return 0;
        }
        if (got < sizeof hd) {
            fail(r, err, "truncated header: %zu of %d bytes present", got, SHARD_HEADER_SIZE);
            break;
        }
        shard_record hdr;
        memset(&hdr, 0, sizeof hdr);
        uint64_t lbytes = 0, dbytes = 0, zsize = 0;
        uint32_t pcrc = 0;
        if (check_header(r, hd, &hdr, &lbytes, &dbytes, &zsize, &pcrc, err) != 0)
            break;
        /* The payload must be there in full: a truncated last record is found now,
         * not halfway through training. */
        off_t here = ftello(r->f);
        if (here < 0 || fseeko(r->f, (off_t)zsize, SEEK_CUR) != 0) {
            fail(r, err, "cannot seek past the payload: %s", strerror(errno));
            break;
        }
        struct stat st;
        if (fstat(fileno(r->f), &st) == 0 && (uint64_t)here + zsize > (uint64_t)st.st_size) {
            fail(r, err, "truncated payload: %llu of %llu bytes present",
                 (unsigned long long)(st.st_size - here), (unsigned long long)zsize);
            break;
        }
        if (!r->shape.set)
            r->shape = (shard_shape){1, hdr.dtype, hdr.c, hdr.h, hdr.w, lbytes ? 1 : 0};
        r->records++;
        out->dtype = hdr.dtype;
        out->c = hdr.c;
        out->h = hdr.h;
        out->w = hdr.w;
        out->has_labels = lbytes ? 1 : 0;
        out->n_images += hdr.n;
        out->records++;
    }
    shard_reader_close(r);
    return -1;
}

/* ---- Several files as one stream ---- */

struct shard_multi {
    int nfiles;
    char **files;
    int next_file;
    shard_reader *cur;
    shard_shape shape; /* carried from file to file */
    int failed;
    glow_error saved;
    char *where_name;
    uint64_t where_record;
    shard_expect_fn expect;
    void *expect_ctx;
    char **sub; /* the shard files of the folder being read (shard_dir_list) */
    int nsub, sub_next;
};

static char *dash[] = {"-"};

shard_multi *shard_multi_open(int nfiles, char **files)
{
    shard_multi *m = xcalloc(1, sizeof *m);
    m->nfiles = nfiles > 0 ? nfiles : 1;
    m->files = nfiles > 0 ? files : dash;
    return m;
}

void shard_multi_expect(shard_multi *m, shard_expect_fn fn, void *ctx)
{
    m->expect = fn;
    m->expect_ctx = ctx;
    if (m->cur)
        shard_reader_expect(m->cur, fn, ctx);
}

int shard_multi_next(shard_multi *m, shard_record *rec, glow_error *err)
{
    memset(rec, 0, sizeof *rec);
    if (m->failed) {
        if (err)
            *err = m->saved;
        return -1;
    }
    for (;;) {
        if (!m->cur) {
            const char *name;
            if (m->sub_next < m->nsub) {
                name = m->sub[m->sub_next++];
            } else {
                if (m->next_file >= m->nfiles)
                    return 0;
                name = m->files[m->next_file++];
                if (strcmp(name, "-") != 0 && glow_is_dir(name)) {
                    /* a folder: its shard files, searched recursively, in order */
                    shard_dir_list_free(m->sub, m->nsub);
                    m->sub = NULL;
                    m->nsub = m->sub_next = 0;
                    if (shard_dir_list(name, &m->sub, &m->nsub, &m->saved) == 0 && m->nsub == 0)
                        glow_errorf(&m->saved, "%s: no shard files (*.glow) in this directory",
                                    name);
                    if (m->nsub == 0) {
                        m->failed = 1;
                        if (err)
                            *err = m->saved;
                        return -1;
                    }
                    continue;
                }
            }
            m->cur = shard_reader_open(name, &m->saved);
            if (!m->cur) {
                m->failed = 1;
                if (err)
                    *err = m->saved;
                return -1;
            }
            /* The new file must continue the shape of the files before it. */
            m->cur->shape = m->shape;
            shard_reader_expect(m->cur, m->expect, m->expect_ctx);
        }
        int rc = shard_reader_next(m->cur, rec, &m->saved);
        if (rc == 1) {
            m->shape = m->cur->shape;
            free(m->where_name);
            m->where_name = xstrdup(m->cur->name);
            m->where_record = m->cur->records;
            return 1;
        }
        if (rc < 0) {
            m->failed = 1;
            if (err)
                *err = m->saved;
            return -1;
        }
        shard_reader_close(m->cur);
        m->cur = NULL;
    }
}

const char *shard_multi_where(const shard_multi *m, uint64_t *record)
{
    if (record)
        *record = m->where_record;
    return m->where_name;
}

void shard_multi_close(shard_multi *m)
{
    if (!m)
        return;
    shard_reader_close(m->cur);
    shard_dir_list_free(m->sub, m->nsub);
    free(m->where_name);
    free(m);
}
