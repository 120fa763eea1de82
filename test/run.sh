#!/usr/bin/env bash
# Runs the suite: every C unit test in $BUILD/test, the reference cases, and the
# Bats tests of each tool, and the CUDA backend on the emulated GPU (test/emu,
# docs/cuda-emulation.md; built by make emu-build and emu-build-asan), the latent
# tools and glow-train included, and the commands of the documentation (doc:
# test/doc/doctest.py, docs/doc-tests.md). Prints each part's result and one
# closing line "N passed, N failed".
# Usage: test/run.sh [unit|ref|layers|bats|doc|emu|emu-asan]...
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export GLOW_BIN="$PWD/$BUILD/bin"
# The tools restart themselves with an OpenMP wait policy (libcommon/tool/
# tool.h: passive, or a short spin on a quiet machine); the unit tests, which
# compute on the CPU backend too, get passive here: on
# shared cores the spinning default makes them many times slower. A policy of the
# caller's wins.
[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] || export OMP_WAIT_POLICY=passive
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(unit ref layers bats doc emu emu-asan)
pass=0 fail=0

count_line() { # "name: N passed, M failed" -> adds to totals
    local line
    line=$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$1" | tail -n 1)
    if [ -n "$line" ]; then
        local p f
        p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line")
        f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
        pass=$((pass + p)); fail=$((fail + f))
    fi
}

# One test program under the emulator: LABEL ENV... -- CMD... (a skip is a failure:
# GLOW_TEST_STRICT=1)
emu_test() {
    local label=$1 envs=() out rc
    shift
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    out=$(env GLOW_TEST_STRICT=1 "${envs[@]}" "$@" 2>&1); rc=$?
    if [ $rc -ne 0 ]; then
        printf '%s\n' "$out" | tail -n 40
        echo "FAIL $label $(basename "$1") (exit $rc)"
        { grep -qE '[0-9]+ passed, [0-9]+ failed' <<<"$out" && ! grep -q ': skipped: ' <<<"$out" &&
            ! grep -qE '[0-9]+ passed, 0 failed' <<<"$(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)"; } ||
            fail=$((fail + 1))
    else
        echo "ok   $label $(grep -E '[0-9]+ passed, [0-9]+ failed' <<<"$out" | tail -n 1)"
    fi
    count_line "$out"
}

