#!/usr/bin/env bash
# The GPU bundle (docs/gpu-check.md): everything scripts/gpu-check.sh runs on a GPU
# machine, in one folder to carry there. `make gpu-bundle` links the programs into
# a staging folder and calls this script, which
#   - copies them (bin/, test/, bench/) into a fresh bundle;
#   - copies the shared libraries they load that such a machine lacks (ldd):
#       lib/        what it is not expected to have (oneDNN, libyaml, libcjson,
#                   libpng, libjpeg, ...); files over GPU_BUNDLE_GZ_MIB are stored
#                   gzip-compressed (lib/NAME.gz) and gpu-check.sh unpacks them;
#       fallback/SONAME/  what it most likely has (libstdc++, libgomp, libgcc_s,
#                   libz, libcudart): used there only where its own is missing or
#                   too old;
#     but neither glibc nor the CUDA libraries it gets from its Python wheels
#     (cuDNN, cuBLAS, NCCL, the driver);
#   - when the programs use MPI (libmpi.so): Open MPI's launcher, which a GPU
#     machine lacks, into mpi/: bin/mpirun, the MCA plug-ins (lib/openmpi/; ldd does
#     not show them: every one whose libraries are all carried or the system's),
#     PMIx's plug-ins (lib/pmix/), the help texts (share/), the MCA parameter file
#     (etc/) and env.sh, which points Open MPI at them (OPAL_PREFIX, ...); the
#     libraries mpirun and the plug-ins load go into lib/ like the programs';
#   - copies the reference cases (every folder of REF with a case.safetensors)
#     into ref/;
#   - writes BUILD-INFO (key=value: commit, toolchain, the glibc it needs) and
#     MANIFEST.tsv (path, bytes, sha256 of every file);
#   - prints the total size and fails when it is over GPU_BUNDLE_MAX_MIB.
#
# Environment: GPU_BUNDLE (the bundle, default build/gpu-bundle), GPU_BUNDLE_STAGE
# (the linked programs, default GPU_BUNDLE-stage), GPU_BUNDLE_CACHE (compressed
# libraries kept between runs, default GPU_BUNDLE-cache), REF (default
# ../shared/reference), CUDA_HOME (default /usr/local/cuda), GPU_BUNDLE_MAX_MIB
# (default 64), GPU_BUNDLE_GZ_MIB (default 4), GPU_BUNDLE_EMU (1: built against
# the CUDA emulator, whose libraries are then carried), GPU_BUNDLE_LDD (the ldd
# to use; tests give a fake one), GPU_BUNDLE_INFO (extra key=value lines),
# GPU_BUNDLE_MPI (auto: Open MPI when a program needs libmpi; 0: never).
set -u
BUNDLE=${GPU_BUNDLE:-build/gpu-bundle}
BUNDLE=${BUNDLE%/}
STAGE=${GPU_BUNDLE_STAGE:-$BUNDLE-stage}
CACHE=${GPU_BUNDLE_CACHE:-$BUNDLE-cache}
REF=${REF:-../shared/reference}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
MAX_MIB=${GPU_BUNDLE_MAX_MIB:-64}
GZ_MIB=${GPU_BUNDLE_GZ_MIB:-4}
EMU=${GPU_BUNDLE_EMU:-0}
LDD=${GPU_BUNDLE_LDD:-ldd}
WANT_MPI=${GPU_BUNDLE_MPI:-auto}
me=gpu-bundle

die() { echo "$me: $*" >&2; exit 1; }

[ -d "$STAGE" ] || die "$STAGE: no staging folder (make gpu-bundle links the programs there)"
repo=$(pwd -P)
cuda_real=$(cd "$CUDA_HOME" 2>/dev/null && pwd -P) || cuda_real=/nonexistent
tmp=$BUNDLE.tmp
rm -rf "$tmp"
mkdir -p "$tmp" "$CACHE" || die "cannot create $tmp"

# ---- the programs ----
bins=()
for d in bin test bench; do
    [ -d "$STAGE/$d" ] || continue
    mkdir -p "$tmp/$d"
    for f in "$STAGE/$d"/*; do
        [ -f "$f" ] && [ -x "$f" ] || continue
        cp -p "$f" "$tmp/$d/" || die "cannot copy $f"
        bins+=("$tmp/$d/${f##*/}")
    done
