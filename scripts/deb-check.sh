#!/usr/bin/env bash
# make deb-check: install the package of make deb, use it, remove it.
#   scripts/deb-check.sh system|private [DEB]
# system (as root; CI's fresh machine): dpkg -i on this machine, which checks the
#   declared Depends against what is installed; then from another folder
#   glow-train --help, man -w glow-train, the completion, and a tiny training
#   (Fashion-MNIST images, or shardgen's, at 8x8, -c tiny found by name in
#   /usr/share/glow/configs); dpkg -r, and every file of the package gone.
# private (anyone): the same with dpkg --root into a scratch root with its own
#   dpkg database (--force-depends, as that database is empty), each declared
#   dependency checked installed on this machine by dpkg-query instead, the
#   tools run from the scratch root.
# Prints what it did, "deb-check: MODE: ok" at the end; exit 1 on a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
mode=${1:-private}
deb=${2:-$(ls -t "$BUILD"/glow-tools_*.deb 2>/dev/null | head -n 1)}
me=deb-check
fail() { echo "$me: $mode: $*" >&2; exit 1; }
[ -f "$deb" ] || fail "no package (make deb)"
deb=$(readlink -f "$deb")
src=$PWD
pkg=$(dpkg-deb -f "$deb" Package)
work=$(mktemp -d "${TMPDIR:-/tmp}/glow-deb-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

case $mode in
system)
    [ "$(id -u)" = 0 ] || fail "needs root (dpkg -i); run '$me private' instead"
    ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        fail "$pkg is installed already; not touching it"
    root=
    t0=$(date +%s.%N)
    dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; dpkg -r "$pkg" >/dev/null 2>&1 || true; fail "dpkg -i failed"; }
    ;;
private)
    root=$work/root
    mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
    : >"$root/var/lib/dpkg/status"
    : >"$root/var/lib/dpkg/available"
    # the host has what the package depends on
    dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ .*//' | while read -r dep; do
        [ -n "$dep" ] || continue
        dpkg-query -W -f='${Status}\n' "$dep" 2>/dev/null | grep -q 'install ok installed' ||
            { echo "$me: $mode: dependency $dep is not installed on this machine" >&2; exit 1; }
    done
    force=--force-depends
    [ "$(id -u)" = 0 ] || force+=,not-root
    t0=$(date +%s.%N)
    dpkg --root="$root" $force --log=/dev/null -i "$deb" >"$work/dpkg.log" 2>&1 ||
        { cat "$work/dpkg.log" >&2; fail "dpkg --root -i failed"; }
    ;;
*) echo "usage: $me system|private [DEB]" >&2; exit 2 ;;
esac
t1=$(date +%s.%N)
echo "$me: $mode: installed $(basename "$deb") in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"

bin=$root/usr/bin
cd "$work"
"$bin/glow-train" --help | grep -q '^Usage: ' || fail "glow-train --help"
"$bin/glow-train" --version
[ -f "$root/usr/share/man/man1/glow-train.1.gz" ] || fail "no man page glow-train.1.gz"
zcat "$root/usr/share/man/man1/glow-train.1.gz" | groff -man -ww -z 2>&1 | { ! grep .; } || fail "man page warnings"
if [ $mode = system ] && command -v man >/dev/null; then
    [ "$(man -w glow-train)" = /usr/share/man/man1/glow-train.1.gz ] || fail "man -w glow-train: $(man -w glow-train 2>&1)"
fi
[ -f "$root/usr/share/bash-completion/completions/glow-train" ] || fail "no bash completion"
# a tiny training from this other folder, the config found by name
if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    "$bin/glow-prep" -q --size 8 --limit 64 -o data /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
else
    mkdir data
    PYTHONPATH="$src/test/data" /usr/bin/python3 "$src/test/data/shardgen.py" data/a.glow --n 64 --c 1 --h 8 --w 8
fi
OMP_NUM_THREADS=1 "$bin/glow-train" -q -c tiny --device cpu --steps 4 -o run data || fail "tiny training"
[ -s run/checkpoint.safetensors ] || fail "no checkpoint"
"$bin/glow-bpd" --device cpu run/checkpoint.safetensors data | grep -q '^bpd ' || fail "glow-bpd on the tiny run"
echo "$me: $mode: glow-train --help, man page, completion, a tiny training (4 steps, -c tiny) and glow-bpd: ok"

files=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }')
t0=$(date +%s.%N)
if [ $mode = system ]; then dpkg -r "$pkg" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r failed"; }
else dpkg --root="$root" $force --log=/dev/null -r "$pkg" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --root -r failed"; }; fi
t1=$(date +%s.%N)
left=$(for f in $files; do [ ! -e "$root$f" ] || echo "$f"; done)
[ -z "$left" ] || fail "left after removal: $left"
[ $mode = private ] && [ -n "$(find "$root/usr" -type f 2>/dev/null)" ] && fail "files left under the root: $(find "$root/usr" -type f)"
echo "$me: $mode: removed in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, all $(wc -w <<<"$files") files gone"
echo "$me: $mode: ok"
