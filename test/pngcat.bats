#!/usr/bin/env bats
# pngcat: grid geometry, options, pixel-exact output, and its errors. Streams
# come from test/data/shardgen.py, PNGs are decoded by test/data/pngdecode.py
# (zlib only), so neither side of the check relies on this project's C code.
bats_require_minimum_version 1.5.0
load helpers

png_size() { py "$ROOT/test/data/pngdecode.py" "$1"; }

@test "pngcat --help prints usage and exits 0" {
    run pngcat --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: pngcat"
    assert_contains "$output" "--split DIR"
}

@test "pngcat: unknown option and bad values are usage errors (exit 2)" {
    shardgen a.glow
    run --separate-stderr pngcat --frobnicate a.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: unknown option '--frobnicate'"
    run --separate-stderr pngcat --cols 0 a.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "invalid --cols '0'"
    run --separate-stderr pngcat --bg 256 a.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "invalid --bg '256'"
    run --separate-stderr pngcat --limit
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "option '--limit' needs a value"
    run --separate-stderr pngcat --split out -o x.png a.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "not --split"
}

@test "pngcat: default grid is ceil(sqrt(n)) columns with 2-pixel padding" {
    shardgen a.glow --n 10 --h 28 --w 28 --per-record 3
    pngcat a.glow > g.png
    # 4 columns, 3 rows: 4*28+3*2 by 3*28+2*2
    [ "$(png_size g.png)" = "118 88 1" ]
    shardgen one.glow --n 1 --h 5 --w 7
    pngcat < one.glow > one.png
    [ "$(png_size one.png)" = "7 5 1" ]
}

@test "pngcat: --cols, --pad and --limit shape the grid" {
    shardgen a.glow --n 10 --h 28 --w 28
    pngcat --cols 3 --pad 0 a.glow > g.png
    [ "$(png_size g.png)" = "84 112 1" ]
    # more columns than images: one row of all of them
    pngcat --cols 50 --pad 1 a.glow > g.png
    [ "$(png_size g.png)" = "289 28 1" ]
    pngcat --limit 4 a.glow > g.png
    [ "$(png_size g.png)" = "58 58 1" ]
    pngcat --limit 3 --cols 1 --pad 5 a.glow > g.png
    [ "$(png_size g.png)" = "28 94 1" ]
}

@test "pngcat: grid pixels are exact, RGB, with --bg padding and empty cells" {
    shardgen a.glow --n 5 --c 3 --h 4 --w 6 --labels --per-record 2
    pngcat --cols 2 --pad 3 --bg 7 -o g.png a.glow
    py - <<'EOF'
from pngdecode import decode
from shardgen import pixel
w, h, ch, pix = decode("g.png")
assert (w, h, ch) == (2 * 6 + 3, 3 * 4 + 2 * 3, 3), (w, h, ch)
for Y in range(h):
    for X in range(w):
        r, yy = divmod(Y, 4 + 3)
        c, xx = divmod(X, 6 + 3)
        i = r * 2 + c
        for k in range(3):
            want = pixel(i, k, yy, xx) if yy < 4 and xx < 6 and i < 5 else 7
            got = pix[(Y * w + X) * 3 + k]
            assert got == want, (X, Y, k, got, want)
EOF
}

@test "pngcat --split writes one pixel-exact PNG per image (gray, RGB, uint8, float32)" {
    for spec in "1 u8" "3 u8" "1 f32" "3 f32"; do
        set -- $spec
        shardgen s.glow --n 5 --c "$1" --h 4 --w 6 --dtype "$2" --labels --per-record 2
        rm -rf out
        pngcat --split out s.glow
        [ "$(ls out | tr '\n' ' ')" = "000000.png 000001.png 000002.png 000003.png 000004.png " ]
        py - "$1" <<'EOF'
import sys
from pngdecode import decode
from shardgen import pixel
c = int(sys.argv[1])
for i in range(5):
    w, h, ch, pix = decode("out/%06d.png" % i)
    assert (w, h, ch) == (6, 4, c), (w, h, ch)
    want = bytes(pixel(i, k, y, x) for y in range(4) for x in range(6) for k in range(c))
    assert pix == want, i
EOF
    done
}

@test "pngcat --split: --prefix, --limit, nested directory, no temporary files left" {
    shardgen s.glow --n 7 --h 3 --w 3 --per-record 3
    pngcat --split deep/er/dir --prefix img- --limit 4 s.glow
    [ "$(ls -A deep/er/dir | tr '\n' ' ')" = "img-000000.png img-000001.png img-000002.png img-000003.png " ]
    run --separate-stderr pngcat --prefix x s.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "--prefix needs --split"
}

