#!/usr/bin/env bats
# glow-train: flags and error paths, stream and file inputs, the JSON-lines log,
# bit-identical resume, SIGTERM and kill -9 during training, non-finite steps,
# and a short real training run on a Fashion-MNIST subset.

bats_require_minimum_version 1.5.0
load helpers

# configs/tiny.yml on the CPU: its device is auto, which a machine with a GPU
# would resolve to the GPU, and bit-identical resumption is a CPU promise.
TINY="$BATS_FILE_TMPDIR/tiny.yml"
FM="${FMNIST:-/usr/share/datasets/fashion-mnist}"
# One thread: the tiny model gains nothing from two, and results are the same
# bits for any thread count (backend.h), so the tests need not depend on it.
export OMP_NUM_THREADS=1

setup_file() {
    D="$BATS_FILE_TMPDIR"
    tiny_config "$D/tiny.yml" train.device=cpu
    grep -q '^  device: cpu$' "$D/tiny.yml"
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || return 0
    glow-prep -q --limit 200 --size 8 "$FM/t10k-images-idx3-ubyte.gz" >"$D/d8.glow"
    glow-prep -q --limit 50 --size 8 "$FM/t10k-images-idx3-ubyte.gz" >"$D/s8.glow"
    glow-prep -q --limit 100 --size 8 --shard-size 30 -o "$D/dir8" "$FM/t10k-images-idx3-ubyte.gz"
    glow-prep -q --limit 2000 --size 8 "$FM/train-images-idx3-ubyte.gz" >"$D/f8.glow"
    glow-prep -q --limit 20 "$FM/t10k-images-idx3-ubyte.gz" >"$D/d28.glow"
}

data() {
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
    D="$BATS_FILE_TMPDIR"
}

# check_log FILE: every line a JSON object; training lines carry every field.
check_log() {
    py - "$1" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "empty log"
need = {"step", "images", "loss", "bpd", "lr", "grad_norm", "images_per_s", "seconds"}
train = 0
for i, l in enumerate(lines):
    d = json.loads(l)
    assert isinstance(d, dict) and isinstance(d["step"], int), (i, l)
    if "loss" in d and "skipped" not in d:
        assert need <= set(d), (i, l)
        train += 1
assert train > 0, "no training lines"
EOF
}

# same_tensors A B: the two safetensors files hold the same tensors, byte for
# byte and at the same places (metadata such as the training time may differ).
same_tensors() { st same --layout "$1" "$2"; }

# log_lrs LOG: the learning rates of the training lines, space-separated.
log_lrs() {
    py -c 'import json, sys
print(" ".join(str(d["lr"]) for d in map(json.loads, open(sys.argv[1])) if "loss" in d))' "$1"
}

# ckpt_step CKPT: the step the checkpoint was saved at.
ckpt_step() { glow-ckpt --json "$1" | json_get - 'd["step"]'; }

@test "--help prints the usage and exits 0" {
    run glow-train --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-prep ... | glow-train -c CONFIG -o RUN_DIR"
    assert_contains "$output" "--resume RUN|CKPT"
}

@test "usage errors exit 2" {
    # the arguments | a part of the message
    while IFS='|' read -r args want; do
        run --separate-stderr glow-train $args </dev/null
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "$want"
        assert_contains "$stderr" "Try 'glow-train --help'"
    done <<EOF
-c $TINY -o run --bogus x.glow|glow-train: --bogus: unknown option
-o run x.glow|glow-train: -c CONFIG is required
-c $TINY x.glow|glow-train: -o RUN_DIR is required
-c $TINY -o run --steps 0 x.glow|glow-train: --steps 0: expected a positive integer
-c $TINY -o run --steps|glow-train: --steps: missing value
-c $TINY -o run --seed -3 x.glow|glow-train: --seed -3: expected an integer 0..2^64-1
-c $TINY -o run --mem-limit 0 x.glow|glow-train: --mem-limit 0: expected a positive number
-c $TINY -o run --max-bad-steps x x.glow|glow-train: --max-bad-steps x: expected a positive integer
-c $TINY -o run --set train.bogus=1 x.glow|glow-train: --set train.bogus=1: unknown key
-c $TINY -o run --set train.lr=abc x.glow|train.lr: expected a number
-c $TINY -o run --device tpu x.glow|expected cpu, cuda, cuda:N or auto
--resume run --init c.safetensors x.glow|glow-train: --resume and --init exclude each other
-c $TINY -o run --init-ema x.glow|glow-train: --init-ema needs --init CKPT
EOF
    [ ! -e run ]
}

