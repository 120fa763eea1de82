#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/atomic_file.h"

/* Tensor data is little-endian in the file and used in place. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");

#define MAX_HEADER (100u * 1000u * 1000u)
/* The data section starts at this alignment in memory, so that tensors whose
 * offsets are multiples of their element size can be read as typed arrays. */
#define DATA_ALIGN 64

static const struct {
    const char *name;
    st_dtype dt;
    size_t size;
} dtypes[] = {
    {"F32", ST_F32, 4}, {"F64", ST_F64, 8}, {"I32", ST_I32, 4}, {"I64", ST_I64, 8},
    {"U8", ST_U8, 1},
    /* Valid safetensors dtypes this project does not compute with. */
    {"BOOL", ST_OTHER, 1}, {"I8", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
    {"F8_E4M3", ST_OTHER, 1}, {"I16", ST_OTHER, 2}, {"U16", ST_OTHER, 2},
    {"F16", ST_OTHER, 2}, {"BF16", ST_OTHER, 2}, {"U32", ST_OTHER, 4},
    {"U64", ST_OTHER, 8},
};

static size_t dtype_size(st_dtype dt)
{
    switch (dt) {
    case ST_F32: case ST_I32: return 4;
    case ST_F64: case ST_I64: return 8;
    case ST_U8: return 1;
    default: return 0;
    }
}

static const char *dtype_name(st_dtype dt)
{
    switch (dt) {
    case ST_F32: return "F32";
    case ST_F64: return "F64";
    case ST_I32: return "I32";
    case ST_I64: return "I64";
    case ST_U8: return "U8";
    default: return NULL;
    }
}

/* How far past its allocation the file's first byte sits, so that the data
 * section (after 8 + header length bytes) is DATA_ALIGN-aligned. It depends only
 * on the first 8 bytes of the file, which st_free reads back to find the block. */
static size_t buf_shift(const unsigned char *first8, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t n = load_le64(first8);
    return (size_t)((DATA_ALIGN - (8 + n) % DATA_ALIGN) % DATA_ALIGN);
}

/* The whole of fp, into a block where the data section will be aligned. */
static int read_stream(FILE *fp, const char *path, st_file *f, glow_error *err)
{
    size_t cap = 1 << 16, len = 0;
    unsigned char *tmp = xmalloc(cap);
    for (;;) {
        if (len == cap)
            tmp = xrealloc(tmp, cap *= 2);
        size_t r = fread(tmp + len, 1, cap - len, fp);
        len += r;
        if (r == 0)
            break;
    }
    if (ferror(fp)) {
        glow_errorf(err, "%s: read failed: %s", path, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t shift = buf_shift(tmp, len);
    unsigned char *block = aligned_alloc(DATA_ALIGN, (len + shift + DATA_ALIGN) / DATA_ALIGN *
                                                         DATA_ALIGN);
    if (!block)
        glow_die(EXIT_BADINPUT, "out of memory (%zu bytes)", len);
    f->buf = block + shift;
    f->size = len;
    memcpy(f->buf, tmp, len);
    free(tmp);
    return 0;
}

/* A regular file of known size is read straight into its aligned block (one
 * copy of a large checkpoint in memory, not three). */
static int read_regular(FILE *fp, const char *path, size_t len, st_file *f, glow_error *err)
{
    unsigned char first[8] = {0};
    size_t head = len < 8 ? len : 8;
    if (read_full(fp, first, head) != head) {
        glow_errorf(err, "%s: read failed: %s", path, ferror(fp) ? strerror(errno) : "file shrank");
        return -1;
    }
    size_t shift = buf_shift(first, len);
    unsigned char *block = aligned_alloc(DATA_ALIGN, (len + shift + DATA_ALIGN) / DATA_ALIGN *
                                                         DATA_ALIGN);
    if (!block)
        glow_die(EXIT_BADINPUT, "out of memory (%zu bytes)", len);
    f->buf = block + shift;
    f->size = len;
    memcpy(f->buf, first, head);
    if (read_full(fp, f->buf + head, len - head) != len - head) {
        glow_errorf(err, "%s: read failed: %s", path, ferror(fp) ? strerror(errno) : "file shrank");
        return -1;
    }
    return 0;
}

static int read_file(const char *path, st_file *f, glow_error *err)
{
    if (strcmp(path, "-") == 0)
        return read_stream(stdin, "standard input", f, err);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc;
    if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        glow_errorf(err, "%s: is a directory", path);
        rc = -1;
    } else if (fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode))
        rc = read_regular(fp, path, (size_t)st.st_size, f, err);
    else
        rc = read_stream(fp, path, f, err);
    fclose(fp);
    return rc;
}

static int parse_tensor(st_file *f, const cJSON *it, st_tensor *t, uint64_t data_len,
                        uint64_t *begin, uint64_t *end, glow_error *err)
{
    const char *path = f->path, *name = it->string;
    if (!cJSON_IsObject(it)) {
        glow_errorf(err, "%s: tensor '%s': entry is not an object", path, name);
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off)) {
        glow_errorf(err, "%s: tensor '%s': needs dtype (string), shape and data_offsets (arrays)",
                    path, name);
        return -1;
    }
    for (const cJSON *k = it->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") &&
            strcmp(k->string, "data_offsets")) {
            glow_errorf(err, "%s: tensor '%s': unknown field '%s'", path, name, k->string);
            return -1;
        }
    size_t esize = 0;
    t->dtype = ST_OTHER;
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (strcmp(dt->valuestring, dtypes[i].name) == 0) {
            t->dtype = dtypes[i].dt;
            esize = dtypes[i].size;
        }
    if (!esize) {
        glow_errorf(err, "%s: tensor '%s': unknown dtype '%.32s'", path, name, dt->valuestring);
        return -1;
    }
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > 8) {
        glow_errorf(err, "%s: tensor '%s': %d dimensions (at most 8)", path, name, nd);
        return -1;
    }
    t->ndim = nd;
    uint64_t count = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
        if (v < 0 || v != floor(v) || v > 9007199254740992.0) {
            glow_errorf(err, "%s: tensor '%s': shape entry %d is not a non-negative integer",
                        path, name, i);
            return -1;
        }
        t->shape[i] = (int64_t)v;
        if (t->shape[i] && count > UINT64_MAX / (uint64_t)t->shape[i]) {
            glow_errorf(err, "%s: tensor '%s': shape too large", path, name);
            return -1;
        }
        count *= (uint64_t)t->shape[i];
    }
    if (cJSON_GetArraySize(off) != 2) {
        glow_errorf(err, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
        return -1;
    }
    double ob = cJSON_IsNumber(off->child) ? off->child->valuedouble : -1;
    double oe = cJSON_IsNumber(off->child->next) ? off->child->next->valuedouble : -1;
    if (ob < 0 || oe < 0 || ob != floor(ob) || oe != floor(oe) || ob > 9007199254740992.0 ||
        oe > 9007199254740992.0) {
        glow_errorf(err, "%s: tensor '%s': data_offsets are not non-negative integers", path,
                    name);
        return -1;
    }
    *begin = (uint64_t)ob;
    *end = (uint64_t)oe;
    if (*end < *begin || *end > data_len) {
        glow_errorf(err,
                    "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section "
                    "(%llu bytes)",
                    path, name, (unsigned long long)*begin, (unsigned long long)*end,
                    (unsigned long long)data_len);
        return -1;
    }
    if (count > UINT64_MAX / esize || count * esize != *end - *begin) {
        glow_errorf(err, "%s: tensor '%s': shape holds %llu bytes but data_offsets span %llu",
                    path, name, (unsigned long long)(count > UINT64_MAX / esize ? UINT64_MAX : count * esize),
                    (unsigned long long)(*end - *begin));
        return -1;
    }
    t->count = (size_t)count;
    t->nbytes = (size_t)(*end - *begin);
    t->name = xstrdup(name);
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int parse_metadata(st_file *f, const cJSON *md, glow_error *err)
{
    if (!cJSON_IsObject(md)) {
        glow_errorf(err, "%s: __metadata__ is not an object", f->path);
        return -1;
    }
    int n = cJSON_GetArraySize(md);
    f->meta_keys = xcalloc((size_t)n + 1, sizeof(char *));
    f->meta_vals = xcalloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *m = md->child; m; m = m->next) {
        if (!cJSON_IsString(m)) {
            glow_errorf(err, "%s: __metadata__ key '%s' is not a string", f->path, m->string);
            return -1;
        }
        for (int j = 0; j < f->n_meta; j++)
            if (strcmp(f->meta_keys[j], m->string) == 0) {
                glow_errorf(err, "%s: __metadata__ key '%s' given twice", f->path, m->string);
                return -1;
            }
        f->meta_keys[f->n_meta] = xstrdup(m->string);
        f->meta_vals[f->n_meta] = xstrdup(m->valuestring);
        f->n_meta++;
    }
    return 0;
}

