/* safetensors reading and writing: a round trip of every dtype, the on-disk form
 * (8-byte aligned header padded with spaces, little-endian data), aligned data
 * pointers, and each malformed file rejected with the file and tensor named. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "data/safetensors.h"

static char tmpdir[256];

static char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static void write_raw(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

/* A file made of a header (any text) and `data_len` data bytes. */
static void write_with_header(const char *path, const char *header, size_t data_len)
{
    size_t h = strlen(header);
    unsigned char *b = calloc(8 + h + data_len + 1, 1);
    store_le64(b, h);
    memcpy(b + 8, header, h);
    for (size_t i = 0; i < data_len; i++)
        b[8 + h + i] = (unsigned char)i;
    write_raw(path, b, 8 + h + data_len);
    free(b);
}

static void expect_bad_header(const char *header, size_t data_len, const char *needle)
{
    const char *path = tmp_path("bad.safetensors");
    write_with_header(path, header, data_len);
    st_file f;
    glow_error err = {{0}};
    int rc = st_load(path, &f, &err);
    CHECKF(rc == -1, "accepted header %s", header);
    CHECKF(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    CHECKF(strstr(err.msg, path) != NULL, "'%s' lacks the path", err.msg);
}

static void test_round_trip(void)
{
    float f32[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    double f64[3] = {1.0 / 3.0, -1e300, 2.5};
    int32_t i32[4] = {-1, 0, 7, INT32_MAX};
    int64_t i64[2] = {INT64_MIN, 42};
    uint8_t u8[5] = {0, 1, 128, 254, 255};
    int64_t s6[2] = {2, 3}, s3[1] = {3}, s4[3] = {1, 2, 2}, s2[1] = {2}, s5[1] = {5},
            s0[2] = {0, 4};
    st_writer *w = st_writer_new();
    st_writer_meta(w, "format", "test");
    st_writer_meta(w, "quote", "say \"hi\"\\ \x01 ok");
    st_writer_meta(w, "format", "test2"); /* replaces */
    /* The u8 tensor first puts the floats at odd offsets: they must be copied to
     * aligned storage on reading. */
    st_writer_add(w, "u8", ST_U8, 1, s5, u8);
    st_writer_add(w, "a.f32", ST_F32, 2, s6, f32);
    st_writer_add(w, "f64", ST_F64, 1, s3, f64);
    st_writer_add(w, "i32", ST_I32, 3, s4, i32);
    st_writer_add(w, "i64", ST_I64, 1, s2, i64);
    st_writer_add(w, "empty", ST_F32, 2, s0, f32);
    st_writer_add(w, "scalar", ST_F32, 0, NULL, f32);
    const char *path = tmp_path("rt.safetensors");
    glow_error err = {{0}};
    CHECKF(st_writer_commit(w, path, &err) == 0, "%s", err.msg);

    st_file f;
    CHECKF(st_load(path, &f, &err) == 0, "%s", err.msg);
    CHECK(f.n == 7 && f.n_meta == 2);
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "test2") == 0);
    CHECK(st_meta(&f, "quote") && strcmp(st_meta(&f, "quote"), "say \"hi\"\\ \x01 ok") == 0);
    CHECK(st_meta(&f, "absent") == NULL);
    /* Tensors keep the order given. */
    CHECK(strcmp(f.t[0].name, "u8") == 0 && strcmp(f.t[6].name, "scalar") == 0);
    const st_tensor *t = st_find(&f, "a.f32");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    CHECK(t && t->count == 6 && t->nbytes == 24 && strcmp(t->dtype_name, "F32") == 0);
    CHECK(t && (uintptr_t)t->data % 4 == 0 && memcmp(t->data, f32, sizeof f32) == 0);
    t = st_find(&f, "f64");
    CHECK(t && t->dtype == ST_F64 && (uintptr_t)t->data % 8 == 0 &&
          ((const double *)t->data)[0] == f64[0] && ((const double *)t->data)[1] == -1e300);
    t = st_find(&f, "i32");
    CHECK(t && t->dtype == ST_I32 && t->ndim == 3 && ((const int32_t *)t->data)[3] == INT32_MAX);
    t = st_find(&f, "i64");
    CHECK(t && t->dtype == ST_I64 && ((const int64_t *)t->data)[0] == INT64_MIN);
    t = st_find(&f, "u8");
    CHECK(t && t->dtype == ST_U8 && memcmp(t->data, u8, 5) == 0);
    t = st_find(&f, "empty");
    CHECK(t && t->count == 0 && t->nbytes == 0 && t->shape[0] == 0);
    t = st_find(&f, "scalar");
    CHECK(t && t->ndim == 0 && t->count == 1 && ((const float *)t->data)[0] == 1.5f);
    CHECK(st_find(&f, "nope") == NULL);

    /* On disk: header length a multiple of 8, padded with spaces; data LE. */
    uint64_t h = load_le64(f.buf);
    CHECK(h % 8 == 0 && f.buf[8] == '{');
    size_t end = 8 + (size_t)h;
    while (end > 8 && f.buf[end - 1] == ' ')
        end--;
    CHECK(f.buf[end - 1] == '}');
    const unsigned char *data = f.buf + 8 + h;
    CHECK(memcmp(data, u8, 5) == 0);
    CHECK(load_le32(data + 5) == 0x3fc00000u); /* 1.5f */
    CHECK(f.size == 8 + h + 5 + 24 + 24 + 16 + 16 + 0 + 4);
    st_free(&f);
    CHECK(f.n == 0 && f.buf == NULL);

    /* Misuse is reported at commit and leaves no file. */
    w = st_writer_new();
    st_writer_add(w, "x", ST_F32, 1, s2, f32);
    st_writer_add(w, "x", ST_F32, 1, s2, f32);
    CHECK(st_writer_commit(w, tmp_path("dup.safetensors"), &err) == -1 && strstr(err.msg, "'x'"));
    CHECK(access(tmp_path("dup.safetensors"), F_OK) != 0);
    w = st_writer_new();
    st_writer_add(w, "bf", ST_OTHER, 1, s2, f32);
    CHECK(st_writer_commit(w, tmp_path("o.safetensors"), &err) == -1 && strstr(err.msg, "'bf'"));
    w = st_writer_new();
    st_writer_add(w, "x", ST_F32, 1, s2, f32);
    CHECK(st_writer_commit(w, "/nonexistent-dir/x.safetensors", &err) == -1);
    w = st_writer_new();
    st_writer_free(w);
}

