#!/usr/bin/env bats
# The latent tools: glow-encode, glow-decode and glow-latent on tiny models
# trained for two steps (every coupling and permutation, n_bits 5, a
# class-conditional one), read back by the numpy reader printed in
# docs/formats.md and edited by test/data/latentgen.py (an independent writer).
# The device of encode and decode is GLOW_TEST_DEVICE (default cpu); training is
# on the CPU.

bats_require_minimum_version 1.5.0
load helpers

DEV="${GLOW_TEST_DEVICE:-cpu}"
export OMP_NUM_THREADS=1
M="$BATS_FILE_TMPDIR"

# name and glow-train --set options of each model
MODELS=(
    "aff-rev model.coupling=affine model.permutation=reverse"
    "aff-shuf model.coupling=affine model.permutation=shuffle"
    "aff-inv model.coupling=affine model.permutation=invconv"
    "aff-lu model.coupling=affine model.permutation=invconv model.lu=true"
    "add-rev model.coupling=additive model.permutation=reverse"
    "add-shuf model.coupling=additive model.permutation=shuffle"
    "add-inv model.coupling=additive model.permutation=invconv"
    "add-lu model.coupling=additive model.permutation=invconv model.lu=true"
    "bits5 model.n_bits=5"
    "ycond model.y_condition=true model.n_classes=3"
    "other train.seed=9"
)

setup_file() {
    tiny_config "$M/tiny.yml" train.device=cpu
    shardgen "$M/d.glow" --n 24 --h 8 --w 8 --label-mod 3 --seed 1 --per-record 10
    shardgen "$M/nolab.glow" --n 6 --h 8 --w 8 --seed 4
    for m in "${MODELS[@]}"; do
        set -- $m
        name=$1
        shift
        sets=()
        for s in "$@"; do sets+=(--set "$s"); done
        glow-train -q -c "$M/tiny.yml" -o "$M/$name" --steps 2 "${sets[@]}" "$M/d.glow"
    done
}

ck() { echo "$M/$1/checkpoint.safetensors"; }

# The latent reader of docs/formats.md, fences removed, as latreader.py.
extract_reader() {
    awk '/<!-- python-latent-reader:end -->/ {on=0} on && !/^```/ {print}
         /<!-- python-latent-reader:begin -->/ {on=1}' "$ROOT/docs/formats.md" >latreader.py
    [ "$(grep -c 'def read_latents' latreader.py)" -eq 1 ]
}

# same_images A B [BITS]: the uint8 images (and labels) of two shard streams are
# equal; with BITS, A's pixels with their low 8-BITS bits cleared
same_images() {
    py - "$@" <<'EOF'
import sys
import numpy as np
from shardgen import records
a, b = [list(records(p)) for p in sys.argv[1:3]]
bits = int(sys.argv[3]) if len(sys.argv) > 3 else 8
xa, xb = np.concatenate([x for _, x in a]), np.concatenate([x for _, x in b])
xa = (xa >> (8 - bits)) << (8 - bits)
assert xa.shape == xb.shape, (xa.shape, xb.shape)
bad = int((xa != xb).sum())
assert bad == 0, "%d of %d pixels differ" % (bad, xa.size)
la = [l for l, _ in a]
lb = [l for l, _ in b]
if la[0] is None:
    assert all(l is None for l in lb), "labels appeared"
else:
    assert np.concatenate(la).tolist() == np.concatenate(lb).tolist(), "labels differ"
EOF
}

@test "encode -> decode gives the images back for every coupling and permutation" {
    for name in aff-rev aff-shuf aff-inv aff-lu add-rev add-shuf add-inv add-lu ycond; do
        glow-encode --device "$DEV" "$(ck $name)" "$M/d.glow" >lat.glow
        glow-decode --device "$DEV" "$(ck $name)" lat.glow >back.glow
        run same_images "$M/d.glow" back.glow
        [ "$status" -eq 0 ] || { echo "$name: $output"; return 1; }
        # raw latents too
        glow-encode --raw --device "$DEV" "$(ck $name)" "$M/d.glow" |
            glow-decode --device "$DEV" "$(ck $name)" >back.glow
        run same_images "$M/d.glow" back.glow
        [ "$status" -eq 0 ] || { echo "$name --raw: $output"; return 1; }
    done
}

