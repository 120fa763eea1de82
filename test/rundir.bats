#!/usr/bin/env bats
# glow-train's run directory (docs/checkpoints.md "A run directory"): a run is
# never silently reused (-o refuses, --force moves it aside, one trainer at a
# time); it remembers its data (data.json: resume with none, with the same data
# moved, with foreign data, --new-data); numbered, best and pruned checkpoints and
# glow-ckpt RUN_DIR; validation of the weights and of their EMA; sample grids and
# reconstructions (their bytes, their determinism, their draws); glow-plot; no
# tool writing over its own input.

bats_require_minimum_version 1.5.0
load helpers

TINY="$BATS_FILE_TMPDIR/tiny.yml"
FM="${FMNIST:-/usr/share/datasets/fashion-mnist}"
export OMP_NUM_THREADS=1

setup_file() {
    D="$BATS_FILE_TMPDIR"
    tiny_config "$D/tiny.yml" train.device=cpu
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || return 0
    glow-prep -q --limit 200 --size 8 "$FM/t10k-images-idx3-ubyte.gz" >"$D/d8.glow"
    glow-prep -q --limit 50 --size 8 "$FM/t10k-images-idx3-ubyte.gz" >"$D/s8.glow"
    glow-prep -q --limit 50 --size 8 "$FM/train-images-idx3-ubyte.gz" >"$D/v8.glow"
}

data() {
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
    D="$BATS_FILE_TMPDIR"
}

gnuplot_needed() {
    command -v gnuplot >/dev/null || skip "gnuplot is not installed (make deps installs gnuplot-nox)"
}

ckpt_step() { glow-ckpt --json "$1" | json_get - 'd["step"]'; }
same_tensors() { st same "$1" "$2"; }

# png_info FILE: "WIDTH HEIGHT CHANNELS NONWHITE COLOURS" (pixels not white,
# distinct colours) of a PNG, by test/data/pngdecode.py.
png_info() {
    py - "$1" <<'EOF'
import sys
import pngdecode
w, h, c, px = pngdecode.decode(sys.argv[1])
pix = [bytes(px[i:i + c]) for i in range(0, len(px), c)]
white = bytes([255] * c)
print(w, h, c, sum(p != white for p in pix), len(set(pix)))
EOF
}

@test "-o on a directory that holds a run refuses, naming the run, its step, --resume and --force" {
    data
    glow-train -q -c "$TINY" -o run --steps 4 --val "$D/s8.glow" "$D/s8.glow"
    cp run/checkpoint.safetensors before.safetensors
    cp run/config.yml before.yml
    nlog=$(wc -l <run/log.jsonl)
    # the same model, another model, a fine-tuning: all refused, nothing touched
    for args in "-c $TINY" "-c $TINY --set model.width=4" "--init before.safetensors"; do
        run --separate-stderr glow-train $args -o run "$D/s8.glow"
        echo "$args: $stderr"
        [ "$status" -eq 1 ]
        [ -z "$output" ]
        assert_contains "$stderr" "glow-train: run: already holds the run tiny at step 4 of 4"
        assert_contains "$stderr" "--resume run"
        assert_contains "$stderr" "--force"
    done
    cmp run/checkpoint.safetensors before.safetensors
    cmp run/config.yml before.yml
    [ "$(wc -l <run/log.jsonl)" -eq "$nlog" ]
    [ ! -e run.old-1 ]
    # a run that has no checkpoint yet (config.yml and log.jsonl) is a run too
    mkdir early
    cp run/config.yml early/
    run --separate-stderr glow-train -c "$TINY" -o early "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "early: already holds the run, with no checkpoint yet"
    # a folder without a run is used, and what else it holds stays
    mkdir plain
    echo notes >plain/notes.txt
    run glow-train -q -c "$TINY" -o plain --steps 2 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(cat plain/notes.txt)" = notes ]
    [ "$(ckpt_step plain/checkpoint.safetensors)" = 2 ]
}

