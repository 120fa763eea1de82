#!/usr/bin/env bash
# make install / make uninstall (Makefile, README "Installing").
#   scripts/install.sh install TOOL...   the tools of $BUILD/bin and the rest
#   scripts/install.sh uninstall         what the last installs listed
# Environment: PREFIX (default /usr/local), DESTDIR (a staging root, default
# none), BUILD (default build), GLOW_VERSION (for the man pages' footers),
# MANGZ=1 (man pages gzip -9n, as Debian ships them), DOCNAME (the folder under
# share/doc, default glow), NO_MANIFEST=1 (no share/glow/MANIFEST: a package,
# whose manager keeps its own list).
#
# Layout under PREFIX: bin/TOOL; share/glow/configs/*.yml (found by name,
# libcommon/config/config_find.h) and share/glow/pipelines/*.mk (BIN and CONFIG
# defaulting to the installed tools and configs); share/man/man1, man5;
# share/doc/DOCNAME (README.md, docs/*.md); share/bash-completion/completions/TOOL.
# share/glow/MANIFEST lists every file installed ('f PATH') and every folder the
# install created ('d PATH'), paths without DESTDIR; uninstall removes the files,
# then those folders when empty, then the MANIFEST. Installing again adds to it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
MANGZ=${MANGZ:-0}
DOCNAME=${DOCNAME:-glow}
GLOW_VERSION=${GLOW_VERSION:-$(scripts/version.sh)}
me=install.sh

case $PREFIX in /*) ;; *) echo "$me: PREFIX must be an absolute path, got '$PREFIX'" >&2; exit 2 ;; esac
PREFIX=${PREFIX%/}
DATA=$PREFIX/share/glow
MANIFEST=$DATA/MANIFEST

cmd=${1:-}
[ $# -gt 0 ] && shift

declare -a entries=()
# mkdirs DIR: create DIR (under DESTDIR) and its missing parents, recording each
mkdirs() {
    local d=$1 missing=()
    while [ "$d" != / ] && [ ! -d "$DESTDIR$d" ]; do missing=("$d" "${missing[@]}"); d=$(dirname "$d"); done
    for d in "${missing[@]}"; do
        mkdir -m 755 "$DESTDIR$d"
        entries+=("d $d")
    done
}
# put MODE SRC DEST: copy SRC to DEST (a path under PREFIX)
put() {
    local mode=$1 src=$2 dest=$3
    mkdirs "$(dirname "$dest")"
    cp "$src" "$DESTDIR$dest.tmp"
    chmod "$mode" "$DESTDIR$dest.tmp"
    mv -f "$DESTDIR$dest.tmp" "$DESTDIR$dest"
    entries+=("f $dest")
}

do_install() {
    [ $# -gt 0 ] || { echo "$me: install: no tools named" >&2; exit 2; }
    local t f name sec
    [ -z "$DESTDIR" ] || mkdir -p "$DESTDIR"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/glow-install.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    for t in "$@"; do
        [ -x "$BUILD/bin/$t" ] || { echo "$me: $BUILD/bin/$t: not built (run make)" >&2; exit 1; }
        put 755 "$BUILD/bin/$t" "$PREFIX/bin/$t"
    done
    for f in configs/*.yml; do put 644 "$f" "$DATA/configs/${f##*/}"; done
    # the pipelines run the installed tools on the installed configs by default
    for f in pipelines/*.mk; do
        sed -e "s|^BIN\\( *\\):= \$(BUILD)/bin\$|BIN\\1?= $PREFIX/bin|" \
            -e "s|^\\(CONFIG *?= \\)configs/|\\1$DATA/configs/|" "$f" >"$tmp/${f##*/}"
        put 644 "$tmp/${f##*/}" "$DATA/pipelines/${f##*/}"
    done
    for f in man/*.[15]; do
        name=${f##*/}; sec=${name##*.}
        sed -e "s|^\\(\\.TH .*\\) \"glow\" |\\1 \"glow $GLOW_VERSION\" |" "$f" >"$tmp/$name"
        if [ "$MANGZ" = 1 ]; then
            gzip -9n "$tmp/$name"
            put 644 "$tmp/$name.gz" "$PREFIX/share/man/man$sec/$name.gz"
        else
            put 644 "$tmp/$name" "$PREFIX/share/man/man$sec/$name"
        fi
    done
    put 644 README.md "$PREFIX/share/doc/$DOCNAME/README.md"
    for f in docs/*.md; do put 644 "$f" "$PREFIX/share/doc/$DOCNAME/docs/${f##*/}"; done
    for t in "$@"; do put 644 completion/glow.bash "$PREFIX/share/bash-completion/completions/$t"; done
    if [ "${NO_MANIFEST:-0}" != 1 ]; then
        mkdirs "$DATA"
        { [ -f "$DESTDIR$MANIFEST" ] && grep -v "^f $MANIFEST\$" "$DESTDIR$MANIFEST"
          printf '%s\n' "${entries[@]}"; } | sort -u >"$DESTDIR$MANIFEST.tmp"
        mv -f "$DESTDIR$MANIFEST.tmp" "$DESTDIR$MANIFEST"
    fi
    echo "$me: installed ${#entries[@]} files and folders under $DESTDIR$PREFIX"
}

do_uninstall() {
    [ -f "$DESTDIR$MANIFEST" ] || { echo "$me: $DESTDIR$MANIFEST: not found: nothing installed under $DESTDIR$PREFIX" >&2; exit 1; }
    local kind path n=0 dirs=()
    while read -r kind path; do
        case $kind:$path in
        f:"$PREFIX"/*) rm -f "$DESTDIR$path"; n=$((n + 1)) ;;
        # folders: under PREFIX, PREFIX itself or its parents (removed only when empty)
        d:"$PREFIX"/* | d:"$PREFIX") dirs+=("$path") ;;
        d:/*) case $PREFIX/ in "${path%/}"/*) dirs+=("$path") ;; *) echo "$me: $MANIFEST: '$path' is not on $PREFIX; not removed" >&2 ;; esac ;;
        *) echo "$me: $MANIFEST: '$kind $path' is outside $PREFIX; not removed" >&2 ;;
        esac
    done <"$DESTDIR$MANIFEST"
    rm -f "$DESTDIR$MANIFEST"
    # the folders install created, deepest first, when nothing else is in them
    if [ ${#dirs[@]} -gt 0 ]; then
        printf '%s\n' "${dirs[@]}" | sort -r | while read -r path; do
            rmdir "$DESTDIR$path" 2>/dev/null || true
        done
    fi
    echo "$me: removed $n files from $DESTDIR$PREFIX"
}

case $cmd in
install) do_install "$@" ;;
uninstall) do_uninstall ;;
*) echo "usage: $me install TOOL... | uninstall" >&2; exit 2 ;;
esac