@test "at n_bits 5 the images come back quantised as sampling writes them" {
    glow-encode --device "$DEV" "$(ck bits5)" "$M/d.glow" | glow-decode --device "$DEV" "$(ck bits5)" >back.glow
    same_images "$M/d.glow" back.glow 5
    run ! same_images "$M/d.glow" back.glow
}

@test "glow-latent random | glow-decode is glow-sample's bytes, also with --class" {
    c=$(ck aff-inv)
    glow-latent random "$c" 40 -t 0.6 --seed 3 --device "$DEV" | glow-decode --device "$DEV" "$c" >r.glow
    glow-sample "$c" -n 40 -t 0.6 --seed 3 --device "$DEV" >s.glow
    cmp r.glow s.glow
    # any batch on either side; the default temperature is glow-sample's
    glow-latent random "$c" 40 --seed 3 --batch 7 --device "$DEV" | glow-decode --batch 5 --device "$DEV" "$c" >r.glow
    glow-sample "$c" -n 40 --seed 3 --device "$DEV" >s.glow
    cmp r.glow s.glow
    # random at T = 1, then scale 0.6: the temperature of sampling exactly
    glow-latent random "$c" 40 -t 1 --seed 3 --device "$DEV" | glow-latent scale 0.6 |
        glow-decode --device "$DEV" "$c" >r.glow
    glow-sample "$c" -n 40 -t 0.6 --seed 3 --device "$DEV" >s.glow
    cmp r.glow s.glow
    y=$(ck ycond)
    glow-latent random "$y" 9 -t 0.8 --seed 2 --class 1 --device "$DEV" | glow-decode --device "$DEV" "$y" >r.glow
    glow-sample "$y" -n 9 -t 0.8 --seed 2 --class 1 --device "$DEV" >s.glow
    cmp r.glow s.glow
    glow-latent random "$y" 9 -t 0.8 --seed 2 --device "$DEV" | glow-decode --device "$DEV" "$y" >r.glow
    glow-sample "$y" -n 9 -t 0.8 --seed 2 --device "$DEV" >s.glow
    cmp r.glow s.glow
    # the EMA-free model's --ema is an error, as for glow-sample
    run --separate-stderr glow-latent random "$c" 2 --ema -o x.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--ema: this checkpoint has no EMA weights"
}

@test "decoding with another model fails naming both; other weights of the model warn" {
    glow-encode --device "$DEV" "$(ck aff-inv)" "$M/d.glow" >lat.glow
    run --separate-stderr glow-decode --device "$DEV" "$(ck bits5)" lat.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-decode: lat.glow: record 1: latents of model "
    assert_contains "$stderr" "(1x8x8 images, 2 levels: 2x4x4, 8x2x2), but $(ck bits5) holds model "
    assert_contains "$stderr" "(1x8x8, L=2, K=2, width 8, affine, invconv)"
    run --separate-stderr glow-decode --device "$DEV" "$(ck other)" -o o.glow lat.glow
    [ "$status" -eq 0 ]
    assert_contains "$stderr" "glow-decode: lat.glow: record 1: warning: these latents were made with other weights"
    [ -s o.glow ]
}

