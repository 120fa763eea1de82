/* PyTorch in: the zip reader (data/torch_zip.h), the restricted pickle reader
 * (data/torch_pickle.h), the state-dict wrapper rules (data/torch_state.h) on files
 * built here byte by byte, and the import of the ports' own checkpoints in
 * test/data/ports/ (model/import_torch.h): the imported model, run on the CPU with
 * the stored noise, gives the port's bpd to 1e-4, and every refusal names its
 * reason. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <zlib.h>

#include "base/rng.h"
#include "check.h"
#include "data/safetensors.h"
#include "data/torch_pickle.h"
#include "data/torch_state.h"
#include "data/torch_zip.h"
#include "device/device.h"
#include "model/checkpoint.h"
#include "model/import_torch.h"
#include "model/model.h"

#define PORTS "test/data/ports/"

static backend *B;

/* ---- bytes ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *x, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, x, n);
    b->n += n;
}
static void put8(buf *b, unsigned v) { unsigned char c = (unsigned char)v; put(b, &c, 1); }
static void put16(buf *b, unsigned v) { put8(b, v & 0xff); put8(b, v >> 8); }
static void put32(buf *b, uint32_t v) { put16(b, v & 0xffff); put16(b, v >> 16); }
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
/* a literal, NUL bytes included */
#define PUTL(b, lit) put((b), (lit), sizeof(lit) - 1)

/* pickle pieces */
static void pk_str(buf *b, const char *s)
{
    put8(b, 'X');
    put32(b, (uint32_t)strlen(s));
    puts_(b, s);
}
static void pk_int(buf *b, long v)
{
    if (v >= 0 && v < 256) {
        put8(b, 'K');
        put8(b, (unsigned)v);
    } else {
        put8(b, 'J');
        put32(b, (uint32_t)(int32_t)v);
    }
}
static void pk_global(buf *b, const char *mod, const char *name)
{
    put8(b, 'c');
    puts_(b, mod);
    put8(b, '\n');
    puts_(b, name);
    put8(b, '\n');
}
/* _rebuild_tensor_v2 of storage KEY (float32, numel elements) */
static void pk_tensor(buf *b, const char *key, long numel, long offset, int nd, const long *shape,
                      const long *stride)
{
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put8(b, '(');
    put8(b, '(');
    pk_str(b, "storage");
    pk_global(b, "torch", "FloatStorage");
    pk_str(b, key);
    pk_str(b, "cpu");
    pk_int(b, numel);
    put8(b, 't');
    put8(b, 'Q');
    pk_int(b, offset);
    put8(b, '(');
    for (int i = 0; i < nd; i++)
        pk_int(b, shape[i]);
    put8(b, 't');
    put8(b, '(');
    for (int i = 0; i < nd; i++)
        pk_int(b, stride[i]);
    put8(b, 't');
    put8(b, 0x89);
    pk_global(b, "collections", "OrderedDict");
    put8(b, ')');
    put8(b, 'R');
    put8(b, 't');
    put8(b, 'R');
}

/* a zip of named entries (stored, or deflated with deflate) */
typedef struct {
    const char *name;
    const void *data;
    size_t n;
} entry;

static buf make_zip(const entry *e, int n, int use_deflate)
{
    buf z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, e[i].data, (uInt)e[i].n);
        unsigned char *comp = NULL;
        uLongf clen = compressBound((uLong)e[i].n) + 16;
        const void *payload = e[i].data;
        size_t plen = e[i].n;
        if (use_deflate) {
            z_stream s = {0};
            comp = malloc(clen);
            deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
            s.next_in = (Bytef *)e[i].data;
            s.avail_in = (uInt)e[i].n;
            s.next_out = comp;
            s.avail_out = (uInt)clen;
            deflate(&s, Z_FINISH);
            plen = s.total_out;
            deflateEnd(&s);
            payload = comp;
        }
        uint32_t off = (uint32_t)z.n;
        put32(&z, 0x04034b50); put16(&z, 20); put16(&z, 0); put16(&z, use_deflate ? 8 : 0);
        put16(&z, 0); put16(&z, 0); put32(&z, crc); put32(&z, (uint32_t)plen);
        put32(&z, (uint32_t)e[i].n); put16(&z, (unsigned)strlen(e[i].name)); put16(&z, 0);
        puts_(&z, e[i].name);
        put(&z, payload, plen);
        put32(&cd, 0x02014b50); put16(&cd, 20); put16(&cd, 20); put16(&cd, 0);
        put16(&cd, use_deflate ? 8 : 0); put16(&cd, 0); put16(&cd, 0); put32(&cd, crc);
        put32(&cd, (uint32_t)plen); put32(&cd, (uint32_t)e[i].n);
        put16(&cd, (unsigned)strlen(e[i].name)); put16(&cd, 0); put16(&cd, 0); put16(&cd, 0);
        put16(&cd, 0); put32(&cd, 0); put32(&cd, off);
        puts_(&cd, e[i].name);
        free(comp);
    }
    uint32_t cdo = (uint32_t)z.n;
    put(&z, cd.p, cd.n);
    put32(&z, 0x06054b50); put16(&z, 0); put16(&z, 0); put16(&z, (unsigned)n);
    put16(&z, (unsigned)n); put32(&z, (uint32_t)cd.n); put32(&z, cdo); put16(&z, 0);
    free(cd.p);
    return z;
}

