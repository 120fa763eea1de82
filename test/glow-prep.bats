#!/usr/bin/env bats
# glow-prep: every input kind, the image pipeline end to end, determinism,
# outputs, and bad input. Fixtures are made in each test: PNGs, IDX and CIFAR
# files by test/data/prep/preptool.py (which also reads shard streams back),
# JPEGs (and libpng-made PNGs) by the test_image binary's --write mode.
bats_require_minimum_version 1.5.0
load helpers

PT() { py "$ROOT/test/data/prep/preptool.py" "$@"; }
TI() { "$ROOT/$BUILD/test/test_image" --write "$@"; }
FM=/usr/share/datasets/fashion-mnist

# prep ARGS...: run glow-prep with stdout into out.glow; its report is in $stderr.
prep() { run --separate-stderr bash -c 'glow-prep "$@" >out.glow' _ "$@"; }

# pngs DIR N W H C: N random PNGs DIR/img0.png ... (pixels in DIR/imgI.png.raw)
pngs() {
    mkdir -p "$1"
    for ((i = 0; i < $2; i++)); do PT png "$1/img$i.png" "$3" "$4" "$5" "$i"; done
}

@test "glow-prep --help lists every flag; usage errors exit 2" {
    run glow-prep --help
    [ "$status" -eq 0 ]
    for f in --out --shard-size --format --root --labels --labels-from-dirs --classes \
        --channels --crop --size --pad --shuffle --seed --limit --split --val-out --jobs \
        --strict --quiet --help; do
        assert_contains "$output" "$f"
    done
    # the arguments | a part of the message
    while IFS='|' read -r args want; do
        run --separate-stderr glow-prep $args
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "glow-prep: $want"
    done <<'EOF'
--bogus x|unknown option '--bogus'
|no input given
--size 0 x.png|invalid --size '0'
--channels 2 x.png|invalid --channels '2' (1 or 3)
--split 0.9 x.png|--split with standard output needs --val-out
--format jpeg2000 x.png|invalid --format 'jpeg2000'
EOF
}

@test "glow-prep refuses to write binary data to a terminal" {
    command -v script >/dev/null || skip "script(1) is not installed"
    pngs d 1 4 4 1
    run script -qec "glow-prep d/img0.png" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "refusing to write binary data to a terminal"
}

@test "glow-prep: the seed's meta CSV (',name' header), paths from the CSV's folder" {
    pngs data 3 5 4 3
    printf ',name\n0,img0.png\n1,img1.png\n2,img2.png\n' >data/meta.csv
    prep data/meta.csv
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 3 images of 3x4x5"
    [ "$(PT info out.glow)" = "images=3 shape=3x4x5 labels=no records=1" ]
    PT raw out.glow | cmp - <(cat data/img0.png.raw data/img1.png.raw data/img2.png.raw)
    # --root overrides the CSV's folder
    mkdir other && cp data/meta.csv other/
    prep --root data other/meta.csv
    [ "$status" -eq 0 ]
    PT raw out.glow | cmp - <(cat data/img0.png.raw data/img1.png.raw data/img2.png.raw)
}

@test "glow-prep: plain lists, from a file and from standard input" {
    pngs d 3 6 6 1
    printf 'img2.png\n\nimg0.png\r\n' >d/list.txt
    prep d/list.txt
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=2 shape=3x6x6 labels=no records=1" ]
    # gray PNGs become RGB by repeating the gray value (default --channels 3)
    PT raw out.glow | cmp - <(for i in 2 0; do for k in 1 2 3; do cat d/img$i.png.raw; done; done)
    printf 'd/img1.png\n' | glow-prep --channels 1 - 2>/dev/null >one.glow
    PT raw one.glow | cmp - d/img1.png.raw
}

@test "glow-prep: CSV with a label column, quoted fields, any column order" {
    pngs d 3 4 4 3
    printf 'label,extra,filename\n7,x,img1.png\n0,"a,b","img0.png"\n3,,img2.png\n' >d/l.csv
    prep d/l.csv
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=3 shape=3x4x4 labels=yes records=1" ]
    [ "$(PT labels out.glow | tr '\n' ' ')" = "7 0 3 " ]
    PT raw out.glow | cmp - <(cat d/img1.png.raw d/img0.png.raw d/img2.png.raw)
}

