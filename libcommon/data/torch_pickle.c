#include "torch_pickle.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    tp_dtype dt;
    const char *name, *storage;
    size_t size;
} dtypes[] = {
    {TP_F32, "float32", "FloatStorage", 4},   {TP_F64, "float64", "DoubleStorage", 8},
    {TP_F16, "float16", "HalfStorage", 2},    {TP_BF16, "bfloat16", "BFloat16Storage", 2},
    {TP_I64, "int64", "LongStorage", 8},      {TP_I32, "int32", "IntStorage", 4},
    {TP_I16, "int16", "ShortStorage", 2},     {TP_I8, "int8", "CharStorage", 1},
    {TP_U8, "uint8", "ByteStorage", 1},       {TP_BOOL, "bool", "BoolStorage", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

const char *tp_dtype_name(tp_dtype dt) { return dtypes[dt].name; }
size_t tp_dtype_size(tp_dtype dt) { return dtypes[dt].size; }

const char *tpv_kind_name(tpv_kind k)
{
    static const char *names[] = {"None", "bool", "int", "float", "str", "tuple",
                                  "list", "dict", "tensor", "global", "storage"};
    return names[k];
}

/* The allow-list: entries 0..N_DTYPES-1 are the storage types, in dtypes order. */
enum { G_ORDEREDDICT = N_DTYPES, G_REBUILD_TENSOR, G_REBUILD_PARAMETER };

typedef struct {
    const char *where;
    const unsigned char *b;
    size_t len, pos, at;   /* at: offset of the opcode being run */
    tp_doc *doc;
    tp_value **stack;
    size_t sp, scap;
    size_t *marks;
    size_t nm, mcap;
    tp_value **memo;
    size_t nmemo, memocap;
    glow_error *err;
} vm;

static int bad(vm *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(vm *m, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    glow_errorf(m->err, "%s: offset %zu: %s", m->where, m->at, msg);
    return -1;
}

static tp_value *new_value(vm *m, tpv_kind k)
{
    tp_doc *d = m->doc;
    if (d->n_pool == d->cap_pool) {
        d->cap_pool = d->cap_pool ? d->cap_pool * 2 : 256;
        d->pool = xrealloc(d->pool, d->cap_pool * sizeof *d->pool);
    }
    tp_value *v = xcalloc(1, sizeof *v);
    v->kind = k;
    v->at = m->at;
    d->pool[d->n_pool++] = v;
    return v;
}

static void push(vm *m, tp_value *v)
{
    if (m->sp == m->scap) {
        m->scap = m->scap ? m->scap * 2 : 64;
        m->stack = xrealloc(m->stack, m->scap * sizeof *m->stack);
    }
    m->stack[m->sp++] = v;
}

static void add_item(tp_value *c, tp_value *x)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = x;
}

/* The items above the innermost mark; it is removed. */
static int pop_mark(vm *m, size_t *base)
{
    if (m->nm == 0)
        return bad(m, "no MARK on the stack");
    *base = m->marks[--m->nm];
    return 0;
}

static int need(vm *m, size_t k)
{
    size_t floor = m->nm ? m->marks[m->nm - 1] : 0;
    if (m->sp - floor < k)
        return bad(m, "stack underflow");
    return 0;
}

static int take(vm *m, size_t k, const unsigned char **p)
{
    if (m->len - m->pos < k)
        return bad(m, "truncated: %zu bytes needed, %zu left", k, m->len - m->pos);
    *p = m->b + m->pos;
    m->pos += k;
    return 0;
}

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k;
        unsigned min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) k = 1, min = 0x80, c &= 0x1f;
        else if ((c & 0xf0) == 0xe0) k = 2, min = 0x800, c &= 0x0f;
        else if ((c & 0xf8) == 0xf0) k = 3, min = 0x10000, c &= 0x07;
        else return 0;
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            c = c << 6 | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

static int push_str(vm *m, size_t n)
{
    const unsigned char *p = NULL;
    if (take(m, n, &p) != 0)
        return -1;
    if (!valid_utf8(p, n))
        return bad(m, "a string that is not UTF-8 or holds a NUL byte");
    tp_value *v = new_value(m, TPV_STR);
    v->s = xmalloc(n + 1);
    memcpy(v->s, p, n);
    v->s[n] = '\0';
    push(m, v);
    return 0;
}

static int push_int(vm *m, int64_t x)
{
    tp_value *v = new_value(m, TPV_INT);
    v->i = x;
    push(m, v);
    return 0;
}

/* Printable text of a global's name for messages. */
static void global_text(const char *mod, const char *name, char *buf, size_t len)
{
    char t[300];
    snprintf(t, sizeof t, "%s.%s", mod, name);
    size_t o = 0;
    for (const char *s = t; *s && o + 1 < len && o < 120; s++)
        buf[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
    buf[o] = '\0';
}

static int push_global(vm *m, const char *mod, const char *name)
{
    int g = -1;
    if (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0)
        g = G_ORDEREDDICT;
    else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
        g = G_REBUILD_TENSOR;
    else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0)
        g = G_REBUILD_PARAMETER;
    else if (strcmp(mod, "torch") == 0)
        for (int i = 0; i < N_DTYPES; i++)
            if (strcmp(name, dtypes[i].storage) == 0)
                g = i;
    if (g < 0) {
        char t[128];
        global_text(mod, name, t, sizeof t);
        return bad(m, "global '%s' is not allowed (only the tensors of a state dict are "
                      "read: collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                      "torch._utils._rebuild_parameter, torch.*Storage)",
                   t);
    }
    tp_value *v = new_value(m, TPV_GLOBAL);
    v->i = g;
    push(m, v);
    return 0;
}