@test "encode and decode do not depend on --batch; the bpd column is glow-bpd's" {
    c=$(ck aff-lu)
    glow-encode --device "$DEV" "$c" "$M/d.glow" >a.glow
    glow-encode --device "$DEV" --batch 5 "$c" "$M/d.glow" >b.glow
    glow-encode --device "$DEV" --batch 1 "$c" - <"$M/d.glow" >e.glow
    cmp a.glow b.glow
    cmp a.glow e.glow
    glow-decode --device "$DEV" "$c" a.glow >x.glow
    glow-decode --device "$DEV" --batch 3 "$c" <a.glow >y.glow
    cmp x.glow y.glow
    # --noise --seed S: the noise and the numbers of glow-bpd --seed S
    glow-encode --device "$DEV" --noise --seed 4 --bpd enc.tsv --batch 7 "$c" "$M/d.glow" >n.glow
    glow-bpd --device "$DEV" --per-image --seed 4 "$c" "$M/d.glow" >bpd.tsv 2>/dev/null
    cmp enc.tsv bpd.tsv
    run ! cmp -s n.glow a.glow
    # --limit
    glow-encode --device "$DEV" --limit 5 "$c" "$M/d.glow" | glow-decode "$c" | pngcat --split p
    [ "$(ls p | wc -l)" -eq 5 ]
}

@test "mix: the endpoints are the inputs; slerp too; an odd count fails" {
    extract_reader
    c=$(ck add-shuf)
    glow-encode --device "$DEV" --limit 4 "$c" "$M/d.glow" >lat.glow
    glow-latent mix --steps 6 lat.glow >mix.glow
    glow-latent mix --steps 3 --slerp <lat.glow >slerp.glow
    py - <<'EOF'
import sys
sys.path.insert(0, ".")
import numpy as np
from latreader import read_latents
def load(p):
    recs = list(read_latents(open(p, "rb")))
    v = np.concatenate([np.concatenate([l.reshape(len(r["t"]), -1) for l in r["levels"]], 1)
                        for r in recs])
    return v, np.concatenate([r["t"] for r in recs]), np.concatenate([r["labels"] for r in recs])
x, tx, lx = load("lat.glow")
m, tm, lm = load("mix.glow")
s, ts, ls = load("slerp.glow")
assert m.shape == (12, x.shape[1]) and s.shape == (6, x.shape[1])
for k in (0, 1):
    assert (m[6 * k] == x[2 * k]).all() and (m[6 * k + 5] == x[2 * k + 1]).all()
    assert (s[3 * k] == x[2 * k]).all() and (s[3 * k + 2] == x[2 * k + 1]).all()
    assert np.allclose(m[6 * k + 1], 0.8 * x[2 * k] + 0.2 * x[2 * k + 1], atol=1e-6)
assert (tm == 1).all() and lm.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0]
EOF
    # decoded, the strip's ends are the images
    glow-decode "$c" mix.glow | pngcat --split strip
    glow-decode "$c" lat.glow | pngcat --split orig
    cmp strip/000000.png orig/000000.png
    cmp strip/000005.png orig/000001.png
    cmp strip/000011.png orig/000003.png
    glow-encode --device "$DEV" --limit 3 "$c" "$M/d.glow" >odd.glow
    run --separate-stderr glow-latent mix odd.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-latent: odd.glow: an odd number of latents (3)"
}

@test "scale: one copy per factor; scale 0 decodes to the model's mean image" {
    c=$(ck aff-rev)
    glow-encode --device "$DEV" --limit 3 "$c" "$M/d.glow" >lat.glow
    glow-latent scale 0,0.5,1 lat.glow | glow-decode --device "$DEV" "$c" | pngcat --split s
    [ "$(ls s | wc -l)" -eq 9 ]
    glow-decode --device "$DEV" "$c" lat.glow | pngcat --split o
    cmp s/000002.png o/000000.png
    cmp s/000008.png o/000002.png
    glow-sample "$c" -n 1 -t 0 --device "$DEV" | pngcat --split mean
    cmp s/000000.png mean/000000.png
    cmp s/000003.png mean/000000.png
    cmp s/000006.png mean/000000.png
}

