#!/usr/bin/env bats
# glow-train on several processes (docs/distributed.md): CPU ranks under
# `mpirun -np 2` on the tiny model. The communicator's own tests (test_comm)
# under mpirun; 2 ranks against 1 process with the same global batch; reruns and
# resumes; the checks across ranks (a planted divergence, differing configs); a
# killed rank, SIGINT, a hung rank; standard input refused.

bats_require_minimum_version 1.5.0
load helpers

TINY="$BATS_FILE_TMPDIR/tiny.yml"
FM="${FMNIST:-/usr/share/datasets/fashion-mnist}"
# One thread per rank: 2 ranks on 2 cores.
export OMP_NUM_THREADS=1
# Open MPI refuses to start as root without these; --oversubscribe lets 2 ranks
# run on a machine with fewer free cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI's shared-memory transport wants a few MiB of /dev/shm per rank; its
# warnings about binding or a busy machine are not errors.
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --oversubscribe --bind-to none)
# Under make check-asan: Open MPI's own start-up allocations, suppressed in
# test/lsan.supp, are matched only with full stacks (they run through plug-ins
# unloaded by the time LeakSanitizer looks)
if [ -n "${ASAN_OPTIONS:-}" ]; then
    export ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0"
fi

setup_file() {
    D="$BATS_FILE_TMPDIR"
    tiny_config "$D/tiny.yml" train.device=cpu
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || return 0
    glow-prep -q --limit 300 --size 8 --shard-size 70 -o "$D/dir8" "$FM/t10k-images-idx3-ubyte.gz"
    glow-prep -q --limit 50 --size 8 "$FM/train-images-idx3-ubyte.gz" >"$D/val8.glow"
}

need() {
    command -v mpirun >/dev/null || skip "mpirun is not installed (make deps installs Open MPI)"
    mpirun --version 2>/dev/null | grep -q 'Open MPI' || skip "these tests use Open MPI's mpirun"
    [ -x "$ROOT/$BUILD/test/test_comm" ] || skip "test_comm is not built"
    grep -q 'mpi 1' <("$ROOT/$BUILD/test/test_comm" --built 2>/dev/null) ||
        skip "this build has no MPI (make MPI=1)"
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
    D="$BATS_FILE_TMPDIR"
}

# close A B [TOL]: every tensor of checkpoint A within TOL (relative, by the
# tensor's norm; default 1e-5) of B's; prints the worst and whether all are the same bits.
close() {
    py - "$1" "$2" "${3:-1e-5}" <<'EOF'
import sys
import numpy as np
import st
a, b, tol = st.File(sys.argv[1]).tensors(), st.File(sys.argv[2]).tensors(), float(sys.argv[3])
assert sorted(a) == sorted(b)
worst, same = 0.0, True
for k in a:
    x, y = a[k].astype(np.float64).ravel(), b[k].astype(np.float64).ravel()
    same &= a[k].tobytes() == b[k].tobytes()
    n = np.linalg.norm(x)
    if n > 0:
        worst = max(worst, np.linalg.norm(x - y) / n)
print("worst relative difference %.3g, bit-identical: %s" % (worst, same))
assert worst <= tol, (worst, tol)
EOF
}

# log_close A B: the training lines of two logs (loss, bpd, lr, grad_norm) and
# their validation lines agree to 1e-5 relative, step by step.
log_close() {
    py - "$1" "$2" <<'EOF'
import json, sys
def lines(p):
    L = [json.loads(l) for l in open(p)]
    return [d for d in L if "loss" in d and "skipped" not in d], [d for d in L if "val_bpd" in d]
(ta, va), (tb, vb) = lines(sys.argv[1]), lines(sys.argv[2])
assert [d["step"] for d in ta] == [d["step"] for d in tb] and ta, (ta, tb)
assert [d["images"] for d in ta] == [d["images"] for d in tb]
for x, y in zip(ta, tb):
    for k in ("loss", "bpd", "lr", "grad_norm"):
        assert abs(x[k] - y[k]) <= 1e-5 * abs(x[k]), (x["step"], k, x[k], y[k])
assert [d["step"] for d in va] == [d["step"] for d in vb]
for x, y in zip(va, vb):
    assert abs(x["val_bpd"] - y["val_bpd"]) <= 1e-5 * x["val_bpd"], (x, y)
EOF
}

