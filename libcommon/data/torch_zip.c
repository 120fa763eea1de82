#include "torch_zip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_EOCD64 0x06064b50u
#define SIG_LOC64 0x07064b50u
/* Deflate cannot expand a block by more than this ratio (RFC 1951 stored-length
 * arithmetic gives 1032:1 for the best case), so a larger declared size is a lie. */
#define DEFLATE_MAX_RATIO 1032u

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

const char *tz_printable(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (; *s && o + 1 < len && o < 200; s++)
        buf[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    if (*s && o >= 3 && len > 4) {
        buf[o - 3] = buf[o - 2] = buf[o - 1] = '.';
    }
    buf[o < len ? o : len - 1] = '\0';
    return buf;
}

static int read_all(const char *path, unsigned char **out, size_t *len, glow_error *err)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (!is_stdin && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        glow_errorf(err, "%s: is a directory", path);
        fclose(fp);
        return -1;
    }
    size_t cap = (!is_stdin && fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode))
                     ? (size_t)st.st_size + 1 : (size_t)1 << 16;
    size_t n = 0;
    unsigned char *buf = xmalloc(cap);
    for (;;) {
        if (n == cap)
            buf = xrealloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, fp);
        n += r;
        if (r == 0)
            break;
    }
    int bad = ferror(fp);
    if (!is_stdin)
        fclose(fp);
    if (bad) {
        glow_errorf(err, "%s: read failed: %s", is_stdin ? "standard input" : path,
                    strerror(errno));
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int by_name(const void *a, const void *b, void *ctx)
{
    const tz_entry *e = ctx;
    return strcmp(e[*(const int *)a].name, e[*(const int *)b].name);
}

static int by_header(const void *a, const void *b, void *ctx)
{
    const tz_entry *e = ctx;
    uint64_t x = e[*(const int *)a].header, y = e[*(const int *)b].header;
    return x < y ? -1 : x > y;
}

/* qsort_r is a GNU extension (the build defines _GNU_SOURCE). */
static void sort_idx(int *idx, int n, int (*cmp)(const void *, const void *, void *),
                     tz_entry *e)
{
    qsort_r(idx, (size_t)n, sizeof *idx, cmp, e);
}

/* The zip64 extended-information field of a central header: each value saturated
 * in the fixed fields comes from it, in this order. */
static int zip64_extra(const unsigned char *x, size_t len, uint64_t *usize, uint64_t *csize,
                       uint64_t *header, int need_u, int need_c, int need_h)
{
    size_t o = 0;
    while (o + 4 <= len) {
        uint16_t id = le16(x + o), n = le16(x + o + 2);
        if (o + 4 + n > len)
            return -1;
        if (id == 0x0001) {
            const unsigned char *p = x + o + 4;
            size_t k = 0;
            if (need_u) {
                if (k + 8 > n) return -1;
                *usize = load_le64(p + k), k += 8;
            }
            if (need_c) {
                if (k + 8 > n) return -1;
                *csize = load_le64(p + k), k += 8;
            }
            if (need_h) {
                if (k + 8 > n) return -1;
                *header = load_le64(p + k), k += 8;
            }
            return 0;
        }
        o += 4 + (size_t)n;
    }
    return (need_u || need_c || need_h) ? -1 : 0;
}

static int fail(tz_archive *z, glow_error *err)
{
    (void)err;
    tz_close(z);
    return -1;
}

int tz_open_buffer(const char *path, const unsigned char *buf, size_t size, tz_archive *z,
                   glow_error *err)
{
    memset(z, 0, sizeof *z);
    z->path = xstrdup(path);
    z->buf = (unsigned char *)buf;
    z->size = size;
    const char *P = z->path;
    if (size >= 2 && buf[0] == 0x80 && buf[1] <= 5) {
        glow_errorf(err, "%s: the legacy torch.save format (PyTorch before 1.6, or "
                         "_use_new_zipfile_serialization=False), which is not read: load it "
                         "in PyTorch with weights_only=True and save it again",
                    P);
        return fail(z, err);
    }
    if (size < 22 || load_le32(buf) != SIG_LOCAL) {
        glow_errorf(err, "%s: not a zip archive (torch.save writes one since PyTorch 1.6)", P);
        return fail(z, err);
    }
    /* the end-of-central-directory record, its comment running to the end */
    size_t eocd = (size_t)-1;
    size_t lo = size - 22 > 65535 ? size - 22 - 65535 : 0;
    for (size_t p = size - 22 + 1; p-- > lo;)
        if (load_le32(buf + p) == SIG_EOCD && p + 22 + le16(buf + p + 20) == size) {
            eocd = p;
            break;
        }
    if (eocd == (size_t)-1) {
        glow_errorf(err, "%s: zip: no end-of-central-directory record (truncated file?)", P);
        return fail(z, err);
    }
    const unsigned char *r = buf + eocd;
    uint64_t n_disk = le16(r + 8), n_total = le16(r + 10);
    uint64_t cd_size = load_le32(r + 12), cd_off = load_le32(r + 16);
    size_t cd_end_limit = eocd;
    int sat = n_disk == 0xffff || n_total == 0xffff || cd_size == 0xffffffffu ||
              cd_off == 0xffffffffu;
    if (eocd >= 20 && load_le32(buf + eocd - 20) == SIG_LOC64) {
        const unsigned char *l = buf + eocd - 20;
        uint64_t off64 = load_le64(l + 8);
        if (load_le32(l + 4) != 0 || load_le32(l + 16) > 1) {
            glow_errorf(err, "%s: zip: archives on several disks are not supported", P);
            return fail(z, err);
        }
        if (off64 > eocd - 20 || eocd - 20 - off64 < 56 || load_le32(buf + off64) != SIG_EOCD64) {
            glow_errorf(err, "%s: zip: bad zip64 end-of-central-directory locator", P);
            return fail(z, err);
        }
        const unsigned char *q = buf + off64;
        if (load_le32(q + 16) != 0 || load_le32(q + 20) != 0) {
            glow_errorf(err, "%s: zip: archives on several disks are not supported", P);
            return fail(z, err);
        }
        if (sat) {
            n_disk = load_le64(q + 24);
            n_total = load_le64(q + 32);
            cd_size = load_le64(q + 40);
            cd_off = load_le64(q + 48);
        }
        cd_end_limit = (size_t)off64;
    } else if (sat) {
        glow_errorf(err, "%s: zip: zip64 sizes without a zip64 record", P);
        return fail(z, err);
    }
    if (le16(r + 4) != 0 || le16(r + 6) != 0 || n_disk != n_total) {
        glow_errorf(err, "%s: zip: archives on several disks are not supported", P);
        return fail(z, err);
    }
    if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off) {
        glow_errorf(err, "%s: zip: the central directory (offset %llu, %llu bytes) lies outside "
                         "the file",
                    P, (unsigned long long)cd_off, (unsigned long long)cd_size);
        return fail(z, err);
    }
    if (n_total > cd_size / 46) {
        glow_errorf(err, "%s: zip: %llu entries cannot fit in a central directory of %llu bytes",
                    P, (unsigned long long)n_total, (unsigned long long)cd_size);
        return fail(z, err);
    }
    z->e = xcalloc(n_total ? (size_t)n_total : 1, sizeof *z->e);
    size_t o = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    char pn[256];
    for (uint64_t i = 0; i < n_total; i++) {
        if (end - o < 46 || load_le32(buf + o) != SIG_CENTRAL) {
            glow_errorf(err, "%s: zip: central directory entry %llu is damaged", P,
                        (unsigned long long)i);
            return fail(z, err);
        }
        const unsigned char *c = buf + o;
        size_t nl = le16(c + 28), xl = le16(c + 30), cl = le16(c + 32);
        if (end - o - 46 < nl + xl + cl) {
            glow_errorf(err, "%s: zip: central directory entry %llu runs past the directory", P,
                        (unsigned long long)i);
            return fail(z, err);
        }
        tz_entry *e = &z->e[z->n];
        e->name = xmalloc(nl + 1);
        memcpy(e->name, c + 46, nl);
        e->name[nl] = '\0';
        z->n++;
        if (strlen(e->name) != nl) {
            glow_errorf(err, "%s: zip: entry %llu: the name holds a NUL byte", P,
                        (unsigned long long)i);
            return fail(z, err);
        }
        tz_printable(e->name, pn, sizeof pn);
        uint16_t flags = le16(c + 8);
        e->method = le16(c + 10);
        e->crc = load_le32(c + 16);
        e->csize = load_le32(c + 20);
        e->usize = load_le32(c + 24);
        e->header = load_le32(c + 42);
        if (zip64_extra(c + 46 + nl, xl, &e->usize, &e->csize, &e->header,
                        e->usize == 0xffffffffu, e->csize == 0xffffffffu,
                        e->header == 0xffffffffu) != 0 ||
            le16(c + 34) == 0xffff) {
            glow_errorf(err, "%s: zip: entry '%s': bad zip64 extra field", P, pn);
            return fail(z, err);
        }
        if (flags & 0x41) {
            glow_errorf(err, "%s: zip: entry '%s' is encrypted", P, pn);
            return fail(z, err);
        }
        if (e->method != 0 && e->method != 8) {
            glow_errorf(err, "%s: zip: entry '%s': compression method %d (only stored and "
                             "deflate are read)",
                        P, pn, e->method);
            return fail(z, err);
        }
        if (e->method == 0 && e->csize != e->usize) {
            glow_errorf(err, "%s: zip: entry '%s': stored, but %llu bytes are declared as %llu",
                        P, pn, (unsigned long long)e->csize, (unsigned long long)e->usize);
            return fail(z, err);
        }
        if (e->method == 8 && e->usize > e->csize * DEFLATE_MAX_RATIO + 64) {
            glow_errorf(err, "%s: zip: entry '%s': %llu deflated bytes cannot expand to the "
                             "declared %llu",
                        P, pn, (unsigned long long)e->csize, (unsigned long long)e->usize);
            return fail(z, err);
        }
        /* the local header: same name and method; the data follows its extra field */
        if (e->header > cd_off || cd_off - e->header < 30 ||
            load_le32(buf + e->header) != SIG_LOCAL) {
            glow_errorf(err, "%s: zip: entry '%s': no local header at offset %llu", P, pn,
                        (unsigned long long)e->header);
            return fail(z, err);
        }
        const unsigned char *h = buf + e->header;
        uint64_t lnl = le16(h + 26), lxl = le16(h + 28);
        e->data = e->header + 30 + lnl + lxl;
        if (e->data > cd_off || lnl != nl || memcmp(h + 30, e->name, nl) != 0 ||
            le16(h + 8) != e->method) {
            glow_errorf(err, "%s: zip: entry '%s': the local header disagrees with the central "
                             "directory",
                        P, pn);
            return fail(z, err);
        }
        if (e->csize > cd_off - e->data) {
            glow_errorf(err, "%s: zip: entry '%s': %llu bytes at offset %llu run into the "
                             "central directory",
                        P, pn, (unsigned long long)e->csize, (unsigned long long)e->data);
            return fail(z, err);
        }
        o += 46 + nl + xl + cl;
    }
    /* names unique; entries disjoint */
    z->sorted = xmalloc((size_t)(z->n ? z->n : 1) * sizeof *z->sorted);
    for (int i = 0; i < z->n; i++)
        z->sorted[i] = i;
    int *byh = xmalloc((size_t)(z->n ? z->n : 1) * sizeof *byh);
    memcpy(byh, z->sorted, (size_t)z->n * sizeof *byh);
    sort_idx(byh, z->n, by_header, z->e);
    for (int i = 1; i < z->n; i++) {
        const tz_entry *a = &z->e[byh[i - 1]], *b = &z->e[byh[i]];
        if (a->data + a->csize > b->header) {
            char pb[256];
            glow_errorf(err, "%s: zip: entries '%s' and '%s' overlap", P,
                        tz_printable(a->name, pn, sizeof pn), tz_printable(b->name, pb, sizeof pb));
            free(byh);
            return fail(z, err);
        }
    }
    free(byh);
    sort_idx(z->sorted, z->n, by_name, z->e);
    for (int i = 1; i < z->n; i++)
        if (strcmp(z->e[z->sorted[i - 1]].name, z->e[z->sorted[i]].name) == 0) {
            glow_errorf(err, "%s: zip: entry '%s' appears twice", P,
                        tz_printable(z->e[z->sorted[i]].name, pn, sizeof pn));
            return fail(z, err);
        }
    return 0;
}

