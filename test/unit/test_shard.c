/* Shard streams: round trips, concatenation, every way a record can be broken
 * (each with its message), several files as one stream, shard directories. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/path.h"
#include "check.h"
#include "data/shard.h"

/* ---- Building records ---- */

static shard_record make_rec(shard_dtype t, uint32_t n, uint32_t c, uint32_t h, uint32_t w,
                             int labels, int seed)
{
    shard_record r = {t, n, c, h, w, NULL, NULL};
    size_t e = shard_record_elems(&r);
    r.data = malloc(e * shard_dtype_size(t));
    for (size_t i = 0; i < e; i++) {
        if (t == SHARD_U8)
            ((uint8_t *)r.data)[i] = (uint8_t)(i * 7 + (size_t)seed);
        else
            ((float *)r.data)[i] = (float)i * 0.25f - (float)seed;
    }
    if (labels) {
        r.labels = malloc(sizeof(int32_t) * n);
        for (uint32_t i = 0; i < n; i++)
            r.labels[i] = (int32_t)i * 3 - 7 + seed;
    }
    return r;
}

static int same_rec(const shard_record *a, const shard_record *b)
{
    if (a->dtype != b->dtype || a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w)
        return 0;
    if (!a->labels != !b->labels)
        return 0;
    if (a->labels && memcmp(a->labels, b->labels, sizeof(int32_t) * a->n) != 0)
        return 0;
    return memcmp(a->data, b->data, shard_record_elems(a) * shard_dtype_size(a->dtype)) == 0;
}

/* A byte buffer of records written by shard_write_record. */
typedef struct {
    char *p;
    size_t len;
    size_t ends[8]; /* offset after each record */
    int nrec;
} buf;

static buf write_recs(const shard_record *recs, int n)
{
    buf b = {0};
    FILE *f = open_memstream(&b.p, &b.len);
    glow_error err;
    for (int i = 0; i < n; i++) {
        CHECK(shard_write_record(f, &recs[i], &err) == 0);
        fflush(f);
        b.ends[b.nrec++] = b.len;
    }
    fclose(f);
    return b;
}

static void fix_header_crc(unsigned char *hd)
{
    store_le32(hd + 60, (uint32_t)crc32(0, hd, 60));
}

/* Read bytes as a stream named "mem"; expect `ok` good records, then an error
 * whose message contains both pieces, with no record handed out. */
static void expect_error(const void *p, size_t len, int ok, const char *piece1,
                         const char *piece2, int line)
{
    FILE *f = fmemopen((void *)p, len, "rb");
    shard_reader *r = shard_reader_from_file(f, "mem");
    shard_record rec;
    glow_error err = {{0}};
    for (int i = 0; i < ok; i++) {
        int rc = shard_reader_next(r, &rec, &err);
        CHECKF(rc == 1, "line %d: record %d: rc %d (%s)", line, i + 1, rc, err.msg);
        shard_record_free(&rec);
    }
    int rc = shard_reader_next(r, &rec, &err);
    CHECKF(rc == -1, "line %d: rc %d", line, rc);
    CHECKF(rec.data == NULL && rec.labels == NULL, "line %d: a record came with the error", line);
    CHECKF(strncmp(err.msg, "mem: ", 5) == 0, "line %d: '%s'", line, err.msg);
    CHECKF(strstr(err.msg, piece1) != NULL, "line %d: '%s' lacks '%s'", line, err.msg, piece1);
    CHECKF(strstr(err.msg, piece2) != NULL, "line %d: '%s' lacks '%s'", line, err.msg, piece2);
    /* The reader stays failed. */
    glow_error err2;
    CHECKF(shard_reader_next(r, &rec, &err2) == -1 && strcmp(err.msg, err2.msg) == 0,
           "line %d: reader recovered after an error", line);
    shard_reader_close(r);
    fclose(f);
}
#define EXPECT_ERROR(p, len, ok, a, b) expect_error(p, len, ok, a, b, __LINE__)

/* ---- Round trips ---- */