@test "a bad or missing config is an error naming the file and line" {
    cat >bad.yml <<'EOF'
model:
  image_size: 8
  widht: 3
train:
  steps: 2
EOF
    run --separate-stderr glow-train -c bad.yml -o run x.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: bad.yml: line 3: unknown key 'widht' in model (did you mean 'width'?)"
    run --separate-stderr glow-train -c missing.yml -o run x.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: missing.yml: No such file or directory"
    cat >both.yml <<'EOF'
model:
  image_size: 8
train:
  steps: 2
  epochs: 1
EOF
    run --separate-stderr glow-train -c both.yml -o run x.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: both.yml: line 5: train.epochs"
    [ ! -e run ]
}

@test "training from standard input: log, config, checkpoint" {
    data
    run glow-train -c "$TINY" -o run --val "$D/s8.glow" <"$D/d8.glow"
    [ "$status" -eq 0 ]
    assert_contains "$output" "from standard input into memory"
    assert_contains "$output" "200 training images (0.0 MiB) held in memory"
    assert_contains "$output" "validation bpd"
    check_log run/log.jsonl
    py - run/log.jsonl <<'EOF'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
assert L[0]["start"] == "scratch" and L[0]["total_steps"] == 20 and L[0]["train_images"] == 200
# how the CPU backend's threads waited: the policy it ran with (set by test/run.sh or the tool)
import os
w = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ)
if L[0]["device"] == "cpu":
    assert L[0]["omp_wait"] == w or (not w and L[0]["omp_wait"] in ("OMP_WAIT_POLICY=passive", "GOMP_SPINCOUNT=20000")), L[0]
else:
    assert "omp_wait" not in L[0], L[0]
steps = [d["step"] for d in L if "loss" in d]
assert steps == [5, 10, 15, 20], steps
assert [d["images"] for d in L if "loss" in d] == [40, 80, 120, 160]
val = [d for d in L if "val_bpd" in d]
assert [d["step"] for d in val] == [10, 20] and all(4 < d["val_bpd"] < 10 for d in val)
assert [d["step"] for d in L if "checkpoint" in d] == [10, 20]
assert L[-1]["done"] is True and L[-1]["step"] == 20
lr = [d["lr"] for d in L if "loss" in d]
assert lr[0] == 0.001
EOF
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = 20 ]
    # config.yml is the effective config, usable as a config again
    grep -q 'image_size: \[8, 8\]' run/config.yml
    run glow-train -q -c run/config.yml -o run2 --steps 2 <"$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$output" = "" ]
}

@test "training from shard files and directories; --quiet; overrides reach the checkpoint" {
    data
    run glow-train -q -c "$TINY" -o run --steps 6 --seed 7 --set train.lr=2e-3 \
        --set train.log_every=3 "$D/dir8" "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$output" = "" ]
    [ "$(ls "$D/dir8" | wc -l)" -ge 3 ]
    head -n 1 run/log.jsonl | grep -q '"train_images":150'
    glow-ckpt run/checkpoint.safetensors >sum.txt
    grep -q '"lr":0.002' sum.txt
    grep -q '"seed":"7"' sum.txt
    grep -q '"steps":6' sum.txt
    grep -q 'lr: 0.002' run/config.yml
    check_log run/log.jsonl
}

@test "a plain progress line per log interval when stderr is not a terminal" {
    data
    run glow-train -c "$TINY" -o run --steps 10 "$D/s8.glow"
    [ "$status" -eq 0 ]
    assert_contains "$output" "step 5/10: loss"
    assert_contains "$output" "step 10/10: loss"
    [[ "$output" != *$'\r'* ]]
}

