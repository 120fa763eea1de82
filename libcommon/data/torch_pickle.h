/* A strict reader of the pickles inside torch.save archives (data.pkl), which
 * never executes them: it knows the opcodes a state dict (or a checkpoint dict
 * around one) is written with and a short list of globals, and builds plain
 * values from them. Anything else is an error naming the opcode or the global
 * and its offset in the pickle, so a malicious .pt cannot run code here (unlike
 * torch.load without weights_only).
 *
 * Opcodes read (protocols 2 to 5):
 *   PROTO FRAME STOP MARK POP POP_MARK
 *   NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 LONG4 (at most 8 bytes)
 *   BINFLOAT BINUNICODE SHORT_BINUNICODE BINUNICODE8 (valid UTF-8, no NUL)
 *   EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST APPEND APPENDS LIST
 *   EMPTY_DICT DICT SETITEM SETITEMS
 *   BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET (memo slots filled in order)
 *   GLOBAL STACK_GLOBAL (the globals below only), BINPERSID (storages only)
 *   REDUCE (OrderedDict, the two rebuild functions), BUILD (an OrderedDict's
 *   attributes, such as a state dict's _metadata, which are dropped)
 * Globals:
 *   collections.OrderedDict                       called with no arguments
 *   torch._utils._rebuild_tensor_v2               (storage, offset, size, stride,
 *                                                  requires_grad, hooks[, metadata])
 *   torch._utils._rebuild_parameter               (tensor, requires_grad, hooks)
 *   torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,Byte,Bool}Storage
 *                                                 only inside a persistent id
 * A persistent id is ('storage', <storage type>, key, location, numel); the
 * storage's bytes are the archive entry data/<key>, read by the caller.
 * A tensor's extent (offset, sizes and strides, at most 8 dimensions) must lie
 * inside its storage. */
#ifndef GLOW_TORCH_PICKLE_H
#define GLOW_TORCH_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef enum {
    TP_F32, TP_F64, TP_F16, TP_BF16, TP_I64, TP_I32, TP_I16, TP_I8, TP_U8, TP_BOOL
} tp_dtype;
const char *tp_dtype_name(tp_dtype dt); /* "float32", ... */
size_t tp_dtype_size(tp_dtype dt);

typedef enum {
    TPV_NONE, TPV_BOOL, TPV_INT, TPV_FLOAT, TPV_STR, TPV_TUPLE, TPV_LIST, TPV_DICT,
    TPV_TENSOR, TPV_GLOBAL, TPV_STORAGE
} tpv_kind;
const char *tpv_kind_name(tpv_kind k);

typedef struct {
    char *key;       /* the archive entry is data/<key> */
    tp_dtype dtype;
    int64_t numel;
} tp_storage;

typedef struct {
    int storage;     /* index into tp_doc.st */
    int64_t offset;  /* in elements */
    int ndim;
    int64_t shape[8], stride[8];
    int64_t count;   /* product of shape */
} tp_tensor;

typedef struct tp_value tp_value;
struct tp_value {
    tpv_kind kind;
    size_t at;        /* offset in the pickle of the opcode that made it */
    int64_t i;        /* BOOL, INT; GLOBAL: the allow-list entry; STORAGE: index */
    double f;         /* FLOAT */
    char *s;          /* STR (NUL-terminated UTF-8) */
    tp_value **v;     /* TUPLE, LIST: n items; DICT: n/2 (key, value) pairs */
    size_t n, cap;
    int ordered;      /* DICT made by collections.OrderedDict */
    tp_tensor *t;     /* TENSOR */
};

typedef struct {
    tp_value **pool;  /* every value, freed together */
    size_t n_pool, cap_pool;
    tp_storage *st;
    int n_st;
    tp_value *root;
} tp_doc;

/* Parse a whole pickle (it must end at its STOP). where names it in messages
 * ("FILE: archive/data.pkl"). Returns 0, or -1 with err "where: offset N: reason". */
int tp_parse(const char *where, const unsigned char *buf, size_t len, tp_doc *doc,
             glow_error *err);
void tp_free(tp_doc *doc);

/* The value of a DICT under string key (the last one, as Python keeps it), or NULL. */
const tp_value *tp_dict_get(const tp_value *d, const char *key);

#endif
