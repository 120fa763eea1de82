#!/usr/bin/env bats
# glow-bpd on the reference models: against the reference cases' expected bpd,
# on images that glow-sample draws, per-image output, batch and seed behaviour,
# --ood AUROC (recomputed here in Python), and its errors. Shard files are made
# by test/data/shardgen.py (an independent writer) or by glow-sample.
bats_require_minimum_version 1.5.0
load helpers

# case_shard CASE OUT: the case's input.image (and input.label) as a shard file;
# prints the mean of its expect.bpd.
case_shard() {
    py - "$REF_DIR/$1/case.safetensors" "$2" <<'EOF'
import sys
import numpy as np
from shardgen import encode
from st import File
case = File(sys.argv[1])
labels = case.tensor("input.label") if "input.label" in case.names else None
open(sys.argv[2], "wb").write(encode(case.tensor("input.image"), labels))
print("%.6f" % case.tensor("expect.bpd").astype(np.float64).mean())
EOF
}

# const_shard OUT N C H W VALUE [K]: N images of one gray level; with K, image i
# is labelled i mod K.
const_shard() {
    shardgen "$1" --n "$2" --c "$3" --h "$4" --w "$5" --fill "$6" ${7:+--label-mod "$7"}
}

# Fields of the summary line "bpd M ± S (n=N)".
summary_mean() { sed -n 's/^bpd \([0-9.]*\) ± .*/\1/p' <<<"$1"; }

@test "the mean bpd of a reference case's images matches expect.bpd" {
    for c in affine-invconv additive-lu-ycond; do
        want=$(case_shard "$c" "$c.glow")
        run glow-bpd --device cpu "$REF_DIR/$c/model.safetensors" "$c.glow"
        echo "$c: want $want, got: $output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"(n=4)" ]]
        got=$(summary_mean "$output")
        # glow-bpd draws its own noise within each quantisation bin; the numbers
        # move by a few thousandths (5-bit case), far less than any model error.
        py -c "import sys; sys.exit(not abs($got - $want) < 0.02)"
    done
}

@test "sampled images score finitely and consistently" {
    glow-sample "$AFF" -n 12 -t 1 >s.glow
    run glow-bpd --json "$AFF" s.glow
    [ "$status" -eq 0 ]
    glow-bpd --per-image "$AFF" s.glow >per.tsv 2>summary.txt
    py - "$output" per.tsv summary.txt <<'EOF'
import json, math, sys
j = json.loads(sys.argv[1])
rows = [l.split("\t") for l in open(sys.argv[2]).read().splitlines()[1:]]
b = [float(r[1]) for r in rows]
assert j["n"] == 12 and len(b) == 12, (j, len(b))
assert all(math.isfinite(x) and 0 < x < 30 for x in b), b
assert abs(sum(b) / 12 - j["bpd"]) < 1e-5, (sum(b) / 12, j["bpd"])
sd = math.sqrt(sum((x - j["bpd"]) ** 2 for x in b) / 11)
assert abs(sd / math.sqrt(12) - j["sem"]) < 1e-5
assert j["seed"] == 0 and j["ema"] is False and "auroc" not in j
assert open(sys.argv[3]).read().startswith("bpd %.4f ± %.4f (n=12)" % (j["bpd"], j["sem"]))
EOF
}

@test "--per-image: a header, one line per image with index and label" {
    glow-sample "$LU" -n 9 >s.glow
    glow-bpd --per-image "$LU" s.glow >per.tsv
    [ "$(head -n 1 per.tsv)" = "$(printf 'index\tbpd\tlabel')" ]
    [ "$(wc -l <per.tsv)" -eq 10 ]
    [ "$(tail -n +2 per.tsv | cut -f1 | tr '\n' ' ')" = "0 1 2 3 4 5 6 7 8 " ]
    [ "$(tail -n +2 per.tsv | cut -f3 | tr '\n' ' ')" = "0 1 2 0 1 2 0 1 2 " ]
    glow-sample "$AFF" -n 3 | glow-bpd --per-image "$AFF" >aff.tsv
    [ "$(tail -n +2 aff.tsv | cut -f3 | tr '\n' ' ')" = "- - - " ]
    glow-bpd --per-image --limit 4 "$LU" s.glow >lim.tsv
    [ "$(wc -l <lim.tsv)" -eq 5 ]
}

@test "the numbers do not depend on --batch; they do depend on --seed" {
    glow-sample "$AFF" -n 10 -t 1 >s.glow
    glow-bpd --per-image --batch 1 "$AFF" s.glow >b1.tsv
    glow-bpd --per-image --batch 7 "$AFF" s.glow >b7.tsv
    glow-bpd --per-image "$AFF" s.glow >b64.tsv
    cmp b1.tsv b7.tsv
    cmp b1.tsv b64.tsv
    glow-bpd --per-image --seed 3 "$AFF" s.glow >s3.tsv
    glow-bpd --per-image --seed 3 --batch 4 "$AFF" s.glow >s3b.tsv
    cmp s3.tsv s3b.tsv
    run ! cmp -s b1.tsv s3.tsv
    # Different noise, same images: the bpd moves only a little.
    paste b1.tsv s3.tsv | tail -n +2 | py -c "
import sys
for l in sys.stdin:
    f = l.split('\t')
    assert abs(float(f[1]) - float(f[4])) < 0.01, l"
}