done
[ ${#bins[@]} -gt 0 ] || die "$STAGE: no programs"

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# ---- Open MPI's launcher, when the programs use MPI ----
# The plug-ins (MCA components) are dlopen()ed, so ldd of the programs does not show
# them; those whose libraries are all carried here or the system's are copied (not
# the InfiniBand, UCX, libfabric, PSM, OpenSHMEM and MPI-IO ones: TCP, shared memory
# and self are what one machine needs). The libraries they and mpirun need are
# found below with the programs' (mpirun and the plug-ins join the ldd scan).
MPI_ALLOW='^(linux-vdso|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|/lib64/ld-linux|ld-linux|libopen-pal\.so|libopen-rte\.so|libmpi\.so|libhwloc\.so|libevent_core|libevent_pthreads|libudev\.so|libz\.so|libpmix\.so|libmunge\.so|libmca_common_sm\.so)'
mpi_desc=""
scan=("${bins[@]}")
needs_mpi() {
    local b
    for b in "${bins[@]}"; do
        is_elf "$b" && "$LDD" "$b" 2>/dev/null | grep -q 'libmpi\.so' && return 0
    done
    return 1
}
if [ "$WANT_MPI" != 0 ] && needs_mpi; then
    mpirun=$(command -v mpirun || command -v orterun) ||
        die "the programs use MPI but there is no mpirun here to carry (openmpi-bin; GPU_BUNDLE_MPI=0 leaves it out)"
    mpi_version=$("$mpirun" --version 2>/dev/null | head -n 1)
    mpirun=$(readlink -f "$mpirun") # Debian: mpirun -> /etc/alternatives -> orterun
    grep -qE 'Open MPI|OpenRTE' <<<"$mpi_version" || die "$mpirun is not Open MPI's (only Open MPI's is carried)"
    opath() { ompi_info --parsable --path all 2>/dev/null | sed -n "s/^path:$1://p" | head -n 1; }
    command -v ompi_info >/dev/null || die "ompi_info (openmpi-bin) is needed to find Open MPI's plug-ins"
    pkglib=$(opath pkglibdir) pkgdata=$(opath pkgdatadir) sysconf=$(opath sysconfdir)
    [ -d "$pkglib" ] || die "Open MPI's plug-in folder $pkglib (ompi_info --path pkglibdir) is missing"
    m=$tmp/mpi
    mkdir -p "$m/bin" "$m/lib/openmpi" "$m/share/openmpi" "$m/etc"
    cp -p "$mpirun" "$m/bin/mpirun" || die "cannot copy $mpirun"
    scan+=("$m/bin/mpirun")
    nplug=0 skipped=0
    for f in "$pkglib"/*.so; do
        if "$LDD" "$f" 2>/dev/null | awk '{ print $1 }' | grep -vqE "$MPI_ALLOW"; then
            skipped=$((skipped + 1))
            continue
        fi
        cp -p "$f" "$m/lib/openmpi/" || die "cannot copy $f"
        scan+=("$m/lib/openmpi/${f##*/}")
        nplug=$((nplug + 1))
    done
    # PMIx (mpirun's process manager, a library of its own with plug-ins and help)
    pmix_lib=$("$LDD" "$pkglib"/mca_pmix_ext*.so 2>/dev/null | awk '$1 ~ /^libpmix\.so/ { print $3; exit }')
    if [ -n "$pmix_lib" ]; then
        pmix_dir=$(dirname "$(readlink -f "$pmix_lib")")
        if [ -d "$pmix_dir/pmix" ]; then
            mkdir -p "$m/lib/pmix"
            for f in "$pmix_dir"/pmix/*.so; do
                [ -f "$f" ] || continue
                cp -p "$f" "$m/lib/pmix/"
                scan+=("$m/lib/pmix/${f##*/}")
            done
        fi
        for d in "$pmix_dir/../share/pmix" /usr/share/pmix; do
            [ -d "$d" ] && { mkdir -p "$m/share/pmix" && cp -p "$d"/help-*.txt "$m/share/pmix/" 2>/dev/null; break; }
        done
    fi
    [ -d "$pkgdata" ] && cp -pr "$pkgdata"/. "$m/share/openmpi/"
    for f in openmpi-mca-params.conf openmpi-default-hostfile; do
        [ -f "$sysconf/$f" ] && cp -p "$sysconf/$f" "$m/etc/"
    done
    cat >"$m/env.sh" <<'ENV'