static void test_round_trip(void)
{
    const shard_dtype types[2] = {SHARD_U8, SHARD_F32};
    for (int t = 0; t < 2; t++)
        for (int lab = 0; lab < 2; lab++) {
            shard_record w = make_rec(types[t], 5, 3, 4, 6, lab, t + 1);
            FILE *f = tmpfile();
            glow_error err;
            CHECK(shard_write_record(f, &w, &err) == 0);
            rewind(f);
            shard_reader *r = shard_reader_from_file(f, "tmp");
            shard_record got;
            CHECKF(shard_reader_next(r, &got, &err) == 1, "%s", err.msg);
            CHECKF(same_rec(&w, &got), "dtype %d labels %d", (int)types[t], lab);
            shard_record_free(&got);
            CHECK(shard_reader_next(r, &got, &err) == 0);
            CHECK(shard_reader_records(r) == 1);
            shard_reader_close(r);
            fclose(f);
            shard_record_free(&w);
        }
}

static void test_concatenated(void)
{
    shard_record recs[3] = {make_rec(SHARD_U8, 2, 1, 5, 5, 1, 0), make_rec(SHARD_U8, 3, 1, 5, 5, 1, 9),
                            make_rec(SHARD_U8, 1, 1, 5, 5, 1, 4)};
    buf b = write_recs(recs, 3);
    FILE *f = fmemopen(b.p, b.len, "rb");
    shard_reader *r = shard_reader_from_file(f, "mem");
    glow_error err;
    for (int i = 0; i < 3; i++) {
        shard_record got;
        CHECKF(shard_reader_next(r, &got, &err) == 1, "%s", err.msg);
        CHECK(same_rec(&recs[i], &got));
        shard_record_free(&got);
    }
    shard_record got;
    CHECK(shard_reader_next(r, &got, &err) == 0);
    CHECK(shard_reader_records(r) == 3);
    shard_reader_close(r);
    fclose(f);

    /* An empty stream is zero records, not an error. */
    f = tmpfile();
    r = shard_reader_from_file(f, "empty");
    CHECK(shard_reader_next(r, &got, &err) == 0);
    shard_reader_close(r);
    fclose(f);
    for (int i = 0; i < 3; i++)
        shard_record_free(&recs[i]);
    free(b.p);
}

/* Big enough that the compressed payload spans several input chunks, and
 * incompressible so zsize is close to raw_size. */
static void test_large_record(void)
{
    shard_record w = make_rec(SHARD_U8, 3, 1, 1024, 1024, 1, 0);
    uint32_t x = 12345;
    for (size_t i = 0; i < shard_record_elems(&w); i++) {
        x = x * 1664525u + 1013904223u;
        ((uint8_t *)w.data)[i] = (uint8_t)(x >> 24);
    }
    buf b = write_recs(&w, 1);
    CHECK(b.len > 3u << 20);
    FILE *f = fmemopen(b.p, b.len, "rb");
    shard_reader *r = shard_reader_from_file(f, "big");
    shard_record got;
    glow_error err;
    CHECKF(shard_reader_next(r, &got, &err) == 1, "%s", err.msg);
    CHECK(same_rec(&w, &got));
    shard_record_free(&got);
    shard_reader_close(r);
    fclose(f);
    shard_record_free(&w);
    free(b.p);
}

/* ---- Broken records ---- */

