#!/usr/bin/python3
"""Shard streams for the tests, written and read independently of the C code.

shardgen.py OUT [--n N] [--c C] [--h H] [--w W] [--dtype u8|f32] [--labels]
                [--label-mod K] [--per-record K] [--seed S] [--first I]
                [--values V,V,...] [--fill V] [--set FIELD=VALUE]
                [--set-record I] [--keep-crc]

Image i, channel ch, row y, column x holds pixel(i, ch, y, x, seed); float32
streams hold pixel/255. Labels are label(i), or i mod K with --label-mod K;
--first shifts i, so a second file can continue a first. --values V,V,... gives
the elements of the stream instead (n*c*h*w of them), --fill V makes every
element V. --set overwrites a header field of record I (default 0) and
recomputes the header CRC unless --keep-crc. OUT "-" is standard output.

As a module: encode(images, labels=None) is one record of an (n, c, h, w) uint8
or float32 array; records(path) reads a stream ("-": standard input), checking
every CRC, as (labels or None, images) pairs.
"""
import argparse
import struct
import sys
import zlib

import numpy as np

FIELDS = ["magic", "version", "dtype", "flags", "n", "c", "h", "w", "reserved",
          "raw_size", "zsize", "payload_crc", "header_crc"]
FMT = "<8s8I2Q2I"


def pixel(i, ch, y, x, seed=0):
    return (i * 31 + ch * 17 + y * 7 + x * 3 + seed) % 256


def label(i):
    return i * 3 - 5


def pixels(first, n, c, h, w, seed=0):
    """pixel() for images first..first+n-1 as a uint8 array of shape (n, c, h, w)."""
    i, ch, y, x = np.ix_(np.arange(first, first + n), np.arange(c), np.arange(h), np.arange(w))
    return ((i * 31 + ch * 17 + y * 7 + x * 3 + seed) % 256).astype(np.uint8)


def encode(images, labels=None, overrides=None, keep_crc=False):
    """One record: images an (n, c, h, w) uint8 or float32 array, labels n ints."""
    n, c, h, w = images.shape
    u8 = images.dtype == np.uint8
    raw = bytearray()
    if labels is not None:
        raw += np.asarray(labels, "<i4").tobytes()
    raw += np.ascontiguousarray(images, "u1" if u8 else "<f4").tobytes()
    z = zlib.compress(bytes(raw), 1)
    f = dict(magic=b"GLOWSHRD", version=1, dtype=1 if u8 else 2,
             flags=0 if labels is None else 1, n=n, c=c, h=h, w=w, reserved=0,
             raw_size=len(raw), zsize=len(z), payload_crc=zlib.crc32(raw), header_crc=0)
    for k, v in (overrides or {}).items():
        f[k] = v.encode() if k == "magic" else int(v, 0)
    head = struct.pack(FMT, *[f[k] for k in FIELDS])
    if not keep_crc:
        head = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return head + z


def record(first, n, c, h, w, dtype, labels, seed, overrides=None, keep_crc=False,
           values=None, label_mod=0):
    if values is not None:
        vals = np.asarray(values, "<f8").reshape(n, c, h, w)
    else:
        vals = pixels(first, n, c, h, w, seed).astype("<f8")
        if dtype == "f32":
            vals = vals / 255.0
    lab = None
    if label_mod:
        lab = [(first + k) % label_mod for k in range(n)]
    elif labels:
        lab = [label(first + k) for k in range(n)]
    return encode(vals.astype("u1" if dtype == "u8" else "<f4"), lab, overrides, keep_crc)


def records(path):
    """(labels or None, images) of each record of a stream, every CRC checked."""
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    while True:
        head = f.read(64)
        if not head:
            return
        assert len(head) == 64, "truncated record header"
        v = dict(zip(FIELDS, struct.unpack(FMT, head)))
        assert v["magic"] == b"GLOWSHRD" and v["version"] == 1, "not a shard record"
        assert zlib.crc32(head[:60]) == v["header_crc"], "header CRC mismatch"
        raw = zlib.decompress(f.read(v["zsize"]))
        assert len(raw) == v["raw_size"] and zlib.crc32(raw) == v["payload_crc"], "bad payload"
        n, off, labels = v["n"], 0, None
        if v["flags"] & 1:
            labels, off = np.frombuffer(raw[:4 * n], "<i4"), 4 * n
        dtype = {1: "u1", 2: "<f4"}[v["dtype"]]
        yield labels, np.frombuffer(raw[off:], dtype).reshape(n, v["c"], v["h"], v["w"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    for k, d in (("n", 4), ("c", 1), ("h", 3), ("w", 2), ("per_record", 0), ("seed", 0),
                 ("set_record", 0), ("first", 0)):
        p.add_argument("--" + k.replace("_", "-"), type=int, default=d)
    p.add_argument("--dtype", choices=["u8", "f32"], default="u8")
    p.add_argument("--labels", action="store_true")
    p.add_argument("--label-mod", type=int, default=0)
    p.add_argument("--fill", type=float)
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--keep-crc", action="store_true")
    p.add_argument("--values")
    a = p.parse_args()
    per = a.per_record or a.n
    overrides = dict(s.split("=", 1) for s in a.set)
    values = [float(v) for v in a.values.split(",")] if a.values else None
    img = a.c * a.h * a.w
    if a.fill is not None:
        values = [a.fill] * (a.n * img)
    out = bytearray()
    for r, first in enumerate(range(0, a.n, per)):
        k = min(per, a.n - first)
        vals = values[first * img:(first + k) * img] if values else None
        out += record(a.first + first, k, a.c, a.h, a.w, a.dtype, a.labels, a.seed,
                      overrides if r == a.set_record else None, a.keep_crc, vals,
                      a.label_mod)
    if a.out == "-":
        sys.stdout.buffer.write(out)
    else:
        with open(a.out, "wb") as fh:
            fh.write(out)


if __name__ == "__main__":
    main()
