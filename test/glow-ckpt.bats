#!/usr/bin/env bats
# glow-ckpt: summary, --list, --verify, --json and --export-weights on the
# reference checkpoints and on copies with training state or damage made by
# test/data/st.py (so files from another writer are read too).
bats_require_minimum_version 1.5.0
load helpers

# make_train SRC OUT: SRC plus the training state of step 100 (Adam) by another
# writer: ema.* = 0.5 * params, optim.*.m = 0.1, optim.*.v = 0.2, a note.
make_train() {
    with_training "$1" "$2" --ema 0.5 --moments 0.1 0.2 --meta optimizer=adam \
        --meta step=100 --meta images_seen=6400 --meta "rng=1 2 3" --meta note=hello
}

# The Python snippet of docs/checkpoints.md marked NAME, extracted to a file.
doc_snippet() {
    awk -v want="<!-- snippet: $1 -->" '
        $0 == want { armed = 1; next }
        armed && /^```python/ { inside = 1; next }
        inside && /^```/ { exit }
        inside { print }' "$ROOT/docs/checkpoints.md" >"$2"
    [ -s "$2" ]
}

@test "summary of the affine reference model" {
    run glow-ckpt "$AFF"
    [ "$status" -eq 0 ]
    assert_contains "$output" "size: 172464 bytes"
    assert_contains "$output" "image_size: 16 x 16"
    assert_contains "$output" "coupling: affine"
    assert_contains "$output" "edge_bias: yes"
    assert_contains "$output" "parameters: 41828 trained, 41828 total, in 54 tensors"
    assert_contains "$output" "optimizer state: none"
    assert_contains "$output" "ema: no"
}

@test "summary of the additive LU y-conditioned reference model" {
    run glow-ckpt "$LU"
    [ "$status" -eq 0 ]
    assert_contains "$output" "coupling: additive"
    assert_contains "$output" "lu: yes"
    assert_contains "$output" "y_condition: yes"
    assert_contains "$output" "n_classes: 3"
    assert_contains "$output" "weight_y: 0.5"
    assert_contains "$output" "n_bits: 5"
    # invconv.p (16 + 64 per step) and sign_s (4 + 8 per step) are not trained
    total=$(st count "$LU")
    assert_contains "$output" "parameters: $((total - 3 * (20 + 72))) trained, $total total, in 108 tensors"
}

@test "--list shows every tensor with numpy-equal statistics" {
    run glow-ckpt --list "$AFF"
    [ "$status" -eq 0 ]
    [ "$(grep -c '^flow\.\|^split\.\|^prior\.' <<<"$output")" -eq 54 ]
    line=$(grep '^split.0.conv.weight ' <<<"$output")
    assert_contains "$line" "F32"
    assert_contains "$line" "[12, 7, 3, 3]"
    read -r _ _ _ _ _ _ mn mx mean std <<<"$line"
    # min, max, mean and std as NumPy computes them
    py -c 'import sys
got, want = ([float(x) for x in s.split()] for s in sys.argv[1:3])
assert len(got) == len(want) == 4, (got, want)
assert all(abs(g - w) <= 1e-5 * max(1.0, abs(w)) for g, w in zip(got, want)), (got, want)' \
        "$mn $mx $mean $std" "$(st stats "$AFF" split.0.conv.weight)"
}

@test "--list works on a case file and covers int and uint8 tensors" {
    case_file="$REF_DIR/additive-lu-ycond/case.safetensors"
    run glow-ckpt --list "$case_file"
    [ "$status" -eq 0 ]
    assert_contains "$output" "listing the tensors anyway"
    line=$(grep '^input.label ' <<<"$output")
    assert_contains "$line" "I32"
    line=$(grep '^input.image ' <<<"$output")
    assert_contains "$line" "U8"
}

@test "--verify accepts both reference models" {
    run glow-ckpt --verify "$AFF"
    [ "$status" -eq 0 ]
    assert_contains "$output" "model.safetensors: ok"
    run glow-ckpt --verify "$LU"
    [ "$status" -eq 0 ]
}