@test "on a terminal: a progress line rewritten in place" {
    data
    command -v script >/dev/null || skip "script(1) is not installed"
    script -qec "glow-train -c '$TINY' -o run --steps 10 '$D/s8.glow'" /dev/null >tty.txt
    grep -q $'\r''glow-train: step 10/10  bpd' tty.txt
    grep -q 'ETA' tty.txt
    [ "$(grep -c 'step 5/10: loss' tty.txt)" -eq 0 ]
    script -qec "glow-train -q -c '$TINY' -o run2 --steps 3 '$D/s8.glow'" /dev/null >quiet.txt
    [ ! -s quiet.txt ]
}

@test "a run length in epochs" {
    data
    run glow-train -q -c "$TINY" -o run --set train.epochs=1.5 --set train.batch_size=8 "$D/s8.glow"
    [ "$status" -eq 0 ]
    # 75 images of a 50-image set, 8 at a time: 10 steps
    head -n 1 run/log.jsonl | grep -q '"total_steps":10'
    [ "$(ckpt_step run/checkpoint.safetensors)" = 10 ]
}

@test "input errors: empty stream, missing file, wrong shape, labels" {
    data
    run --separate-stderr glow-train -c "$TINY" -o run </dev/null
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "standard input: no images"
    run --separate-stderr glow-train -c "$TINY" -o run nothere.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "nothere.glow: no such file"
    run --separate-stderr glow-train -c "$TINY" -o run "$D/d28.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "training images are 1x28x28 but the model expects 1x8x8; glow-prep --size 8x8"
    run --separate-stderr glow-train -c "$ROOT/configs/fashion-mnist.yml" -o run "$D/d28.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "images are 1x28x28 but the model expects 1x32x32; glow-prep --pad 2"
    run --separate-stderr glow-train -c "$TINY" -o run --val "$D/d28.glow" "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "validation images are 1x28x28"
    run --separate-stderr glow-train -c "$TINY" -o run --set model.channels=3 "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-prep --channels 3"
    shardgen nolab.glow --n 16 --c 1 --h 8 --w 8
    run --separate-stderr glow-train -c "$TINY" -o run --set model.y_condition=true --set model.n_classes=10 nolab.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "have no labels"
    # Fashion-MNIST labels go up to 9
    run --separate-stderr glow-train -c "$TINY" -o run --set model.y_condition=true --set model.n_classes=5 "$D/d8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "training image 0 (in stored order): label 9 outside 0..4"
    run glow-train -c "$TINY" -o run --val - "$D/s8.glow" <"$D/s8.glow"
    [ "$status" -eq 0 ]
    run --separate-stderr glow-train -c "$TINY" -o run --val - <"$D/s8.glow"
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "standard input already holds the training images"
}

@test "a stream larger than --mem-limit points to shard files" {
    data
    # 2000 images of 64 bytes ten times over: 1.2 MiB
    for _ in $(seq 10); do cat "$D/f8.glow"; done >big.glow
    run --separate-stderr glow-train -c "$TINY" -o run --mem-limit 1 <big.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-prep -o DIR"
}

@test "class-conditional training with labels" {
    data
    run glow-train -q -c "$TINY" -o run --steps 4 --set model.y_condition=true \
        --set model.n_classes=10 --val "$D/s8.glow" "$D/d8.glow"
    [ "$status" -eq 0 ]
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
}

@test "an output directory that cannot be made is an error" {
    data
    touch afile
    run --separate-stderr glow-train -c "$TINY" -o afile/run "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "afile"
    run --separate-stderr glow-train -c "$TINY" -o /proc/glow-run "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "/proc/glow-run"
}

@test "--device cuda without a GPU is a clear error" {
    data
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        skip "a GPU is present"
    fi
    run --separate-stderr glow-train -c "$TINY" -o run --device cuda "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "--device cuda"
    [ ! -e run/checkpoint.safetensors ]
    run glow-train -c "$TINY" -o run --device cpu --steps 1 "$D/s8.glow"
    [ "$status" -eq 0 ]
}

