# Common set-up for the Bats tests: the tools of this build on PATH, a scratch
# folder per test, and small assertions.
ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
BUILD="${BUILD:-build}"
PATH="$ROOT/$BUILD/bin:$PATH"
REF_DIR="${GLOW_REF:-$ROOT/../shared/reference}"
export PATH ROOT REF_DIR

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
