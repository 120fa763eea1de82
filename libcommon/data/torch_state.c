#include "torch_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "torch_zip.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian host required");

static const char *const wrapper_keys[] = {"state_dict", "model", "model_state_dict", "graph",
                                           "net"};

static int is_state_dict(const tp_value *v)
{
    if (!v || v->kind != TPV_DICT || v->n == 0)
        return 0;
    for (size_t i = 0; i + 1 < v->n; i += 2)
        if (v->v[i]->kind != TPV_STR || v->v[i + 1]->kind != TPV_TENSOR)
            return 0;
    return 1;
}

/* "'a', 'b', 'c', ..." of a dict's first string keys. */
static void key_list(const tp_value *d, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    int shown = 0;
    for (size_t i = 0; i + 1 < d->n && o < len; i += 2) {
        if (shown == 8) {
            snprintf(buf + o, len - o, ", ...");
            return;
        }
        char pn[80];
        if (d->v[i]->kind == TPV_STR)
            tz_printable(d->v[i]->s, pn, 40);
        else
            snprintf(pn, sizeof pn, "<%s>", tpv_kind_name(d->v[i]->kind));
        o += (size_t)snprintf(buf + o, len - o, "%s'%s'", shown ? ", " : "", pn);
        shown++;
    }
}

static const tp_value *find_state_dict(const char *path, const tp_value *root, char **wrapper,
                                       glow_error *err)
{
    *wrapper = NULL;
    if (root->kind != TPV_DICT) {
        glow_errorf(err, "%s: the pickle holds a %s, not a dict (a state dict, or a checkpoint "
                         "dict around one)",
                    path, tpv_kind_name(root->kind));
        return NULL;
    }
    if (is_state_dict(root))
        return root;
    for (size_t k = 0; k < sizeof wrapper_keys / sizeof *wrapper_keys; k++) {
        const tp_value *v = tp_dict_get(root, wrapper_keys[k]);
        if (is_state_dict(v)) {
            *wrapper = xstrdup(wrapper_keys[k]);
            return v;
        }
    }
    const tp_value *only = NULL;
    int n = 0;
    for (size_t i = 0; i + 1 < root->n; i += 2)
        if (root->v[i]->kind == TPV_STR && is_state_dict(root->v[i + 1])) {
            only = root->v[i + 1];
            if (!n++)
                *wrapper = xstrdup(root->v[i]->s);
        }
    if (n == 1)
        return only;
    char keys[600];
    key_list(root, keys, sizeof keys);
    if (n > 1)
        glow_errorf(err, "%s: %d values of the top-level dict are state dicts and none is "
                         "under 'state_dict' or 'model' (keys %s)",
                    path, n, keys);
    else if (tp_dict_get(root, "param_groups") && tp_dict_get(root, "state"))
        glow_errorf(err, "%s: an optimizer's state dict, not a model's", path);
    else
        glow_errorf(err, "%s: no state dict (a dict of tensors): the top-level dict has %s%s", path,
                    root->n ? "keys " : "no keys", keys);
    free(*wrapper);
    *wrapper = NULL;
    return NULL;
}

/* The archive's folder: the one X with an entry X/data.pkl. */
static int archive_prefix(const tz_archive *z, char **prefix, glow_error *err)
{
    int found = 0, script = 0;
    *prefix = NULL;
    for (int i = 0; i < z->n; i++) {
        const char *nm = z->e[i].name, *slash = strchr(nm, '/');
        if (!slash || slash == nm)
            continue;
        if (strcmp(slash, "/data.pkl") == 0) {
            if (found++) {
                free(*prefix);
                *prefix = NULL;
                glow_errorf(err, "%s: zip: more than one */data.pkl entry", z->path);
                return -1;
            }
            *prefix = xmalloc((size_t)(slash - nm) + 2);
            memcpy(*prefix, nm, (size_t)(slash - nm) + 1);
            (*prefix)[slash - nm + 1] = '\0';
        }
        if (strcmp(slash, "/constants.pkl") == 0 || strncmp(slash, "/code/", 6) == 0)
            script = 1;
    }
    if (found && script) {
        free(*prefix);
        *prefix = NULL;
        found = 0;
    }
    if (!found) {
        glow_errorf(err, script ? "%s: a TorchScript archive (torch.jit.save), not a torch.save "
                                  "file: save the module's state_dict() with torch.save"
                                : "%s: zip: no <archive>/data.pkl entry: not a torch.save file",
                    z->path);
        return -1;
    }
    return 0;
}

