#!/usr/bin/python3
"""Safetensors files for the tests, read and written here with NumPy alone, so
that the tools are checked against a second reader and writer. As a module:

  f = File(path)          f.meta (dict), f.names (file order), f.tensor(name)
                          (a writable array over f.data, the file's bytes),
                          f.tensors() (name -> array), f.save(path) (the bytes,
                          edits included)
  write(path, tensors, meta)   a new file: tensors (name -> array) in that
                          order, the header padded to 8 bytes like the C writer
  with_training(tensors, meta, ema=None, moments=None)   a copy with training
                          state: ema.* = ema * params (the fixed invconv.p,
                          invconv.sign_s and shuffle.perm copied), and with
                          moments (M, V): optim.*.m = M, optim.*.v = V for every
                          trained parameter

From the command line ("-" as OUT is standard output):

  st.py names FILE                  tensor names, one a line, in file order
  st.py count FILE                  the number of values of all tensors
  st.py meta FILE [KEY]             the metadata as JSON, or one value
  st.py stats FILE TENSOR           "min max mean std" (float64)
  st.py same [--layout] A B         the same tensors (names, dtypes, shapes and
                                    bytes; metadata and order aside), else exit 1
                                    naming the first difference; --layout: and at
                                    the same offsets
  st.py set SRC OUT TENSOR INDEX VALUE   one element (flat INDEX) replaced, every
                                    other byte as it was
  st.py copy-row SRC OUT TENSOR FROM TO  row TO := row FROM (first axis)
  st.py set-meta SRC OUT KEY=VALUE...    metadata keys set (rewrites the file)
  st.py set-dtype SRC OUT TENSOR DTYPE   the header's dtype string replaced (any
                                    string: damage), every other byte as it was
  st.py drop SRC OUT TENSOR...      tensors removed
  st.py add SRC OUT TENSOR DTYPE SHAPE VALUE   a tensor of SHAPE ("2,3"; "" is a
                                    scalar) filled with VALUE added
  st.py header-len SRC OUT N        the 8-byte header length set to N (0x.. too;
                                    "past-end": the file's size), the rest as it was
  st.py truncate SRC OUT N          the first N bytes (N < 0: all but the last -N)
  st.py train SRC OUT [--ema F] [--moments M V] [--meta KEY=VALUE]...
                                    with_training, plus metadata keys
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}
FIXED = ("invconv.p", "invconv.sign_s", "shuffle.perm")


def is_fixed(name):
    """A parameter that is not trained (no moments; its EMA is a copy)."""
    return name.endswith(FIXED)


class File:
    def __init__(self, path):
        with (sys.stdin.buffer if path == "-" else open(path, "rb")) as fh:
            self.data = bytearray(fh.read())
        (self.hlen,) = struct.unpack("<Q", self.data[:8])
        self.header = json.loads(self.data[8:8 + self.hlen])
        self.meta = self.header.pop("__metadata__", {})
        self.names = list(self.header)

    def tensor(self, name):
        info = self.header[name]
        begin, end = info["data_offsets"]
        base = 8 + self.hlen
        view = memoryview(self.data)[base + begin:base + end]
        return np.frombuffer(view, DTYPES[info["dtype"]]).reshape(info["shape"])

    def tensors(self):
        return {k: self.tensor(k) for k in self.names}

    def save(self, path):
        put(path, bytes(self.data))


def put(path, data):
    if path == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(path, "wb") as fh:
            fh.write(data)


def write(path, tensors, meta):
    header, blobs, off = {"__metadata__": dict(meta)}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": NAMES[a.dtype.newbyteorder("<").str], "shape": list(a.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    put(path, struct.pack("<Q", len(h)) + h + b"".join(blobs))


def with_training(tensors, meta, ema=None, moments=None):
    out, meta = dict(tensors), dict(meta)
    for k, a in tensors.items():
        if ema is not None:
            out["ema." + k] = a if is_fixed(k) else (a * a.dtype.type(ema)).astype(a.dtype)
        if moments is not None and not is_fixed(k):
            out["optim." + k + ".m"] = np.full(a.shape, moments[0], "<f4")
            out["optim." + k + ".v"] = np.full(a.shape, moments[1], "<f4")
    return out, meta


def keyvals(args):
    kv = {}
    for a in args:
        k, sep, v = a.partition("=")
        if not sep:
            sys.exit("st.py: expected KEY=VALUE, not '%s'" % a)
        kv[k] = v
    return kv


def main(a):
    if not a:
        sys.exit(__doc__)
    cmd = a[0]
    if cmd == "names":
        print("\n".join(File(a[1]).names))
    elif cmd == "count":
        f = File(a[1])
        print(sum(int(np.prod(f.header[k]["shape"], dtype=np.int64)) for k in f.names))
    elif cmd == "meta":
        f = File(a[1])
        print(f.meta[a[2]] if len(a) > 2 else json.dumps(f.meta))
    elif cmd == "stats":
        x = File(a[1]).tensor(a[2]).astype(np.float64)
        print(x.min(), x.max(), x.mean(), x.std())
    elif cmd == "same":
        layout = a[1] == "--layout"
        x, y = File(a[1 + layout]), File(a[2 + layout])
        if set(x.names) != set(y.names):
            sys.exit("st.py same: tensor names differ: %s" % sorted(set(x.names) ^ set(y.names)))
        for k in x.names:
            hx, hy = x.header[k], y.header[k]
            if (hx["dtype"], hx["shape"]) != (hy["dtype"], hy["shape"]):
                sys.exit("st.py same: %s: %s %s vs %s %s" % (k, hx["dtype"], hx["shape"],
                                                              hy["dtype"], hy["shape"]))
            if x.tensor(k).tobytes() != y.tensor(k).tobytes():
                sys.exit("st.py same: %s: the values differ" % k)
            if layout and hx["data_offsets"] != hy["data_offsets"]:
                sys.exit("st.py same: %s: data_offsets %s vs %s" % (k, hx["data_offsets"],
                                                                 hy["data_offsets"]))
    elif cmd == "set":
        f = File(a[1])
        t = f.tensor(a[3]).reshape(-1)
        t[int(a[4])] = float(a[5]) if t.dtype.kind == "f" else int(a[5])
        f.save(a[2])
    elif cmd == "copy-row":
        f = File(a[1])
        t = f.tensor(a[3])
        t[int(a[5])] = t[int(a[4])]
        f.save(a[2])
    elif cmd == "set-dtype":
        f = File(a[1])
        info = f.header[a[3]]
        # the entry's bytes in the header, found by its exact JSON text
        head = f.data[8:8 + f.hlen]
        at = head.index(json.dumps(a[3]).encode())
        old = ('"%s"' % info["dtype"]).encode()
        i = head.index(old, at)
        new = ('"%s"' % a[4]).encode()
        if len(new) != len(old):
            sys.exit("st.py set-dtype: '%s' must have %d characters" % (a[4], len(old) - 2))
        f.data[8 + i:8 + i + len(old)] = new
        f.save(a[2])
    elif cmd in ("set-meta", "drop", "add", "train"):
        f = File(a[1])
        tensors, meta = f.tensors(), dict(f.meta)
        if cmd == "set-meta":
            meta.update(keyvals(a[3:]))
        elif cmd == "drop":
            for k in a[3:]:
                del tensors[k]
        elif cmd == "add":
            shape = [int(s) for s in a[5].split(",") if s]
            tensors[a[3]] = np.full(shape, float(a[6]), DTYPES[a[4]])
        else:
            ema, moments, rest, i = None, None, [], 3
            while i < len(a):
                if a[i] == "--ema":
                    ema, i = float(a[i + 1]), i + 2
                elif a[i] == "--moments":
                    moments, i = (float(a[i + 1]), float(a[i + 2])), i + 3
                elif a[i] == "--meta":
                    rest.append(a[i + 1])
                    i += 2
                else:
                    sys.exit("st.py train: unknown argument '%s'" % a[i])
            tensors, meta = with_training(tensors, meta, ema, moments)
            meta.update(keyvals(rest))
        write(a[2], tensors, meta)
    elif cmd in ("header-len", "truncate"):  # raw bytes: any file, damaged or not
        with open(a[1], "rb") as fh:
            data = fh.read()
        if cmd == "header-len":
            n = len(data) if a[3] == "past-end" else int(a[3], 0)
            data = struct.pack("<Q", n) + data[8:]
        else:
            n = int(a[3])
            data = data[:n] if n >= 0 else data[:len(data) + n]
        put(a[2], data)
    else:
        sys.exit("st.py: unknown command '%s'" % cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
