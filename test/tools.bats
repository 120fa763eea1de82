#!/usr/bin/env bats
# What every tool shares (libcommon/tool/): --version, -o in --help, no binary
# data written to a terminal, --times of the tools that run a model over
# batches, temporary files removed on SIGTERM, and the
# restart with an OpenMP wait policy (chosen from the load) of the tools that compute.
load helpers
bats_require_minimum_version 1.5.0

TOOLS=(glow-prep pngcat glow-train glow-sample glow-bpd glow-ckpt glow-encode glow-decode glow-latent glow-plot)

# wait_for TEST...: poll up to 20 s for [ TEST... ] to hold
wait_for() {
    local i
    for ((i = 0; i < 200; i++)); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# 1024 gray 4x4 images as an IDX file (no labels beside it)
idx1024() {
    { printf '\x00\x00\x08\x03\x00\x00\x04\x00\x00\x00\x00\x04\x00\x00\x00\x04'
      head -c 16384 /dev/zero; } >"$1"
}

@test "--version: 'TOOL (Glow in C and CUDA) VERSION' on stdout, exit 0, for every tool" {
    want=$("$ROOT/scripts/version.sh")
    [ -n "$want" ]
    for t in "${TOOLS[@]}"; do
        run --separate-stderr "$t" --version
        [ "$status" -eq 0 ] || { echo "$t: exit $status"; return 1; }
        [ -z "$stderr" ] || { echo "$t: stderr: $stderr"; return 1; }
        [[ "$output" =~ ^$t\ \(Glow\ in\ C\ and\ CUDA\)\ [^[:space:]]+$ ]] ||
            { echo "$t: '$output'"; return 1; }
        # the version of this checkout (built from it; -dirty may have changed since)
        v=${output##* }
        [ "${v%-dirty}" = "${want%-dirty}" ] || { echo "$t: $v, the checkout is $want"; return 1; }
        # before any other check of the command line, and listed in --help
        run "$t" --version --bogus-option
        [ "$status" -eq 0 ]
        run "$t" --help
        assert_contains "$output" "--version"
    done
}

@test "--version falls back to the VERSION file, which holds a version" {
    grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' "$ROOT/VERSION"
    # a copy of the script outside any git checkout
    mkdir -p nogit/scripts
    cp "$ROOT/scripts/version.sh" nogit/scripts/
    echo 9.8.7 >nogit/VERSION
    run env GIT_CEILING_DIRECTORIES="$TMP" nogit/scripts/version.sh
    [ "$status" -eq 0 ]
    [ "$output" = "9.8.7" ]
}

@test "-o in every --help: a file for one stream, a folder for many" {
    run glow-prep --help
    assert_contains "$output" "-o, --out DIR        write shard files into the folder DIR"
    run glow-train --help
    assert_contains "$output" "-o, --out DIR         the run directory (a folder, created)"
    run pngcat --help
    assert_contains "$output" "-o, --output FILE  write the grid PNG to the file FILE"
    run glow-sample --help
    assert_contains "$output" "-o, --output FILE  write the stream to the file FILE"
    run glow-plot --help
    assert_contains "$output" "-o, --output FILE    write to FILE (atomically) instead of standard output"
    # --out and --output name the same option everywhere
    idx1024 a.idx
    run glow-prep -q --output shards a.idx
    [ "$status" -eq 0 ]
    [ -f shards/shard-00000.glow ]
    run pngcat --out grid.png shards/shard-00000.glow
    [ "$status" -eq 0 ]
    [ -s grid.png ]
    # glow-prep -o -: standard output
    run bash -c 'glow-prep -q -o - a.idx | cmp - shards/shard-00000.glow'
    [ "$status" -eq 0 ]
    # a run directory cannot be standard output
    run glow-train -c "$ROOT/configs/fashion-mnist.yml" -o - shards
    [ "$status" -eq 2 ]
    assert_contains "$output" "-o -: the run directory is a folder, not standard output"
}

@test "binary data is not written to a terminal (exit 2), text and files are" {
    command -v script >/dev/null || skip "script(1) is not installed"
    idx1024 a.idx
    glow-prep -q -o shards a.idx
    run script -qec "glow-prep a.idx" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-prep: refusing to write binary data to a terminal; redirect"
    run script -qec "pngcat shards/shard-00000.glow" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "pngcat: refusing to write PNG data to a terminal"
    # before the checkpoint is read
    run script -qec "glow-sample missing.safetensors" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-sample: refusing to write binary image data to a terminal"
    run script -qec "glow-ckpt --export-weights - missing.safetensors" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-ckpt: refusing to write a checkpoint to a terminal"
    run script -qec "glow-plot missing-run" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-plot: refusing to write a PNG image to a terminal"
    # to files they write; glow-sample then fails on the checkpoint (1), not on the terminal
    run script -qec "glow-sample -o s.glow missing.safetensors" /dev/null
    [ "$status" -eq 1 ]
    run script -qec "glow-ckpt -e w.safetensors missing.safetensors" /dev/null
    [ "$status" -eq 1 ]
    run script -qec "glow-prep -q -o shards2 a.idx" /dev/null
    [ "$status" -eq 0 ]
    # --version and --help are text
    run script -qec "glow-sample --version" /dev/null
    [ "$status" -eq 0 ]
}

# times_check FILE IMAGES...: FILE holds one --times line per batch with these
# image counts, numbered from 1, with consistent times
times_check() {
    py - "$@" <<'EOF'
import json, sys
path, want = sys.argv[1], [int(x) for x in sys.argv[2:]]
rows = [json.loads(l) for l in open(path).read().splitlines()]
assert [r["images"] for r in rows] == want, (path, rows)
assert [r["batch"] for r in rows] == list(range(1, len(want) + 1)), rows
for r in rows:
    assert set(r) == {"batch", "images", "seconds", "cpu_seconds", "images_per_s"}, r
    assert r["seconds"] > 0 and r["cpu_seconds"] >= 0, r
    assert abs(r["images_per_s"] * r["seconds"] - r["images"]) <= 1e-2 * r["images"], r
EOF
}

@test "--times FILE: one JSON line per batch from glow-sample, glow-bpd, glow-encode and glow-decode" {
    glow-sample --device cpu -n 10 --batch 4 -o s.glow "$AFF"
    glow-sample --device cpu -n 10 --batch 4 -o s2.glow --times st.jsonl "$AFF"
    cmp s.glow s2.glow   # timing changes nothing of the output
    times_check st.jsonl 4 4 2
    glow-bpd --device cpu --batch 4 --json "$AFF" s.glow >plain.json
    glow-bpd --device cpu --batch 4 --json --times bt.jsonl "$AFF" s.glow >timed.json
    cmp plain.json timed.json
    times_check bt.jsonl 4 4 2
    # --ood: the other set's batches follow, numbered on
    glow-bpd --device cpu --batch 4 --ood s2.glow --times bo.jsonl "$AFF" s.glow >/dev/null
    times_check bo.jsonl 4 4 2 4 4 2
    glow-encode --device cpu --batch 3 -o e.glow --times et.jsonl "$AFF" s.glow
    times_check et.jsonl 3 3 3 1
    glow-decode --device cpu --batch 5 -o d.glow --times dt.jsonl "$AFF" e.glow
    times_check dt.jsonl 5 5
    # a file, not standard output, which carries the results (usage, before anything runs)
    run glow-bpd --times - "$AFF" s.glow
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-bpd: --times needs a file name"
    run glow-sample -o x.glow --times x.glow "$AFF"
    [ "$status" -eq 2 ]
    assert_contains "$output" "--times x.glow: also named as the output"
    # not over an input, and an unwritable place names the file
    run glow-bpd --times s.glow "$AFF" s.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "s.glow: is also the input"
    cmp s.glow s2.glow
    run glow-decode -o d2.glow --times nodir/t.jsonl "$AFF" e.glow
    [ "$status" -eq 1 ]
    assert_contains "$output" "nodir/t.jsonl"
    [ ! -e d2.glow ]
    # a run that fails leaves no file of times, nor a temporary one
    head -c 100 s.glow >cut.glow
    run glow-bpd --times cut.jsonl "$AFF" cut.glow
    [ "$status" -eq 1 ]
    [ ! -e cut.jsonl ]
    [ -z "$(ls -A | grep '\.tmp\.')" ]
}

# The tests below start tools in the background; those keep no descriptor of
# bats (3>&-) and are killed when a check fails (or_kill).
or_kill() { kill "$@" 2>/dev/null; return 1; }

@test "SIGTERM: glow-prep -o DIR leaves no temporary shard file and exits 143" {
    idx1024 a.idx
    # image 1025 is a FIFO nobody writes: decoding blocks there, after the first
    # record of 1024 images went to DIR's first (temporary) shard file
    mkfifo stuck.png
    echo "$TMP/stuck.png" >list.txt
    glow-prep -q -j 2 -o out a.idx list.txt 2>err.txt 3>&- &
    pid=$!
    wait_for [ -e "out/.shard-00000.glow.tmp.$pid" ] || or_kill -9 "$pid"
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 143 ]
    [ -z "$(ls -A out)" ] || { ls -A out; return 1; }
}

@test "SIGTERM: glow-prep's --val-out file leaves no temporary file" {
    idx1024 a.idx
    mkfifo stuck.png
    echo "$TMP/stuck.png" >list.txt
    glow-prep -q --split 0.5 --val-out val.glow a.idx list.txt >train.glow 2>err.txt 3>&- &
    pid=$!
    wait_for [ -e ".val.glow.tmp.$pid" ] || or_kill -9 "$pid"
    kill -TERM "$pid"
    status=0
    wait "$pid" || status=$?
    [ "$status" -eq 143 ]
    [ ! -e ".val.glow.tmp.$pid" ] && [ ! -e val.glow ]
}

# has_env PID VAR=VALUE: the process's environment holds exactly that
has_env() { tr '\0' '\n' <"/proc/$1/environ" | grep -qx "$2"; }
# has_policy PID: one of the two policies glow_tool_omp_policy chooses (which one
# depends on the load when the tool started; the rule is test_tool's)
has_policy() { has_env "$1" OMP_WAIT_POLICY=passive || has_env "$1" GOMP_SPINCOUNT=20000; }
# started PID: the process runs its tool (env has exec'ed)
started() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" != env ]; }

@test "the tools that compute restart with a wait policy (passive, or a short spin when quiet); a user's policy wins" {
    [ -r /proc/self/environ ] || skip "no /proc"
    mkfifo in.fifo
    exec 8<>in.fifo # a writer that never writes: the readers below block
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT glow-sample -o s.glow - <in.fifo 2>/dev/null 3>&- 8>&- &
    p1=$!
    env OMP_WAIT_POLICY=active glow-bpd - x.glow <in.fifo 2>/dev/null 3>&- 8>&- &
    p2=$!
    # glow-prep computes no OpenMP: no restart
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT glow-prep --format list - <in.fifo >p.glow 2>/dev/null 3>&- 8>&- &
    p3=$!
    wait_for has_policy "$p1" || or_kill "$p1" "$p2" "$p3"
    [ "$(cat /proc/$p1/comm)" = glow-sample ] || or_kill "$p1" "$p2" "$p3" # its own name
    wait_for started "$p2" && wait_for started "$p3" || or_kill "$p1" "$p2" "$p3"
    sleep 0.3 # time for a restart that should not come
    has_env "$p2" OMP_WAIT_POLICY=active || or_kill "$p1" "$p2" "$p3"
    ! tr '\0' '\n' <"/proc/$p3/environ" | grep -q 'OMP_WAIT_POLICY\|GOMP_SPINCOUNT' || or_kill "$p1" "$p2" "$p3"
    kill "$p1" "$p2" "$p3"
    exec 8>&-
    wait "$p1" "$p2" "$p3" 2>/dev/null || true
}