@test "glow-prep: a directory, recursive and sorted; class folders give labels" {
    mkdir -p data/zebra data/cat/sub data/.hidden
    PT png data/zebra/b.png 4 4 3 1
    PT png data/zebra/a.png 4 4 3 2
    PT png data/cat/sub/c.png 4 4 3 3
    PT png data/cat/z.png 4 4 3 4
    PT png data/.hidden/h.png 4 4 3 5
    echo notes >data/cat/readme.txt
    prep data
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=4 shape=3x4x4 labels=no records=1" ]
    # bytewise path order: data/cat/sub/c.png < data/cat/z.png < data/zebra/a.png < b.png
    PT raw out.glow | cmp - <(cat data/cat/sub/c.png.raw data/cat/z.png.raw data/zebra/a.png.raw data/zebra/b.png.raw)
    prep --labels-from-dirs data
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "class 0: cat"
    assert_contains "$stderr" "class 1: zebra"
    [ "$(PT labels out.glow | tr '\n' ' ')" = "0 0 1 1 " ]
    prep --labels-from-dirs --classes classes.tsv --quiet data
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    [ "$(cat classes.tsv)" = "$(printf '0\tcat\n1\tzebra')" ]
    # an image directly in the top folder has no class: reported and skipped
    PT png data/top.png 4 4 3 6
    prep --labels-from-dirs data
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "data/top.png: not inside a class folder"
    assert_contains "$stderr" "skipped 1 of 5 images"
}

@test "glow-prep: IDX images, gzip and plain, labels from the sibling or --labels" {
    PT idx train-images-idx3-ubyte.gz 50 7 5 1
    PT idxlabels train-labels-idx1-ubyte.gz 50 10 2
    prep train-images-idx3-ubyte.gz
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "labels from train-labels-idx1-ubyte.gz"
    [ "$(PT info out.glow)" = "images=50 shape=1x7x5 labels=yes records=1" ]
    PT raw out.glow | cmp - train-images-idx3-ubyte.gz.raw
    [ "$(PT hist out.glow)" = "$(PT hist train-labels-idx1-ubyte.gz)" ]
    [ "$(PT labels out.glow | head -c 400)" = "$(py -c 'import gzip,sys; print("\n".join(str(b) for b in gzip.open(sys.argv[1]).read()[8:]))' train-labels-idx1-ubyte.gz | head -c 400)" ]
    # plain (not gzipped), detected by its magic, no labels beside it
    PT idx imgs.idx 20 4 4 3
    prep imgs.idx
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=20 shape=1x4x4 labels=no records=1" ]
    PT raw out.glow | cmp - imgs.idx.raw
    PT idxlabels labs.idx 20 3 4
    prep --format idx --labels labs.idx imgs.idx
    [ "$status" -eq 0 ]
    [ "$(PT hist out.glow)" = "$(PT hist labs.idx)" ]
    # --pad 2 and --channels 3
    prep --pad 2 --channels 3 imgs.idx
    [ "$(PT info out.glow)" = "images=20 shape=3x8x8 labels=no records=1" ]
    # a label file as input, and a label count that does not match
    prep train-labels-idx1-ubyte.gz
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "an IDX label file"
    [ ! -s out.glow ]
    prep --labels train-labels-idx1-ubyte.gz imgs.idx
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "50 labels, but imgs.idx has 20 images"
    [ ! -s out.glow ]
    # truncated pixels
    head -c 100 imgs.idx >short.idx
    prep --format idx short.idx
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "truncated"
    [ ! -s out.glow ]
}

@test "glow-prep: CIFAR-10 and CIFAR-100 batches, several concatenated" {
    PT cifar data_batch_1.bin 5 1
    PT cifar data_batch_2.bin 4 2
    prep data_batch_1.bin data_batch_2.bin
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=9 shape=3x32x32 labels=yes records=1" ]
    PT raw out.glow | cmp - <(cat data_batch_1.bin.raw data_batch_2.bin.raw)
    [ "$(PT labels out.glow)" = "$(cat data_batch_1.bin.labels data_batch_2.bin.labels)" ]
    PT cifar train.bin 6 3 100
    prep --format cifar100 train.bin
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=6 shape=3x32x32 labels=yes records=1" ]
    PT raw out.glow | cmp - train.bin.raw
    [ "$(PT labels out.glow)" = "$(cat train.bin.labels)" ]
    # recognised by size alone (3074-byte records) and gray output
    prep --channels 1 train.bin
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=6 shape=1x32x32 labels=yes records=1" ]
    head -c 5000 data_batch_1.bin >bad.bin
    prep bad.bin
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "multiple of neither 3073"
    [ ! -s out.glow ]
}