/* ---- the pickle reader ---- */

static int parse(const buf *b, tp_doc *d, glow_error *err)
{
    memset(err, 0, sizeof *err);
    return tp_parse("t.pt: t/data.pkl", b->p, b->n, d, err);
}

/* a pickle that must be refused with a message containing want */
static void refused(const char *hexish, size_t n, const char *want)
{
    buf b = {0};
    put(&b, hexish, n);
    tp_doc d;
    glow_error err;
    int rc = parse(&b, &d, &err);
    CHECKF(rc != 0 && strstr(err.msg, want), "want '%s', got rc %d '%s'", want, rc, err.msg);
    if (rc == 0)
        tp_free(&d);
    free(b.p);
}
#define REFUSED(lit, want) refused(lit, sizeof(lit) - 1, want)

static void test_pickle(void)
{
    tp_doc d;
    glow_error err;
    /* values: dict of int, negative LONG1, float, tuple, list, None, bools */
    buf b = {0};
    PUTL(&b, "\x80\x02}q\x00(");
    pk_str(&b, "i"); pk_int(&b, -7);
    pk_str(&b, "l"); put(&b, "\x8a\x02\x00\xff", 4);          /* LONG1 -256 */
    pk_str(&b, "f"); put(&b, "G\x3f\xf8\x00\x00\x00\x00\x00\x00", 9); /* 1.5 */
    pk_str(&b, "t"); PUTL(&b, "K\x01K\x02\x86");
    pk_str(&b, "L"); PUTL(&b, "](K\x03N\x88\x89" "e");
    pk_str(&b, "m"); PUTL(&b, "h\x00");                      /* the dict itself */
    PUTL(&b, "u.");
    CHECK(parse(&b, &d, &err) == 0);
    if (d.root) {
        CHECK(d.root->kind == TPV_DICT && d.root->n == 12);
        CHECK(tp_dict_get(d.root, "i")->i == -7);
        CHECK(tp_dict_get(d.root, "l")->i == -256);
        CHECK(tp_dict_get(d.root, "f")->f == 1.5);
        const tp_value *t = tp_dict_get(d.root, "t");
        CHECK(t->kind == TPV_TUPLE && t->n == 2 && t->v[1]->i == 2);
        const tp_value *l = tp_dict_get(d.root, "L");
        CHECK(l->kind == TPV_LIST && l->n == 4 && l->v[1]->kind == TPV_NONE &&
              l->v[2]->kind == TPV_BOOL && l->v[2]->i == 1 && l->v[3]->i == 0);
        CHECK(tp_dict_get(d.root, "m") == d.root);
        tp_free(&d);
    }
    free(b.p);

    /* a tensor: extent checked against the storage */
    long sh[2] = {2, 3}, st[2] = {3, 1};
    b = (buf){0};
    PUTL(&b, "\x80\x02}(");
    pk_str(&b, "w");
    pk_tensor(&b, "0", 6, 0, 2, sh, st);
    PUTL(&b, "u.");
    CHECK(parse(&b, &d, &err) == 0);
    if (d.root) {
        const tp_value *w = tp_dict_get(d.root, "w");
        CHECK(w && w->kind == TPV_TENSOR && w->t->ndim == 2 && w->t->count == 6);
        CHECK(d.n_st == 1 && d.st[0].dtype == TP_F32 && d.st[0].numel == 6);
        tp_free(&d);
    }
    free(b.p);
    b = (buf){0};
    PUTL(&b, "\x80\x02}(");
    pk_str(&b, "w");
    pk_tensor(&b, "0", 5, 0, 2, sh, st);
    PUTL(&b, "u.");
    CHECK(parse(&b, &d, &err) != 0 && strstr(err.msg, "reaches element 5 of storage '0'"));
    free(b.p);

    /* globals outside the allow-list, named with their offset */
    REFUSED("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00ls\x85R.",
            "t.pt: t/data.pkl: offset 2: global 'os.system' is not allowed");
    REFUSED("\x80\x04\x8c\x08" "builtins\x8c\x04" "eval\x93.", "global 'builtins.eval'");
    REFUSED("\x80\x02" "ctorch\nFloatStorage\n)R.", "torch.FloatStorage cannot be called");
    REFUSED("\x80\x02" "ccollections\nOrderedDict\nK\x01\x85R.", "called with arguments");
    /* opcodes a state dict does not use */
    REFUSED("\x80\x02(cos\nsystem\ni.", "global 'os.system'");
    REFUSED("\x80\x02(i__main__\nX\n.", "opcode INST (0x69) is not allowed");
    REFUSED("\x80\x02)\x81.", "opcode NEWOBJ (0x81)");
    REFUSED("\x80\x02\x82\x01.", "opcode EXT1 (0x82)");
    REFUSED("\x80\x02P0\n.", "opcode PERSID (0x50)");
    REFUSED("\x80\x02N2.", "opcode DUP (0x32)");
    REFUSED("\x80\x04\x8f.", "opcode EMPTY_SET (0x8f)");
    REFUSED("\x80\x02\xff.", "offset 2: unknown opcode 0xff");
    /* structure */
    REFUSED("\x80\x06}.", "pickle protocol 6");
    REFUSED("\x80\x02}", "ends without STOP");
    REFUSED("\x80\x02}.N", "1 bytes after STOP");
    REFUSED("\x80\x02}}.", "STOP with 2 values");
    REFUSED("\x80\x02X\x09\x00\x00\x00" "abc", "truncated");
    REFUSED("\x80\x02X\x02\x00\x00\x00\xc3\x28.", "not UTF-8");
    REFUSED("\x80\x02}q\x05.", "memo slot 5 filled out of order");
    REFUSED("\x80\x02h\x00.", "memo slot 0 is empty");
    REFUSED("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.", "9 bytes");
    REFUSED("\x80\x02]N\x85" "b.", "BUILD on a list");
    REFUSED("\x80\x02]K\x01K\x02s.", "SETITEM(S) on a list");
    REFUSED("\x80\x02u.", "no MARK");
    REFUSED("\x80\x02(X\x03\x00\x00\x00" "abcQ.", "a persistent id other than");
    REFUSED("\x80\x02R.", "stack underflow");
}

