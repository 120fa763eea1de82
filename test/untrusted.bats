#!/usr/bin/env bats
# Untrusted files (docs/security.md): crafted checkpoints, shards, images and
# configs end in a clean error (exit 1, the file and the record or tensor named)
# with bounded memory; every tool that loads a checkpoint checks the same things.
# Each test is one finding of issue 15; test/data/crafted.py writes the files.

bats_require_minimum_version 1.5.0
load helpers

crafted() { py "$ROOT/test/data/crafted.py" "$@"; }

# peak_kb CMD...: run CMD (output dropped) and print its peak resident memory in
# KiB; the exit status goes to $PEAK_RC.
peak_kb() {
    py -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)' "$@"
}

TINY="$ROOT/configs/tiny.yml"

setup_file() {
    local d="$BATS_FILE_TMPDIR"
    cd "$d" || return 1
    PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$ROOT/test/data/shardgen.py" d8.glow \
        --n 32 --c 1 --h 8 --w 8
    # training checkpoints of the tiny model with EMA: plain invconv and LU
    glow-train -q -c "$TINY" -o plain --steps 2 --set train.ema_decay=0.9 d8.glow
    glow-train -q -c "$TINY" -o lu --steps 2 --set train.ema_decay=0.9 \
        --set model.lu=true d8.glow
    # 1 GiB of zeros in one record (about 1 MB), a 32768x32767 grey PNG (about 1 MB)
    PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$ROOT/test/data/crafted.py" zeros-record \
        zeros.glow 1 1 32768 32768
    PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$ROOT/test/data/crafted.py" grey-png \
        grey.png 32768 32767
}

# ---- 1. crashes ----

@test "1: a safetensors file whose last tensor is empty: listed, and refused by every loader" {
    crafted st-empty-last e.st
    run --separate-stderr glow-ckpt --list e.st
    [ "$status" -eq 0 ]
    assert_contains "$output" "empty"
    assert_contains "$stderr" "e.st: metadata 'format': missing"
    for cmd in "glow-ckpt e.st" "glow-ckpt --verify e.st" "glow-sample -o s.glow e.st" \
        "glow-bpd e.st $BATS_FILE_TMPDIR/d8.glow" \
        "glow-train -c $TINY -o r --init e.st $BATS_FILE_TMPDIR/d8.glow" \
        "glow-train --resume e.st $BATS_FILE_TMPDIR/d8.glow"; do
        run --separate-stderr $cmd
        [ "$status" -eq 1 ] || { echo "$cmd: status $status"; return 1; }
        assert_contains "$stderr" "e.st: metadata 'format': missing"
    done
    # a checkpoint with an empty tensor last: named, not freed twice
    st add "$BATS_FILE_TMPDIR/plain/checkpoint.safetensors" x.st zzz F32 0 0
    run --separate-stderr glow-sample -o s.glow x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "x.st: tensor 'zzz': not a parameter of this model"
    run glow-ckpt --list x.st
    [ "$status" -eq 0 ]
    assert_contains "$output" "zzz"
}

# ---- 2. one validation path ----

