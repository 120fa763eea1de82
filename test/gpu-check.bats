#!/usr/bin/env bats
# The logic of the GPU bundle and of the GPU check, without a GPU and without the
# real programs: scripts/gpu-bundle.sh on small programs built here (the
# libraries sorted into lib/ and fallback/, MANIFEST.tsv, the size limit), and
# scripts/gpu-check.sh on fake bundles (the early stop on a missing library, a
# damaged bundle or a too old glibc; the fallback libraries; the summary written
# before and after every stage; the deadline; a cut-off run).
bats_require_minimum_version 1.5.0
load helpers

# lib DIR SONAME: a shared library
lib() {
    echo "int ${2//[^a-z]/_}(void) { return 1; }" >"$TMP/l.c"
    cc -shared -fPIC -Wl,-soname,"$2" -o "$1/$2" "$TMP/l.c"
}

# prog OUT LIB...: a program that needs LIB... (files in $TMP/libs), and libz
prog() {
    local out=$1 l args=()
    shift
    for l in "$@"; do args+=("-l:$l"); done
    echo 'int main(void) { return 0; }' >"$TMP/p.c"
    cc -o "$out" "$TMP/p.c" -Wl,--no-as-needed -L"$TMP/libs" "${args[@]}" -lz
}

# fake_bundle DIR: a bundle by hand (no MANIFEST.tsv) whose programs are scripts
# that succeed, and one real program needing libgcfake.so.1 (in lib/)
fake_bundle() {
    local b=$1
    mkdir -p "$b/bin" "$b/test" "$b/bench" "$b/lib"
    printf 'emu=0\nglibc_min=2.17\ncommit=test\n' >"$b/BUILD-INFO"
    cp "$TMP/libs/libgcfake.so.1" "$b/lib/"
    prog "$b/bin/glow-train" libgcfake.so.1
    printf '#!/bin/sh\necho '\''QUERY device=cpu name="cpu" roundtrip=ok'\''\n' >"$b/bench/gpu_bench"
    chmod +x "$b/bench/gpu_bench"
}

# check ARGS...: scripts/gpu-check.sh on the CPU, results in $TMP/out
check() {
    GPU_CHECK_DEVICE=cpu OUT="$TMP/out" GPU_CHECK_UNPACK="$TMP/unpack" CUDA_HOME="$TMP/nocuda" \
        GPU_CHECK_BENCH=0 "$@" "$ROOT/scripts/gpu-check.sh"
}

setup() {
    TMP="$BATS_TEST_TMPDIR"
    cd "$TMP" || return 1
    mkdir -p libs stage/bin stage/test ref/case1
    lib libs libgcfake.so.1
    echo data >ref/case1/case.safetensors
    echo model >ref/case1/model.safetensors
}

bundle() {
    LD_LIBRARY_PATH="$TMP/libs" GPU_BUNDLE="$TMP/b" GPU_BUNDLE_STAGE="$TMP/stage" \
        GPU_BUNDLE_CACHE="$TMP/cache" REF="$TMP/ref" CUDA_HOME="$TMP/nocuda" "$@" \
        "$ROOT/scripts/gpu-bundle.sh"
}