/* ---- the zip container and the state dict ---- */

static int load_zip(const buf *z, torch_state *sd, glow_error *err)
{
    memset(err, 0, sizeof *err);
    return torch_state_load_buffer("t.pt", z->p, z->n, sd, err);
}

/* A state dict {"a": 2x3 float32 seen through strides (1, 2) of storage 0 = 0..5} */
static buf sd_pickle(const char *wrap, const char *prefix)
{
    buf b = {0};
    long sh[2] = {2, 3}, st[2] = {1, 2}, sh1[1] = {2}, st1[1] = {1};
    char name[64];
    PUTL(&b, "\x80\x02");
    if (wrap) {
        PUTL(&b, "}(");
        pk_str(&b, "epoch");
        pk_int(&b, 3);
        pk_str(&b, wrap);
    }
    PUTL(&b, "ccollections\nOrderedDict\n)R(");
    snprintf(name, sizeof name, "%sa", prefix);
    pk_str(&b, name);
    pk_tensor(&b, "0", 6, 0, 2, sh, st);
    snprintf(name, sizeof name, "%sb", prefix);
    pk_str(&b, name);
    pk_tensor(&b, "0", 6, 4, 1, sh1, st1);
    PUTL(&b, "u}(X\x09\x00\x00\x00_metadata}ub"); /* BUILD: dropped */
    if (wrap)
        PUTL(&b, "u");
    PUTL(&b, ".");
    return b;
}