@test "--verify lists every NaN and exits 1" {
    st set "$AFF" nan.st flow.0.1.coupling.conv2.weight 5 nan
    st set nan.st nan.st prior.conv.logs 0 inf
    run --separate-stderr glow-ckpt --verify nan.st
    [ "$status" -eq 1 ]
    [ "$output" = "nan.st: 2 problems" ]
    assert_contains "$stderr" "tensor 'flow.0.1.coupling.conv2.weight': non-finite value nan at element 5"
    assert_contains "$stderr" "tensor 'prior.conv.logs': non-finite value inf at element 0"
    # loading rejects it too
    run --separate-stderr glow-ckpt nan.st
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-ckpt: nan.st: tensor 'flow.0.1.coupling.conv2.weight': non-finite"
}

@test "--verify finds a singular invconv and a broken LU permutation" {
    # row 1 := row 0, so det W = 0 exactly
    st copy-row "$AFF" sing.st flow.1.0.invconv.weight 0 1
    run --separate-stderr glow-ckpt --verify sing.st
    [ "$status" -eq 1 ]
    [ "$output" = "sing.st: 1 problem" ]
    assert_contains "$stderr" "flow.1.0.invconv.weight': singular"
    st set "$LU" lu.st flow.0.2.invconv.p 1 0.5
    st set lu.st lu.st flow.1.1.invconv.sign_s 3 2
    run --separate-stderr glow-ckpt --verify lu.st
    [ "$status" -eq 1 ]
    [ "$output" = "lu.st: 2 problems" ]
    assert_contains "$stderr" "flow.0.2.invconv.p': not a permutation matrix"
    assert_contains "$stderr" "flow.1.1.invconv.sign_s': element 3 is 2"
}

@test "--verify rejects a damaged header" {
    first=$(st names "$AFF" | head -n 1)
    st set-dtype "$AFF" hdr.st "$first" F3X
    run --separate-stderr glow-ckpt --verify hdr.st
    [ "$status" -eq 1 ]
    [ "$output" = "hdr.st: 1 problem" ]
    assert_contains "$stderr" "glow-ckpt: hdr.st: tensor '$first': unknown dtype 'F3X'"
    # header length beyond the end of the file
    st header-len hdr.st hdr.st past-end
    run --separate-stderr glow-ckpt --verify hdr.st
    [ "$status" -eq 1 ]
    [ "$output" = "hdr.st: 1 problem" ]
    assert_contains "$stderr" "runs past the end of the file"
    st truncate "$AFF" short.st 5
    run --separate-stderr glow-ckpt --verify short.st
    [ "$status" -eq 1 ]
    [ "$output" = "short.st: 1 problem" ]
    assert_contains "$stderr" "glow-ckpt: short.st: truncated"
}

@test "--json summary and --list --json parse as JSON" {
    glow-ckpt --json "$LU" >s.json
    [ "$(json_get s.json 'd["parameters"]["tensors"]')" = 108 ]
    [ "$(json_get s.json 'd["model"]["coupling"]')" = additive ]
    [ "$(json_get s.json 'd["model"]["lu"]')" = True ]
    [ "$(json_get s.json 'd["optimizer"]')" = None ]
    [ "$(json_get s.json 'd["ema"]')" = False ]
    [ "$(json_get s.json '"tensors" in d')" = False ]
    glow-ckpt --list --json "$AFF" >l.json
    [ "$(json_get l.json 'len(d["tensors"])')" = 54 ]
    [ "$(json_get l.json '[t["shape"] for t in d["tensors"] if t["name"] == "prior.conv.weight"][0]')" = "[48, 49, 3, 3]" ]
    [ "$(json_get l.json 'all(t["min"] <= t["mean"] <= t["max"] and t["std"] >= 0 for t in d["tensors"])')" = True ]
    run glow-ckpt --verify --json "$AFF"
    [ "$status" -eq 0 ]
    echo "$output" >v.json
    [ "$(json_get v.json 'd["ok"], d["problems"]')" = "True []" ]
}

