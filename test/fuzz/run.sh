#!/usr/bin/env bash
# Runs fuzz harnesses (make fuzz-build first): each for SECONDS from its seed
# corpus test/fuzz/corpus/NAME, new finds kept in a scratch folder (the committed
# corpus is not changed), one libFuzzer process (-jobs=1), ASan and UBSan on.
# Prints one line per harness "fuzz NAME: N runs in S s, 0 crashes" and the
# closing "N passed, N failed"; a crash leaves its input in $FUZZ_OUT (default
# build-fuzz/crashes) and fails.
# Usage: test/fuzz/run.sh SECONDS NAME...     (RUNS=N: stop after N runs instead)
set -u
cd "$(dirname "$0")/../.."
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
OUT=${FUZZ_OUT:-$FUZZ_BUILD/crashes}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
case $FUZZ_BUILD in /*) ;; *) FUZZ_BUILD=$PWD/$FUZZ_BUILD ;; esac
CORPUS=$PWD/test/fuzz/corpus
secs=${1:?usage: test/fuzz/run.sh SECONDS NAME...}
shift
pass=0 fail=0
for name in "$@"; do
    bin="$FUZZ_BUILD/fuzz_$name"
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: $bin missing (make fuzz-build)"
        fail=$((fail + 1))
        continue
    fi
    scratch=$(mktemp -d)
    mkdir "$scratch/new"
    limit=(-max_total_time="$secs")
    [ -n "${RUNS:-}" ] && limit=(-runs="$RUNS")
    log="$OUT/$name.log"
    t0=$SECONDS
    # -jobs=1: one worker process, whose log (fuzz-0.log) goes to the scratch
    # folder; leaks are checked by make check-asan, here the budget is what matters
    (cd "$scratch" && ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        "$bin" "${limit[@]}" -jobs=1 -rss_limit_mb=2048 -timeout=20 \
        -max_len=262144 -print_final_stats=1 -artifact_prefix="$OUT/$name-" \
        new "$CORPUS/$name") >"$log" 2>&1
    rc=$?
    took=$((SECONDS - t0))
    cat "$scratch"/fuzz-*.log >>"$log" 2>/dev/null
    grep -q 'exited with exit code [1-9]\|ERROR: libFuzzer\|ERROR: AddressSanitizer\|runtime error' \
        "$log" && rc=1
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 |
           grep -oE '[0-9]+$')
    rm -rf "$scratch"
    if [ $rc -eq 0 ]; then
        echo "fuzz $name: ${runs:-?} runs in $took s, 0 crashes"
        pass=$((pass + 1))
    else
        echo "fuzz $name: FAILED (exit $rc) after ${runs:-?} runs; see $log:"
        grep -E 'ERROR|SUMMARY|==[0-9]+==|runtime error' "$log" | head -n 8
        ls "$OUT/$name-"* 2>/dev/null | head -n 3
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
