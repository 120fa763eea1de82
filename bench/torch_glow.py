#!/usr/bin/python3
"""The PyTorch Glow of python/glow_torch.py (exactly the model in docs/model.md)
as the peer that `make bench` times our tools against, and its check against the
reference cases.

  torch_glow.py --check REF_DIR          every reference case under REF_DIR must pass
  torch_glow.py bench --mode train|eval|sample --model JSON [--batch N] ...
                                         prints one JSON object with the timings
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from glow_torch import Glow, init_params, load_safetensors, model_config  # noqa: E402


def make_optimizer(name, params, lr):
    return (torch.optim.Adamax if name == "adamax" else torch.optim.Adam)(params, lr=lr)

# ---------------------------------------------------------------- the check


def rel_err(got, exp):
    got, exp = got.detach().double(), exp.double()
    m = exp.abs().max().item()
    d = (got - exp).abs().max().item()
    return d / m if m > 0 else d


def check_case(path):
    params, _ = load_safetensors(os.path.join(path, "model.safetensors"))
    case, meta = load_safetensors(os.path.join(path, "case.safetensors"))
    cfg = model_config(json.loads(meta["model"]))
    fails, worst = [], {}

    def cmp(what, got, exp, tol):
        e = rel_err(got, exp)
        worst[what] = max(worst.get(what, 0.0), e)
        if not e <= tol:
            fails.append(f"{what}: error {e:.3g} > {tol:g}")

    m = Glow(cfg, params, dtype=torch.float64)
    ps = m.trainable()
    y = case.get("input.label")
    x = m.dequant(case["input.image"], case["input.noise"])
    cmp("x", x, case["expect.x"], 1e-4)
    bpd, loss, logdet, logp, zs = m.forward(x, y)
    cmp("bpd", bpd, case["expect.bpd"], 1e-4)
    cmp("logdet", logdet, case["expect.logdet"], 1e-4)
    cmp("logp", logp, case["expect.logp"], 1e-4)
    cmp("loss", loss, case["expect.loss"], 1e-4)
    for l in range(cfg["levels"] - 1):
        cmp("z", zs[l], case[f"expect.z.{l}"], 1e-4)
    cmp("z", zs[-1], case["expect.z.top"], 1e-4)
    loss.backward()
    ngrad = 0
    for name, p in zip(m.trained_names(), ps):
        key = "expect.grad." + name
        if key in case:
            cmp("grad", p.grad, case[key], 1e-3)
            ngrad += 1
    if ngrad == 0:
        fails.append("no gradients compared")
    with torch.no_grad():
        zin = [case[f"expect.z.{l}"].double() for l in range(cfg["levels"] - 1)] + [case["expect.z.top"].double()]
        cmp("inverse", m.inverse(zin, y), case["expect.x"], 1e-4)
    # data-dependent init from reset actnorms
    m2 = Glow(cfg, params, dtype=torch.float64)
    for k in m2.p:
        if ".actnorm" in k:
            m2.p[k].zero_()
    m2.ddi = True
    with torch.no_grad():
        m2.forward(m2.dequant(case["ddi.image"], case["ddi.noise"]), case.get("ddi.label"))
    for k, v in case.items():
        if k.startswith("ddi.expect."):
            cmp("ddi", m2.p[k[len("ddi.expect."):]], v, 1e-3)
    # S optimizer steps in float32, as our float32 models take them
    m3 = Glow(cfg, params, dtype=torch.float32)
    ps3 = m3.trainable()
    opt = make_optimizer(meta["train.optimizer"], ps3, float(meta["train.lr"]))
    x3 = m3.dequant(case["input.image"], case["input.noise"])
    losses = []
    for _ in range(int(meta["train.steps"])):
        opt.zero_grad()
        _, l3, _, _, _ = m3.forward(x3, y)
        losses.append(l3.item())
        l3.backward()
        opt.step()
    cmp("train", torch.tensor(losses), case["train.expect.loss"], 1e-5)
    return fails, worst, ngrad


def run_check(ref):
    dirs = [ref] if os.path.isfile(os.path.join(ref, "case.safetensors")) else \
        sorted(os.path.join(ref, d) for d in os.listdir(ref)
               if os.path.isfile(os.path.join(ref, d, "case.safetensors")))
    if not dirs:
        print(f"torch_glow.py: {ref}: no reference cases", file=sys.stderr)
        return 1
    bad = 0
    for d in dirs:
        fails, worst, ngrad = check_case(d)
        summary = " ".join(f"{k} {v:.1e}" for k, v in worst.items())
        print(f"{'FAIL' if fails else 'ok  '} {os.path.basename(d)}: {summary} ({ngrad} gradients)")
        for f in fails:
            print("     " + f)
        bad += bool(fails)
    print(f"torch_glow check: {len(dirs) - bad} passed, {bad} failed")
    return 1 if bad else 0

# ---------------------------------------------------------------- timing


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_mem(device):
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_images(n, c, h, w, seed):
    """uint8 images with smooth structure plus noise: uniform noise images make
    the freshly initialised model's gradients explode within a few steps (and
    steps with non-finite gradients are skipped), so timings would not be of the
    normal step. Speed does not otherwise depend on the pixels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    f = rng.uniform(0.05, 0.4, size=(n, c, 2, 1, 1))
    ph = rng.uniform(0, 2 * np.pi, size=(n, c, 1, 1))
    v = 128 + 80 * np.sin(f[:, :, 0] * yy + f[:, :, 1] * xx + ph) + rng.normal(0, 12, size=(n, c, h, w))
    return np.clip(v, 0, 255).astype(np.uint8)


