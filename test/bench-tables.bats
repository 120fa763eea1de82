#!/usr/bin/env bats
# bench/run_bench.py: its table of what the speed targets need (verdicts and
# numbers from made-up rounds), its reading of bench/conv_ops' totals, and its
# timing of our latent tools (--latent-only). The system's Python alone
# (run_bench imports PyTorch only to time the peer).
bats_require_minimum_version 1.5.0
load helpers

setup() {
    TMP="$BATS_TEST_TMPDIR"
    cd "$TMP" || return 1
}

# bpy: Python with bench/ importable
bpy() { PYTHONPATH="$ROOT/bench" /usr/bin/python3 "$@"; }

@test "run_bench: what the targets need: beyond the peak, beyond the convolutions alone, or how much the rest may take" {
    run bpy - <<'EOF'
import run_bench as rb
rb.conv_flops = lambda m: 1e9  # 1 GFLOP per image forward, 3 per training image
peers = ["torch", "torch-port"]
def side(train=(), ev=(), sa=()):
    return {"train": list(train), "eval": list(ev), "sample": list(sa),
            "round_train": list(train), "round_eval": list(ev), "round_sample": list(sa)}
def cfg(conv_train_s, conv_fwd_s, ours, store, peer_a, peer_b, batch=32):
    R = {"ours": side(*ours), rb.STORE: side(store), "torch": side(*peer_a), "torch-port": side(*peer_b)}
    # three rounds at a peak of 90, 100, 110 GFLOP/s (median 100); the conv
    # totals' lowest counts
    R["rounds"] = [{"peak": p, "conv_train_s": conv_train_s * f, "conv_fwd_s": conv_fwd_s * f}
                   for p, f in ((90, 1.5), (100, 1.0), (110, 1.2))]
    return ({}, {"batch": batch}, R)
rows = {
    # train 3x: the faster peer 10 -> 30 images/s = 90 GFLOP/s; the convolutions
    # alone 2 * 32 / 1.6 = 40 images/s: the rest may take 25%, ours (store, 20)
    # leaves it 50%. eval 3x: 36 images/s against 2 * 32 / 2.0 = 32 alone.
    # sample 3x: 3 * 40 = 120 GFLOP/s, above the peak.
    "A128": cfg(1.6, 2.0, ([15] * 3, [16] * 3, [25] * 3), [20] * 3,
                ([9, 10, 11], [12, 11, 13], [40] * 3), ([10, 9, 12], [10, 12, 11], [30] * 3)),
    # train 2x of 20: 120 GFLOP/s, above the peak
    "A512": cfg(1.0, 0.4, ([30] * 3, [], []), [35] * 3, ([20] * 3, [], []), ([19] * 3, [], [])),
    # 2x of 12: 24 images/s = 72 GFLOP/s, within 2 * 16 / 1.0 = 32 alone;
    # 80% of the peak: 80 / 3 = 26.7 images/s, within too
    "B": cfg(1.0, 0.3, ([10] * 3, [], []), [20] * 3, ([12] * 3, [], []), ([11] * 3, [], []), batch=16),
}
rows["A512"][2]["rounds"][1]["conv_train_s"] = 1.0
L = rb.needs_table(rows, peers, {"A128": "store", "A512": "train", "B": "store"})
print("\n".join(L))
body = [l for l in L if l.startswith("| A") or l.startswith("| B")]
assert len(body) == 6, body
want = [
    "| A128 | train >= 3x | 10.0 | 30.0 | 90 (90%) | 40.0 (120%) | 20.0 (50%) | within: the rest of the step may take 25% of it (ours: 50%) |",
    "| A128 | eval >= 3x | 12.0 | 36.0 | 36 (36%) | 32.0 (32%) | 16.0 (50%) | beyond the convolutions alone |",
    "| A128 | sample >= 3x | 40.0 | 120.0 | 120 (120%) | 32.0 (32%) | 25.0 (78%) | beyond the conv peak |",
    "| A512 | train >= 2x | 20.0 | 40.0 | 120 (120%) | 64.0 (192%) | 30.0 (47%) | beyond the conv peak |",
    "| B | train >= 2x | 12.0 | 24.0 | 72 (72%) | 32.0 (96%) | 20.0 (62%) | within: the rest of the step may take 25% of it (ours: 38%) |",
    "| B | train >= 80% of the conv peak | - | 26.7 | 80 (80%) | 32.0 (96%) | 20.0 (62%) | within: the rest of the step may take 17% of it (ours: 38%) |",
]
for got, w in zip(body, want):
    assert got == w, (got, w)
# training by store measured against the peaks taken just after its runs
# (median 110): 80% is 88 GFLOP/s = 29.3 images/s
for i, r in enumerate(rows["B"][2]["rounds"]):
    r["peak_store"] = (105, 110, 130)[i]
L = rb.needs_table(rows, peers, {"A128": "store", "A512": "train", "B": "store"})
body = [l for l in L if l.startswith("| B")]
assert body == [
    "| B | train >= 2x | 12.0 | 24.0 | 72 (65%) | 32.0 (87%) | 20.0 (62%) | within: the rest of the step may take 25% of it (ours: 38%) |",
    "| B | train >= 80% of the conv peak | - | 29.3 | 88 (80%) | 32.0 (87%) | 20.0 (62%) | within: the rest of the step may take 8% of it (ours: 38%) |",
], body
# no conv totals (a GPU run): no rows
rows["B"][2]["rounds"] = [{"peak": 100}]
assert not [l for l in rb.needs_table(rows, peers, {}) if l.startswith("| B")]
print("ok")
EOF
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = ok ]
}