@test "training state from another writer: summary, verify, export, export --ema" {
    make_train "$AFF" train.st
    run glow-ckpt train.st
    [ "$status" -eq 0 ]
    assert_contains "$output" "step: 100"
    assert_contains "$output" "images_seen: 6400"
    assert_contains "$output" "optimizer state: adam"
    assert_contains "$output" "ema: yes"
    assert_contains "$output" "rng: 1 2 3"
    assert_contains "$output" "metadata note: hello"
    run glow-ckpt --verify train.st
    [ "$status" -eq 0 ]

    glow-ckpt --export-weights w.st train.st
    glow-ckpt --export-weights e.st --ema train.st
    for f in w.st e.st; do
        run glow-ckpt --verify "$f"
        [ "$status" -eq 0 ]
        run glow-ckpt "$f"
        assert_contains "$output" "optimizer state: none"
        assert_contains "$output" "ema: no"
        assert_contains "$output" "step: 100"
    done
    # exported weights are the parameters (w) or half of them (e), bit for bit
    st same "$AFF" w.st
    py - "$AFF" w.st e.st <<'EOF'
import sys
import numpy as np
from st import File, is_fixed
ref, w, e = (File(p) for p in sys.argv[1:4])
assert set(w.names) == set(ref.names) == set(e.names), "tensor names differ"
assert "optimizer" not in w.meta and "rng" not in w.meta and w.meta["note"] == "hello"
for k in ref.names:
    want = ref.tensor(k) if is_fixed(k) else ref.tensor(k) * np.float32(0.5)
    assert e.tensor(k).dtype == ref.tensor(k).dtype and np.array_equal(e.tensor(k), want), k
EOF
    # export to stdout, read back from stdin
    glow-ckpt --export-weights - train.st | glow-ckpt - >sum.txt
    grep -q "ema: no" sum.txt
}

@test "a bad optimizer moment is found" {
    make_train "$AFF" train.st
    st set train.st neg.st optim.split.0.conv.bias.v 2 -1
    run --separate-stderr glow-ckpt --verify neg.st
    [ "$status" -eq 1 ]
    [ "$output" = "neg.st: 1 problem" ]
    assert_contains "$stderr" "optim.split.0.conv.bias.v': negative second moment"
}

@test "--ema without EMA weights is an error" {
    run --separate-stderr glow-ckpt --export-weights out.st --ema "$AFF"
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-ckpt: $AFF: no EMA weights in this checkpoint"
    [ ! -e out.st ]
}

@test "usage errors exit 2, --help exits 0" {
    for args in "" "--bogus $AFF" "--ema $AFF" "$AFF $LU" "--export-weights x.st --list $AFF" \
        "--export-weights"; do
        run --separate-stderr glow-ckpt $args
        echo "$args -> $status: $stderr"
        [ "$status" -eq 2 ]
        [ -z "$output" ]
        assert_contains "$stderr" "Try 'glow-ckpt --help'"
    done
    [ ! -e x.st ]
    run glow-ckpt --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-ckpt"
    run --separate-stderr glow-ckpt no-such-file.st
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-ckpt: no-such-file.st: cannot open"
}

@test "the NumPy snippet of docs/checkpoints.md reads checkpoints as documented" {
    doc_snippet numpy snippet.py
    run py snippet.py "$AFF"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "image_size [16, 16] levels 2" ]
    [ "${lines[1]}" = "54 parameters, 41828 values" ]
    [ "${lines[2]}" = "step 0" ]
    # on a training checkpoint it still counts the parameters only
    make_train "$LU" train.st
    glow-ckpt --json train.st >t.json
    run py snippet.py train.st
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "$(json_get t.json 'd["parameters"]["tensors"]') parameters, $(json_get t.json 'd["parameters"]["total"]') values" ]
    [ "${lines[2]}" = "step 100" ]
}

@test "the PyTorch snippet of docs/checkpoints.md (when torch and safetensors exist)" {
    py -c 'import torch, safetensors' 2>/dev/null || skip "torch or safetensors not installed"
    doc_snippet torch snippet.py
    run py snippet.py "$AFF"
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "54 parameters, 41828 values" ]
}