# refused SRC WHAT LU SAMPLE: every loader refuses SRC with a message containing
# WHAT, and writes nothing (LU: 1 for the LU model's config). The tools that only
# evaluate or sample read the weights alone (model/checkpoint.h
# glow_checkpoint_load_weights): SAMPLE "ema" when the damage is in the EMA copy
# (glow-sample refuses it with --ema only), "none" when it is in the optimizer
# state (glow-sample reads none of it, with or without --ema).
refused() {
    local src=$1 what=$2 lu=${3:-0} sample=${4:-} set=()
    [ "$lu" = 1 ] && set=(--set model.lu=true)
    run --separate-stderr glow-ckpt --verify "$src"
    [ "$status" -eq 1 ] || { echo "--verify: $status"; return 1; }
    assert_contains "$stderr" "$what"
    local bad=(glow-sample -n 2 -o s.glow "$src")
    if [ -n "$sample" ]; then
        run glow-sample -n 2 -o s.glow "$src"
        [ "$status" -eq 0 ] || { echo "glow-sample without --ema: $status: $output"; return 1; }
        rm -f s.glow
        bad=(glow-sample --ema -n 2 -o s.glow "$src")
    fi
    run --separate-stderr "${bad[@]}"
    if [ "$sample" = none ]; then
        [ "$status" -eq 0 ] || { echo "glow-sample --ema: $status: $stderr"; return 1; }
        rm -f s.glow
    else
        [ "$status" -eq 1 ] || { echo "glow-sample: $status"; return 1; }
        assert_contains "$stderr" "$what"
        [ ! -e s.glow ]
    fi
    run --separate-stderr glow-ckpt --export-weights w.st "$src"
    [ "$status" -eq 1 ] || { echo "--export-weights: $status"; return 1; }
    assert_contains "$stderr" "$what"
    [ ! -e w.st ]
    run --separate-stderr glow-train -q -c "$TINY" "${set[@]}" -o init --init "$src" --steps 1 \
        "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ] || { echo "--init: $status"; return 1; }
    assert_contains "$stderr" "$what"
    [ ! -e init/checkpoint.safetensors ]
    mkdir -p res && cp "$src" res/checkpoint.safetensors
    run --separate-stderr glow-train -q --resume res --steps 3 "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ] || { echo "--resume: $status"; return 1; }
    assert_contains "$stderr" "$what"
    cmp -s "$src" res/checkpoint.safetensors
    rm -rf res
}

@test "2: a singular invconv is refused by --init, --resume and --export-weights too" {
    st copy-row "$BATS_FILE_TMPDIR/plain/checkpoint.safetensors" sing.st flow.0.0.invconv.weight 0 1
    refused sing.st "tensor 'flow.0.0.invconv.weight': singular"
}

@test "2: an LU sign_s not +-1 and a p that is no permutation are refused everywhere" {
    local ck="$BATS_FILE_TMPDIR/lu/checkpoint.safetensors"
    st set "$ck" sign.st flow.1.0.invconv.sign_s 2 0.5
    refused sign.st "tensor 'flow.1.0.invconv.sign_s': element 2 is 0.5, not +-1" 1
    st set "$ck" p.st flow.0.1.invconv.p 0 1
    refused p.st "tensor 'flow.0.1.invconv.p': not a permutation matrix" 1
}

@test "2: an EMA copy of a fixed tensor that differs, and a negative second moment, are refused" {
    local ck="$BATS_FILE_TMPDIR/lu/checkpoint.safetensors"
    st set "$ck" ema.st ema.flow.0.0.invconv.sign_s 0 -7
    refused ema.st "ema.flow.0.0.invconv.sign_s" 1 ema
    st set "$ck" v.st optim.flow.0.1.actnorm.logs.v 1 -0.25
    refused v.st "tensor 'optim.flow.0.1.actnorm.logs.v': negative second moment at element 1" 1 none
}

@test "2: an invalid train_config fails --verify as it fails --resume" {
    local ck="$BATS_FILE_TMPDIR/plain/checkpoint.safetensors"
    st set-meta "$ck" tc.st 'train_config={"batch_size": 0, "steps": 2}'
    run --separate-stderr glow-ckpt --verify tc.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "tc.st: metadata train_config: train.batch_size"
    run --separate-stderr glow-ckpt --export-weights w.st tc.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "train.batch_size"
    run --separate-stderr glow-train -q --resume tc.st "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "train.batch_size"
    # and the trainer's own keys
    st set-meta "$ck" off.st data_offset=-1 optim_steps=99
    run --separate-stderr glow-ckpt --verify off.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "metadata data_offset: expected a non-negative integer, got '-1'"
    assert_contains "$stderr" "metadata optim_steps: 99 optimizer updates in 2 steps"
    run --separate-stderr glow-train -q --resume off.st --steps 4 "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "data_offset"
    # a good one still resumes and verifies
    cp "$ck" good.st
    run glow-train -q --resume good.st --steps 3 -o again "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 0 ]
    run glow-ckpt --verify again/checkpoint.safetensors
    [ "$status" -eq 0 ]
}

# ---- 3. memory before validation ----