# the same bits: tensors, and the numbers of the log lines
same_run() {
    st same "$1/checkpoint.safetensors" "$2/checkpoint.safetensors"
    [ "$(grep -o '"loss.*"grad_norm":[^,]*' "$1/log.jsonl")" = \
      "$(grep -o '"loss.*"grad_norm":[^,]*' "$2/log.jsonl")" ]
}

ckpt_step() { glow-ckpt --json "$1" | json_get - 'd["step"]'; }

@test "the communicators under mpirun -np 2 and 3 (test_comm)" {
    need
    run "${MPIRUN[@]}" -np 2 "$ROOT/$BUILD/test/test_comm"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' <<<"$output")" -eq 2 ]
    run "${MPIRUN[@]}" -np 3 "$ROOT/$BUILD/test/test_comm"
    [ "$status" -eq 0 ]
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' <<<"$output")" -eq 3 ]
}

@test "2 ranks x batch 16 agree with 1 process x batch 32; two 2-rank runs are bit-identical" {
    need
    # EMA, clipping (the global norm of the averaged gradient), the warm-up in
    # images of all ranks, validation split over the ranks
    S=(--set train.ema_decay=0.9 --set train.grad_clip=1 --set train.warmup=96 --set train.log_every=1)
    run "${MPIRUN[@]}" -np 2 glow-train -c "$TINY" "${S[@]}" --set train.batch_size=16 \
        -o two --val "$D/val8.glow" "$D/dir8"
    echo "$output"
    [ "$status" -eq 0 ]
    assert_contains "$output" "on 2 processes (mpi, cpu on rank 0)"
    assert_contains "$output" "batch 16 per process (32 per step)"
    # rank 0 alone reports: one init line, one done line
    [ "$(grep -c 'data-dependent init' <<<"$output")" -eq 1 ]
    [ "$(grep -c 'done: step 20, 640 images' <<<"$output")" -eq 1 ]
    head -n 1 two/log.jsonl | grep -q '"processes":2,"comm":"mpi"'
    glow-train -q -c "$TINY" "${S[@]}" --set train.batch_size=32 -o one --val "$D/val8.glow" "$D/dir8"
    log_close one/log.jsonl two/log.jsonl
    close one/checkpoint.safetensors two/checkpoint.safetensors
    "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" "${S[@]}" --set train.batch_size=16 \
        -o again --val "$D/val8.glow" "$D/dir8"
    same_run two again
    # the effective config is the same file a single process writes
    cmp one/config.yml <(sed 's/batch_size: 16/batch_size: 32/' two/config.yml)
}

@test "resume 2 ranks -> 2 ranks is bit-identical; 2 ranks -> 1 process continues the run" {
    need
    S=(--set train.ema_decay=0.9 --set train.optimizer=adamax --set train.batch_size=16)
    "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" "${S[@]}" -o full --val "$D/val8.glow" "$D/dir8"
    "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" "${S[@]}" -o half --steps 10 --val "$D/val8.glow" "$D/dir8"
    [ "$(ckpt_step half/checkpoint.safetensors)" = 10 ]
    cp -r half half1
    run "${MPIRUN[@]}" -np 2 glow-train -q --resume half --steps 20 --val "$D/val8.glow" "$D/dir8"
    [ "$status" -eq 0 ]
    same_run full half
    # one process with the same global batch: the same data order and state
    run glow-train -q --resume half1 --steps 20 --set train.batch_size=32 --val "$D/val8.glow" "$D/dir8"
    [ "$status" -eq 0 ]
    close full/checkpoint.safetensors half1/checkpoint.safetensors
    log_close full/log.jsonl half1/log.jsonl
    [ "$(glow-ckpt half1/checkpoint.safetensors | grep 'data_offset')" = \
      "$(glow-ckpt full/checkpoint.safetensors | grep 'data_offset')" ]
}