static void test_malformed(void)
{
    shard_record recs[2] = {make_rec(SHARD_U8, 2, 1, 4, 4, 1, 0),
                            make_rec(SHARD_U8, 3, 1, 4, 4, 1, 1)};
    buf b = write_recs(recs, 2);
    size_t r2 = b.ends[0]; /* start of record 2 */
    unsigned char *m = malloc(b.len + 16);

#define FRESH() memcpy(m, b.p, b.len)
    /* Cut short. */
    EXPECT_ERROR(b.p, r2 + 30, 1, "record 2: ", "truncated header: 30 of 64 bytes");
    EXPECT_ERROR(b.p, r2 + 64 + 5, 1, "record 2: ", "truncated payload: 5 of");
    EXPECT_ERROR(b.p, b.len - 1, 1, "record 2: ", "truncated payload");
    EXPECT_ERROR(b.p, 10, 0, "record 1: ", "truncated header: 10 of 64");

    /* Flipped header byte: the header CRC catches it. */
    FRESH();
    m[r2 + 22] ^= 0x10;
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "header CRC mismatch");
    FRESH();
    m[r2 + 61] ^= 1;
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "header CRC mismatch");

    /* Flipped zlib bytes: the zlib header, and the Adler-32 at its end. */
    FRESH();
    m[r2 + 64] ^= 0x01;
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "zlib error: incorrect header check");
    FRESH();
    m[b.len - 1] ^= 0x01;
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "zlib error: incorrect data check");

    /* Intact zlib data under a wrong payload CRC. */
    FRESH();
    store_le32(m + r2 + 56, load_le32(m + r2 + 56) ^ 0x80u);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "payload CRC mismatch");

    /* Fields with a correct header CRC. */
    FRESH();
    m[r2 + 7] = 'X';
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "bad magic");
    FRESH();
    memcpy(m, "PNGSHARD", 8);
    EXPECT_ERROR(m, b.len, 0, "record 1: ", "bad magic");
    FRESH();
    store_le32(m + r2 + 8, 7);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "unsupported version 7");
    FRESH();
    store_le32(m + r2 + 12, 9);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "unknown dtype 9");
    FRESH();
    store_le32(m + r2 + 16, 1u | 4u);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "unknown flag bits 0x4");
    FRESH();
    store_le32(m + r2 + 36, 1);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "reserved field is 1, must be 0");
    FRESH();
    store_le32(m + r2 + 28, 0);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "empty shape 3x1x0x4");
    FRESH();
    store_le64(m + r2 + 40, load_le64(m + r2 + 40) + 1);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "raw_size 61 does not match 3x1x4x4 uint8 with labels (60 bytes)");
    FRESH();
    store_le64(m + r2 + 48, (uint64_t)1 << 40);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "zsize 1099511627776 is impossible");
    /* Too big to allocate: refused from the header alone. */
    FRESH();
    store_le32(m + r2 + 20, 0x80000000u);
    store_le32(m + r2 + 24, 3);
    store_le32(m + r2 + 28, 1024);
    store_le32(m + r2 + 32, 1024);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "larger than the 16 GiB record limit");
    FRESH();
    store_le32(m + r2 + 20, 0xffffffffu);
    store_le32(m + r2 + 24, 0xffffffffu);
    store_le32(m + r2 + 28, 0xffffffffu);
    store_le32(m + r2 + 32, 0xffffffffu);
    fix_header_crc(m + r2);
    EXPECT_ERROR(m, b.len, 1, "record 2: ", "16 GiB");

    /* zsize that disagrees with where the zlib stream really ends. */
    FRESH();
    store_le64(m + 48, load_le64(m + 48) - 2);
    fix_header_crc(m);
    EXPECT_ERROR(m, b.len, 0, "record 1: ", "zlib stream is incomplete");
    FRESH();
    store_le64(m + 48, load_le64(m + 48) + 1);
    fix_header_crc(m);
    EXPECT_ERROR(m, b.len, 0, "record 1: ", "zlib stream ends 1 byte before zsize");
    free(m);
    free(b.p);
    for (int i = 0; i < 2; i++)
        shard_record_free(&recs[i]);
#undef FRESH
}

/* A record whose zlib stream is intact but holds the wrong amount of data. */
static void test_length_mismatch(void)
{
    for (int extra = -2; extra <= 2; extra += 4) {
        unsigned char raw[20], z[128], rec[64 + 128];
        for (int i = 0; i < 20; i++)
            raw[i] = (unsigned char)i;
        size_t rawlen = (size_t)(12 + extra); /* the header says 1x3x4 uint8 = 12 */
        uLongf zlen = sizeof z;
        CHECK(compress(z, &zlen, raw, rawlen) == Z_OK);
        memset(rec, 0, 64);
        memcpy(rec, SHARD_MAGIC, 8);
        store_le32(rec + 8, 1);
        store_le32(rec + 12, 1);
        store_le32(rec + 20, 1);
        store_le32(rec + 24, 1);
        store_le32(rec + 28, 3);
        store_le32(rec + 32, 4);
        store_le64(rec + 40, 12);
        store_le64(rec + 48, zlen);
        store_le32(rec + 56, (uint32_t)crc32(0, raw, (uInt)rawlen));
        fix_header_crc(rec);
        memcpy(rec + 64, z, zlen);
        if (extra < 0)
            EXPECT_ERROR(rec, 64 + zlen, 0, "record 1: ",
                         "payload decompresses to 10 bytes, raw_size says 12");
        else
            EXPECT_ERROR(rec, 64 + zlen, 0, "record 1: ",
                         "payload decompresses to more than raw_size 12 bytes");
    }
}