@test "3: a 100 KB checkpoint claiming width 16384, K 1024, 4096x4096 is refused at once" {
    local ck="$BATS_FILE_TMPDIR/plain/checkpoint.safetensors"
    st set-meta "$ck" big.st \
        'model={"image_size":[4096,4096],"channels":3,"levels":3,"steps":1024,"width":16384}'
    for cmd in "glow-ckpt big.st" "glow-ckpt --verify big.st" "glow-sample -o s.glow big.st" \
        "glow-bpd big.st $BATS_FILE_TMPDIR/d8.glow" "glow-ckpt --export-weights w.st big.st"; do
        run --separate-stderr $cmd
        [ "$status" -eq 1 ] || { echo "$cmd: status $status"; return 1; }
        assert_contains "$stderr" "big.st: metadata 'model': the model has"
        assert_contains "$stderr" "more than the file's tensors hold"
        read -r kb rc < <(peak_kb $cmd)
        [ "$kb" -lt 400000 ] || { echo "$cmd: $kb KiB"; return 1; }
    done
    run --separate-stderr glow-train --resume big.st "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "the model has"
}

@test "3: a 1 MB record declaring 1x1x32768x32768 is refused before decompression" {
    read -r kb rc < <(peak_kb pngcat -o g.png "$BATS_FILE_TMPDIR/zeros.glow")
    [ "$rc" -eq 1 ]
    [ "$kb" -lt 100000 ]
    run --separate-stderr pngcat -o g.png "$BATS_FILE_TMPDIR/zeros.glow"
    assert_contains "$stderr" "zeros.glow: record 1: the record and the grid (1x1x32768x32768 uint8 images) would take 2.0 GiB of memory, over the limit of 2.0 GiB (this tool's default)"
    assert_contains "$stderr" "raise it with --mem-limit MiB"
    # on standard output the PNG is encoded in memory too
    run --separate-stderr pngcat --mem-limit 3000 "$BATS_FILE_TMPDIR/zeros.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "the record, the grid and its PNG"
    assert_contains "$stderr" "(--mem-limit 3000)"
    # readers that know the shape refuse it before it is decompressed
    run --separate-stderr glow-bpd "$AFF" - <"$BATS_FILE_TMPDIR/zeros.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "standard input: record 1: images are 1x32768x32768 (CxHxW) but the model takes 3x16x16"
    run --separate-stderr glow-train -c "$TINY" -o r <"$BATS_FILE_TMPDIR/zeros.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "standard input: record 1: images are 1x32768x32768 but the model expects 1x8x8"
    # a record raw_size that zlib cannot make from zsize bytes
    shardgen huge.glow --n 1 --c 1 --h 8 --w 8 --set raw_size=67108928 --set n=1048577
    run --separate-stderr pngcat -o g.png huge.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "huge.glow: record 1: raw_size 67108928 cannot come from zsize"
}

@test "3: a 1 MB grey PNG of 32768x32767 is refused by its size after conversion to RGB" {
    read -r kb rc < <(peak_kb glow-prep "$BATS_FILE_TMPDIR/grey.png")
    [ "$rc" -eq 1 ]
    [ "$kb" -lt 100000 ]
    run --separate-stderr glow-prep "$BATS_FILE_TMPDIR/grey.png"
    assert_contains "$stderr" "grey.png: PNG: image of 32768x32767 is too large: 3221127168 bytes with 3 channels"
    # a limit that leaves too little for one image: that image, and only it
    crafted grey-png small.png 64 64
    crafted grey-png mid.png 2048 2048
    run --separate-stderr glow-prep -j 3 --size 32 --mem-limit 140 small.png mid.png small.png
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "mid.png: PNG: decoding and processing this 2048x2048 image would take"
    assert_contains "$stderr" "skipped 1 of 3 images"
    run --separate-stderr glow-prep -j 1 --size 32 --mem-limit 140 small.png mid.png small.png
    assert_contains "$stderr" "skipped 1 of 3 images"
}

