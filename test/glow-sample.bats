#!/usr/bin/env bats
# glow-sample on the reference models: the stream it writes, determinism and
# batch independence, temperature, classes, and its errors. The shard stream is
# read back by test/data/shardgen.py (an independent reader).

bats_require_minimum_version 1.5.0
load helpers

# stream_info FILE: "n c h w" then "labels: ..." ("labels: none" without), then
# the mean over pixels of the per-pixel std across images, the number of
# distinct images, and "crc" with each image's CRC-32.
stream_info() {
    py - "$1" <<'EOF'
import sys, zlib
import numpy as np
from shardgen import records
recs = list(records(sys.argv[1]))
assert recs and all(x.dtype == np.uint8 for _, x in recs), "not a uint8 stream"
has = recs[0][0] is not None
assert all((l is not None) == has for l, _ in recs)
x = np.concatenate([x for _, x in recs])
print(*x.shape)
print("labels:", " ".join(str(v) for l, _ in recs for v in l) if has else "none")
print("std %.4f" % x.astype(np.float64).std(axis=0).mean())
print("distinct %d" % len({i.tobytes() for i in x}))
print("crc", " ".join("%08x" % zlib.crc32(i.tobytes()) for i in x))
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
    run --separate-stderr glow-sample "$LU" -n 2 --class 3 -o x.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-sample: --class 3: the model has 3 classes (0..2)"
    [ ! -e x.glow ]
    run --separate-stderr glow-sample "$AFF" -n 2 --class 0 -o x.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "--class 0: the model in $AFF is not class-conditional"
    run --separate-stderr glow-sample "$LU" --class -1 -o x.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "invalid --class '-1'"
    [ ! -e x.glow ]
}

@test "the same seed gives the same bytes, another seed other images" {
    glow-sample "$AFF" -n 6 --seed 7 >a.glow
    glow-sample "$AFF" -n 6 --seed 7 -o b.glow
    cmp a.glow b.glow
    glow-sample "$AFF" -n 6 --seed 8 >c.glow
    run ! cmp -s a.glow c.glow
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
    py -c "import sys; sys.exit(not (0 < $lo < 0.8 * $hi))"
}

@test "--ema uses the EMA weights; without an EMA it is a clear error" {
    with_training "$AFF" ema.safetensors --ema 0.9
    glow-sample ema.safetensors -n 4 >plain.glow
    glow-sample "$AFF" -n 4 >ref.glow
    cmp plain.glow ref.glow
    glow-sample ema.safetensors -n 4 --ema >ema.glow
    run ! cmp -s plain.glow ema.glow
    run --separate-stderr glow-sample "$AFF" -n 4 --ema
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "$AFF: --ema: this checkpoint has no EMA weights"
    run glow-sample "$AFF" -n 4 --ema -o x.glow
    [ "$status" -eq 1 ]
    [ ! -e x.glow ]
}

@test "a missing or damaged checkpoint is an error naming the file" {
    st truncate "$AFF" trunc.safetensors -100
    # Damage the JSON header.
    cp "$AFF" flip.safetensors
    printf 'XYZ' | dd of=flip.safetensors bs=1 seek=9 conv=notrunc status=none
    # An impossible header length.
    st header-len "$AFF" len.safetensors 0xffffffff
    for f in nosuch trunc flip len; do
        run --separate-stderr glow-sample $f.safetensors -o x.glow
        echo "$f: $status: $stderr"
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        assert_contains "$stderr" "glow-sample: $f.safetensors: "
        [ ! -e x.glow ]
    done
}

@test "bad values, unknown flags and missing arguments are usage errors" {
    for args in "-n 0" "-n -3" "-n abc" "-t -0.5" "-t nan" "-t inf" "-t 1e9" "-t x" "--batch 0" \
        "--seed -1" "--device tpu" "--frobnicate" "-n"; do
        run --separate-stderr glow-sample "$AFF" $args -o x.glow
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "Try 'glow-sample --help'"
    done
    run --separate-stderr glow-sample -o x.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-sample: missing the checkpoint (CKPT)"
    run --separate-stderr glow-sample "$AFF" "$LU" -o x.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "unexpected argument '$LU' (one checkpoint only)"
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
