#!/usr/bin/env bats
# glow-ckpt import: the ports' own checkpoints (test/data/ports/, made by
# test/data/make_port_fixture.py from the ports' code) become ours, and glow-bpd on
# the import gives the port's bpd for the same images and noise; wrappers,
# prefixes, compression and strides change nothing; the ports that cannot be
# imported exactly, damaged archives and pickles that would run code are refused
# with the reason. Needs no PyTorch: test/data/torchsave.py writes .pt files.
bats_require_minimum_version 1.5.0
load helpers

PORTS="$ROOT/test/data/ports"
Y0AST="$PORTS/y0ast-affine-ycond.pt"
REVERSE="$PORTS/y0ast-additive-reverse.pt"
CHAI="$PORTS/chaiyujin-additive-lu.pkg"

torchsave() { py "$ROOT/test/data/torchsave.py" "$@"; }

# shard_of EXPECT OUT: the images (and labels) of a fixture's .expect as a shard stream
shard_of() {
    py - "$1" "$2" <<'EOF'
import sys, st, shardgen
t = st.File(sys.argv[1]).tensors()
open(sys.argv[2], "wb").write(shardgen.encode(t["input.image"], t.get("input.label")))
EOF
}

# bpd_error TSV EXPECT: the largest |bpd - expect.bpd| of glow-bpd --per-image output
bpd_error() {
    py - "$1" "$2" <<'EOF'
import sys, st, numpy as np
want = st.File(sys.argv[2]).tensor("expect.bpd")
got = np.loadtxt(sys.argv[1], skiprows=1, usecols=1)
assert got.shape == want.shape, (got.shape, want.shape)
print("%.3g" % np.abs(got - want).max())
EOF
}

@test "a y0ast checkpoint: the config from its tensors, a verified weights-only file" {
    glow-ckpt import "$Y0AST" -o m.st
    run glow-ckpt m.st
    [ "$status" -eq 0 ]
    assert_contains "$output" "image_size: 8 x 8"
    assert_contains "$output" "channels: 1"
    assert_contains "$output" "levels: 2"
    assert_contains "$output" "steps: 2"
    assert_contains "$output" "width: 8"
    assert_contains "$output" "coupling: affine"
    assert_contains "$output" "permutation: invconv"
    assert_contains "$output" "edge_bias: no"
    assert_contains "$output" "learn_top: yes"
    assert_contains "$output" "y_condition: yes"
    assert_contains "$output" "n_classes: 4"
    assert_contains "$output" "optimizer state: none"
    assert_contains "$output" "metadata imported_from: y0ast/Glow-PyTorch"
    run glow-ckpt --verify m.st
    [ "$status" -eq 0 ]
    # chaiyujin's, saved with its optimizer state around the model ("graph")
    glow-ckpt import "$CHAI" -o c.st
    run glow-ckpt c.st
    assert_contains "$output" "lu: yes"
    assert_contains "$output" "coupling: additive"
    assert_contains "$output" "steps: 1"
    assert_contains "$output" "metadata imported_from: chaiyujin/glow-pytorch"
    assert_contains "$output" "metadata import_input: unit"
}

@test "glow-bpd on each import gives the port's own bpd for the same images and noise" {
    for f in y0ast-affine-ycond.pt y0ast-additive-reverse.pt chaiyujin-additive-lu.pkg; do
        name=${f%.*}
        args=()
        [ "$name" = y0ast-additive-reverse ] && args=(--permutation reverse)
        glow-ckpt import "${args[@]}" "$PORTS/$f" -o "$name.st"
        shard_of "$PORTS/$name.expect" "$name.glow"
        seed=$(st meta "$PORTS/$name.expect" seed)
        glow-bpd --device cpu --per-image --seed "$seed" "$name.st" "$name.glow" >"$name.tsv"
        err=$(bpd_error "$name.tsv" "$PORTS/$name.expect")
        echo "$name: |bpd - port bpd| <= $err"
        py -c 'import sys; assert float(sys.argv[1]) <= 1e-4, sys.argv[1]' "$err"
        # another seed is other noise, outside the tolerance: the comparison can tell
        glow-bpd --device cpu --per-image --seed $((seed + 1)) "$name.st" "$name.glow" >other.tsv
        py -c 'import sys; assert float(sys.argv[1]) > 2e-4, sys.argv[1]' \
            "$(bpd_error other.tsv "$PORTS/$name.expect")"
    done
}