@test "attr recovers a known offset (two streams, or --label); add and project use it" {
    extract_reader
    c=$(ck aff-inv)
    glow-encode --device "$DEV" --limit 2 "$c" "$M/d.glow" >like.glow
    latgen() { py "$ROOT/test/data/latentgen.py" "$@"; }
    latgen synth neg.glow --like like.glow --n 50 --seed 1
    latgen synth pos.glow --like like.glow --n 40 --seed 2 --offset 3=1.5,60=-0.75
    glow-latent attr pos.glow neg.glow >dir.glow
    # one stream with labels 1 (pos) and 3 (neg) and a third label to ignore
    latgen synth a.glow --like like.glow --n 30 --seed 3 --labels 3,7
    latgen synth b.glow --like like.glow --n 30 --seed 4 --labels 1 --offset 3=1.5,60=-0.75
    cat a.glow b.glow | glow-latent attr --label 1,3 >dir2.glow
    py - <<'EOF'
import sys
sys.path.insert(0, ".")
import numpy as np
from latreader import read_latents
from latentgen import read
for name, npos, nneg, sp, sn in (("dir.glow", 40, 50, 2, 1), ("dir2.glow", 30, 15, 4, 3)):
    (r,) = list(read_latents(open(name, "rb")))
    d = np.concatenate([l.reshape(1, -1) for l in r["levels"]], 1)[0] * r["t"][0]
    pos = np.random.default_rng(sp).standard_normal((npos, 64)).astype("<f4")
    neg = np.random.default_rng(sn).standard_normal((30 if name == "dir2.glow" else nneg, 64)).astype("<f4")
    if name == "dir2.glow":
        neg = neg[0::2]  # label 3 of the cycle 3, 7
    pos[:, 3] += np.float32(1.5)
    pos[:, 60] += np.float32(-0.75)
    want = pos.astype(np.float64).mean(0) - neg.astype(np.float64).mean(0)
    assert np.abs(d - want).max() < 1e-6, (name, np.abs(d - want).max())
    assert r["labels"] is None and r["layout"] == "eps"
EOF
    # add at 0 and 1: the latent, and the latent plus the direction
    glow-latent add dir.glow --alpha 0,1 neg.glow >moved.glow
    glow-latent project dir.glow pos.glow >p.tsv
    glow-latent project dir.glow neg.glow >n.tsv
    head -n 1 p.tsv | grep -qx $'index\tscore\tlabel'
    py - <<'EOF'
import numpy as np
p = np.loadtxt("p.tsv", skiprows=1, usecols=1)
n = np.loadtxt("n.tsv", skiprows=1, usecols=1)
assert abs(p.mean() - n.mean() - 1) < 1e-4, (p.mean(), n.mean())
from latentgen import read
m = np.concatenate([r["v"] for r in read("moved.glow")])
x = np.concatenate([r["v"] for r in read("neg.glow")])
d = read("dir.glow")[0]["v"][0]
assert (m[0::2] == x).all()
assert np.abs(m[1::2] - (x.astype(np.float64) + d)).max() < 1e-5
EOF
    # a direction of another model does not combine
    glow-encode --device "$DEV" --limit 2 "$(ck bits5)" "$M/d.glow" >b5.glow
    run --separate-stderr glow-latent add dir.glow --alpha 1 b5.glow
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-latent: b5.glow: eps latents of model"
    assert_contains "$stderr" "but the direction dir.glow is of eps latents of model"
    run --separate-stderr glow-latent add pos.glow --alpha 1 neg.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-latent: pos.glow: 40 latents; a direction is one latent"
}