# Open MPI from the GPU bundle (scripts/gpu-bundle.sh): source it, then run mpi/bin/mpirun.
# Its plug-ins, help texts and parameter file are found through these instead of the
# paths compiled into the libraries (which a GPU machine does not have).
_m=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
export OPAL_PREFIX="$_m" OPAL_EXEC_PREFIX="$_m" OPAL_BINDIR="$_m/bin" OPAL_LIBDIR="$_m/../lib"
export OPAL_PKGLIBDIR="$_m/lib/openmpi" OPAL_DATAROOTDIR="$_m/share" OPAL_DATADIR="$_m/share"
export OPAL_PKGDATADIR="$_m/share/openmpi" OPAL_SYSCONFDIR="$_m/etc"
export OMPI_MCA_mca_base_component_path="$_m/lib/openmpi"
export OMPI_MCA_mca_base_param_files="$_m/etc/openmpi-mca-params.conf"
export PMIX_INSTALL_PREFIX="$_m" PMIX_PKGLIBDIR="$_m/lib/pmix" PMIX_PKGDATADIR="$_m/share/pmix"
export PMIX_MCA_mca_base_component_path="$_m/lib/pmix"
case ":$PATH:" in *":$_m/bin:"*) ;; *) export PATH="$_m/bin:$PATH" ;; esac
unset _m
ENV
    mpi_desc="Open MPI ${mpi_version##* }: mpirun, $nplug plug-ins ($skipped left out: their libraries are not carried)"
    echo "$me: $mpi_desc, from $pkglib"
fi