@test "resuming gives the same bits as one run straight through" {
    data
    # EMA, clipping and Adamax on, 50 images so the run crosses epochs, and
    # validation in between: all of it must resume exactly.
    S=(--set train.ema_decay=0.9 --set train.grad_clip=1 --set train.optimizer=adamax)
    run glow-train -q -c "$TINY" "${S[@]}" -o full --val "$D/s8.glow" "$D/s8.glow"
    [ "$status" -eq 0 ]
    run glow-train -q -c "$TINY" "${S[@]}" -o half --steps 10 --val "$D/s8.glow" "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step half/checkpoint.safetensors)" = 10 ]
    run glow-train -q --resume half --steps 20 --val "$D/s8.glow" "$D/s8.glow"
    [ "$status" -eq 0 ]
    glow-ckpt --export-weights a.safetensors full/checkpoint.safetensors
    glow-ckpt --export-weights b.safetensors half/checkpoint.safetensors
    same_tensors a.safetensors b.safetensors
    glow-ckpt --export-weights a.safetensors --ema full/checkpoint.safetensors
    glow-ckpt --export-weights b.safetensors --ema half/checkpoint.safetensors
    same_tensors a.safetensors b.safetensors
    same_tensors full/checkpoint.safetensors half/checkpoint.safetensors
    # the log is appended and the numbers after the resume are the same
    grep -q '"start":"resume"' half/log.jsonl
    [ "$(grep '"step":20,"images"' full/log.jsonl | cut -d, -f3-5)" = \
      "$(grep '"step":20,"images"' half/log.jsonl | cut -d, -f3-5)" ]
    [ "$(grep '"step":20,"val_bpd"' full/log.jsonl)" = "$(grep '"step":20,"val_bpd"' half/log.jsonl)" ]
    grep -q 'metadata data_epoch: 3' <(glow-ckpt half/checkpoint.safetensors)
    # a resume past the end has nothing to do
    run glow-train -q --resume half "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step half/checkpoint.safetensors)" = 20 ]
}

@test "train.memory: recompute is store's bits; invert logs its drift per level, stops over train.memory_max_error; runs resume in another mode" {
    data
    run glow-train -q -c "$TINY" -o store "$D/s8.glow"
    [ "$status" -eq 0 ]
    run glow-train -q -c "$TINY" --set train.memory=recompute -o recompute "$D/s8.glow"
    [ "$status" -eq 0 ]
    same_tensors store/checkpoint.safetensors recompute/checkpoint.safetensors
    # invert: every log line has the worst rebuilt-input error, and each level's
    run glow-train -q -c "$TINY" --set train.memory=invert --steps 10 -o inv "$D/s8.glow"
    [ "$status" -eq 0 ]
    check_log inv/log.jsonl
    py - inv/log.jsonl <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
assert len(lines) == 2, lines
for d in lines:
    lev = d["inv_error_levels"]
    assert len(lev) == 2 and max(lev) == d["inv_error"], d
    assert all(0 < e < 1e-5 for e in lev), d
EOF
    ! grep '"loss"' store/log.jsonl | grep -q inv_error
    # resumed under recompute, then store; a store run resumed under invert
    run glow-train -q --resume inv --set train.memory=recompute --set train.steps=15 "$D/s8.glow"
    [ "$status" -eq 0 ]
    run glow-train -q --resume inv --set train.memory=store --set train.steps=20 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step inv/checkpoint.safetensors)" = 20 ]
    ! grep '"step":20,"images"' inv/log.jsonl | grep -q inv_error
    glow-train -q -c "$TINY" --steps 10 -o half "$D/s8.glow"
    run glow-train -q --resume half --set train.memory=invert --set train.memory_every=1 --set train.steps=20 "$D/s8.glow"
    [ "$status" -eq 0 ]
    grep '"step":20,"images"' half/log.jsonl | grep -q '"inv_error_levels":\['
    # the modes' losses agree (to the drift of fp32 inverses through Adam)
    py - store/log.jsonl half/log.jsonl inv/log.jsonl <<'EOF'
import json, sys
loss = [{d["step"]: d["loss"] for d in map(json.loads, open(f)) if "loss" in d} for f in sys.argv[1:]]
for other in loss[1:]:
    for s in (5, 10, 15, 20):
        assert abs(other[s] - loss[0][s]) <= 1e-4 * abs(loss[0][s]), (s, other[s], loss[0][s])
