#!/usr/bin/env bash
# The checks of the CUDA backend on a GPU machine (docs: ../shared/gpu.md), in
# about five minutes: finds cuDNN and cuBLAS, runs the GPU unit tests, the
# GPU-vs-CPU parity tests, the reference cases on CUDA, then a throughput
# benchmark (training and evaluation images/s and peak GPU memory for the CIFAR-10
# and ImageNet 64x64 configs in fp32, tf32 and bf16). Every stage reports pass or
# fail and the script goes on; it exits 1 when any stage failed. The summary
# (markdown) goes to $OUT/gpu-check.md when OUT is set, else to stdout; the logs
# of every stage to $OUT/gpu-check-logs/.
#
# Environment: BUILD (build folder, default build), REF (reference cases, default
# ../shared/reference), GPU_CHECK_DEVICE (default cuda; "cpu" with
# GPU_CHECK_SMALL=1 rehearses the script on a machine without a GPU),
# GPU_CHECK_STEPS (timed glow-train steps, default 30).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
# the tests' CPU side waits passively, as the tools do (libcommon/tool/tool.h)
[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] || export OMP_WAIT_POLICY=passive
if [ -z "${REF:-}" ]; then
    REF=../shared/reference
    [ -d "$REF" ] || [ ! -d shared/reference ] || REF=shared/reference