/* Point each tensor at its bytes: in place when its offset is aligned to its
 * element size (the usual case: writers order tensors so), else in an aligned
 * copy, so that every data pointer may be read as its element type. */
static void place_data(st_file *f, const unsigned char *data, const uint64_t *begins)
{
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->t[i];
        size_t es = dtype_size(t->dtype);
        if (es == 0)
            es = t->count ? t->nbytes / t->count : 1;
        const unsigned char *p = data + begins[i];
        if (es > 1 && (uintptr_t)p % es != 0) {
            void *copy = xmalloc(t->nbytes);
            memcpy(copy, p, t->nbytes);
            t->data = copy;
        } else
            t->data = p;
    }
}

static int parse_header(st_file *f, glow_error *err)
{
    if (f->size < 8) {
        glow_errorf(err, "%s: truncated: %zu bytes, no header length", f->path, f->size);
        return -1;
    }
    uint64_t hlen = load_le64(f->buf);
    if (hlen > MAX_HEADER) {
        glow_errorf(err, "%s: header length %llu is over the limit of %u bytes", f->path,
                    (unsigned long long)hlen, MAX_HEADER);
        return -1;
    }
    if (hlen > f->size - 8) {
        glow_errorf(err, "%s: header length %llu runs past the end of the file (%zu bytes)",
                    f->path, (unsigned long long)hlen, f->size);
        return -1;
    }
    if (hlen < 2 || f->buf[8] != '{') {
        glow_errorf(err, "%s: header is not a JSON object", f->path);
        return -1;
    }
    const char *hdr = (const char *)f->buf + 8, *endp = NULL;
    if (memchr(hdr, '\0', hlen)) {
        glow_errorf(err, "%s: header contains a NUL byte", f->path);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &endp, 0);
    if (!root) {
        glow_errorf(err, "%s: header is not valid JSON", f->path);
        return -1;
    }
    for (const char *q = endp; q && q < hdr + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            glow_errorf(err, "%s: header has text after the JSON object", f->path);
            cJSON_Delete(root);
            return -1;
        }
    if (!cJSON_IsObject(root)) {
        glow_errorf(err, "%s: header is not a JSON object", f->path);
        cJSON_Delete(root);
        return -1;
    }
    uint64_t data_len = f->size - 8 - hlen;
    const unsigned char *data = f->buf + 8 + hlen;
    int n = cJSON_GetArraySize(root);
    f->t = xcalloc((size_t)n + 1, sizeof *f->t);
    span *sp = xcalloc((size_t)n + 1, sizeof *sp);
    uint64_t *begins = xcalloc((size_t)n + 1, sizeof *begins);
    int rc = 0;
    const cJSON *md = NULL;
    for (const cJSON *it = root->child; it && rc == 0; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (md) {
                glow_errorf(err, "%s: __metadata__ given twice", f->path);
                rc = -1;
            }
            md = it;
            continue;
        }
        st_tensor *t = &f->t[f->n];
        uint64_t b, e;
        rc = parse_tensor(f, it, t, data_len, &b, &e, err);
        if (rc == 0) {
            sp[f->n] = (span){b, e, f->n};
            begins[f->n] = b;
            f->n++;
        }
    }
    if (rc == 0 && md)
        rc = parse_metadata(f, md, err);
    if (rc == 0) {
        const char **names = xcalloc((size_t)f->n + 1, sizeof *names);
        for (int i = 0; i < f->n; i++)
            names[i] = f->t[i].name;
        qsort(names, (size_t)f->n, sizeof *names, name_cmp);
        for (int i = 1; i < f->n && rc == 0; i++)
            if (strcmp(names[i], names[i - 1]) == 0) {
                glow_errorf(err, "%s: tensor '%s' given twice", f->path, names[i]);
                rc = -1;
            }
        free(names);
        qsort(sp, (size_t)f->n, sizeof *sp, span_cmp);
        uint64_t pos = 0;
        for (int i = 0; i < f->n && rc == 0; i++) {
            const st_tensor *t = &f->t[sp[i].idx];
            if (sp[i].begin < pos) {
                glow_errorf(err, "%s: tensor '%s': data_offsets overlap another tensor",
                            f->path, t->name);
                rc = -1;
            } else if (sp[i].begin > pos) {
                glow_errorf(err, "%s: tensor '%s': gap in the data section before it",
                            f->path, t->name);
                rc = -1;
            }
            pos = sp[i].end;
        }
        if (rc == 0 && pos != data_len) {
            glow_errorf(err, "%s: data section has %llu bytes, tensors cover %llu", f->path,
                        (unsigned long long)data_len, (unsigned long long)pos);
            rc = -1;
        }
    }
    if (rc == 0)
        place_data(f, data, begins);
    free(sp);
    free(begins);
    cJSON_Delete(root);
    return rc;
}

