#!/usr/bin/env bats
# The shard stream across files and pipes, and the Python reader printed in
# docs/formats.md, run exactly as printed against streams from the independent
# Python writer (test/data/shardgen.py) and from the C writer.
bats_require_minimum_version 1.5.0
load helpers


# The reader snippet of docs/formats.md, fences removed, as reader.py.
extract_reader() {
    awk '/<!-- python-reader:end -->/ {on=0} on && !/^```/ {print}
         /<!-- python-reader:begin -->/ {on=1}' "$ROOT/docs/formats.md" > reader.py
    [ "$(grep -c 'def read_shards' reader.py)" -eq 1 ]
}

# check_stream FILE N C H W DTYPE LABELS(0/1) [FIRST]: the doc's reader finds
# images first..first+n-1 of shardgen's pattern in FILE.
check_stream() {
    py - "$@" <<'EOF'
import sys
sys.path.insert(0, ".")
import numpy as np
from reader import read_shards
from shardgen import pixels, label
path = sys.argv[1]
n, c, h, w = map(int, sys.argv[2:6])
dtype, has_labels = sys.argv[6], sys.argv[7] == "1"
first = int(sys.argv[8]) if len(sys.argv) > 8 else 0
with open(path, "rb") as f:
    recs = list(read_shards(f))
assert len(recs) >= 1
images = np.concatenate([x for _, x in recs])
assert images.shape == (n, c, h, w), images.shape
want = pixels(first, n, c, h, w)
if dtype == "u8":
    assert images.dtype == np.uint8 and (images == want).all()
else:
    assert images.dtype == np.float32
    assert (images == (want / 255.0).astype(np.float32)).all()
if has_labels:
    labels = np.concatenate([l for l, _ in recs])
    assert labels.tolist() == [label(first + i) for i in range(n)], labels
else:
    assert all(l is None for l, _ in recs)
print("records", len(recs))
EOF
}

@test "cat a b | pngcat reads the concatenation in order" {
    shardgen a.glow --n 3 --h 4 --w 5 --per-record 2
    shardgen b.glow --n 4 --h 4 --w 5 --first 3
    : > empty.glow
    cat a.glow empty.glow b.glow | pngcat --split out
    [ "$(ls out | wc -l)" -eq 7 ]
    py - <<'EOF'
from pngdecode import decode
from shardgen import pixel
for i in range(7):
    w, h, ch, pix = decode("out/%06d.png" % i)
    assert pix == bytes(pixel(i, 0, y, x) for y in range(4) for x in range(5)), i
EOF
}

@test "files on the command line, '-' and a pipe give the same grid" {
    shardgen a.glow --n 3 --c 3 --h 4 --w 5 --labels
    shardgen b.glow --n 2 --c 3 --h 4 --w 5 --labels --first 3
    cat a.glow b.glow | pngcat > piped.png
    pngcat a.glow b.glow > files.png
    pngcat a.glow - < b.glow > dash.png
    cmp piped.png files.png
    cmp piped.png dash.png
}

@test "a shape change in the second file names that file and record" {
    shardgen a.glow --n 4 --h 4 --w 4 --per-record 2
    shardgen c.glow --n 2 --h 5 --w 5
    run --separate-stderr pngcat a.glow c.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: c.glow: record 1: shape 1x5x5 differs from 1x4x4 of earlier records"
    # Through a pipe the records are numbered across the whole stream.
    run --separate-stderr bash -c 'cat a.glow c.glow | pngcat'
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: standard input: record 3: shape 1x5x5 differs from 1x4x4 of earlier records"
}

@test "dtype and label changes across files are refused" {
    shardgen a.glow --n 2 --labels
    shardgen f.glow --n 2 --labels --dtype f32
    shardgen nl.glow --n 2
    run --separate-stderr pngcat a.glow f.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: f.glow: record 1: dtype float32 differs from uint8 of earlier records"
    run --separate-stderr pngcat --split d a.glow a.glow nl.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "pngcat: nl.glow: record 1: has no labels, but earlier records have them"
}

@test "the Python reader in docs/formats.md reads shardgen streams" {
    extract_reader
    shardgen u.glow --n 7 --c 1 --h 5 --w 6 --labels --per-record 3
    run check_stream u.glow 7 1 5 6 u8 1
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    assert_contains "$output" "records 3"
    shardgen f.glow --n 4 --c 3 --h 2 --w 3 --dtype f32
    run check_stream f.glow 4 3 2 3 f32 0
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    # concatenation, continuing the numbering
    shardgen g.glow --n 2 --c 1 --h 5 --w 6 --labels --first 7
    cat u.glow g.glow > ug.glow
    run check_stream ug.glow 9 1 5 6 u8 1
    [ "$status" -eq 0 ] || { echo "$output"; false; }
    # and it notices damage
    shardgen bad.glow --set payload_crc=1
    run check_stream bad.glow 4 1 3 2 u8 0
    [ "$status" -ne 0 ]
    assert_contains "$output" "bad payload"
}

@test "the Python reader in docs/formats.md reads a shard directory the C writer made" {
    fixture="$ROOT/$BUILD/test/test_shard"
    [ -x "$fixture" ] || skip "unit tests not built ($fixture)"
    extract_reader
    for t in u8 f32; do
        rm -rf fx
        "$fixture" --write-dir fx "$t"
        # 10 images, 4 per file, 3 per record
        [ "$(ls -A fx | tr '\n' ' ')" = "fixture-00000.glow fixture-00001.glow fixture-00002.glow " ]
        cat fx/*.glow > all.glow
        run check_stream all.glow 10 2 3 4 "$t" 1
        [ "$status" -eq 0 ] || { echo "$output"; false; }
        assert_contains "$output" "records 5"
    done
}