@test "--force moves the old run aside to DIR.old-N, says so, and starts anew" {
    data
    glow-train -q -c "$TINY" -o run --steps 4 "$D/s8.glow"
    cp run/checkpoint.safetensors first.safetensors
    run --separate-stderr glow-train -q -c "$TINY" -o run --force --steps 2 "$D/s8.glow"
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "glow-train: --force: moved the run tiny at step 4 of 4 from run to run.old-1; starting anew in run"
    cmp run.old-1/checkpoint.safetensors first.safetensors
    [ "$(ckpt_step run/checkpoint.safetensors)" = 2 ]
    [ "$(grep -c '"start"' run/log.jsonl)" -eq 1 ]
    # again: the next free name; and the old run resumes where it now lies
    run --separate-stderr glow-train -q -c "$TINY" -o run/ --force --steps 3 "$D/s8.glow"
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "from run/ to run.old-2"
    [ "$(ckpt_step run.old-2/checkpoint.safetensors)" = 2 ]
    run glow-train -q --resume run.old-1 --steps 6
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run.old-1/checkpoint.safetensors)" = 6 ]
    # --force on a folder without a run moves nothing
    run --separate-stderr glow-train -q -c "$TINY" -o fresh --force --steps 1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    [ ! -e fresh.old-1 ]
}

@test "one glow-train at a time in a run directory: a second one is refused while the first trains" {
    data
    glow-train -q -c "$TINY" -o run --steps 100000 --set train.checkpoint_every=25 "$D/d8.glow" &
    pid=$!
    for _ in $(seq 600); do [ -f run/checkpoint.safetensors ] && break; sleep 0.05; done
    [ -f run/checkpoint.safetensors ]
    run --separate-stderr glow-train -q --resume run "$D/d8.glow"
    s1=$status e1=$stderr
    run --separate-stderr glow-train -q -c "$TINY" -o run --force "$D/d8.glow"
    s2=$status e2=$stderr
    kill -TERM "$pid"
    wait "$pid" || true
    [ "$s1" -eq 1 ]
    assert_contains "$e1" "run: a glow-train (pid $pid) is training in this directory now"
    [ "$s2" -eq 1 ]
    assert_contains "$e2" "which a glow-train (pid $pid) is training now"
    [ ! -e run.old-1 ]
    # once it has stopped, the run resumes
    step=$(ckpt_step run/checkpoint.safetensors)
    run glow-train -q --resume run --steps $((step + 1))
    [ "$status" -eq 0 ]
}

@test "data.json records the data: absolute paths, count, shape, labels and a CRC of the first images" {
    data
    mkdir sub
    cp "$D/s8.glow" sub/train.glow
    glow-train -q -c "$TINY" -o run --steps 2 --val "$D/v8.glow" sub/train.glow
    py - run/data.json "$PWD/sub/train.glow" "$D/v8.glow" <<'EOF'
import json, struct, sys, zlib
import shardgen
d = json.load(open(sys.argv[1]))
for key, path in (("train", sys.argv[2]), ("val", sys.argv[3])):
    r = d[key]
    assert r["inputs"] == [path], r
    assert r["images"] == 50 and r["shape"] == [1, 8, 8] and r["labels"] is True, r
    labels, images = next(iter(shardgen.records(path)))
    n = r["crc_images"]
    assert n == 50, r
    # the pixels of the first n images in stored order, then their labels (int32 LE)
    raw = images[:n].tobytes() + b"".join(struct.pack("<i", int(l)) for l in labels[:n])
    assert r["crc32"] == "%08x" % zlib.crc32(raw), (r["crc32"], "%08x" % zlib.crc32(raw))
EOF
}

@test "--resume RUN_DIR with no data trains on the recorded training and validation data, bit for bit" {
    data
    S=(--set train.ema_decay=0.9 --set train.optimizer=adamax --set train.sample_every=0)
    glow-train -q -c "$TINY" "${S[@]}" -o full --val "$D/v8.glow" "$D/d8.glow"
    glow-train -q -c "$TINY" "${S[@]}" -o half --steps 10 --val "$D/v8.glow" "$D/d8.glow"
    # from another folder, with standard input a terminal or empty: nothing else needed
    mkdir elsewhere
    (cd elsewhere && glow-train -q --resume ../half --steps 20 </dev/null)
    same_tensors full/checkpoint.safetensors half/checkpoint.safetensors
    grep -q '"step":20,"val_bpd"' half/log.jsonl
    [ "$(grep '"step":20,"val_bpd"' full/log.jsonl)" = "$(grep '"step":20,"val_bpd"' half/log.jsonl)" ]
    [ "$(grep '"start":"resume"' half/log.jsonl | json_get - 'd["val_images"]')" = 50 ]
}