EOF
    # a threshold below fp32's rounding stops the run at its first step, naming the level
    run --separate-stderr glow-train -c "$TINY" --set train.memory=invert \
        --set train.memory_max_error=1e-12 -o bad "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "step 1: train.memory invert: a flow step's input rebuilt by the inverse of level"
    assert_contains "$stderr" "more than train.memory_max_error 1e-12 allows"
    assert_contains "$stderr" "training stopped"
}

@test "--resume from a checkpoint file into another directory, with -c and flags" {
    data
    glow-train -q -c "$TINY" -o a --steps 4 "$D/s8.glow"
    run glow-train -q -c "$TINY" --resume a/checkpoint.safetensors -o b --steps 6 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step b/checkpoint.safetensors)" = 6 ]
    [ "$(ckpt_step a/checkpoint.safetensors)" = 4 ]
    # the model in -c must be the checkpoint's
    run --separate-stderr glow-train -c "$TINY" --resume a --set model.width=16 "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "model.width: 16 in"
    # the optimizer state must fit the optimizer
    run --separate-stderr glow-train --resume a --set train.optimizer=adamax "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "holds adam state"
}

@test "--resume refuses corrupt and weights-only checkpoints" {
    data
    glow-train -q -c "$TINY" -o a --steps 2 "$D/s8.glow"
    st truncate a/checkpoint.safetensors cut.safetensors 3000
    run --separate-stderr glow-train --resume cut.safetensors -o b "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "cut.safetensors"
    glow-ckpt --export-weights w.safetensors a/checkpoint.safetensors
    run --separate-stderr glow-train --resume w.safetensors -o b "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "weights-only"
    run --separate-stderr glow-train --resume nothere -o b "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: nothere: cannot open"
}

@test "--init fine-tunes from weights; a different model is an error naming the key" {
    data
    glow-train -q -c "$TINY" -o a --steps 6 --set train.ema_decay=0.5 "$D/s8.glow"
    run glow-train -c "$TINY" -o b --init a/checkpoint.safetensors --steps 3 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [[ "$output" != *"data-dependent init"* ]]
    [ "$(ckpt_step b/checkpoint.safetensors)" = 3 ]
    grep -q '"start":"init"' b/log.jsonl
    run glow-train -q -c "$TINY" -o c --init a/checkpoint.safetensors --init-ema --steps 1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    run --separate-stderr glow-train -c "$TINY" -o d --init a/checkpoint.safetensors --set model.width=16 "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    # the error names the override, not the config or the checkpoint
    assert_contains "$stderr" "glow-train: --set model.width=16: --init takes the model from the checkpoint"
    assert_contains "$stderr" "model.width: 16 in the override, 8 in a/checkpoint.safetensors"
    run --separate-stderr glow-train -c "$TINY" -o d --init a/checkpoint.safetensors --set model.coupling=additive "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "model.coupling"
    run --separate-stderr glow-train -c "$TINY" -o d --init b/checkpoint.safetensors --init-ema "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "no EMA weights"
}

@test "SIGTERM saves a checkpoint, exits 143, and the run resumes to its end" {
    data
    glow-train -c "$TINY" -o run --steps 100000 --set train.checkpoint_every=25 \
        "$D/d8.glow" 2>err.txt &
    pid=$!
    for _ in $(seq 600); do [ -f run/checkpoint.safetensors ] && break; sleep 0.05; done
    [ -f run/checkpoint.safetensors ]
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 143 ]
    step=$(ckpt_step run/checkpoint.safetensors)
    grep -q "interrupted at step $step, checkpoint saved" err.txt
    grep -q "\"step\":$step,\"interrupted\":15" run/log.jsonl
    run glow-train -q --resume run --steps $((step + 7)) "$D/d8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = $((step + 7)) ]
    grep -q "\"step\":$((step + 7)),\"done\":true" run/log.jsonl
}