@test "glow-prep: PNG -> shard -> pngcat --split gives back the same pixels" {
    pngs d 4 9 7 3
    pngs g 2 5 5 1
    prep d/img0.png d/img1.png d/img2.png d/img3.png
    [ "$status" -eq 0 ]
    run pngcat --split back out.glow
    [ "$status" -eq 0 ]
    [ "$(ls back | wc -l)" -eq 4 ]
    i=0
    for f in $(ls back | sort); do
        PT pngraw "back/$f" | cmp - d/img$i.png.raw
        i=$((i + 1))
    done
    prep --channels 1 g/img0.png g/img1.png
    run pngcat --split gback out.glow
    [ "$status" -eq 0 ]
    PT pngraw "gback/$(ls gback | sort | head -n 1)" | cmp - g/img0.png.raw
}

@test "glow-prep: JPEG and every PNG kind; --crop and --size make one shape" {
    TI jpeg-rgb 80 60 1 a.jpg b.jpg
    TI jpeg-gray 64 64 3 c.jpg
    TI png-rgba 50 40 4 d.png
    TI png-palette 40 50 5 e.png
    TI png-gray16 33 33 6 f.png
    prep --crop --size 16 a.jpg b.jpg c.jpg d.png e.png f.png
    [ "$status" -eq 0 ]
    [ "$(PT info out.glow)" = "images=6 shape=3x16x16 labels=no records=1" ]
    prep --size 12x20 --channels 1 a.jpg d.png
    [ "$(PT info out.glow)" = "images=2 shape=1x12x20 labels=no records=1" ]
    # without --size another size is skipped with the reason
    prep a.jpg b.jpg d.png
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "d.png: image is 3x40x50 after processing, the first image was 3x60x80"
    assert_contains "$stderr" "skipped 1 of 3 images"
    [ "$(PT info out.glow)" = "images=2 shape=3x60x80 labels=no records=1" ]
    # a constant-free check of the resize: 2x downscale of a PNG equals the
    # 2x2 block means (rounded half up)
    PT png p.png 4 2 1 9
    prep --channels 1 --size 1x2 p.png
    exp=$(py -c 'import sys; d=open(sys.argv[1],"rb").read(); print(*[(d[2*i]+d[2*i+1]+d[4+2*i]+d[4+2*i+1]+2)//4 for i in range(2)])' p.png.raw)
    [ "$(PT raw out.glow | od -An -tu1 | xargs)" = "$exp" ]
}

@test "glow-prep: -j 1 and -j 3 write identical bytes" {
    TI jpeg-rgb 48 40 1 $(for i in $(seq 0 39); do echo "j$i.jpg"; done)
    TI png-rgb 40 48 50 $(for i in $(seq 0 19); do echo "p$i.png"; done)
    ls *.jpg *.png >list.txt
    echo "missing.png" >>list.txt
    glow-prep -j 1 --crop --size 24 --shuffle --seed 3 list.txt >j1.glow 2>e1.txt
    glow-prep -j 3 --crop --size 24 --shuffle --seed 3 list.txt >j3.glow 2>e3.txt
    cmp j1.glow j3.glow
    cmp e1.txt e3.txt
    PT idx i.idx 3000 8 8 1
    glow-prep -j 1 --pad 1 i.idx >i1.glow 2>/dev/null
    glow-prep -j 2 --pad 1 i.idx >i2.glow 2>/dev/null
    cmp i1.glow i2.glow
}

@test "glow-prep: --shuffle is deterministic per seed; --limit takes the first N" {
    PT idx i.idx 300 3 3 1
    PT idxlabels l.idx 300 250 2
    glow-prep --labels l.idx --shuffle --seed 1 i.idx >a.glow 2>/dev/null
    glow-prep --labels l.idx --shuffle --seed 1 i.idx >b.glow 2>/dev/null
    glow-prep --labels l.idx --shuffle --seed 2 i.idx >c.glow 2>/dev/null
    glow-prep --labels l.idx i.idx >plain.glow 2>/dev/null
    cmp a.glow b.glow
    ! cmp -s a.glow c.glow
    ! cmp -s a.glow plain.glow
    # a permutation: the same labels, in another order
    [ "$(PT labels a.glow | sort -n)" = "$(PT labels plain.glow | sort -n)" ]
    [ "$(PT labels a.glow)" != "$(PT labels plain.glow)" ]
    glow-prep --labels l.idx --shuffle --seed 1 --limit 10 i.idx >lim.glow 2>/dev/null
    [ "$(PT info lim.glow)" = "images=10 shape=1x3x3 labels=yes records=1" ]
    [ "$(PT labels lim.glow)" = "$(PT labels a.glow | head -n 10)" ]
}