@test "the parameter check catches a planted divergence, naming the rank (GLOW_TEST_PERTURB)" {
    need
    # equal after the data-dependent init (rank 0's values broadcast): a check every step passes
    run "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" -o ok --steps 4 --check-every 1 "$D/dir8"
    [ "$status" -eq 0 ]
    # rank 1's parameters nudged after step 7: the check at step 10 fails on every rank
    run --separate-stderr env GLOW_TEST_PERTURB=1:7 "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" \
        -o bad --check-every 5 "$D/dir8"
    echo "$stderr"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: rank 1: the parameters differ from rank 0's at step 10"
    [ "$(grep -c 'the parameters differ' <<<"$stderr")" -eq 1 ]
    # the last checkpoint (step 10 is checked before it is written) stays from before
    [ "$(ckpt_step bad/checkpoint.safetensors)" -lt 10 ] || [ ! -e bad/checkpoint.safetensors ]
    # before the first step (after a resume, say)
    run --separate-stderr env GLOW_TEST_PERTURB=1:0 "${MPIRUN[@]}" -np 2 glow-train -q \
        --resume ok --steps 6 "$D/dir8"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "rank 1: the parameters differ from rank 0's at the start, at step 4"
}

@test "ranks that differ in config or data are an error at the start, naming rank and difference" {
    need
    run --separate-stderr mpirun --oversubscribe -np 1 glow-train -q -c "$TINY" -o mm "$D/dir8" : \
        -np 1 glow-train -q -c "$TINY" --set train.lr=2e-3 -o mm "$D/dir8"
    echo "$stderr"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: rank 1: config: '  lr: 0.002' where rank 0 has '  lr: 0.001'"
    [ ! -e mm/checkpoint.safetensors ]
    cp -r "$D/dir8" other
    rm "other/$(ls other | head -n 1)"
    run --separate-stderr mpirun --oversubscribe -np 1 glow-train -q -c "$TINY" -o mm "$D/dir8" : \
        -np 1 glow-train -q -c "$TINY" -o mm other
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-train: rank 1: training data: '230 images of 1x8x8 with labels' where rank 0 has '300 images"
}

@test "rank 0 alone writes the run directory: samples, numbered and best checkpoints, data.json" {
    need
    # each rank in a folder of its own, the same relative -o: what rank 1 wrote would be in r1
    mkdir r0 r1
    S=(-q -c "$TINY" --set train.sample_every=10 --set train.keep_every=10 --set train.ema_decay=0.9
       -o run --val "$D/val8.glow" "$D/dir8")
    run --separate-stderr mpirun --oversubscribe --bind-to none -np 1 --wdir r0 glow-train "${S[@]}" : \
        -np 1 --wdir r1 glow-train "${S[@]}"
    echo "$stderr"
    [ "$status" -eq 0 ]
    [ ! -e r1/run ]
    [ -z "$(ls -A r1)" ]
    [ "$(ls r0/run/samples | tr '\n' ' ')" = "recon-0000010.png recon-0000020.png step-0000010.png step-0000020.png " ]
    [ "$(ls r0/run/checkpoints | tr '\n' ' ')" = "step-0000010.safetensors step-0000020.safetensors " ]
    [ "$(ckpt_step r0/run/best.safetensors)" -ge 10 ]
    [ "$(json_get r0/run/data.json 'd["train"]["inputs"]')" = "['$D/dir8']" ]
    [ "$(json_get r0/run/data.json 'd["val"]["images"]')" = 50 ]
    grep -q '"processes":2' r0/run/log.jsonl
    py - r0/run/log.jsonl <<'EOF'
import json, sys
v = [d for d in map(json.loads, open(sys.argv[1])) if "val_bpd" in d]
assert [d["step"] for d in v] == [10, 20] and all("val_bpd_ema" in d for d in v), v
EOF
    # the run is refused on 2 ranks too: rank 0 says it once, every rank exits 1
    run --separate-stderr "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" -o r0/run "$D/dir8"
    [ "$status" -eq 1 ]
    [ "$(grep -c 'r0/run: already holds the run tiny at step 20 of 20' <<<"$stderr")" -eq 1 ]
    [[ "$stderr" != *"rank 1"* ]]
    # and resumes on 2 ranks from its record alone
    run "${MPIRUN[@]}" -np 2 glow-train -q --resume r0/run --steps 24
    [ "$status" -eq 0 ]
    [ "$(ckpt_step r0/run/checkpoint.safetensors)" = 24 ]
    [ ! -e r1/run ]
}