@test "SIGINT exits 130 with a checkpoint" {
    data
    glow-train -q -c "$TINY" -o run --steps 100000 --set train.checkpoint_every=25 "$D/d8.glow" &
    pid=$!
    for _ in $(seq 600); do [ -f run/checkpoint.safetensors ] && break; sleep 0.05; done
    kill -INT "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 130 ]
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
}

@test "--time-limit ends the run early, validated and saved as when done" {
    data
    run glow-train -q -c "$TINY" -o run --steps 100000000 --time-limit 1.5 --val "$D/s8.glow" "$D/d8.glow"
    [ "$status" -eq 0 ]
    step=$(ckpt_step run/checkpoint.safetensors)
    [ "$step" -gt 0 ]
    [ "$step" -lt 100000000 ]
    grep -q "\"step\":$step,\"val_bpd\":" run/log.jsonl
    grep -q "\"step\":$step,\"done\":true,\"seconds\":[0-9.]*,\"time_limit\":true}" run/log.jsonl
    secs=$(grep '"done":true' run/log.jsonl | json_get - 'd["seconds"]')
    py -c "import sys; sys.exit(not 1.5 <= $secs < 30)"
    # a run that reaches its steps first is not marked
    run glow-train -q -c "$TINY" -o run2 --steps 3 --time-limit 1000 "$D/d8.glow"
    [ "$status" -eq 0 ]
    grep -q '"done":true' run2/log.jsonl
    run ! grep -q time_limit run2/log.jsonl
    for bad in 0 -1 abc 1e99 ''; do
        run --separate-stderr glow-train -c "$TINY" -o run3 --time-limit "$bad" "$D/d8.glow"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "glow-train: --time-limit $bad: expected a positive number of seconds"
    done
}

@test "kill -9 leaves a loadable checkpoint that resumes" {
    data
    glow-train -q -c "$TINY" -o run --steps 100000 --set train.checkpoint_every=3 "$D/d8.glow" &
    pid=$!
    for _ in $(seq 600); do [ -f run/checkpoint.safetensors ] && break; sleep 0.05; done
    sleep 0.3
    kill -9 "$pid"
    wait "$pid" || true
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
    step=$(ckpt_step run/checkpoint.safetensors)
    [ "$step" -ge 3 ]
    run glow-train -q --resume run --steps $((step + 2)) "$D/d8.glow"
    [ "$status" -eq 0 ]
    # temporary files of the killed writer are gone
    [ -z "$(ls -A run | grep '\.tmp\.')" ]
}

@test "non-finite steps are skipped and logged; too many in a row stop with exit 1" {
    data
    glow-train -q -c "$TINY" -o run --steps 10 "$D/s8.glow"
    run --separate-stderr glow-train --resume run --steps 40 --set train.lr=1e30 --max-bad-steps 3 "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "step skipped"
    assert_contains "$stderr" "3 bad steps in a row"
    assert_contains "$stderr" "the last checkpoint (step 10) is kept"
    [ "$(grep -c '"skipped":"non-finite' run/log.jsonl)" -eq 3 ]
    check_log run/log.jsonl
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = 10 ]
}

@test "a short real training run on Fashion-MNIST lowers the bpd" {
    data
    run glow-train -q -c "$TINY" -o run --steps 200 --set train.batch_size=32 \
        --set train.lr=3e-3 --set model.width=16 --set train.log_every=20 \
        --set train.checkpoint_every=0 --set train.val_every=0 "$D/f8.glow"
    [ "$status" -eq 0 ]
    py - run/log.jsonl <<'EOF'
import json, sys
bpd = [d["bpd"] for d in map(json.loads, open(sys.argv[1])) if "bpd" in d]
print(bpd)
assert len(bpd) == 10
assert bpd[-1] < bpd[0] - 1.0, bpd
EOF
}

