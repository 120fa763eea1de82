#!/usr/bin/python3
"""Fixture writer and shard reader for test/glow-prep.bats (PNGs decoded by
test/data/pngdecode.py, shard streams read by test/data/shardgen.py).

  png OUT W H C SEED             an 8-bit gray (C=1) or RGB (C=3) PNG; its pixels
                                 (CHW) also go to OUT.raw
  pngraw PNG                     decode an 8-bit non-interlaced PNG to CHW bytes on stdout
  idx OUT N H W SEED             IDX images (gzip when OUT ends in .gz); pixels to OUT.raw
  idxlabels OUT N K SEED         IDX labels 0..K-1
  cifar OUT N SEED [100]         CIFAR-10 (or -100) batch; OUT.raw pixels, OUT.labels
  info STREAM                    "images=N shape=CxHxW labels=yes|no records=R"
  raw STREAM                     every image's pixels, concatenated, on stdout
  labels STREAM                  one label per line
  hist FILE...                   label histogram "label count" of shard streams or
                                 IDX label files (gzip or plain)
"""
import gzip
import os
import random
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pngdecode  # noqa: E402
import shardgen  # noqa: E402


def pixels(n, seed):
    r = random.Random(seed)
    return bytes(r.randrange(256) for _ in range(n))


def write_png(path, w, h, c, data_chw):
    rows = b""
    plane = w * h
    for y in range(h):
        rows += b"\0"
        for x in range(w):
            for k in range(c):
                rows += bytes([data_chw[k * plane + y * w + x]])

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) +
                chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def png_raw(path):
    """The pixels of an 8-bit gray or RGB PNG, channel-major (CHW)."""
    w, h, c, hwc = pngdecode.decode(path)
    return b"".join(hwc[k::c] for k in range(c))


def records(path):
    """(n, c, h, w, labels or None, pixel bytes) of each uint8 record of a stream."""
    for labels, images in shardgen.records(path):
        assert images.dtype == np.uint8, "not a uint8 stream"
        n, c, h, w = images.shape
        yield n, c, h, w, None if labels is None else labels.tolist(), images.tobytes()


def main(a):
    cmd = a[0]
    if cmd == "png":
        w, h, c, seed = map(int, a[2:6])
        data = pixels(w * h * c, seed)
        write_png(a[1], w, h, c, data)
        open(a[1] + ".raw", "wb").write(data)
    elif cmd == "pngraw":
        sys.stdout.buffer.write(png_raw(a[1]))
    elif cmd in ("idx", "idxlabels"):
        out = a[1]
        f = gzip.open(out, "wb") if out.endswith(".gz") else open(out, "wb")
        if cmd == "idx":
            n, h, w, seed = map(int, a[2:6])
            data = pixels(n * h * w, seed)
            f.write(struct.pack(">IIII", 0x803, n, h, w) + data)
            open(out + ".raw", "wb").write(data)
        else:
            n, k, seed = map(int, a[2:5])
            r = random.Random(seed)
            f.write(struct.pack(">II", 0x801, n) + bytes(r.randrange(k) for _ in range(n)))
        f.close()
    elif cmd == "cifar":
        out, n, seed = a[1], int(a[2]), int(a[3])
        hundred = len(a) > 4 and a[4] == "100"
        r = random.Random(seed)
        data, labels, raw = b"", [], b""
        for _ in range(n):
            px = bytes(r.randrange(256) for _ in range(3072))
            fine = r.randrange(100 if hundred else 10)
            lab = bytes([r.randrange(20), fine]) if hundred else bytes([fine])
            data += lab + px
            raw += px
            labels.append(fine)
        open(out, "wb").write(data)
        open(out + ".raw", "wb").write(raw)
        open(out + ".labels", "w").write("".join("%d\n" % x for x in labels))
    elif cmd == "info":
        n = recs = 0
        shape = labels = None
        for rn, c, h, w, lab, _ in records(a[1]):
            n += rn
            recs += 1
            shape = "%dx%dx%d" % (c, h, w)
            labels = "yes" if lab is not None else "no"
        print("images=%d shape=%s labels=%s records=%d" % (n, shape, labels, recs))
    elif cmd == "raw":
        for r in records(a[1]):
            sys.stdout.buffer.write(r[5])
    elif cmd == "labels":
        for r in records(a[1]):
            for x in r[4]:
                print(x)
    elif cmd == "hist":
        hist = {}
        for p in a[1:]:
            head = open(p, "rb").read(8)
            if head[:8] == b"GLOWSHRD":
                labs = [x for r in records(p) for x in r[4]]
            else:
                d = (gzip.open(p, "rb") if head[:2] == b"\x1f\x8b" else open(p, "rb")).read()
                assert struct.unpack(">I", d[:4])[0] == 0x801
                labs = list(d[8:])
            for x in labs:
                hist[x] = hist.get(x, 0) + 1
        for k in sorted(hist):
            print(k, hist[k])
    else:
        sys.exit("preptool: unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