@test "files, folders and standard input give the same result" {
    mkdir dir
    glow-sample "$AFF" -n 5 --seed 1 -o dir/a.glow
    glow-sample "$AFF" -n 4 --seed 2 -o dir/b.glow
    one=$(glow-bpd "$AFF" dir/a.glow dir/b.glow)
    [ "$one" = "$(glow-bpd "$AFF" dir)" ]
    [ "$one" = "$(cat dir/a.glow dir/b.glow | glow-bpd "$AFF")" ]
    [ "$one" = "$(cat dir/a.glow dir/b.glow | glow-bpd "$AFF" -)" ]
    [[ "$one" == *"(n=9)" ]]
}

@test "--ood prints the AUROC of the per-image bpd values" {
    glow-sample "$AFF" -n 16 -t 1 >s.glow
    const_shard c.glow 12 3 16 16 128
    glow-bpd --per-image "$AFF" s.glow >a.tsv
    glow-bpd --per-image "$AFF" c.glow >b.tsv
    run glow-bpd --json "$AFF" s.glow --ood c.glow
    [ "$status" -eq 0 ]
    j1=$output
    run glow-bpd --json "$AFF" c.glow --ood s.glow
    j2=$output
    py - a.tsv b.tsv "$j1" "$j2" <<'EOF'
import json, sys
col = lambda f: [float(l.split("\t")[1]) for l in open(f).read().splitlines()[1:]]
a, b = col(sys.argv[1]), col(sys.argv[2])
def auroc(x, y):  # P(y > x) + P(y == x) / 2
    return sum((v > u) + 0.5 * (v == u) for u in x for v in y) / (len(x) * len(y))
j1, j2 = json.loads(sys.argv[3]), json.loads(sys.argv[4])
assert abs(j1["auroc"] - auroc(a, b)) < 1e-9 and abs(j2["auroc"] - auroc(b, a)) < 1e-9
assert j1["ood"]["n"] == 12 and j1["n"] == 16
assert 0 <= j1["auroc"] <= 1 and abs(j1["auroc"] + j2["auroc"] - 1) < 1e-9
# Constant images are clearly apart from samples (on the low side here, the
# effect Nalisnick et al. report).
assert max(j1["auroc"], j2["auroc"]) > 0.99, (j1, j2)
EOF
    # The comma list and the repeated option name the same set.
    const_shard d.glow 5 3 16 16 40
    x=$(glow-bpd "$AFF" s.glow --ood c.glow,d.glow)
    [ "$x" = "$(glow-bpd "$AFF" s.glow --ood c.glow --ood d.glow)" ]
    [[ "$x" == *"ood bpd "*"(n=17)"* ]]
    [[ "$x" == *"auroc "* ]]
    # --per-image with --ood: a set column.
    glow-bpd --per-image "$AFF" s.glow --ood d.glow 2>/dev/null >both.tsv
    [ "$(head -n 1 both.tsv | cut -f1)" = "set" ]
    [ "$(grep -c '^ood' both.tsv)" -eq 5 ]
}

@test "images of another shape: a clear error with both shapes and the glow-prep hint" {
    glow-sample "$LU" -n 3 >lu.glow
    run --separate-stderr glow-bpd "$AFF" lu.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: lu.glow: images are 1x8x8 (CxHxW) but the model takes 3x16x16"
    assert_contains "$stderr" "glow-prep --pad/--size"
}

@test "an empty stream and a corrupt record are errors naming the place" {
    run --separate-stderr glow-bpd "$AFF" </dev/null
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: standard input: no images"
    shardgen bad.glow --n 8 --c 3 --h 16 --w 16 --per-record 4 --set-record 1 --set payload_crc=0
    run --separate-stderr glow-bpd "$AFF" bad.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: bad.glow: record 2:"
    run --separate-stderr glow-bpd "$AFF" <bad.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: standard input: record 2:"
    run --separate-stderr glow-bpd "$AFF" nosuch.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: nosuch.glow: no such file"
}

@test "a class-conditional model needs labels in range" {
    shardgen nolab.glow --n 4 --c 1 --h 8 --w 8
    run --separate-stderr glow-bpd "$LU" nolab.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "nolab.glow: the images have no labels, but the model is class-conditional"
    const_shard lab.glow 6 1 8 8 50 5
    run --separate-stderr glow-bpd "$LU" lab.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "lab.glow: image 3: label 3 outside the model's classes 0..2"
    # An unconditional model ignores labels.
    const_shard lab3.glow 4 3 16 16 50 7
    run glow-bpd "$AFF" lab3.glow
    [ "$status" -eq 0 ]
}

@test "a damaged checkpoint, --ema without EMA, and usage errors" {
    glow-sample "$AFF" -n 2 >s.glow
    st truncate "$AFF" trunc.safetensors 20000
    run --separate-stderr glow-bpd trunc.safetensors s.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: trunc.safetensors: "
    run --separate-stderr glow-bpd --ema "$AFF" s.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: $AFF: --ema: this checkpoint has no EMA weights"
    for args in "--batch 0" "--limit 0" "--seed x" "--device gpu" "--bogus" "--json --per-image"; do
        run --separate-stderr glow-bpd $args "$AFF" s.glow
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "Try 'glow-bpd --help'"
    done
    run --separate-stderr glow-bpd
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-bpd: missing the checkpoint (CKPT)"
    run --separate-stderr glow-bpd - <s.glow
    [ "$status" -eq 2 ]
    [ -z "$output" ]
    assert_contains "$stderr" "only one of the checkpoint, the data and the --ood set can come from standard input"
    run glow-bpd --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-bpd"
}

@test "images/s on stderr with --verbose only; stdout stays the summary" {
    glow-sample "$AFF" -n 3 >s.glow
    glow-bpd "$AFF" s.glow >out.txt 2>err.txt
    [ ! -s err.txt ]
    glow-bpd -v "$AFF" s.glow >out2.txt 2>err2.txt
    cmp out.txt out2.txt
    grep -q "images/s" err2.txt
}
