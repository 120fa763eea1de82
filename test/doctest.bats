#!/usr/bin/env bats
# The doc-test runner itself (test/doc/doctest.py, docs/doc-tests.md): what it
# extracts, what its declarations do, and that each kind of failure is caught
# and named by file, line and command. The documentation's own blocks run in
# the part "doc" of test/run.sh.
bats_require_minimum_version 1.5.0
load helpers

DT() { python3 "$ROOT/test/doc/doctest.py" --build "$BUILD" --fixture "$TMP/fx" "$@"; }

setup() {
    TMP="$BATS_TEST_TMPDIR"
    cd "$TMP" || return 1
    mkdir -p fx
    py "$ROOT/test/data/shardgen.py" fx/s.glow --n 4 --c 1 --h 4 --w 4
}

@test "doctest: shell blocks run in a copy of the fixture; other fences are left alone" {
    cat > a.md <<'MD'
# A
```sh
glow-prep s.glow --limit 2 > two.glow   # a comment
test -s two.glow
```
```python
raise SystemExit(1)
```
```
glow-prep --no-such-option
```
```console
$ pngcat --limit 1 s.glow > one.png
output that is not a command
```
MD
    run DT "$TMP/a.md"
    echo "$output"
    [ "$status" -eq 0 ]
    assert_contains "$output" "a.md:3 [run"
    assert_contains "$output" "a.md:13 [run"
    assert_contains "$output" "Markdown blocks: 2 run, 0 syntax-checked only"
    assert_contains "$output" "doc: 2 passed, 0 failed"
    [ -f fx/s.glow ] && [ ! -e fx/two.glow ]
}

@test "doctest: a failing command is named by file, line and command" {
    printf '# B\n\n```sh\ntrue\nglow-prep missing.glow \\\n  --limit 3 > x.glow\n```\n' > b.md
    run DT "$TMP/b.md"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "b.md:5: exit 1: glow-prep missing.glow    --limit 3 > x.glow"
    assert_contains "$output" "missing.glow"
    assert_contains "$output" "doc: 0 passed, 1 failed"
}

@test "doctest: an error on stderr fails a block that exits 0" {
    printf '```sh\necho "x: error: it broke" >&2\n```\n```sh\necho fine >&2\n```\n' > c.md
    run DT "$TMP/c.md"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "FAIL $TMP/c.md:2 [run]"
    assert_contains "$output" "printed an error"
    assert_contains "$output" "doc: 1 passed, 1 failed"
}

@test "doctest: skip still checks bash syntax and every option against --help" {
    cat > d.md <<'MD'
<!-- doctest: skip a GPU -->
```sh
glow-train --device cuda -c x.yml -o run data/ | glow-bpd --per-image x
```
<!-- doctest: skip a GPU -->

```sh
mpirun -np 4 glow-train --no-such-flag -c x.yml data/
```
<!-- doctest: skip broken -->
```sh
if true; then echo
```
<!-- doctest: skip subcommand options -->
```sh
glow-latent mix --steps 3 --slerp x.glow; glow-ckpt import a.pt -o b.safetensors
glow-latent mix --bogus x.glow
```
MD
    run DT "$TMP/d.md"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "ok   $TMP/d.md:3 [syntax]"
    assert_contains "$output" "d.md:8: glow-train --help does not know --no-such-flag"
    assert_contains "$output" "d.md:12: bash -n:"
    assert_contains "$output" "d.md:17: glow-latent mix --help does not know --bogus"
    [[ "$output" != *"does not know --slerp"* ]]
    [[ "$output" != *"does not know --steps"* ]]
    [[ "$output" != *"does not know -o"* ]]
    assert_contains "$output" "Markdown blocks: 0 run, 4 syntax-checked only"
    assert_contains "$output" "doc: 1 passed, 3 failed"
}

@test "doctest: sub, before, after, env and doctest-file declarations" {
    cat > e.md <<'MD'
<!-- doctest-file: env GREETING=hello -->
Text.
<!-- doctest: sub /data/huge.glow => s.glow
     before cp s.glow t.glow
     after test -s out.glow && test "$GREETING" = hello -->
```sh
glow-prep /data/huge.glow t.glow > out.glow
```
<!-- doctest: after test -e never-made -->
```sh
true
```
<!-- doctest: sub not-there => x -->
```sh
true
```
<!-- doctest: frobnicate -->
MD
    run DT "$TMP/e.md"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "e.md:17: unknown doctest declaration 'frobnicate'"
    sed -i '$d' e.md
    printf '<!-- doctest: skip x -->\nText, no block.\n' > f.md
    run DT "$TMP/f.md"
    [ "$status" -eq 1 ]
    assert_contains "$output" "f.md:1: a doctest declaration not followed by a shell block"
    run DT "$TMP/e.md"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "ok   $TMP/e.md:7 [run"
    assert_contains "$output" "FAIL $TMP/e.md:11 [run]"
    assert_contains "$output" "(after) test -e never-made"
    assert_contains "$output" "doctest sub: 'not-there' is not in the block"
    assert_contains "$output" "doc: 1 passed, 2 failed"
}