int st_load(const char *path, st_file *f, glow_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    if (read_file(path, f, err) || parse_header(f, err)) {
        st_free(f);
        return -1;
    }
    return 0;
}

void st_free(st_file *f)
{
    for (int i = 0; i < f->n; i++) {
        const unsigned char *d = f->t[i].data;
        if (d && (d < f->buf || d >= f->buf + f->size))
            free((void *)d);
        free(f->t[i].name);
    }
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->buf)
        free(f->buf - buf_shift(f->buf, f->size));
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_vals[i];
    return NULL;
}

/* ---- writing ---- */

typedef struct {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[8];
    size_t nbytes;
    const void *data;
} wentry;

struct st_writer {
    wentry *e;
    int n, cap;
    char **mk, **mv;
    int nm, mcap;
    char bad[256]; /* first misuse, reported by commit */
};

st_writer *st_writer_new(void) { return xcalloc(1, sizeof(st_writer)); }

void st_writer_meta(st_writer *w, const char *key, const char *value)
{
    for (int i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) {
            free(w->mv[i]);
            w->mv[i] = xstrdup(value);
            return;
        }
    if (w->nm == w->mcap) {
        w->mcap = w->mcap ? 2 * w->mcap : 8;
        w->mk = xrealloc(w->mk, (size_t)w->mcap * sizeof *w->mk);
        w->mv = xrealloc(w->mv, (size_t)w->mcap * sizeof *w->mv);
    }
    w->mk[w->nm] = xstrdup(key);
    w->mv[w->nm] = xstrdup(value);
    w->nm++;
}

