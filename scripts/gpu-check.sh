#!/usr/bin/env bash
# The checks of the CUDA backend on a GPU machine (docs/gpu-check.md,
# ../shared/gpu.md), from the bundle that `make gpu-bundle` made elsewhere:
# nothing is compiled here. Stages, cheapest and most telling first:
#   libraries     unpacks the bundle's compressed libraries, checks the bundle
#                 against its MANIFEST.tsv, finds cuDNN, cuBLAS and NCCL (Python
#                 wheels, CUDA_HOME), runs ldd on every program; a missing library
#                 or a too old glibc stops the check at once (exit 3)
#   device        nvidia-smi and gpu_bench --query (driver, runtime, cuDNN, cuBLAS,
#                 a round trip through GPU memory); no GPU stops the check (exit 3)
#   unit, ops     test_backend_cuda, test_backend_cuda_ops (GPU against CPU)
#   refcheck      the reference cases on the device
#   cuda-train    test_cuda_train: 50 steps on both backends, losses compared
#   train-compare glow-train configs/tiny.yml for 50 steps on the CPU and on the
#                 device, losses compared; glow-sample and glow-bpd on the device
#   memcheck      compute-sanitizer --tool memcheck on a few training steps of the
#                 tiny config and on glow-sample
#   nccl-1rank    glow-train on one rank with GLOW_COMM=nccl (NCCL's code on the
#                 GPU): the plain run's bits; test_comm --device: NCCL of one rank
#   nccl-2rank    mpirun -np 2 glow-train with GLOW_COMM=nccl, one GPU per rank,
#                 twice: the same bits, and within 1e-5 of one rank with the same
#                 global batch; skipped, saying so, where fewer than 2 GPUs are
#                 visible (CUDA_VISIBLE_DEVICES, nvidia-smi -L; GLOW_EMU_DEVICES)
#   mpi-2rank     glow-train on two ranks sharing the first GPU over the host-staged MPI
#                 communicator (mpirun -np 2, GLOW_COMM=mpi), twice: the same bits,
#                 and within 1e-5 of one rank with the same global batch
#   mpi-comm      mpirun -np 2 test_comm (the communicators; --device: staged
#                 through the GPU, NCCL refusing the shared GPU) and comm_bench
#   bench-*       throughput (gpu_bench and glow-train) in fp32, tf32 and bf16
# The tests run with GLOW_TEST_STRICT=1 (a skip is a failure) and GLOW_CUDA_SYNC=1
# (every kernel launch checked). Every stage writes its log to
# $OUT/gpu-check-logs/NN-STAGE.log as it runs, and $OUT/gpu-check.md (the
# summary) is rewritten before and after every stage, so a run cut off by its
# time limit still tells what it did and where it stopped.
#
# Exit status: 0 every stage passed (or was skipped for a stated reason), 1 a stage
# failed, timed out or was not reached by the deadline, 3 stopped early (a
# library missing, the bundle damaged, no GPU).
#
# Environment:
#   OUT                  results folder (default out/gpu-check)
#   GPU_BUNDLE           the bundle (default build/gpu-bundle); without one the
#                        programs of BUILD (default build) are used
#   GPU_CHECK_DEVICE     cuda (default), cuda:N, or cpu: the same stages against the
#                        CPU backend, a rehearsal on a machine without a GPU
#   GPU_CHECK_DEADLINE   seconds for everything up to the benchmark (default 240)
#   GPU_CHECK_TOTAL      seconds in all; the benchmark runs in what is left
#                        (default 330)
#   GPU_CHECK_BENCH      auto (default: when at least 60 s are left, and not on an
#                        emulated device), 1 (always,
#                        with at least GPU_CHECK_BENCH_S, default 240 s), 0 (never)
#   GPU_CHECK_ONLY       comma-separated stages to run (libraries and device always)
#   GPU_CHECK_SANITIZE   compute-sanitizer tools (default memcheck)
#   GPU_CHECK_TRAIN_TOL  relative loss tolerance of train-compare (default 1e-2)
#   GPU_CHECK_LIBDIRS    extra library folders, searched before the wheels
#   GPU_CHECK_SMALL      1: the benchmark on shrunk models (default 1 on cpu)
#   GPU_CHECK_STEPS      timed glow-train steps in the benchmark (default 30)
#   GPU_CHECK_LDD        the ldd to use (tests give a fake one)
#   GPU_CHECK_MPIRUN     the mpirun of the MPI stages (default the bundle's
#                        mpi/bin/mpirun with mpi/env.sh, else PATH's)
#   GPU_CHECK_DP_STEPS   glow-train steps of the data-parallel stages (default 20)
#   REF                  reference cases (default the bundle's ref/, else
#                        ../shared/reference)
set -u
cd "$(dirname "$0")/.." || exit 3
ROOT=$PWD
# the tests' CPU side waits passively, as the tools do (libcommon/tool/tool.h),
# and the tools then need not restart themselves for it (under compute-sanitizer too)
[ -n "${OMP_WAIT_POLICY:-}${GOMP_SPINCOUNT:-}" ] || export OMP_WAIT_POLICY=passive
DEVICE=${GPU_CHECK_DEVICE:-cuda}
DEADLINE=${GPU_CHECK_DEADLINE:-240}
TOTAL=${GPU_CHECK_TOTAL:-330}
BENCH=${GPU_CHECK_BENCH:-auto}
BENCH_S=${GPU_CHECK_BENCH_S:-240}
BENCH_MIN=${GPU_CHECK_BENCH_MIN:-60}
ONLY=${GPU_CHECK_ONLY:-}
SANITIZE=${GPU_CHECK_SANITIZE:-memcheck}
TRAIN_TOL=${GPU_CHECK_TRAIN_TOL:-1e-2}
SMALL=${GPU_CHECK_SMALL:-$([ "$DEVICE" = cpu ] && echo 1 || echo 0)}
STEPS=${GPU_CHECK_STEPS:-30}
# the CPU backend computes in fp32 only
PRECS=${GPU_CHECK_PRECISIONS:-$([ "$DEVICE" = cpu ] && echo fp32 || echo fp32,tf32,bf16)}
LDD=${GPU_CHECK_LDD:-ldd}
BUILD=${BUILD:-build}
BUNDLE=${GPU_BUNDLE:-$BUILD/gpu-bundle}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT" || { echo "gpu-check: STOPPED: cannot create OUT=$OUT" >&2; exit 3; }
OUT=$(cd "$OUT" && pwd)
LOGS=$OUT/gpu-check-logs
SUMMARY=$OUT/gpu-check.md
mkdir -p "$LOGS" && rm -f "$LOGS"/*.log
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || exit 3
START_UTC=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
SECONDS=0
DEADLINE_END=$DEADLINE
TOTAL_END=$TOTAL
have_timeout=$(command -v timeout >/dev/null && echo 1 || echo 0)

# ---- the record of the stages and the summary ----
S_NAME=() S_RES=() S_TIME=() S_NOTE=()
failed=0
STATE=RUNNING
STATUS="starting"
DEVICE_DESC="-" BUNDLE_DESC="-" LIB_DESC="-"
STAGE_PID=""

write_summary() {
    local i tmpf=$SUMMARY.tmp.$BASHPID
    {
        echo "# gpu-check: $STATE"
        echo
        echo "$STATUS"
        echo
        echo "- started $START_UTC on $(uname -n); ${SECONDS} s so far; limits: ${DEADLINE} s for the tests, ${TOTAL} s in all; benchmark: $BENCH"
        echo "- device: $DEVICE_DESC"
        echo "- bundle: $BUNDLE_DESC"
        echo "- libraries: $LIB_DESC"
        echo
        echo "| # | stage | result | time | note |"
        echo "|---|---|---|---|---|"
        for i in "${!S_NAME[@]}"; do
            echo "| $((i + 1)) | ${S_NAME[$i]} | ${S_RES[$i]} | ${S_TIME[$i]} | ${S_NOTE[$i]} |"
        done
        if [ -s "$work/numbers" ]; then
            echo
            echo "## Numbers"
            echo
            sed 's/^/    /' "$work/numbers"
        fi
        if [ -s "$work/bench.rows" ]; then
            echo
            echo "## Throughput"
            echo
            echo "glow-train on random 8-bit shards, the mean of its log intervals after the first;"
            echo "model: gpu_bench forward+backward+Adam and evaluation forward, 10 timed steps after"
            echo "3 warm-up steps. Peak memory: nvidia-smi, above the idle level.$([ "$SMALL" = 1 ] && echo " Shrunk models (GPU_CHECK_SMALL=1).")"
            echo
            echo "| config | batch | precision | train img/s (glow-train) | train img/s (model) | eval img/s | peak GPU MiB (glow-train) |"
            echo "|---|---|---|---|---|---|---|"
            cat "$work/bench.rows"
        fi
        echo
        echo "Logs: gpu-check-logs/ (one per stage, written as it ran). To run the programs by hand"
        echo "on this machine: source gpu-check-env.sh."
        echo
        echo "Result: $STATE"
    } >"$tmpf" && mv -f "$tmpf" "$SUMMARY"
}

record() { # NAME RESULT TIME NOTE
    S_NAME+=("$1") S_RES+=("$2") S_TIME+=("$3") S_NOTE+=("$(printf '%s' "$4" | tr '|\n' '/ ' | cut -c1-160)")
}

finish() { # STATE EXIT
    STATE=$1
    case $1 in
    PASS) STATUS="All ${#S_NAME[@]} stages passed or were skipped for the reason given, in ${SECONDS} s." ;;
    FAIL) STATUS="Failed: $(for i in "${!S_RES[@]}"; do case ${S_RES[$i]} in FAIL* | TIMEOUT* | NOT\ RUN*) printf '%s ' "${S_NAME[$i]}" ;; esac; done)(${SECONDS} s)." ;;
    esac
    write_summary
    rm -rf "$work"
    exit "$2"
}

# stop REASON: one clear line, the summary, exit 3
stop() {
    STATE=STOPPED
    STATUS="Stopped: $1"
    write_summary
    echo "gpu-check: STOPPED: $1 (summary: $SUMMARY)" >&2
    rm -rf "$work"
    exit 3
}

on_signal() {
    if [ -n "$STAGE_PID" ]; then
        pkill -TERM -P "$STAGE_PID" 2>/dev/null
        kill -TERM "$STAGE_PID" 2>/dev/null
    fi
    STATE="CUT OFF"
    STATUS="Cut off by a signal after ${SECONDS} s, during: ${CURRENT:-between stages}."
    write_summary
    echo "gpu-check: cut off during ${CURRENT:-between stages} (summary: $SUMMARY)" >&2
    rm -rf "$work"
    exit 1
}
trap on_signal TERM INT HUP

note() { echo "$*" >>"$work/note"; }
number() { echo "$*" >>"$work/numbers"; }

# tmo CMD...: CMD under timeout, with what is left of the current stage
tmo() {
    local left=$((STAGE_END - SECONDS))
    [ "$left" -ge 1 ] || left=1
    if [ "$have_timeout" = 1 ]; then
        timeout -k 5 "$left" "$@"
    else
        "$@"
    fi
}

selected() { [ -z "$ONLY" ] || [ "$1" = device ] || [[ ",$ONLY," == *",$1,"* ]]; }

# stage NAME CAP END CMD...: runs CMD (a command, or a function that runs its
# commands with tmo) with its output in the stage's log, for at most CAP seconds
# and not past END (seconds since the start). Return: CMD's status; 0 when
# skipped for a reason (GPU_CHECK_ONLY, or 77 from CMD); 124 past the deadline.
stage() {
    local name=$1 cap=$2 end=$3 t0=$SECONDS rc res log left noteline
    shift 3
    if ! selected "$name"; then
        record "$name" skip "-" "not in GPU_CHECK_ONLY"
        write_summary
        return 0
    fi
    left=$((end - SECONDS))
    if [ "$left" -lt 3 ]; then
        record "$name" "NOT RUN (deadline)" "-" "the ${DEADLINE} s deadline had passed (GPU_CHECK_DEADLINE)"
        failed=1
        write_summary
        echo "gpu-check: $name: not run (deadline)" >&2
        return 124
    fi
    [ "$cap" -le "$left" ] || cap=$left
    STAGE_END=$((SECONDS + cap))
    log=$LOGS/$(printf '%02d' $((${#S_NAME[@]} + 1)))-$name.log
    CURRENT="$name (log ${log#"$OUT"/})"
    STATUS="Running: $CURRENT, since ${SECONDS} s, for at most $cap s."
    write_summary
    : >"$work/note"
    [ "$(type -t "$1")" = function ] || set -- tmo "$@"
    echo "\$ $*" >"$log"
    "$@" >>"$log" 2>&1 </dev/null &
    STAGE_PID=$!
    wait "$STAGE_PID"
    rc=$?
    STAGE_PID=""
    CURRENT=""
    noteline=$(tail -n 1 "$work/note")
    case $rc in
    0)
        if grep -q ': skipped: ' "$log"; then
            res=skip
            [ -n "$noteline" ] || noteline=$(grep -m1 ': skipped: ' "$log")
        else
            res=pass
            [ -n "$noteline" ] || noteline=$(grep -E '[0-9]+ passed, [0-9]+ failed|QUERY ' "$log" | tail -n 1)
        fi
        ;;
    77) res=skip ;;
    124 | 137)
        res="TIMEOUT (${cap} s)"
        failed=1
        ;;
    *)
        res="FAIL (exit $rc)"
        failed=1
        ;;
    esac
    if [ "$res" != pass ] && [ "$res" != skip ] && [ -z "$noteline" ]; then
        noteline=$(grep -m1 -E 'check failed|FAIL|[Ee]rror|not found|cannot|skipped:' "$log")
        [ -n "$noteline" ] || noteline=$(grep -v '^\$ ' "$log" | tail -n 1)
    fi
    record "$name" "$res" "$((SECONDS - t0)) s" "$noteline"
    write_summary
    if [ "$res" = pass ] || [ "$res" = skip ]; then
        echo "gpu-check: $name: $res" >&2
        return 0
    fi
    if [ "${QUIET_FAIL:-0}" != 1 ]; then
        echo "gpu-check: $name: $res; last lines of ${log#"$OUT"/}:" >&2
        tail -n 15 "$log" >&2
    fi
    return "$rc"
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# ---- 1. libraries ----
# the programs: the bundle's, else the build folder's
if [ -f "$BUNDLE/BUILD-INFO" ]; then
    B=$BUNDLE
    info() { sed -n "s/^$1=//p" "$B/BUILD-INFO" | head -n 1; }
    EMU=$(info emu)
    BUNDLE_DESC="$B (commit $(info commit), built $(info built); glibc >= $(info glibc_min)$([ "$EMU" = 1 ] && echo "; built against the CUDA emulator"))"
else
    B=$BUILD
    info() { :; }
    EMU=0
    BUNDLE_DESC="none: the programs of $B (make gpu-bundle makes one)"
fi
[ -d "$B" ] && B=$(cd "$B" && pwd)
if [ -z "${REF:-}" ]; then
    for REF in "$B/ref" ../shared/reference shared/reference; do
        [ -d "$REF" ] && break
    done
fi
PROGS=()
for f in "$B"/bin/* "$B"/test/* "$B"/bench/* "$B"/mpi/bin/*; do
    [ -f "$f" ] && [ -x "$f" ] && PROGS+=("$f")
done
# Open MPI's plug-ins from the bundle (dlopen()ed: ldd of mpirun does not show them)
PLUGINS=()
for f in "$B"/mpi/lib/*/*.so; do
    [ -f "$f" ] && PLUGINS+=("$f")
