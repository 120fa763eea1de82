#!/usr/bin/env bats
# The shard stream as an input (issue 20): glow-prep reads shard files, folders of
# them and standard input like any other input kind (subset, shuffle, split,
# resize, pad, re-shard), and every tool that takes shard folders searches them
# recursively in the one documented order (docs/formats.md, "Shard folders").
# Streams come from the independent writer (test/data/shardgen.py) and are read
# back by test/data/prep/preptool.py.
bats_require_minimum_version 1.5.0
load helpers

PT() { py "$ROOT/test/data/prep/preptool.py" "$@"; }

@test "glow-prep of a shard file gives its images and labels back; --limit keeps the first N" {
    shardgen a.glow --n 40 --c 1 --h 8 --w 8 --labels --label-mod 5 --per-record 7 --seed 3
    run --separate-stderr bash -c 'glow-prep a.glow > all.glow'
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 40 images of 1x8x8 with labels"
    [ "$(PT raw all.glow | md5sum)" = "$(PT raw a.glow | md5sum)" ]
    [ "$(PT labels all.glow)" = "$(PT labels a.glow)" ]
    glow-prep -q a.glow --limit 12 > some.glow
    [ "$(PT info some.glow)" = "images=12 shape=1x8x8 labels=yes records=1" ]
    [ "$(PT raw some.glow | md5sum)" = "$(PT raw a.glow | head -c 768 | md5sum)" ]
    # and the pipe of the README: a grid of the first 64 images
    shardgen b.glow --n 100 --c 1 --h 8 --w 8
    glow-prep b.glow --limit 64 | pngcat > grid.png
    [ "$(PT pngraw grid.png | wc -c)" -eq $(((8 * 8 + 7 * 2) * (8 * 8 + 7 * 2))) ]
}

@test "glow-prep reads a shard stream on standard input ('-'), peeked, not a list" {
    shardgen a.glow --n 9 --c 3 --h 4 --w 4 --seed 2
    glow-prep -q a.glow > ref.glow
    cat a.glow | glow-prep -q - > dash.glow
    cmp ref.glow dash.glow
    glow-prep -q --format shard - < a.glow > forced.glow
    cmp ref.glow forced.glow
    # a list on standard input still is one
    PT png p.png 4 4 3 1
    echo p.png | glow-prep -q - > list.glow
    [ "$(PT info list.glow)" = "images=1 shape=3x4x4 labels=no records=1" ]
}

@test "shuffle, split, resize, pad and re-shard a shard stream" {
    shardgen a.glow --n 50 --c 1 --h 8 --w 8 --labels --label-mod 10
    glow-prep -q a.glow --shuffle --seed 4 --split 0.8 --size 4 --pad 2 --shard-size 15 -o d
    [ "$(ls d/train)" = "$(printf 'shard-00000.glow\nshard-00001.glow\nshard-00002.glow')" ]
    [ "$(PT info d/train/shard-00000.glow)" = "images=15 shape=1x8x8 labels=yes records=1" ]
    [ "$(cat d/train/*.glow | PT info /dev/stdin)" = "images=40 shape=1x8x8 labels=yes records=3" ]
    [ "$(PT info d/val/shard-00000.glow)" = "images=10 shape=1x8x8 labels=yes records=1" ]
    # the labels of both parts together are the input's, shuffled
    [ "$(cat d/train/*.glow d/val/*.glow | PT labels /dev/stdin | sort | md5sum)" = \
      "$(PT labels a.glow | sort | md5sum)" ]
    [ "$(cat d/train/*.glow d/val/*.glow | PT labels /dev/stdin | md5sum)" != \
      "$(PT labels a.glow | md5sum)" ]
    # the same again, bit for bit
    glow-prep -q a.glow --shuffle --seed 4 --split 0.8 --size 4 --pad 2 --shard-size 15 -o e
    diff -r d e
}

@test "re-padding: --pad -P takes P pixels off every side, undoing --pad P bit for bit" {
    shardgen a.glow --n 12 --c 3 --h 6 --w 5 --labels --label-mod 3 --seed 8
    glow-prep -q --pad 2 a.glow > p.glow
    [ "$(PT info p.glow)" = "images=12 shape=3x10x9 labels=yes records=1" ]
    glow-prep -q --pad -2 p.glow > u.glow
    [ "$(PT raw u.glow | md5sum)" = "$(PT raw a.glow | md5sum)" ]
    [ "$(PT labels u.glow)" = "$(PT labels a.glow)" ]
    # taking off more than there is: every image named, nothing written
    run --separate-stderr glow-prep -q --pad -3 -o too a.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "a.glow: image 1: 5x6 is too small to take 3 pixels off every side (--pad -3)"
    [ ! -e too ]
}

