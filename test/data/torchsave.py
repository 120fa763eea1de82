#!/usr/bin/python3
"""PyTorch's torch.save format (a zip holding <archive>/data.pkl and the tensor
storages <archive>/data/<key>) read and written with the standard library and
NumPy alone, so the tests can make and change .pt files without PyTorch, and check
glow-ckpt import against a second reader and writer. As a module:

  read(path)        the object in the file, its tensors as NumPy arrays (a
                    restricted unpickler: only OrderedDict, the two rebuild functions
                    and the storage types resolve)
  write(path, obj, archive="archive", deflate=False, strided=False, offset=0,
        pickle_bytes=None)
                    obj: nested dicts (an OrderedDict is written as one), lists,
                    tuples, str, int, float, bool, None and NumPy arrays (tensors);
                    strided: every tensor of 2 or more dimensions is stored
                    transposed and read back through its strides; offset: that
                    many extra elements before each tensor in its storage;
                    pickle_bytes: this data.pkl instead of obj's

From the command line:

  torchsave.py list FILE                 "name dtype shape" of each tensor of the
                                         state dict (bare, or under 'model' ...)
  torchsave.py rewrite SRC OUT [--wrap KEY] [--prefix P] [--deflate] [--strided]
                       [--offset N] [--archive NAME] [--drop NAME]...
                       [--set NAME INDEX VALUE] [--dtype float64]
                                         SRC's state dict written again, changed
  torchsave.py names OUT NAME=SHAPE...   a state dict of zeros ("2,3"; "" a scalar)
  torchsave.py pickle OUT HEX            a file whose data.pkl is the bytes HEX
"""
import collections
import io
import pickle
import struct
import sys
import zipfile

import numpy as np

STORAGES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2",
            "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
            "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}
NAME_OF = {np.dtype(v).str: k for k, v in STORAGES.items()}
NAME_OF[np.dtype("?").str] = "BoolStorage"
WRAPPERS = ("state_dict", "model", "model_state_dict", "graph", "net")


class _Storage:
    def __init__(self, name):
        self.dtype = np.dtype(STORAGES[name])


def _rebuild(storage, offset, size, stride, requires_grad, hooks, metadata=None):
    it = storage.itemsize
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    return np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                           tuple(s * it for s in stride)).copy()


class _Reader(pickle.Unpickler):
    def __init__(self, data, zf, prefix):
        super().__init__(io.BytesIO(data))
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda t, requires_grad, hooks: t
        if module == "torch" and name in STORAGES:
            return _Storage(name)
        raise pickle.UnpicklingError("global %s.%s is not allowed" % (module, name))

    def persistent_load(self, pid):
        _, st, key, _, numel = pid
        raw = self.zf.read(self.prefix + "data/" + key)
        return np.frombuffer(raw, st.dtype, count=numel)


def read(path):
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        prefix = pkl[0][:-len("data.pkl")]
        return _Reader(zf.read(pkl[0]), zf, prefix).load()


def state_dict(obj):
    """The state dict of a file's object (bare, or under one of WRAPPERS)."""
    def is_sd(d):
        return isinstance(d, dict) and d and all(isinstance(v, np.ndarray) for v in d.values())
    if is_sd(obj):
        return obj
    for k in WRAPPERS:
        if is_sd(obj.get(k)):
            return obj[k]
    raise SystemExit("torchsave.py: no state dict")

# ---------------------------------------------------------------- writing