static int as_int(const tp_value *v, int64_t *out)
{
    if (v->kind != TPV_INT)
        return -1;
    *out = v->i;
    return 0;
}

static int persistent_load(vm *m)
{
    if (need(m, 1) != 0)
        return -1;
    tp_value *pid = m->stack[--m->sp];
    if (pid->kind != TPV_TUPLE || pid->n != 5 || pid->v[0]->kind != TPV_STR ||
        strcmp(pid->v[0]->s, "storage") != 0)
        return bad(m, "BINPERSID: a persistent id other than ('storage', type, key, "
                      "location, numel)");
    tp_value *ty = pid->v[1], *key = pid->v[2], *loc = pid->v[3], *num = pid->v[4];
    int64_t numel;
    if (ty->kind != TPV_GLOBAL || ty->i >= N_DTYPES)
        return bad(m, "BINPERSID: the storage type is not a torch.*Storage");
    if (key->kind != TPV_STR || loc->kind != TPV_STR || as_int(num, &numel) != 0 || numel < 0)
        return bad(m, "BINPERSID: key and location must be strings and numel a non-negative "
                      "int");
    if (!key->s[0] || strchr(key->s, '/') || strlen(key->s) > 64)
        return bad(m, "BINPERSID: storage key '%.64s' is not a plain entry name", key->s);
    tp_doc *d = m->doc;
    int idx = -1;
    for (int i = 0; i < d->n_st; i++)
        if (strcmp(d->st[i].key, key->s) == 0)
            idx = i;
    if (idx >= 0) {
        if (d->st[idx].dtype != (tp_dtype)ty->i || d->st[idx].numel != numel)
            return bad(m, "BINPERSID: storage '%s' appears with two types or sizes", key->s);
    } else {
        if ((uint64_t)numel > ((uint64_t)1 << 62) / 8)
            return bad(m, "BINPERSID: storage '%s' is too large", key->s);
        d->st = xrealloc(d->st, (size_t)(d->n_st + 1) * sizeof *d->st);
        d->st[d->n_st].key = xstrdup(key->s);
        d->st[d->n_st].dtype = (tp_dtype)ty->i;
        d->st[d->n_st].numel = numel;
        idx = d->n_st++;
    }
    tp_value *v = new_value(m, TPV_STORAGE);
    v->i = idx;
    push(m, v);
    return 0;
}

static int int_tuple(const tp_value *t, int64_t *out, int max)
{
    if (t->kind != TPV_TUPLE || t->n > (size_t)max)
        return -1;
    for (size_t i = 0; i < t->n; i++)
        if (as_int(t->v[i], &out[i]) != 0 || out[i] < 0)
            return -1;
    return (int)t->n;
}