fi
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SMALL=${GPU_CHECK_SMALL:-0}
STEPS=${GPU_CHECK_STEPS:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
logs=$work/logs
mkdir -p "$logs"
stages=$work/stages.md
bench=$work/bench.md
failed=0
t_start=$(date +%s)

# stage NAME CMD...: runs CMD with its output in logs/NAME.log, records the result
stage() {
    local name=$1 t0 rc note
    shift
    t0=$(date +%s)
    "$@" >"$logs/$name.log" 2>&1
    rc=$?
    note=$(grep -E 'skipped:|[0-9]+ passed, [0-9]+ failed|FAIL|[Ee]rror' "$logs/$name.log" |
           grep -vE '^(cc|gcc|nvcc|ar|rm) ' | tail -n 1 |
           tr '|' '/' | cut -c1-120)
    if [ $rc -eq 0 ]; then
        echo "| $name | pass | $(($(date +%s) - t0)) s | $note |" >>"$stages"
        echo "gpu-check: $name: pass" >&2
    else
        failed=1
        echo "| $name | FAIL (exit $rc) | $(($(date +%s) - t0)) s | $note |" >>"$stages"
        echo "gpu-check: $name: FAIL (exit $rc); last lines of its log:" >&2
        tail -n 15 "$logs/$name.log" >&2
    fi
    return $rc
}

# ---- libraries: cuDNN and cuBLAS may come from the Python wheels ----
find_libs() {
    local dirs=() d mod
    for mod in nvidia.cudnn nvidia.cublas nvidia.cuda_runtime nvidia.cu13 nvidia; do
        d=$(python3 -c "import $mod as m, os; print(os.path.dirname(m.__file__) if getattr(m, '__file__', None) else list(m.__path__)[0])" 2>/dev/null) || continue
        for sub in lib lib64 cu13/lib cublas/lib cudnn/lib; do
            [ -d "$d/$sub" ] && dirs+=("$d/$sub")
        done
    done
    # the wheels not found by import: look for the files themselves
    if [ ${#dirs[@]} -eq 0 ]; then
        for lib in 'libcudnn.so.9*' 'libcublas.so.*'; do
            while IFS= read -r f; do dirs+=("$(dirname "$f")"); done < <(
                timeout 30 find / -xdev -name "$lib" 2>/dev/null | head -n 4)
        done
    fi
    local seen=":" out=""
    for d in "${dirs[@]}"; do
        case $seen in *":$d:"*) continue ;; esac
        seen="$seen$d:"
        out="$out${out:+:}$d"
    done
    echo "libraries: $out"
    export LD_LIBRARY_PATH="$out${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
}
find_libs >"$logs/libraries.log" 2>&1

: >"$stages"
if [ "$DEVICE" != cpu ]; then
    stage nvidia-smi nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv
fi

# ---- binaries: the ones built already, else a CUDA build ----
# A folder built without CUDA would keep its objects (compiled without the CUDA
# backend) under CUDA=1: then a fresh folder beside it is used instead.
if [ "$DEVICE" != cpu ] && [ -d "$BUILD/obj" ] && [ ! -f "$BUILD/libglowcuda.a" ]; then
    BUILD=$BUILD-gpu
fi
need_build=0
for f in bin/glow-train test/test_backend_cuda_ops test/test_cuda_train test/test_refcheck; do
    [ -x "$BUILD/$f" ] || need_build=1
done
[ "$DEVICE" = cpu ] || [ -f "$BUILD/libglowcuda.a" ] || need_build=1
# For a build: the wheels ship headers beside lib/ and only versioned .so files,
# so the compiler gets their include folders (CPATH) and the linker unversioned
# links to them (LIBRARY_PATH).
build_env() {
    local links=$work/linklibs d f base
    mkdir -p "$links"
    local IFS=:
    for d in $LD_LIBRARY_PATH; do
        [ -d "$d/../include" ] && CPATH="${CPATH:+$CPATH:}$d/../include"
        for f in "$d"/libcudnn.so.[0-9]* "$d"/libcublas.so.[0-9]* "$d"/libcublasLt.so.[0-9]* "$d"/libcudart.so.[0-9]*; do
            [ -e "$f" ] || continue
            base=${f##*/}
            [ -e "$links/${base%%.so*}.so" ] || ln -s "$f" "$links/${base%%.so*}.so"
        done
    done
    [ -z "${CPATH:-}" ] || export CPATH
    export LIBRARY_PATH="$links${LIBRARY_PATH:+:$LIBRARY_PATH}"
}
CUDA_FLAG=$([ "$DEVICE" = cpu ] || echo CUDA=1) # cpu rehearsal: the Makefile's detection
if [ $need_build = 1 ] || [ ! -x "$BUILD/bench/gpu_bench" ]; then
    build_env
fi
if [ $need_build = 1 ]; then
    stage build make -j"$(nproc)" $CUDA_FLAG BUILD="$BUILD" all
fi
[ -x "$BUILD/bench/gpu_bench" ] || stage build-bench make $CUDA_FLAG BUILD="$BUILD" "$BUILD/bench/gpu_bench"
if [ -x "$BUILD/bin/glow-train" ]; then
    check_ldd() { ldd "$BUILD/bin/glow-train"; ! ldd "$BUILD/bin/glow-train" | grep -q 'not found'; }
    stage libraries-resolved check_ldd
fi

# ---- tests, a skip being a failure here ----
export GLOW_TEST_STRICT=1
for t in test_backend_cuda test_backend_cuda_ops test_cuda_train; do
    if [ -x "$BUILD/test/$t" ]; then
        stage "$t" timeout 180 "$BUILD/test/$t"
    else
        echo "| $t | FAIL (not built) | 0 s | |" >>"$stages"
        failed=1
    fi
done
stage refcheck-cuda timeout 180 "$BUILD/test/test_refcheck" --device "$DEVICE" "$REF"
unset GLOW_TEST_STRICT

# ---- benchmark data: random uint8 shards (docs/formats.md), no labels ----
gen_shards() { # FILE N C H W
    python3 - "$@" <<'EOF'
import os, struct, sys, zlib
path, n, c, h, w = sys.argv[1], *map(int, sys.argv[2:6])
with open(path, "wb") as f:
    left = n
    while left:
        k = min(left, 1024)
        raw = os.urandom(k * c * h * w)
        z = zlib.compress(raw, 1)
        head = struct.pack("<8sIIIIIIIIQQI", b"GLOWSHRD", 1, 1, 0, k, c, h, w, 0, len(raw),
                           len(z), zlib.crc32(raw))
        f.write(head + struct.pack("<I", zlib.crc32(head)) + z)
        left -= k
EOF
}

# peak GPU memory (MiB above the level before) while CMD runs
mem_poll_start() {
    [ "$DEVICE" = cpu ] && return
    base_mem=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$work/mem.txt" 2>/dev/null &
    mem_pid=$!
}
mem_poll_stop() {
    [ "$DEVICE" = cpu ] && { echo "-"; return; }
    kill "$mem_pid" 2>/dev/null
    wait "$mem_pid" 2>/dev/null
    awk -v b="$base_mem" 'BEGIN { m = 0 } $1 + 0 > m { m = $1 + 0 } END { print m - b }' "$work/mem.txt"
}

# train img/s from glow-train: the mean images_per_s of the log intervals after
# the first (warm-up); the run is stopped once they are in (no final checkpoint)
train_run() { # CONFIG BATCH PRECISION -> prints "IPS PEAK_MIB"
    local cfg=$1 bs=$2 prec=$3 data=$4 run=$work/run-$(basename "$cfg" .yml)-$3 every=$((STEPS / 3))
    local extra=()
    [ "$SMALL" = 1 ] && extra=(--set model.steps=1 --set model.width=16 --set train.init_batch=8)
    rm -rf "$run"
    mem_poll_start
    "$BUILD/bin/glow-train" -q -c "$cfg" -o "$run" --device "$DEVICE" \
        --set train.batch_size="$bs" --set train.precision="$prec" --steps $((STEPS + every)) \
        --set train.log_every=$every \
        --set train.checkpoint_every=1000000 --set train.val_every=1000000 \
        --set train.ema_decay=0 ${extra[@]+"${extra[@]}"} "$data" >"$logs/train-$(basename "$cfg" .yml)-$prec.log" 2>&1 &
    local pid=$! t0
    t0=$(date +%s)
    while kill -0 $pid 2>/dev/null; do
        [ "$(grep -c images_per_s "$run/log.jsonl" 2>/dev/null)" -ge 3 ] 2>/dev/null && break
        [ $(($(date +%s) - t0)) -ge 45 ] && break
        sleep 0.5
    done
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    local peak ips
    peak=$(mem_poll_stop)
    ips=$(grep images_per_s "$run/log.jsonl" 2>/dev/null | tail -n +2 |
          sed -E 's/.*"images_per_s":([0-9.]+).*/\1/' | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }')
    cp "$run/log.jsonl" "$logs/train-$(basename "$cfg" .yml)-$prec.jsonl" 2>/dev/null
    rm -rf "$run"
    echo "${ips:-} $peak"
}

echo "| config | batch | precision | train img/s (glow-train) | train img/s (model) | eval img/s | peak GPU MiB (glow-train) |" >"$bench"
echo "|---|---|---|---|---|---|---|" >>"$bench"
bench_config() { # CONFIG BATCH SIZE
    local cfg=$1 bs=$2 size=$3 name data ok=0
    name=$(basename "$cfg" .yml)
    data=$work/data-$size.glow
    [ -f "$data" ] || gen_shards "$data" 512 3 "$size" "$size" || return 1
    local bcfg=$cfg
    if [ "$SMALL" = 1 ]; then
        bcfg=$work/$name-small.yml
        sed -E 's/^( *)steps: [0-9]+/\1steps: 1/; s/^( *)width: [0-9]+/\1width: 16/' "$cfg" >"$bcfg"
    fi
    "$BUILD/bench/gpu_bench" "$bcfg" "$bs" --device "$DEVICE" --warmup 3 --iters 10 \
        --precision fp32,tf32,bf16 >"$logs/bench-$name.log" 2>&1 || ok=1
    for prec in fp32 tf32 bf16; do
        local line tr ev r
        r=$(train_run "$cfg" "$bs" "$prec" "$data")
        line=$(grep "precision=$prec " "$logs/bench-$name.log")
        tr=$(sed -nE 's/.*train_ips=([0-9.]+).*/\1/p' <<<"$line")
        ev=$(sed -nE 's/.*eval_ips=([0-9.]+).*/\1/p' <<<"$line")
        echo "| $name | $bs | $prec | ${r% *} | ${tr:-n/a} | ${ev:-n/a} | ${r#* } |" >>"$bench"
        [ -n "${r% *}" ] || { echo "$name $prec: glow-train gave no throughput" >&2; ok=1; }
        [ -n "$ev" ] || { echo "$name $prec: gpu_bench gave no result" >&2; ok=1; }
    done
    return $ok
}
stage bench-cifar10 bench_config configs/cifar10.yml 64 32
stage bench-imagenet64 bench_config configs/glow-64x64-imagenet.yml 32 64

# ---- summary ----
summary=$work/gpu-check.md
{
    echo "# gpu-check ($(date -u '+%Y-%m-%d %H:%M UTC'), $(($(date +%s) - t_start)) s)"
    echo
    [ "$DEVICE" != cpu ] && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/GPU: /'
    echo
    echo "| stage | result | time | note |"
    echo "|---|---|---|---|"
    cat "$stages"
    echo
    echo "Throughput: glow-train on random 8-bit shards, mean of the log intervals after the"
    echo "first $((STEPS / 3)) steps; model: gpu_bench forward+backward+Adam and evaluation forward,"
    echo "10 timed steps after 3 warm-up steps. Peak memory: nvidia-smi, above the idle level."
    echo
    cat "$bench"
    echo
    grep -h "worst relative\|^  [a-z_]* *[0-9.e-]*$\|steps: cpu loss" "$logs"/test_*.log 2>/dev/null | sed 's/^/    /'
    echo
    echo "Result: $([ $failed = 0 ] && echo PASS || echo FAIL)"
} >"$summary"
if [ -n "${OUT:-}" ]; then
    mkdir -p "$OUT/gpu-check-logs"
    cp "$summary" "$OUT/gpu-check.md"
    cp "$logs"/* "$OUT/gpu-check-logs/" 2>/dev/null
fi
cat "$summary"
rm -rf "$work"
exit $failed