@test "gpu-bundle: programs, libraries by kind, reference cases, BUILD-INFO, MANIFEST.tsv" {
    prog stage/bin/glow-train libgcfake.so.1
    printf '#!/bin/sh\n' >stage/test/script && chmod +x stage/test/script
    run bundle env GPU_BUNDLE_GZ_MIB=0
    [ "$status" -eq 0 ]
    assert_contains "$output" "b: 8 files"
    assert_contains "$output" "MiB; limit 64 MiB), 1 reference cases"
    [ -x b/bin/glow-train ] && [ -x b/test/script ]
    # not carried: glibc; lib/: compressed above GPU_BUNDLE_GZ_MIB; fallback/: libz
    [ "$(gzip -dc b/lib/libgcfake.so.1.gz | cmp - libs/libgcfake.so.1 && echo same)" = same ]
    [ -f b/fallback/libz.so.1/libz.so.1 ]
    [ ! -e b/lib/libc.so.6 ] && [ ! -e b/fallback/libc.so.6 ]
    [ -f b/ref/case1/case.safetensors ] && [ -f b/ref/case1/model.safetensors ]
    grep -qx 'cases=1' b/BUILD-INFO
    grep -qE '^glibc_min=2\.[0-9]+$' b/BUILD-INFO
    grep -qx 'needs=libgcfake.so.1 lib .*' b/BUILD-INFO
    # every file but the manifest itself, with its size and sha256
    [ "$(head -n 1 b/MANIFEST.tsv)" = "$(printf 'path\tbytes\tsha256')" ]
    [ "$(tail -n +2 b/MANIFEST.tsv | wc -l)" -eq "$(find b -type f ! -name MANIFEST.tsv | wc -l)" ]
    tail -n +2 b/MANIFEST.tsv | while IFS=$'\t' read -r p n h; do
        [ "$(stat -c %s "b/$p")" = "$n" ] && [ "$(sha256sum "b/$p" | cut -d' ' -f1)" = "$h" ] ||
            { echo "bad: $p"; exit 1; }
    done
    [ ! -e b.tmp ] && [ ! -e b.manifest ]
}

@test "gpu-bundle: a program using MPI brings Open MPI: mpirun, its plug-ins, help texts, env.sh" {
    command -v mpicc >/dev/null && command -v ompi_info >/dev/null ||
        skip "no Open MPI here (make deps installs it)"
    echo 'int main(void) { return 0; }' >p.c
    mpicc -o stage/test/test_comm p.c -Wl,--no-as-needed -lmpi
    prog stage/bin/glow-train libgcfake.so.1
    run bundle env GPU_BUNDLE_GZ_MIB=0
    [ "$status" -eq 0 ]
    assert_contains "$output" "gpu-bundle: Open MPI "
    [ -x b/mpi/bin/mpirun ] && [ -f b/mpi/env.sh ]
    # the plug-ins ldd does not show (the shared-memory and TCP transports among them)
    ls b/mpi/lib/openmpi/mca_btl_vader.so b/mpi/lib/openmpi/mca_btl_tcp.so
    ls b/mpi/share/openmpi/help-*.txt >/dev/null
    grep -qE '^mpi=Open MPI [0-9.]+: mpirun, [1-9][0-9]* plug-ins' b/BUILD-INFO
    grep -qE '^needs=libmpi\.so\.[0-9]+ lib ' b/BUILD-INFO
    grep -qE '^needs=libopen-rte\.so\.[0-9]+ lib ' b/BUILD-INFO # mpirun's, not the program's
    # env.sh points Open MPI at the bundle's copies
    (. b/mpi/env.sh && [ "$OPAL_PREFIX" = "$TMP/b/mpi" ] &&
        [ "$OMPI_MCA_mca_base_component_path" = "$TMP/b/mpi/lib/openmpi" ] &&
        [ "$(command -v mpirun)" = "$TMP/b/mpi/bin/mpirun" ])
    # GPU_BUNDLE_MPI=0 leaves it out
    rm -rf b
    run bundle env GPU_BUNDLE_MPI=0
    [ "$status" -eq 0 ]
    [ ! -e b/mpi ]
}

@test "gpu-bundle: over the size limit is an error" {
    prog stage/bin/glow-train libgcfake.so.1
    run --separate-stderr bundle env GPU_BUNDLE_MAX_MIB=0
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "over the 0 MiB that travels to the GPU machine"
    assert_contains "$output" "largest:"
}

@test "gpu-bundle: a library missing here is an error" {
    lib libs libgcgone.so.1
    prog stage/bin/glow-train libgcgone.so.1
    rm libs/libgcgone.so.1
    run --separate-stderr bundle
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "libraries not found on this machine: libgcgone.so.1 (needed by bin/glow-train)"
    [ ! -e b ]
}