done

# the library folders, in the order searched
wheel_dirs() {
    command -v python3 >/dev/null || return 0
    local p
    python3 -c 'import nvidia, sys; print("\n".join(list(nvidia.__path__)))' 2>/dev/null |
        while IFS= read -r p; do
            [ -d "$p" ] && find "$p" -maxdepth 4 -name 'lib*.so*' -printf '%h\n' 2>/dev/null
        done | sort -u
}

libraries() {
    local f line n=0 bad=() dirs=() d unpack seen=":" s
    # the bundle against its manifest: a partial carry shows here
    if [ -f "$B/MANIFEST.tsv" ]; then
        while IFS=$'\t' read -r path bytes sum; do
            [ "$path" = path ] && continue
            n=$((n + 1))
            if [ ! -f "$B/$path" ]; then
                bad+=("$path missing")
            elif [ "$(stat -c %s "$B/$path")" != "$bytes" ] ||
                [ "$(sha256sum "$B/$path" | cut -d' ' -f1)" != "$sum" ]; then
                bad+=("$path differs")
            fi
        done <"$B/MANIFEST.tsv"
        echo "bundle: $n files checked against MANIFEST.tsv, ${#bad[@]} bad"
        if [ ${#bad[@]} -gt 0 ]; then
            printf '  %s\n' "${bad[@]}"
            echo "STOP the bundle is incomplete or damaged (${bad[0]}$([ ${#bad[@]} -gt 1 ] && echo ", $((${#bad[@]} - 1)) more")): make gpu-bundle and carry $BUNDLE whole"
            return 3
        fi
    fi
    [ ${#PROGS[@]} -gt 0 ] ||
        { echo "STOP no programs: neither a bundle in $BUNDLE (make gpu-bundle, then carry it) nor a build in $BUILD"; return 3; }
    # the machine's glibc against the one the bundle was built for
    local have need
    have=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/glibc //')
    need=$(info glibc_min)
    echo "glibc: this machine $have, the bundle needs ${need:-?}"
    if [ -n "$have" ] && [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$have" "$need" | sort -V | head -n 1)" != "$need" ]; then
        echo "STOP this machine's glibc $have is older than the $need the bundle needs (built on glibc $(info builder_glibc)): build the bundle on an older distribution"
        return 3
    fi
    # the host code is built for x86-64-v3 (Makefile OPT): AVX2, FMA, BMI2
    local flag
    for flag in avx2 fma bmi2; do
        grep -qw "$flag" /proc/cpuinfo 2>/dev/null ||
            { echo "STOP this CPU lacks $flag (x86-64-v3), which the bundle's programs are built for: rebuild with OPT=-O2"; return 3; }
    done
    # the compressed libraries, unpacked outside the bundle (it stays as carried)
    unpack=${GPU_CHECK_UNPACK:-${TMPDIR:-/tmp}/gpu-check-lib-$(id -u)}
    mkdir -p "$unpack"
    for f in "$B"/lib/*.gz; do
        [ -f "$f" ] || continue
        s=${f##*/}
        s=${s%.gz}
        if command -v gzip >/dev/null; then
            gzip -dc "$f" >"$unpack/$s.tmp"
        else
            python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$f" "$unpack/$s.tmp"
        fi && mv -f "$unpack/$s.tmp" "$unpack/$s" || { echo "STOP cannot unpack $f into $unpack"; return 3; }
        echo "unpacked: ${f#"$B"/} -> $unpack/$s"
    done
    # the folders searched: unpacked and bundle libraries, GPU_CHECK_LIBDIRS, the
    # Python wheels (cuDNN, cuBLAS, NCCL, the runtime), the CUDA toolkit's
    local IFS=:
    for d in $unpack "$B/lib" ${GPU_CHECK_LIBDIRS:-}; do dirs+=("$d"); done
    unset IFS
    while IFS= read -r d; do dirs+=("$d"); done < <(wheel_dirs)
    for d in "$CUDA_HOME/lib64" "$CUDA_HOME/targets/x86_64-linux/lib" /usr/local/cuda/lib64; do
        [ -d "$d" ] && dirs+=("$d")
    done
    local path=""
    for d in "${dirs[@]}"; do
        [ -d "$d" ] || continue
        d=$(cd "$d" && pwd -P)
        case $seen in *":$d:"*) continue ;; esac
        seen="$seen$d:"
        path="$path${path:+:}$d"
    done
    BASE_PATH=$path
    FALLBACK=""
    # ldd every program; a library missing that the bundle has in fallback/ (or
    # one too old: "version ... not found") is taken from there, then again; CUDA
    # libraries missing with no wheel found by import: a search for the files
    local round missing versions fb found searched=0
    for round in 1 2 3 4; do
        export LD_LIBRARY_PATH="${FALLBACK:+$FALLBACK:}$BASE_PATH${ORIG_LD_LIBRARY_PATH:+:$ORIG_LD_LIBRARY_PATH}"
        : >"$work/ldd"
        scan_libs "${PROGS[@]}"
        # the libraries cuDNN loads when it starts (dlopen: ldd does not list them)
        found=$(awk '$1 == "found" && $2 == "libcudnn.so.9" { print $3; exit }' "$work/ldd")
        if [ -n "$found" ]; then
            d=$(dirname "$found")
            for s in libcudnn_graph.so.9 libcudnn_ops.so.9 libcudnn_cnn.so.9 libcudnn_engines_precompiled.so.9; do
                [ -e "$d/$s" ] || echo "missing $s libcudnn.so.9(dlopen,$d)" >>"$work/ldd"
            done
            scan_libs "$d"/libcudnn_*.so.9
        fi
        missing=$(awk '$1 == "missing" || $1 == "broken" { print $2 }' "$work/ldd" | sort -u)
        versions=$(awk '$1 == "version" { print $3 }' "$work/ldd" | sort -u)
        fb=0
        if [ $searched = 0 ] && grep -qE '^lib(cudnn|cublas|cudart|nccl)' <<<"$missing"; then
            searched=1
            echo "searching for the CUDA libraries (no Python wheel had them): the Python folders, then /"
            while IFS= read -r d; do
                [[ ":$BASE_PATH:" == *":$d:"* ]] && continue
                BASE_PATH="$BASE_PATH:$d"
                echo "found: $d"
                fb=1
            done < <(find_cuda_files)
        fi
        for s in $missing $versions; do
            s=${s##*/}
            if [ -d "$B/fallback/$s" ] && [[ ":$FALLBACK:" != *":$B/fallback/$s:"* ]]; then
                FALLBACK="$FALLBACK${FALLBACK:+:}$B/fallback/$s"
                echo "fallback: $s from the bundle ($B/fallback/$s)"
                fb=1
            fi
        done
        [ $fb = 1 ] || break
    done
    # Open MPI's plug-ins, once the path is settled: their libraries must load
    if [ ${#PLUGINS[@]} -gt 0 ]; then
        scan_plugins "${PLUGINS[@]}"
        missing=$(awk '$1 == "missing" || $1 == "broken" { print $2 }' "$work/ldd" | sort -u)
        versions=$(awk '$1 == "version" { print $3 }' "$work/ldd" | sort -u)
    fi
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo
    cat "$work/ldd.full"
    {
        echo "# the library path gpu-check used (source this to run the bundle's programs by hand)"
        echo "export LD_LIBRARY_PATH='$LD_LIBRARY_PATH'"
        echo "export PATH='$B/bin':\"\$PATH\""
        [ -f "$B/mpi/env.sh" ] && echo ". '$B/mpi/env.sh'  # the bundle's Open MPI (mpirun)"
    } >"$OUT/gpu-check-env.sh"
    if [ -n "$missing" ] || [ -n "$versions" ] || grep -q '^undefined ' "$work/ldd"; then
        echo "STOP $(explain_missing)"
        return 3
    fi
    # what was found where, for the summary
    local cudnn cublas cudart nccl san
    cudnn=$(awk '$1 == "found" && $2 == "libcudnn.so.9" { print $3; exit }' "$work/ldd")
    cublas=$(awk '$1 == "found" && $2 ~ /^libcublas\.so/ { print $3; exit }' "$work/ldd")
    cudart=$(awk '$1 == "found" && $2 ~ /^libcudart\.so/ { print $3; exit }' "$work/ldd")
    nccl=""
    for d in ${LD_LIBRARY_PATH//:/ }; do [ -e "$d/libnccl.so.2" ] && { nccl=$d/libnccl.so.2; break; }; done
    san=$(find_sanitizer)
    echo "NCCL_LIB=$nccl"
    echo "SANITIZER=$san"
    echo "NOTE cuDNN ${cudnn:-(not used)}, cuBLAS ${cublas:-(not used)}, cudart ${cudart:-(not used)}$([[ $cudart == */fallback/* ]] && echo ' (the bundle fallback)'), NCCL ${nccl:-absent}, compute-sanitizer ${san:-absent}$([ -n "$FALLBACK" ] && echo "; from the bundle's fallback/: $(tr ':' '\n' <<<"$FALLBACK" | sed 's|.*/||' | paste -sd' ')")"
}

# scan_libs FILE...: ldd of each; appends "found SONAME PATH", "missing SONAME BY",
# "version VER LIB BY", "broken LIB BY REASON" (a file that cannot be loaded) and
# "undefined SYMBOL BY"
# lines to $work/ldd, the raw output to $work/ldd.full
RE_MISSING='^[[:space:]]*([^[:space:]]+) => not found'
RE_VERSION=": ([^:]+): version [\`'\"]?([^\`'\"]+)['\"]? not found"
RE_FOUND='^[[:space:]]*([^[:space:]]+) => ([^[:space:]]+)'
RE_ERROR='error while loading shared libraries: ([^:]+): (.*)$'
RE_UNDEF='undefined symbol: ([^[:space:]]+)'
scan_libs() {
    local f out line rel
    for f in "$@"; do
        [ -f "$f" ] || continue
        is_elf "$f" || continue
        rel=${f#"$B"/}
        rel=${rel#"$ROOT"/}
        out=$("$LDD" -r "$f" 2>&1) # -r: the symbols too (a library older than the headers)
        printf '== %s\n%s\n' "$rel" "$out" >>"$work/ldd.full"
        while IFS= read -r line; do
            if [[ $line =~ $RE_MISSING ]]; then
                echo "missing ${BASH_REMATCH[1]} $rel"
            elif [[ $line =~ $RE_UNDEF ]]; then
                echo "undefined ${BASH_REMATCH[1]} $rel"
            elif [[ $line =~ $RE_ERROR ]]; then
                echo "broken ${BASH_REMATCH[1]} $rel ${BASH_REMATCH[2]// /_}"
            elif [[ $line =~ $RE_VERSION ]]; then
                echo "version ${BASH_REMATCH[2]} ${BASH_REMATCH[1]} $rel"
            elif [[ $line =~ $RE_FOUND ]]; then
                echo "found ${BASH_REMATCH[1]} ${BASH_REMATCH[2]} $rel"
            fi
        done <<<"$out" >>"$work/ldd"
    done
}

# scan_plugins FILE...: one ldd of them all, the same lines as scan_libs for what
# is missing or cannot be loaded (not -r: a plug-in takes symbols of the libraries
# of the program that loads it)
scan_plugins() {
    local out
    out=$("$LDD" "$@" 2>&1)
    printf '== %d plug-ins (mpi/lib)\n%s\n' "$#" "$out" >>"$work/ldd.full"
    awk -v b="$B/" '
        /^[^ \t].*:$/ { f = substr($0, 1, length($0) - 1); sub("^" b, "", f); next }
        / => not found/ { print "missing " $1 " " f; next }
        /error while loading shared libraries: / {
            m = $0; sub(/.*error while loading shared libraries: /, "", m)
            lib = m; sub(/:.*/, "", lib); why = m; sub(/^[^:]*: /, "", why); gsub(/ /, "_", why)
            print "broken " lib " " f " " why; next }
        /: version .* not found/ {
            lib = $0; sub(/^[ \t]*/, "", lib); sub(/: version .*/, "", lib)
            v = $0; sub(/.*: version [`\047"]?/, "", v); sub(/[`\047"].*/, "", v)
            print "version " v " " lib " " f }
    ' <<<"$out" >>"$work/ldd"
}

# one line on what is missing, for stop()
explain_missing() {
    local first n by glibc
    glibc=$(awk '$1 == "version" && $2 ~ /^GLIBC_/ { print $2 " not found (required by " $4 ")" }' "$work/ldd" | sort -uV | tail -n 1)
    if [ -n "$glibc" ]; then
        echo "this machine's glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/glibc //') is too old: version $glibc; build the bundle on an older distribution (BUILD-INFO: glibc_min=$(info glibc_min))"
        return
    fi
    first=$(awk '$1 == "broken" { print $2; exit }' "$work/ldd")
    if [ -n "$first" ]; then
        n=$(awk -v s="$first" '$1 == "broken" && $2 == s' "$work/ldd" | wc -l)
        awk -v s="$first" -v n="$n" '$1 == "broken" && $2 == s { gsub("_", " ", $4)
            printf "%s cannot be loaded: %s (needed by %s%s)", $2, $4, $3, (n > 1 ? " and " (n - 1) " more" : ""); exit }' "$work/ldd"
        if [ -d "$B/fallback/${first##*/}" ]; then echo; else
            echo "; the bundle should have carried it: make gpu-bundle and carry $BUNDLE whole"; fi
        return
    fi
    first=$(awk '$1 == "missing" { print $2 }' "$work/ldd" | head -n 1)
    if [ -n "$first" ]; then
        n=$(awk '$1 == "missing" { print $2 }' "$work/ldd" | sort -u | wc -l)
        by=$(awk -v s="$first" '$1 == "missing" && $2 == s { print $3 }' "$work/ldd" | sort -u)
        printf '%s not found (needed by %s%s)%s' "$first" "$(head -n 1 <<<"$by")" \
            "$([ "$(wc -l <<<"$by")" -gt 1 ] && echo " and $(($(wc -l <<<"$by") - 1)) more")" \
            "$([ "$n" -gt 1 ] && echo "; $((n - 1)) more missing: $(awk '$1 == "missing" { print $2 }' "$work/ldd" | sort -u | grep -vxF "$first" | paste -sd' ')")"
        case $by in *"(dlopen,"*)
            echo "; that cuDNN is incomplete: the whole nvidia-cudnn wheel is needed, or another cuDNN in GPU_CHECK_LIBDIRS"
            return ;;
        esac
        case $first in
        libcudnn* | libcublas* | libnccl* | libcudart* | libnvrtc*)
            echo "; the nvidia-* Python wheels were not found (python3 -c 'import nvidia'); give their lib/ folders in GPU_CHECK_LIBDIRS" ;;
        *) echo "; the bundle should have carried it: make gpu-bundle and carry $BUNDLE whole" ;;
        esac
        return
    fi
    first=$(awk '$1 == "version" { print "version " $2 " not found in " $3 " (required by " $4 ")"; exit }' "$work/ldd")
    [ -n "$first" ] && { echo "$first"; return; }
    n=$(awk '$1 == "undefined" { print $2 }' "$work/ldd" | sort -u | wc -l)
    awk -v n="$n" '$1 == "undefined" { printf "undefined symbol %s in %s%s", $2, $3, (n > 1 ? " (" (n - 1) " more symbols)" : ""); exit }' "$work/ldd"
    echo ": a library here is older than the one the bundle was built against (BUILD-INFO: cudnn_headers=$(info cudnn_headers), nvcc=$(info nvcc))"
}

# folders holding cuDNN, cuBLAS or the runtime: under the Python installations
# first (a wheel of another python3 than the first on PATH), then anywhere (30 s)
find_cuda_files() {
    local roots=() r found
    for r in python3 /usr/bin/python3 /opt/conda/bin/python3; do
        command -v "$r" >/dev/null || continue
        while IFS= read -r d; do [ -d "$d" ] && roots+=("$d"); done < <("$r" -c 'import site, sys
print("\n".join(site.getsitepackages() + [site.getusersitepackages(), sys.prefix]))' 2>/dev/null)
    done
    local names=(\( -name 'libcudnn.so.9' -o -name 'libcublas.so.13' -o -name 'libcudart.so.13' \))
    found=$([ ${#roots[@]} -eq 0 ] || timeout 20 find "${roots[@]}" -maxdepth 6 "${names[@]}" 2>/dev/null)
    [ -n "$found" ] || found=$(timeout 30 find / -xdev "${names[@]}" 2>/dev/null)
    [ -n "$found" ] && xargs -r -n1 dirname <<<"$found" | sort -u | head -n 6
}

find_sanitizer() {
    local c
    for c in "$(command -v compute-sanitizer 2>/dev/null)" "$CUDA_HOME/bin/compute-sanitizer" \
        /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer; do
        [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return; }
    done
    command -v python3 >/dev/null || return 0
    python3 -c 'import nvidia, sys; print("\n".join(list(nvidia.__path__)))' 2>/dev/null | while IFS= read -r c; do
        find "$c" -maxdepth 4 -name compute-sanitizer -type f -perm -u+x 2>/dev/null | head -n 1
    done | head -n 1
}

ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
STATUS="Running: libraries."
write_summary
lib_log=$LOGS/01-libraries.log
CURRENT="libraries (log ${lib_log#"$OUT"/})"
STAGE_END=$((SECONDS + 120))
t0=$SECONDS
libraries >"$lib_log" 2>&1
rc=$?
CURRENT=""
# the results the function set in its subshell-free run are in this shell
lib_note=$(sed -n 's/^NOTE //p' "$lib_log" | tail -n 1)
NCCL_LIB=$(sed -n 's/^NCCL_LIB=//p' "$lib_log" | tail -n 1)
SANITIZER=$(sed -n 's/^SANITIZER=//p' "$lib_log" | tail -n 1)
if [ $rc -ne 0 ]; then
    reason=$(sed -n 's/^STOP //p' "$lib_log" | tail -n 1)
    record libraries STOPPED "$((SECONDS - t0)) s" "${reason:-see the log}"
    stop "${reason:-the library check failed (gpu-check-logs/01-libraries.log)}"
fi
LIB_DESC=$lib_note
record libraries pass "$((SECONDS - t0)) s" "${#PROGS[@]} programs resolved"
echo "gpu-check: libraries: pass" >&2
write_summary

# ---- 2. the device ----
device_query() {
    if [ "$DEVICE" = cpu ]; then
        echo "cpu rehearsal: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    elif command -v nvidia-smi >/dev/null; then
        tmo nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,compute_cap --format=csv ||
            { note "nvidia-smi failed: no usable GPU driver"; return 3; }
    elif [ "$EMU" != 1 ]; then
        note "no nvidia-smi: this machine has no NVIDIA driver"
        return 3
    fi
    [ -x "$B/bench/gpu_bench" ] || { note "no $B/bench/gpu_bench"; return 3; }
    tmo "$B/bench/gpu_bench" --query --device "$DEVICE"
}
QUIET_FAIL=1 stage device 60 "$DEADLINE_END" device_query
rc=$?
q=$(grep -h '^QUERY ' "$LOGS"/*-device.log 2>/dev/null | tail -n 1)
if [ "$DEVICE" = cpu ]; then
    DEVICE_DESC="cpu (a rehearsal): $(grep -h 'cpu rehearsal' "$LOGS"/*-device.log "$work/note" 2>/dev/null | head -n 1 | sed 's/^cpu rehearsal: //')"
elif [ -n "$q" ]; then
    DEVICE_DESC="$DEVICE: $(sed -E 's/.*name="([^"]*)".*/\1/' <<<"$q")$(sed -nE 's/.* cudnn=([0-9]+).*/, cuDNN \1/p' <<<"$q")"
    smi=$(grep -A1 '^name, driver' "$LOGS"/*-device.log 2>/dev/null | tail -n 1)
    [ -n "$smi" ] && DEVICE_DESC="$DEVICE_DESC; nvidia-smi: $smi"
    [ "$EMU" = 1 ] && [ "$DEVICE" != cpu ] && DEVICE_DESC="$DEVICE_DESC (emulated)"
fi
if [ $rc -ne 0 ]; then
    S_RES[-1]=STOPPED
    why=${S_NOTE[-1]}
    grep -q 'no usable GPU\|cannot start\|no NVIDIA\|nvidia-smi failed' "$LOGS"/*-device.log &&
        why=$(grep -h -m1 'no usable GPU\|cannot start\|no NVIDIA\|nvidia-smi failed' "$LOGS"/*-device.log)
    [ -n "$why" ] || why="gpu_bench --query failed (exit $rc)"
    stop "no usable device: $why"
fi

# ---- 3. the tests: a skip is a failure on a GPU machine ----
export GLOW_CUDA_SYNC=1
[ "$DEVICE" = cpu ] || export GLOW_TEST_STRICT=1
test_prog() { # PROG ARGS...
    local p=$B/test/$1
    shift
    [ -x "$p" ] || { note "not in $B/test"; return 2; }
    tmo "$p" "$@"
}
stage unit 90 "$DEADLINE_END" test_prog test_backend_cuda
stage ops 90 "$DEADLINE_END" test_prog test_backend_cuda_ops
stage refcheck 90 "$DEADLINE_END" test_prog test_refcheck --device "$DEVICE" "$REF"
stage cuda-train 90 "$DEADLINE_END" test_prog test_cuda_train
grep -h 'worst relative\|worst:' "$LOGS"/*-refcheck.log "$LOGS"/*-cuda-train.log 2>/dev/null |
    sed 's/^ok *//' >>"$work/numbers"
write_summary

# ---- data for the tool stages: smooth 8-bit images with noise (docs/formats.md) ----
gen_shards() { # FILE N C H W [random]
    python3 - "$@" <<'EOF'
import math, os, random, struct, sys, zlib
path, n, c, h, w = sys.argv[1], *map(int, sys.argv[2:6])
rnd = len(sys.argv) > 6
r = random.Random(1)
with open(path, "wb") as f:
    left = n
    while left:
        k = min(left, 1024)
        if rnd:
            raw = os.urandom(k * c * h * w)
        else:
            px = bytearray()
            for _ in range(k):
                ph, fr = r.uniform(0, 6.283), r.uniform(0.3, 0.8)
                for ch in range(c):
                    for y in range(h):
                        for x in range(w):
                            v = 128 + 70 * math.sin(fr * (x + 0.7 * y) + ph + ch) + r.gauss(0, 20)
                            px.append(min(255, max(0, int(v))))
            raw = bytes(px)
        z = zlib.compress(raw, 1)
        head = struct.pack("<8sIIIIIIIIQQI", b"GLOWSHRD", 1, 1, 0, k, c, h, w, 0, len(raw),
                           len(z), zlib.crc32(raw))
        f.write(head + struct.pack("<I", zlib.crc32(head)) + z)
        left -= k
EOF
}
TINY_DATA=$work/tiny.glow
tiny_data() { [ -s "$TINY_DATA" ] || gen_shards "$TINY_DATA" 512 1 8 8 || { note "cannot make the tiny data (python3)"; return 1; }; }
tiny_train() { # RUN DEVICE STEPS [ENV...]: glow-train of configs/tiny.yml
    local run=$1 dev=$2 steps=$3
    shift 3
    rm -rf "$run"
    tmo "$@" "$B/bin/glow-train" -q -c configs/tiny.yml -o "$run" --device "$dev" --steps "$steps" \
        --set train.log_every=5 --set train.checkpoint_every=1000 --set train.val_every=1000 "$TINY_DATA"
}

# ---- 4. glow-train on both backends ----
train_compare() {
    tiny_data || return 1
    local rc=0
    # two separate runs, also in the cpu rehearsal (which checks that they agree exactly)
    echo "== glow-train --device cpu, 50 steps"
    tiny_train "$work/tc-ref" cpu 50 || { note "glow-train --device cpu failed"; return 1; }
    echo "== glow-train --device $DEVICE, 50 steps"
    tiny_train "$work/tc-dut" "$DEVICE" 50 || { note "glow-train --device $DEVICE failed"; return 1; }
    # the losses at every logged step
    python3 - "$work/tc-ref/log.jsonl" "$work/tc-dut/log.jsonl" "$TRAIN_TOL" "$DEVICE" \
        >"$work/tc.txt" <<'EOF' || rc=1
import json, sys
def losses(p):
    return {d["step"]: d["loss"] for d in map(json.loads, open(p)) if "loss" in d}
a, b, tol, dev = losses(sys.argv[1]), losses(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
steps = sorted(set(a) & set(b))
if not steps or set(a) != set(b):
    print("the logged steps differ: cpu %s, %s %s" % (sorted(a), dev, sorted(b)))
    sys.exit(1)
worst, at = max((abs(b[s] - a[s]) / abs(a[s]), s) for s in steps)
for s in steps:
    print("step %3d: loss cpu %.6f %s %.6f" % (s, a[s], dev, b[s]))
print("train-compare: %d steps: loss cpu %.4f -> %.4f, %s %.4f -> %.4f, worst relative difference %.3g at step %d (tolerance %g)"
      % (steps[-1], a[steps[0]], a[steps[-1]], dev, b[steps[0]], b[steps[-1]], worst, at, tol))
sys.exit(0 if worst <= tol else 1)
EOF
    cat "$work/tc.txt"
    note "$(tail -n 1 "$work/tc.txt")"
    tail -n 1 "$work/tc.txt" >>"$work/numbers"
    # sampling and evaluation on the device, the bpd checked on the CPU
    local ck=$work/tc-dut/checkpoint.safetensors bd bc
    echo "== glow-sample and glow-bpd"
    tmo "$B/bin/glow-sample" "$ck" -n 32 --seed 1 --device "$DEVICE" -o "$work/samples.glow" ||
        { note "glow-sample --device $DEVICE failed"; return 1; }
    bd=$(tmo "$B/bin/glow-bpd" "$ck" "$work/samples.glow" --device "$DEVICE") ||
        { note "glow-bpd --device $DEVICE failed"; return 1; }
    bc=$(tmo "$B/bin/glow-bpd" "$ck" "$work/samples.glow" --device cpu) || { note "glow-bpd --device cpu failed"; return 1; }
    echo "glow-bpd --device $DEVICE: $bd"
    echo "glow-bpd --device cpu: $bc"
    if [ "${bd%% ±*}" != "${bc%% ±*}" ]; then
        awk -v a="${bc#bpd }" -v b="${bd#bpd }" 'BEGIN { a += 0; b += 0; exit !(a - b < 1e-3 && b - a < 1e-3) }' ||
            { note "bpd of 32 samples: cpu ${bc%% (*}, $DEVICE ${bd%% (*}: more than 1e-3 apart"; return 1; }
    fi
    bd=${bd#bpd } bc=${bc#bpd }
    number "glow-bpd of 32 samples of the $DEVICE-trained model: $DEVICE ${bd%% (*}, cpu ${bc%% (*}"
    return $rc
}
stage train-compare 120 "$DEADLINE_END" train_compare

# ---- 5. compute-sanitizer ----
memcheck() {
    local san=() tool errs=0 line
    if [ "$DEVICE" = cpu ]; then
        echo "cpu rehearsal: the commands without compute-sanitizer"
    elif [ "$EMU" = 1 ]; then
        note "skipped: an emulated device (compute-sanitizer needs a GPU)"
        return 77
    elif [ -z "$SANITIZER" ]; then
        note "skipped: compute-sanitizer not found (PATH, CUDA_HOME/bin, the wheels)"
        return 77
    fi
    tiny_data || return 1
    for tool in $SANITIZE; do
        [ "$DEVICE" = cpu ] || san=("$SANITIZER" --tool "$tool" --error-exitcode 9 --print-limit 20)
        echo "== ${san[*]:-} glow-train (3 steps)"
        tiny_train "$work/mc" "$DEVICE" 3 ${san[@]+"${san[@]}"} || errs=1
        echo "== ${san[*]:-} glow-sample"
        tmo ${san[@]+"${san[@]}"} "$B/bin/glow-sample" "$work/mc/checkpoint.safetensors" -n 8 --seed 1 \
            --device "$DEVICE" -o "$work/mc-samples.glow" || errs=1
    done
    line=$(grep -h 'ERROR SUMMARY' "$LOGS"/*-memcheck.log 2>/dev/null | sort | uniq -c | paste -sd';')
    note "${SANITIZE}: glow-train 3 steps and glow-sample: ${line:-$([ "$DEVICE" = cpu ] && echo 'ran without the sanitizer' || echo 'no ERROR SUMMARY')}"
    return $errs
}
stage memcheck 150 "$DEADLINE_END" memcheck

# ---- 6. data-parallel training (docs/distributed.md "On a GPU machine") ----
# ckpt_compare A B TOL: every tensor of checkpoint A against B's (pure Python, no
# NumPy there): "same bits" or the worst relative difference (by the tensor's
# norm); exit 0 when the bits are the same, or when TOL > 0 and the worst <= TOL
ckpt_compare() {
    python3 - "$@" <<'EOF'
import array, json, math, struct, sys
def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    h.pop("__metadata__", None)
    return {k: (v["dtype"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if sorted(a) != sorted(b):
    sys.exit("the tensors differ: %s" % sorted(set(a) ^ set(b)))
same, worst, at = True, 0.0, ""
for k in sorted(a):
    (ta, da), (tb, db) = a[k], b[k]
    if ta != tb or len(da) != len(db):
        sys.exit("%s: %s against %s" % (k, ta, tb))
    if da == db:
        continue
    same = False
    if ta != "F32":
        worst, at = math.inf, k
        continue
    x, y = array.array("f", da), array.array("f", db)
    n = math.sqrt(sum(v * v for v in x))
    d = math.sqrt(sum((u - v) ** 2 for u, v in zip(x, y)))
    r = d / n if n > 0 else d
    if not r <= worst:
        worst, at = r, k
print("same bits" if same else "not the same bits: worst relative difference %.3g (%s)" % (worst, at))
sys.exit(0 if same or (tol > 0 and worst <= tol) else 1)
EOF
}

# the runs of these stages: configs/tiny.yml on the tiny data, 32 images per step
# (16 per rank on two), with EMA, clipping and warm-up as in test/distributed.bats.
# (Not a global batch of 16, the tiny config's init_batch: the first step would then
# train on the init's own images, whose actnorm gradients are rounding noise, and
# Adam's first step, about lr times their sign, would differ with the order of the
# sums.)
DP_STEPS=${GPU_CHECK_DP_STEPS:-20}
dp_train() { # RUN BATCH [ENV...] [-- LAUNCHER...]: glow-train of the tiny config
    local run=$1 bs=$2 envs=() launch=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
    [ "${1:-}" = -- ] && { shift; launch=("$@"); }
    rm -rf "$run"
    tmo env ${envs[@]+"${envs[@]}"} ${launch[@]+"${launch[@]}"} "$B/bin/glow-train" -q -c configs/tiny.yml \
        -o "$run" --device "$DEVICE" --steps "$DP_STEPS" --set train.batch_size="$bs" \
        --set train.ema_decay=0.9 --set train.grad_clip=1 --set train.warmup=96 \
        --set train.log_every=5 --set train.checkpoint_every=1000 --set train.val_every=1000 \
        --check-every 1 "$TINY_DATA"
}
dp_one() { # the one-rank reference, 32 images per step (once)
    [ -s "$work/dp-one/checkpoint.safetensors" ] && return 0
    echo "== glow-train, one rank, batch 32"
    dp_train "$work/dp-one" 32 || { note "glow-train (one rank) failed"; return 1; }
}
comm_of() { head -n 1 "$1/log.jsonl" 2>/dev/null | sed -n 's/.*"comm":"\([a-z]*\)".*/\1/p'; }

# The bundle's Open MPI (scripts/gpu-bundle.sh; mpi/env.sh points it at its
# plug-ins and help texts), else the machine's. As root Open MPI wants the two
# variables; 2 ranks may oversubscribe.
MPIRUN=()
mpi_setup() {
    [ ${#MPIRUN[@]} -gt 0 ] && return 0
    local m=${GPU_CHECK_MPIRUN:-}
    if [ -z "$m" ] && [ -x "$B/mpi/bin/mpirun" ] && [ -f "$B/mpi/env.sh" ]; then
        . "$B/mpi/env.sh"
        m=$B/mpi/bin/mpirun
    fi
    [ -n "$m" ] || m=$(command -v mpirun) || m=""
    [ -n "$m" ] || { note "skipped: no mpirun (neither the bundle's mpi/ nor PATH)"; return 77; }
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    MPIRUN=("$m" --oversubscribe --bind-to none)
    echo "mpirun: $m ($("$m" --version 2>/dev/null | head -n 1))"
}

# nccl-1rank: NCCL's code on one GPU (a sum over one rank: the plain run's bits)
nccl_one_rank() {
    [ "$DEVICE" != cpu ] || { note "skipped: cpu rehearsal (NCCL needs a GPU)"; return 77; }
    [ -n "$NCCL_LIB" ] || [ "$EMU" = 1 ] || { note "skipped: libnccl.so.2 not found (the nvidia-nccl-cu13 wheel)"; return 77; }
    grep -q 'nccl 1' <("$B/test/test_comm" --built 2>/dev/null) ||
        { note "skipped: the bundle's programs were built without NCCL"; return 77; }
    tiny_data || return 1
    dp_one || return 1
    echo "== glow-train, one rank, GLOW_COMM=nccl"
    dp_train "$work/dp-nccl1" 32 GLOW_COMM=nccl || { note "glow-train GLOW_COMM=nccl failed"; return 1; }
    [ "$(comm_of "$work/dp-nccl1")" = nccl ] || { note "GLOW_COMM=nccl: the log names comm '$(comm_of "$work/dp-nccl1")'"; return 1; }
    local cmp
    cmp=$(ckpt_compare "$work/dp-one/checkpoint.safetensors" "$work/dp-nccl1/checkpoint.safetensors" 0) ||
        { echo "$cmp"; note "GLOW_COMM=nccl on one rank against the plain run: $cmp"; return 1; }
    echo "one rank on NCCL against the plain run: $cmp"
    echo "== test_comm --device $DEVICE (NCCL of one rank)"
    tmo "$B/test/test_comm" --device "$DEVICE" || { note "test_comm --device $DEVICE failed"; return 1; }
    note "one rank on NCCL, $DP_STEPS steps: the plain run's bits; test_comm --device $DEVICE: $(grep -hE '^comm: [0-9]+ passed' "$LOGS"/*-nccl-1rank.log | tail -n 1 | sed 's/^comm: //')"
}
stage nccl-1rank 60 "$DEADLINE_END" nccl_one_rank

# the GPUs the ranks can see: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's
# list; on the emulator GLOW_EMU_DEVICES (default 1), as the programs count them
gpu_count() {
    local v
    if [ "$EMU" = 1 ]; then
        echo "${GLOW_EMU_DEVICES:-1}"
    elif [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
        v=${CUDA_VISIBLE_DEVICES//[[:space:]]/}
        tr ',' '\n' <<<"$v" | grep -c . || true
    else
        nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true
    fi
}

# nccl-2rank: two ranks, one GPU each, over NCCL (device memory): twice the same
# bits, and one rank's run with the same global batch within 1e-5. It needs two
# GPUs: NCCL refuses two ranks on one (mpi-2rank covers that case over MPI), so on
# a one-GPU machine it is skipped, with the count it found.
nccl_two_ranks() {
    [ "$DEVICE" != cpu ] || { note "skipped: cpu rehearsal (NCCL needs a GPU)"; return 77; }
    local n
    n=$(gpu_count)
    [ "${n:-0}" -ge 2 ] ||
        { note "skipped: ${n:-0} GPU visible$([ "$EMU" = 1 ] && echo " (GLOW_EMU_DEVICES)"): NCCL needs one per rank and refuses two ranks on one GPU (mpi-2rank shares it over MPI)"; return 77; }
    grep -q 'nccl 1' <("$B/test/test_comm" --built 2>/dev/null) ||
        { note "skipped: the bundle's programs were built without NCCL"; return 77; }
    [ -n "$NCCL_LIB" ] || [ "$EMU" = 1 ] || { note "skipped: libnccl.so.2 not found (the nvidia-nccl-cu13 wheel)"; return 77; }
    mpi_setup || return $?
    tiny_data || return 1
    dp_one || return 1
    # --device cuda (not cuda:N): each rank takes the GPU of its local rank
    local DEVICE=cuda run cmp
    for run in dp-nccl2 dp-nccl2b; do
        echo "== mpirun -np 2 glow-train, GLOW_COMM=nccl, 16 images per rank ($run)"
        dp_train "$work/$run" 16 GLOW_COMM=nccl OMP_NUM_THREADS=1 -- \
            "${MPIRUN[@]}" -x GLOW_COMM -x OMP_NUM_THREADS -np 2 ||
            { note "mpirun -np 2 glow-train GLOW_COMM=nccl failed ($run)"; return 1; }
    done
    [ "$(comm_of "$work/dp-nccl2")" = nccl ] || { note "the log names comm '$(comm_of "$work/dp-nccl2")', not nccl"; return 1; }
    cmp=$(ckpt_compare "$work/dp-nccl2/checkpoint.safetensors" "$work/dp-nccl2b/checkpoint.safetensors" 0) ||
        { echo "$cmp"; note "two 2-rank NCCL runs: $cmp"; return 1; }
    echo "two 2-rank NCCL runs: $cmp"
    cmp=$(ckpt_compare "$work/dp-one/checkpoint.safetensors" "$work/dp-nccl2/checkpoint.safetensors" 1e-5) ||
        { echo "$cmp"; note "2 NCCL ranks against one with the same global batch: $cmp (tolerance 1e-5)"; return 1; }
    echo "2 NCCL ranks against one rank: $cmp"
    cmp=${cmp#not the same bits: }
    note "2 ranks x 16 on $n GPUs over NCCL, $DP_STEPS steps: a rerun the same bits; against 1 rank x 32: $cmp"
    number "nccl-2rank: 2 ranks x 16 against 1 rank x 32, $DP_STEPS steps: $cmp"
}
stage nccl-2rank 90 "$DEADLINE_END" nccl_two_ranks

# mpi-2rank: two ranks sharing the GPU (NCCL refuses that) over the communicator
# that stages through page-locked host memory: twice the same bits, and one rank's
# run with the same global batch within 1e-5
mpi_two_ranks() {
    mpi_setup || return $?
    tiny_data || return 1
    dp_one || return 1
    # both on the first GPU also where there are more (--device cuda would give
    # each rank its own): the case of a one-GPU machine, which NCCL cannot serve
    local DEVICE=$DEVICE run cmp
    [ "$DEVICE" != cuda ] || DEVICE=cuda:0
    for run in dp-mpi2 dp-mpi2b; do
        echo "== mpirun -np 2 glow-train, GLOW_COMM=mpi, 16 images per rank ($run)"
        dp_train "$work/$run" 16 GLOW_COMM=mpi OMP_NUM_THREADS=1 -- \
            "${MPIRUN[@]}" -x GLOW_COMM -x OMP_NUM_THREADS -np 2 ||
            { note "mpirun -np 2 glow-train failed ($run)"; return 1; }
    done
    [ "$(comm_of "$work/dp-mpi2")" = mpi ] || { note "the log names comm '$(comm_of "$work/dp-mpi2")', not mpi"; return 1; }
    cmp=$(ckpt_compare "$work/dp-mpi2/checkpoint.safetensors" "$work/dp-mpi2b/checkpoint.safetensors" 0) ||
        { echo "$cmp"; note "two 2-rank runs: $cmp"; return 1; }
    echo "two 2-rank runs: $cmp"
    cmp=$(ckpt_compare "$work/dp-one/checkpoint.safetensors" "$work/dp-mpi2/checkpoint.safetensors" 1e-5) ||
        { echo "$cmp"; note "2 ranks against one with the same global batch: $cmp (tolerance 1e-5)"; return 1; }
    echo "2 ranks against one rank: $cmp"
    cmp=${cmp#not the same bits: }
    note "2 ranks x 16 on $DEVICE over MPI, $DP_STEPS steps: a rerun the same bits; against 1 rank x 32: $cmp"
    number "mpi-2rank: 2 ranks x 16 against 1 rank x 32, $DP_STEPS steps: $cmp"
}
stage mpi-2rank 90 "$DEADLINE_END" mpi_two_ranks

# mpi-comm: the communicators' own test under mpirun (with a GPU: staged through
# it, and NCCL's refusal of the shared GPU) and the MPI all-reduce's speed
mpi_comm() {
    mpi_setup || return $?
    local dev=() line
    [ "$DEVICE" = cpu ] || dev=(--device "$DEVICE")
    echo "== mpirun -np 2 test_comm ${dev[*]:-}"
    tmo "${MPIRUN[@]}" -x OMP_NUM_THREADS=1 -np 2 "$B/test/test_comm" ${dev[@]+"${dev[@]}"} ||
        { note "mpirun -np 2 test_comm failed"; return 1; }
    [ "$(grep -cE '^comm: [0-9]+ passed, 0 failed$' "$LOGS"/*-mpi-comm.log)" -eq 2 ] ||
        { note "test_comm: not two passing ranks"; return 1; }
    [ -x "$B/bench/comm_bench" ] || { note "no bench/comm_bench in the bundle"; return 1; }
    echo "== mpirun -np 2 comm_bench (the MPI all-reduce of config B's 44.6M floats, host memory)"
    line=$(tmo "${MPIRUN[@]}" -np 2 "$B/bench/comm_bench" 44603604 5 | grep '^allreduce') ||
        { note "comm_bench failed"; return 1; }
    echo "$line"
    number "comm_bench: $line"
    note "test_comm on 2 ranks passed$([ ${#dev[@]} -gt 0 ] && echo " (--device $DEVICE)"); comm_bench: ${line#*ranks: }"
}
stage mpi-comm 90 "$DEADLINE_END" mpi_comm
unset GLOW_TEST_STRICT GLOW_CUDA_SYNC

# ---- 8. the benchmark, in the time left ----
# peak GPU memory (MiB above the level before) while a command runs
mem_poll_start() {
    [ "$DEVICE" = cpu ] && return
    command -v nvidia-smi >/dev/null || return
    base_mem=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -n 1)
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$work/mem.txt" 2>/dev/null &
    mem_pid=$!
}
mem_poll_stop() {
    [ -n "${mem_pid:-}" ] || { echo "-"; return; }
    kill "$mem_pid" 2>/dev/null
    wait "$mem_pid" 2>/dev/null
    mem_pid=""
    awk -v b="$base_mem" 'BEGIN { m = 0 } $1 + 0 > m { m = $1 + 0 } END { print m - b }' "$work/mem.txt"
}

# train img/s from glow-train: the mean images_per_s of the log intervals after
# the first (warm-up); the run is stopped once they are in (no final checkpoint)
train_run() { # CONFIG BATCH PRECISION DATA -> prints "IPS PEAK_MIB"
    local cfg=$1 bs=$2 prec=$3 data=$4 run=$work/run-$(basename "$1" .yml)-$3 every=$((STEPS / 3))
    local extra=() log=$work/train-$(basename "$1" .yml)-$3
    [ "$SMALL" = 1 ] && extra=(--set model.steps=1 --set model.width=16 --set train.init_batch=8)
    rm -rf "$run"
    mem_poll_start
    "$B/bin/glow-train" -q -c "$cfg" -o "$run" --device "$DEVICE" \
        --set train.batch_size="$bs" --set train.precision="$prec" --steps $((STEPS + every)) \
        --set train.log_every=$every \
        --set train.checkpoint_every=1000000 --set train.val_every=1000000 \
        --set train.ema_decay=0 ${extra[@]+"${extra[@]}"} "$data" >"$log.log" 2>&1 &
    local pid=$! t0=$SECONDS cap=$((STAGE_END - SECONDS - 5))
    [ $cap -le 45 ] || cap=45
    while kill -0 $pid 2>/dev/null; do
        [ "$(grep -c images_per_s "$run/log.jsonl" 2>/dev/null)" -ge 3 ] 2>/dev/null && break
        [ $((SECONDS - t0)) -ge $cap ] && break
        sleep 0.5
    done
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null
    local peak ips
    peak=$(mem_poll_stop)
    ips=$(grep images_per_s "$run/log.jsonl" 2>/dev/null | tail -n +2 |
          sed -E 's/.*"images_per_s":([0-9.]+).*/\1/' | awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }')
    cat "$log.log" "$run/log.jsonl" >&2 2>/dev/null
    rm -rf "$run"
    echo "${ips:-} $peak"
}

bench_config() { # CONFIG BATCH SIZE
    local cfg=$1 bs=$2 size=$3 name data ok=0 bcfg
    name=$(basename "$cfg" .yml)
    data=$work/data-$size.glow
    [ -f "$data" ] || gen_shards "$data" 512 3 "$size" "$size" random || return 1
    bcfg=$cfg
    if [ "$SMALL" = 1 ]; then
        bcfg=$work/$name-small.yml
        sed -E 's/^( *)steps: [0-9]+/\1steps: 1/; s/^( *)width: [0-9]+/\1width: 16/' "$cfg" >"$bcfg"
    fi
    tmo "$B/bench/gpu_bench" "$bcfg" "$bs" --device "$DEVICE" --warmup 3 --iters 10 \
        --precision "$PRECS" >"$work/bench-$name.log" 2>&1 || ok=1
    cat "$work/bench-$name.log"
    local prec line tr ev r gt
    for prec in ${PRECS//,/ }; do
        [ $((STAGE_END - SECONDS)) -gt 10 ] || { echo "$name $prec: no time left"; ok=1; break; }
        r=$(train_run "$cfg" "$bs" "$prec" "$data")
        line=$(grep "precision=$prec " "$work/bench-$name.log")
        tr=$(sed -nE 's/.*train_ips=([0-9.]+).*/\1/p' <<<"$line")
        ev=$(sed -nE 's/.*eval_ips=([0-9.]+).*/\1/p' <<<"$line")
        echo "| $name | $bs | $prec | ${r% *} | ${tr:-n/a} | ${ev:-n/a} | ${r#* } |" >>"$work/bench.rows"
        echo "$name $prec: glow-train ${r% *} img/s, model train ${tr:-n/a} eval ${ev:-n/a} img/s"
        gt=${r% *}
        note "$prec: glow-train ${gt:-n/a} img/s; model train ${tr:-n/a}, eval ${ev:-n/a} img/s"
        write_summary # the row shows at once
        [ -n "${r% *}" ] || { echo "$name $prec: glow-train gave no throughput"; ok=1; }
        [ -n "$ev" ] || { echo "$name $prec: gpu_bench gave no result"; ok=1; }
    done
    return $ok
}

left=$((TOTAL_END - SECONDS))
bench_end=$TOTAL_END
bench_skip=""
case $BENCH in
0) bench_skip="GPU_CHECK_BENCH=0" ;;
1) [ "$left" -ge "$BENCH_S" ] || bench_end=$((SECONDS + BENCH_S)) ;;
*)
    if [ "$EMU" = 1 ] && [ "$DEVICE" != cpu ]; then
        bench_skip="an emulated device: no clock to measure, and the models would run for hours (GPU_CHECK_BENCH=1 runs it anyway)"
    elif [ "$left" -lt "$BENCH_MIN" ]; then
        bench_skip="$left s left of GPU_CHECK_TOTAL=${TOTAL} s, under ${BENCH_MIN} s (GPU_CHECK_BENCH=1 runs it anyway)"
    fi
    ;;
esac
for spec in "cifar10 64 32" "glow-64x64-imagenet 32 64"; do
    set -- $spec
    name=bench-${1#glow-64x64-}
    if [ -n "$bench_skip" ]; then
        record "$name" skip "-" "$bench_skip"
        write_summary
        continue
    fi
    if [ $((bench_end - SECONDS)) -lt 20 ] && selected "$name"; then
        record "$name" skip "-" "no time left (GPU_CHECK_TOTAL=${TOTAL} s)"
        write_summary
        continue
    fi
    stage "$name" 200 "$bench_end" bench_config "configs/$1.yml" "$2" "$3"
done

# ---- the end ----
if [ $failed = 0 ]; then
    finish PASS 0
fi
finish FAIL 1