@test "glow-prep: --split to standard output + --val-out, and to DIR/train, DIR/val" {
    PT idx i.idx 101 4 4 1
    PT idxlabels l.idx 101 5 2
    run --separate-stderr bash -c 'glow-prep --labels l.idx --split 0.9 --val-out val.glow i.idx >train.glow'
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 91 train images to standard output, 10 val images to val.glow"
    [ "$(PT info train.glow)" = "images=91 shape=1x4x4 labels=yes records=1" ]
    [ "$(PT info val.glow)" = "images=10 shape=1x4x4 labels=yes records=1" ]
    cat train.glow val.glow >both.glow
    glow-prep --labels l.idx i.idx >all.glow 2>/dev/null
    [ "$(PT raw both.glow | od -An -tx1)" = "$(PT raw all.glow | od -An -tx1)" ]
    run glow-prep --labels l.idx --split 0.9 -o out --shard-size 40 i.idx
    [ "$status" -eq 0 ]
    [ "$(ls out)" = "$(printf 'train\nval')" ]
    [ "$(ls out/train | tr '\n' ' ')" = "shard-00000.glow shard-00001.glow shard-00002.glow " ]
    [ "$(ls out/val)" = "shard-00000.glow" ]
    [ "$(cat out/train/*.glow | PT info -)" = "images=91 shape=1x4x4 labels=yes records=3" ]
    cmp <(cat out/val/shard-00000.glow) val.glow
}

@test "glow-prep: a --split that leaves a side empty is an error, and nothing is written" {
    PT idx i.idx 10 4 4 1
    # round(0.95 * 10) = 10: no validation images
    run --separate-stderr bash -c 'glow-prep --split 0.95 --val-out val.glow i.idx >train.glow'
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: --split 0.95 of 10 images leaves the validation set empty (10 train, 0 val)"
    [ ! -s train.glow ]
    [ ! -e val.glow ]
    run --separate-stderr glow-prep --split 0.01 -o out i.idx
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "leaves the training set empty (0 train, 10 val)"
    [ ! -e out/train/shard-00000.glow ]
    [ ! -e out/val/shard-00000.glow ]
    run --separate-stderr glow-prep --split 0.9 -o out i.idx
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "wrote 9 train images to out/train (1 file), 1 val images to out/val (1 file)"
    # one image cannot be split at all
    PT idx one.idx 1 4 4 1
    run --separate-stderr glow-prep --split 0.5 -o out2 one.idx
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "of 1 image leaves the"
}

@test "glow-prep does not write over its input: --val-out, standard output, -o onto the folder read" {
    PT idx i.idx 10 4 4 1
    cp i.idx keep.idx
    run --separate-stderr bash -c 'glow-prep --split 0.5 --val-out i.idx i.idx >t.glow'
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: i.idx: is also the input i.idx"
    cmp i.idx keep.idx
    run --separate-stderr bash -c 'glow-prep i.idx >>i.idx'
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: standard output is the input i.idx"
    cmp i.idx keep.idx
    pngs d 2 4 4 1
    run --separate-stderr glow-prep -o d d
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: d: is also the input d"
    [ ! -e d/shard-00000.glow ]
}

