#!/usr/bin/env bats
# python/glow_torch.py, our model in PyTorch: it reads our checkpoints and gives
# glow-bpd's bpd and glow-sample's images for the same seeds, its latents invert,
# and a model exported to a port's state dict imports back to the same tensors.
# Needs PyTorch (make bench-deps); without it every test is skipped.
bats_require_minimum_version 1.5.0
load helpers

PORTS="$ROOT/test/data/ports"

setup() {
    TMP="$BATS_TEST_TMPDIR"
    cd "$TMP" || return 1
    /usr/bin/python3 -c 'import torch' 2>/dev/null ||
        skip "PyTorch is not installed (make bench-deps installs Debian's python3-torch)"
}

# tpy ARGS...: the system's Python with python/ and test/data importable
tpy() { PYTHONPATH="$ROOT/python:$ROOT/test/data" /usr/bin/python3 "$@"; }

@test "glow_torch bpd equals glow-bpd for the same seed (edge channel, LU, classes)" {
    for m in "$AFF" "$LU"; do
        read -r c h w labels <<<"$(tpy -c 'import sys, glow_torch as gt
m = gt.load(sys.argv[1]); print(m.c["channels"], *m.c["image_size"], int(m.c["y_condition"]))' "$m")"
        flags=(--n 10 --c "$c" --h "$h" --w "$w")
        [ "$labels" = 1 ] && flags+=(--labels --label-mod 3)
        shardgen s.glow "${flags[@]}"
        glow-bpd --device cpu --per-image --seed 3 "$m" s.glow >c.tsv
        tpy - "$m" s.glow c.tsv <<'EOF'
import sys, numpy as np, glow_torch as gt, shardgen
m = gt.load(sys.argv[1])
labels, img = next(iter(shardgen.records(sys.argv[2])))
bpd = m.bpd(img, labels, seed=3).numpy()
want = np.loadtxt(sys.argv[3], skiprows=1, usecols=1)
err = np.abs(bpd - want).max()
print("max |torch - glow-bpd|", err)
assert err < 2e-5, err
EOF
    done
}

@test "glow_torch sample gives glow-sample's images; encode inverts" {
    glow-sample --device cpu "$LU" -n 5 -t 0.6 --seed 4 --class 2 >s.glow
    glow-sample --device cpu "$AFF" -n 4 -t 0.8 --seed 9 >a.glow
    tpy - "$LU" s.glow "$AFF" a.glow <<'EOF'
import sys, numpy as np, torch, glow_torch as gt, shardgen
for path, out, n, t, seed, cls in ((sys.argv[1], sys.argv[2], 5, 0.6, 4, 2),
                                   (sys.argv[3], sys.argv[4], 4, 0.8, 9, None)):
    m = gt.load(path)
    want = np.concatenate([r[1] for r in shardgen.records(out)])
    y = None if cls is None else torch.full((n,), cls)
    got = m.sample(n, t, y=y, seed=seed).numpy()
    # the same noise: equal pixels, a rare one off by a bin where float32 rounding
    # differs at a bin edge
    diff = np.abs(got.astype(int) - want.astype(int))
    bins = 256 // 2 ** m.c["n_bits"]
    print(path, "pixels that differ:", int((diff > 0).sum()), "of", diff.size)
    assert (diff > 0).mean() < 0.01 and diff.max() <= bins, diff.max()
    img = want
    labels = None if cls is None else np.full(n, cls)
    zs = m.encode(img, labels, seed=1)
    x = m.inverse(zs, None if labels is None else torch.as_tensor(labels))
    x0 = m.dequant(torch.as_tensor(img), m.noise(n, 1))
    assert (x - x0).abs().max().item() < 1e-4
EOF
}

@test "our checkpoint to a port's state dict and back through glow-ckpt import: the same tensors" {
    glow-ckpt import "$PORTS/y0ast-affine-ycond.pt" -o a.st
    glow-ckpt import --permutation reverse "$PORTS/y0ast-additive-reverse.pt" -o b.st
    glow-ckpt import "$PORTS/chaiyujin-additive-lu.pkg" -o c.st
    for m in a b c; do
        tpy - "$m.st" "$m.pt" <<'EOF'
import sys, torch, glow_torch as gt
m = gt.load(sys.argv[1])
torch.save(gt.to_port_state_dict(m.c, m.p, "y0ast", dtype=torch.float64), sys.argv[2])
EOF
        args=()
        [ "$m" = b ] && args=(--permutation reverse)
        glow-ckpt import "${args[@]}" "$m.pt" -o "$m.back.st"
        st same "$m.st" "$m.back.st"
    done
    # chaiyujin's names: its input u/255 unfolded and folded again, so to rounding
    tpy - c.st c2.pt <<'EOF'
import sys, torch, glow_torch as gt
m = gt.load(sys.argv[1])
torch.save({"global_step": 0, "graph": gt.to_port_state_dict(m.c, m.p, "chaiyujin", batch=6)},
           sys.argv[2])
EOF
    glow-ckpt import c2.pt -o c2.st
    py - c.st c2.st <<'EOF'
import sys, st, numpy as np
a, b = st.File(sys.argv[1]).tensors(), st.File(sys.argv[2]).tensors()
assert sorted(a) == sorted(b)
for k in a:
    tol = 1e-6 if k.startswith("flow.0.0.actnorm") else 0
    assert np.abs(a[k].astype(float) - b[k]).max() <= tol, k
EOF
    # a model with the edge channel has no port to go to
    run tpy -c 'import sys, glow_torch as gt
m = gt.load(sys.argv[1]); gt.to_port_state_dict(m.c, m.p)' "$AFF"
    [ "$status" -ne 0 ]
    assert_contains "$output" "edge_bias models cannot be exported"
}

@test "glow_torch.save writes a checkpoint the tools read; the doc's example runs" {
    tpy - "$AFF" re.st <<'EOF'
import sys, glow_torch as gt
gt.save(sys.argv[2], gt.load(sys.argv[1]), {"note": "from PyTorch"})
EOF
    st same "$AFF" re.st
    run glow-ckpt --verify re.st
    [ "$status" -eq 0 ]
    awk '$0 == "<!-- snippet: glow_torch -->" { armed = 1; next }
         armed && /^```python/ { inside = 1; next }
         inside && /^```/ { exit }
         inside { print }' "$ROOT/docs/checkpoints.md" >snippet.py
    [ -s snippet.py ]
    cp "$AFF" model.safetensors
    shardgen images.glow --n 3 --c 3 --h 16 --w 16
    PYTHONPATH="$ROOT/test/data" run /usr/bin/python3 snippet.py "$ROOT" model.safetensors images.glow
    [ "$status" -eq 0 ]
    assert_contains "$output" "bpd"
}

@test "bench/torch_glow.py, now built on python/glow_torch.py, passes the reference cases" {
    run /usr/bin/python3 "$ROOT/bench/torch_glow.py" --check "$REF_DIR"
    [ "$status" -eq 0 ]
    assert_contains "$output" "torch_glow check: 2 passed, 0 failed"
}
