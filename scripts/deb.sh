#!/usr/bin/env bash
# make deb: a Debian package of the tools of this build, with dpkg-deb alone (no
# network, no debian/ folder): $BUILD/glow-tools_VERSION_ARCH.deb.
#   scripts/deb.sh TOOL...
# The tree is make install's (scripts/install.sh) with PREFIX=/usr, man pages
# gzipped, docs in /usr/share/doc/glow-tools with a copyright file, no MANIFEST
# (dpkg keeps the list); the programs stripped. Depends is what dpkg-shlibdeps
# finds for the libraries the programs are linked with; a library no Debian
# package provides (CUDA's under /usr/local/cuda, when the build has the CUDA
# backend) is named in a warning, and the package then needs it on the machine.
# The version is GLOW_VERSION with '-' as '+' and '.': 0.1.0+gd9ed188-1.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
GLOW_VERSION=${GLOW_VERSION:-$(scripts/version.sh)}
PKG=glow-tools
me=deb.sh
[ $# -gt 0 ] || { echo "usage: $me TOOL..." >&2; exit 2; }
for c in dpkg-deb dpkg-shlibdeps fakeroot; do
    command -v $c >/dev/null || { echo "$me: $c not found (dpkg-dev, fakeroot)" >&2; exit 1; }
done

version=$(sed -e 's/^v//' -e 's/-/+/' -e 's/-/./g' <<<"$GLOW_VERSION")-1
arch=$(dpkg --print-architecture)
stage=$BUILD/deb/$PKG
deb=$BUILD/${PKG}_${version}_${arch}.deb
rm -rf "$BUILD/deb" "$BUILD"/${PKG}_*.deb
mkdir -p "$stage/DEBIAN"

DESTDIR=$PWD/$stage PREFIX=/usr MANGZ=1 DOCNAME=$PKG NO_MANIFEST=1 BUILD=$BUILD \
    GLOW_VERSION=$GLOW_VERSION scripts/install.sh install "$@" >/dev/null
for t in "$@"; do strip --strip-unneeded "$stage/usr/bin/$t"; done

cat >"$stage/usr/share/doc/$PKG/copyright" <<EOT
Glow in C and CUDA: Unix tools that train the Glow normalizing flow.
Version $GLOW_VERSION, packaged from the project's own sources by make deb.
See /usr/share/doc/$PKG/README.md.
EOT
chmod 644 "$stage/usr/share/doc/$PKG/copyright"

# Depends from the linked libraries (dpkg-shlibdeps wants a debian/control)
work=$BUILD/deb/shlibs
mkdir -p "$work/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' $PKG $PKG >"$work/debian/control"
bins=()
for t in "$@"; do bins+=("$PWD/$stage/usr/bin/$t"); done
deps=$(cd "$work" && dpkg-shlibdeps -O --ignore-missing-info "${bins[@]}" 2>warnings |
       sed -n 's/^shlibs:Depends=//p')
# the libraries resolved outside every Debian package (one dpkg -S for them all)
libs=$(for b in "${bins[@]}"; do ldd "$b"; done | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u)
owned=$(dpkg -S $(for l in $libs; do echo "$l" "/usr$l" "$(readlink -f "$l")"; done) 2>/dev/null |
        sed 's/^.*: //' | sort -u || true)
unpackaged=$(for l in $libs; do
                 grep -qxF -e "$l" -e "/usr$l" -e "$(readlink -f "$l")" <<<"$owned" || echo "$l"; done)
[ -z "$unpackaged" ] || echo "$me: warning: libraries no Debian package provides (the machine needs them): $(echo $unpackaged)" >&2
[ -n "$deps" ] || { echo "$me: dpkg-shlibdeps found no dependencies:" >&2; cat "$work/warnings" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOT
Package: $PKG
Version: $version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-Glow in C and CUDA <glow-tools@localhost>}
Installed-Size: $size
Depends: $deps
Recommends: make, bash-completion, gnuplot-nox
Suggests: dataset-fashion-mnist
Section: science
Priority: optional
Description: Glow normalizing flow: prepare images, train, sample, score
 Small Unix tools in C11 that prepare image data (glow-prep, pngcat), train the
 Glow normalizing flow of Kingma and Dhariwal (glow-train), sample from it
 (glow-sample), score images (glow-bpd), inspect and import checkpoints
 (glow-ckpt), plot training curves (glow-plot, with gnuplot) and work with
 latents (glow-encode, glow-decode, glow-latent), on
 the CPU (oneDNN, OpenMP)$(grep -q libcudart <<<"$(ldd "${bins[0]}")" && echo ' and CUDA GPUs').
 .
 The shipped configs are in /usr/share/glow/configs (glow-train -c NAME), the
 pipelines in /usr/share/glow/pipelines; man pages and bash completion included.
EOT
(cd "$stage" && find usr -type f -print0 | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 644 "$stage/DEBIAN/control" "$stage/DEBIAN/md5sums"
fakeroot dpkg-deb -Zxz --build "$stage" "$deb" >/dev/null
echo "$me: $deb ($(du -k "$deb" | cut -f1) KiB; installed $size KiB)"
echo "$me: Depends: $deps"
