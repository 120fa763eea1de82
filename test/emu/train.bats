#!/usr/bin/env bats
# glow-train, glow-sample and glow-bpd on the CUDA device, run by test/run.sh emu
# against the tools of the emulator build (BUILD=build-emu, docs/cuda-emulation.md);
# on a GPU machine it runs against the real device. A few steps of configs/tiny.yml
# on both devices from the same data: every logged loss within 1e-3 (relative),
# a resumed device run exactly as the uninterrupted one, and the device's bpd of the
# device-trained model the CPU's.

bats_require_minimum_version 1.5.0
load ../helpers
# helpers.bash takes the repository as this file's parent folder: one more up
ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
PATH="$ROOT/$BUILD/bin:$PATH"
export ROOT PATH

DEV="${GLOW_TEST_DEVICE:-cuda}"
export OMP_NUM_THREADS=1

setup_file() {
    D="$BATS_FILE_TMPDIR"
    tiny_config "$D/tiny.yml" train.device=cpu train.log_every=2 train.val_every=1000 \
        train.checkpoint_every=1000
    shardgen "$D/d.glow" --n 64 --h 8 --w 8 --seed 3
}

# losses FILE: "step loss" per logged training line
losses() {
    py -c 'import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if "loss" in d and "skipped" not in d:
        print(d["step"], d["loss"])' "$1"
}

# close A B TOL: the two "step loss" lists have the same steps and losses within TOL (relative)
close() {
    py - "$1" "$2" "$3" <<'EOF'
import sys
a, b = [dict(l.split() for l in open(p)) for p in sys.argv[1:3]]
assert a and a.keys() == b.keys(), (sorted(a), sorted(b))
worst = max(abs(float(b[s]) - float(a[s])) / abs(float(a[s])) for s in a)
assert worst <= float(sys.argv[3]), "worst relative difference %g" % worst
EOF
}

@test "glow-train --device $DEV: the CPU's losses; a resumed run is the uninterrupted one" {
    D="$BATS_FILE_TMPDIR"
    glow-train -q -c "$D/tiny.yml" -o cpu --device cpu --steps 12 "$D/d.glow"
    glow-train -q -c "$D/tiny.yml" -o dev --device "$DEV" --steps 12 "$D/d.glow"
    losses cpu/log.jsonl >cpu.txt
    losses dev/log.jsonl >dev.txt
    [ "$(wc -l <dev.txt)" -eq 6 ]
    close cpu.txt dev.txt 1e-3
    # 6 steps, then resumed to 12: the losses of the uninterrupted device run
    glow-train -q -c "$D/tiny.yml" -o half --device "$DEV" --steps 6 "$D/d.glow"
    glow-train -q --resume half --device "$DEV" --steps 12 "$D/d.glow"
    losses half/log.jsonl >half.txt
    close dev.txt half.txt 0
}

@test "glow-sample and glow-bpd --device $DEV: the device-trained model's bpd on both devices" {
    D="$BATS_FILE_TMPDIR"
    glow-train -q -c "$D/tiny.yml" -o run --device "$DEV" --steps 4 "$D/d.glow"
    glow-sample run/checkpoint.safetensors -n 16 --seed 2 --device "$DEV" -o s.glow
    [ -s s.glow ]
    a=$(glow-bpd run/checkpoint.safetensors s.glow --device "$DEV")
    b=$(glow-bpd run/checkpoint.safetensors s.glow --device cpu)
    py -c 'import sys
a, b = (float(x.split()[1]) for x in sys.argv[1:3])
assert abs(a - b) < 1e-3, (a, b)' "$a" "$b"
}