@test "3: configs asking for width 16384 x 1024 steps, or a batch of 2^20, are refused first" {
    tiny_config wide.yml model.width=16384 model.steps=1024
    read -r kb rc < <(peak_kb glow-train -c wide.yml -o r "$BATS_FILE_TMPDIR/d8.glow")
    [ "$rc" -eq 1 ]
    [ "$kb" -lt 400000 ]
    run --separate-stderr glow-train -c wide.yml -o r "$BATS_FILE_TMPDIR/d8.glow"
    assert_contains "$stderr" "wide.yml: training this model (parameters"
    assert_contains "$stderr" "raise it with --mem-limit MiB"
    [ ! -e r/checkpoint.safetensors ]
    tiny_config batch.yml train.batch_size=1048576
    run --separate-stderr glow-train -c batch.yml -o r --mem-limit 8192 "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "activations for a batch of 1048576"
    assert_contains "$stderr" "over the limit of 8.0 GiB (--mem-limit 8192)"
    # the tools that use a model refuse a --batch the same way
    run --separate-stderr glow-bpd --mem-limit 20 --batch 65536 "$AFF" "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--batch 65536: the model's activations for a batch of 65536 images would take"
    run --separate-stderr glow-sample --mem-limit 20 --batch 65536 -n 65536 -o s.glow "$AFF"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--batch 65536: the model's activations"
    run glow-sample --mem-limit 20 -n 4 -o s.glow "$AFF"
    [ "$status" -eq 0 ]
    for tool in glow-ckpt glow-sample glow-bpd glow-prep pngcat glow-train glow-encode glow-decode; do
        run --separate-stderr $tool --mem-limit 0 x
        [ "$status" -eq 2 ]
        assert_contains "$stderr" "--mem-limit 0: expected a positive number of MiB"
    done
}

# ---- 4. unbounded reads ----

@test "4: glow-ckpt - stops at the data its header declares" {
    crafted st-stream-header h.bin 0
    read -r kb rc < <(peak_kb bash -c "cat h.bin /dev/zero | glow-ckpt -")
    [ "$kb" -lt 100000 ]
    run --separate-stderr bash -c "cat h.bin /dev/zero | glow-ckpt -"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "standard input: data section has more than the 0 bytes the tensors cover"
    crafted st-stream-header h2.bin 1125899906842624
    run --separate-stderr bash -c "cat h2.bin /dev/zero | glow-ckpt -"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "standard input would take 1.0 PiB of memory, over the limit"
    # a declared 100 bytes arrive and the file ends: the usual checks
    crafted st-stream-header h3.bin 100
    run --separate-stderr bash -c "{ cat h3.bin; head -c 100 /dev/zero; } | glow-ckpt --list -"
    [ "$status" -eq 0 ]
    assert_contains "$output" "[100]"
}

@test "4: glow-prep --format list /dev/zero stops at the first megabyte" {
    read -r kb rc < <(peak_kb glow-prep --format list /dev/zero)
    [ "$rc" -eq 1 ]
    [ "$kb" -lt 50000 ]
    run --separate-stderr glow-prep --format list /dev/zero
    assert_contains "$stderr" "/dev/zero: line 1: longer than 1 MiB; not a list of image files or a CSV"
    printf 'a.png\n\0b.png\n' >nul.lst
    run --separate-stderr glow-prep --format list nul.lst
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "nul.lst: line 2: a NUL byte (binary data)"
}

# ---- 5. the smaller findings ----

@test "5: a NaN bpd is an error naming the first bad image" {
    local ck="$BATS_FILE_TMPDIR/plain/checkpoint.safetensors"
    py - "$ck" nan.st <<'EOF'
import sys
import st
f = st.File(sys.argv[1])
for k in f.names:
    if k.endswith("actnorm.logs") and not k.startswith(("ema.", "optim.")):
        f.tensor(k)[:] = 80  # finite, but exp(80) overflows float32 on the way
f.save(sys.argv[2])
EOF
    run glow-ckpt --verify nan.st
    [ "$status" -eq 0 ]
    run --separate-stderr glow-bpd nan.st "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "d8.glow: image 0: the bpd is nan, not a finite number (32 images of 32)"
    run --separate-stderr glow-bpd --json nan.st "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
}

