#!/usr/bin/python3
"""Crafted files for test/untrusted.bats and the fuzz corpora: inputs made to
crash a reader, to make it allocate far more than the file holds, or to get past
a check. Written with the standard library alone.

crafted.py KIND OUT [ARGS]

  st-empty-last         a safetensors file whose last (only) tensor is empty
  st-header JSON        a safetensors file of that header and no data (the header
                        padded to 8 bytes); JSON is written as UTF-8, with
                        \\xNN escapes turned into raw bytes first
  st-stream-header N    8 + header bytes declaring N bytes of tensor data ("a", U8)
                        and no data: to be followed by an endless stream
  zeros-record N C H W  one shard record of N x C x H x W uint8 zeros (zlib level
                        9: a 1 GiB payload takes about 1 MB)
  grey-png W H          an 8-bit grey PNG of W x H zeros (zlib level 9)
  nested-yaml N         a config whose image_size is N nested brackets
  text FILE TEXT        TEXT as it is (a text file under an image's name)
"""
import struct
import sys
import zlib


def put(path, data):
    with open(path, "wb") as fh:
        fh.write(data)


def safetensors(header_bytes, data=b""):
    h = header_bytes + b" " * (-len(header_bytes) % 8)
    return struct.pack("<Q", len(h)) + h + data


def shard_header(dtype, flags, n, c, h, w, raw, zsize, pcrc):
    head = struct.pack("<8s8I2Q2I", b"GLOWSHRD", 1, dtype, flags, n, c, h, w, 0, raw, zsize,
                       pcrc, 0)
    return head[:60] + struct.pack("<I", zlib.crc32(head[:60]))


def zeros_stream(total, chunk=4 << 20):
    """zlib (level 9) and CRC-32 of total zero bytes, fed in chunks."""
    z, parts, crc, zero = zlib.compressobj(9), [], 0, bytes(chunk)
    left = total
    while left:
        k = min(left, chunk)
        parts.append(z.compress(zero[:k]))
        crc = zlib.crc32(zero[:k], crc)
        left -= k
    parts.append(z.flush())
    return b"".join(parts), crc


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def main(a):
    if len(a) < 2:
        sys.exit(__doc__)
    kind, out = a[0], a[1]
    if kind == "st-empty-last":
        put(out, safetensors(b'{"empty": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}}'))
    elif kind == "st-header":
        text = a[2].encode("utf-8")
        raw = bytearray()
        i = 0
        while i < len(text):  # \xNN -> the byte NN
            if text[i:i + 2] == b"\\x":
                raw.append(int(text[i + 2:i + 4], 16))
                i += 4
            else:
                raw.append(text[i])
                i += 1
        put(out, safetensors(bytes(raw)))
    elif kind == "st-stream-header":
        n = int(a[2])
        h = ('{"__metadata__": {"format": "glow"}, "a": {"dtype": "U8", "shape": [%d], '
             '"data_offsets": [0, %d]}}' % (n, n)).encode()
        h += b" " * (-len(h) % 8)
        put(out, struct.pack("<Q", len(h)) + h)
    elif kind == "zeros-record":
        n, c, h, w = (int(x) for x in a[2:6])
        raw = n * c * h * w
        zdata, crc = zeros_stream(raw)
        put(out, shard_header(1, 0, n, c, h, w, raw, len(zdata), crc) + zdata)
    elif kind == "grey-png":
        w, h = int(a[2]), int(a[3])
        z, parts, row = zlib.compressobj(9), [], bytes(w + 1)
        rows_per = max(1, (4 << 20) // (w + 1))
        block = row * rows_per
        done = 0
        while done < h:
            k = min(rows_per, h - done)
            parts.append(z.compress(block if k == rows_per else row * k))
            done += k
        parts.append(z.flush())
        put(out, b"\x89PNG\r\n\x1a\n" +
            png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) +
            png_chunk(b"IDAT", b"".join(parts)) + png_chunk(b"IEND", b""))
    elif kind == "nested-yaml":
        n = int(a[2])
        put(out, ("model:\n  image_size: " + "[" * n + "]" * n + "\n").encode())
    elif kind == "text":
        put(out, a[2].encode())
    else:
        sys.exit("crafted.py: unknown kind '%s'" % kind)


if __name__ == "__main__":
    main(sys.argv[1:])
