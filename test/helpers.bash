# Common set-up for the Bats tests: the tools of this build on PATH, a scratch
# folder per test, small assertions, and the fixtures several files share.
ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BUILD="${BUILD:-build}"
PATH="$ROOT/$BUILD/bin:$PATH"
REF_DIR="${GLOW_REF:-$ROOT/../shared/reference}"
export PATH ROOT REF_DIR

# The reference models: affine coupling with an invertible 1x1 convolution, 3x16x16;
# additive coupling with LU, class-conditional (3 classes), 1x8x8, 5 bits.
AFF="$REF_DIR/affine-invconv/model.safetensors"
LU="$REF_DIR/additive-lu-ycond/model.safetensors"

setup() {
    TMP="$BATS_TEST_TMPDIR"
    cd "$TMP" || return 1
}

# assert_contains "$output" "text"
assert_contains() {
    if [[ "$1" != *"$2"* ]]; then
        echo "expected to find: $2"
        echo "in: $1"
        return 1
    fi
}

# py ARGS...: the system's Python (it has NumPy), with the modules of test/data
# (st, shardgen, pngdecode) importable.
py() { PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$@"; }

# st COMMAND ARGS...: read, edit or write a safetensors file by a second reader and
# writer (test/data/st.py lists the commands).
st() { py "$ROOT/test/data/st.py" "$@"; }

# shardgen OUT [OPTIONS]: a shard stream from the independent writer
# (test/data/shardgen.py lists the options).
shardgen() { py "$ROOT/test/data/shardgen.py" "$@"; }

# with_training SRC OUT [--ema F] [--moments M V] [--meta KEY=VALUE]...: checkpoint
# SRC plus training state by another writer: ema.* = F * params (the fixed tensors
# copied), optim.*.m = M and optim.*.v = V for the trained ones, metadata set.
with_training() { st train "$@"; }

# json_get FILE EXPR...: print(EXPR...) with d the parsed JSON document of FILE
# ("-": standard input).
json_get() {
    py -c 'import json, sys
d = json.load(sys.stdin if sys.argv[1] == "-" else open(sys.argv[1]))
exec("print(%s)" % sys.argv[2])' "$1" "$2"
}

# tiny_config OUT [SECTION.KEY=VALUE]...: configs/tiny.yml (a model that trains a
# step in milliseconds) with the keys given replaced; each must be in the file.
tiny_config() {
    py - "$ROOT/configs/tiny.yml" "$@" <<'EOF'
import re, sys
src, out, sets = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
lines, section = open(src).read().splitlines(), None
for i, line in enumerate(lines):
    m = re.match(r"(\w+):\s*(#.*)?$", line)
    if m:
        section = m.group(1)
    m = re.match(r"  (\w+):", line)
    if m and "%s.%s" % (section, m.group(1)) in sets:
        lines[i] = "  %s: %s" % (m.group(1), sets.pop("%s.%s" % (section, m.group(1))))
if sets:
    sys.exit("tiny_config: not in configs/tiny.yml: " + " ".join(sets))
open(out, "w").write("\n".join(lines) + "\n")
EOF
}
