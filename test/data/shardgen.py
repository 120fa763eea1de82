#!/usr/bin/python3
"""Write shard streams for the tests, independently of the C writer.

shardgen.py OUT [--n N] [--c C] [--h H] [--w W] [--dtype u8|f32] [--labels]
                [--per-record K] [--seed S] [--set FIELD=VALUE] [--set-record I]
                [--keep-crc]

Image i, channel ch, row y, column x holds pixel(i, ch, y, x, seed); float32
streams hold pixel/255. Labels are label(i); --first shifts i, so a second file
can continue a first. --values V,V,... gives the elements of the stream instead
(n*c*h*w of them). --set overwrites a header field of record I (default 0) and
recomputes the header CRC unless --keep-crc. OUT "-" is standard output.
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


def record(first, n, c, h, w, dtype, labels, seed, overrides=None, keep_crc=False,
           values=None):
    raw = bytearray()
    if labels:
        raw += np.array([label(first + k) for k in range(n)], "<i4").tobytes()
    if values is not None:
        vals = np.asarray(values, "<f8")
    else:
        vals = pixels(first, n, c, h, w, seed).astype("<f8")
        if dtype == "f32":
            vals = vals / 255.0
    raw += vals.astype("u1" if dtype == "u8" else "<f4").tobytes()
    z = zlib.compress(bytes(raw), 1)
    f = dict(magic=b"GLOWSHRD", version=1, dtype=1 if dtype == "u8" else 2,
             flags=1 if labels else 0, n=n, c=c, h=h, w=w, reserved=0,
             raw_size=len(raw), zsize=len(z), payload_crc=zlib.crc32(raw), header_crc=0)
    for k, v in (overrides or {}).items():
        f[k] = v.encode() if k == "magic" else int(v, 0)
    head = struct.pack(FMT, *[f[k] for k in FIELDS])
    if not keep_crc:
        head = head[:60] + struct.pack("<I", zlib.crc32(head[:60]))
    return head + z


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    for k, d in (("n", 4), ("c", 1), ("h", 3), ("w", 2), ("per_record", 0), ("seed", 0),
                 ("set_record", 0), ("first", 0)):
        p.add_argument("--" + k.replace("_", "-"), type=int, default=d)
    p.add_argument("--dtype", choices=["u8", "f32"], default="u8")
    p.add_argument("--labels", action="store_true")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--keep-crc", action="store_true")
    p.add_argument("--values")
    a = p.parse_args()
    per = a.per_record or a.n
    overrides = dict(s.split("=", 1) for s in a.set)
    values = [float(v) for v in a.values.split(",")] if a.values else None
    img = a.c * a.h * a.w
    out = bytearray()
    for r, first in enumerate(range(0, a.n, per)):
        k = min(per, a.n - first)
        vals = values[first * img:(first + k) * img] if values else None
        out += record(a.first + first, k, a.c, a.h, a.w, a.dtype, a.labels, a.seed,
                      overrides if r == a.set_record else None, a.keep_crc, vals)
    if a.out == "-":
        sys.stdout.buffer.write(out)
    else:
        with open(a.out, "wb") as fh:
            fh.write(out)


if __name__ == "__main__":
    main()
