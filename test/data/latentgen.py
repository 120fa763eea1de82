#!/usr/bin/python3
"""Latent streams for the tests, written and edited independently of the C code
(docs/formats.md "The latent stream").

latentgen.py synth OUT --like FILE [--n N] [--seed S] [--offset J=V,...]
                       [--labels L,L,...] [--t T]
    N latents of standard normals (seed S), with V added to value J of each, in
    the layout, model, weights and shapes of the first record of FILE; labels
    cycle through the list given (none without), factor T (default 1).
latentgen.py patch IN OUT FIELD=VALUE... [--record I]
    Rewrite fields of record I (default 0) and recompute its CRCs: header fields
    (magic, version, dtype, flags, n, c, h, w, reserved, raw_size, zsize), prefix
    fields (tag, size, layout, model, weights, levels, preserved, shape.L.K) or
    t.I / v.I (factor or value I as a float); VALUE is an integer (0x.. allowed),
    a float for t./v., a string for magic/tag.

As a module: read(path) is a list of records as dicts (labels, t, v (n, D),
layout, model, weights, levels, shapes); write(path, records) writes them.
"""
import struct
import sys
import zlib

import numpy as np

HEAD = ["magic", "version", "dtype", "flags", "n", "c", "h", "w", "reserved",
        "raw_size", "zsize", "payload_crc", "header_crc"]
HFMT = "<8s8I2Q2I"
PFMT = "<8sII2QII"   # tag, size, layout, model, weights, levels, reserved
PREFIX = 160


def read(path):
    recs = []
    f = sys.stdin.buffer if path == "-" else open(path, "rb")
    while True:
        head = f.read(64)
        if not head:
            return recs
        h = dict(zip(HEAD, struct.unpack(HFMT, head)))
        raw = zlib.decompress(f.read(h["zsize"]))
        n, off = h["n"], 0
        labels = None
        if h["flags"] & 1:
            labels, off = np.frombuffer(raw[:4 * n], "<i4").copy(), 4 * n
        tag, size, layout, model, weights, levels, res = struct.unpack_from(PFMT, raw, off)
        shapes = np.frombuffer(raw, "<u4", 30, off + 40).reshape(10, 3).copy()
        t = np.frombuffer(raw, "<f4", n, off + PREFIX).copy()
        D = h["c"] * h["h"] * h["w"]
        v = np.frombuffer(raw, "<f4", n * D, off + PREFIX + 4 * n).reshape(n, D).copy()
        recs.append(dict(head=h, labels=labels, t=t, v=v, layout=layout, model=model,
                         weights=weights, levels=levels, shapes=shapes, tag=tag, size=size,
                         preserved=res))


def encode(r, overrides=None):
    """One record of the dict r (as read returns), with fields overridden."""
    o = dict(overrides or {})
    h = dict(r["head"])
    n = len(r["t"])
    tag = o.pop("tag", r.get("tag", b"GLOWLATN"))
    shapes = np.array(r["shapes"], "<u4").reshape(10, 3)
    pf = dict(size=r.get("size", PREFIX), layout=r["layout"], model=r["model"],
              weights=r["weights"], levels=r["levels"], preserved=r.get("preserved", 0))
    t = np.array(r["t"], "<f4")
    v = np.array(r["v"], "<f4").reshape(n, -1)
    for k in list(o):
        if k in pf:
            pf[k] = o.pop(k)
        elif k.startswith("shape."):
            _, l, j = k.split(".")
            shapes[int(l), int(j)] = o.pop(k)
        elif k.startswith("t."):
            t[int(k[2:])] = o.pop(k)
        elif k.startswith("v."):
            v.reshape(-1)[int(k[2:])] = o.pop(k)
    raw = bytearray()
    if r["labels"] is not None:
        raw += np.asarray(r["labels"], "<i4").tobytes()
    raw += struct.pack(PFMT, tag, pf["size"], pf["layout"], pf["model"], pf["weights"],
                       pf["levels"], pf["preserved"])
    raw += shapes.tobytes() + t.tobytes() + v.tobytes()
    z = zlib.compress(bytes(raw), 1)
    h.update(flags=(1 if r["labels"] is not None else 0) | 2, n=n, raw_size=len(raw),
             zsize=len(z), payload_crc=zlib.crc32(raw), header_crc=0)
    h.update(o)
    head = struct.pack(HFMT, *[h[k] for k in HEAD])
    return head[:60] + struct.pack("<I", zlib.crc32(head[:60])) + z


def write(path, recs, overrides=None, at=None):
    with open(path, "wb") as f:
        for i, r in enumerate(recs):
            f.write(encode(r, overrides if at is None or at == i else None))


def value(k, s):
    if k in ("magic", "tag"):
        return s.encode()
    if k.startswith(("t.", "v.")):
        return float(s)
    return int(s, 0)


def main():
    cmd = sys.argv[1]
    if cmd == "synth":
        import argparse
        p = argparse.ArgumentParser()
        p.add_argument("out")
        p.add_argument("--like", required=True)
        p.add_argument("--n", type=int, default=4)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--offset", default="")
        p.add_argument("--labels", default="")
        p.add_argument("--t", type=float, default=1.0)
        a = p.parse_args(sys.argv[2:])
        like = read(a.like)[0]
        D = like["v"].shape[1]
        v = np.random.default_rng(a.seed).standard_normal((a.n, D)).astype("<f4")
        for kv in filter(None, a.offset.split(",")):
            j, x = kv.split("=")
            v[:, int(j)] += np.float32(x)
        labs = [int(x) for x in a.labels.split(",")] if a.labels else None
        r = dict(like, v=v, t=np.full(a.n, a.t, "<f4"),
                 labels=None if labs is None else [labs[i % len(labs)] for i in range(a.n)])
        write(a.out, [r])
    elif cmd == "patch":
        args = sys.argv[2:]
        at = 0
        if "--record" in args:
            i = args.index("--record")
            at = int(args[i + 1])
            del args[i:i + 2]
        src, out, sets = args[0], args[1], args[2:]
        ov = {k: value(k, v) for k, v in (s.split("=", 1) for s in sets)}
        write(out, read(src), ov, at)
    else:
        sys.exit("latentgen.py: synth or patch")


if __name__ == "__main__":
    main()