@test "labels go through; mean --by-label and select" {
    extract_reader
    c=$(ck ycond)
    glow-encode --device "$DEV" "$c" "$M/d.glow" >lat.glow
    glow-latent mean --by-label lat.glow >means.glow
    glow-latent select --label 2 --limit 3 lat.glow >two.glow
    py - <<'EOF'
import sys
sys.path.insert(0, ".")
import numpy as np
from latreader import read_latents
def load(p):
    recs = list(read_latents(open(p, "rb")))
    v = np.concatenate([np.concatenate([l.reshape(len(r["t"]), -1) for l in r["levels"]], 1) for r in recs])
    lab = np.concatenate([r["labels"] for r in recs])
    return v, lab
x, lx = load("lat.glow")
m, lm = load("means.glow")
s, ls = load("two.glow")
assert lx.tolist() == [i % 3 for i in range(24)]
assert lm.tolist() == [0, 1, 2]
for k in range(3):
    assert np.abs(m[k] - x[lx == k].astype(np.float64).mean(0)).max() < 1e-6
assert ls.tolist() == [2, 2, 2] and (s == x[lx == 2][:3]).all()
EOF
    # the mean of a class-conditional model has no label: --class decodes it
    glow-latent mean lat.glow >mean.glow
    run --separate-stderr glow-decode "$c" mean.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-decode: mean.glow: record 1: the latents have no labels, but the model is class-conditional; give --class Y"
    glow-decode --class 2 "$c" mean.glow >m.glow
    py -c 'from shardgen import records; (l, x), = records("m.glow"); assert l.tolist() == [2] and x.shape == (1, 1, 8, 8)'
    run --separate-stderr glow-encode "$c" "$M/nolab.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "nolab.glow: the images have no labels, but the model is class-conditional"
}

@test "the numpy reader of docs/formats.md reads glow-encode's stream; the model id is documented" {
    extract_reader
    c=$(ck aff-inv)
    glow-encode --device "$DEV" "$c" "$M/d.glow" >lat.glow
    # the doc's model_id function, as printed
    awk '/^def model_id/ {on=1} on && /^```/ {exit} on {print}' "$ROOT/docs/formats.md" >modelid.py
    grep -q 'def model_id' modelid.py
    py - "$c" <<'EOF'
import json, struct, sys
sys.path.insert(0, ".")
import numpy as np
from latreader import read_latents
from modelid import model_id
raw = open(sys.argv[1], "rb").read()
(hlen,) = struct.unpack("<Q", raw[:8])
meta = json.loads(raw[8:8 + hlen])["__metadata__"]
model = json.loads(meta["model"])
recs = list(read_latents(open("lat.glow", "rb")))
assert sum(len(r["t"]) for r in recs) == 24
for r in recs:
    assert r["layout"] == "eps" and r["model"] == model_id(model), (hex(r["model"]), model)
    assert [l.shape[1:] for l in r["levels"]] == [(2, 4, 4), (8, 2, 2)]
    assert (r["t"] == 1).all() and r["labels"] is not None
# the standardised latents of a trained model look like standard normals
v = np.concatenate([np.concatenate([l.reshape(len(r["t"]), -1) for l in r["levels"]], 1) for r in recs])
assert abs(v.mean()) < 0.5 and 0.3 < v.std() < 3, (v.mean(), v.std())
EOF
    # the image reader printed beside it refuses latent records, by name
    awk '/<!-- python-reader:end -->/ {on=0} on && !/^```/ {print}
         /<!-- python-reader:begin -->/ {on=1}' "$ROOT/docs/formats.md" >reader.py
    run py -c 'import sys; sys.path.insert(0, "."); from reader import read_shards; list(read_shards(open("lat.glow", "rb")))'
    [ "$status" -ne 0 ]
    assert_contains "$output" "a latent record: read it with read_latents"
}

