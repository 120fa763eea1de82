#!/usr/bin/env bash
# A rehearsal of the GPU check on a machine without a GPU (docs/gpu-check.md):
# a fresh clone of HEAD with only the bundle copied in (nothing built there),
# and gpu-check.sh run in it as on the GPU machine. As root, where unshare(1)
# works, the libraries the bundle carries in lib/ are hidden on this machine for
# the run (an empty file bound over each, in a private mount namespace), so that
# only the bundle's copies can load, as on a machine that lacks them; so is this
# machine's Open MPI when the bundle carries its own (mpi/): mpirun, orterun,
# mpiexec, orted and ompi_info (an empty, non-executable file over each; and PATH's
# folders that hold them replaced by copies of links to everything else, since
# bash's lookup still names a file it cannot execute), and its plug-in, help and
# configuration folders and PMIx's (an empty folder over each).
#
# Usage: scripts/gpu-rehearse.sh [--emu | --missing-cuda | --renamed LIB] [OUT]
#   (default)       GPU_CHECK_DEVICE (default cpu) against the bundle
#   --emu           the bundle of `make gpu-bundle EMU=1` (build-emu/gpu-bundle) on
#                   the emulated GPU: GPU_CHECK_DEVICE=cuda, the CUDA stages for real
#   --missing-cuda  the CUDA toolkit's library folder hidden too: the check must
#                   stop at once (exit 3), cuDNN and cuBLAS not found
#   --renamed LIB   lib/LIB renamed in the clone's bundle: the check must stop at
#                   once on the manifest (exit 3)
# OUT (default out/rehearsal) receives the run's gpu-check.md and logs.
# Environment: GPU_BUNDLE (default build/gpu-bundle), GPU_CHECK_DEVICE, and the
# GPU_CHECK_* variables of gpu-check.sh, passed on. Exit status: gpu-check's.
set -u
cd "$(dirname "$0")/.." || exit 2
mode=plain lib=""
case ${1:-} in
--emu)
    shift
    export GPU_BUNDLE=${GPU_BUNDLE:-build-emu/gpu-bundle} GPU_CHECK_DEVICE=${GPU_CHECK_DEVICE:-cuda}
    grep -qx 'emu=1' "$GPU_BUNDLE/BUILD-INFO" 2>/dev/null ||
        { echo "gpu-rehearse: $GPU_BUNDLE is not an emulator bundle (make gpu-bundle EMU=1)" >&2; exit 2; }
    ;;
--missing-cuda) mode=missing-cuda; shift ;;
--renamed) mode=renamed; lib=${2:?--renamed LIB}; shift 2 ;;
esac
out=${1:-out/rehearsal}
mkdir -p "$out" && out=$(cd "$out" && pwd)
bundle=${GPU_BUNDLE:-build/gpu-bundle}
[ -f "$bundle/MANIFEST.tsv" ] || { echo "gpu-rehearse: no bundle in $bundle (make gpu-bundle)" >&2; exit 2; }
clone=$(mktemp -d "${TMPDIR:-/tmp}/gpu-rehearse.XXXXXX")
trap 'rm -rf "$clone"' EXIT
git clone -q . "$clone/repo" || exit 2
mkdir -p "$clone/repo/$(dirname "$bundle")"
cp -a "$bundle" "$clone/repo/$bundle"
echo "gpu-rehearse: $(git rev-parse --short HEAD) cloned into $clone/repo, $bundle copied in ($(du -sh "$bundle" | cut -f1))" >&2
if [ "$mode" = renamed ]; then
    mv "$clone/repo/$bundle/lib/$lib" "$clone/repo/$bundle/lib/$lib.renamed" || exit 2
fi

# the commands run inside the namespace: hide, then check
hide=$clone/hide.sh
{
    echo 'set -u'
    for f in "$bundle"/lib/*; do
        n=${f##*/}
        n=${n%.gz}
        for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib; do
            [ -e "$d/$n" ] && echo "mount --bind /dev/null \"\$(readlink -f $d/$n)\" || exit 2"
        done
    done
    if [ -d "$bundle/mpi" ]; then
        for p in mpirun mpiexec orterun orted ompi_info; do
            f=$(command -v "$p") && readlink -f "$f"
        done | sort -u | while IFS= read -r f; do
            echo "mount --bind /dev/null \"$f\" || exit 2"
        done
        {
            command -v ompi_info >/dev/null &&
                ompi_info --parsable --path all 2>/dev/null | sed -n 's/^path:\(pkglibdir\|pkgdatadir\|sysconfdir\)://p'
            for f in /lib/x86_64-linux-gnu/libpmix.so.2 /usr/lib/x86_64-linux-gnu/libpmix.so.2; do
                [ -e "$f" ] || continue
                d=$(dirname "$(readlink -f "$f")")
                echo "$d/pmix"
                echo "$(cd "$d/.." && pwd)/share/pmix"
            done
        } | sort -u | while IFS= read -r d; do
            [ -d "$d" ] && echo "mount -t tmpfs none \"$d\" || exit 2"
        done
    fi
    if [ "$mode" = missing-cuda ]; then
        echo "mount -t tmpfs none \"$(readlink -f "${CUDA_HOME:-/usr/local/cuda}/lib64")\" || exit 2"
    fi
    echo 'exec "$@"'
} >"$hide"
# PATH without Open MPI's programs (the bundle brings its mpirun): each folder that
# has them becomes a folder of links to its other entries
path=$PATH
if [ -d "$bundle/mpi" ]; then
    path="" n=0
    IFS=: read -r -a dirs <<<"$PATH"
    for d in "${dirs[@]}"; do
        if compgen -G "$d/mpirun*" >/dev/null || compgen -G "$d/orte*" >/dev/null ||
            compgen -G "$d/ompi*" >/dev/null || compgen -G "$d/mpiexec*" >/dev/null; then
            n=$((n + 1))
            shadow=$clone/path-$n
            mkdir -p "$shadow"
            for f in "$d"/*; do
                case ${f##*/} in mpirun* | mpiexec* | orte* | ompi* | oshrun* | shmemrun* | opal_* ) continue ;; esac
                ln -s "$f" "$shadow/${f##*/}"
            done
            d=$shadow
        fi
        path="$path${path:+:}$d"
    done
fi
run=(env PATH="$path" OUT="$out" GPU_CHECK_DEVICE="${GPU_CHECK_DEVICE:-cpu}" GPU_BUNDLE="$bundle" "$clone/repo/scripts/gpu-check.sh")
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
    echo "gpu-rehearse: the bundle's lib/ hidden on this machine$([ -d "$bundle/mpi" ] && echo ", and its Open MPI (mpirun, plug-ins, help, configuration)")$([ $mode = missing-cuda ] && echo ', and the CUDA libraries')" >&2
    (cd "$clone/repo" && unshare -m bash "$hide" "${run[@]}")
else
    [ "$mode" = missing-cuda ] && { echo "gpu-rehearse: --missing-cuda needs root and unshare" >&2; exit 2; }
    echo "gpu-rehearse: not root or no unshare: this machine's copies of the bundle's libraries stay visible" >&2
    (cd "$clone/repo" && "${run[@]}")
fi
rc=$?
echo "gpu-rehearse: gpu-check exited $rc; summary: $out/gpu-check.md" >&2
exit $rc
