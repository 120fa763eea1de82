#!/usr/bin/python3
"""A PyTorch Glow of exactly the model in docs/model.md: the peer that
`make bench` times our tools against.

The model is functional (a dict of tensors named as in our checkpoints), so it
loads our safetensors checkpoints and the reference cases without translation.

  torch_glow.py --check REF_DIR          every reference case under REF_DIR must pass
  torch_glow.py bench --mode train|eval|sample --model JSON [--batch N] ...
                                         prints one JSON object with the timings
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

LOG2PI = math.log(2 * math.pi)
DEFAULTS = {"channels": 3, "levels": 3, "steps": 32, "width": 512, "coupling": "affine",
            "permutation": "invconv", "lu": False, "edge_bias": True, "learn_top": True,
            "y_condition": False, "n_classes": 0, "weight_y": 0.01, "n_bits": 8}

# ---------------------------------------------------------------- safetensors

_DT = {"F32": (np.float32, 4), "F64": (np.float64, 8), "I32": (np.int32, 4), "U8": (np.uint8, 1),
       "I64": (np.int64, 8)}


def load_safetensors(path):
    """(tensors, metadata) of a safetensors file, without the safetensors package."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, t in header.items():
        dt, _ = _DT[t["dtype"]]
        a, b = t["data_offsets"]
        arr = np.frombuffer(data, dtype=dt, count=(b - a) // np.dtype(dt).itemsize, offset=base + a)
        out[name] = torch.from_numpy(arr.reshape(t["shape"]).copy())
    return out, meta


def model_config(d):
    c = dict(DEFAULTS)
    c.update(d)
    if isinstance(c["image_size"], int):
        c["image_size"] = [c["image_size"], c["image_size"]]
    return c

# ---------------------------------------------------------------- the model


def level_shapes(c):
    H, W = c["image_size"]
    return [(4 * c["channels"] * 2 ** l, H >> (l + 1), W >> (l + 1)) for l in range(c["levels"])]


def squeeze(x):
    n, ch, h, w = x.shape
    return x.view(n, ch, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, ch * 4, h // 2, w // 2)


def unsqueeze(x):
    n, ch, h, w = x.shape
    return x.view(n, ch // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, ch // 4, h * 2, w * 2)


class Glow:
    def __init__(self, cfg, params, device="cpu", dtype=torch.float32):
        self.c = cfg
        self.device, self.dtype = device, dtype
        self.p = {}
        for k, v in params.items():
            if k.startswith(("optim.", "ema.")):
                continue
            v = v.to(device)
            self.p[k] = v if not v.is_floating_point() else v.to(dtype)
        self.ddi = False
        self._edges = {}

    # -- parameters
    def trained_names(self):
        skip = (".invconv.p", ".invconv.sign_s", ".shuffle.perm")
        return [k for k in sorted(self.p) if not k.endswith(skip)]

    def trainable(self):
        names = self.trained_names()
        for k in names:
            self.p[k].requires_grad_(True)
        return [self.p[k] for k in names]

    # -- layers
    def edge(self, n, h, w):
        key = (h, w)
        if key not in self._edges:
            e = torch.zeros(1, 1, h, w, device=self.device, dtype=self.dtype)
            self._edges[key] = F.pad(e, (1, 1, 1, 1), value=1.0)
        return self._edges[key].expand(n, 1, h + 2, w + 2)

    def conv3(self, x, w):
        if self.c["edge_bias"]:
            n, _, h, ww = x.shape
            return F.conv2d(torch.cat([F.pad(x, (1, 1, 1, 1)), self.edge(n, h, ww)], 1), w)
        return F.conv2d(x, w, padding=1)

    def actnorm(self, x, name):
        b, s = self.p[name + ".bias"], self.p[name + ".logs"]
        if self.ddi:
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3))
                var = ((x - mean.view(1, -1, 1, 1)) ** 2).mean(dim=(0, 2, 3))
                b.copy_(-mean)
                s.copy_(torch.log(1.0 / (torch.sqrt(var) + 1e-6)) / 3)
        return (x + b.view(1, -1, 1, 1)) * torch.exp(3 * s).view(1, -1, 1, 1)

    def zeros(self, x, name):
        return (self.conv3(x, self.p[name + ".weight"]) + self.p[name + ".bias"].view(1, -1, 1, 1)) * \
            torch.exp(3 * self.p[name + ".logs"]).view(1, -1, 1, 1)

    def f(self, x, name):
        h = F.relu(self.actnorm(self.conv3(x, self.p[name + ".conv1.weight"]), name + ".actnorm1"))
        h = F.relu(self.actnorm(F.conv2d(h, self.p[name + ".conv2.weight"]), name + ".actnorm2"))
        return self.zeros(h, name + ".conv3")

    def invconv_w(self, name):
        if self.c["lu"]:
            p = self.p
            Cn = p[name + ".p"].shape[0]
            eye = torch.eye(Cn, device=self.device, dtype=self.dtype)
            lower = p[name + ".lower"] * torch.tril(torch.ones_like(eye), -1) + eye
            upper = p[name + ".upper"] * torch.triu(torch.ones_like(eye), 1) + \
                torch.diag(p[name + ".sign_s"] * torch.exp(p[name + ".log_s"]))
            return p[name + ".p"] @ lower @ upper, p[name + ".log_s"].sum()
        w = self.p[name + ".weight"]
        return w, torch.linalg.slogdet(w.double())[1].to(self.dtype)

    def step(self, z, l, k, logdet, reverse=False):
        name = f"flow.{l}.{k}"
        _, ch, h, w = z.shape
        perm = self.c["permutation"]
        if not reverse:
            z = self.actnorm(z, name + ".actnorm")
            logdet = logdet + h * w * 3 * self.p[name + ".actnorm.logs"].sum()
            if perm == "invconv":
                W, ld = self.invconv_w(name + ".invconv")
                z = F.conv2d(z, W.view(ch, ch, 1, 1))
                logdet = logdet + h * w * ld
            elif perm == "shuffle":
                z = z[:, self.p[name + ".shuffle.perm"].long()]
            else:
                z = z.flip(1)
        z1, z2 = z[:, :ch // 2], z[:, ch // 2:]
        hh = self.f(z1, name + ".coupling")
        if self.c["coupling"] == "additive":
            z2 = z2 - hh if reverse else z2 + hh
        else:
            shift, pre = hh[:, 0::2], hh[:, 1::2] + 2.0
            if reverse:
                z2 = z2 / torch.sigmoid(pre) - shift
            else:
                z2 = (z2 + shift) * torch.sigmoid(pre)
                logdet = logdet + F.logsigmoid(pre).flatten(1).sum(1)
        z = torch.cat([z1, z2], 1)
        if reverse:
            if perm == "invconv":
                W, _ = self.invconv_w(name + ".invconv")
                z = F.conv2d(z, torch.inverse(W.double()).to(self.dtype).view(ch, ch, 1, 1))
            elif perm == "shuffle":
                z = z[:, torch.argsort(self.p[name + ".shuffle.perm"].long())]
            else:
                z = z.flip(1)
            b, s = self.p[name + ".actnorm.bias"], self.p[name + ".actnorm.logs"]
            z = z * torch.exp(-3 * s).view(1, -1, 1, 1) - b.view(1, -1, 1, 1)
        return z, logdet

    def top(self, n, y):
        ct, ht, wt = level_shapes(self.c)[-1]
        h = torch.zeros(n, 2 * ct, ht, wt, device=self.device, dtype=self.dtype)
        if self.c["learn_top"]:
            h = self.zeros(h, "prior.conv")
        if self.c["y_condition"] and y is not None:
            oh = F.one_hot(y.long(), self.c["n_classes"]).to(self.dtype)
            e = (oh @ self.p["prior.y_emb.weight"].t() + self.p["prior.y_emb.bias"]) * \
                torch.exp(3 * self.p["prior.y_emb.logs"])
            h = h + e.view(n, -1, 1, 1)
        return h[:, :ct], h[:, ct:]

    @staticmethod
    def logn(z, mean, logs):
        return (-0.5 * (LOG2PI + 2 * logs + (z - mean) ** 2 * torch.exp(-2 * logs))).flatten(1).sum(1)

    def dequant(self, img, noise):
        nb = 2 ** self.c["n_bits"]
        x = torch.floor(img.to(self.dtype) / 2 ** (8 - self.c["n_bits"])) / nb - 0.5
        return x + noise.to(self.dtype)

    def forward(self, x, y=None):
        """(bpd, loss, logdet, logp, zs) of dequantised images x [N, C0, H, W]."""
        c = self.c
        n = x.shape[0]
        D = x[0].numel()
        z = squeeze(x)
        logdet = torch.zeros(n, device=self.device, dtype=self.dtype)
        logp = torch.zeros(n, device=self.device, dtype=self.dtype)
        zs = []
        for l in range(c["levels"]):
            for k in range(c["steps"]):
                z, logdet = self.step(z, l, k, logdet)
            if l < c["levels"] - 1:
                ch = z.shape[1]
                z1, z2 = z[:, :ch // 2], z[:, ch // 2:]
                h = self.zeros(z1, f"split.{l}.conv")
                logp = logp + self.logn(z2, h[:, 0::2], h[:, 1::2])
                zs.append(z2)
                z = squeeze(z1)
        mean, logs = self.top(n, y)
        logp = logp + self.logn(z, mean, logs)
        zs.append(z)
        obj = -D * math.log(2 ** c["n_bits"]) + logdet + logp
        bpd = -obj / (D * math.log(2))
        loss = bpd
        if c["y_condition"] and c["weight_y"] > 0 and y is not None:
            logits = (z.mean(dim=(2, 3)) @ self.p["classifier.weight"].t() + self.p["classifier.bias"]) * \
                torch.exp(3 * self.p["classifier.logs"])
            loss = bpd + c["weight_y"] * F.cross_entropy(logits, y.long(), reduction="none") / math.log(2)
        return bpd, loss.mean(), logdet, logp, zs

    def inverse(self, zs, y=None):
        """Dequantised images from the latents: the z2 of each split, then the top z."""
        c = self.c
        z = zs[-1]
        for l in range(c["levels"] - 1, -1, -1):
            if l < c["levels"] - 1:
                z1 = unsqueeze(z)
                z = torch.cat([z1, zs[l]], 1)
            for k in range(c["steps"] - 1, -1, -1):
                z, _ = self.step(z, l, k, None, reverse=True)
        return unsqueeze(z)

    def sample(self, n, temp, y=None, gen=None):
        c = self.c
        randn = lambda t: torch.randn(t.shape, generator=gen, device=self.device, dtype=self.dtype)
        mean, logs = self.top(n, y)
        z = mean + torch.exp(logs) * randn(mean) * temp
        for l in range(c["levels"] - 1, -1, -1):
            if l < c["levels"] - 1:
                z1 = unsqueeze(z)
                h = self.zeros(z1, f"split.{l}.conv")
                mean, logs = h[:, 0::2], h[:, 1::2]
                z = torch.cat([z1, mean + torch.exp(logs) * randn(mean) * temp], 1)
            for k in range(c["steps"] - 1, -1, -1):
                z, _ = self.step(z, l, k, None, reverse=True)
        x = unsqueeze(z)
        nb = 2 ** c["n_bits"]
        return torch.clamp(torch.floor((x + 0.5) * nb) * (256 // nb), 0, 255).to(torch.uint8)


def init_params(cfg, seed=1):
    """Fresh parameters as in docs/model.md section 5 (actnorms zero, set by ddi later)."""
    g = torch.Generator().manual_seed(seed)
    c = cfg
    E = 1 if c["edge_bias"] else 0
    Wd = c["width"]
    p = {}
    shapes = level_shapes(c)
    for l, (ch, _, _) in enumerate(shapes):
        for k in range(c["steps"]):
            n = f"flow.{l}.{k}"
            p[n + ".actnorm.bias"] = torch.zeros(ch)
            p[n + ".actnorm.logs"] = torch.zeros(ch)
            if c["permutation"] == "invconv":
                q, _ = torch.linalg.qr(torch.randn(ch, ch, generator=g, dtype=torch.float64))
                if c["lu"]:
                    P, L, U = torch.linalg.lu(q)
                    s = torch.diagonal(U)
                    p[n + ".invconv.p"] = P.float()
                    p[n + ".invconv.lower"] = L.float()
                    p[n + ".invconv.upper"] = torch.triu(U, 1).float()
                    p[n + ".invconv.log_s"] = torch.log(s.abs()).float()
                    p[n + ".invconv.sign_s"] = torch.sign(s).float()
                else:
                    p[n + ".invconv.weight"] = q.float()
            elif c["permutation"] == "shuffle":
                p[n + ".shuffle.perm"] = torch.randperm(ch, generator=g).int()
            cout = ch if c["coupling"] == "affine" else ch // 2
            p[n + ".coupling.conv1.weight"] = torch.randn(Wd, ch // 2 + E, 3, 3, generator=g) * 0.05
            p[n + ".coupling.conv2.weight"] = torch.randn(Wd, Wd, 1, 1, generator=g) * 0.05
            for a in ("actnorm1", "actnorm2"):
                p[f"{n}.coupling.{a}.bias"] = torch.zeros(Wd)
                p[f"{n}.coupling.{a}.logs"] = torch.zeros(Wd)
            p[n + ".coupling.conv3.weight"] = torch.zeros(cout, Wd + E, 3, 3)
            p[n + ".coupling.conv3.bias"] = torch.zeros(cout)
            p[n + ".coupling.conv3.logs"] = torch.zeros(cout)
        if l < c["levels"] - 1:
            p[f"split.{l}.conv.weight"] = torch.zeros(ch, ch // 2 + E, 3, 3)
            p[f"split.{l}.conv.bias"] = torch.zeros(ch)
            p[f"split.{l}.conv.logs"] = torch.zeros(ch)
    ct = shapes[-1][0]
    if c["learn_top"]:
        p["prior.conv.weight"] = torch.zeros(2 * ct, 2 * ct + E, 3, 3)
        p["prior.conv.bias"] = torch.zeros(2 * ct)
        p["prior.conv.logs"] = torch.zeros(2 * ct)
    if c["y_condition"]:
        p["prior.y_emb.weight"] = torch.zeros(2 * ct, c["n_classes"])
        p["prior.y_emb.bias"] = torch.zeros(2 * ct)
        p["prior.y_emb.logs"] = torch.zeros(2 * ct)
        if c["weight_y"] > 0:
            p["classifier.weight"] = torch.zeros(c["n_classes"], ct)
            p["classifier.bias"] = torch.zeros(c["n_classes"])
            p["classifier.logs"] = torch.zeros(c["n_classes"])
    return p


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