static void test_other_dtype(void)
{
    /* A valid safetensors dtype this project does not compute with loads as ST_OTHER. */
    const char *path = tmp_path("bf16.safetensors");
    write_with_header(path,
                      "{\"h\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                      "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[6,8]}}",
                      8);
    st_file f;
    glow_error err = {{0}};
    CHECKF(st_load(path, &f, &err) == 0, "%s", err.msg);
    const st_tensor *t = st_find(&f, "h");
    CHECK(t && t->dtype == ST_OTHER && strcmp(t->dtype_name, "BF16") == 0 && t->nbytes == 6);
    st_free(&f);
}

static void test_malformed(void)
{
    const char *path = tmp_path("m.safetensors");
    st_file f;
    glow_error err = {{0}};

    /* Truncated: fewer than 8 bytes. */
    write_raw(path, "\x10\x00\x00", 3);
    CHECK(st_load(path, &f, &err) == -1 && strstr(err.msg, "truncated"));
    /* Header length beyond the file. */
    unsigned char b[16] = {0};
    store_le64(b, 1000);
    memcpy(b + 8, "{}      ", 8);
    write_raw(path, b, 16);
    CHECK(st_load(path, &f, &err) == -1 && strstr(err.msg, "past the end"));
    /* Header length over the 100 MB limit. */
    store_le64(b, 200000000);
    write_raw(path, b, 16);
    CHECK(st_load(path, &f, &err) == -1 && strstr(err.msg, "limit"));
    CHECK(st_load(tmp_path("absent"), &f, &err) == -1 && strstr(err.msg, "cannot open"));

    const char *ok = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_with_header(path, ok, 8);
    CHECKF(st_load(path, &f, &err) == 0, "%s", err.msg);
    st_free(&f);
    /* The same file cut short inside the data. */
    write_with_header(path, ok, 6);
    CHECK(st_load(path, &f, &err) == -1 && strstr(err.msg, "'t'") && strstr(err.msg, "outside"));

    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", 8, "JSON");
    expect_bad_header("[1,2,3]", 0, "JSON object");
    expect_bad_header("{\"a\":1} xyz", 0, "after");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8,
                      "outside");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,2]}}", 8, "'t'");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12,
                      "span");
    expect_bad_header("{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                      "unknown dtype");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
                      "shape");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
                      "shape");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8,
                      "data_offsets");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8,
                      "unknown field");
    expect_bad_header("{\"t\":[1]}", 0, "'t'");
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
                      6, "overlap");
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                      "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
                      6, "gap");
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 5,
                      "cover");
    expect_bad_header("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                      "\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}",
                      4, "twice");
    expect_bad_header("{\"__metadata__\":{\"k\":1}}", 0, "'k'");
    expect_bad_header("{\"__metadata__\":[1]}", 0, "__metadata__");
    expect_bad_header("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                      "\"data_offsets\":[0,4]}}",
                      4, "dimensions");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_safetensors.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_other_dtype();
    test_malformed();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_summary();
}