@test "resume with data given: the same data moved is accepted, foreign data is refused, --new-data takes it" {
    data
    glow-train -q -c "$TINY" -o run --steps 4 --val "$D/v8.glow" "$D/s8.glow"
    cp "$D/s8.glow" moved.glow
    run glow-train -q --resume run --steps 5 moved.glow
    [ "$status" -eq 0 ]
    json_get run/data.json 'd["train"]["inputs"]' | grep -q "$PWD/moved.glow"
    # other training images: what differs, the record, and the way out
    run --separate-stderr glow-train -q --resume run --steps 6 "$D/d8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: training data: 200 images of 1x8x8 with labels where the run has 50 images of 1x8x8 with labels"
    assert_contains "$stderr" "run/data.json"
    assert_contains "$stderr" "--new-data"
    # the same count and shape, other images: the CRC tells
    run --separate-stderr glow-train -q --resume run --steps 6 "$D/v8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "the first 50 images differ"
    # other validation images likewise
    run --separate-stderr glow-train -q --resume run --steps 6 --val "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "validation data: the first 50 images differ"
    [ "$(ckpt_step run/checkpoint.safetensors)" = 5 ]
    # intended: --new-data, recorded for the next resume
    run glow-train -q --resume run --steps 6 --new-data "$D/d8.glow"
    [ "$status" -eq 0 ]
    grep -q '"new_data":true' run/log.jsonl
    [ "$(json_get run/data.json 'd["train"]["images"]')" = 200 ]
    run glow-train -q --resume run --steps 7
    [ "$status" -eq 0 ]
    [ "$(grep '"start":"resume"' run/log.jsonl | tail -n 1 | json_get - 'd["train_images"]')" = 200 ]
    # --new-data is for resuming
    run --separate-stderr glow-train -c "$TINY" -o other --new-data "$D/s8.glow"
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "--new-data goes with --resume"
}

@test "recorded data that changed on disk, or is gone, is an error naming the record" {
    data
    cp "$D/s8.glow" x.glow
    glow-train -q -c "$TINY" -o run --steps 2 x.glow
    cp "$D/v8.glow" x.glow
    run --separate-stderr glow-train -q --resume run --steps 3
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: run/data.json: the training data of the run has changed since it was recorded: the first 50 images differ"
    rm x.glow
    run --separate-stderr glow-train -q --resume run --steps 3
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "run/data.json: "
    assert_contains "$stderr" "x.glow"
    # a malformed record
    echo '{"train": 3}' >run/data.json
    run --separate-stderr glow-train -q --resume run --steps 3 "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "run/data.json: malformed"
}

@test "a run trained from standard input resumes from the same stream piped again, not another" {
    data
    glow-train -q -c "$TINY" -o run --steps 3 <"$D/s8.glow"
    [ "$(json_get run/data.json 'd["train"]["inputs"]')" = "['-']" ]
    run glow-train -q --resume run --steps 5 <"$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = 5 ]
    run --separate-stderr glow-train -q --resume run --steps 6 <"$D/v8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "the training data of the run has changed since it was recorded"
}