static size_t elem_size(tp_dtype dt) { return tp_dtype_size(dt); }

/* Copy a strided tensor out of its storage bytes into a contiguous block. */
static void gather(const unsigned char *src, const tp_tensor *t, size_t es, unsigned char *dst)
{
    int nd = t->ndim;
    if (t->count == 0)
        return;
    int64_t idx[8] = {0};
    size_t n = (size_t)t->count;
    for (size_t k = 0; k < n; k++) {
        int64_t off = t->offset;
        for (int d = 0; d < nd; d++)
            off += idx[d] * t->stride[d];
        memcpy(dst + k * es, src + (size_t)off * es, es);
        for (int d = nd - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d])
                break;
            idx[d] = 0;
        }
    }
}

static int by_name(const void *a, const void *b)
{
    const torch_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int load_archive(const tz_archive *z, torch_state *sd, glow_error *err)
{
    char *prefix = NULL, where[600], pn[256];
    tp_doc doc;
    tz_data pkl;
    if (archive_prefix(z, &prefix, err) != 0)
        return -1;
    char *name = xmalloc(strlen(prefix) + 80);
    sprintf(name, "%sbyteorder", prefix);
    const tz_entry *bo = tz_find(z, name);
    if (bo) {
        tz_data d;
        if (tz_read(z, bo, &d, err) != 0) {
            free(name), free(prefix);
            return -1;
        }
        int little = d.n == 6 && memcmp(d.p, "little", 6) == 0;
        tz_data_free(&d);
        if (!little) {
            glow_errorf(err, "%s: %s: tensors stored big-endian (only little-endian is read)",
                        z->path, tz_printable(name, pn, sizeof pn));
            free(name), free(prefix);
            return -1;
        }
    }
    sprintf(name, "%sdata.pkl", prefix);
    const tz_entry *pe = tz_find(z, name);
    if (tz_read(z, pe, &pkl, err) != 0) {
        free(name), free(prefix);
        return -1;
    }
    snprintf(where, sizeof where, "%s: %s", z->path, tz_printable(name, pn, sizeof pn));
    int rc = tp_parse(where, pkl.p, pkl.n, &doc, err);
    tz_data_free(&pkl);
    if (rc != 0) {
        free(name), free(prefix);
        return -1;
    }
    const tp_value *dict = find_state_dict(z->path, doc.root, &sd->wrapper, err);
    if (!dict) {
        tp_free(&doc);
        free(name), free(prefix);
        return -1;
    }
    /* the storages the state dict uses, each read once */
    tz_data *st = xcalloc((size_t)(doc.n_st ? doc.n_st : 1), sizeof *st);
    int n = (int)(dict->n / 2);
    sd->t = xcalloc((size_t)n, sizeof *sd->t);
    rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *key = dict->v[2 * i]->s;
        const tp_tensor *tt = dict->v[2 * i + 1]->t;
        const tp_storage *s = &doc.st[tt->storage];
        size_t es = elem_size(s->dtype);
        if (!st[tt->storage].p) {
            snprintf(name, strlen(prefix) + 80, "%sdata/%s", prefix, s->key);
            const tz_entry *e = tz_find(z, name);
            if (!e) {
                glow_errorf(err, "%s: zip: no entry '%s' for tensor '%s'", z->path,
                            tz_printable(name, pn, sizeof pn), key);
                rc = -1;
                break;
            }
            if (e->usize != (uint64_t)s->numel * es) {
                glow_errorf(err, "%s: zip: entry '%s' has %llu bytes; its storage holds %lld %s "
                                 "values (%llu bytes)",
                            z->path, tz_printable(name, pn, sizeof pn),
                            (unsigned long long)e->usize, (long long)s->numel,
                            tp_dtype_name(s->dtype), (unsigned long long)s->numel * es);
                rc = -1;
                break;
            }
            if (tz_read(z, e, &st[tt->storage], err) != 0) {
                rc = -1;
                break;
            }
            if (!st[tt->storage].p)
                st[tt->storage].p = (const unsigned char *)""; /* empty but read */
        }
        torch_tensor *t = &sd->t[sd->n++];
        t->name = xstrdup(key);
        t->dtype = s->dtype;
        t->ndim = tt->ndim;
        memcpy(t->shape, tt->shape, sizeof t->shape);
        t->count = (size_t)tt->count;
        t->data = xmalloc(t->count ? t->count * es : 1);
        gather(st[tt->storage].p, tt, es, t->data);
    }
    for (int i = 0; i < doc.n_st; i++)
        tz_data_free(&st[i]);
    free(st);
    tp_free(&doc);
    free(name);
    free(prefix);
    if (rc != 0)
        return -1;
    /* DataParallel's "module." on every name */
    for (;;) {
        int all = sd->n > 0;
        for (int i = 0; i < sd->n && all; i++)
            all = strncmp(sd->t[i].name, "module.", 7) == 0;
        if (!all)
            break;
        for (int i = 0; i < sd->n; i++)
            memmove(sd->t[i].name, sd->t[i].name + 7, strlen(sd->t[i].name + 7) + 1);
        sd->stripped++;
    }
    torch_tensor **o = xmalloc((size_t)sd->n * sizeof *o);
    for (int i = 0; i < sd->n; i++)
        o[i] = &sd->t[i];
    qsort(o, (size_t)sd->n, sizeof *o, by_name);
    for (int i = 1; i < sd->n; i++)
        if (strcmp(o[i - 1]->name, o[i]->name) == 0) {
            glow_errorf(err, "%s: tensor '%s' appears twice in the state dict", z->path,
                        tz_printable(o[i]->name, pn, sizeof pn));
            free(o);
            return -1;
        }
    free(o);
    return 0;
}