static int is_empty_dict(const tp_value *v) { return v->kind == TPV_DICT && v->n == 0; }

static int rebuild_tensor(vm *m, const tp_value *a)
{
    if (a->n != 6 && a->n != 7)
        return bad(m, "_rebuild_tensor_v2 takes 6 or 7 arguments, not %zu", a->n);
    const tp_value *st = a->v[0], *rg = a->v[4], *hooks = a->v[5];
    int64_t off;
    if (st->kind != TPV_STORAGE)
        return bad(m, "_rebuild_tensor_v2: the first argument is a %s, not a storage",
                   tpv_kind_name(st->kind));
    if (as_int(a->v[1], &off) != 0 || off < 0)
        return bad(m, "_rebuild_tensor_v2: the storage offset is not a non-negative int");
    tp_tensor *t = xcalloc(1, sizeof *t);
    tp_value *v = new_value(m, TPV_TENSOR);
    v->t = t; /* freed with the value */
    int nd = int_tuple(a->v[2], t->shape, 8), ns = int_tuple(a->v[3], t->stride, 8);
    if (nd < 0 || ns != nd)
        return bad(m, "_rebuild_tensor_v2: size and stride must be tuples of the same length "
                      "(at most 8) of non-negative ints");
    if (rg->kind != TPV_BOOL || !is_empty_dict(hooks))
        return bad(m, "_rebuild_tensor_v2: requires_grad must be a bool and the backward "
                      "hooks empty");
    if (a->n == 7 && a->v[6]->kind != TPV_NONE && a->v[6]->kind != TPV_DICT)
        return bad(m, "_rebuild_tensor_v2: the metadata is a %s", tpv_kind_name(a->v[6]->kind));
    const tp_storage *s = &m->doc->st[st->i];
    t->storage = (int)st->i;
    t->offset = off;
    t->ndim = nd;
    /* count and extent, without overflow: every size below 2^62 / numel limits */
    uint64_t count = 1, last = (uint64_t)off;
    for (int i = 0; i < nd; i++) {
        uint64_t sz = (uint64_t)t->shape[i];
        if (sz && count > ((uint64_t)1 << 62) / sz)
            return bad(m, "_rebuild_tensor_v2: the tensor is too large");
        count *= sz;
    }
    if (count) {
        for (int i = 0; i < nd; i++) {
            uint64_t sz = (uint64_t)t->shape[i], sd = (uint64_t)t->stride[i];
            if (sd && sz - 1 > ((uint64_t)1 << 62) / sd)
                return bad(m, "_rebuild_tensor_v2: the strides reach too far");
            last += (sz - 1) * sd;
            if (last > ((uint64_t)1 << 62))
                return bad(m, "_rebuild_tensor_v2: the strides reach too far");
        }
        if (last >= (uint64_t)s->numel)
            return bad(m, "_rebuild_tensor_v2: the tensor reaches element %llu of storage '%s', "
                          "which has %lld",
                       (unsigned long long)last, s->key, (long long)s->numel);
    }
    t->count = (int64_t)count;
    push(m, v);
    return 0;
}

static int reduce(vm *m)
{
    if (need(m, 2) != 0)
        return -1;
    tp_value *args = m->stack[--m->sp], *fn = m->stack[--m->sp];
    if (fn->kind != TPV_GLOBAL)
        return bad(m, "REDUCE on a %s, not an allowed global", tpv_kind_name(fn->kind));
    if (args->kind != TPV_TUPLE)
        return bad(m, "REDUCE: the arguments are a %s, not a tuple", tpv_kind_name(args->kind));
    switch (fn->i) {
    case G_ORDEREDDICT: {
        if (args->n != 0)
            return bad(m, "collections.OrderedDict called with arguments");
        tp_value *d = new_value(m, TPV_DICT);
        d->ordered = 1;
        push(m, d);
        return 0;
    }
    case G_REBUILD_TENSOR:
        return rebuild_tensor(m, args);
    case G_REBUILD_PARAMETER:
        if (args->n != 3 || args->v[0]->kind != TPV_TENSOR || args->v[1]->kind != TPV_BOOL ||
            !is_empty_dict(args->v[2]))
            return bad(m, "_rebuild_parameter takes (tensor, requires_grad, no hooks)");
        push(m, args->v[0]);
        return 0;
    default:
        return bad(m, "torch.%s cannot be called", dtypes[fn->i].storage);
    }
}