@test "5: YAML nesting is refused in linear time" {
    crafted nested-yaml nest.yml 100000
    local t0=$SECONDS
    run --separate-stderr glow-train -c nest.yml -o r "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "nest.yml: line 2: nested more than 32 levels deep; not a config"
    [ $((SECONDS - t0)) -lt 10 ]
    # the configs that exist are not that deep
    run glow-train -q -c "$TINY" -o r --steps 1 "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 0 ]
}

@test "5: the header JSON: invalid UTF-8, \\u0000 and float offsets are refused" {
    crafted st-header u.st '{"__metadata__": {"format": "gl\xffow"}}'
    run --separate-stderr glow-ckpt --list --json u.st
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "u.st: header byte 39: not valid UTF-8"
    crafted st-header o.st '{"__metadata__": {"format": "glow"}, "t\xc0\xaf": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
    run --separate-stderr glow-ckpt --list o.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "not valid UTF-8"
    crafted st-header z.st '{"__metadata__": {"format": "glow\u0000x"}}'
    run --separate-stderr glow-ckpt --list z.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "z.st: header byte 41: the escape \\u0000 (a NUL character) in a string"
    crafted st-header f.st '{"a": {"dtype": "U8", "shape": [0], "data_offsets": [0.0, 0]}}'
    run --separate-stderr glow-ckpt --list f.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "f.st: tensor 'a': data_offsets are not non-negative integers"
    crafted st-header e.st '{"a": {"dtype": "U8", "shape": [1e0], "data_offsets": [0, 0]}}'
    run --separate-stderr glow-ckpt --list e.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "e.st: tensor 'a': shape entry 0 (1e0) is not a non-negative integer"
    # UTF-8 that is valid stays valid, raw and escaped
    crafted st-header ok.st '{"__metadata__": {"note": "caf\xc3\xa9 \u00e9"}, "a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
    run glow-ckpt --list --json ok.st
    [ "$status" -eq 0 ]
}

@test "5: a 2^62 shape is too large, not 'not a non-negative integer'" {
    crafted st-header s.st '{"a": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}}'
    run --separate-stderr glow-ckpt --list s.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "s.st: tensor 'a': shape holds 2^64 or more bytes but data_offsets span 0"
    crafted st-header s2.st '{"a": {"dtype": "U8", "shape": [9223372036854775808], "data_offsets": [0, 0]}}'
    run --separate-stderr glow-ckpt --list s2.st
    assert_contains "$stderr" "shape entry 0 (9223372036854775808) is larger than 2^63 - 1"
    crafted st-header s3.st '{"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 18446744073709551616]}}'
    run --separate-stderr glow-ckpt --list s3.st
    assert_contains "$stderr" "data_offsets are larger than 2^64 - 1"
}

@test "5: a zero-byte image and a text file named .png are bad images named as such" {
    : >empty.png
    run --separate-stderr glow-prep empty.png
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: empty.png: empty file"
    crafted text text.png $'hello world\nsecond line\n'
    run --separate-stderr glow-prep text.png
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: text.png: not a PNG or JPEG file"
    [[ "$stderr" != *"hello world"* ]]
    : >empty.lst
    run --separate-stderr glow-prep empty.lst
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: empty.lst: no images in the input"
}

@test "5: pngcat on a full disk says why; a device is written, not renamed over" {
    run --separate-stderr bash -c "pngcat '$BATS_FILE_TMPDIR/d8.glow' >/dev/full"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "pngcat: standard output: write failed: No space left on device"
    ln -s /dev/full full.png
    run --separate-stderr pngcat -o full.png "$BATS_FILE_TMPDIR/d8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "No space left on device"
    [ -L full.png ] && [ -c /dev/full ]
    run --separate-stderr glow-sample -n 2 -o full.png "$AFF"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "No space left on device"
    [ -L full.png ]
    # a FIFO is written as it is, not replaced by a file
    mkfifo fifo
    cat fifo >from-fifo.png &
    run pngcat -o fifo "$BATS_FILE_TMPDIR/d8.glow"
    wait
    [ "$status" -eq 0 ]
    [ -p fifo ]
    [ "$(head -c 4 from-fifo.png | od -An -c | tr -d ' ')" = "211PNG" ]
}