@test "wrappers, DataParallel prefixes, deflate, strides, offsets and float64 change nothing" {
    glow-ckpt import "$Y0AST" -o ref.st
    for opts in "--wrap model" "--wrap state_dict --prefix module." "--prefix module.module." \
        "--deflate" "--strided --offset 5" "--dtype float64 --archive other" \
        "--wrap graph --strided --deflate --prefix module."; do
        # shellcheck disable=SC2086
        torchsave rewrite "$Y0AST" v.pt $opts
        glow-ckpt import v.pt -o v.st
        st same ref.st v.st || { echo "differs with: $opts"; return 1; }
    done
    # our writer's file of the same state dict, and standard input
    torchsave rewrite "$Y0AST" w.pt
    glow-ckpt import - -o w.st <w.pt
    st same ref.st w.st
    glow-ckpt import "$Y0AST" -o - >o.st
    st same ref.st o.st
}

@test "what the tensors do not say: reverse, the image size, n_bits, weight_y, the input" {
    run --separate-stderr glow-ckpt import "$REVERSE" -o r.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: $REVERSE: the steps have no invconv tensors"
    assert_contains "$stderr" "give --permutation reverse"
    assert_contains "$stderr" "a 'shuffle' model cannot be imported"
    [ ! -e r.st ]
    glow-ckpt import --permutation reverse "$REVERSE" -o r.st
    run glow-ckpt r.st
    assert_contains "$output" "permutation: reverse"
    assert_contains "$output" "learn_top: no"
    # the image size comes from prior_h; without it, from --image-size
    run --separate-stderr glow-ckpt import --image-size 16 "$Y0AST" -o m.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--image-size 16x16, but prior_h says 8x8"
    torchsave rewrite "$Y0AST" noh.pt --drop prior_h
    run --separate-stderr glow-ckpt import noh.pt -o m.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "no prior_h buffer to tell the image size: give --image-size"
    glow-ckpt import --image-size 8x8 noh.pt -o m.st
    glow-ckpt import "$Y0AST" -o ref.st
    st same ref.st m.st
    # n_bits and weight_y are ours to say; --weight-y 0 drops the head
    glow-ckpt import --n-bits 5 --weight-y 0.5 "$Y0AST" -o b.st
    run glow-ckpt b.st
    assert_contains "$output" "n_bits: 5"
    assert_contains "$output" "weight_y: 0.5"
    glow-ckpt import --weight-y 0 "$Y0AST" -o h.st
    [ "$(st names h.st | grep -c '^classifier\.')" -eq 0 ]
    [ "$(st names ref.st | grep -c '^classifier\.')" -eq 3 ]
    # --input unit folds x = u/255 into the first actnorm; nothing else changes
    glow-ckpt import --input unit "$Y0AST" -o u.st
    py - ref.st u.st <<'EOF'
import math, sys, st, numpy as np
a, b = st.File(sys.argv[1]).tensors(), st.File(sys.argv[2]).tensors()
for k in a:
    if k.startswith("flow.0.0.actnorm."):
        continue
    assert np.array_equal(a[k], b[k]), k
bias = 0.5 + a["flow.0.0.actnorm.bias"].astype(np.float64) * 255 / 256
logs = a["flow.0.0.actnorm.logs"].astype(np.float64) + math.log(256 / 255) / 3
assert np.abs(b["flow.0.0.actnorm.bias"] - bias).max() < 1e-6
assert np.abs(b["flow.0.0.actnorm.logs"] - logs).max() < 1e-6
EOF
    run --separate-stderr glow-ckpt import --input unit --n-bits 5 "$Y0AST" -o u.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "--input unit (x = u/255) needs 8 bits"
}