for part in "${parts[@]}"; do
    case $part in
    unit)
        for t in "$BUILD"/test/test_*; do
            [ -x "$t" ] || continue
            [ "$(basename "$t")" = test_refcheck ] && continue
            out=$("$t" 2>&1); rc=$?
            last=$(tail -n 1 <<<"$out")
            if [ $rc -ne 0 ]; then
                printf '%s\n' "$out" | tail -n 40
                echo "FAIL $(basename "$t") (exit $rc)"
                # a skip under GLOW_TEST_STRICT=1 exits 1 with "0 failed": still a failure
                { grep -qE '[0-9]+ passed, [0-9]+ failed' <<<"$out" && ! grep -q ': skipped: ' <<<"$out"; } ||
                    fail=$((fail + 1))
            elif grep -q ': skipped: ' <<<"$out"; then
                echo "skip $(grep -m1 ': skipped: ' <<<"$out")"
            else
                echo "ok   $last"
            fi
            count_line "$out"
        done
        ;;
    ref)
        if [ -x "$BUILD/test/test_refcheck" ]; then
            out=$("$BUILD/test/test_refcheck" --device cpu "${GLOW_REF:-../shared/reference}" 2>&1); rc=$?
            printf '%s\n' "$out"
            count_line "$out"
            if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [0-9]+ failed' <<<"$out"; then fail=$((fail + 1)); fi
            # the same cases on the CUDA backend: without a GPU a skip line, counted as
            # neither passed nor failed (a failure under GLOW_TEST_STRICT=1)
            out=$("$BUILD/test/test_refcheck" --device cuda "${GLOW_REF:-../shared/reference}" 2>&1); rc=$?
            printf '%s\n' "$out" | sed -E 's/^refcheck: /refcheck (cuda): /'
            count_line "$out"
            if [ $rc -ne 0 ] && { ! grep -qE '[0-9]+ passed, [0-9]+ failed' <<<"$out" ||
                                  grep -q ': skipped: ' <<<"$out"; }; then fail=$((fail + 1)); fi
        fi
        ;;
    layers)
        # the library's layers and the absence of loops (libcommon/README.md)
        out=$(python3 test/arch/layers.py "$BUILD" 2>&1); rc=$?
        printf '%s\n' "$out" | grep -v '^ok ' | tail -n 40
        count_line "$out"
        if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' <<<"$out"; then fail=$((fail + 1)); fi
        ;;
    bats)
        files=(test/*.bats)
        [ -e "${files[0]}" ] || continue
        out=$(bats --tap "${files[@]}" 2>&1); rc=$?
        printf '%s\n' "$out" | grep -vE '^ok ' | grep -vE '^1\.\.' || true
        p=$(grep -cE '^ok ' <<<"$out"); f=$(grep -cE '^not ok ' <<<"$out")
        echo "bats: $p passed, $f failed"
        pass=$((pass + p)); fail=$((fail + f))
        if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); fi
        ;;
    doc)
        # every shell block of README.md and docs/*.md, the man pages' and the
        # --help examples: run in a copy of test/doc/fixture.sh's small data, or
        # syntax-checked where a declaration next to them marks them not runnable
        out=$(python3 test/doc/doctest.py --build "$BUILD" 2>&1); rc=$?
        printf '%s\n' "$out" | grep -vE '^ok ' | tail -n 60
        count_line "$out"
        if [ $rc -ne 0 ] && ! grep -qE '[0-9]+ passed, [1-9][0-9]* failed' <<<"$out"; then fail=$((fail + 1)); fi
        ;;
    emu|emu-asan)
        # the CUDA tests and reference cases on the emulated GPU: once with an
        # H200's 132 SMs, once with 2 SMs (other grid sizes), a synchronisation
        # after every launch and blocks and threads run last first (races that
        # the forward order hides); emu-asan: the same under ASan and UBSan
        eb=${EMU_BUILD:-build-emu}
        san=()
        if [ "$part" = emu-asan ]; then
            eb=${EMU_ASAN_BUILD:-build-emu-asan}
            san=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
                 "LSAN_OPTIONS=suppressions=$PWD/test/lsan.supp"
                 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
        fi
        if [ ! -x "$eb/test/test_emu" ]; then
            echo "FAIL $part: $eb/test/test_emu is missing (make emu-build / emu-build-asan)"
            fail=$((fail + 1))
            continue
        fi
        for cfg in "GLOW_EMU_SMS=132" "GLOW_EMU_SMS=2 GLOW_CUDA_SYNC=1 GLOW_EMU_ORDER=reverse"; do
            read -r -a cfgv <<<"$cfg"
            label="[$part ${cfg// /, }]"
            for t in test_emu test_emu_nccl test_backend_cuda test_backend_cuda_ops \
                     test_backend_cuda_edge test_cuda_train; do
                emu_test "$label" "${san[@]}" "${cfgv[@]}" -- "$eb/test/$t"
            done
            emu_test "$label" "${san[@]}" "${cfgv[@]}" -- "$eb/test/test_refcheck" --device cuda \
                "${GLOW_REF:-../shared/reference}"
        done
        # the tools of the emulator build on the emulated device: the latent tools'
        # Bats tests (encode -> decode exactness, random | decode == sample, ...),
        # glow-train / glow-sample / glow-bpd against the CPU, and several ranks under
        # mpirun (the NCCL stand-in, test_comm, glow-train on 2 emulated GPUs; plain
        # build only)
        if [ "$part" = emu ]; then
            if [ ! -x "$eb/bin/glow-train" ]; then
                echo "FAIL $part: $eb/bin/glow-train is missing (make emu-build)"
                fail=$((fail + 1))
                continue
            fi
            out=$(BUILD=$eb GLOW_TEST_DEVICE=cuda GLOW_EMU_SMS=132 bats --tap test/latent.bats \
                test/emu/train.bats test/emu/mpi.bats 2>&1); rc=$?
            printf '%s\n' "$out" | grep -vE '^ok ' | grep -vE '^1\.\.' || true
            p=$(grep -cE '^ok ' <<<"$out"); f=$(grep -cE '^not ok ' <<<"$out")
            echo "bats [emu, --device cuda]: $p passed, $f failed"
            pass=$((pass + p)); fail=$((fail + f))
            if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then fail=$((fail + 1)); fi
        fi
        ;;
    *) echo "test/run.sh: unknown part '$part' (unit, ref, layers, bats, doc, emu, emu-asan)" >&2; exit 2 ;;
    esac
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
