#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/atomic_file.h"
#include "base/mem_budget.h"

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

/* An aligned block for len file bytes whose first 8 are first8, reserved in the
 * memory budget (f->mem). */
static int alloc_block(st_file *f, const unsigned char *first8, size_t len, glow_error *err)
{
    size_t shift = buf_shift(first8, len);
    uint64_t bytes = ((uint64_t)len + shift + DATA_ALIGN) / DATA_ALIGN * DATA_ALIGN;
    if (glow_mem_reserve(bytes, f->path, err) != 0)
        return -1;
    unsigned char *block = aligned_alloc(DATA_ALIGN, (size_t)bytes);
    if (!block)
        glow_die(EXIT_BADINPUT, "out of memory (%zu bytes)", len);
    f->mem += bytes;
    f->buf = block + shift;
    f->size = len;
    memcpy(f->buf, first8, len < 8 ? len : 8);
    return 0;
}

/* ---- the header text, checked before cJSON reads it ---- */

/* The text of one JSON number of the header, in document order. */
typedef struct {
    const char *p;
    size_t n;
} numlit;

/* A parsed header: the cJSON tree (every number node's valueint is the index
 * of its literal in lits) and the memory reserved for it. */
typedef struct {
    cJSON *root;
    numlit *lits;
    size_t nlits;
    uint64_t mem;
} header;

static void header_free(header *h)
{
    cJSON_Delete(h->root);
    free(h->lits);
    glow_mem_release(h->mem);
    memset(h, 0, sizeof *h);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t k = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (k == 0 || k > n)
        return 0;
    for (size_t i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return k;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* What cJSON would accept but a safetensors header must not have: bytes that
 * are not UTF-8, control characters or a \u0000 escape inside a string (cJSON
 * would end the C string there). Collects the number literals and counts the
 * values, for the memory cJSON's tree will take. */
static int scan_header(const char *path, const unsigned char *s, size_t n, header *h,
                       uint64_t *values, uint64_t *strbytes, glow_error *err)
{
    size_t cap = 0;
    *values = *strbytes = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"') {
            ++*values;
            size_t start = ++i;
            while (i < n && s[i] != '"') {
                unsigned d = s[i];
                if (d == '\\' && i + 1 < n) {
                    if (s[i + 1] == 'u' && i + 5 < n) {
                        int v = 0;
                        for (int k = 0; k < 4; k++)
                            v = v * 16 + (hexval(s[i + 2 + k]) < 0 ? 1 : hexval(s[i + 2 + k]));
                        if (v == 0) {
                            glow_errorf(err, "%s: header byte %zu: the escape \\u0000 (a NUL "
                                             "character) in a string", path, 8 + i);
                            return -1;
                        }
                    }
                    i += 2;
                } else if (d < 0x20) {
                    glow_errorf(err, "%s: header byte %zu: control character 0x%02x in a string",
                                path, 8 + i, d);
                    return -1;
                } else if (d >= 0x80) {
                    size_t k = utf8_len(s + i, n - i);
                    if (!k) {
                        glow_errorf(err, "%s: header byte %zu: not valid UTF-8", path, 8 + i);
                        return -1;
                    }
                    i += k;
                } else
                    i++;
            }
            *strbytes += i - start + 1;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && (s[j] == '-' || s[j] == '+' || s[j] == '.' || s[j] == 'e' ||
                             s[j] == 'E' || (s[j] >= '0' && s[j] <= '9')))
                j++;
            if (h->nlits == cap) {
                cap = cap ? 2 * cap : 256;
                h->lits = xrealloc(h->lits, cap * sizeof *h->lits);
            }
            h->lits[h->nlits++] = (numlit){(const char *)s + i, j - i};
            ++*values;
            i = j;
        } else if (c >= 0x80) {
            glow_errorf(err, "%s: header byte %zu: %s outside a string", path, 8 + i,
                        utf8_len(s + i, n - i) ? "a non-ASCII character" : "not valid UTF-8");
            return -1;
        } else {
            if (c == '[' || c == '{' || c == 't' || c == 'f' || c == 'n')
                ++*values;
            while (i < n && (c == 't' || c == 'f' || c == 'n') && s[i] >= 'a' && s[i] <= 'z')
                i++;
            if (!(c == 't' || c == 'f' || c == 'n'))
                i++;
        }
    }
    return 0;
}