@test "gpu-check: a missing library stops it at once, one line, the summary written" {
    fake_bundle "$TMP/b"
    lib libs libgcgone.so.1
    prog b/bin/glow-sample libgcgone.so.1
    rm libs/libgcgone.so.1
    run --separate-stderr check env GPU_BUNDLE="$TMP/b"
    [ "$status" -eq 3 ]
    [ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
    assert_contains "$stderr" "gpu-check: STOPPED: libgcgone.so.1 not found (needed by bin/glow-sample)"
    grep -q '^# gpu-check: STOPPED' out/gpu-check.md
    grep -q '^| 1 | libraries | STOPPED |' out/gpu-check.md
    grep -q '^Result: STOPPED' out/gpu-check.md
    grep -q 'libgcgone.so.1 => not found' out/gpu-check-logs/01-libraries.log
    # the programs' own library was found in the bundle
    grep -q 'libgcfake.so.1 => .*/b/lib/libgcfake.so.1' out/gpu-check-logs/01-libraries.log
}

@test "gpu-check: a bundle that does not match its MANIFEST.tsv stops it" {
    prog stage/bin/glow-train libgcfake.so.1
    bundle
    mv b/fallback/libz.so.1/libz.so.1 libz.keep
    run --separate-stderr check env GPU_BUNDLE="$TMP/b"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "STOPPED: the bundle is incomplete or damaged (fallback/libz.so.1/libz.so.1 missing)"
    mv libz.keep b/fallback/libz.so.1/libz.so.1
    echo x >>b/lib/libgcfake.so.1
    run --separate-stderr check env GPU_BUNDLE="$TMP/b"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "lib/libgcfake.so.1 differs"
}

@test "gpu-check: a too old glibc stops it (BUILD-INFO, and ldd's version not found)" {
    fake_bundle "$TMP/b"
    sed -i 's/^glibc_min=.*/glibc_min=9.99/' b/BUILD-INFO
    run --separate-stderr check env GPU_BUNDLE="$TMP/b"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "older than the 9.99 the bundle needs"
    sed -i 's/^glibc_min=.*/glibc_min=2.17/' b/BUILD-INFO
    cat >fake-ldd <<'EOF'
#!/bin/sh
for f; do :; done
echo "$f: /lib/x86_64-linux-gnu/libc.so.6: version \`GLIBC_2.99' not found (required by $f)"
EOF
    chmod +x fake-ldd
    run --separate-stderr check env GPU_BUNDLE="$TMP/b" GPU_CHECK_LDD="$TMP/fake-ldd"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "is too old: version GLIBC_2.99 not found (required by bin/glow-train); build the bundle on an older"
}

@test "gpu-check: a library only in the bundle's fallback/ is taken from there" {
    fake_bundle "$TMP/b"
    lib libs libgcfb.so.1
    prog b/bin/glow-sample libgcfb.so.1
    mkdir -p b/fallback/libgcfb.so.1
    mv libs/libgcfb.so.1 b/fallback/libgcfb.so.1/
    run check env GPU_BUNDLE="$TMP/b" GPU_CHECK_ONLY=none
    [ "$status" -eq 0 ]
    grep -q 'fallback: libgcfb.so.1 from the bundle' out/gpu-check-logs/01-libraries.log
    grep -q '^Result: PASS' out/gpu-check.md
    grep -q '^| 2 | device | pass |' out/gpu-check.md
    grep -q "b/fallback/libgcfb.so.1" out/gpu-check-env.sh
}

@test "gpu-check: the summary before and after every stage, the deadline, a timeout" {
    fake_bundle "$TMP/b"
    # the unit test keeps the summary it sees; ops runs past the deadline
    printf '#!/bin/sh\ncp "$OUT_SNAP/gpu-check.md" "$OUT_SNAP/during-unit.md"\necho "backend_cuda: 3 passed, 0 failed"\n' >b/test/test_backend_cuda
    printf '#!/bin/sh\necho started\nsleep 30\n' >b/test/test_backend_cuda_ops
    chmod +x b/test/*
    SECONDS=0
    run --separate-stderr check env GPU_BUNDLE="$TMP/b" OUT_SNAP="$TMP/out" GPU_CHECK_DEADLINE=5 \
        GPU_CHECK_ONLY=unit,ops,refcheck
    [ "$status" -eq 1 ]
    [ "$SECONDS" -lt 20 ]
    grep -q '^Running: unit (log gpu-check-logs/03-unit.log)' out/during-unit.md
    grep -q '^| 2 | device | pass |' out/during-unit.md
    grep -q '^| 3 | unit | pass | .* | backend_cuda: 3 passed, 0 failed' out/gpu-check.md
    grep -q '^| 4 | ops | TIMEOUT' out/gpu-check.md
    grep -q '^| 5 | refcheck | NOT RUN (deadline)' out/gpu-check.md
    grep -q '^| 6 | cuda-train | skip | - | not in GPU_CHECK_ONLY' out/gpu-check.md
    grep -q '^| 13 | bench-cifar10 | skip | - | GPU_CHECK_BENCH=0' out/gpu-check.md
    grep -q '^Failed: ops refcheck' out/gpu-check.md
    grep -q '^started$' out/gpu-check-logs/04-ops.log
}

@test "gpu-check: a run cut off by a signal says where" {
    fake_bundle "$TMP/b"
    printf '#!/bin/sh\necho started\nsleep 30\n' >b/test/test_backend_cuda
    chmod +x b/test/*
    check env GPU_BUNDLE="$TMP/b" GPU_CHECK_ONLY=unit >/dev/null 2>&1 &
    local pid=$! i
    for i in $(seq 100); do
        grep -q '^started' out/gpu-check-logs/03-unit.log 2>/dev/null && break
        sleep 0.1
    done
    # $pid: the script itself when bash ran the function's one command in place,
    # else its parent
    local target=$pid
    grep -q gpu-check.sh "/proc/$pid/cmdline" || target=$(pgrep -P "$pid" -f gpu-check.sh)
    kill -TERM "$target"
    wait "$pid" || true
    grep -q '^# gpu-check: CUT OFF' out/gpu-check.md
    grep -q 'during: unit (log gpu-check-logs/03-unit.log)' out/gpu-check.md
}

@test "gpu-check: a library that cannot be loaded stops it (ldd's error while loading)" {
    fake_bundle "$TMP/b"
    cat >fake-ldd <<'EOS'
#!/bin/sh
for f; do :; done
echo "$f: error while loading shared libraries: /lib/x86_64-linux-gnu/libyaml-0.so.2: file too short"
EOS
    chmod +x fake-ldd
    run --separate-stderr check env GPU_BUNDLE="$TMP/b" GPU_CHECK_LDD="$TMP/fake-ldd"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "STOPPED: /lib/x86_64-linux-gnu/libyaml-0.so.2 cannot be loaded: file too short (needed by bin/glow-train)"
}

@test "gpu-check: a symbol missing from a library here stops it (ldd -r)" {
    fake_bundle "$TMP/b"
    cat >fake-ldd <<'EOS'
#!/bin/sh
[ "$1" = -r ] || exit 1
echo "undefined symbol: cudnnNewerFunction	($2)"
EOS
    chmod +x fake-ldd
    run --separate-stderr check env GPU_BUNDLE="$TMP/b" GPU_CHECK_LDD="$TMP/fake-ldd"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "STOPPED: undefined symbol cudnnNewerFunction in bin/glow-train: a library here is older than the one the bundle was built against"
}

@test "gpu-check: cuDNN without the libraries it loads at run time stops it" {
    fake_bundle "$TMP/b"
    mkdir -p wheel
    cp libs/libgcfake.so.1 wheel/libcudnn.so.9
    cp libs/libgcfake.so.1 wheel/libcudnn_graph.so.9
    cat >fake-ldd <<'EOS'
#!/bin/sh
echo "	libcudnn.so.9 => $WHEEL/libcudnn.so.9 (0x00007f0000000000)"
EOS
    chmod +x fake-ldd
    run --separate-stderr check env GPU_BUNDLE="$TMP/b" GPU_CHECK_LDD="$TMP/fake-ldd" WHEEL="$TMP/wheel"
    [ "$status" -eq 3 ]
    assert_contains "$stderr" "STOPPED: libcudnn_ops.so.9 not found (needed by libcudnn.so.9(dlopen,$TMP/wheel)); 2 more missing: libcudnn_cnn.so.9 libcudnn_engines_precompiled.so.9; that cuDNN is incomplete"
}

@test "gpu-check: nccl-2rank is skipped, with the count, where fewer than 2 GPUs are visible" {
    fake_bundle "$TMP/b"
    # a driver with one GPU, or two (nvidia-smi -L); the device query as on an H200
    mkdir -p smi
    cat >smi/nvidia-smi <<'EOS'
#!/bin/sh
if [ "$1" = -L ]; then
    i=0
    while [ $i -lt "${FAKE_GPUS:-1}" ]; do echo "GPU $i: NVIDIA H200 (UUID: GPU-$i)"; i=$((i + 1)); done
else
    echo "name, driver_version, memory.total [MiB], memory.used [MiB], compute_cap"
    echo "NVIDIA H200, 580.00, 143771 MiB, 0 MiB, 9.0"
fi
EOS
    chmod +x smi/nvidia-smi
    printf '#!/bin/sh\necho "mpi 1 nccl ${FAKE_NCCL:-1}"\n' >b/test/test_comm
    chmod +x b/test/test_comm
    local gpu=(GPU_CHECK_DEVICE=cuda PATH="$TMP/smi:$PATH" GPU_CHECK_ONLY=nccl-2rank)
    run check env -u CUDA_VISIBLE_DEVICES GPU_BUNDLE="$TMP/b" "${gpu[@]}"
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: 1 GPU visible: NCCL needs one per rank and refuses two ranks on one GPU (mpi-2rank shares it over MPI)' out/gpu-check.md
    # CUDA_VISIBLE_DEVICES wins over the driver's list
    run check env GPU_BUNDLE="$TMP/b" "${gpu[@]}" FAKE_GPUS=4 CUDA_VISIBLE_DEVICES=3
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: 1 GPU visible' out/gpu-check.md
    run check env GPU_BUNDLE="$TMP/b" "${gpu[@]}" FAKE_GPUS=4 CUDA_VISIBLE_DEVICES=
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: 0 GPU visible' out/gpu-check.md
    # two GPUs: past the count, to the next reason (programs built without NCCL)
    run check env -u CUDA_VISIBLE_DEVICES GPU_BUNDLE="$TMP/b" "${gpu[@]}" FAKE_GPUS=2 FAKE_NCCL=0
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: the bundle.s programs were built without NCCL' out/gpu-check.md
    # the emulator: GLOW_EMU_DEVICES, as its programs count
    sed -i 's/^emu=0/emu=1/' b/BUILD-INFO
    run check env -u CUDA_VISIBLE_DEVICES GPU_BUNDLE="$TMP/b" "${gpu[@]}" FAKE_GPUS=2 GLOW_EMU_DEVICES=1
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: 1 GPU visible (GLOW_EMU_DEVICES)' out/gpu-check.md
    # the cpu rehearsal says why
    run check env GPU_BUNDLE="$TMP/b" GPU_CHECK_ONLY=nccl-2rank
    [ "$status" -eq 0 ]
    grep -q '^| 10 | nccl-2rank | skip | .* | skipped: cpu rehearsal (NCCL needs a GPU)' out/gpu-check.md
}