static int make_tuple(vm *m, size_t base)
{
    tp_value *t = new_value(m, TPV_TUPLE);
    for (size_t i = base; i < m->sp; i++)
        add_item(t, m->stack[i]);
    m->sp = base;
    push(m, t);
    return 0;
}

static int memo_put(vm *m, uint64_t idx)
{
    if (m->sp == 0 || (m->nm && m->marks[m->nm - 1] == m->sp))
        return bad(m, "memo store with nothing to store");
    if (idx > m->nmemo)
        return bad(m, "memo slot %llu filled out of order (next is %zu)",
                   (unsigned long long)idx, m->nmemo);
    if (idx == m->nmemo) {
        if (m->nmemo == m->memocap) {
            m->memocap = m->memocap ? m->memocap * 2 : 64;
            m->memo = xrealloc(m->memo, m->memocap * sizeof *m->memo);
        }
        m->nmemo++;
    }
    m->memo[idx] = m->stack[m->sp - 1];
    return 0;
}

static int memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->nmemo)
        return bad(m, "memo slot %llu is empty", (unsigned long long)idx);
    push(m, m->memo[idx]);
    return 0;
}

static int set_items(vm *m, size_t base)
{
    if (base == 0 || (m->nm && m->marks[m->nm - 1] >= base))
        return bad(m, "SETITEMS without a dict");
    tp_value *d = m->stack[base - 1];
    if (d->kind != TPV_DICT)
        return bad(m, "SETITEM(S) on a %s", tpv_kind_name(d->kind));
    if ((m->sp - base) % 2)
        return bad(m, "SETITEMS with an odd number of items");
    for (size_t i = base; i < m->sp; i++)
        add_item(d, m->stack[i]);
    m->sp = base;
    return 0;
}

static int append_items(vm *m, size_t base)
{
    if (base == 0 || (m->nm && m->marks[m->nm - 1] >= base))
        return bad(m, "APPENDS without a list");
    tp_value *l = m->stack[base - 1];
    if (l->kind != TPV_LIST)
        return bad(m, "APPEND(S) on a %s", tpv_kind_name(l->kind));
    for (size_t i = base; i < m->sp; i++)
        add_item(l, m->stack[i]);
    m->sp = base;
    return 0;
}