@test "glow-prep -o DIR: files of --shard-size images, atomic, no temp files, stale files gone" {
    PT idx i.idx 250 6 6 1
    run glow-prep -o shards --shard-size 100 i.idx
    [ "$status" -eq 0 ]
    assert_contains "$output" "wrote 250 images of 1x6x6 to shards (3 files)"
    [ "$(ls -A shards | tr '\n' ' ')" = "shard-00000.glow shard-00001.glow shard-00002.glow " ]
    [ "$(PT info shards/shard-00000.glow)" = "images=100 shape=1x6x6 labels=no records=1" ]
    [ "$(PT info shards/shard-00002.glow)" = "images=50 shape=1x6x6 labels=no records=1" ]
    cat shards/*.glow | PT raw - | cmp - i.idx.raw
    # default size: 64 MiB of pixels per file -> one file here
    run glow-prep -o shards i.idx
    [ "$status" -eq 0 ]
    [ "$(ls -A shards)" = "shard-00000.glow" ]
    # a run that fails leaves the earlier files and no temporary ones
    printf 'name\nnope.png\n' >bad.csv
    run --separate-stderr glow-prep -o shards bad.csv
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    [ "$(ls -A shards)" = "shard-00000.glow" ]
    # --strict stopping after a record went into an open file: that file's
    # temporary is removed, earlier files of the run stay committed
    mkdir p
    (cd p && TI png-rgb 4 4 1 $(seq -f 'i%04g.png' 0 1099))
    echo junk >p/i1100.png
    run --separate-stderr glow-prep --strict -o ps --shard-size 1000 p
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "p/i1100.png: not a PNG or JPEG file"
    [ "$(ls -A ps | tr '\n' ' ')" = "shard-00000.glow " ]
    [ "$(PT info ps/shard-00000.glow)" = "images=1000 shape=3x4x4 labels=no records=1" ]
}

@test "glow-prep: corrupt PNG, corrupt JPEG, missing file and bad CSV lines are reported and skipped" {
    pngs d 3 8 8 3
    TI jpeg-rgb 8 8 1 d/good.jpg
    head -c 60 d/img1.png >d/cut.png
    head -c 300 d/good.jpg >d/cut.jpg
    echo "not an image" >d/text.png
    printf 'label,name\n0,img0.png\n1,cut.png\n2,"unterminated\n3,cut.jpg\nx,img2.png\n4,missing.png\n5,text.png\n6\n7,good.jpg\n' >d/m.csv
    prep d/m.csv
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "d/m.csv: line 4: unterminated quoted field"
    assert_contains "$stderr" "d/m.csv: line 6: label 'x' is not a non-negative integer"
    assert_contains "$stderr" "d/m.csv: line 9: 1 fields, the header has 2"
    assert_contains "$stderr" "glow-prep: d/cut.png: PNG: "
    assert_contains "$stderr" "glow-prep: d/cut.jpg: JPEG: "
    assert_contains "$stderr" "glow-prep: d/missing.png: No such file or directory"
    assert_contains "$stderr" "glow-prep: d/text.png: not a PNG or JPEG file"
    assert_contains "$stderr" "skipped 7 of 9 images"
    [ "$(PT info out.glow)" = "images=2 shape=3x8x8 labels=yes records=1" ]
    [ "$(PT labels out.glow | tr '\n' ' ')" = "0 7 " ]
}

@test "glow-prep --strict: the first bad image or line is fatal, nothing on stdout" {
    pngs d 3 8 8 3
    head -c 60 d/img1.png >d/cut.png
    prep --strict d/img0.png d/cut.png d/img2.png
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "d/cut.png: PNG"
    assert_contains "$stderr" "--strict"
    [ ! -s out.glow ]
    printf 'name\nimg0.png\n"bad\n' >d/m.csv
    prep --strict d/m.csv
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "d/m.csv: line 3: unterminated quoted field"
    [ ! -s out.glow ]
    run --separate-stderr glow-prep --strict -o sd d/img0.png d/cut.png
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "d/cut.png: PNG"
    [ -z "$(ls -A sd 2>/dev/null)" ]
    prep --strict --split 0.5 --val-out v.glow d/img0.png d/cut.png
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "d/cut.png: PNG"
    [ ! -s out.glow ]
    [ ! -e v.glow ]
    [ -z "$(ls -A | grep tmp || true)" ]
}

@test "glow-prep: every image bad, or no images at all, is exit 1" {
    echo junk >a.png
    prep a.png
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "skipped 1 of 1 images"
    assert_contains "$stderr" "no usable images"
    [ ! -s out.glow ]
    mkdir empty
    prep empty
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "no images in the input"
    [ ! -s out.glow ]
    prep nowhere.csv
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "nowhere.csv: No such file or directory"
    [ ! -s out.glow ]
}

@test "glow-prep: Fashion-MNIST, all 70000 images with labels, 1x28x28 and --pad 2" {
    [ -e "$FM/train-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
    prep -q "$FM/train-images-idx3-ubyte.gz" "$FM/t10k-images-idx3-ubyte.gz"
    [ "$status" -eq 0 ]
    run PT info out.glow
    [[ "$output" == "images=70000 shape=1x28x28 labels=yes records="* ]]
    [ "$(PT hist out.glow)" = "$(PT hist "$FM/train-labels-idx1-ubyte.gz" "$FM/t10k-labels-idx1-ubyte.gz")" ]
    [ "$(PT hist out.glow | head -n 1)" = "0 7000" ]
    run glow-prep -q --pad 2 -o fm "$FM/train-images-idx3-ubyte.gz"
    [ "$status" -eq 0 ]
    run PT info fm/shard-00000.glow
    [[ "$output" == "images=60000 shape=1x32x32 labels=yes records="* ]]
}