/* Number nodes in document order get the index of their literal. */
static void number_literals(cJSON *node, size_t *next)
{
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node))
            node->valueint = (int)(*next)++;
        number_literals(node->child, next);
    }
}

/* A literal that is a plain non-negative integer: 0 with *v set, -1 when it is
 * not one (a sign, a fraction, an exponent), -2 when it is past 2^64 - 1. */
static int literal_u64(const header *h, const cJSON *num, uint64_t *v)
{
    if (!cJSON_IsNumber(num) || num->valueint < 0 || (size_t)num->valueint >= h->nlits)
        return -1;
    const numlit *l = &h->lits[num->valueint];
    if (l->n == 0 || (l->n > 1 && l->p[0] == '0'))
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (l->p[i] < '0' || l->p[i] > '9')
            return -1;
        unsigned d = (unsigned)(l->p[i] - '0');
        if (x > (UINT64_MAX - d) / 10)
            return -2;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

/* Parse the hlen header bytes at text: checks, memory, cJSON, the literals. */
static int parse_json(const char *path, const char *text, uint64_t hlen, header *h,
                      glow_error *err)
{
    memset(h, 0, sizeof *h);
    if (hlen < 2 || text[0] != '{') {
        glow_errorf(err, "%s: header is not a JSON object", path);
        return -1;
    }
    if (memchr(text, '\0', hlen)) {
        glow_errorf(err, "%s: header contains a NUL byte", path);
        return -1;
    }
    uint64_t values, strbytes;
    if (scan_header(path, (const unsigned char *)text, hlen, h, &values, &strbytes, err) != 0) {
        header_free(h);
        return -1;
    }
    /* cJSON's nodes, their strings, and the tensor table built from them. */
    uint64_t need = glow_mem_add(glow_mem_mul(values, sizeof(cJSON) + 32 + sizeof(st_tensor)),
                                 glow_mem_mul(strbytes, 2));
    char what[600];
    snprintf(what, sizeof what, "%s: the header's %llu JSON values", path,
             (unsigned long long)values);
    if (glow_mem_reserve(need, what, err) != 0) {
        header_free(h);
        return -1;
    }
    h->mem = need;
    const char *endp = NULL;
    h->root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &endp, 0);
    if (!h->root) {
        glow_errorf(err, "%s: header is not valid JSON", path);
        header_free(h);
        return -1;
    }
    for (const char *q = endp; q && q < text + hlen; q++)
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            glow_errorf(err, "%s: header has text after the JSON object", path);
            header_free(h);
            return -1;
        }
    if (!cJSON_IsObject(h->root)) {
        glow_errorf(err, "%s: header is not a JSON object", path);
        header_free(h);
        return -1;
    }
    size_t next = 0;
    number_literals(h->root, &next);
    if (next != h->nlits) { /* the scan and cJSON disagree on what a number is */
        glow_errorf(err, "%s: header is not valid JSON (numbers)", path);
        header_free(h);
        return -1;
    }
    return 0;
}

/* The end of the data the header declares: the largest data_offsets end, 0 when
 * there is none or it cannot be read (parse_header then says why). */
static uint64_t declared_end(const header *h)
{
    uint64_t end = 0;
    for (const cJSON *it = h->root->child; it; it = it->next) {
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        uint64_t e;
        if (cJSON_IsArray(off) && cJSON_GetArraySize(off) == 2 &&
            literal_u64(h, off->child->next, &e) == 0 && e > end)
            end = e;
    }
    return end;
}