void st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim,
                   const int64_t *shape, const void *data)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->e = xrealloc(w->e, (size_t)w->cap * sizeof *w->e);
    }
    wentry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    e->dtype = dtype;
    e->data = data;
    size_t es = dtype_size(dtype);
    if (!es && !w->bad[0])
        snprintf(w->bad, sizeof w->bad, "tensor '%.200s': dtype not writable", name);
    if ((ndim < 0 || ndim > 8) && !w->bad[0])
        snprintf(w->bad, sizeof w->bad, "tensor '%.200s': %d dimensions", name, ndim);
    e->ndim = ndim < 0 ? 0 : ndim > 8 ? 8 : ndim;
    size_t count = 1;
    for (int i = 0; i < e->ndim; i++) {
        e->shape[i] = shape[i];
        if (shape[i] < 0 && !w->bad[0])
            snprintf(w->bad, sizeof w->bad, "tensor '%.200s': negative shape", name);
        count *= (size_t)(shape[i] < 0 ? 0 : shape[i]);
    }
    e->nbytes = count * es;
}

void st_writer_free(st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++)
        free(w->e[i].name);
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)n);
}

/* A JSON string literal; bytes >= 0x80 pass through (UTF-8 stays UTF-8). */
static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_put(b, e, 2);
        } else if (*p == '\n')
            sb_str(b, "\\n");
        else if (*p == '\t')
            sb_str(b, "\\t");
        else if (*p == '\r')
            sb_str(b, "\\r");
        else if (*p < 0x20)
            sb_fmt(b, "\\u%04x", *p);
        else
            sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