@test "run_bench reads the two totals conv_ops prints, in the words conv_ops.c prints them" {
    # conv_ops.c's two summary formats, their %.1f filled in
    grep -o '"convolutions of one training step[^"]*"' "$ROOT/bench/conv_ops.c" | tr -d '"' |
        sed 's/%\.1f/123.4/; s/\\n$//' >out.txt
    grep -o '"forward convolutions[^"]*"' "$ROOT/bench/conv_ops.c" | tr -d '"' |
        sed 's/%\.1f/45.6/; s/\\n$//' >>out.txt
    [ "$(wc -l <out.txt)" -eq 2 ]
    run bpy -c 'import sys, run_bench as rb
print("%.4f %.4f" % rb.conv_ops_totals("A128", open("out.txt").read()))'
    [ "$status" -eq 0 ]
    [ "$output" = "0.1234 0.0456" ]
    # a conv_ops without the forward total is refused, named
    head -1 out.txt >one.txt
    run bpy -c 'import run_bench as rb; rb.conv_ops_totals("B", open("one.txt").read())'
    [ "$status" -ne 0 ]
    [[ "$output" == *"conv_ops B: no totals"* ]]
}

@test "run_bench: the target line's speed targets, from a recorded run's rounds, as that run wrote them" {
    run bpy - "$ROOT/bench/results/bench-cpu-20261201-2117" <<'EOF2'
import json, sys, run_bench as rb
stem = sys.argv[1]
d = json.load(open(stem + ".json"))
line = next(l for l in open(stem + ".md") if l.startswith("Targets (issue 17): "))
med, pn = rb.med, ["torch", "torch-port"]
for name, row in d["rows"].items():
    R = row["results"]
    o = R["ours"]
    ratios = {}
    for key in ("round_", "cpu_"):
        for mode in ("train", "eval", "sample"):
            ratios[key + mode] = [o[key + mode][i] / max(R[p][key + mode][i] for p in pn)
                                  for i in range(len(o[key + mode]))]
        st = R[rb.STORE][key + "train"]
        ratios[key + "store"] = [st[i] / max(R[p][key + "train"][i] for p in pn) for i in range(len(st))]
    sh = lambda k: [i[k] for i in R["rounds"] if k in i]
    tk = "store" if med(ratios["round_store"]) > med(ratios["round_train"]) else "train"
    t = rb.speed_targets(name, ratios, tk, (sh("train_frac"), sh("train_frac_cpu")),
                         (sh("train_frac_store"), sh("train_frac_store_cpu")))
    assert len(t) == {"A128": 3, "A512": 1, "B": 2}[name], t
    for what, ok, val in t:
        want = f"{what} {'met' if ok else 'NOT met'} ({val})"
        assert want in line, (want, line)
        print(want)
print("ok")
EOF2
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[-1]}" = ok ]
}

@test "run_bench --latent-only: each tool's rate from its own --times lines, the warm-up batches dropped" {
    # A128 (1x32x32, width 128): a one-step checkpoint, then glow-bpd, glow-encode,
    # glow-sample and glow-decode over 3 warm-up + their timed batches (bench/README.md)
    run --separate-stderr env BUILD="$BUILD" /usr/bin/python3 "$ROOT/bench/run_bench.py" --latent-only \
        --configs A128 --rounds 1
    echo "$output"; echo "$stderr"
    [ "$status" -eq 0 ]
    row=$(grep '^| A128 | 32 |' <<<"$output")
    bpy - "$row" <<'EOF'
import sys
f = [c.strip() for c in sys.argv[1].strip("|").split("|")]
rates = [float(f[i]) for i in (2, 3, 5, 6)]
assert all(r > 0 for r in rates), f
assert abs(float(f[4].rstrip("x")) - rates[1] / rates[0]) < 0.01, f
assert abs(float(f[7].rstrip("x")) - rates[3] / rates[2]) < 0.01, f
EOF
}