static int read_error(const char *path, FILE *fp, glow_error *err)
{
    glow_errorf(err, "%s: read failed: %s", path, ferror(fp) ? strerror(errno) : "file shrank");
    return -1;
}

/* A stream: the 8 bytes, the header, then exactly the data it declares (never
 * more: an endless input is not read to its end). The header is parsed here. */
static int read_stream(FILE *fp, st_file *f, header *h, glow_error *err)
{
    unsigned char first[8] = {0};
    size_t got = read_full(fp, first, 8);
    if (ferror(fp))
        return read_error(f->path, fp, err);
    uint64_t hlen = got == 8 ? load_le64(first) : 0;
    if (got < 8 || hlen > MAX_HEADER)
        return alloc_block(f, first, got, err); /* parse_header says what is wrong */
    char what[600];
    snprintf(what, sizeof what, "%s: a header of %llu bytes", f->path, (unsigned long long)hlen);
    if (glow_mem_reserve(hlen, what, err) != 0)
        return -1;
    char *text = xmalloc(hlen ? (size_t)hlen : 1);
    got = read_full(fp, text, (size_t)hlen);
    int rc = 0;
    if (ferror(fp))
        rc = read_error(f->path, fp, err);
    else if (got < hlen) { /* parse_header says it runs past the end */
        if ((rc = alloc_block(f, first, (size_t)(8 + got), err)) == 0)
            memcpy(f->buf + 8, text, got);
    } else if (parse_json(f->path, text, hlen, h, err) != 0)
        rc = -1;
    else {
        uint64_t data = declared_end(h);
        char what2[600];
        snprintf(what2, sizeof what2, "%s: %llu bytes of tensor data", f->path,
                 (unsigned long long)data);
        if (data > SIZE_MAX / 2) {
            glow_mem_reserve(UINT64_MAX, what2, err);
            rc = -1;
        } else if ((rc = alloc_block(f, first, (size_t)(8 + hlen + data), err)) == 0) {
            memcpy(f->buf + 8, text, (size_t)hlen);
            for (size_t i = 0; i < h->nlits; i++) /* the literals now live in f->buf */
                h->lits[i].p = (const char *)f->buf + 8 + (h->lits[i].p - text);
            got = read_full(fp, f->buf + 8 + hlen, (size_t)data);
            if (ferror(fp))
                rc = read_error(f->path, fp, err);
            else if (got < data)
                f->size = (size_t)(8 + hlen + got); /* parse_header reports it */
            else if (fgetc(fp) != EOF) {
                glow_errorf(err, "%s: data section has more than the %llu bytes the tensors cover",
                            f->path, (unsigned long long)data);
                rc = -1;
            }
        }
    }
    free(text);
    glow_mem_release(hlen);
    if (rc)
        header_free(h);
    return rc;
}

/* A regular file of known size is read straight into its aligned block (one
 * copy of a large checkpoint in memory, not three). */
static int read_regular(FILE *fp, st_file *f, size_t len, glow_error *err)
{
    unsigned char first[8] = {0};
    size_t head = len < 8 ? len : 8;
    if (read_full(fp, first, head) != head)
        return read_error(f->path, fp, err);
    if (alloc_block(f, first, len, err) != 0)
        return -1;
    if (read_full(fp, f->buf + head, len - head) != len - head)
        return read_error(f->path, fp, err);
    return 0;
}

static int read_file(const char *path, st_file *f, header *h, glow_error *err)
{
    if (strcmp(path, "-") == 0) {
        free(f->path);
        f->path = xstrdup("standard input");
        return read_stream(stdin, f, h, err);
    }
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
        rc = read_regular(fp, f, (size_t)st.st_size, err);
    else
        rc = read_stream(fp, f, h, err);
    fclose(fp);
    return rc;
}