@test "warm-up in steps: train.warmup_steps ramps the rate over optimizer steps; one of warmup and warmup_steps" {
    data
    run glow-train -q -c "$TINY" -o run --steps 6 --set train.warmup_steps=4 --set train.log_every=1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(log_lrs run/log.jsonl)" = "0.00025 0.0005 0.00075 0.001 0.001 0.001" ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"warmup":0,.*"warmup_steps":4'
    grep -q '^  warmup_steps: 4$' run/config.yml
    # both in a file: an error naming both; an override of one clears the other
    printf 'model:\n  image_size: 8\n  channels: 1\n  levels: 2\n  steps: 2\n  width: 8\ntrain:\n  steps: 2\n  warmup: 16\n  warmup_steps: 4\n  device: cpu\n' >both.yml
    run --separate-stderr glow-train -c both.yml -o run2 "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: both.yml: train.warmup, train.warmup_steps: both are set"
    run glow-train -q -c both.yml -o run2 --set train.warmup_steps=2 --set train.log_every=1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(log_lrs run2/log.jsonl)" = "0.0005 0.001" ]
}

@test "the 256x256 configs warm up over the 5000 steps their comments promise, on one process too" {
    data
    for v in v0 v1; do
        cfg="$ROOT/configs/glow-256x256-celeba-$v.yml"
        grep -q '^  warmup_steps: 5000' "$cfg"
        grep -q '# 5000 steps, whatever the number of processes' "$cfg"
        # the config as shipped, shrunk to a model that trains here in a moment
        shardgen s16.glow --n 8 --c 3 --h 16 --w 16
        run glow-train -q -c "$cfg" -o "run-$v" --device cpu --steps 2 --set model.image_size=16 \
            --set model.levels=2 --set model.steps=1 --set model.width=4 --set train.batch_size=2 \
            --set train.log_every=1 --set train.sample_every=0 s16.glow
        [ "$status" -eq 0 ]
        [ "$(log_lrs "run-$v/log.jsonl")" = "2e-07 4e-07" ]
    done
}

@test "a --set of the model on a resume is an error naming the --set, not the checkpoint" {
    data
    glow-train -q -c "$TINY" -o a --steps 2 "$D/s8.glow"
    run --separate-stderr glow-train --resume a --set model.width=128 "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: --set model.width=128: --resume takes the model from the checkpoint, which a resumed run cannot change: model.width: 128 in the override, 8 in a/checkpoint.safetensors"
    # a --set that leaves the model as it is, and train keys, are fine
    run glow-train -q --resume a --steps 3 --set model.width=8 --set train.lr=5e-4
    [ "$status" -eq 0 ]
    # a bad train value names the --set too
    run --separate-stderr glow-train --resume a --steps 4 --set train.batch_size=0
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "glow-train: --set train.batch_size=0: train.batch_size: must be between 1 and"
}

@test "--init takes the model from the checkpoint: no -c, or -c with the train section alone" {
    data
    glow-train -q -c "$TINY" -o a --steps 4 --set model.width=6 "$D/s8.glow"
    run glow-train -q --init a/checkpoint.safetensors -o b --steps 3 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(ckpt_step b/checkpoint.safetensors)" = 3 ]
    [ "$(glow-ckpt --json b/checkpoint.safetensors | json_get - 'd["model"]["width"]')" = 6 ]
    grep -q '"start":"init"' b/log.jsonl
    printf 'train:\n  steps: 2\n  lr: 2.0e-4\n  batch_size: 4\n  device: cpu\n' >ft.yml
    run glow-train -q -c ft.yml --init a/checkpoint.safetensors -o c "$D/s8.glow"
    [ "$status" -eq 0 ]
    glow-ckpt c/checkpoint.safetensors | grep -q '"lr":0.0002'
    [ "$(glow-ckpt --json c/checkpoint.safetensors | json_get - 'd["model"]["width"]')" = 6 ]
    # a train section alone is not a config for a new model
    run --separate-stderr glow-train -c ft.yml -o d "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "ft.yml: missing the 'model' section"
    # a model section that is not the checkpoint's names the file
    run --separate-stderr glow-train -c "$TINY" --init a/checkpoint.safetensors -o d "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--init: the config's model does not match the checkpoint's: model.width: 8 in $TINY, 6 in a/checkpoint.safetensors"
    # weights without a train section (an import): the defaults, and the length given
    shardgen s16.glow --n 8 --c 3 --h 16 --w 16
    run glow-train -q --init "$AFF" -o e --device cpu --steps 1 --set train.batch_size=4 s16.glow
    [ "$status" -eq 0 ]
    [ "$(ckpt_step e/checkpoint.safetensors)" = 1 ]
    run --separate-stderr glow-train -q --init "$AFF" -o f --device cpu s16.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "train.steps or train.epochs: one of them is required"
}