static void test_zip(void)
{
    float vals[6] = {0, 1, 2, 3, 4, 5};
    torch_state sd;
    glow_error err;
    for (int deflate = 0; deflate < 2; deflate++) {
        buf p = sd_pickle(deflate ? "model" : NULL, deflate ? "module." : "");
        entry e[] = {{"t/data.pkl", p.p, p.n}, {"t/data/0", vals, sizeof vals},
                     {"t/version", "3\n", 2}, {"t/byteorder", "little", 6}};
        buf z = make_zip(e, 4, deflate);
        CHECKF(load_zip(&z, &sd, &err) == 0, "%s", err.msg);
        if (sd.n == 2) {
            const torch_tensor *a = torch_state_find(&sd, "a");
            /* element [i][j] at storage i + 2j */
            CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3);
            double want[6] = {0, 2, 4, 1, 3, 5};
            int same = a != NULL;
            for (int i = 0; a && i < 6; i++)
                same &= torch_tensor_at(a, (size_t)i) == want[i];
            CHECK(same);
            const torch_tensor *t = torch_state_find(&sd, "b");
            CHECK(t && t->count == 2 && torch_tensor_at(t, 0) == 4 && torch_tensor_at(t, 1) == 5);
            CHECK(deflate ? sd.wrapper && !strcmp(sd.wrapper, "model") && sd.stripped == 1
                          : !sd.wrapper && !sd.stripped);
            torch_state_free(&sd);
        }
        /* the storage's CRC in the central directory, one bit changed */
        size_t cd = z.n - 22 - (46 + 10) - (46 + 8) - (46 + 9) - (46 + 11);
        z.p[cd + 46 + 10 + 16] ^= 1;
        int rc = load_zip(&z, &sd, &err);
        CHECKF(rc != 0 && strstr(err.msg, "t.pt: zip: entry 't/data/0': CRC-32 mismatch"), "%s",
               err.msg);
        free(z.p);
        free(p.p);
    }
    buf p = sd_pickle(NULL, "");
    /* storage entry of the wrong size; a missing one */
    entry e1[] = {{"t/data.pkl", p.p, p.n}, {"t/data/0", vals, 5 * 4}};
    buf z = make_zip(e1, 2, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "entry 't/data/0' has 20 bytes"));
    free(z.p);
    z = make_zip(e1, 1, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "no entry 't/data/0' for tensor 'a'"));
    free(z.p);
    /* a name twice */
    entry e2[] = {{"t/data.pkl", p.p, p.n}, {"t/data/0", vals, sizeof vals},
                  {"t/data/0", vals, sizeof vals}};
    z = make_zip(e2, 3, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "entry 't/data/0' appears twice"));
    free(z.p);
    /* no data.pkl; TorchScript; not a zip; legacy; truncated */
    entry e3[] = {{"t/data/0", vals, sizeof vals}};
    z = make_zip(e3, 1, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "no <archive>/data.pkl"));
    free(z.p);
    entry e4[] = {{"t/data.pkl", p.p, p.n}, {"t/constants.pkl", p.p, p.n}};
    z = make_zip(e4, 2, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "TorchScript"));
    free(z.p);
    buf junk = {0};
    PUTL(&junk, "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    CHECK(load_zip(&junk, &sd, &err) != 0 && strstr(err.msg, "legacy torch.save format"));
    junk.n = 0;
    PUTL(&junk, "PK\x03\x04 this is not really a zip file at all........");
    CHECK(load_zip(&junk, &sd, &err) != 0 && strstr(err.msg, "no end-of-central-directory"));
    free(junk.p);
    entry e5[] = {{"t/data.pkl", p.p, p.n}, {"t/data/0", vals, sizeof vals}};
    z = make_zip(e5, 2, 0);
    buf cut = {z.p, z.n - 3, z.cap};
    CHECK(load_zip(&cut, &sd, &err) != 0 && strstr(err.msg, "end-of-central-directory"));
    /* method, encryption, a declared size deflate cannot reach, sizes past the CD */
    size_t cd = z.n - 22 - (46 + 10) - (46 + 8);
    unsigned char save[64];
    memcpy(save, z.p + cd, 64);
    z.p[cd + 10] = 12;
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "compression method 12"));
    memcpy(z.p + cd, save, 64);
    z.p[cd + 8] = 1;
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "is encrypted"));
    memcpy(z.p + cd, save, 64);
    z.p[cd + 10] = 8;
    z.p[cd + 27] = 0x40; /* uncompressed 1 GiB from a few bytes */
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "cannot expand"));
    memcpy(z.p + cd, save, 64);
    z.p[cd + 23] = 0x10;
    z.p[cd + 27] = 0x10;
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "run into the central directory"));
    memcpy(z.p + cd, save, 64);
    CHECKF(load_zip(&z, &sd, &err) == 0, "%s", err.msg);
    torch_state_free(&sd);
    free(z.p);
    free(p.p);
    /* a state dict that is not one; an optimizer's; a name twice */
    buf q = {0};
    PUTL(&q, "\x80\x02]K\x01\x61.");
    entry e6[] = {{"t/data.pkl", q.p, q.n}};
    z = make_zip(e6, 1, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "the pickle holds a list"));
    free(z.p);
    q.n = 0;
    PUTL(&q, "\x80\x02}(X\x05\x00\x00\x00stateK\x01X\x0c\x00\x00\x00param_groups]u.");
    e6[0].data = q.p, e6[0].n = q.n;
    z = make_zip(e6, 1, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "an optimizer's state dict"));
    free(z.p);
    q.n = 0;
    long sh1[1] = {2}, st1[1] = {1};
    PUTL(&q, "\x80\x02}(");
    pk_str(&q, "a");
    pk_tensor(&q, "0", 6, 0, 1, sh1, st1);
    pk_str(&q, "a");
    pk_tensor(&q, "0", 6, 2, 1, sh1, st1);
    PUTL(&q, "u.");
    entry e7[] = {{"t/data.pkl", q.p, q.n}, {"t/data/0", vals, sizeof vals}};
    z = make_zip(e7, 2, 0);
    CHECK(load_zip(&z, &sd, &err) != 0 && strstr(err.msg, "tensor 'a' appears twice"));
    free(z.p);
    free(q.p);
}