@test "the ports whose models differ are refused with the reason" {
    torchsave names ros.pt "blocks.0.flows.0.actnorm.loc=1,12,1,1" \
        "blocks.0.flows.0.actnorm.scale=1,12,1,1" "blocks.0.flows.0.coupling.net.0.weight=8,6,3,3"
    run --separate-stderr glow-ckpt import ros.pt -o x.st
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-ckpt: ros.pt: a rosinality/glow-pytorch checkpoint"
    assert_contains "$stderr" "cannot be imported exactly"
    assert_contains "$stderr" "zero convolutions pad with ones"
    torchsave names seed.pt "flow_net.blocks.0.flows.0.actnorm.bias=1,12,1,1" \
        "flow_net.blocks.0.flows.0.coupling.nets.0.0.weight=8,6,3,3"
    run --separate-stderr glow-ckpt import seed.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: seed.pt: a dajinstory/glow-pytorch checkpoint"
    assert_contains "$stderr" "exp(clamp * sigmoid(h + 2))"
    assert_contains "$stderr" "no learned prior"
    torchsave names other.pt "encoder.weight=3,3"
    run --separate-stderr glow-ckpt import other.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "not a Glow state dict of y0ast/Glow-PyTorch or chaiyujin/glow-pytorch"
    # a tensor the port's model does not have
    torchsave rewrite "$Y0AST" extra.pt --prefix ""
    py - extra.pt <<'EOF'
import sys, collections, numpy as np, torchsave
sd = collections.OrderedDict(torchsave.read(sys.argv[1]))
sd["flow.layers.1.block.0.conv.bias"] = np.zeros(8, np.float32)
torchsave.write(sys.argv[1], sd)
EOF
    run --separate-stderr glow-ckpt import extra.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "tensor 'flow.layers.1.block.0.conv.bias' is not part of a y0ast/Glow-PyTorch Glow"
    torchsave rewrite "$Y0AST" nan.pt --set flow.layers.6.actnorm.logs 3 nan
    run --separate-stderr glow-ckpt import nan.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "tensor 'flow.layers.6.actnorm.logs': non-finite value nan at element 3"
    [ ! -e x.st ]
}

@test "a pickle that would run code is refused before anything runs" {
    # GLOBAL posix system, 'touch pwned', TUPLE1, REDUCE, STOP: what torch.load runs
    hex=$(py -c 'print((b"\x80\x02cposix\nsystem\nX\x0b\x00\x00\x00touch pwned\x85R.").hex())')
    torchsave pickle evil.pt "$hex"
    run --separate-stderr glow-ckpt import evil.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: evil.pt: archive/data.pkl: offset 2: global 'posix.system' is not allowed"
    [ ! -e pwned ] && [ ! -e x.st ]
    # a whole module pickled instead of its state dict
    hex=$(py -c 'print((b"\x80\x02cmodel\nGlow\n)\x81.").hex())')
    torchsave pickle mod.pt "$hex"
    run --separate-stderr glow-ckpt import mod.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "global 'model.Glow' is not allowed"
    hex=$(py -c 'print((b"\x80\x02}(X\x01\x00\x00\x00a]K\x01\x81u.").hex())')
    torchsave pickle op.pt "$hex"
    run --separate-stderr glow-ckpt import op.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "offset 13: opcode NEWOBJ (0x81) is not allowed"
}

@test "damaged archives name the entry" {
    cp "$Y0AST" bad.pt
    # one byte of a storage changed: its CRC
    off=$(py -c 'import zipfile, sys
z = zipfile.ZipFile(sys.argv[1]); i = z.getinfo("y0ast-affine-ycond/data/3")
h = open(sys.argv[1], "rb").read()[i.header_offset:i.header_offset + 30]
print(i.header_offset + 30 + int.from_bytes(h[26:28], "little") + int.from_bytes(h[28:30], "little"))' bad.pt)
    py -c 'import sys
f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2]))
f.write(bytes([b[0] ^ 0x10]))' bad.pt "$off"
    run --separate-stderr glow-ckpt import bad.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: bad.pt: zip: entry 'y0ast-affine-ycond/data/3': CRC-32 mismatch"
    head -c 30000 "$Y0AST" >short.pt
    run --separate-stderr glow-ckpt import short.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: short.pt: zip: no end-of-central-directory record"
    printf 'not a zip at all' >junk.pt
    run --separate-stderr glow-ckpt import junk.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: junk.pt: not a zip archive"
    run --separate-stderr glow-ckpt import missing.pt -o x.st
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: missing.pt: cannot open"
    [ ! -e x.st ]
}

@test "import: --help, and usage errors exit 2" {
    run glow-ckpt import --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-ckpt import [OPTION]... PT_FILE -o OUT"
    run glow-ckpt --help
    assert_contains "$output" "glow-ckpt import [OPTION]... PT_FILE -o OUT"
    for args in "$Y0AST" "-o x.st" "-o x.st $Y0AST extra" "--input other -o x.st $Y0AST" \
        "--permutation shuffle -o x.st $Y0AST" "--n-bits 9 -o x.st $Y0AST" \
        "--image-size 0x3 -o x.st $Y0AST" "--weight-y -1 -o x.st $Y0AST" "--bogus $Y0AST"; do
        # shellcheck disable=SC2086
        run --separate-stderr glow-ckpt import $args
        [ "$status" -eq 2 ] || { echo "exit $status for: $args"; return 1; }
        [ -z "$output" ]
        assert_contains "$stderr" "glow-ckpt"
    done
    [ ! -e x.st ]
}