# ---- their libraries ----
# class SONAME PATH -> system | machine | fallback | lib
class() {
    local so=$1 path=$2 real
    real=$(readlink -f "$path" 2>/dev/null || echo "$path")
    case $so in
    linux-vdso.so* | ld-linux*.so* | libc.so.* | libm.so.* | libdl.so.* | librt.so.* | \
        libpthread.so.* | libresolv.so.* | libutil.so.* | libmvec.so.* | libanl.so.*)
        echo system; return ;;
    esac
    # under the emulator the "CUDA" libraries are ours, built in this tree: carried
    if [ "$EMU" = 1 ] && [[ $real == "$repo"/* ]]; then echo lib; return; fi
    case $so in
    libcudart.so.*) echo fallback; return ;;
    libcuda.so.* | libnvidia-*.so.* | libcudnn*.so.* | libcublas*.so.* | libnccl.so.* | \
        libnvrtc*.so.* | libnvJitLink.so.* | libcufft*.so.* | libcurand.so.* | libcusparse*.so.* | \
        libcusolver*.so.*)
        echo machine; return ;;
    libz.so.* | libstdc++.so.* | libgcc_s.so.* | libgomp.so.*)
        echo fallback; return ;;
    esac
    [[ $real == "$cuda_real"/* ]] && { echo machine; return; }
    echo lib
}

declare -A where=() kind=() needed_by=()
missing=()
for b in "${scan[@]}"; do
    is_elf "$b" || continue
    out=$(LD_LIBRARY_PATH="$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$LDD" "$b" 2>&1)
    while read -r so arrow path _; do
        [ "$arrow" = "=>" ] || continue
        if [ "$path" = not ]; then
            missing+=("$so (needed by ${b#"$tmp"/})")
            continue
        fi
        [ -n "${where[$so]:-}" ] && continue
        where[$so]=$path
        kind[$so]=$(class "$so" "$path")
        needed_by[$so]=${b#"$tmp"/}
    done <<<"$out"
done
[ ${#missing[@]} -eq 0 ] || die "libraries not found on this machine: ${missing[*]}"

sha() { sha256sum "$1" | cut -d' ' -f1; }
gz_bytes=$((GZ_MIB * 1024 * 1024))
carried=()
for so in $(printf '%s\n' "${!where[@]}" | sort); do
    k=${kind[$so]} src=${where[$so]}
    case $k in
    lib)
        mkdir -p "$tmp/lib"
        if [ "$(stat -L -c %s "$src")" -gt "$gz_bytes" ]; then
            c="$CACHE/$so.$(sha "$src").gz"
            if [ ! -f "$c" ]; then
                rm -f "$CACHE/$so".*.gz
                gzip -6 -n -c "$src" >"$c.tmp" && mv "$c.tmp" "$c" || die "cannot compress $src"
            fi
            cp "$c" "$tmp/lib/$so.gz"
            carried+=("lib/$so.gz")
        else
            cp -L "$src" "$tmp/lib/$so" || die "cannot copy $src"
            carried+=("lib/$so")
        fi
        ;;
    fallback)
        mkdir -p "$tmp/fallback/$so"
        cp -L "$src" "$tmp/fallback/$so/$so" || die "cannot copy $src"
        carried+=("fallback/$so/$so")
        ;;
    esac
done

# ---- the reference cases ----
ncases=0
if [ -d "$REF" ]; then
    for c in "$REF"/*/ "$REF"/; do
        [ -f "$c/case.safetensors" ] || continue
        name=$(basename "$c")
        mkdir -p "$tmp/ref/$name"
        cp -p "$c"/*.safetensors "$tmp/ref/$name/" || die "cannot copy $c"
        ncases=$((ncases + 1))
    done
fi
[ $ncases -gt 0 ] || echo "$me: warning: no reference cases under $REF (gpu-check then needs REF there)" >&2

# ---- BUILD-INFO ----
# the newest GLIBC_x.y symbol version that files need
glibc_need() {
    local f v best=2.2.5 t src
    t=$(mktemp)
    for f in "$@"; do
        src=$f
        case $f in *.gz) gzip -dc "$f" >"$t" && src=$t || continue ;; esac
        is_elf "$src" || continue
        v=$(objdump -T "$src" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' |
            sort -V | tail -n 1)
        [ -n "$v" ] && best=$(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n 1)
    done
    rm -f "$t"
    echo "$best"
}
libfiles=() fbfiles=()
for f in "${carried[@]}"; do
    case $f in lib/*) libfiles+=("$tmp/$f") ;; *) fbfiles+=("$tmp/$f") ;; esac
done
{
    echo "# the GPU bundle, made by scripts/gpu-bundle.sh (docs/gpu-check.md)"
    echo "commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo -dirty)"
    echo "built=$(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n)"
    echo "builder_glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/glibc //')"
    echo "glibc_min=$(glibc_need "${scan[@]}" ${libfiles[@]+"${libfiles[@]}"})"
    echo "glibc_min_fallback=$(glibc_need ${fbfiles[@]+"${fbfiles[@]}"})"
    echo "emu=$EMU"
    echo "nvcc=$("$CUDA_HOME/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p')"
    h=$CUDA_HOME/include/cudnn_version.h
    [ -f "$h" ] && echo "cudnn_headers=$(awk '/define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", s, $3; s="."}' "$h")"
    echo "host_binaries=debug info stripped (-Wl,-S), symbols kept; device code with -lineinfo line tables"
    echo "rpath=\$ORIGIN/../lib (DT_RPATH)"
    echo "cases=$ncases"
    [ -n "$mpi_desc" ] && echo "mpi=$mpi_desc"
    for so in $(printf '%s\n' "${!where[@]}" | sort); do
        echo "needs=$so ${kind[$so]} ${where[$so]}"
    done
    [ -n "${GPU_BUNDLE_INFO:-}" ] && printf '%s\n' "$GPU_BUNDLE_INFO"
} >"$tmp/BUILD-INFO"

# ---- MANIFEST.tsv and the size ----
(
    cd "$tmp" || exit 1
    printf 'path\tbytes\tsha256\n'
    find . -type f ! -name MANIFEST.tsv | sed 's|^\./||' | LC_ALL=C sort | while IFS= read -r f; do
        printf '%s\t%s\t%s\n' "$f" "$(stat -c %s "$f")" "$(sha "$f")"
    done
) >"$BUNDLE.manifest" || die "cannot write MANIFEST.tsv"
mv "$BUNDLE.manifest" "$tmp/MANIFEST.tsv"
total=$(find "$tmp" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
nfiles=$(find "$tmp" -type f | wc -l)
rm -rf "$BUNDLE"
mv "$tmp" "$BUNDLE" || die "cannot move $tmp to $BUNDLE"
mib=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "$me: $BUNDLE: $nfiles files, $total bytes ($mib MiB; limit $MAX_MIB MiB), $ncases reference cases"
echo "$me: largest:"
tail -n +2 "$BUNDLE/MANIFEST.tsv" | sort -t"$(printf '\t')" -k2,2nr | head -n 8 |
    awk -F'\t' '{ printf "  %8.2f MiB  %s\n", $2 / 1048576, $1 }'
if [ "$total" -gt $((MAX_MIB * 1024 * 1024)) ]; then
    die "$BUNDLE is $mib MiB, over the $MAX_MIB MiB that travels to the GPU machine"
fi
echo "$me: carry [\"$BUNDLE\"]; on the GPU machine: make gpu-check (docs/gpu-check.md)"
