#!/usr/bin/env bats
# glow-sample on the reference models: the stream it writes, determinism and
# batch independence, temperature, classes, and its errors. The shard stream is
# read back in Python (an independent reader).

load helpers

PY=/usr/bin/python3
AFF="$REF_DIR/affine-invconv/model.safetensors"
LU="$REF_DIR/additive-lu-ycond/model.safetensors"

# stream_info FILE: "n c h w" then "labels: ..." ("labels: none" without), then
# the mean over pixels of the per-pixel std across images, the number of
# distinct images, and "crc" with each image's CRC-32.
stream_info() {
    "$PY" - "$1" <<'EOF'
import struct, sys, zlib
import numpy as np
data = open(sys.argv[1], "rb").read()
pos, imgs, labels, shape, has = 0, [], [], None, None
while pos < len(data):
    f = struct.unpack("<8s8I2Q2I", data[pos:pos + 64])
    assert f[0] == b"GLOWSHRD" and f[2] == 1, "not a uint8 shard record"
    n, c, h, w, zsize = f[4], f[5], f[6], f[7], f[10]
    raw = zlib.decompress(data[pos + 64:pos + 64 + zsize])
    assert zlib.crc32(raw) == f[11]
    off = 0
    if f[3] & 1:
        labels += list(np.frombuffer(raw[:4 * n], "<i4"))
        off = 4 * n
    has = bool(f[3] & 1)
    imgs.append(np.frombuffer(raw[off:], "u1").reshape(n, c, h, w))
    shape = (c, h, w)
    pos += 64 + zsize
x = np.concatenate(imgs).astype(np.float64)
print(len(x), *shape)
print("labels:", " ".join(map(str, labels)) if has else "none")
print("std %.4f" % x.std(axis=0).mean())
print("distinct %d" % len({i.tobytes() for i in x.astype(np.uint8)}))
print("crc", " ".join("%08x" % zlib.crc32(i.tobytes()) for i in x.astype(np.uint8)))
EOF
}

# make_ema SRC OUT: SRC plus an EMA (ema.* = 0.9 * params, fixed tensors copied).
make_ema() {
    "$PY" - "$1" "$2" <<'EOF'
import json, struct, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
hdr = json.loads(data[8:8 + n])
meta = hdr.pop("__metadata__")
D = {"F32": "<f4", "I32": "<i4"}
arrs = {}
for k, v in hdr.items():
    b, e = v["data_offsets"]
    arrs[k] = np.frombuffer(data[8 + n + b:8 + n + e], D[v["dtype"]]).reshape(v["shape"])
fixed = lambda k: k.endswith(("invconv.p", "invconv.sign_s", "shuffle.perm"))
out_t = dict(arrs)
for k, a in arrs.items():
    out_t["ema." + k] = a if fixed(k) else (a * 0.9).astype(a.dtype)
h, blobs, off = {"__metadata__": meta}, [], 0
for k, a in out_t.items():
    raw = np.ascontiguousarray(a).tobytes()
    h[k] = {"dtype": "I32" if a.dtype.kind == "i" else "F32", "shape": list(a.shape),
            "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(out, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
EOF
}

@test "writes -n images of the model's shape, without labels for an unconditional model" {
    glow-sample "$AFF" -n 10 --device cpu >s.glow
    run stream_info s.glow
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "10 3 16 16" ]
    [ "${lines[1]}" = "labels: none" ]
    [ "${lines[3]}" = "distinct 10" ]
}

@test "a conditional model cycles through its classes and labels each image" {
    glow-sample "$LU" -n 7 >s.glow
    run stream_info s.glow
    [ "${lines[0]}" = "7 1 8 8" ]
    [ "${lines[1]}" = "labels: 0 1 2 0 1 2 0" ]
    run glow-sample --help
    assert_contains "$output" "image i is class i mod n_classes"
}

@test "--class draws one class; bad --class values are usage errors" {
    glow-sample "$LU" -n 5 --class 2 >s.glow
    run stream_info s.glow
    [ "${lines[1]}" = "labels: 2 2 2 2 2" ]
    run glow-sample "$LU" -n 2 --class 3 -o x.glow
    [ "$status" -eq 2 ]
    assert_contains "$output" "3 classes (0..2)"
    [ ! -e x.glow ]
    run glow-sample "$AFF" -n 2 --class 0 -o x.glow
    [ "$status" -eq 2 ]
    assert_contains "$output" "not class-conditional"
    run glow-sample "$LU" --class -1 -o x.glow
    [ "$status" -eq 2 ]
}