int torch_state_load_buffer(const char *path, const unsigned char *buf, size_t size,
                            torch_state *sd, glow_error *err)
{
    tz_archive z;
    memset(sd, 0, sizeof *sd);
    if (tz_open_buffer(path, buf, size, &z, err) != 0)
        return -1;
    sd->path = xstrdup(path);
    int rc = load_archive(&z, sd, err);
    tz_close(&z);
    if (rc != 0)
        torch_state_free(sd);
    return rc;
}

int torch_state_load(const char *path, torch_state *sd, glow_error *err)
{
    tz_archive z;
    memset(sd, 0, sizeof *sd);
    if (tz_open(path, &z, err) != 0)
        return -1;
    sd->path = xstrdup(z.path);
    int rc = load_archive(&z, sd, err);
    tz_close(&z);
    if (rc != 0)
        torch_state_free(sd);
    return rc;
}

void torch_state_free(torch_state *sd)
{
    for (int i = 0; i < sd->n; i++) {
        free(sd->t[i].name);
        free(sd->t[i].data);
    }
    free(sd->t);
    free(sd->wrapper);
    free(sd->path);
    memset(sd, 0, sizeof *sd);
}

const torch_tensor *torch_state_find(const torch_state *sd, const char *name)
{
    for (int i = 0; i < sd->n; i++)
        if (strcmp(sd->t[i].name, name) == 0)
            return &sd->t[i];
    return NULL;
}

int torch_tensor_is_float(const torch_tensor *t)
{
    return t->dtype == TP_F32 || t->dtype == TP_F64 || t->dtype == TP_F16 || t->dtype == TP_BF16;
}

static double half_to_double(uint16_t h)
{
    int e = (h >> 10) & 0x1f, f = h & 0x3ff;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 0)
        return s * ldexp(f, -24);
    if (e == 31)
        return f ? NAN : s * INFINITY;
    return s * ldexp(f + 1024, e - 25);
}

double torch_tensor_at(const torch_tensor *t, size_t i)
{
    const unsigned char *p = (const unsigned char *)t->data + i * tp_dtype_size(t->dtype);
    switch (t->dtype) {
    case TP_F32: { float v; memcpy(&v, p, 4); return v; }
    case TP_F64: { double v; memcpy(&v, p, 8); return v; }
    case TP_F16: return half_to_double((uint16_t)(p[0] | p[1] << 8));
    case TP_BF16: {
        uint32_t u = (uint32_t)(p[0] | p[1] << 8) << 16;
        float v;
        memcpy(&v, &u, 4);
        return v;
    }
    case TP_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case TP_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case TP_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case TP_I8: return (int8_t)p[0];
    case TP_U8: return p[0];
    case TP_BOOL: return p[0] != 0;
    }
    return 0;
}