/* ---- the ports' checkpoints ---- */

typedef struct {
    int n, c, h, w;
    uint8_t *img;
    int32_t *lab;
    float *noise, *bpd;
    long seed;
} expect;

static int read_expect(const char *path, expect *e)
{
    st_file f;
    glow_error err = {{0}};
    memset(e, 0, sizeof *e);
    if (st_load(path, &f, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    const st_tensor *t = st_find(&f, "input.image");
    e->n = (int)t->shape[0], e->c = (int)t->shape[1], e->h = (int)t->shape[2],
    e->w = (int)t->shape[3];
    size_t D = (size_t)e->c * e->h * e->w;
    float *im = glow_st_read_f32(&f, "input.image", -1, NULL, &err);
    e->img = malloc((size_t)e->n * D);
    for (size_t i = 0; i < (size_t)e->n * D; i++)
        e->img[i] = (uint8_t)im[i];
    free(im);
    e->noise = glow_st_read_f32(&f, "input.noise", -1, NULL, &err);
    e->bpd = glow_st_read_f32(&f, "expect.bpd", -1, NULL, &err);
    if (st_find(&f, "input.label")) {
        float *l = glow_st_read_f32(&f, "input.label", -1, NULL, &err);
        e->lab = malloc((size_t)e->n * sizeof *e->lab);
        for (int i = 0; i < e->n; i++)
            e->lab[i] = (int32_t)l[i];
        free(l);
    }
    e->seed = atol(st_meta(&f, "seed"));
    st_free(&f);
    return 0;
}

static void free_expect(expect *e)
{
    free(e->img), free(e->lab), free(e->noise), free(e->bpd);
}

/* The port's bpd from our import, with the stored noise (and, as a check of the
 * noise, the noise the tools draw for --seed). */
static double bpd_error(const glow_checkpoint *ck, const expect *e, int drawn)
{
    glow_error err = {{0}};
    glow_model *m = glow_model_new(B, &ck->cfg, &ck->params, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return 1e9;
    }
    glow_batch bt = {e->n, e->img, drawn ? NULL : e->noise, (uint64_t)e->seed, 0, e->lab};
    glow_result r;
    double worst = 1e9;
    if (glow_model_eval(m, &bt, &r, &err) == 0) {
        worst = 0;
        for (int i = 0; i < e->n; i++)
            worst = fmax(worst, fabs(r.bpd[i] - e->bpd[i]));
    } else
        fprintf(stderr, "%s\n", err.msg);
    glow_model_free(m);
    return worst;
}

static void test_port(const char *name, const char *file, int reverse, const glow_config *want)
{
    char path[256];
    expect e;
    snprintf(path, sizeof path, PORTS "%s.expect", name);
    if (read_expect(path, &e) != 0) {
        CHECKF(0, "cannot read %s", path);
        return;
    }
    /* the stored noise is the tools' noise for the seed, to the bit */
    size_t D = (size_t)e.c * e.h * e.w;
    int same = 1;
    for (size_t i = 0; i < (size_t)e.n * D; i++)
        same &= e.noise[i] == rng_uniform_at((uint64_t)e.seed, RNG_STREAM_DEQUANT, i) / 256.0f;
    CHECKF(same, "%s: input.noise is not the noise of seed %ld", name, e.seed);

    glow_import_opts o;
    glow_import_opts_default(&o);
    o.reverse = reverse;
    glow_checkpoint ck;
    glow_error err = {{0}};
    snprintf(path, sizeof path, PORTS "%s", file);
    int rc = glow_import_torch_file(path, &o, &ck, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        char msg[256];
        CHECKF(!glow_config_diff(&ck.cfg, "import", want, "expected", msg, sizeof msg), "%s: %s",
               name, msg);
        double e1 = bpd_error(&ck, &e, 0), e2 = bpd_error(&ck, &e, 1);
        printf("%s: |bpd - port bpd| %.2e (stored noise), %.2e (noise of seed %ld)\n", name, e1,
               e2, e.seed);
        CHECKF(e1 <= 1e-4 && e2 <= 1e-4, "%s: bpd differs from the port's by %g, %g", name, e1,
               e2);
        glow_checkpoint_free(&ck);
    }
    free_expect(&e);
}

static int import_err(torch_state *sd, const glow_import_opts *o, glow_error *err)
{
    glow_checkpoint ck;
    memset(err, 0, sizeof *err);
    int rc = glow_import_torch(sd, o, &ck, err);
    if (rc == 0)
        glow_checkpoint_free(&ck);
    return rc;
}

static torch_tensor *tensor_named(torch_state *sd, const char *name)
{
    for (int i = 0; i < sd->n; i++)
        if (!strcmp(sd->t[i].name, name))
            return &sd->t[i];
    return NULL;
}

static void set_f32(torch_tensor *t, size_t i, float v) { memcpy((char *)t->data + 4 * i, &v, 4); }

static void test_refusals(void)
{
    torch_state sd;
    glow_error err = {{0}};
    glow_import_opts o;
    glow_import_opts_default(&o);
    if (torch_state_load(PORTS "y0ast-affine-ycond.pt", &sd, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    CHECK(import_err(&sd, &o, &err) == 0);
    /* the image size from prior_h; a disagreeing option; --input unit */
    o.image_h = o.image_w = 16;
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "prior_h says 8x8"));
    glow_import_opts_default(&o);
    o.reverse = 1;
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "the steps have invconv tensors"));
    glow_import_opts_default(&o);
    glow_checkpoint a, b;
    CHECK(glow_import_torch(&sd, &o, &a, &err) == 0);
    o.input = IMPORT_INPUT_UNIT;
    CHECK(glow_import_torch(&sd, &o, &b, &err) == 0);
    glow_param *ba = glow_paramset_find(&a.params, "flow.0.0.actnorm.bias");
    glow_param *bb = glow_paramset_find(&b.params, "flow.0.0.actnorm.bias");
    glow_param *la = glow_paramset_find(&a.params, "flow.0.0.actnorm.logs");
    glow_param *lb = glow_paramset_find(&b.params, "flow.0.0.actnorm.logs");
    CHECK_NEAR(((float *)bb->data)[1], 0.5 + ((float *)ba->data)[1] * 255.0 / 256, 1e-6);
    CHECK_NEAR(((float *)lb->data)[1], ((float *)la->data)[1] + log(256.0 / 255) / 3, 1e-6);
    CHECK(!strcmp(glow_checkpoint_meta(&a, "imported_from"), "y0ast/Glow-PyTorch"));
    glow_checkpoint_free(&a);
    glow_checkpoint_free(&b);
    /* --weight-y 0 drops the class head */
    glow_import_opts_default(&o);
    o.weight_y = 0;
    CHECK(glow_import_torch(&sd, &o, &a, &err) == 0);
    CHECK(!glow_paramset_find(&a.params, "classifier.weight"));
    glow_checkpoint_free(&a);
    glow_import_opts_default(&o);
    /* damage, one at a time */
    torch_tensor *t = tensor_named(&sd, "flow.layers.2.block.2.actnorm.logs");
    float keep;
    memcpy(&keep, t->data, 4);
    set_f32(t, 0, NAN);
    CHECK(import_err(&sd, &o, &err) != 0 &&
          strstr(err.msg, "tensor 'flow.layers.2.block.2.actnorm.logs': non-finite value"));
    set_f32(t, 0, keep);
    t = tensor_named(&sd, "prior_h");
    set_f32(t, 3, 1);
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "prior_h': element 3 is not 0"));
    set_f32(t, 3, 0);
    t = tensor_named(&sd, "flow.layers.5.invconv.weight");
    t->shape[0]--;
    CHECK(import_err(&sd, &o, &err) != 0 &&
          strstr(err.msg, "flow.layers.5.invconv.weight': shape [7, 8], expected [8, 8]"));
    t->shape[0]++;
    /* singular: row 1 := row 0 */
    unsigned char *w = malloc(t->count * 4);
    memcpy(w, t->data, t->count * 4);
    memcpy((char *)t->data + 8 * 4, t->data, 8 * 4);
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "fails a check") &&
          strstr(err.msg, "singular"));
    memcpy(t->data, w, t->count * 4);
    free(w);
    char *nm = t->name;
    t->name = "flow.layers.5.invconv.extra";
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "missing tensor "
                                                            "'flow.layers.5.invconv.weight'"));
    t->name = "something.else";
    CHECK(import_err(&sd, &o, &err) != 0);
    t->name = nm;
    t = tensor_named(&sd, "flow.layers.1.block.0.conv.weight");
    nm = t->name;
    t->name = "flow.layers.1.coupling.nets.0.0.weight";
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "dajinstory/glow-pytorch") &&
          strstr(err.msg, "exp(clamp * sigmoid(h + 2))"));
    t->name = "blocks.0.flows.0.actnorm.loc";
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "rosinality/glow-pytorch") &&
          strstr(err.msg, "pad with ones"));
    t->name = nm;
    for (int i = 0; i < sd.n; i++)
        if (strstr(sd.t[i].name, "block.0.conv.weight"))
            sd.t[i].name[0] = 'F';
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "not a Glow state dict of y0ast"));
    for (int i = 0; i < sd.n; i++)
        if (sd.t[i].name[0] == 'F')
            sd.t[i].name[0] = 'f';
    CHECK(import_err(&sd, &o, &err) == 0);
    torch_state_free(&sd);

    /* reverse: needs the option; no prior_h: needs the image size */
    if (torch_state_load(PORTS "y0ast-additive-reverse.pt", &sd, &err) != 0) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "give --permutation reverse"));
    o.reverse = 1;
    CHECK(import_err(&sd, &o, &err) == 0);
    t = tensor_named(&sd, "prior_h");
    t->name[0] = 'q';
    CHECK(import_err(&sd, &o, &err) != 0 && strstr(err.msg, "give --image-size"));
    t->name[0] = 'p';
    torch_state_free(&sd);
}