static int parse_tensor(st_file *f, const header *h, const cJSON *it, st_tensor *t,
                        uint64_t data_len, uint64_t *begin, uint64_t *end, glow_error *err)
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
    int i = 0, overflow = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        int r = literal_u64(h, d, &v);
        if (r == 0 && v > (uint64_t)INT64_MAX)
            r = -2;
        if (r) {
            const numlit *l = cJSON_IsNumber(d) ? &h->lits[d->valueint] : NULL;
            glow_errorf(err, "%s: tensor '%s': shape entry %d%s%.*s%s is %s", path, name, i,
                        l ? " (" : "", l ? (int)(l->n > 40 ? 40 : l->n) : 0, l ? l->p : "",
                        l ? ")" : "",
                        r == -2 ? "larger than 2^63 - 1" : "not a non-negative integer");
            return -1;
        }
        t->shape[i] = (int64_t)v;
        if (v && count > UINT64_MAX / v)
            overflow = 1;
        count = overflow ? UINT64_MAX : count * v;
    }
    if (cJSON_GetArraySize(off) != 2) {
        glow_errorf(err, "%s: tensor '%s': data_offsets must be [begin, end]", path, name);
        return -1;
    }
    int rb = literal_u64(h, off->child, begin), re = literal_u64(h, off->child->next, end);
    if (rb || re) {
        glow_errorf(err, "%s: tensor '%s': data_offsets are %s", path, name,
                    rb == -1 || re == -1 ? "not non-negative integers"
                                         : "larger than 2^64 - 1");
        return -1;
    }
    if (*end < *begin || *end > data_len) {
        glow_errorf(err,
                    "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section "
                    "(%llu bytes)",
                    path, name, (unsigned long long)*begin, (unsigned long long)*end,
                    (unsigned long long)data_len);
        return -1;
    }
    if (overflow || count > UINT64_MAX / esize || count * esize != *end - *begin) {
        char held[48];
        if (overflow || count > UINT64_MAX / esize)
            snprintf(held, sizeof held, "2^64 or more");
        else
            snprintf(held, sizeof held, "%llu", (unsigned long long)(count * esize));
        glow_errorf(err, "%s: tensor '%s': shape holds %s bytes but data_offsets span %llu",
                    path, name, held, (unsigned long long)(*end - *begin));
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
 * copy (reserved in the budget), so that every data pointer may be read as its
 * element type. */
static int place_data(st_file *f, const unsigned char *data, const uint64_t *begins,
                      glow_error *err)
{
    for (int i = 0; i < f->n; i++) {
        st_tensor *t = &f->t[i];
        size_t es = dtype_size(t->dtype);
        if (es == 0)
            es = t->count ? t->nbytes / t->count : 1;
        const unsigned char *p = data + begins[i];
        if (es > 1 && t->nbytes && (uintptr_t)p % es != 0) {
            char what[600];
            snprintf(what, sizeof what, "%s: an aligned copy of tensor '%s'", f->path, t->name);
            if (glow_mem_reserve(t->nbytes, what, err) != 0)
                return -1;
            f->mem += t->nbytes;
            void *copy = xmalloc(t->nbytes);
            memcpy(copy, p, t->nbytes);
            t->data = copy;
            t->data_owned = 1;
        } else
            t->data = p;
    }
    return 0;
}

static int parse_header(st_file *f, header *h, glow_error *err)
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
    if (!h->root && parse_json(f->path, (const char *)f->buf + 8, hlen, h, err) != 0)
        return -1;
    const cJSON *root = h->root;
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
        rc = parse_tensor(f, h, it, t, data_len, &b, &e, err);
        if (rc == 0) {
            sp[f->n] = (span){b, e, f->n};
            begins[f->n] = b;
            t->offset = b;
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
    if (rc == 0 && !f->fp) /* st_open leaves the data in the file */
        rc = place_data(f, data, begins, err);
    free(sp);
    free(begins);
    return rc;
}

/* The end of st_load and st_open: the header read (rc 0) is parsed, and on any
 * failure f is freed, so a caller has either a whole st_file or nothing. */
static int parsed(st_file *f, header *h, int rc, glow_error *err)
{
    if (rc == 0)
        rc = parse_header(f, h, err);
    header_free(h);
    if (rc) {
        st_free(f);
        return -1;
    }
    return 0;
}

int st_load(const char *path, st_file *f, glow_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(path);
    header h;
    memset(&h, 0, sizeof h);
    return parsed(f, &h, read_file(path, f, &h, err), err);
}

/* st_open's reading: the 8 bytes and the header into f->buf (the header parsed
 * for a stream, whose size is what the header declares), f->size the file's;
 * a file too short for its header gets the bytes there are, for parse_header to
 * say what is wrong. */
static int open_header(st_file *f, header *h, glow_error *err)
{
    FILE *fp = f->fp;
    struct stat st;
    const int regular = fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode);
    if (!regular && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
        glow_errorf(err, "%s: is a directory", f->path);
        return -1;
    }
    f->stream = !regular;
    unsigned char first[8] = {0};
    size_t got = read_full(fp, first, 8);
    if (ferror(fp))
        return read_error(f->path, fp, err);
    const uint64_t fsize = regular ? (uint64_t)st.st_size : 0;
    uint64_t hlen = got == 8 ? load_le64(first) : 0;
    if (got < 8 || hlen > MAX_HEADER || (regular && hlen > fsize - 8)) {
        if (alloc_block(f, first, got, err) != 0)
            return -1;
        f->size = regular ? (size_t)fsize : got;
        return 0;
    }
    if (alloc_block(f, first, (size_t)(8 + hlen), err) != 0)
        return -1;
    got = read_full(fp, f->buf + 8, (size_t)hlen);
    if (ferror(fp))
        return read_error(f->path, fp, err);
    if (got < hlen) { /* a stream that ends in its header (or a file that shrank) */
        f->size = (size_t)(8 + got);
        return 0;
    }
    if (parse_json(f->path, (const char *)f->buf + 8, hlen, h, err) != 0)
        return -1;
    uint64_t end = regular ? fsize : 8 + hlen + declared_end(h);
    if (end > SIZE_MAX / 2) {
        glow_errorf(err, "%s: a data section of %llu bytes", f->path, (unsigned long long)end);
        return -1;
    }
    f->size = (size_t)end;
    f->data_start = 8 + hlen;
    return 0;
}