@test "--steps on a resume ends this session only; the run keeps its end; below the step is an error" {
    data
    glow-train -q -c "$TINY" -o run --steps 10 "$D/s8.glow"
    # the run's end changes only by --set train.steps
    run glow-train -q --resume run --set train.steps=20 --steps 12
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = 12 ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"steps":20'
    grep '"start":"resume"' run/log.jsonl | tail -n 1 | grep -q '"total_steps":12,"run_steps":20'
    run --separate-stderr glow-train --resume run
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "resuming from step 12 to 20 on cpu"
    [ "$(ckpt_step run/checkpoint.safetensors)" = 20 ]
    # past the end for one session: the run's end stays 20
    run --separate-stderr glow-train --resume run --steps 24
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "resuming from step 20 to 24 (this session; the run ends at step 20)"
    [ "$(ckpt_step run/checkpoint.safetensors)" = 24 ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"steps":20'
    run --separate-stderr glow-train --resume run
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "nothing to do: the run is at step 24, its end is step 20"
    # behind the step reached: an error, nothing written
    nlog=$(wc -l <run/log.jsonl)
    run --separate-stderr glow-train --resume run --steps 10
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: --steps 10: the run is at step 24 already"
    [ "$(wc -l <run/log.jsonl)" -eq "$nlog" ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = 24 ]
}

@test "numbered checkpoints every keep_every steps, keep_last pruned; best.safetensors by validation" {
    data
    run glow-train -q -c "$TINY" -o run --steps 30 --set train.keep_every=5 --set train.keep_last=3 \
        --set train.checkpoint_every=10 --set train.val_every=5 --val "$D/v8.glow" "$D/d8.glow"
    [ "$status" -eq 0 ]
    [ "$(ls run/checkpoints)" = "$(printf 'step-%07d.safetensors\n' 20 25 30)" ]
    [ "$(grep -c '"kept"' run/log.jsonl)" -eq 6 ]
    [ "$(grep '"kept":"checkpoints/step-0000030.safetensors"' run/log.jsonl | json_get - 'd["pruned"]')" = 1 ]
    for s in 20 25 30; do
        f=$(printf 'run/checkpoints/step-%07d.safetensors' $s)
        [ "$(ckpt_step "$f")" = $s ]
        glow-ckpt --verify "$f" >/dev/null
    done
    same_tensors run/checkpoints/step-0000030.safetensors run/checkpoint.safetensors
    # best: the step of the lowest validation bpd in the log
    want=$(py - run/log.jsonl <<'EOF'
import json, sys
v = [d for d in map(json.loads, open(sys.argv[1])) if "val_bpd" in d]
print(min(v, key=lambda d: d["val_bpd"])["step"])
EOF
)
    [ "$(ckpt_step run/best.safetensors)" = "$want" ]
    glow-ckpt --verify run/best.safetensors >/dev/null
    # its recorded bpd is what glow-bpd gives it (the validation noise: seed 0x56414c)
    bpd=$(glow-bpd --json --seed 5652812 run/best.safetensors "$D/v8.glow" | json_get - 'd["bpd"]')
    meta=$(st meta run/best.safetensors val_bpd)
    py -c "import sys; sys.exit(abs($bpd - $meta) > 1e-5)"
    # glow-ckpt RUN_DIR lists them with step and bpd
    run glow-ckpt run
    [ "$status" -eq 0 ]
    assert_contains "$output" "run: the run tiny at step 30 of 30; 5 checkpoints"
    [[ "$output" =~ checkpoints/step-0000025.safetensors\ +25\ +[0-9]+\.[0-9]{4}\ +-\  ]]
    run glow-ckpt --json run
    [ "$status" -eq 0 ]
    py - "$want" <<EOF
import json
d = json.loads('''$output''')
files = [c["file"] for c in d["checkpoints"]]
assert files == ["checkpoint.safetensors", "best.safetensors"] + \
    ["checkpoints/step-%07d.safetensors" % s for s in (20, 25, 30)], files
best = [c for c in d["checkpoints"] if c["file"] == "best.safetensors"][0]
assert best["step"] == $want and best["best"] and best["val_bpd"] > 0 and best["val_bpd_ema"] is None
assert all(c["val_bpd"] for c in d["checkpoints"])
EOF
    # not a run directory
    mkdir empty
    run --separate-stderr glow-ckpt empty
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: empty: no checkpoints"
    run --separate-stderr glow-ckpt --verify run
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "a run directory"
}

@test "validation with EMA: the bpd of the weights and of their average, in the log, progress lines, checkpoint; best by the EMA" {
    data
    run --separate-stderr glow-train -c "$TINY" -o run --set train.ema_decay=0.9 --val "$D/v8.glow" "$D/d8.glow"
    [ "$status" -eq 0 ]
    py - run/log.jsonl <<'EOF'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
v = [d for d in L if "val_bpd" in d]
assert [d["step"] for d in v] == [10, 20], v
assert all(4 < d["val_bpd"] < 10 and 4 < d["val_bpd_ema"] < 10 for d in v)
assert all(d["val_bpd"] != d["val_bpd_ema"] for d in v)
b = [d for d in L if "best" in d]
assert b and all(d["by"] == "val_bpd_ema" for d in b)
best = min(v, key=lambda d: d["val_bpd_ema"])
assert b[-1]["step"] == best["step"] and b[-1]["bpd"] == best["val_bpd_ema"]
EOF
    assert_contains "$stderr" "step 10: validation bpd "
    assert_contains "$stderr" ", EMA weights "
    # the interval lines after a validation carry it
    [[ "$stderr" =~ step\ 15/20:\ loss\ .*,\ val\ [0-9.]+\ \(EMA\ [0-9.]+\) ]]
    ema=$(st meta run/checkpoint.safetensors val_bpd_ema)
    [ "$(st meta run/checkpoint.safetensors val_step)" = 20 ]
    bpd=$(glow-bpd --json --ema --seed 5652812 run/checkpoint.safetensors "$D/v8.glow" | json_get - 'd["bpd"]')
    py -c "import sys; sys.exit(abs($bpd - $ema) > 1e-5)"
    # on a terminal the progress line shows both
    command -v script >/dev/null || skip "script(1) is not installed"
    script -qec "glow-train -c '$TINY' -o run2 --set train.ema_decay=0.9 --val '$D/v8.glow' '$D/d8.glow'" /dev/null >tty.txt
    grep -q 'step 20/20  bpd [0-9.]*  val [0-9.]* ema [0-9.]*' tty.txt
}

@test "sample grids and reconstructions: where, how large, the same bytes on a rerun, glow-sample's draws" {
    data
    S=(--set train.sample_every=10 --set train.keep_every=10 --set "train.sample_temperatures=[0.7, 1.0]")
    glow-train -q -c "$TINY" "${S[@]}" -o a --val "$D/v8.glow" "$D/d8.glow"
    glow-train -q -c "$TINY" "${S[@]}" -o b --val "$D/v8.glow" "$D/d8.glow"
    [ "$(ls a/samples)" = "$(printf '%s\n' recon-0000010.png recon-0000020.png step-0000010.png step-0000020.png)" ]
    grep -q '"step":10,"samples":"samples/step-0000010.png","reconstructions":"samples/recon-0000010.png"' a/log.jsonl
    # 8 images of 8x8 a row, 2 px apart and around; a block per temperature, 8 px apart
    [ "$(png_info a/samples/step-0000010.png | cut -d' ' -f1-3)" = "82 28 1" ]
    [ "$(png_info a/samples/recon-0000010.png | cut -d' ' -f1-3)" = "82 22 1" ]
    # the same step and seed: the same bytes
    for f in step-0000010 step-0000020 recon-0000010 recon-0000020; do cmp "a/samples/$f.png" "b/samples/$f.png"; done
    # the steps draw the same noise: each grid is glow-sample --seed 1 of that step's checkpoint
    for s in 10 20; do
        c=$(printf 'a/checkpoints/step-%07d.safetensors' $s)
        glow-sample "$c" -n 8 -t 0.7 --seed 1 >t07.glow
        glow-sample "$c" -n 8 -t 1.0 --seed 1 >t10.glow
        py - "$(printf 'a/samples/step-%07d.png' $s)" "$(printf 'a/samples/recon-%07d.png' $s)" "$D/v8.glow" <<'EOF'
import sys
import numpy as np
import pngdecode, shardgen
def grid(p):
    w, h, c, px = pngdecode.decode(p)
    return np.frombuffer(bytes(px), np.uint8).reshape(h, w)
g = grid(sys.argv[1])
for t, f in enumerate(("t07.glow", "t10.glow")):
    _, imgs = next(iter(shardgen.records(f)))
    for i in range(8):
        y, x = 2 + 16 * t, 2 + 10 * i
        assert (g[y:y + 8, x:x + 8] == imgs[i, 0]).all(), (t, i)
# reconstructions: the first 8 validation images above, their encode-decode below (exact)
r = grid(sys.argv[2])
_, val = next(iter(shardgen.records(sys.argv[3])))
for i in range(8):
    x = 2 + 10 * i
    assert (r[2:10, x:x + 8] == val[i, 0]).all(), i
    assert (r[12:20, x:x + 8] == val[i, 0]).all(), i
EOF
    done
    # the grids of successive steps differ (the model learned), their shapes do not
    ! cmp -s a/samples/step-0000010.png a/samples/step-0000020.png
    # without a validation set: samples, no reconstructions; sample_every 0: none
    glow-train -q -c "$TINY" --set train.sample_every=5 -o c --steps 5 "$D/d8.glow"
    [ "$(ls c/samples)" = step-0000005.png ]
    glow-train -q -c "$TINY" --set train.sample_every=0 -o d --steps 5 "$D/d8.glow"
    [ ! -e d/samples ]
    # three temperatures: three blocks
    glow-train -q -c "$TINY" --set "train.sample_temperatures=[0, 0.5, 1]" -o e --steps 2 "$D/d8.glow"
    [ "$(png_info e/samples/step-0000002.png | cut -d' ' -f1-3)" = "82 44 1" ]
    run --separate-stderr glow-train -q -c "$TINY" --set "train.sample_temperatures=[0.7, 11]" -o f "$D/d8.glow"
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "train.sample_temperatures: each number must be in [0, 10], got 11"
}

@test "glow-plot draws the curves of one or several runs as a PNG (and SVG), with labels and a legend" {
    data
    gnuplot_needed
    glow-train -q -c "$TINY" -o a --steps 40 --set train.log_every=2 --set train.ema_decay=0.9 \
        --set train.val_every=10 --set train.warmup=120 --val "$D/v8.glow" "$D/d8.glow"
    glow-train -q -c "$TINY" -o b --steps 30 --set train.log_every=2 --set train.lr=3e-3 --val "$D/v8.glow" "$D/d8.glow"
    run --separate-stderr bash -c 'glow-plot a >one.png'
    [ "$status" -eq 0 ]
    [ -z "$stderr" ]
    read -r w h c nonwhite colours < <(png_info one.png)
    [ "$w" -eq 1280 ] && [ "$h" -eq 800 ]
    # axes, text and curves: far from blank, far from filled
    [ "$nonwhite" -gt 20000 ] && [ "$nonwhite" -lt 600000 ]
    [ "$colours" -gt 20 ]
    run glow-plot -o two.png --size 900x700 a b
    [ "$status" -eq 0 ]
    read -r w h c nonwhite2 colours2 < <(png_info two.png)
    [ "$w" -eq 900 ] && [ "$h" -eq 700 ]
    [ "$nonwhite2" -gt 20000 ]
    # the script: both runs, every panel, axis labels
    glow-plot --gnuplot a b >curves.gp
    for want in '$bpd0 << EOD' '$bpd1 << EOD' '$vema0 << EOD' 'bits per dimension' 'learning rate' \
        'gradient norm' 'images per second' 'set xlabel "step"' 'set ylabel "bpd"' 'a: validation, EMA' 'b: train'; do
        grep -qF "$want" curves.gp
    done
    glow-plot --svg a >c.svg
    head -c 300 c.svg | grep -q '<svg'
    grep -q 'bits per dimension' c.svg
    # a PNG is not written to a terminal
    if command -v script >/dev/null; then
        run script -qec "glow-plot a" /dev/null
        [ "$status" -eq 2 ]
        assert_contains "$output" "refusing to write a PNG image to a terminal"
    fi
}

@test "glow-plot fails clearly on a missing or malformed log, and without gnuplot" {
    data
    glow-train -q -c "$TINY" -o a --steps 10 --set train.log_every=2 "$D/s8.glow"
    mkdir bad
    { head -n 3 a/log.jsonl; echo 'garbage'; tail -n 2 a/log.jsonl; } >bad/log.jsonl
    run --separate-stderr glow-plot bad
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-plot: bad/log.jsonl: line 4: not a JSON object"
    echo '{"step": "x"}' >bad/log.jsonl
    run --separate-stderr glow-plot bad
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "bad/log.jsonl: line 1: no integer \"step\""
    grep '"start"' a/log.jsonl >bad/log.jsonl
    run --separate-stderr glow-plot bad
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "bad/log.jsonl: no training or validation lines"
    run --separate-stderr glow-plot nothere
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-plot: nothere: No such file or directory"
    run --separate-stderr glow-plot
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "missing RUN_DIR"
    run --separate-stderr bash -c 'GLOW_GNUPLOT=/nonexistent/gnuplot glow-plot a >x.png'
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "/nonexistent/gnuplot: not found"
    assert_contains "$stderr" "gnuplot-nox"
    gnuplot_needed
    # a last line cut short (a kill mid-write) is left out with a warning
    { cat a/log.jsonl; printf '{"step":12,"ima'; } >bad/log.jsonl
    run --separate-stderr bash -c 'glow-plot bad >x.png'
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "the last line is cut short"
    # a resume from an older checkpoint: the points trained again replace the old ones
    glow-plot --gnuplot a >one.gp
    { cat a/log.jsonl; echo '{"step":4,"start":"resume"}'; echo '{"step":6,"images":48,"loss":9,"bpd":9,"lr":0.001,"grad_norm":1,"images_per_s":1,"seconds":1}'; } >bad/log.jsonl
    glow-plot --gnuplot bad >two.gp
    [ "$(sed -n '/^\$bpd0 << EOD/,/^EOD/p' two.gp | sed '1d;$d' | cut -d' ' -f1 | tr '\n' ' ')" = "2 4 6 " ]
}

@test "no tool writes over its own input" {
    data
    glow-train -q -c "$TINY" -o run --steps 2 --set train.log_every=1 "$D/s8.glow"
    C=run/checkpoint.safetensors
    cp $C keep.safetensors
    run --separate-stderr glow-ckpt --export-weights $C $C
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: $C: is also the input $C"
    cmp $C keep.safetensors
    # the same file under another name (a hard link) too
    ln $C alias.safetensors
    run --separate-stderr glow-ckpt --export-weights alias.safetensors --ema $C
    [ "$status" -eq 1 ]
    cmp $C keep.safetensors
    cp "$D/s8.glow" s.glow
    cp s.glow s.orig
    while IFS='|' read -r cmd; do
        run --separate-stderr bash -c "$cmd"
        echo "$cmd -> $status: $stderr"
        [ "$status" -eq 1 ]
        assert_contains "$stderr" "is also the input"
        cmp s.glow s.orig
        cmp $C keep.safetensors
    done <<EOF
pngcat -o s.glow s.glow
glow-encode -o s.glow $C s.glow
glow-encode -o lat.glow --bpd s.glow $C s.glow
glow-sample -o $C $C
glow-plot -o run/log.jsonl run
glow-prep --split 0.5 --val-out s.glow s.glow >/dev/null
EOF
    glow-encode $C s.glow >lat.glow
    cp lat.glow lat.orig
    run --separate-stderr glow-decode -o lat.glow $C lat.glow
    [ "$status" -eq 1 ]
    cmp lat.glow lat.orig
    run --separate-stderr glow-latent scale 0.5 lat.glow -o lat.glow
    [ "$status" -eq 1 ]
    cmp lat.glow lat.orig
    # standard output appended to an input
    run --separate-stderr bash -c 'pngcat s.glow >>s.glow'
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "pngcat: standard output is the input s.glow"
    cmp s.glow s.orig
    run --separate-stderr bash -c "glow-bpd --per-image $C s.glow >>s.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-bpd: standard output is the input s.glow"
    cmp s.glow s.orig
    # glow-prep -o onto the folder it reads
    mkdir imgs
    pngcat --split imgs --limit 3 s.glow
    run --separate-stderr glow-prep -o imgs imgs
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-prep: imgs: is also the input imgs"
    [ "$(ls imgs | wc -l)" -eq 3 ]
}