int tz_open(const char *path, tz_archive *z, glow_error *err)
{
    unsigned char *buf;
    size_t len;
    memset(z, 0, sizeof *z);
    if (read_all(path, &buf, &len, err) != 0)
        return -1;
    if (tz_open_buffer(strcmp(path, "-") ? path : "standard input", buf, len, z, err) != 0) {
        free(buf);
        return -1;
    }
    z->own = 1;
    return 0;
}

void tz_close(tz_archive *z)
{
    for (int i = 0; i < z->n; i++)
        free(z->e[i].name);
    free(z->e);
    free(z->sorted);
    free(z->path);
    if (z->own)
        free(z->buf);
    memset(z, 0, sizeof *z);
}

const tz_entry *tz_find(const tz_archive *z, const char *name)
{
    int lo = 0, hi = z->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(z->e[z->sorted[mid]].name, name);
        if (c == 0)
            return &z->e[z->sorted[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

static uint32_t crc_of(const unsigned char *p, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n) {
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return (uint32_t)c;
}

int tz_read(const tz_archive *z, const tz_entry *e, tz_data *out, glow_error *err)
{
    char pn[256];
    memset(out, 0, sizeof *out);
    const unsigned char *src = z->buf + e->data;
    if (e->method == 0) {
        out->p = src;
        out->n = (size_t)e->usize;
    } else {
        unsigned char *dst = malloc(e->usize ? (size_t)e->usize : 1);
        if (!dst) {
            glow_errorf(err, "%s: zip: entry '%s': out of memory for %llu bytes", z->path,
                        tz_printable(e->name, pn, sizeof pn), (unsigned long long)e->usize);
            return -1;
        }
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -MAX_WBITS) != Z_OK) {
            free(dst);
            glow_errorf(err, "%s: zip: zlib initialisation failed", z->path);
            return -1;
        }
        uint64_t in_left = e->csize, out_left = e->usize;
        s.next_in = (Bytef *)src;
        s.next_out = dst;
        int rc = Z_OK;
        while (rc == Z_OK) {
            uInt ai = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
            uInt ao = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
            s.avail_in = ai;
            s.avail_out = ao;
            rc = inflate(&s, Z_NO_FLUSH);
            in_left -= ai - s.avail_in;
            out_left -= ao - s.avail_out;
            if (rc == Z_OK && ai == s.avail_in && ao == s.avail_out)
                rc = Z_BUF_ERROR; /* no progress: input ended or output full */
        }
        inflateEnd(&s);
        if (rc != Z_STREAM_END || in_left != 0 || out_left != 0) {
            free(dst);
            glow_errorf(err, "%s: zip: entry '%s': the deflated data %s", z->path,
                        tz_printable(e->name, pn, sizeof pn),
                        rc == Z_DATA_ERROR ? "is corrupt"
                        : rc != Z_STREAM_END ? "does not reach its declared size"
                        : out_left ? "ends before its declared size"
                                   : "has bytes after its end");
            return -1;
        }
        out->p = dst;
        out->n = (size_t)e->usize;
        out->own = dst;
    }
    if (crc_of(out->p, out->n) != e->crc) {
        glow_errorf(err, "%s: zip: entry '%s': CRC-32 mismatch (damaged file)", z->path,
                    tz_printable(e->name, pn, sizeof pn));
        tz_data_free(out);
        return -1;
    }
    return 0;
}

void tz_data_free(tz_data *d)
{
    free(d->own);
    memset(d, 0, sizeof *d);
}