static const char *opname(unsigned op)
{
    switch (op) {
    case 'I': return "INT";
    case 'L': return "LONG";
    case 'F': return "FLOAT";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case 0x96: return "BYTEARRAY8";
    case 'P': return "PERSID";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'g': return "GET";
    case 'p': return "PUT";
    case '2': return "DUP";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

static int run(vm *m)
{
    for (;;) {
        const unsigned char *p = NULL;
        m->at = m->pos;
        if (take(m, 1, &p) != 0)
            return bad(m, "the pickle ends without STOP");
        unsigned op = *p;
        size_t base = 0;
        switch (op) {
        case 0x80: /* PROTO */
            if (take(m, 1, &p) != 0)
                return -1;
            if (*p < 2 || *p > 5)
                return bad(m, "pickle protocol %u (2 to 5 are read)", *p);
            break;
        case 0x95: /* FRAME */
            if (take(m, 8, &p) != 0)
                return -1;
            if (load_le64(p) > m->len - m->pos)
                return bad(m, "FRAME of %llu bytes runs past the end",
                           (unsigned long long)load_le64(p));
            break;
        case '.': /* STOP */
            if (m->nm != 0 || m->sp != 1)
                return bad(m, "STOP with %zu values and %zu marks on the stack (1 and 0 "
                              "expected)",
                           m->sp, m->nm);
            if (m->pos != m->len)
                return bad(m, "%zu bytes after STOP", m->len - m->pos);
            m->doc->root = m->stack[0];
            return 0;
        case '(': /* MARK */
            if (m->nm == m->mcap) {
                m->mcap = m->mcap ? m->mcap * 2 : 16;
                m->marks = xrealloc(m->marks, m->mcap * sizeof *m->marks);
            }
            m->marks[m->nm++] = m->sp;
            break;
        case '0': /* POP */
            if (need(m, 1) != 0)
                return -1;
            m->sp--;
            break;
        case '1': /* POP_MARK */
            if (pop_mark(m, &base) != 0)
                return -1;
            m->sp = base;
            break;
        case 'N': push(m, new_value(m, TPV_NONE)); break;
        case 0x88: case 0x89: { /* NEWTRUE, NEWFALSE */
            tp_value *v = new_value(m, TPV_BOOL);
            v->i = op == 0x88;
            push(m, v);
            break;
        }
        case 'J': /* BININT */
            if (take(m, 4, &p) != 0)
                return -1;
            push_int(m, (int32_t)load_le32(p));
            break;
        case 'K': /* BININT1 */
            if (take(m, 1, &p) != 0)
                return -1;
            push_int(m, p[0]);
            break;
        case 'M': /* BININT2 */
            if (take(m, 2, &p) != 0)
                return -1;
            push_int(m, p[0] | p[1] << 8);
            break;
        case 0x8a: case 0x8b: { /* LONG1, LONG4 */
            size_t n;
            if (take(m, op == 0x8a ? 1 : 4, &p) != 0)
                return -1;
            n = op == 0x8a ? p[0] : load_le32(p);
            if (n > 8)
                return bad(m, "an integer of %zu bytes (at most 8 are read)", n);
            if (take(m, n, &p) != 0)
                return -1;
            uint64_t u = 0;
            for (size_t i = 0; i < n; i++)
                u |= (uint64_t)p[i] << (8 * i);
            if (n && n < 8 && (p[n - 1] & 0x80))
                u |= ~(uint64_t)0 << (8 * n);
            push_int(m, (int64_t)u);
            break;
        }
        case 'G': { /* BINFLOAT, big-endian */
            if (take(m, 8, &p) != 0)
                return -1;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = u << 8 | p[i];
            double d;
            memcpy(&d, &u, sizeof d);
            tp_value *v = new_value(m, TPV_FLOAT);
            v->f = d;
            push(m, v);
            break;
        }
        case 'X': /* BINUNICODE */
            if (take(m, 4, &p) != 0 || push_str(m, load_le32(p)) != 0)
                return -1;
            break;
        case 0x8c: /* SHORT_BINUNICODE */
            if (take(m, 1, &p) != 0 || push_str(m, p[0]) != 0)
                return -1;
            break;
        case 0x8d: /* BINUNICODE8 */
            if (take(m, 8, &p) != 0)
                return -1;
            if (load_le64(p) > m->len - m->pos)
                return bad(m, "truncated string");
            if (push_str(m, (size_t)load_le64(p)) != 0)
                return -1;
            break;
        case ')': push(m, new_value(m, TPV_TUPLE)); break;
        case 't': /* TUPLE */
            if (pop_mark(m, &base) != 0)
                return -1;
            make_tuple(m, base);
            break;
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = op - 0x84;
            if (need(m, k) != 0)
                return -1;
            make_tuple(m, m->sp - k);
            break;
        }
        case ']': push(m, new_value(m, TPV_LIST)); break;
        case 'l': { /* LIST */
            if (pop_mark(m, &base) != 0)
                return -1;
            tp_value *l = new_value(m, TPV_LIST);
            for (size_t i = base; i < m->sp; i++)
                add_item(l, m->stack[i]);
            m->sp = base;
            push(m, l);
            break;
        }
        case 'a': /* APPEND */
            if (need(m, 2) != 0 || append_items(m, m->sp - 1) != 0)
                return -1;
            break;
        case 'e': /* APPENDS */
            if (pop_mark(m, &base) != 0 || append_items(m, base) != 0)
                return -1;
            break;
        case '}': push(m, new_value(m, TPV_DICT)); break;
        case 'd': { /* DICT */
            if (pop_mark(m, &base) != 0)
                return -1;
            if ((m->sp - base) % 2)
                return bad(m, "DICT with an odd number of items");
            tp_value *d = new_value(m, TPV_DICT);
            for (size_t i = base; i < m->sp; i++)
                add_item(d, m->stack[i]);
            m->sp = base;
            push(m, d);
            break;
        }
        case 's': /* SETITEM */
            if (need(m, 3) != 0 || set_items(m, m->sp - 2) != 0)
                return -1;
            break;
        case 'u': /* SETITEMS */
            if (pop_mark(m, &base) != 0 || set_items(m, base) != 0)
                return -1;
            break;
        case 'q': /* BINPUT */
            if (take(m, 1, &p) != 0 || memo_put(m, p[0]) != 0)
                return -1;
            break;
        case 'r': /* LONG_BINPUT */
            if (take(m, 4, &p) != 0 || memo_put(m, load_le32(p)) != 0)
                return -1;
            break;
        case 0x94: /* MEMOIZE */
            if (memo_put(m, m->nmemo) != 0)
                return -1;
            break;
        case 'h': /* BINGET */
            if (take(m, 1, &p) != 0 || memo_get(m, p[0]) != 0)
                return -1;
            break;
        case 'j': /* LONG_BINGET */
            if (take(m, 4, &p) != 0 || memo_get(m, load_le32(p)) != 0)
                return -1;
            break;
        case 'c': { /* GLOBAL: module\nname\n */
            char text[2][128];
            for (int k = 0; k < 2; k++) {
                size_t n = 0;
                for (;;) {
                    if (take(m, 1, &p) != 0)
                        return -1;
                    if (*p == '\n')
                        break;
                    if (n + 1 >= sizeof text[k] || *p < 0x20 || *p >= 0x7f)
                        return bad(m, "GLOBAL with a malformed name");
                    text[k][n++] = (char)*p;
                }
                text[k][n] = '\0';
            }
            if (push_global(m, text[0], text[1]) != 0)
                return -1;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            if (need(m, 2) != 0)
                return -1;
            tp_value *name = m->stack[--m->sp], *mod = m->stack[--m->sp];
            if (name->kind != TPV_STR || mod->kind != TPV_STR)
                return bad(m, "STACK_GLOBAL needs two strings");
            if (push_global(m, mod->s, name->s) != 0)
                return -1;
            break;
        }
        case 'Q': /* BINPERSID */
            if (persistent_load(m) != 0)
                return -1;
            break;
        case 'R': /* REDUCE */
            if (reduce(m) != 0)
                return -1;
            break;
        case 'b': { /* BUILD */
            if (need(m, 2) != 0)
                return -1;
            tp_value *state = m->stack[--m->sp], *obj = m->stack[m->sp - 1];
            if (obj->kind != TPV_DICT || !obj->ordered)
                return bad(m, "BUILD on a %s (only an OrderedDict's attributes are read)",
                           tpv_kind_name(obj->kind));
            if (state->kind != TPV_DICT && state->kind != TPV_NONE)
                return bad(m, "BUILD with a %s state", tpv_kind_name(state->kind));
            break;
        }
        default: {
            const char *n = opname(op);
            if (n)
                return bad(m, "opcode %s (0x%02x) is not allowed in a state dict", n, op);
            return bad(m, "unknown opcode 0x%02x", op);
        }
        }
    }
}

int tp_parse(const char *where, const unsigned char *buf, size_t len, tp_doc *doc,
             glow_error *err)
{
    memset(doc, 0, sizeof *doc);
    vm m = {0};
    m.where = where;
    m.b = buf;
    m.len = len;
    m.doc = doc;
    m.err = err;
    int rc = run(&m);
    free(m.stack);
    free(m.marks);
    free(m.memo);
    if (rc != 0)
        tp_free(doc);
    return rc;
}

void tp_free(tp_doc *doc)
{
    for (size_t i = 0; i < doc->n_pool; i++) {
        tp_value *v = doc->pool[i];
        free(v->s);
        free(v->v);
        free(v->t);
        free(v);
    }
    free(doc->pool);
    for (int i = 0; i < doc->n_st; i++)
        free(doc->st[i].key);
    free(doc->st);
    memset(doc, 0, sizeof *doc);
}

const tp_value *tp_dict_get(const tp_value *d, const char *key)
{
    if (!d || d->kind != TPV_DICT)
        return NULL;
    const tp_value *found = NULL;
    for (size_t i = 0; i + 1 < d->n; i += 2)
        if (d->v[i]->kind == TPV_STR && strcmp(d->v[i]->s, key) == 0)
            found = d->v[i + 1];
    return found;
}
