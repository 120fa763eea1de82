#!/bin/sh
# The version --version prints, for make (GLOW_VERSION): `git describe --tags
# --always --dirty` of this checkout (TAG-N-gHASH[-dirty], a leading "v" of the
# tag dropped); without any tag, the VERSION file's version with the commit
# (0.1.0-gHASH[-dirty]); without git, VERSION alone.
cd "$(dirname "$0")/.." || exit 1
base=$(head -n 1 VERSION 2>/dev/null)
[ -n "$base" ] || base=unknown
d=$(git describe --tags --always --dirty 2>/dev/null) || d=
if [ -z "$d" ]; then
    echo "$base"
elif git describe --tags >/dev/null 2>&1; then
    echo "${d#v}"
else
    echo "$base-g$d"
fi
