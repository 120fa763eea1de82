#!/usr/bin/env bats
# glow-ckpt: summary, --list, --verify, --json and --export-weights on the
# reference checkpoints and on copies with training state or damage made here in
# Python (so files from another writer are read too).

load helpers

PY=/usr/bin/python3
AFF="$REF_DIR/affine-invconv/model.safetensors"
LU="$REF_DIR/additive-lu-ycond/model.safetensors"

# make_train SRC OUT: SRC plus training state written by an independent writer:
# ema.* = 0.5 * params (fixed tensors copied), optim.*.m = 0.1, optim.*.v = 0.2.
make_train() {
    "$PY" - "$1" "$2" <<'EOF'
import json, struct, sys
import numpy as np
src, out = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
n = struct.unpack("<Q", data[:8])[0]
hdr = json.loads(data[8:8 + n])
meta = hdr.pop("__metadata__")
D = {"F32": "<f4", "I32": "<i4"}
arrs = {}
for k, v in hdr.items():
    b, e = v["data_offsets"]
    arrs[k] = np.frombuffer(data[8 + n + b:8 + n + e], D[v["dtype"]]).reshape(v["shape"])
fixed = lambda k: k.endswith(("invconv.p", "invconv.sign_s", "shuffle.perm"))
out_t = dict(arrs)
for k, a in arrs.items():
    out_t["ema." + k] = a if fixed(k) else (a * 0.5).astype(a.dtype)
    if not fixed(k):
        out_t["optim." + k + ".m"] = np.full(a.shape, 0.1, "<f4")
        out_t["optim." + k + ".v"] = np.full(a.shape, 0.2, "<f4")
meta.update(optimizer="adam", step="100", images_seen="6400", rng="1 2 3", note="hello")
h, blobs, off = {"__metadata__": meta}, [], 0
for k, a in out_t.items():
    raw = np.ascontiguousarray(a).tobytes()
    h[k] = {"dtype": "I32" if a.dtype.kind == "i" else "F32", "shape": list(a.shape),
            "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
hj = json.dumps(h).encode()
hj += b" " * (-len(hj) % 8)
open(out, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
EOF
}

# poke SRC OUT TENSOR INDEX VALUE: copy SRC with one float32 element replaced.
poke() {
    "$PY" - "$@" <<'EOF'
import json, struct, sys
src, out, name, idx, val = sys.argv[1:6]
data = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
b = json.loads(data[8:8 + n])[name]["data_offsets"][0]
p = 8 + n + b + 4 * int(idx)
data[p:p + 4] = struct.pack("<f", float(val))
open(out, "wb").write(data)
EOF
}

# json_get FILE EXPR: evaluate EXPR on the parsed JSON document d.
json_get() {
    "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
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
    total=$("$PY" -c '
import json, struct, sys
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n]); h.pop("__metadata__")
import math
print(sum(math.prod(v["shape"]) for v in h.values()))' "$LU")
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
    "$PY" - "$AFF" "$mn" "$mx" "$mean" "$std" <<'EOF'
import json, struct, sys
import numpy as np
d = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", d[:8])[0]
b, e = json.loads(d[8:8 + n])["split.0.conv.weight"]["data_offsets"]
a = np.frombuffer(d[8 + n + b:8 + n + e], "<f4").astype(np.float64)
got = [float(x) for x in sys.argv[2:6]]
want = [a.min(), a.max(), a.mean(), a.std()]
assert all(abs(g - w) <= 1e-5 * max(1.0, abs(w)) for g, w in zip(got, want)), (got, want)
EOF
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
    poke "$AFF" nan.st flow.0.1.coupling.conv2.weight 5 nan
    poke nan.st nan.st prior.conv.logs 0 inf
    run glow-ckpt --verify nan.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "tensor 'flow.0.1.coupling.conv2.weight': non-finite"
    assert_contains "$output" "tensor 'prior.conv.logs': non-finite"
    assert_contains "$output" "nan.st: 2 problems"
    # loading rejects it too
    run glow-ckpt nan.st
    [ "$status" -eq 1 ]
}

@test "--verify finds a singular invconv and a broken LU permutation" {
    "$PY" - "$AFF" sing.st <<'EOF'
import json, struct, sys
d = bytearray(open(sys.argv[1], "rb").read()); n = struct.unpack("<Q", d[:8])[0]
b, e = json.loads(d[8:8 + n])["flow.1.0.invconv.weight"]["data_offsets"]
# row 1 := row 0, so det W = 0 exactly
d[8 + n + b + 24 * 4:8 + n + b + 48 * 4] = d[8 + n + b:8 + n + b + 24 * 4]
open(sys.argv[2], "wb").write(d)
EOF
    run glow-ckpt --verify sing.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "flow.1.0.invconv.weight': singular"
    poke "$LU" lu.st flow.0.2.invconv.p 1 0.5
    poke lu.st lu.st flow.1.1.invconv.sign_s 3 2
    run glow-ckpt --verify lu.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "flow.0.2.invconv.p': not a permutation matrix"
    assert_contains "$output" "flow.1.1.invconv.sign_s': element 3 is 2"
}

@test "--verify rejects a damaged header" {
    cp "$AFF" hdr.st
    chmod u+w hdr.st
    # "F32" -> "F3X" in the first tensor entry
    "$PY" -c '
import sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read())
i = d.index(b"\"F32\""); d[i + 3] = ord("X"); open(p, "wb").write(d)' hdr.st
    run glow-ckpt --verify hdr.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "unknown dtype 'F3X'"
    # header length beyond the end of the file
    "$PY" -c '
import struct, sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read())
d[:8] = struct.pack("<Q", len(d)); open(p, "wb").write(d)' hdr.st
    run glow-ckpt --verify hdr.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "runs past the end of the file"
    head -c 5 "$AFF" >short.st
    run glow-ckpt --verify short.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "truncated"
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
    "$PY" - "$AFF" w.st e.st <<'EOF'
