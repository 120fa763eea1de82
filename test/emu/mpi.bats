#!/usr/bin/env bats
# Several processes on emulated GPUs (docs/cuda-emulation.md "NCCL", docs/distributed.md),
# run by test/run.sh emu against the emulator build (BUILD=build-emu): the NCCL
# stand-in's own tests under mpirun; test_comm --device cuda (NCCL over emulated
# device memory, MPI staged through it, the refusal of a shared GPU); and
# `mpirun -np 2 glow-train --device cuda` with GLOW_COMM=nccl and GLOW_COMM=mpi
# against one process at the same global batch. GLOW_EMU_DEVICES=2 gives each rank
# its own emulated GPU (rank r on cuda:r, as on a machine with two GPUs).

bats_require_minimum_version 1.5.0
load ../helpers
# helpers.bash takes the repository as this file's parent folder: one more up
ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
PATH="$ROOT/$BUILD/bin:$PATH"
export ROOT PATH

export OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
MPIRUN=(mpirun --oversubscribe --bind-to none)

setup_file() {
    D="$BATS_FILE_TMPDIR"
    tiny_config "$D/tiny.yml" train.device=cpu train.val_every=1000 train.checkpoint_every=1000
    shardgen "$D/d.glow" --n 64 --h 8 --w 8 --seed 3
}

need() {
    command -v mpirun >/dev/null || skip "mpirun is not installed (make deps installs Open MPI)"
    mpirun --version 2>/dev/null | grep -q 'Open MPI' || skip "these tests use Open MPI's mpirun"
    grep -q 'mpi 1 nccl 1' <("$ROOT/$BUILD/test/test_comm" --built 2>/dev/null) ||
        skip "this emulator build has no MPI (make MPI=1)"
    D="$BATS_FILE_TMPDIR"
}

# close A B: every tensor of checkpoint A within 1e-5 (relative, by the tensor's
# norm) of B's
close() {
    py - "$1" "$2" <<'EOF'
import sys
import numpy as np
import st
a, b = st.File(sys.argv[1]).tensors(), st.File(sys.argv[2]).tensors()
assert sorted(a) == sorted(b)
worst = 0.0
for k in a:
    x, y = a[k].astype(np.float64).ravel(), b[k].astype(np.float64).ravel()
    n = np.linalg.norm(x)
    if n > 0:
        worst = max(worst, np.linalg.norm(x - y) / n)
print("worst relative difference %.3g" % worst)
assert worst <= 1e-5, worst
EOF
}

@test "the NCCL stand-in under mpirun -np 2 and 3 (test_emu_nccl), in segments too" {
    need
    # the ranks' summaries on standard output, apart from the stand-in's
    # warnings on standard error, which mpirun may forward mid-line
    run --separate-stderr "${MPIRUN[@]}" -np 2 "$ROOT/$BUILD/test/test_emu_nccl"
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    [ "$(grep -oE 'emu_nccl: [0-9]+ passed, [0-9]+ failed' <<<"$output" | grep -c ', 0 failed$')" -eq 2 ]
    # 1000-byte segments: every all-reduce and broadcast above in several MPI calls
    run --separate-stderr env GLOW_EMU_NCCL_SEGMENT=1000 "${MPIRUN[@]}" -np 3 "$ROOT/$BUILD/test/test_emu_nccl"
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    [ "$(grep -oE 'emu_nccl: [0-9]+ passed, [0-9]+ failed' <<<"$output" | grep -c ', 0 failed$')" -eq 3 ]
}

@test "test_comm --device cuda: NCCL on one rank, on 2 emulated GPUs; MPI staged through them; a shared GPU refused" {
    need
    # one process, GLOW_COMM=nccl: NCCL's code on one GPU, the same bits back
    run "$ROOT/$BUILD/test/test_comm" --device cuda
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' <<<"$output")" -eq 1 ]
    # two GPUs: rank r on cuda:r
    run env GLOW_EMU_DEVICES=2 "${MPIRUN[@]}" -np 2 "$ROOT/$BUILD/test/test_comm" --device cuda
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' <<<"$output")" -eq 2 ]
    [ "$(grep -c 'NCCL over device memory' <<<"$output")" -eq 2 ]
    # one GPU for both: NCCL refuses it (ncclInvalidUsage), MPI stages through it
    run env GLOW_EMU_DEVICES=1 "${MPIRUN[@]}" -np 2 "$ROOT/$BUILD/test/test_comm" --device cuda
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' <<<"$output")" -eq 2 ]
    [ "$(grep -c 'GPU shared with another rank (NCCL refused)' <<<"$output")" -eq 2 ]
    assert_contains "$output" "Duplicate GPU detected : rank 0 and rank 1 both on CUDA device 0"
}

@test "2 emulated-GPU ranks train (GLOW_COMM=nccl, =mpi): 1 process's run at the same global batch, to 1e-5" {
    need
    # as test/distributed.bats: EMA, clipping, warm-up; 16 images per rank, 32 per step
    S=(-q -c "$D/tiny.yml" --device cuda --steps 6 --set train.ema_decay=0.9 --set train.grad_clip=1
       --set train.warmup=96 --set train.log_every=1)
    glow-train "${S[@]}" --set train.batch_size=32 -o one "$D/d.glow"
    # NCCL over "device" memory, twice: the same bits
    for run in nccl nccl2; do
        GLOW_EMU_DEVICES=2 GLOW_COMM=nccl "${MPIRUN[@]}" -np 2 glow-train "${S[@]}" \
            --set train.batch_size=16 --check-every 1 -o $run "$D/d.glow"
    done
    head -n 1 nccl/log.jsonl | grep -q '"processes":2,"comm":"nccl"'
    st same nccl/checkpoint.safetensors nccl2/checkpoint.safetensors
    # MPI through page-locked host memory
    GLOW_EMU_DEVICES=2 GLOW_COMM=mpi "${MPIRUN[@]}" -np 2 glow-train "${S[@]}" \
        --set train.batch_size=16 --check-every 1 -o mpi "$D/d.glow"
    head -n 1 mpi/log.jsonl | grep -q '"processes":2,"comm":"mpi"'
    close one/checkpoint.safetensors nccl/checkpoint.safetensors
    close one/checkpoint.safetensors mpi/checkpoint.safetensors
    # one process on NCCL (gpu-check's nccl-1rank): a sum over one rank, the plain run's bits
    GLOW_COMM=nccl glow-train "${S[@]}" --set train.batch_size=32 --check-every 1 -o nccl1 "$D/d.glow"
    head -n 1 nccl1/log.jsonl | grep -q '"processes":1,"comm":"nccl"'
    st same one/checkpoint.safetensors nccl1/checkpoint.safetensors
}

@test "GLOW_COMM=nccl on 2 ranks sharing one emulated GPU: refused at the start, as NCCL refuses it" {
    need
    run --separate-stderr env GLOW_EMU_DEVICES=1 GLOW_COMM=nccl "${MPIRUN[@]}" -np 2 glow-train -q \
        -c "$D/tiny.yml" --device cuda --steps 2 -o shared "$D/d.glow"
    echo "$stderr"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "ncclCommInitRank (rank 0 of 2 on cuda:0): invalid usage"
    assert_contains "$stderr" "Duplicate GPU detected"
    [ ! -e shared/checkpoint.safetensors ]
}