@test "a config's device: cuda without a GPU says so and points to --device cpu" {
    data
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        skip "a GPU is present"
    fi
    tiny_config cuda.yml train.device=cuda
    run --separate-stderr glow-train -c cuda.yml -o run "$D/s8.glow"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-train: cuda.yml: train.device cuda: no usable GPU: "
    assert_contains "$stderr" "; use --device cpu"
    [ ! -e run ]
    run --separate-stderr glow-train -c cuda.yml -o run --device cuda "$D/s8.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: --device cuda: no usable GPU: "
    assert_contains "$stderr" "; use --device cpu"
    run glow-train -q -c cuda.yml -o run --device cpu --steps 1 "$D/s8.glow"
    [ "$status" -eq 0 ]
}

@test "train.steps of a million and more: an integer in the checkpoint's train_config, and resumable" {
    data
    run glow-train -q -c "$TINY" -o run --set train.steps=1000000 --time-limit 0.5 "$D/s8.glow"
    [ "$status" -eq 0 ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"steps":1000000,'
    step=$(ckpt_step run/checkpoint.safetensors)
    run glow-train -q --resume run --steps $((step + 2))
    [ "$status" -eq 0 ]
    [ "$(ckpt_step run/checkpoint.safetensors)" = $((step + 2)) ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"steps":1000000,'
    # a checkpoint of an earlier version wrote 1e+06: it reads back as the integer
    tc=$(st meta run/checkpoint.safetensors train_config | sed 's/"steps":1000000/"steps":1e+06/')
    st set-meta run/checkpoint.safetensors old.safetensors "train_config=$tc"
    st meta old.safetensors train_config | grep -q '"steps":1e+06'
    run glow-train -q --resume old.safetensors -o resumed --steps $((step + 3)) "$D/s8.glow"
    [ "$status" -eq 0 ]
    glow-ckpt resumed/checkpoint.safetensors | grep -q '"steps":1000000,'
}

@test "train.lr_decay: the rate falls over the steps, after the warm-up ramp; under --time-limit it follows the clock" {
    data
    run glow-train -q -c "$TINY" -o run --steps 4 --set train.warmup=0 --set train.lr_decay=linear \
        --set train.lr_final=0.5 --set train.log_every=1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(log_lrs run/log.jsonl)" = "0.000875 0.00075 0.000625 0.0005" ]
    glow-ckpt run/checkpoint.safetensors | grep -q '"lr_decay":"linear","lr_final":0.5'
    grep -q '^  lr_decay: linear$' run/config.yml
    # the ramp and the decay multiply
    run glow-train -q -c "$TINY" -o run2 --steps 2 --set train.warmup_steps=2 --set train.lr_decay=cosine \
        --set train.log_every=1 "$D/s8.glow"
    [ "$status" -eq 0 ]
    [ "$(log_lrs run2/log.jsonl)" = "0.00025 0" ]
    # a run the clock ends: far from its steps, the rate still falls to near 0 by then
    run glow-train -q -c "$TINY" -o run3 --steps 100000000 --time-limit 2 --set train.warmup=0 \
        --set train.lr_decay=cosine --set train.log_every=1 --set train.checkpoint_every=0 \
        --set train.val_every=0 --set train.sample_every=0 "$D/s8.glow"
    [ "$status" -eq 0 ]
    py -c 'import json, sys
lrs = [d["lr"] for d in map(json.loads, open(sys.argv[1])) if "loss" in d]
assert len(lrs) >= 10, lrs
assert all(b <= a for a, b in zip(lrs, lrs[1:])), "not falling"
assert lrs[0] > 9e-4 and lrs[-1] < 1e-4, (lrs[0], lrs[-1])' run3/log.jsonl
    # a bad value names the key
    run --separate-stderr glow-train -q -c "$TINY" -o run4 --steps 2 --set train.lr_decay=step "$D/s8.glow"
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "train.lr_decay"
}