@test "pngcat: float32 values are clamped to [0,1], scaled by 255 and rounded" {
    shardgen f.glow --n 1 --h 1 --w 8 --dtype f32 --values=-1,0,0.5,0.2,0.998,1,7,nan
    pngcat --split out f.glow
    py - <<'EOF'
from pngdecode import decode
w, h, ch, pix = decode("out/000000.png")
assert list(pix) == [0, 0, 128, 51, 254, 255, 255, 0], list(pix)
EOF
}

@test "pngcat -o writes the file atomically and nothing on failure" {
    shardgen a.glow --n 4
    pngcat -o out.png a.glow
    [ "$(png_size out.png)" = "6 8 1" ]
    pngcat -o - a.glow > dash.png
    cmp out.png dash.png
    [ "$(ls -A | grep -c tmp)" -eq 0 ]
    head -c 70 a.glow > cut.glow
    run --separate-stderr pngcat -o bad.png cut.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: cut.glow: record 1: truncated payload"
    [ ! -e bad.png ]
    [ "$(ls -A | grep -c tmp)" -eq 0 ]
}

@test "pngcat: a truncated stream fails with the record number and leaves stdout empty" {
    shardgen a.glow --n 6 --per-record 2
    size=$(stat -c %s a.glow)
    head -c $((size - 3)) a.glow > cut.glow
    run --separate-stderr pngcat cut.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: cut.glow: record 3: truncated payload"
    head -c $((size - 10)) a.glow | head -c 100 > cut2.glow
    run --separate-stderr pngcat <cut2.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: standard input: record 2: truncated header: "
    assert_contains "$stderr" " of 64 bytes present"
}

@test "pngcat: a corrupt byte is caught (header CRC, zlib data)" {
    shardgen a.glow --n 6 --per-record 3
    cp a.glow h.glow
    printf '\x09' | dd of=h.glow bs=1 seek=22 conv=notrunc status=none
    run --separate-stderr pngcat h.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: h.glow: record 1: header CRC mismatch"
    cp a.glow z.glow
    size=$(stat -c %s a.glow)
    last=$(tail -c 1 a.glow | od -An -tu1 | tr -d ' ')
    printf "\\x$(printf %02x $(( (last + 1) % 256 )))" | dd of=z.glow bs=1 seek=$((size - 1)) conv=notrunc status=none
    run --separate-stderr pngcat z.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: z.glow: record 2: zlib error: incorrect data check"
}

@test "pngcat: wrong magic, bad fields and payload CRC are reported" {
    shardgen a.glow --set magic=NOTSHARD
    run --separate-stderr pngcat a.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: a.glow: record 1: bad magic (not a shard stream)"
    shardgen b.glow --n 4 --per-record 2 --set-record 1 --set version=3
    run --separate-stderr pngcat -o out.png b.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "b.glow: record 2: unsupported version 3"
    shardgen c.glow --set payload_crc=12345
    run --separate-stderr pngcat -o out.png c.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: c.glow: record 1: payload CRC mismatch"
    [ ! -e out.png ]
}

@test "pngcat: empty input is 'no images' (exit 1)" {
    : > empty.glow
    run --separate-stderr pngcat empty.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: no images"
    run --separate-stderr pngcat --split d </dev/null
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: no images"
}

@test "pngcat: images with 2 channels are refused" {
    shardgen a.glow --c 2
    run --separate-stderr pngcat a.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: a.glow: record 1: 2 channels; PNG needs 1 (gray) or 3 (RGB)"
}

@test "pngcat: missing files and folders without shards are named" {
    run --separate-stderr pngcat nope.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: nope.glow: cannot open: No such file or directory"
    mkdir d
    run --separate-stderr pngcat d
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: d: no shard files (*.glow) in this directory"
}

@test "pngcat refuses to write PNG data to a terminal (exit 2)" {
    command -v script >/dev/null || skip "script(1) is not installed"
    shardgen a.glow
    run script -qec "pngcat $TMP/a.glow" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "refusing to write PNG data to a terminal"
    # -o FILE and --split do not write to the terminal.
    run script -qec "pngcat -o $TMP/t.png $TMP/a.glow" /dev/null
    [ "$status" -eq 0 ]
    [ "$(png_size t.png)" = "6 8 1" ]
    # Nor does it wait for a stream typed at a terminal.
    run script -qec "pngcat -o $TMP/u.png" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "expected a shard stream on standard input"
    [ ! -e u.png ]
}

@test "pngcat: 70,000 28x28 images make one grid in a few seconds" {
    shardgen big.glow --n 70000 --h 28 --w 28 --labels --per-record 10000
    start=$(date +%s)
    pngcat big.glow > big.png
    end=$(date +%s)
    [ "$(png_size big.png)" = "7948 7948 1" ]
    [ $((end - start)) -lt 30 ]
    pngcat --limit 100 big.glow > small.png
    [ "$(png_size small.png)" = "298 298 1" ]
}