@test "the same seed gives the same bytes, another seed other images" {
    glow-sample "$AFF" -n 6 --seed 7 >a.glow
    glow-sample "$AFF" -n 6 --seed 7 -o b.glow
    cmp a.glow b.glow
    glow-sample "$AFF" -n 6 --seed 8 >c.glow
    ! cmp -s a.glow c.glow
    # Image i is the same however many are drawn.
    glow-sample "$AFF" -n 3 --seed 7 >d.glow
    six=$(stream_info a.glow | sed -n 's/^crc //p')
    three=$(stream_info d.glow | sed -n 's/^crc //p')
    [ -n "$three" ]
    [[ "$six" == "$three "* ]]
}

@test "the output does not depend on --batch" {
    glow-sample "$AFF" -n 8 --batch 8 >a.glow
    glow-sample "$AFF" -n 8 --batch 3 >b.glow
    glow-sample "$AFF" -n 8 --batch 1 >c.glow
    cmp a.glow b.glow
    cmp a.glow c.glow
    glow-sample "$LU" -n 8 --batch 8 >d.glow
    glow-sample "$LU" -n 8 --batch 5 >e.glow
    cmp d.glow e.glow
}

@test "temperature 0 gives the mean image, whatever the seed" {
    glow-sample "$AFF" -n 4 -t 0 --seed 1 >a.glow
    glow-sample "$AFF" -n 4 -t 0 --seed 99 >b.glow
    cmp a.glow b.glow
    run stream_info a.glow
    [ "${lines[2]}" = "std 0.0000" ]
    [ "${lines[3]}" = "distinct 1" ]
    # Per class for a conditional model: three classes, three images.
    glow-sample "$LU" -n 6 -t 0 >c.glow
    run stream_info c.glow
    [ "${lines[3]}" = "distinct 3" ]
}

@test "a higher temperature spreads the images more" {
    glow-sample "$AFF" -n 40 -t 0.2 >lo.glow
    glow-sample "$AFF" -n 40 -t 1 >hi.glow
    lo=$(stream_info lo.glow | sed -n 's/^std //p')
    hi=$(stream_info hi.glow | sed -n 's/^std //p')
    echo "std at T=0.2: $lo, at T=1: $hi"
    "$PY" -c "import sys; sys.exit(not (0 < $lo < 0.8 * $hi))"
}

@test "--ema uses the EMA weights; without an EMA it is a clear error" {
    make_ema "$AFF" ema.safetensors
    glow-sample ema.safetensors -n 4 >plain.glow
    glow-sample "$AFF" -n 4 >ref.glow
    cmp plain.glow ref.glow
    glow-sample ema.safetensors -n 4 --ema >ema.glow
    ! cmp -s plain.glow ema.glow
    run glow-sample "$AFF" -n 4 --ema -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "$AFF: --ema: this checkpoint has no EMA weights"
    [ ! -e x.glow ]
}

@test "a missing or damaged checkpoint is an error naming the file" {
    run glow-sample nosuch.safetensors -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "glow-sample: nosuch.safetensors"
    size=$(stat -c %s "$AFF")
    head -c $((size - 100)) "$AFF" >trunc.safetensors
    run glow-sample trunc.safetensors -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "trunc.safetensors"
    # Damage the JSON header.
    cp "$AFF" flip.safetensors
    printf 'XYZ' | dd of=flip.safetensors bs=1 seek=9 conv=notrunc status=none
    run glow-sample flip.safetensors -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "flip.safetensors"
    # An impossible header length.
    cp "$AFF" len.safetensors
    printf '\377\377\377\377' | dd of=len.safetensors bs=1 seek=0 conv=notrunc status=none
    run glow-sample len.safetensors -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "len.safetensors"
    [ ! -e x.glow ]
}

@test "bad values, unknown flags and missing arguments are usage errors" {
    for args in "-n 0" "-n -3" "-n abc" "-t -0.5" "-t nan" "-t inf" "-t 1e9" "-t x" "--batch 0" \
        "--seed -1" "--device tpu" "--frobnicate" "-n"; do
        run glow-sample "$AFF" $args -o x.glow
        echo "$args -> $status: $output"
        [ "$status" -eq 2 ]
        assert_contains "$output" "Try 'glow-sample --help'"
    done
    run glow-sample -o x.glow
    [ "$status" -eq 2 ]
    run glow-sample "$AFF" "$LU" -o x.glow
    [ "$status" -eq 2 ]
    [ ! -e x.glow ]
    run glow-sample --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-sample"
}

@test "refuses to write binary data to a terminal" {
    command -v script >/dev/null || skip "script(1) not installed"
    run script -qec "glow-sample '$AFF' -n 1" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "refusing to write binary image data to a terminal"
}

@test "pipes into pngcat and into glow-bpd" {
    glow-sample "$AFF" -n 4 | pngcat >grid.png
    [ "$(head -c 8 grid.png | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]
    run bash -c "glow-sample '$LU' -n 6 | glow-bpd '$LU'"
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^bpd\ [0-9]+\.[0-9]{4}\ ±\ [0-9]+\.[0-9]{4}\ \(n=6\)$ ]]
}