@test "malformed or foreign records: 'tool: FILE: record N: reason', exit 1" {
    c=$(ck aff-inv)
    glow-encode --device "$DEV" "$c" "$M/d.glow" >lat.glow
    latgen() { py "$ROOT/test/data/latentgen.py" "$@"; }
    k=0
    while IFS='|' read -r field reason; do
        [ -n "$field" ] || continue
        latgen patch lat.glow bad.glow $field
        # glow-latent reads them as glow-decode does: both tools for the first fields
        tools=("glow-decode $c")
        [ "$((++k))" -gt 3 ] || tools+=("glow-latent mean")
        for tool in "${tools[@]}"; do
            run --separate-stderr $tool bad.glow
            [ "$status" -eq 1 ] || { echo "$tool $field: exit $status"; return 1; }
            [ -z "$output" ] || { echo "$tool $field: stdout"; return 1; }
            assert_contains "$stderr" "${tool%% *}: bad.glow: record 1: $reason"
        done
    done <<'EOF'
tag=NOTLATNT|latent prefix: bad tag
size=128|latent prefix: size 128, this program reads 160
layout=7|latent prefix: unknown layout 7 (1 = eps, 2 = z)
levels=11|latent prefix: 11 levels (1..10)
preserved=5|latent prefix: reserved field is 5, must be 0
shape.0.0=1|latent prefix: the levels' latents hold 48 values, but the record's 1x8x8 images 64
shape.1.0=9|latent prefix: the levels' latents hold more values than the record's 1x8x8 images (64)
shape.2.1=1|latent prefix: level 2 is past the 2 levels but has a shape
t.1=nan|latent 1: factor t is not finite
v.5=inf|latent 0: value 5 is not finite
dtype=1|a latent record of dtype uint8 (latents are float32)
raw_size=100|raw_size 100 does not match
EOF
    # a later record of another model, in a second file
    glow-encode --device "$DEV" --limit 1 "$(ck bits5)" "$M/d.glow" >b5.glow
    run --separate-stderr glow-latent scale 1 lat.glow b5.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-latent: b5.glow: record 1: latents of model"
    assert_contains "$stderr" "but earlier records are of model"
    # images to a latent reader, latents to image readers
    run --separate-stderr glow-decode "$c" "$M/d.glow"
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-decode: $M/d.glow: record 1: an image record, not latents: glow-encode turns images into latents"
    for tool in "pngcat" "glow-bpd $c" "glow-encode $c"; do
        run --separate-stderr $tool lat.glow
        [ "$status" -eq 1 ] || { echo "$tool: exit $status"; return 1; }
        assert_contains "$stderr" "lat.glow: record 1: a latent record (of glow-encode or glow-latent), not images: glow-decode turns latents into images"
    done
    run --separate-stderr glow-train -c "$M/tiny.yml" -o run lat.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "a latent record"
    # truncated: the shard stream's own rules
    head -c 100 lat.glow >cut.glow
    run --separate-stderr glow-decode "$c" cut.glow
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-decode: cut.glow: record 1: truncated payload"
}

@test "--help, --version and usage errors (exit 2, nothing on stdout)" {
    for t in glow-encode glow-decode glow-latent; do
        run --separate-stderr "$t" --help
        [ "$status" -eq 0 ]
        assert_contains "$output" "Usage: $t"
        [ -z "$stderr" ]
        run --separate-stderr "$t" --version
        [ "$status" -eq 0 ]
        assert_contains "$output" "$t (Glow in C and CUDA)"
    done
    run glow-latent mix --help
    assert_contains "$output" "mix [--steps N] [--slerp]"
    c=$(ck aff-inv)
    while IFS='|' read -r args msg; do
        [ -n "$args" ] || continue
        run --separate-stderr $args </dev/null
        [ "$status" -eq 2 ] || { echo "$args: exit $status"; return 1; }
        [ -z "$output" ] || { echo "$args: stdout: $output"; return 1; }
        assert_contains "$stderr" "$msg"
    done <<EOF
glow-encode|glow-encode: missing the checkpoint (CKPT)
glow-encode --bogus $c x.glow|glow-encode: unknown option '--bogus'
glow-encode --batch 0 $c x.glow|glow-encode: invalid --batch
glow-encode --seed 3 $c x.glow|--seed sets the dequantisation noise: it needs --noise
glow-encode --device tpu $c x.glow|glow-encode: --device
glow-encode - -|only one of the checkpoint and the images can come from standard input
glow-decode|glow-decode: missing the checkpoint (CKPT)
glow-decode --class -1 $c x.glow|invalid --class '-1'
glow-decode --class 0 $c x.glow|--class 0: the model in $c is not class-conditional
glow-decode --class 3 $(ck ycond) x.glow|--class 3: the model has 3 classes (0..2)
glow-latent|glow-latent: missing the command
glow-latent frobnicate|glow-latent: unknown command 'frobnicate'
glow-latent mix --steps 1 x.glow|glow-latent: invalid --steps
glow-latent mix --alpha 1 x.glow|glow-latent: mix does not take --alpha
glow-latent scale|glow-latent: scale needs the factors
glow-latent scale 0,x a.glow|glow-latent: scale '0,x': expected
glow-latent add d.glow a.glow|glow-latent: add needs --alpha
glow-latent attr a.glow|glow-latent: attr needs two latent streams, POS and NEG
glow-latent attr --label 1,2,3 a.glow|attr --label takes K or K,J
glow-latent random $c|glow-latent: random needs the checkpoint and a count
glow-latent random $c 0|glow-latent: invalid N
glow-latent mean --seed 2 a.glow|mean does not take --ema, --class, --seed or --device
glow-latent random $c 2 --class 0 -o x.glow|--class 0: the model in $c is not class-conditional
EOF
    [ ! -e x.glow ]
}