@test "standard input cannot feed 2 processes (exit 2); epochs count the images of all ranks" {
    need
    glow-prep -q --limit 20 --size 8 "$FM/t10k-images-idx3-ubyte.gz" >s.glow
    run --separate-stderr "${MPIRUN[@]}" -np 2 glow-train -c "$TINY" -o run <s.glow
    [ "$status" -eq 2 ]
    assert_contains "$stderr" "glow-train: no training data: a stream on standard input cannot feed 2 processes"
    # 1.5 epochs of 300 images, 2 x 8 per step: 29 steps
    run "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" -o ep --set train.epochs=1.5 "$D/dir8"
    [ "$status" -eq 0 ]
    head -n 1 ep/log.jsonl | grep -q '"total_steps":29'
    # GLOW_COMM=nccl wants a GPU
    run --separate-stderr env GLOW_COMM=nccl "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" -o nc "$D/dir8"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "GLOW_COMM=nccl"
}

@test "a killed rank ends the run with a non-zero exit within seconds; the checkpoint stays intact" {
    need
    "${MPIRUN[@]}" -np 2 glow-train -q -c "$TINY" -o run --steps 100000 \
        --set train.checkpoint_every=25 "$D/dir8" 2>err.txt &
    mp=$!
    for _ in $(seq 600); do [ -f run/checkpoint.safetensors ] && break; sleep 0.05; done
    [ -f run/checkpoint.safetensors ]
    sleep 0.2
    victim=$(pgrep -P "$mp" | tail -n 1)
    [ -n "$victim" ]
    start=$(date +%s)
    kill -9 "$victim"
    status=0
    wait "$mp" || status=$?
    [ "$status" -ne 0 ]
    [ $(($(date +%s) - start)) -le 10 ]
    run glow-ckpt --verify run/checkpoint.safetensors
    [ "$status" -eq 0 ]
    step=$(ckpt_step run/checkpoint.safetensors)
    run "${MPIRUN[@]}" -np 2 glow-train -q --resume run --steps $((step + 5)) "$D/dir8"
    [ "$status" -eq 0 ]
}

@test "SIGINT to the ranks: every rank stops after the same step, one save, exit 130" {
    need
    "${MPIRUN[@]}" -np 2 glow-train -c "$TINY" -o run --steps 100000 \
        --set train.checkpoint_every=100000 --set train.log_every=0 "$D/dir8" 2>err.txt &
    mp=$!
    for _ in $(seq 600); do grep -q 'training from step' err.txt && break; sleep 0.05; done
    sleep 0.5
    pkill -INT -P "$mp"
    status=0
    wait "$mp" || status=$?
    cat err.txt
    [ "$status" -eq 130 ]
    [ "$(grep -c 'interrupted at step' err.txt)" -eq 1 ]
    [ "$(grep -c '"checkpoint"' run/log.jsonl)" -eq 1 ]
    step=$(ckpt_step run/checkpoint.safetensors)
    grep -q "\"step\":$step,\"interrupted\":2" run/log.jsonl
    run "${MPIRUN[@]}" -np 2 glow-train -q --resume run --steps $((step + 3)) "$D/dir8"
    [ "$status" -eq 0 ]
}

@test "a rank that hangs ends the run: the watchdog (GLOW_DIST_TIMEOUT)" {
    need
    start=$(date +%s)
    run --separate-stderr env GLOW_DIST_TIMEOUT=1 "${MPIRUN[@]}" -np 2 "$ROOT/$BUILD/test/test_comm" --hang
    [ "$status" -ne 0 ]
    [ $(($(date +%s) - start)) -le 15 ]
    assert_contains "$stderr" "a barrier waited 1 s for the other processes: one of them has stopped or hangs"
    [[ "$output" != *"past the barrier"* ]]
}