static void test_shape_changes(void)
{
    struct {
        shard_record second;
        const char *msg;
    } cases[] = {
        {make_rec(SHARD_U8, 2, 1, 5, 4, 1, 0), "record 2: shape 1x5x4 differs from 1x4x4 of earlier records"},
        {make_rec(SHARD_U8, 2, 3, 4, 4, 1, 0), "record 2: shape 3x4x4 differs from 1x4x4"},
        {make_rec(SHARD_F32, 2, 1, 4, 4, 1, 0), "record 2: dtype float32 differs from uint8 of earlier records"},
        {make_rec(SHARD_U8, 2, 1, 4, 4, 0, 0), "record 2: has no labels, but earlier records have them"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        shard_record recs[3] = {make_rec(SHARD_U8, 3, 1, 4, 4, 1, 0), cases[i].second,
                                make_rec(SHARD_U8, 1, 1, 4, 4, 1, 0)};
        buf b = write_recs(recs, 3);
        EXPECT_ERROR(b.p, b.len, 1, cases[i].msg, "");
        free(b.p);
        for (int k = 0; k < 3; k++)
            shard_record_free(&recs[k]);
    }
}

/* ---- Files ---- */

static char tmpdir[64];

static char *tpath(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *name, const shard_record *recs, int n)
{
    FILE *f = fopen(tpath(name), "wb");
    glow_error err;
    for (int i = 0; i < n; i++)
        CHECK(shard_write_record(f, &recs[i], &err) == 0);
    fclose(f);
}

static void test_multi(void)
{
    shard_record a[2] = {make_rec(SHARD_U8, 2, 1, 3, 3, 0, 1), make_rec(SHARD_U8, 1, 1, 3, 3, 0, 2)};
    shard_record b[1] = {make_rec(SHARD_U8, 4, 1, 3, 3, 0, 3)};
    shard_record c[1] = {make_rec(SHARD_U8, 4, 1, 3, 2, 0, 3)};
    write_file("a.glow", a, 2);
    write_file("b.glow", b, 1);
    write_file("c.glow", c, 1);
    write_file("empty.glow", NULL, 0);
    char pa[256], pb[256], pc[256], pe[256];
    snprintf(pa, sizeof pa, "%s", tpath("a.glow"));
    snprintf(pb, sizeof pb, "%s", tpath("b.glow"));
    snprintf(pc, sizeof pc, "%s", tpath("c.glow"));
    snprintf(pe, sizeof pe, "%s", tpath("empty.glow"));

    char *ok[] = {pa, pe, pb};
    shard_multi *m = shard_multi_open(3, ok);
    const shard_record *want[] = {&a[0], &a[1], &b[0]};
    const char *want_file[] = {pa, pa, pb};
    uint64_t want_rec[] = {1, 2, 1};
    glow_error err;
    for (int i = 0; i < 3; i++) {
        shard_record got;
        CHECKF(shard_multi_next(m, &got, &err) == 1, "%s", err.msg);
        CHECK(same_rec(want[i], &got));
        uint64_t rn;
        const char *where = shard_multi_where(m, &rn);
        CHECK(where && strcmp(where, want_file[i]) == 0 && rn == want_rec[i]);
        shard_record_free(&got);
    }
    shard_record got;
    CHECK(shard_multi_next(m, &got, &err) == 0);
    shard_multi_close(m);

    /* The shape rule runs across files; the message names the file and record. */
    char *bad[] = {pa, pb, pc};
    m = shard_multi_open(3, bad);
    int rc;
    while ((rc = shard_multi_next(m, &got, &err)) == 1)
        shard_record_free(&got);
    CHECK(rc == -1 && got.data == NULL);
    char want_msg[512];
    snprintf(want_msg, sizeof want_msg, "%s: record 1: shape 1x3x2 differs from 1x3x3 of earlier records", pc);
    CHECKF(strcmp(err.msg, want_msg) == 0, "%s", err.msg);
    shard_multi_close(m);

    char missing[300];
    snprintf(missing, sizeof missing, "%s", tpath("nope.glow"));
    char *miss[] = {pa, missing};
    m = shard_multi_open(2, miss);
    while ((rc = shard_multi_next(m, &got, &err)) == 1)
        shard_record_free(&got);
    CHECK(rc == -1 && strstr(err.msg, "nope.glow: cannot open") != NULL);
    shard_multi_close(m);

    for (int i = 0; i < 2; i++)
        shard_record_free(&a[i]);
    shard_record_free(&b[0]);
    shard_record_free(&c[0]);
}

static int count_hidden(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static void test_dir_writer(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/out/deep/shards", tmpdir);
    glow_error err;
    /* 12 images, 5 per file, 2 per record: files of 5, 5, 2 images. */
    shard_dir_writer *w = shard_dir_writer_open(dir, "train", 5, 2, &err);
    CHECKF(w != NULL, "%s", err.msg);
    shard_record all = make_rec(SHARD_F32, 12, 2, 3, 3, 1, 0);
    size_t img = 2 * 3 * 3;
    uint32_t chunks[] = {3, 4, 5};
    uint32_t off = 0;
    for (int i = 0; i < 3; i++) {
        shard_record part = all;
        part.n = chunks[i];
        part.data = (float *)all.data + off * img;
        part.labels = all.labels + off;
        CHECKF(shard_dir_writer_add(w, &part, &err) == 0, "%s", err.msg);
        off += chunks[i];
    }
    int nfiles = -1;
    CHECKF(shard_dir_writer_close(w, &nfiles, &err) == 0, "%s", err.msg);
    CHECK(nfiles == 3);
    CHECK(count_hidden(dir) == 0);

    char **files;
    int n;
    CHECK(shard_dir_list(dir, &files, &n, &err) == 0);
    CHECK(n == 3);
    const char *names[] = {"train-00000.glow", "train-00001.glow", "train-00002.glow"};
    for (int i = 0; i < n && i < 3; i++) {
        const char *slash = strrchr(files[i], '/');
        CHECKF(slash && strcmp(slash + 1, names[i]) == 0, "%s", files[i]);
    }
    /* Order and content preserved; no record over 2 images or across files. */
    uint32_t per_file[3] = {0, 0, 0}, seen = 0, max_n = 0;
    int order_ok = 1;
    for (int i = 0; i < n && i < 3; i++) {
        shard_reader *r = shard_reader_open(files[i], &err);
        shard_record got;
        while (r && shard_reader_next(r, &got, &err) == 1) {
            per_file[i] += got.n;
            max_n = got.n > max_n ? got.n : max_n;
            order_ok &= memcmp(got.data, (float *)all.data + seen * img, got.n * img * 4) == 0;
            order_ok &= memcmp(got.labels, all.labels + seen, got.n * 4) == 0;
            seen += got.n;
            shard_record_free(&got);
        }
        shard_reader_close(r);
    }
    CHECK(per_file[0] == 5 && per_file[1] == 5 && per_file[2] == 2);
    CHECK(seen == 12 && max_n == 2 && order_ok);
    shard_dir_list_free(files, n);

    /* A smaller rerun leaves exactly its own files. */
    w = shard_dir_writer_open(dir, "train", 5, 100, &err);
    shard_record few = all;
    few.n = 4;
    CHECK(shard_dir_writer_add(w, &few, &err) == 0);
    /* A different shape is refused. */
    shard_record other = make_rec(SHARD_F32, 1, 1, 3, 3, 1, 0);
    CHECK(shard_dir_writer_add(w, &other, &err) == -1);
    CHECKF(strstr(err.msg, "1x3x3 float32 with labels differ from the 2x3x3") != NULL, "%s", err.msg);
    shard_record_free(&other);
    CHECK(shard_dir_writer_close(w, &nfiles, &err) == 0);
    CHECK(nfiles == 1);
    CHECK(shard_dir_list(dir, &files, &n, &err) == 0 && n == 1);
    shard_dir_list_free(files, n);

    /* Abort leaves no temporary behind. */
    w = shard_dir_writer_open(dir, "tmp", 100, 1, &err);
    CHECK(shard_dir_writer_add(w, &few, &err) == 0);
    shard_dir_writer_abort(w);
    CHECK(count_hidden(dir) == 0);
    CHECK(shard_dir_list(dir, &files, &n, &err) == 0 && n == 1);
    shard_dir_list_free(files, n);
    shard_record_free(&all);

    CHECK(shard_dir_writer_open(dir, "x", 0, 1, &err) == NULL);
    CHECK(shard_dir_writer_open(dir, "a/b", 1, 1, &err) == NULL);
}

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (f)
        fclose(f);
}

static void test_dir_list(void)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/list", tmpdir);
    glow_error err;
    CHECK(glow_mkdir_p(dir, &err) == 0);
    CHECK(glow_mkdir_p(dir, &err) == 0); /* exists: fine */
    const char *names[] = {"p-99999.glow", "p-100000.glow", "b.glow", ".p-00001.glow.tmp.12",
                           ".hidden.glow", "notes.txt", "a.glow.bak", "p-00002.glow"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        touch(dir, names[i]);
    char **files;
    int n;
    CHECK(shard_dir_list(dir, &files, &n, &err) == 0);
    const char *want[] = {"b.glow", "p-00002.glow", "p-99999.glow", "p-100000.glow"};
    CHECK(n == 4);
    for (int i = 0; i < n && i < 4; i++) {
        const char *slash = strrchr(files[i], '/');
        CHECKF(slash && strcmp(slash + 1, want[i]) == 0, "%d: %s", i, files[i]);
    }
    shard_dir_list_free(files, n);

    CHECK(shard_dir_list(tpath("missing"), &files, &n, &err) == -1);
    CHECKF(strstr(err.msg, "missing: cannot open directory") != NULL, "%s", err.msg);
    char file_as_dir[300];
    snprintf(file_as_dir, sizeof file_as_dir, "%s/notes.txt/sub", dir);
    CHECK(glow_mkdir_p(file_as_dir, &err) == -1);
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            remove_tree(p);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else
        unlink(path);
}

/* For test/shard_stream.bats: a shard directory written by this library, with
 * the contents test/data/shardgen.py would give (its pixel() and label()), so
 * the Python reader of docs/formats.md can be checked against C output. */
static int write_fixture(const char *dir, const char *type)
{
    const uint32_t n = 10, c = 2, h = 3, w = 4;
    shard_dtype t = strcmp(type, "f32") == 0 ? SHARD_F32 : SHARD_U8;
    shard_record r = make_rec(t, n, c, h, w, 1, 0);
    size_t i = 0;
    for (uint32_t k = 0; k < n; k++) {
        r.labels[k] = (int32_t)k * 3 - 5;
        for (uint32_t ch = 0; ch < c; ch++)
            for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++, i++) {
                    unsigned v = (k * 31 + ch * 17 + y * 7 + x * 3) % 256;
                    if (t == SHARD_U8)
                        ((uint8_t *)r.data)[i] = (uint8_t)v;
                    else
                        ((float *)r.data)[i] = (float)v / 255.0f;
                }
    }
    glow_error err;
    int nfiles = 0;
    shard_dir_writer *dw = shard_dir_writer_open(dir, "fixture", 4, 3, &err);
    if (!dw || shard_dir_writer_add(dw, &r, &err) != 0 ||
        shard_dir_writer_close(dw, &nfiles, &err) != 0) {
        fprintf(stderr, "test_shard: %s\n", err.msg);
        return 1;
    }
    shard_record_free(&r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--write-dir") == 0)
        return write_fixture(argv[2], argv[3]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_shard.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_concatenated();
    test_large_record();
    test_malformed();
    test_length_mismatch();
    test_shape_changes();
    test_multi();
    test_dir_writer();
    test_dir_list();
    remove_tree(tmpdir);
    return check_summary();
}