@test "binary latents are not written to a terminal" {
    command -v script >/dev/null || skip "script(1) is not installed"
    c=$(ck aff-inv)
    run script -qec "glow-encode $c $M/d.glow" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-encode: refusing to write binary latent data to a terminal"
    run script -qec "glow-latent random $c 2" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-latent: refusing to write binary latent data to a terminal"
    glow-encode "$c" "$M/d.glow" >lat.glow
    run script -qec "glow-decode $c lat.glow" /dev/null
    [ "$status" -eq 2 ]
    assert_contains "$output" "glow-decode: refusing to write binary image data to a terminal"
}

@test "pipelines/latent.mk and make demo's interpolation strip, from a small 32x32 model" {
    FM="${FMNIST:-/usr/share/datasets/fashion-mnist}"
    [ -f "$FM/t10k-images-idx3-ubyte.gz" ] || skip "dataset-fashion-mnist is not installed"
    tiny_config t32.yml train.device=cpu "model.image_size=[32, 32]" model.levels=3
    glow-prep -q --pad 2 --limit 64 "$FM/train-images-idx3-ubyte.gz" >fm.glow
    glow-train -q -c t32.yml -o fm/run --steps 2 fm.glow
    run make --no-print-directory -C "$ROOT" -f pipelines/latent.mk BUILD="$BUILD" DEVICE="$DEV" \
        CKPT="$TMP/fm/run/checkpoint.safetensors" OUT="$TMP/lat" LIMIT=200 FMNIST="$FM"
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    py - <<'PY'
from pngdecode import decode
for name, cols, rows in (("reconstructions", 16, 2), ("interpolation", 11, 4),
                         ("temperature", 5, 8), ("attribute", 5, 8)):
    w, h, ch, _ = decode("lat/%s.png" % name)
    assert (w, h) == (cols * 34 - 2, rows * 34 - 2), (name, w, h)
PY
    run make --no-print-directory -C "$ROOT" -f pipelines/latent.mk CKPT="$TMP/none.safetensors" OUT="$TMP/lat2"
    [ "$status" -ne 0 ]
    assert_contains "$output" "latent.mk: $TMP/none.safetensors: no checkpoint (run make demo first"
    # make demo's strip: a demo folder whose data and training stages are done
    glow-prep -q --pad 2 --limit 16 -o fm/test "$FM/t10k-images-idx3-ubyte.gz"
    mkdir -p fm/train
    touch fm/train/.done fm/test/.done
    touch fm/run/.done-config
    run make --no-print-directory -C "$ROOT" -f pipelines/fashion-mnist.mk BUILD="$BUILD" \
        OUT="$TMP/fm" DEVICE="$DEV" FMNIST="$FM" interpolate
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    py -c 'from pngdecode import decode; w, h, _, _ = decode("fm/interpolation.png"); assert (w, h) == (11 * 34 - 2, 4 * 34 - 2), (w, h)'
}