int st_open(const char *path, st_file *f, glow_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(strcmp(path, "-") == 0 ? "standard input" : path);
    if (strcmp(path, "-") == 0)
        f->fp = stdin;
    else if (!(f->fp = fopen(path, "rb"))) {
        glow_errorf(err, "%s: cannot open: %s", path, strerror(errno));
        st_free(f);
        return -1;
    }
    header h;
    memset(&h, 0, sizeof h);
    return parsed(f, &h, open_header(f, &h, err), err);
}

/* n bytes of a stream read and dropped */
static int skip_bytes(st_file *f, uint64_t n, glow_error *err)
{
    unsigned char buf[1 << 16];
    while (n > 0) {
        size_t want = n < sizeof buf ? (size_t)n : sizeof buf;
        if (read_full(f->fp, buf, want) != want)
            return read_error(f->path, f->fp, err);
        n -= want;
        f->pos += want;
    }
    return 0;
}

int st_read(st_file *f, const st_tensor *t, void *dst, glow_error *err)
{
    if (!f->fp) {
        memcpy(dst, t->data, t->nbytes);
        return 0;
    }
    if (f->stream) {
        if (t->offset < f->pos) {
            glow_errorf(err, "%s: tensor '%s': a stream is read in the order of the data",
                        f->path, t->name);
            return -1;
        }
        if (skip_bytes(f, t->offset - f->pos, err) != 0)
            return -1;
    } else if (fseeko(f->fp, (off_t)(f->data_start + t->offset), SEEK_SET) != 0) {
        glow_errorf(err, "%s: tensor '%s': cannot seek: %s", f->path, t->name, strerror(errno));
        return -1;
    }
    if (read_full(f->fp, dst, t->nbytes) != t->nbytes) {
        glow_errorf(err, "%s: tensor '%s': read failed: %s", f->path, t->name,
                    ferror(f->fp) ? strerror(errno) : "the file ends before its data");
        return -1;
    }
    f->pos = t->offset + t->nbytes;
    return 0;
}