import json, struct, sys
import numpy as np
def load(p):
    d = open(p, "rb").read(); n = struct.unpack("<Q", d[:8])[0]
    h = json.loads(d[8:8 + n]); m = h.pop("__metadata__")
    return {k: np.frombuffer(d[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                             "<f4") for k, v in h.items()}, m
ref, _ = load(sys.argv[1]); w, wm = load(sys.argv[2]); e, _ = load(sys.argv[3])
assert set(w) == set(ref) == set(e), "tensor names differ"
assert "optimizer" not in wm and "rng" not in wm and wm["note"] == "hello"
for k in ref:
    assert np.array_equal(w[k], ref[k]), k
    assert np.array_equal(e[k], (ref[k] * np.float32(0.5)).astype("<f4")), k
EOF
    # export to stdout, read back from stdin
    glow-ckpt --export-weights - train.st | glow-ckpt - >sum.txt
    grep -q "ema: no" sum.txt
}

@test "a bad optimizer moment is found" {
    make_train "$AFF" train.st
    poke train.st neg.st optim.split.0.conv.bias.v 2 -1
    run glow-ckpt --verify neg.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "optim.split.0.conv.bias.v': negative second moment"
}

@test "--ema without EMA weights is an error" {
    run glow-ckpt --export-weights out.st --ema "$AFF"
    [ "$status" -eq 1 ]
    assert_contains "$output" "no EMA weights"
    [ ! -e out.st ]
}

@test "usage errors exit 2, --help exits 0" {
    run glow-ckpt
    [ "$status" -eq 2 ]
    run glow-ckpt --bogus "$AFF"
    [ "$status" -eq 2 ]
    run glow-ckpt --ema "$AFF"
    [ "$status" -eq 2 ]
    run glow-ckpt "$AFF" "$LU"
    [ "$status" -eq 2 ]
    run glow-ckpt --export-weights x.st --list "$AFF"
    [ "$status" -eq 2 ]
    run glow-ckpt --export-weights
    [ "$status" -eq 2 ]
    run glow-ckpt --help
    [ "$status" -eq 0 ]
    assert_contains "$output" "Usage: glow-ckpt"
    run glow-ckpt no-such-file.st
    [ "$status" -eq 1 ]
    assert_contains "$output" "no-such-file.st: cannot open"
}

@test "the NumPy snippet of docs/checkpoints.md reads checkpoints as documented" {
    doc_snippet numpy snippet.py
    run "$PY" snippet.py "$AFF"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "image_size [16, 16] levels 2" ]
    [ "${lines[1]}" = "54 parameters, 41828 values" ]
    [ "${lines[2]}" = "step 0" ]
    # on a training checkpoint it still counts the parameters only
    make_train "$LU" train.st
    glow-ckpt --json train.st >t.json
    run "$PY" snippet.py train.st
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "$(json_get t.json 'd["parameters"]["tensors"]') parameters, $(json_get t.json 'd["parameters"]["total"]') values" ]
    [ "${lines[2]}" = "step 100" ]
}

@test "the PyTorch snippet of docs/checkpoints.md (when torch and safetensors exist)" {
    "$PY" -c 'import torch, safetensors' 2>/dev/null || skip "torch or safetensors not installed"
    doc_snippet torch snippet.py
    run "$PY" snippet.py "$AFF"
    [ "$status" -eq 0 ]
    [ "${lines[1]}" = "54 parameters, 41828 values" ]
}