static int write_data(FILE *fp, const wentry *e)
{
    if (!e->nbytes)
        return 0;
    return fwrite(e->data, 1, e->nbytes, fp) == e->nbytes ? 0 : -1;
}

int st_writer_commit(st_writer *w, const char *path, glow_error *err)
{
    if (w->bad[0]) {
        glow_errorf(err, "%s: %s", path, w->bad);
        st_writer_free(w);
        return -1;
    }
    for (int i = 0; i < w->n; i++) {
        if (strcmp(w->e[i].name, "__metadata__") == 0) {
            glow_errorf(err, "%s: '__metadata__' cannot name a tensor", path);
            st_writer_free(w);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(w->e[i].name, w->e[j].name) == 0) {
                glow_errorf(err, "%s: tensor '%s' added twice", path, w->e[i].name);
                st_writer_free(w);
                return -1;
            }
    }
    sbuf h = {0};
    sb_str(&h, "{");
    if (w->nm) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i)
                sb_str(&h, ",");
            sb_json_string(&h, w->mk[i]);
            sb_str(&h, ":");
            sb_json_string(&h, w->mv[i]);
        }
        sb_str(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const wentry *e = &w->e[i];
        if (i || w->nm)
            sb_str(&h, ",");
        sb_json_string(&h, e->name);
        sb_fmt(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++)
            sb_fmt(&h, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        sb_fmt(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
               (unsigned long long)(off + e->nbytes));
        off += e->nbytes;
    }
    sb_str(&h, "}");
    /* Pad with spaces so the data section starts 8-byte aligned in the file. */
    while (h.n % 8)
        sb_str(&h, " ");
    unsigned char len8[8];
    store_le64(len8, h.n);
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        int bad = fwrite(len8, 1, 8, af.f) != 8 || fwrite(h.s, 1, h.n, af.f) != h.n;
        for (int i = 0; i < w->n && !bad; i++)
            bad = write_data(af.f, &w->e[i]);
        if (bad) {
            glow_errorf(err, "%s: write failed: %s", path, strerror(errno));
            atomic_abort(&af);
            rc = -1;
        } else
            rc = atomic_commit(&af, err);
    }
    free(h.s);
    st_writer_free(w);
    return rc;
}

static double element(const st_tensor *t, size_t i)
{
    switch (t->dtype) {
    case ST_F32: return ((const float *)t->data)[i];
    case ST_F64: return ((const double *)t->data)[i];
    case ST_I32: return ((const int32_t *)t->data)[i];
    case ST_I64: return (double)((const int64_t *)t->data)[i];
    case ST_U8: return ((const uint8_t *)t->data)[i];
    default: return NAN;
    }
}

st_stats st_tensor_stats(const st_tensor *t)
{
    st_stats s = {0, INFINITY, -INFINITY, 0, 0, 0};
    if (t->dtype == ST_OTHER)
        return s;
    double m2 = 0;
    size_t n = 0;
    for (size_t i = 0; i < t->count; i++) {
        double x = element(t, i);
        if (!isfinite(x)) {
            s.nonfinite++;
            continue;
        }
        n++;
        s.min = fmin(s.min, x);
        s.max = fmax(s.max, x);
        double d = x - s.mean;
        s.mean += d / (double)n;
        m2 += d * (x - s.mean);
    }
    s.ok = n > 0;
    s.std = n ? sqrt(m2 / (double)n) : 0;
    return s;
}