@test "doctest: --help examples and man page examples are found" {
    mkdir -p man
    cat > man/tool.1 <<'MAN'
.TH TOOL 1
.SH NAME
tool
.SH EXAMPLES
.EX
glow\-prep \-\-limit 3 in.glow > out.glow
glow\-prep \-\-nope in.glow
.EE
MAN
    run DT "$TMP/man/tool.1"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "tool.1:7: glow-prep --help does not know --nope"
    run python3 "$ROOT/test/doc/doctest.py" --build "$BUILD" --list
    [ "$status" -eq 0 ]
    assert_contains "$output" "glow-prep --help:"
    assert_contains "$output" "glow-prep fm-train.glow --limit 64 | pngcat > grid.png"
}

@test "doctest: man page examples run, with roff-comment declarations" {
    mkdir -p man
    # the file-wide env reaches both examples; sub, before and after are the
    # second one's; the first runs as written (a failure would name its line)
    cat > man/tool.1 <<'MAN'
.TH TOOL 1
.\" doctest-file: env GREETING=hello
.SH NAME
tool
.SH EXAMPLES
.EX
glow\-prep \-\-limit 2 s.glow > two.glow
test "$GREETING" = hello
.EE
Some text.
.\" doctest: sub /data/huge.glow => t.glow
.\" a comment between parts nothing
.\" doctest: before cp s.glow t.glow
.\" doctest: after test -s out.glow && test "$GREETING" = hello
.nf
glow\-prep /data/huge.glow > out.glow
.fi
.\" doctest: skip a GPU
.EX
glow\-train \-\-device cuda \-\-nope data/
.EE
MAN
    run DT "$TMP/man/tool.1"
    echo "$output"
    [ "$status" -eq 1 ]
    assert_contains "$output" "ok   $TMP/man/tool.1:7 [run"
    assert_contains "$output" "ok   $TMP/man/tool.1:16 [run"
    assert_contains "$output" "tool.1:20: glow-train --help does not know --nope"
    assert_contains "$output" "man page examples: 2 run, 1 syntax-checked only"
    assert_contains "$output" "doc: 2 passed, 1 failed"
    # a failing man example is named by page, line and command
    sed -i 's/^test "\$GREETING" = hello$/glow-prep missing.glow/' man/tool.1
    run DT "$TMP/man/tool.1"
    echo "$output"
    assert_contains "$output" "tool.1:8: exit 1: glow-prep missing.glow"
    # a sub whose text is not in the example
    sed -i 's|^\.\\" doctest: sub /data/huge.glow|.\\" doctest: sub /data/gone.glow|' man/tool.1
    run DT "$TMP/man/tool.1"
    assert_contains "$output" "doctest sub: '/data/gone.glow' is not in the block"
    # an unknown declaration; one that no example follows (text between, or
    # outside EXAMPLES)
    printf '.TH T 1\n.SH EXAMPLES\n.\\" doctest: frobnicate\n.nf\ntrue\n.fi\n' > man/u.1
    run DT "$TMP/man/u.1"
    [ "$status" -eq 1 ]
    assert_contains "$output" "u.1:3: unknown doctest declaration 'frobnicate'"
    printf '.TH T 1\n.SH EXAMPLES\n.\\" doctest: skip x\nText.\n.nf\ntrue\n.fi\n' > man/v.1
    run DT "$TMP/man/v.1"
    [ "$status" -eq 1 ]
    assert_contains "$output" "v.1:3: a doctest declaration not followed by an example"
    printf '.TH T 1\n.SH SYNOPSIS\n.\\" doctest: skip x\n.nf\ntool\n.fi\n' > man/w.1
    run DT "$TMP/man/w.1"
    [ "$status" -eq 1 ]
    assert_contains "$output" "w.1:3: a doctest declaration not followed by an example"
    printf '.TH T 1\n.SH EXAMPLES\n.nf\ntrue\n.\\" doctest: skip x\n.fi\n' > man/x.1
    run DT "$TMP/man/x.1"
    [ "$status" -eq 1 ]
    assert_contains "$output" "x.1:5: a doctest declaration inside an example"
}