def run_bench(a):
    torch.manual_seed(0)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = a.device
    cfg = model_config(json.loads(a.model))
    m = Glow(cfg, init_params(cfg, 1), device=dev)
    C0 = cfg["channels"]
    H, W = cfg["image_size"]
    g = torch.Generator().manual_seed(3)
    img = torch.from_numpy(synthetic_images(a.batch, C0, H, W, 5)).to(dev)
    y = torch.randint(0, max(cfg["n_classes"], 1), (a.batch,), generator=g).to(dev) \
        if cfg["y_condition"] else None
    nb = 2 ** cfg["n_bits"]
    noise = lambda: torch.rand(img.shape, device=dev) / nb
    m.ddi = True
    with torch.no_grad():
        m.forward(m.dequant(img, noise()), y)
    m.ddi = False
    fwd = m.forward
    if a.compile:
        fwd = torch.compile(m.forward)
    times = []
    if a.mode == "train":
        ps = m.trainable()
        # a small rate, as glow-train in the bench: random init + synthetic data diverge at 1e-3
        opt = make_optimizer(a.optimizer, ps, 1e-5)

        def once():
            # as glow-train: global gradient-norm clipping (train.grad_clip 100 in the bench)
            opt.zero_grad(set_to_none=True)
            _, loss, _, _, _ = fwd(m.dequant(img, noise()), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ps, 100.0)
            opt.step()
            if not math.isfinite(loss.item()):
                raise SystemExit("torch_glow.py: non-finite loss while timing")
    elif a.mode == "eval":
        def once():
            with torch.no_grad():
                fwd(m.dequant(img, noise()), y)
    else:
        def once():
            with torch.no_grad():
                m.sample(a.batch, 0.7, y)
    for i in range(a.warmup + a.reps):
        sync(dev)
        t0 = time.perf_counter()
        once()
        sync(dev)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"mode": a.mode, "batch": a.batch, "median_s": med,
                      "images_per_s": a.batch / med, "times": times, "peak_mib": peak_mem(dev),
                      "threads": torch.get_num_threads(), "device": dev, "compile": a.compile}))
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        ap = argparse.ArgumentParser(prog="torch_glow.py bench")
        ap.add_argument("--mode", choices=["train", "eval", "sample"], required=True)
        ap.add_argument("--model", required=True, help="the model config as JSON")
        ap.add_argument("--batch", type=int, default=32)
        ap.add_argument("--warmup", type=int, default=2)
        ap.add_argument("--reps", type=int, default=5)
        ap.add_argument("--threads", type=int, default=0)
        ap.add_argument("--optimizer", default="adam")
        ap.add_argument("--device", default="cpu")
        ap.add_argument("--compile", action="store_true")
        return run_bench(ap.parse_args(sys.argv[2:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="REF_DIR", required=True)
    return run_check(ap.parse_args().check)


if __name__ == "__main__":
    sys.exit(main())
