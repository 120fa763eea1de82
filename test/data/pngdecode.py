#!/usr/bin/python3
"""A small PNG decoder (8-bit gray/RGB, no interlace) for checking pngcat's output
with nothing but zlib: pngdecode.py FILE prints "WIDTH HEIGHT CHANNELS" from the
header; as a module, decode(path) returns (width, height, channels, pixel bytes
row-major), checking every chunk CRC."""
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, ihdr, seen_end = 8, bytearray(), None, False
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError("chunk CRC mismatch in " + kind.decode())
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
        pos += 12 + length
    if not seen_end:
        raise ValueError("no IEND")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (0, 2) or interlace:
        raise ValueError("unsupported PNG kind %r" % (ihdr,))
    ch = 1 if ctype == 0 else 3
    raw, stride = zlib.decompress(bytes(idat)), w * ch
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        base = y * (stride + 1)
        ftype, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        for i in range(stride):
            a = line[i - ch] if i >= ch else 0
            b, c = prev[i], prev[i - ch] if i >= ch else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + pred) & 255
        out += line
        prev = line
    return w, h, ch, bytes(out)


def header(path):
    """(width, height, channels) from the IHDR chunk alone (fast on big files)."""
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    w, h, depth, ctype = struct.unpack(">IIBB", head[16:26])
    if zlib.crc32(head[12:29]) != struct.unpack(">I", head[29:33])[0]:
        raise ValueError("IHDR CRC mismatch")
    return w, h, {0: 1, 2: 3}.get(ctype, -ctype)


if __name__ == "__main__":
    print(*header(sys.argv[1]))