@test "glow-ckpt RUN_DIR lists a run's checkpoints with step, validation bpd and size, from their headers" {
    mkdir -p run/checkpoints
    with_training "$LU" run/checkpoints/step-0000050.safetensors --ema 0.5 --moments 0.1 0.2 \
        --meta optimizer=adam --meta step=50 --meta images_seen=3200 --meta "rng=1 2 3200" \
        --meta name=lu-run --meta val_step=50 --meta val_bpd=4.25 --meta val_bpd_ema=4.125
    ln run/checkpoints/step-0000050.safetensors run/best.safetensors
    # the latest, validated last at step 90: no bpd of its own step
    with_training "$LU" run/checkpoint.safetensors --ema 0.5 --moments 0.1 0.2 \
        --meta optimizer=adam --meta step=100 --meta images_seen=6400 --meta "rng=1 2 6400" \
        --meta name=lu-run --meta val_step=90 --meta val_bpd=3.9
    echo garbage >run/checkpoints/step-0000070.safetensors
    run glow-ckpt run
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "run: the run lu-run at step 100; 4 checkpoints" ]
    [[ "${lines[2]}" =~ ^checkpoint\.safetensors\ +100\ +-\ +-\ +[0-9.]+\ kB$ ]]
    [[ "${lines[3]}" =~ ^best\.safetensors\ +50\ +4\.2500\ +4\.1250\ +[0-9.]+\ kB$ ]]
    [[ "${lines[4]}" =~ ^checkpoints/step-0000050\.safetensors\ +50\ +4\.2500\ +4\.1250\ +[0-9.]+\ kB\ +\(best\)$ ]]
    [[ "${lines[5]}" =~ ^checkpoints/step-0000070\.safetensors\ +.*step-0000070\.safetensors:\ bad\ header\ length ]]
    run glow-ckpt --json run
    [ "$status" -eq 0 ]
    py - <<EOF
import json
d = json.loads('''$output''')
assert d["run"] == "run" and d["name"] == "lu-run", d
c = {e["file"]: e for e in d["checkpoints"]}
assert c["checkpoint.safetensors"]["step"] == 100 and c["checkpoint.safetensors"]["val_bpd"] is None
b = c["best.safetensors"]
assert (b["step"], b["val_bpd"], b["val_bpd_ema"], b["best"]) == (50, 4.25, 4.125, True), b
assert c["checkpoints/step-0000050.safetensors"]["best"] is True
assert c["checkpoints/step-0000050.safetensors"]["bytes"] == b["bytes"] > 0
assert "error" in c["checkpoints/step-0000070.safetensors"]
EOF
    # a file of the run is a checkpoint as ever; the options for files are refused on the folder
    run glow-ckpt run/best.safetensors
    [ "$status" -eq 0 ]
    assert_contains "$output" "metadata val_bpd: 4.25"
    for opt in --list --verify "--export-weights w.st"; do
        run --separate-stderr glow-ckpt $opt run
        [ "$status" -eq 2 ]
        assert_contains "$stderr" "glow-ckpt: run: a run directory; --list, --verify and --export-weights take a checkpoint file"
    done
}

@test "--export-weights and import refuse to write over their input" {
    make_train "$LU" train.st
    cp train.st keep.st
    run --separate-stderr glow-ckpt --export-weights train.st train.st
    [ "$status" -eq 1 ]
    [ -z "$output" ]
    assert_contains "$stderr" "glow-ckpt: train.st: is also the input train.st; writing it would destroy the input"
    cmp train.st keep.st
    glow-ckpt train.st | grep -q 'optimizer state: adam'
    ln -s train.st link.st
    run --separate-stderr glow-ckpt --export-weights link.st --ema train.st
    [ "$status" -eq 1 ]
    cmp train.st keep.st
    pt=$(ls "$ROOT"/test/data/ports/*.pt | head -n 1)
    cp "$pt" port.pt
    cp port.pt port.keep
    run --separate-stderr glow-ckpt import port.pt -o port.pt
    [ "$status" -eq 1 ]
    assert_contains "$stderr" "glow-ckpt: port.pt: is also the input port.pt"
    cmp port.pt port.keep
}
