#!/usr/bin/python3
"""make bench: our tools against the PyTorch peer (bench/torch_glow.py) on the
same configs, alternately, with the same thread count; see bench/README.md for
the method. Writes the table to stdout and to bench/results/.

  run_bench.py [--build DIR] [--results DIR] [--rounds N] [--skip-quality]
               [--device cpu|cuda|auto] [--configs A128,A512,B] [--latent-only]

The latent tools (glow-encode, glow-decode) are timed beside glow-bpd and
glow-sample on the configs marked latent (A128, B); --latent-only times just
those four of ours, without PyTorch or the quality run (BENCH_LATENT_ONLY=1).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY = "/usr/bin/python3"
THREADS = 2

# name: model keys (docs/model.md section 1), batch, and how many steps/batches to time
CONFIGS = {
    "A128": dict(model=dict(image_size=[32, 32], channels=1, levels=3, steps=8, width=128), batch=32,
                 train_steps=20, eval_batches=16, sample_batches=8, latent=True),
    "A512": dict(model=dict(image_size=[32, 32], channels=1, levels=3, steps=8, width=512), batch=32,
                 train_steps=5, eval_batches=5, sample_batches=3),
    "B": dict(model=dict(image_size=[32, 32], channels=3, levels=3, steps=32, width=512), batch=16,
              train_steps=3, eval_batches=4, sample_batches=2, latent=True),
}
# train.memory (docs/model.md section 11): each plan's training peak RSS and speed
# beside the peer's at the same batch, and glow-bpd's and glow-sample's peak RSS
# beside the peer's evaluation and sampling. G64 is GLOW64x64V0
# (configs/glow-64x64-imagenet.yml) at a batch this machine trains in seconds.
MEMORY_CONFIGS = {
    "A512": dict(model=CONFIGS["A512"]["model"], batch=16, train_steps=2, eval_batches=1, sample_batches=1),
    "B": dict(model=CONFIGS["B"]["model"], batch=16, train_steps=2, eval_batches=1, sample_batches=1),
    "G64": dict(model=dict(image_size=[64, 64], channels=3, levels=4, steps=48, width=512), batch=4,
                train_steps=2, eval_batches=1, sample_batches=1),
}
MEMORY_MODES = ("store", "recompute", "invert")
MODEL_DEFAULTS = dict(coupling="affine", permutation="invconv", lu=False, edge_bias=True, learn_top=True,
                      y_condition=False, n_classes=0, weight_y=0.01, n_bits=8)
WARMUP_STEPS = 3
STORE = "ours-store"  # ours' training under train.memory=store


def log(msg):
    print(msg, file=sys.stderr, flush=True)


MAXRSS = None  # bench/maxrss, once built (main)


def run(cmd, env=None, stdout=None, check=True, cpu=False):
    """Run cmd; returns (seconds, peak RSS MiB, stdout text, stderr text), and
    with cpu=True also its CPU seconds (user + system). The peak RSS comes from
    bench/maxrss, which runs cmd as its own child: a child of this process would
    start as a copy of it (PyTorch imported, ~250 MiB), and Linux keeps that
    image's peak in the ru_maxrss of whatever it then executes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as rf:
        t0 = time.perf_counter()
        full = [MAXRSS, rf.name] + cmd if MAXRSS else cmd
        p = subprocess.Popen(full, stdout=stdout or out, stderr=err, env=env, cwd=ROOT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        dt = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        o, e = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        rss = ru.ru_maxrss
        cpu_s = ru.ru_utime + ru.ru_stime
        if MAXRSS:
            txt = rf.read().split()
            rss = int(txt[0]) if txt else 0
            cpu_s = float(txt[1]) if len(txt) > 1 else float("nan")
    if check and p.returncode != 0:
        raise SystemExit(f"run_bench: {' '.join(cmd)} failed ({p.returncode}):\n{e[-2000:]}")
    return (dt, rss / 1024, o, e, cpu_s) if cpu else (dt, rss / 1024, o, e)


def env_threads():
    """Both sides: THREADS threads, each waiting the way it does when a user
    starts it (bench/README.md, "Load"): the peer with libgomp's default (its
    threads spin ~300000 rounds before they sleep), ours as the tools choose
    (libcommon/tool: a short spin when the machine is quiet, passive when it is
    busy). A policy the user set (OMP_WAIT_POLICY, GOMP_SPINCOUNT) goes to both."""
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = str(THREADS)
    return e


def wait_policy_line(waits):
    """How the threads of each side waited: the user's policy for both, or the
    peer's default and what our tools chose, with how many of ours' timed
    training runs chose each (waits: log.jsonl's omp_wait, counted)"""
    user = wait_policy_user()
    if user:
        return f"both sides {user}, as set by the user"
    ours = ", ".join(f"{w} ({n} of the training runs)" for w, n in waits.items()) or "as the tools choose"
    return ("OpenMP wait: the peer libgomp's default (a spin of ~300000 rounds, then sleep), ours as the tools "
            f"choose it from the load when they start: {ours}")


def wait_policy_user():
    """The wait policy the user set for both sides, or None"""
    v = [f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ]
    return " ".join(v) or None

# ---------------------------------------------------------------- data and configs


def write_shards(path, n, c, h, w, seed):
    """n synthetic uint8 images (torch_glow.synthetic_images: the peer times the
    same kind) as one shard-stream file (docs/formats.md)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from torch_glow import synthetic_images
    px = synthetic_images(n, c, h, w, seed).tobytes()
    z = zlib.compress(px, 1)
    hdr = struct.pack("<8sIIIIIIIIQQI", b"GLOWSHRD", 1, 1, 0, n, c, h, w, 0, len(px), len(z), zlib.crc32(px))
    hdr += struct.pack("<I", zlib.crc32(hdr))
    with open(path, "wb") as f:
        f.write(hdr + z)


def write_config(path, model, batch, device, memory=None):
    """A run config for timing: the learning rate is small because a fresh model
    on synthetic images diverges at 1e-3 within a few steps (B: at step 2), and a
    skipped step is not a normal one; the work of a step does not depend on it.
    memory: train.memory (default: glow-train's, recompute)."""
    m = dict(MODEL_DEFAULTS)
    m.update(model)
    lines = ["model:"] + [f"  {k}: {json.dumps(v)}" for k, v in m.items()]
    lines += ["train:", f"  batch_size: {batch}", "  optimizer: adam", "  lr: 1.0e-5",
              f"  init_batch: {batch}", "  grad_clip: 100", "  steps: 1", "  checkpoint_every: 0", "  val_every: 0",
              "  log_every: 1", "  seed: 1", f"  device: {device}"]
    if memory:
        lines.append(f"  memory: {memory}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return m


def conv_flops(m, n=1):
    """Convolution FLOPs of one forward pass: bench/model_bench.c's count."""
    f = 0.0
    E = 1 if m["edge_bias"] else 0
    H, W = m["image_size"]
    for l in range(m["levels"]):
        C = 4 * m["channels"] * 2 ** l
        px = n * (H >> (l + 1)) * (W >> (l + 1))
        cout = C if m["coupling"] == "affine" else C / 2
        wd = m["width"]
        step = (C / 2 + E) * wd * 9 + wd * wd + (wd + E) * cout * 9
        if m["permutation"] == "invconv":
            step += C * C
        f += 2 * px * step * m["steps"]
        if l < m["levels"] - 1:
            f += 2 * px * (C / 2 + E) * C * 9
        elif m["learn_top"]:
            f += 2 * px * (2 * C + E) * 2 * C * 9
    return f

# ---------------------------------------------------------------- our side


class Ours:
    def __init__(self, build, tmp, device):
        self.bin = os.path.join(ROOT, build, "bin")
        self.tmp, self.device = tmp, device
        self.waits = {}  # how the timed training runs' threads waited (log.jsonl's omp_wait): runs each

    def train(self, name, spec, cfgpath, data):
        """images/s of each timed step (glow-train's own per-step timing in
        log.jsonl), the peak RSS, the checkpoint for eval and sampling, and
        images per CPU second: the CPU time of a second run of only the warm-up
        steps subtracted, which leaves that of the timed steps."""
        run_dir = os.path.join(self.tmp, f"run-{name}")
        steps = WARMUP_STEPS + spec["train_steps"]
        for d in (run_dir, run_dir + "-warmup"):  # an earlier round's: glow-train keeps a run
            shutil.rmtree(d, ignore_errors=True)
        cmd = lambda n, d: [os.path.join(self.bin, "glow-train"), "-q", "-c", cfgpath, "--device", self.device,
                            "--steps", str(n), "-o", d, data]
        _, _, _, _, c0 = run(cmd(WARMUP_STEPS, run_dir + "-warmup"), env=env_threads(), cpu=True)
        _, rss, _, _, c1 = run(cmd(steps, run_dir), env=env_threads(), cpu=True)
        rates = []
        with open(os.path.join(run_dir, "log.jsonl")) as f:
            for line in f:
                d = json.loads(line)
                if "omp_wait" in d:
                    self.waits[d["omp_wait"]] = self.waits.get(d["omp_wait"], 0) + 1
                if "skipped" in d:
                    raise SystemExit(f"run_bench: {name}: glow-train skipped step {d['step']} ({d['skipped']}); "
                                     "its timing would not be of a normal step")
                if "images_per_s" in d and d["step"] > WARMUP_STEPS:
                    rates.append(d["images_per_s"])
        shutil.rmtree(run_dir + "-warmup", ignore_errors=True)
        per_cpu = spec["train_steps"] * spec["batch"] / max(c1 - c0, 1e-9)
        return rates, rss, os.path.join(run_dir, "checkpoint.safetensors"), per_cpu

    def train_memory(self, name, spec, cfgpath, data, mode):
        """glow-train under train.memory MODE: the steady images/s (glow-train's
        own per-step timing after the warm-up steps), the peak RSS, and the
        largest rebuilt-input error logged (invert)."""
        run_dir = os.path.join(self.tmp, f"mem-{name}-{mode}")
        steps = WARMUP_STEPS + spec["train_steps"]
        shutil.rmtree(run_dir, ignore_errors=True)
        _, rss, _, _ = run([os.path.join(self.bin, "glow-train"), "-q", "-c", cfgpath, "--device", self.device,
                            "--steps", str(steps), "--set", f"train.memory={mode}", "-o", run_dir, data],
                           env=env_threads())
        rates, err = [], 0.0
        with open(os.path.join(run_dir, "log.jsonl")) as f:
            for line in f:
                d = json.loads(line)
                if "images_per_s" in d and d["step"] > WARMUP_STEPS:
                    rates.append(d["images_per_s"])
                if d.get("inv_error") is not None:
                    err = max(err, d["inv_error"])
        return rates, rss, err, os.path.join(run_dir, "checkpoint.safetensors")

    def _timed(self, tool, args, spec, nb, cpu=False):
        """TOOL run over WARMUP_STEPS + nb batches with --times: the images/s of
        each full batch after the warm-up ones (the tool's own per-batch timing,
        as glow-train's per step and the peer's per batch), the peak RSS, and
        images per CPU second (the median batch's CPU time, all threads)."""
        b = spec["batch"]
        times = os.path.join(self.tmp, f"{tool}-times.jsonl")
        r = run([os.path.join(self.bin, tool), "--batch", str(b), "--device", self.device, "--times", times]
                + args(b * (WARMUP_STEPS + nb)), env=env_threads(), cpu=cpu)
        with open(times) as f:
            lines = [json.loads(x) for x in f]
        timed = [d for d in lines[WARMUP_STEPS:] if d["images"] == b]
        if not timed:
            raise SystemExit(f"run_bench: {tool}: no full batch after the {WARMUP_STEPS} warm-up ones in {times}")
        rates = [d["images_per_s"] for d in timed]
        cpu_s = sorted(d["cpu_seconds"] for d in timed)[len(timed) // 2]
        return rates, r[1], b / max(cpu_s, 1e-9)

    def eval(self, spec, ckpt, data):
        """glow-bpd: rates of the timed batches, peak RSS, images per CPU second"""
        return self._timed("glow-bpd", lambda n: ["--limit", str(n), ckpt, data], spec, spec["eval_batches"])

    def sample(self, spec, ckpt):
        out = os.path.join(self.tmp, "samples.glow")
        return self._timed("glow-sample", lambda n: ["-n", str(n), "-o", out, ckpt], spec, spec["sample_batches"])

    def encode(self, spec, ckpt, data):
        """glow-encode as glow-bpd"""
        out = os.path.join(self.tmp, "enc.glow")
        return self._timed("glow-encode", lambda n: ["--limit", str(n), "-o", out, ckpt, data], spec,
                           spec["eval_batches"])[0]

    def decode(self, spec, ckpt):
        """glow-decode as glow-sample: latents of glow-latent random (the same
        noise as glow-sample draws)"""
        nb = spec["sample_batches"]
        lat = os.path.join(self.tmp, "lat.glow")
        run([os.path.join(self.bin, "glow-latent"), "random", ckpt, str(spec["batch"] * (WARMUP_STEPS + nb)),
             "--device", self.device, "-o", lat], env=env_threads())
        out = os.path.join(self.tmp, "dec.glow")
        return self._timed("glow-decode", lambda n: ["-o", out, ckpt, lat], spec, nb)[0]


def latent_rows(ours, name, spec, ckpt, data, rounds):
    """images/s of glow-bpd, glow-encode, glow-sample, glow-decode: medians over rounds"""
    r = {"eval": [], "encode": [], "sample": [], "decode": []}
    for _ in range(rounds):
        r["eval"] += ours.eval(spec, ckpt, data)[0]
        r["encode"] += ours.encode(spec, ckpt, data)
        r["sample"] += ours.sample(spec, ckpt)[0]
        r["decode"] += ours.decode(spec, ckpt)
    log(f"run_bench: {name} latent tools: " + json.dumps({k: round(med(v), 1) for k, v in r.items()}))
    return r


def latent_table(rows):
    L = ["Latent tools (ours), images/s (median): encoding beside evaluation (glow-bpd; both a forward "
         "pass without activations kept), decoding beside sampling (glow-sample; both the inverse pass):", "",
         "| config | batch | glow-bpd | glow-encode | ratio | glow-sample | glow-decode | ratio |",
         "|---|---|---|---|---|---|---|---|"]
    for name, (spec, r) in rows.items():
        L.append(f"| {name} | {spec['batch']} | {med(r['eval']):.1f} | {med(r['encode']):.1f} | "
                 f"{med(r['encode']) / med(r['eval']):.2f}x | {med(r['sample']):.1f} | {med(r['decode']):.1f} | "
                 f"{med(r['decode']) / med(r['sample']):.2f}x |")
    return L + [""]


def latent_only(a):
    """--latent-only: our four tools on the latent configs, no PyTorch."""
    device = "cpu" if a.device == "auto" else a.device
    load0 = os.getloadavg()
    t0 = time.time()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="glow-bench-") as tmp:
        ours = Ours(a.build, tmp, device)
        for name in a.configs.split(","):
            spec = CONFIGS[name]
            if not spec.get("latent"):
                continue
            cfgpath = os.path.join(tmp, f"{name}.yml")
            model = write_config(cfgpath, spec["model"], spec["batch"], device)
            H, W = model["image_size"]
            data = os.path.join(tmp, f"{name}.glow")
            write_shards(data, spec["batch"] * (WARMUP_STEPS + spec["eval_batches"]), model["channels"], H, W, 5)
            run_dir = os.path.join(tmp, f"run-{name}")
            run([os.path.join(ours.bin, "glow-train"), "-q", "-c", cfgpath, "--device", device, "--steps", "1",
                 "-o", run_dir, data], env=env_threads())
            ckpt = os.path.join(run_dir, "checkpoint.safetensors")
            rows[name] = (spec, latent_rows(ours, name, spec, ckpt, data, a.rounds))
    L = [f"# run_bench.py --latent-only, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
         f"Machine: {machine()}. Device: {device}; {THREADS} threads. Load average before: "
         f"{load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
         + f". Rounds: {a.rounds}.", ""] + latent_table(rows)
    L.append(f"Total bench time: {time.time() - t0:.0f} s.")
    print("\n".join(L))
    return 0

# ---------------------------------------------------------------- the peer


# The peers (bench/torch_glow.py): label, --peer, torch.compile. "torch" is the
# model of docs/model.md written for speed (FastGlow, checked against the
# reference cases); "torch-port" the same shapes as the popular PyTorch ports build
# them (PortGlow: no edge channel, biases instead of the coupling actnorms), a
# different and cheaper model. Ratios are against the faster of the two.
PEERS = [("torch", "fast", False), ("torch-port", "port", False)]
PEER_NOTES = {"torch": "the model of docs/model.md in PyTorch, written for speed (bench/torch_glow.py FastGlow; "
                       "passes the reference cases)",
              "torch-port": "the same shapes as the popular PyTorch ports build them: no edge channel, conv biases "
                            "instead of the coupling network's actnorms (PortGlow; a cheaper model)",
              "torch.compile": "FastGlow's forward pass through torch.compile"}


def torch_run(mode, model, spec, device, peer="fast", compile_=False):
    reps = {"train": spec["train_steps"], "eval": spec["eval_batches"], "sample": spec["sample_batches"]}[mode]
    cmd = [PY, os.path.join(ROOT, "bench", "torch_glow.py"), "bench", "--mode", mode, "--model", json.dumps(model),
           "--batch", str(spec["batch"]), "--warmup", str(WARMUP_STEPS), "--reps", str(reps),
           "--threads", str(THREADS), "--device", device, "--peer", peer]
    if compile_:
        cmd.append("--compile")
    _, rss, out, _ = run(cmd, env=env_threads())
    d = json.loads(out.strip().splitlines()[-1])
    return [spec["batch"] / t for t in d["times"]], rss, d


def compile_works(model, spec, device):
    """torch.compile of the peer on this device: None when it runs, else why not"""
    import torch
    if not hasattr(torch, "compile"):
        return f"not available in PyTorch {torch.__version__} (torch.compile came with 2.0)"
    small = dict(spec, train_steps=1, eval_batches=1, sample_batches=1)
    try:
        torch_run("train", model, small, device, "fast", True)
    except SystemExit as e:
        return f"fails here: {str(e).strip().splitlines()[-1][:200]}"
    return None

# ---------------------------------------------------------------- the profile


def perf_works():
    try:
        r = subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-o", "/dev/null", "true"],
                           capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def profile_train(o, name, spec, cfgpath, data, top=10):
    """perf's top symbols (cpu-clock samples, oneDNN's JIT kernels named through
    DNNL_JIT_PROFILE=2) of glow-train on this config: the share of each symbol,
    the kernels of one name added up, and the shares of the libraries."""
    run_dir = os.path.join(o.tmp, f"prof-{name}")
    pdata = os.path.join(o.tmp, f"perf-{name}.data")
    steps = WARMUP_STEPS + 2 * spec["train_steps"]
    env = env_threads()
    env["DNNL_JIT_PROFILE"] = "2"
    before = set(os.listdir("/tmp"))
    run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-o", pdata, os.path.join(o.bin, "glow-train"),
         "-q", "-c", cfgpath, "--device", o.device, "--steps", str(steps), "-o", run_dir, data], env=env)
    rep = lambda key: run(["perf", "report", "-i", pdata, "--no-children", "--sort", key, "--stdio"],
                          env=env)[2]
    syms, dsos = {}, {}
    for text, out in ((rep("symbol"), syms), (rep("dso"), dsos)):
        for line in text.splitlines():
            m = re.match(r"\s*([0-9.]+)%\s+(?:\[[.k]\]\s+)?(.*?)\s*$", line)
            if m and not line.lstrip().startswith("#"):
                k = re.sub(r"\s+-\s+-\s*$", "", m.group(2)).strip()
                k = re.sub(r"\[JIT\] tid \d+", "[JIT] (oneDNN kernels)", k)
                out[k] = out.get(k, 0.0) + float(m.group(1))
    for f in set(os.listdir("/tmp")) - before:
        if f.startswith("perf-") and f.endswith(".map"):
            try:
                os.unlink(os.path.join("/tmp", f))
            except OSError:
                pass
    top_syms = sorted(syms.items(), key=lambda kv: -kv[1])[:top]
    top_dsos = sorted(dsos.items(), key=lambda kv: -kv[1])[:5]
    return {"steps": steps, "symbols": top_syms, "dsos": top_dsos}

# ---------------------------------------------------------------- report


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def memory_table(build, tmp, device, names, rounds):
    """Each train.memory plan against the peer (one round each unless rounds > 1:
    the peak RSS is the largest over the rounds, images/s the median), glow-bpd's
    and glow-sample's peak RSS against the peer's evaluation and sampling, and the
    largest batch each plan trains in 8 GiB (bench/mem_plan: the memory budget)."""
    ours = Ours(build, tmp, device)
    rows = {}
    for name in names:
        spec = MEMORY_CONFIGS[name]
        cfgpath = os.path.join(tmp, f"mem-{name}.yml")
        model = write_config(cfgpath, spec["model"], spec["batch"], device)
        data = os.path.join(tmp, f"mem-{name}.glow")
        write_shards(data, spec["batch"] * (WARMUP_STEPS + spec["train_steps"]), model["channels"],
                     *model["image_size"], 5)
        R = {m: {"rate": [], "rss": 0, "err": 0.0} for m in MEMORY_MODES + ("peer",)}
        R["eval"] = {"ours": 0, "peer": 0}
        R["sample"] = {"ours": 0, "peer": 0}
        ckpt = None
        for rnd in range(rounds):
            for mode in MEMORY_MODES:
                log(f"run_bench: memory {name} {mode} round {rnd + 1}/{rounds}")
                rates, rss, err, ckpt = ours.train_memory(name, spec, cfgpath, data, mode)
                R[mode]["rate"] += rates
                R[mode]["rss"] = max(R[mode]["rss"], rss)
                R[mode]["err"] = max(R[mode]["err"], err)
            rates, rss, _ = torch_run("train", model, spec, device)
            R["peer"]["rate"] += rates
            R["peer"]["rss"] = max(R["peer"]["rss"], rss)
            b = str(spec["batch"])
            _, rss, _, _ = run([os.path.join(ours.bin, "glow-bpd"), "--batch", b, "--limit", b, "--device", device,
                                ckpt, data], env=env_threads())
            R["eval"]["ours"] = max(R["eval"]["ours"], rss)
            _, rss, _, _ = run([os.path.join(ours.bin, "glow-sample"), "--batch", b, "-n", b, "--device", device,
                                "-o", os.path.join(tmp, "mem-samples.glow"), ckpt], env=env_threads())
            R["sample"]["ours"] = max(R["sample"]["ours"], rss)
            for mode in ("eval", "sample"):
                _, rss, _ = torch_run(mode, model, spec, device)
                R[mode]["peer"] = max(R[mode]["peer"], rss)
        rows[name] = (spec, R)
        log(f"run_bench: memory {name}: " + json.dumps(R))
    _, _, out, _ = run([os.path.join(ROOT, build, "bench", "mem_plan"), "--gib", "8"] + list(names))
    most = {}
    for line in out.splitlines():
        m = re.match(r"(\S+) (\S+): largest batch in .*: (\d+)", line)
        if m:
            most[(m.group(1), m.group(2))] = int(m.group(3))
    L = ["train.memory (docs/model.md section 11): training peak RSS MiB and images/s (median) of each plan, "
         "the peer at the same batch; the largest rebuilt-input error invert logged; the largest batch that "
         "trains in 8 GiB (bench/mem_plan, the memory budget glow-train checks).", "",
         "| config | batch | plan | RSS train | RSS peer | ratio | img/s | img/s peer | of store's | "
         "inv_error | batch in 8 GiB |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, (spec, R) in rows.items():
        for mode in MEMORY_MODES:
            r = R[mode]
            L.append(f"| {name} | {spec['batch']} | {mode} | {r['rss']:.0f} | {R['peer']['rss']:.0f} | "
                     f"{r['rss'] / R['peer']['rss']:.2f} | {med(r['rate']):.2f} | {med(R['peer']['rate']):.2f} | "
                     f"{med(r['rate']) / med(R['store']['rate']):.2f} | "
                     f"{r['err']:.2g} | {most.get((name, mode), '-')} |" if mode == "invert" else
                     f"| {name} | {spec['batch']} | {mode} | {r['rss']:.0f} | {R['peer']['rss']:.0f} | "
                     f"{r['rss'] / R['peer']['rss']:.2f} | {med(r['rate']):.2f} | {med(R['peer']['rate']):.2f} | "
                     f"{med(r['rate']) / med(R['store']['rate']):.2f} | - | {most.get((name, mode), '-')} |")
    L += ["", "Peak RSS MiB of evaluation and sampling at the same batch (glow-bpd, glow-sample; the peer's "
          "torch.no_grad() forward and sampling):", "",
          "| config | batch | glow-bpd | peer eval | ratio | glow-sample | peer sample | ratio |",
          "|---|---|---|---|---|---|---|---|"]
    for name, (spec, R) in rows.items():
        e, s = R["eval"], R["sample"]
        L.append(f"| {name} | {spec['batch']} | {e['ours']:.0f} | {e['peer']:.0f} | {e['ours'] / e['peer']:.2f} | "
                 f"{s['ours']:.0f} | {s['peer']:.0f} | {s['ours'] / s['peer']:.2f} |")
    raw = {n: {"spec": s, "results": R} for n, (s, R) in rows.items()}
    raw["batch_in_8gib"] = {f"{k[0]} {k[1]}": v for k, v in most.items()}
    return L, raw


def memory_only(a):
    """BENCH_MEMORY_ONLY=1: the train.memory table alone (CPU)."""
    import torch
    t0 = time.time()
    load0 = os.getloadavg()
    names = [n for n in a.memory_configs.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="glow-bench-") as tmp:
        L, raw = memory_table(a.build, tmp, "cpu", names, a.rounds)
    now = datetime.datetime.now(datetime.timezone.utc)
    head = [f"# make bench (train.memory only), {now:%Y-%m-%d %H:%M} UTC", "",
            f"Machine: {machine()}. Device: cpu, {THREADS} threads. PyTorch {torch.__version__}.",
            f"Load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f". Rounds: {a.rounds}.", ""]
    text = "\n".join(head + L + ["", f"Total bench time: {time.time() - t0:.0f} s."]) + "\n"
    print(text)
    os.makedirs(a.results, exist_ok=True)
    stem = os.path.join(a.results, f"bench-memory-cpu-{now:%Y%m%d-%H%M}")
    with open(stem + ".md", "w") as f:
        f.write(text)
    with open(stem + ".json", "w") as f:
        json.dump(raw, f, indent=1)
    log(f"run_bench: wrote {stem}.md")
    return 0


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def quality(o, build, tmp, seconds):
    """configs/fashion-mnist.yml trained for `seconds` (glow-train --time-limit),
    then the test bpd of all 10,000 test images (32x32 padded) via glow-bpd."""
    fm = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")
    b = os.path.join(ROOT, build, "bin")
    tr, te = os.path.join(tmp, "fm-train"), os.path.join(tmp, "fm-test")
    run([os.path.join(b, "glow-prep"), "-q", "--pad", "2", "-o", tr, os.path.join(fm, "train-images-idx3-ubyte.gz")])
    run([os.path.join(b, "glow-prep"), "-q", "--pad", "2", "-o", te, os.path.join(fm, "t10k-images-idx3-ubyte.gz")])
    rd = os.path.join(tmp, "quality")
    wall, rss, _, _ = run([os.path.join(b, "glow-train"), "-q", "-c", os.path.join(ROOT, "configs/fashion-mnist.yml"),
                           "--device", o.device, "--time-limit", str(seconds), "--steps", "10000000", "-o", rd, tr],
                          env=env_threads())
    step = 0
    with open(os.path.join(rd, "log.jsonl")) as f:
        for line in f:
            step = max(step, json.loads(line).get("step", 0))
    ck = os.path.join(rd, "checkpoint.safetensors")
    res = {"seconds": seconds, "wall_s": wall, "steps": step, "rss_mib": rss}
    for tag, extra in (("ema", ["--ema"]), ("raw", [])):
        _, _, out, _ = run([os.path.join(b, "glow-bpd"), "--json", "--device", o.device] + extra + [ck, te],
                           env=env_threads())
        res["bpd_" + tag] = json.loads(out)["bpd"] if out.strip().startswith("{") else out.strip()
    return res


def cpu_isa_flags():
    """the vector extensions /proc/cpuinfo lists (AVX2, AVX-512F, ...)"""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("flags"):
                f = set(line.split(":", 1)[1].split())
                return ", ".join(n for k, n in (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"),
                                                ("avx512_bf16", "AVX512-BF16"), ("amx_tile", "AMX")) if k in f)
    except OSError:
        pass
    return "?"


def conv_ops_totals(name, out):
    """conv_ops' two totals, in seconds: one training step's convolutions, and
    their forward calls"""
    tr = re.search(r"one training step[^:]*: ([0-9.]+) ms", out)
    fw = re.search(r"forward convolutions[^:]*: ([0-9.]+) ms", out)
    if not tr or not fw:
        raise SystemExit(f"run_bench: conv_ops {name}: no totals in: {out[-300:]}")
    return float(tr.group(1)) * 1e-3, float(fw.group(1)) * 1e-3


# the speed targets of issue 17 (bench/README.md): config -> [(mode, ratio)]
RATIO_TARGETS = {"A128": [("train", 3), ("eval", 3), ("sample", 3)], "A512": [("train", 2)], "B": [("train", 2)]}
PEAK_TARGETS = {"B": 0.8}  # training's share of the conv peak


def speed_targets(name, ratios, tk, shares, shares_store):
    """The speed targets of config name for the results' target line: (what,
    met, the measured value), from the per-round ratios against the faster peer
    (keys round_/cpu_ + train, store, eval, sample), training by plan tk ("store"
    or "train", recompute), and the per-round shares of the peak of each plan
    (wall, per CPU s)."""
    plan = "store" if tk == "store" else "recompute"
    t = []
    for m, x in RATIO_TARGETS.get(name, []):
        k = tk if m == "train" else m
        val = f"{med(ratios['round_' + k]):.2f}x" + (f" with train.memory={plan}" if m == "train" else "")
        t.append((f"{m} >= {x}x", med(ratios["round_" + k]) >= x, f"{val}; per CPU s {med(ratios['cpu_' + k]):.2f}x"))
    ft, fct = shares_store if tk == "store" else shares  # by the plan of the training ratio
    if name in PEAK_TARGETS and ft:
        share = PEAK_TARGETS[name]
        pct = lambda v: f"{100 * med(v):.0f}%" if v else "-"
        t.append((f"train >= {100 * share:.0f}% of the conv peak", med(ft) >= share,
                  f"{pct(ft)} with train.memory={plan}; per CPU s {pct(fct)}"))
    return t


def needs_table(rows, pn, plans):
    """What each speed target asks of the machine, beside two bounds: the conv
    peak (no step can do its convolutions faster), and the convolutions alone
    (bench/conv_ops: this backend's ops for every convolution of a step, each
    alone with warm caches, best of 5, lowest over the rounds, all threads busy:
    what the step would reach if nothing but its convolutions took time). A
    target beyond either is out of reach of these kernels; one within needs the
    rest of the step to fit in what is left."""
    L = ["What the speed targets need: the target's images/s (the target ratio times the faster peer's median "
         "images/s over the rounds; B's share of the peak: that share of the conv peak), its convolution GFLOP/s "
         "and share of the conv peak (median over the rounds), against the convolutions alone (bench/conv_ops "
         f"--cpu: every convolution of the step through this backend, each op alone with warm caches, best of 5, "
         f"the lowest CPU time over the rounds, times {THREADS} threads: the step's speed if nothing but its "
         "convolutions took time and no thread ever waited). Ours: the bench's images/s (training by the plan "
         "of its target line) and its share of the convolutions-alone speed.", "",
         "| config | target | faster peer, images/s | needed, images/s | needed GFLOP/s (% of peak) | "
         "convolutions alone, images/s (% of peak) | ours, images/s (% of convolutions alone) | verdict |",
         "|---|---|---|---|---|---|---|---|"]
    for name, (model, spec, R) in rows.items():
        rounds = [i for i in R["rounds"] if "conv_train_s" in i]
        if not rounds:
            continue
        fl = conv_flops(model) * 1e-9
        pk = med([i["peak"] for i in rounds])
        tk = plans.get(name, "train")
        # training by store against the peaks measured just after its runs
        pk_train = med([i["peak_store"] for i in rounds]) if tk == "store" and "peak_store" in rounds[0] else pk
        alone = {"train": THREADS * spec["batch"] / min(i["conv_train_s"] for i in rounds)}
        alone["eval"] = alone["sample"] = THREADS * spec["batch"] / min(i["conv_fwd_s"] for i in rounds)
        ours = {"train": med(R[STORE]["train"] if tk == "store" else R["ours"]["train"]),
                "eval": med(R["ours"]["eval"]), "sample": med(R["ours"]["sample"])}
        asks = []
        for mode, x in RATIO_TARGETS.get(name, []):
            n = len(R["ours"]["round_" + mode])
            peer = med([max(R[p]["round_" + mode][i] for p in pn) for i in range(n)])
            asks.append((mode, f"{mode} >= {x}x", f"{peer:.1f}", x * peer))
        if name in PEAK_TARGETS:
            share = PEAK_TARGETS[name]
            asks.append(("train", f"train >= {100 * share:.0f}% of the conv peak", "-", share * pk_train / (3 * fl)))
        for mode, what, peer, need in asks:
            k = 3 if mode == "train" else 1
            ng, ag = need * k * fl, alone[mode] * k * fl
            pk = pk_train if mode == "train" else med([i["peak"] for i in rounds])
            if ng > pk:
                verdict = "beyond the conv peak"
            elif need > alone[mode]:
                verdict = "beyond the convolutions alone"
            else:
                verdict = (f"within: the rest of the step may take {100 * (1 - need / alone[mode]):.0f}% of it "
                           f"(ours: {100 * (1 - ours[mode] / alone[mode]):.0f}%)")
            L.append(f"| {name} | {what} | {peer} | {need:.1f} | {ng:.0f} ({100 * ng / pk:.0f}%) | "
                     f"{alone[mode]:.1f} ({100 * ag / pk:.0f}%) | {ours[mode]:.1f} "
                     f"({100 * ours[mode] / alone[mode]:.0f}%) | {verdict} |")
    return L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    ap.add_argument("--configs", default=os.environ.get("BENCH_CONFIGS", "A128,A512,B"))
    ap.add_argument("--device", default=os.environ.get("BENCH_DEVICE", "auto"))
    ap.add_argument("--skip-quality", action="store_true", default=os.environ.get("BENCH_SKIP_QUALITY") == "1")
    ap.add_argument("--skip-profile", action="store_true", default=os.environ.get("BENCH_SKIP_PROFILE") == "1")
    ap.add_argument("--quality-seconds", type=float, default=480)
    ap.add_argument("--ref", default=os.path.join(ROOT, "..", "shared", "reference"))
    ap.add_argument("--latent-only", action="store_true", default=os.environ.get("BENCH_LATENT_ONLY") == "1")
    ap.add_argument("--memory-configs", default=os.environ.get("BENCH_MEMORY_CONFIGS", "A512,B,G64"))
    ap.add_argument("--memory-only", action="store_true", default=os.environ.get("BENCH_MEMORY_ONLY") == "1")
    a = ap.parse_args()
    global MAXRSS
    mr = os.path.join(ROOT, a.build, "bench", "maxrss")
    MAXRSS = mr if os.access(mr, os.X_OK) else None
    if a.latent_only:
        return latent_only(a)
    if a.memory_only:
        return memory_only(a)
    import torch
    t_start = time.time()
    load0 = os.getloadavg()

    # The peer must be the same model before it is timed.
    r = subprocess.run([PY, os.path.join(ROOT, "bench", "torch_glow.py"), "--check", a.ref], env=env_threads(),
                       capture_output=True, text=True)
    log(r.stdout.strip())
    if r.returncode != 0:
        raise SystemExit("run_bench: the PyTorch peer fails the reference cases; not timing it")

    device = a.device
    if device == "auto":
        device = "cpu"
        if torch.cuda.is_available():
            with tempfile.TemporaryDirectory() as t:
                cfg = os.path.join(t, "c.yml")
                write_config(cfg, dict(image_size=[8, 8], channels=1, levels=2, steps=1, width=8), 4, "cuda")
                write_shards(os.path.join(t, "d.glow"), 8, 1, 8, 8, 1)
                rr = subprocess.run([os.path.join(ROOT, a.build, "bin", "glow-train"), "-q", "-c", cfg, "--steps", "1",
                                     "-o", os.path.join(t, "r"), os.path.join(t, "d.glow")], capture_output=True)
                if rr.returncode == 0:
                    device = "cuda"
                else:
                    log("run_bench: PyTorch sees a GPU but glow-train --device cuda fails; benchmarking the CPU")
    peers = list(PEERS)
    first = CONFIGS[a.configs.split(",")[0]]
    compile_note = compile_works(write_config(os.path.join(tempfile.gettempdir(), "glow-bench-probe.yml"),
                                              first["model"], first["batch"], device), first, device)
    if compile_note is None:
        peers.append(("torch.compile", "fast", True))
    log(f"run_bench: peers {[p for p, _, _ in peers]}; torch.compile: {compile_note or 'works'}")

    bb = os.path.join(ROOT, a.build, "bench")
    peak, isa = {}, "?"

    def conv_peak():
        """bench/conv_peak now: {3x3, 1x1, peak} GFLOP/s, cpu_peak (per CPU
        second times the threads), and oneDNN's ISA"""
        _, _, out, _ = run([os.path.join(bb, "conv_peak")], env=env_threads())
        lines = out.splitlines()
        g = [float(x) for x in re.findall(r"([0-9.]+) GFLOP/s", lines[0])]
        gc = [float(x) for x in re.findall(r"([0-9.]+) GFLOP/s", lines[1])]
        m = re.search(r"oneDNN ISA: (\S+)", out)
        return {"3x3": g[0], "1x1": g[1], "peak": max(g), "cpu_peak": max(gc)}, (m.group(1) if m else "?")

    def conv_alone(name):
        """bench/conv_ops NAME --cpu: CPU seconds of one training step's
        convolutions and of their forward calls (evaluation's, sampling's), each
        op alone, warm, best of 5: what the step would take if nothing else did"""
        _, _, out, _ = run([os.path.join(bb, "conv_ops"), name, "--cpu"], env=env_threads())
        return conv_ops_totals(name, out)
    if device == "cpu":
        peak, isa = conv_peak()
        log(f"run_bench: conv peak {peak}, oneDNN ISA {isa}")
    do_profile = device == "cpu" and not a.skip_profile and perf_works()

    rows, lat_rows, profiles = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="glow-bench-") as tmp:
        ours = Ours(a.build, tmp, device)
        for name in a.configs.split(","):
            spec = CONFIGS[name]
            cfgpath = os.path.join(tmp, f"{name}.yml")
            model = write_config(cfgpath, spec["model"], spec["batch"], device)
            # ours' training is timed under glow-train's default plan (recompute:
            # each coupling network runs twice) and under store, which keeps every
            # activation as the peers' autograd does (STORE, below)
            cfg_store = os.path.join(tmp, f"{name}-store.yml")
            write_config(cfg_store, spec["model"], spec["batch"], device, memory="store")
            c0 = model["channels"]
            H, W = model["image_size"]
            data = os.path.join(tmp, f"{name}.glow")
            write_shards(data, spec["batch"] * (WARMUP_STEPS + max(2 * spec["train_steps"], spec["eval_batches"])),
                         c0, H, W, 5)
            fl = conv_flops(model)
            R = {}
            for who in ["ours", STORE] + [p for p, _, _ in peers]:
                R[who] = {"train": [], "eval": [], "sample": [], "rss_train": 0, "rss_eval": 0, "rss_sample": 0}
                for mode in ("train", "eval", "sample"):
                    R[who]["round_" + mode] = []  # the median of each round
                    R[who]["cpu_" + mode] = []    # images per CPU second, each round
            R["rounds"] = []  # per round: the load average, the conv peak beside ours' training
            for rnd in range(a.rounds):
                log(f"run_bench: {name} round {rnd + 1}/{a.rounds}")
                # Each mode is timed for every side back to back, so that the two
                # numbers of a ratio are taken minutes apart at most, under the same
                # load; ours first in odd rounds, the peers first in even ones.
                order = ["ours"] + [p for p, _, _ in peers]
                if rnd % 2:
                    order.reverse()
                info = {"load": os.getloadavg()[0]}
                for mode in ("train", "eval", "sample"):
                    for who in order:
                        if who == "ours":
                            if mode == "train":
                                if device == "cpu":
                                    pk = conv_peak()[0]
                                    info["peak"], info["cpu_peak"] = pk["peak"], pk["cpu_peak"]
                                    info["conv_train_s"], info["conv_fwd_s"] = conv_alone(name)
                                rates, rss, ckpt, per_cpu = ours.train(name, spec, cfgpath, data)
                                srates, srss, _, scpu = ours.train(name + "-store", spec, cfg_store, data)
                                if device == "cpu":
                                    # the store run comes a few minutes after the peak above (the
                                    # recompute run and conv_ops between): its own peak, just after it
                                    pk = conv_peak()[0]
                                    info["peak_store"], info["cpu_peak_store"] = pk["peak"], pk["cpu_peak"]
                                R[STORE]["train"] += srates
                                R[STORE]["round_train"].append(med(srates))
                                R[STORE]["cpu_train"].append(scpu)
                                R[STORE]["rss_train"] = max(R[STORE]["rss_train"], srss)
                            else:
                                rates, rss, per_cpu = (ours.eval(spec, ckpt, data) if mode == "eval"
                                                       else ours.sample(spec, ckpt))
                        else:
                            _, peer, comp = next(p for p in peers if p[0] == who)
                            rates, rss, d = torch_run(mode, model, spec, device, peer, comp)
                            per_cpu = spec["batch"] / max(d["cpu_s"], 1e-9)
                        R[who][mode] += rates
                        R[who]["round_" + mode].append(med(rates))
                        R[who]["cpu_" + mode].append(per_cpu)
                        R[who]["rss_" + mode] = max(R[who]["rss_" + mode], rss)
                if "peak" in info:
                    info["train_frac"] = R["ours"]["round_train"][-1] * 3 * fl * 1e-9 / info["peak"]
                    # per CPU second: both sides as if the threads had the cores to themselves
                    info["train_frac_cpu"] = R["ours"]["cpu_train"][-1] * THREADS * 3 * fl * 1e-9 / info["cpu_peak"]
                    info["train_frac_store"] = R[STORE]["round_train"][-1] * 3 * fl * 1e-9 / info["peak_store"]
                    info["train_frac_store_cpu"] = (R[STORE]["cpu_train"][-1] * THREADS * 3 * fl * 1e-9 /
                                                    info["cpu_peak_store"])
                info["load_after"] = os.getloadavg()[0]
                R["rounds"].append(info)
            rows[name] = (model, spec, R)
            if spec.get("latent"):
                lat_rows[name] = (spec, latent_rows(ours, name, spec, ckpt, data, a.rounds))
            if do_profile:
                profiles[name] = profile_train(ours, name, spec, cfgpath, data)
            log(f"run_bench: {name}: " + json.dumps({w: {k: (round(med(v), 1) if isinstance(v, list) else round(v))
                                                          for k, v in d.items()} for w, d in R.items()
                                                      if w != "rounds"}) + " rounds " + json.dumps(R["rounds"]))

        mem_lines, mem_raw = [], None
        if device == "cpu" and a.memory_configs:
            mem_lines, mem_raw = memory_table(a.build, tmp, device, a.memory_configs.split(","), 1)

        qual = None
        if not a.skip_quality:
            log(f"run_bench: quality: configs/fashion-mnist.yml for {a.quality_seconds:.0f} s")
            qual = quality(ours, a.build, tmp, a.quality_seconds)

    # ---- the table
    now = datetime.datetime.now(datetime.timezone.utc)
    L = [f"# make bench, {now:%Y-%m-%d %H:%M} UTC", "",
         f"Machine: {machine()}; vector extensions {cpu_isa_flags()}; oneDNN kernels: {isa}. Device: {device}; "
         f"CPU runs with {THREADS} threads (OMP_NUM_THREADS={THREADS}, torch.set_num_threads({THREADS}), "
         f"{wait_policy_line(ours.waits if ours else {})}). PyTorch {torch.__version__} "
         "(Debian's: the same oneDNN and libgomp as ours).",
         f"Load average before: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; after: "
         + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f". Rounds: {a.rounds} (alternating).", ""]
    if peak:
        L.append(f"Measured conv peak (bench/conv_peak: oneDNN fp32, width 512 at 16x16, the better of one "
                 f"call and one call per thread): 3x3 {peak['3x3']:.0f}, "
                 f"1x1 {peak['1x1']:.0f} GFLOP/s; peak = {peak['peak']:.0f} at the start; beside ours' training "
                 "in each round (before its recompute run / after its store run): " + "; ".join(
                     f"{n} " + ", ".join(f"{i['peak']:.0f}/{i.get('peak_store', i['peak']):.0f}" for i in R["rounds"])
                     for n, (_, _, R) in rows.items()) + " GFLOP/s. Per CPU second "
                 f"times {THREADS} threads: {peak['cpu_peak']:.0f} at the start; in each round: " + "; ".join(
                     f"{n} " + ", ".join(f"{i['cpu_peak']:.0f}/{i.get('cpu_peak_store', i['cpu_peak']):.0f}"
                                         for i in R["rounds"])
                     for n, (_, _, R) in rows.items()) + " GFLOP/s.")
        L.append("")
    L.append("Peers: " + "; ".join(f"**{p}**: {PEER_NOTES[p]}" for p, _, _ in peers)
             + f". torch.compile on the {device}: {compile_note or 'timed as the peer torch.compile'}.")
    L.append("")
    pn = [p for p, _, _ in peers]
    L.append("Images/s, the median of all timed steps or batches of all rounds:")
    L.append("")
    hdr = ["config", "batch"]
    for mode in ("train", "eval", "sample"):
        hdr += [f"{mode} ours"] + [f"{mode} {p}" for p in pn]
        if mode == "train":
            hdr.insert(len(hdr) - len(pn), "train ours (store)")
    hdr += ["RSS train ours", "RSS train ours (store)"] + [f"RSS train {p}" for p in pn] + \
        ["GFLOP/s train", "GFLOP/s eval"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    for name, (model, spec, R) in rows.items():
        o = R["ours"]
        fl = conv_flops(model)
        cells = [name, str(spec["batch"])]
        for mode in ("train", "eval", "sample"):
            cells += [f"{med(o[mode]):.1f}"] + ([f"{med(R[STORE]['train']):.1f}"] if mode == "train" else []) + \
                [f"{med(R[p][mode]):.1f}" for p in pn]
        cells += [f"{o['rss_train']:.0f}", f"{R[STORE]['rss_train']:.0f}"] + [f"{R[p]['rss_train']:.0f}" for p in pn]
        cells += [f"{med(o['train']) * 3 * fl * 1e-9:.0f}", f"{med(o['eval']) * fl * 1e-9:.0f}"]
        L.append("| " + " | ".join(cells) + " |")
    L.append("")
    L += ["Ratios, ours against the faster peer: in each round the two sides ran one mode back to back, "
          "and a ratio is the median over the rounds of that round's ratio (lowest-highest in brackets), "
          "so that load which comes and goes between rounds cancels. \"per CPU s\": the same with images per "
          "CPU second (user + system time of the timed part), which depends much less on how much of the "
          "machine other processes hold (caches and memory bandwidth are still shared); it counts the time "
          "threads spin waiting for one another (bench/README.md, \"Load\"; the peer's by time.process_time() "
          "around each repetition, which Linux brings up to date for a spinning thread only at its scheduler "
          "ticks) and does not see idle threads. "
          "\"(store)\": ours' training under train.memory=store, which keeps every activation for the "
          "backward pass as the peers' autograd does, instead of glow-train's default recompute, which "
          "runs each coupling network a second time in the backward pass to keep less. "
          "RSS: ours over the smaller peer's, training. % of peak: ours' training (each plan) and evaluation GFLOP/s "
          "over the conv peak measured beside the run in the same round (just before the recompute run, which "
          "evaluation follows; just after the store run), median over rounds; "
          "\"per CPU s\": training's GFLOP per CPU second over conv_peak's, both times the thread count.", ""]
    hdr = ["config", "train", "train (store)", "eval", "sample", "train per CPU s", "train (store) per CPU s",
           "eval per CPU s", "sample per CPU s", "RSS", "RSS (store)", "% of peak (train)", "% of peak (train, store)",
           "% of peak (eval)", "% of peak (train, per CPU s)", "% of peak (train, store, per CPU s)",
           "load (1 min) per round"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "---|" * len(hdr))
    targets, plans = {}, {}
    for name, (model, spec, R) in rows.items():
        o = R["ours"]
        fl = conv_flops(model)
        ratios = {}
        for key in ("round_", "cpu_"):
            for mode in ("train", "eval", "sample"):
                rr = [o[key + mode][i] / max(R[p][key + mode][i] for p in pn) for i in range(len(o[key + mode]))]
                ratios[key + mode] = rr
            st = R[STORE][key + "train"]
            ratios[key + "store"] = [st[i] / max(R[p][key + "train"][i] for p in pn) for i in range(len(st))]
        rng = lambda rr: f"{med(rr):.2f}x ({min(rr):.2f}-{max(rr):.2f})"
        least = min(R[p]["rss_train"] for p in pn)
        fr = [i["train_frac"] for i in R["rounds"] if "train_frac" in i]
        fe = [o["round_eval"][k] * fl * 1e-9 / i["peak"] for k, i in enumerate(R["rounds"]) if "peak" in i]
        fc = [i["train_frac_cpu"] for i in R["rounds"] if "train_frac_cpu" in i]
        frs = [i["train_frac_store"] for i in R["rounds"] if "train_frac_store" in i]
        fcs = [i["train_frac_store_cpu"] for i in R["rounds"] if "train_frac_store_cpu" in i]
        pct = lambda v: f"{100 * med(v):.0f}%" if v else "-"
        cells = [name] + [rng(ratios["round_" + m]) for m in ("train", "store", "eval", "sample")] + \
            [rng(ratios["cpu_" + m]) for m in ("train", "store", "eval", "sample")] + \
            [f"{o['rss_train'] / least:.2f}", f"{R[STORE]['rss_train'] / least:.2f}",
             pct(fr), pct(frs), pct(fe), pct(fc), pct(fcs),
             " ".join(f"{i['load']:.1f}-{i['load_after']:.1f}" for i in R["rounds"])]
        L.append("| " + " | ".join(cells) + " |")
        # the targets of issue 17 (bench/README.md); training by the faster of
        # ours' two plans, named
        tk = "store" if med(ratios["round_store"]) > med(ratios["round_train"]) else "train"
        t = speed_targets(name, ratios, tk, (fr, fc), (frs, fcs))
        t.append(("peak RSS <= 1/2 of the peer's", o["rss_train"] / least <= 0.5 and all(
            o["rss_" + m] / min(R[p]["rss_" + m] for p in pn) <= 0.5 for m in ("eval", "sample")),
            ", ".join(f"{m} {o['rss_' + m] / min(R[p]['rss_' + m] for p in pn):.2f}"
                      for m in ("train", "eval", "sample")) + f" (train with store {R[STORE]['rss_train'] / least:.2f})"))
        targets[name] = t
        plans[name] = tk
    L.append("")
    L.append("Targets (issue 17): " + "; ".join(
        f"{name}: " + ", ".join(f"{what} {'met' if ok else 'NOT met'} ({val})" for what, ok, val in t)
        for name, t in targets.items()) + ".")
    L.append("")
    if peak:
        L += needs_table(rows, pn, plans) + [""]
    L.append("RSS of evaluation and sampling, MiB (ours / the smaller peer's): " + "; ".join(
        f"{name} eval {R['ours']['rss_eval']:.0f} / {min(R[p]['rss_eval'] for p in pn):.0f}, sample "
        f"{R['ours']['rss_sample']:.0f} / {min(R[p]['rss_sample'] for p in pn):.0f}" for name, (_, _, R) in rows.items())
        + ".")
    L.append("")
    L.append("Configs: A = 1x32x32, L=3, K=8, affine, invconv, edge bias, learned top (width 128 / 512, batch 32); "
             "B = 3x32x32, L=3, K=32, width 512, batch 16. Adam. Train = forward + backward + optimizer step. "
             "GFLOP/s: convolution FLOPs (bench/model_bench.c's count; x3 for training) times images/s.")
    if profiles:
        L += ["", "Profile of glow-train's training (perf record -e cpu-clock, oneDNN's JIT kernels named through "
                  "DNNL_JIT_PROFILE=2; the whole run, start-up and the data-dependent init included): the top 10 "
                  "symbols, and the share of each library:", ""]
        for name, pr in profiles.items():
            L.append(f"- {name} ({pr['steps']} steps): " + ", ".join(f"{k} {v:.1f}%" for k, v in pr["symbols"]))
            L.append("  libraries: " + ", ".join(f"{k} {v:.1f}%" for k, v in pr["dsos"]))
    elif device == "cpu":
        L += ["", "Profile: perf is not usable here (BENCH_SKIP_PROFILE=1, or `perf record` fails)."]
    if lat_rows:
        L += [""] + latent_table(lat_rows)
    if mem_lines:
        L += [""] + mem_lines
    if qual:
        L += ["", f"Quality: configs/fashion-mnist.yml, glow-train --time-limit {qual['seconds']:.0f}: "
                  f"{qual['steps']} steps; test bpd (10,000 images, 32x32 padded, glow-bpd) "
                  f"{qual['bpd_ema']:.3f} with EMA weights, {qual['bpd_raw']:.3f} without "
                  f"(a PyTorch Glow of L=3, K=8, width 128, 8 minutes on the development machine: 4.83). Target (issue 17) test bpd <= 2.6 with "
                  f"EMA: {'met' if isinstance(qual['bpd_ema'], float) and qual['bpd_ema'] <= 2.6 else 'NOT met'}."]
    L.append("")
    L.append(f"Total bench time: {time.time() - t_start:.0f} s.")
    text = "\n".join(L) + "\n"
    print(text)
    os.makedirs(a.results, exist_ok=True)
    stem = os.path.join(a.results, f"bench-{device}-{now:%Y%m%d-%H%M}")
    with open(stem + ".md", "w") as f:
        f.write(text)
    raw = {n: {"model": m, "spec": s, "results": R} for n, (m, s, R) in rows.items()}
    for n, (_, r) in lat_rows.items():
        raw[n]["latent"] = r
    with open(stem + ".json", "w") as f:
        json.dump({"peak": peak, "isa": isa, "rows": raw, "quality": qual, "device": device, "profiles": profiles,
                   "torch_compile": compile_note or "works", "load_before": load0, "load_after": os.getloadavg(),
                   "memory": mem_raw}, f, indent=1)
    log(f"run_bench: wrote {stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