int st_finish(st_file *f, glow_error *err)
{
    if (!f->fp || !f->stream)
        return 0;
    const uint64_t data = f->size - f->data_start;
    if (f->pos < data && skip_bytes(f, data - f->pos, err) != 0)
        return -1;
    if (fgetc(f->fp) != EOF) {
        glow_errorf(err, "%s: data section has more than the %llu bytes the tensors cover",
                    f->path, (unsigned long long)data);
        return -1;
    }
    return 0;
}

int st_load_buffer(const char *name, const void *data, size_t n, st_file *f, glow_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = xstrdup(name);
    header h;
    memset(&h, 0, sizeof h);
    unsigned char first[8] = {0};
    memcpy(first, data, n < 8 ? n : 8);
    int rc = alloc_block(f, first, n, err);
    if (rc == 0) {
        memcpy(f->buf, data, n);
        rc = parse_header(f, &h, err);
    }
    header_free(&h);
    if (rc) {
        st_free(f);
        return -1;
    }
    return 0;
}

void st_free(st_file *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->t[i].data_owned)
            free((void *)f->t[i].data);
        free(f->t[i].name);
    }
    free(f->t);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->fp && f->fp != stdin)
        fclose(f->fp);
    if (f->buf)
        free(f->buf - buf_shift(f->buf, f->size));
    glow_mem_release(f->mem);
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
    st_fetch_fn fetch; /* or the bytes from here (st_writer_add_fetch) */
    void *fetch_ctx;
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

void st_writer_add_fetch(st_writer *w, const char *name, st_dtype dtype, int ndim,
                         const int64_t *shape, st_fetch_fn fetch, void *ctx)
{
    st_writer_add(w, name, dtype, ndim, shape, NULL);
    w->e[w->n - 1].fetch = fetch;
    w->e[w->n - 1].fetch_ctx = ctx;
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

/* stage: ST_FETCH_PIECE bytes for a fetched tensor's pieces */
static int write_data(FILE *fp, const wentry *e, void *stage)
{
    if (!e->nbytes)
        return 0;
    if (!e->fetch)
        return fwrite(e->data, 1, e->nbytes, fp) == e->nbytes ? 0 : -1;
    for (size_t off = 0; off < e->nbytes; off += ST_FETCH_PIECE) {
        const size_t n = e->nbytes - off < ST_FETCH_PIECE ? e->nbytes - off : ST_FETCH_PIECE;
        e->fetch(e->fetch_ctx, off, stage, n);
        if (fwrite(stage, 1, n, fp) != n)
            return -1;
    }
    return 0;
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
    size_t stage_bytes = 0; /* a piece, or the largest fetched tensor when smaller */
    for (int i = 0; i < w->n; i++)
        if (w->e[i].fetch && w->e[i].nbytes > stage_bytes)
            stage_bytes = w->e[i].nbytes < ST_FETCH_PIECE ? w->e[i].nbytes : ST_FETCH_PIECE;
    void *stage = stage_bytes ? xmalloc(stage_bytes) : NULL;
    atomic_file af;
    int rc = atomic_open(&af, path, err);
    if (rc == 0) {
        int bad = fwrite(len8, 1, 8, af.f) != 8 || fwrite(h.s, 1, h.n, af.f) != h.n;
        for (int i = 0; i < w->n && !bad; i++)
            bad = write_data(af.f, &w->e[i], stage);
        if (bad) {
            glow_errorf(err, "%s: write failed: %s", path, strerror(errno));
            atomic_abort(&af);
            rc = -1;
        } else
            rc = atomic_commit(&af, err);
    }
    free(stage);
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