int main(void)
{
    glow_error err = {{0}};
    test_pickle();
    test_zip();
    B = backend_get(DEVICE_CPU, 0, &err);
    if (!B) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    glow_config c;
    glow_config_default(&c);
    c.image_h = c.image_w = 8;
    c.channels = 1, c.levels = 2, c.steps = 2, c.width = 8, c.edge_bias = 0;
    c.y_condition = 1, c.n_classes = 4;
    test_port("y0ast-affine-ycond", "y0ast-affine-ycond.pt", 0, &c);
    glow_config_default(&c);
    c.image_h = c.image_w = 8;
    c.channels = 3, c.levels = 2, c.steps = 2, c.width = 4, c.edge_bias = 0;
    c.coupling = COUPLING_ADDITIVE, c.permutation = PERM_REVERSE, c.learn_top = 0;
    test_port("y0ast-additive-reverse", "y0ast-additive-reverse.pt", 1, &c);
    glow_config_default(&c);
    c.image_h = c.image_w = 8;
    c.channels = 1, c.levels = 2, c.steps = 1, c.width = 4, c.edge_bias = 0;
    c.coupling = COUPLING_ADDITIVE, c.lu = 1;
    test_port("chaiyujin-additive-lu", "chaiyujin-additive-lu.pkg", 0, &c);
    test_refusals();
    backend_release(B);
    return check_summary();
}