class _Writer:
    def __init__(self, strided, offset):
        self.out = bytearray(b"\x80\x02")
        self.storages = []
        self.strided, self.offset = strided, offset

    def op(self, b):
        self.out += b

    def global_(self, module, name):
        self.op(b"c" + module.encode() + b"\n" + name.encode() + b"\n")

    def string(self, s):
        b = s.encode()
        self.op(b"X" + struct.pack("<I", len(b)) + b)

    def int_(self, v):
        if 0 <= v < 256:
            self.op(b"K" + bytes([v]))
        elif -2 ** 31 <= v < 2 ** 31:
            self.op(b"J" + struct.pack("<i", v))
        else:
            self.op(b"\x8a\x08" + struct.pack("<q", v))

    def tuple_(self, items):
        self.op(b"(")
        for x in items:
            self.emit(x)
        self.op(b"t")

    def tensor(self, a):
        a = np.asarray(a)
        shape = a.shape
        perm = list(range(a.ndim))
        if self.strided and a.ndim >= 2:
            perm = perm[::-1]
        stored = np.ascontiguousarray(a.transpose(perm))
        # the storage strides, per stored axis, in elements
        sst = [int(np.prod(stored.shape[i + 1:])) for i in range(a.ndim)]
        stride = [sst[perm.index(i)] for i in range(a.ndim)]
        flat = stored.ravel()
        if self.offset:
            flat = np.concatenate([np.zeros(self.offset, flat.dtype), flat])
        key = str(len(self.storages))
        self.storages.append(flat)
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(b"(")
        self.op(b"(")
        self.string("storage")
        self.global_("torch", NAME_OF[flat.dtype.str])
        self.string(key)
        self.string("cpu")
        self.int_(flat.size)
        self.op(b"tQ")
        self.int_(self.offset)
        self.tuple_([int(s) for s in shape])
        self.tuple_(stride)
        self.op(b"\x89")
        self.global_("collections", "OrderedDict")
        self.op(b")R")
        self.op(b"tR")

    def emit(self, v):
        if isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, dict):
            if isinstance(v, collections.OrderedDict):
                self.global_("collections", "OrderedDict")
                self.op(b")R")
            else:
                self.op(b"}")
            if v:
                self.op(b"(")
                for k, x in v.items():
                    self.emit(k)
                    self.emit(x)
                self.op(b"u")
        elif isinstance(v, list):
            self.op(b"]")
            if v:
                self.op(b"(")
                for x in v:
                    self.emit(x)
                self.op(b"e")
        elif isinstance(v, tuple):
            self.op(b")") if not v else self.tuple_(v)
        elif isinstance(v, bool):
            self.op(b"\x88" if v else b"\x89")
        elif isinstance(v, int):
            self.int_(v)
        elif isinstance(v, float):
            self.op(b"G" + struct.pack(">d", v))
        elif isinstance(v, str):
            self.string(v)
        elif v is None:
            self.op(b"N")
        else:
            raise TypeError(type(v))


def write(path, obj, archive="archive", deflate=False, strided=False, offset=0,
          pickle_bytes=None):
    w = _Writer(strided, offset)
    if pickle_bytes is None:
        w.emit(obj)
        w.op(b".")
        pickle_bytes = bytes(w.out)
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr(archive + "/data.pkl", pickle_bytes)
        zf.writestr(archive + "/byteorder", "little")
        for i, s in enumerate(w.storages):
            zf.writestr("%s/data/%d" % (archive, i), s.tobytes())
        zf.writestr(archive + "/version", "3\n")


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "list":
        for k, v in state_dict(read(a[1])).items():
            print(k, v.dtype, list(v.shape))
    elif a[0] == "rewrite":
        sd = collections.OrderedDict(state_dict(read(a[1])))
        out, opts, i = a[2], {"archive": "archive"}, 3
        wrap, prefix = None, ""
        while i < len(a):
            o = a[i]
            if o == "--wrap":
                wrap, i = a[i + 1], i + 2
            elif o == "--prefix":
                prefix, i = a[i + 1], i + 2
            elif o in ("--deflate", "--strided"):
                opts[o[2:]], i = True, i + 1
            elif o == "--offset":
                opts["offset"], i = int(a[i + 1]), i + 2
            elif o == "--archive":
                opts["archive"], i = a[i + 1], i + 2
            elif o == "--drop":
                del sd[a[i + 1]]
                i += 2
            elif o == "--set":
                t = sd[a[i + 1]].copy()
                t.reshape(-1)[int(a[i + 2])] = float(a[i + 3])
                sd[a[i + 1]], i = t, i + 4
            elif o == "--dtype":
                sd = collections.OrderedDict((k, v.astype(a[i + 1])) for k, v in sd.items())
                i += 2
            else:
                sys.exit("torchsave.py: unknown option " + o)
        sd = collections.OrderedDict((prefix + k, v) for k, v in sd.items())
        obj = sd if wrap is None else {"epoch": 3, wrap: sd, "note": [1.5, None, (True,)]}
        write(out, obj, **opts)
    elif a[0] == "names":
        sd = collections.OrderedDict()
        for spec in a[2:]:
            name, shape = spec.split("=")
            sd[name] = np.zeros([int(s) for s in shape.split(",") if s], np.float32)
        write(a[1], sd)
    elif a[0] == "pickle":
        write(a[1], None, pickle_bytes=bytes.fromhex(a[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