@test "a shard folder is searched recursively, in natural order folder by folder" {
    mkdir -p f/b f/b-2 f/.hidden
    shardgen f/a.glow --n 1 --c 1 --h 2 --w 2 --first 0
    shardgen f/b/x-10.glow --n 1 --c 1 --h 2 --w 2 --first 2
    shardgen f/b/x-2.glow --n 1 --c 1 --h 2 --w 2 --first 1
    shardgen f/b-2/y.glow --n 1 --c 1 --h 2 --w 2 --first 3
    shardgen f/c.glow --n 1 --c 1 --h 2 --w 2 --first 4
    shardgen f/.hidden/z.glow --n 1 --c 1 --h 2 --w 2 --first 9
    shardgen f/.tmp.glow --n 1 --c 1 --h 2 --w 2 --first 9
    shardgen want.glow --n 5 --c 1 --h 2 --w 2
    glow-prep -q f > got.glow
    [ "$(PT raw got.glow | md5sum)" = "$(PT raw want.glow | md5sum)" ]
    # pngcat, glow-prep with a trailing slash and cat of the listed order agree
    pngcat f > a.png
    pngcat want.glow > b.png
    cmp a.png b.png
    glow-prep -q f/ > slash.glow
    cmp got.glow slash.glow
}

@test "glow-train and glow-bpd take a folder whose shards sit in sub-folders" {
    tiny_config t.yml train.steps=2 train.batch_size=4
    shardgen s.glow --n 24 --c 1 --h 8 --w 8
    mkdir -p data
    glow-prep -q s.glow --split 0.5 -o data/set
    [ -z "$(ls data/*.glow 2>/dev/null)" ]
    run --separate-stderr glow-train -q -c t.yml --device cpu -o run data/
    echo "$stderr"
    [ "$status" -eq 0 ]
    [ -f run/checkpoint.safetensors ]
    run --separate-stderr glow-bpd --device cpu run/checkpoint.safetensors data
    echo "$output $stderr"
    [ "$status" -eq 0 ]
    assert_contains "$output" "(n=24)"
}

@test "bad shard inputs: float32, channels, labels changing, truncation, empty folders" {
    shardgen f.glow --n 2 --c 1 --h 4 --w 4 --dtype f32
    run --separate-stderr glow-prep f.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "f.glow: record 1: float32 images"
    shardgen c2.glow --n 2 --c 2 --h 4 --w 4
    run --separate-stderr glow-prep c2.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "c2.glow: record 1: 2 channels"
    shardgen l.glow --n 2 --c 1 --h 4 --w 4 --labels
    shardgen n.glow --n 2 --c 1 --h 4 --w 4
    run --separate-stderr glow-prep l.glow n.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "n.glow: has no labels but the inputs before it have labels"
    shardgen big.glow --n 30 --c 1 --h 8 --w 8 --per-record 10
    head -c 1000 big.glow > cut.glow
    run --separate-stderr glow-prep cut.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "cut.glow: record 2"
    mkdir -p empty/sub
    run --separate-stderr glow-prep --format shard empty
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "empty: no shard files (*.glow) in this directory"
    run --separate-stderr pngcat empty
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "empty: no shard files (*.glow) in this directory"
    # a folder of images and shards is ambiguous; --format decides
    mkdir -p mix
    PT png mix/p.png 4 4 1 1
    cp n.glow mix/
    run --separate-stderr glow-prep mix
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "mix: holds both images and shard files"
    run --separate-stderr bash -c 'glow-prep --format shard mix > s.glow'
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 2 images"
    run --separate-stderr bash -c 'glow-prep --format dir --channels 1 mix > d.glow'
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 1 images"
}

@test "a shard input is held within --mem-limit" {
    shardgen big.glow --n 256 --c 3 --h 64 --w 64 --per-record 16
    run --separate-stderr glow-prep --mem-limit 1 big.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "big.glow: record"
    assert_contains "$stderr" "MiB"
}
