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
from glow_torch import LOG2PI, Glow, init_params, load_safetensors, model_config, squeeze, unsqueeze  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---------------------------------------------------------------- the fast peer


class FastGlow(Glow):
    """python/glow_torch.py's Glow (the same model, the same parameters) written
    the way a careful PyTorch user would for speed; its forward pass, inverse and
    sampling replace the reference ones, the data-dependent init stays the
    reference code (it runs once). What changes, and why:

    - the edge channel is not concatenated to every 3x3 input: a convolution over
      [x, edge] is conv(x, W[:, :C], padding=1) plus conv(edge, W[:, C:]) over one
      constant [1, 1, h+2, w+2] image (built once per shape), added by
      broadcasting; the big convolution keeps C input channels (128, not 129);
    - an actnorm after a convolution, and a zeros layer's scale, are folded into
      the convolution's weights and bias (W * s, b * s; the autograd of that small
      product replaces an element-wise pass over the activations and its backward);
      the step's actnorm is folded into the invconv (W diag(s), bias W (b s)), and
      in the inverse the actnorm's inverse into W^-1 (diag(1/s) W^-1, bias -b);
    - the outputs of conv3 (affine) and of the split priors are permuted once, in
      the weights, so that shift/scale and mean/log-scale are the two contiguous
      halves instead of strided every-other-channel views;
    - no float64: log|det W| with slogdet and W^-1 in the model's dtype, W^-1
      computed once per value of W (the inverse passes of sampling reuse it);
    - the learned top prior is a convolution of zeros: only its edge taps and its
      bias contribute, so those are computed (one image, broadcast) and the
      convolution of an all-zero batch is skipped;
    - activations in channels_last (NHWC) memory format;
    - ReLU in place on the convolution's output, Adam with foreach=True."""

    def __init__(self, cfg, params, device="cpu", dtype=torch.float32):
        super().__init__(cfg, params, device=device, dtype=dtype)
        self._edge1 = {}
        self._perm = {}
        self._winv = {}
        # channels_last: oneDNN then convolves the NHWC tensors as they are, where
        # NCHW ones are reordered to its blocked layout and back on every call
        # (most of the backward pass's time in a profile); PEER_CL=0 for NCHW
        self.mf = torch.contiguous_format if os.environ.get("PEER_CL") == "0" else torch.channels_last

    def edge1(self, h, w):
        """the edge channel of one image: [1, 1, h+2, w+2], ones on the padding ring"""
        key = (h, w)
        if key not in self._edge1:
            e = torch.zeros(1, 1, h, w, device=self.device, dtype=self.dtype)
            self._edge1[key] = F.pad(e, (1, 1, 1, 1), value=1.0)
        return self._edge1[key]

    def halves(self, c):
        """channel order [0, 2, 4, ..., 1, 3, 5, ...]: interleaved to halves"""
        if c not in self._perm:
            self._perm[c] = torch.cat([torch.arange(0, c, 2), torch.arange(1, c, 2)]).to(self.device)
        return self._perm[c]

    def conv(self, x, w, bias=None, scale=None):
        """conv3 (the edge channel included) or a 1x1 convolution, with an output
        scale folded in: (conv(x, w) + bias) * scale"""
        if scale is not None:
            w = w * scale.view(-1, 1, 1, 1)
            if bias is not None:
                bias = bias * scale
        if w.shape[-1] == 1:
            return F.conv2d(x, w, bias)
        if self.c["edge_bias"]:
            C = x.shape[1]
            y = F.conv2d(x, w[:, :C], bias, padding=1)
            return y.add_(self.edge_term(w[:, C:], x.shape[2], x.shape[3]))
        return F.conv2d(x, w, bias, padding=1)

    def edge_term(self, we, h, w):
        """conv(edge, we) for the edge taps we [cout, 1, 3, 3]: [1, cout, h, w], a
        [cout, 9] x [9, h*w] product with the taps' 0/1 masks (built once per shape)"""
        key = ("taps", h, w)
        if key not in self._edge1:
            self._edge1[key] = F.unfold(self.edge1(h, w), 3)[0]
        return (we.reshape(we.shape[0], 9) @ self._edge1[key]).view(1, -1, h, w)

    def zeros_fast(self, x, name, perm=None):
        w, b, lg = self.p[name + ".weight"], self.p[name + ".bias"], self.p[name + ".logs"]
        if perm is not None:
            w, b, lg = w[perm], b[perm], lg[perm]
        return self.conv(x, w, b, torch.exp(3 * lg))

    def f_fast(self, x, name):
        p = self.p
        h = self.conv(x, p[name + ".conv1.weight"], p[name + ".actnorm1.bias"],
                      torch.exp(3 * p[name + ".actnorm1.logs"])).relu_()
        h = self.conv(h, p[name + ".conv2.weight"], p[name + ".actnorm2.bias"],
                      torch.exp(3 * p[name + ".actnorm2.logs"])).relu_()
        cout = p[name + ".conv3.weight"].shape[0]
        return self.zeros_fast(h, name + ".conv3", self.halves(cout) if self.c["coupling"] == "affine" else None)

    def invconv_w(self, name):
        if self.c["lu"]:
            return super().invconv_w(name)
        w = self.p[name + ".weight"]
        return w, torch.linalg.slogdet(w)[1]

    def invconv_winv(self, name):
        W, _ = self.invconv_w(name)
        key = (W.data_ptr(), W._version) if not W.requires_grad or W.is_leaf else None
        hit = self._winv.get(name)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
        Wi = torch.linalg.inv(W)
        if key is not None:
            self._winv[name] = (key, Wi)
        return Wi

    def step_fast(self, z, l, k, logdet):
        name = f"flow.{l}.{k}"
        _, ch, h, w = z.shape
        perm = self.c["permutation"]
        b, lg = self.p[name + ".actnorm.bias"], self.p[name + ".actnorm.logs"]
        s = torch.exp(3 * lg)
        if perm == "invconv":
            W, ld = self.invconv_w(name + ".invconv")
            z = F.conv2d(z, (W * s.view(1, -1)).view(ch, ch, 1, 1), W @ (b * s))
            logdet = logdet + h * w * (3 * lg.sum() + ld)
        else:
            z = (z + b.view(1, -1, 1, 1)) * s.view(1, -1, 1, 1)
            logdet = logdet + h * w * 3 * lg.sum()
            z = z[:, self.p[name + ".shuffle.perm"].long()] if perm == "shuffle" else z.flip(1)
        c2 = ch // 2
        z1, z2 = z[:, :c2], z[:, c2:]
        hh = self.f_fast(z1, name + ".coupling")
        if self.c["coupling"] == "additive":
            z2 = z2 + hh
        else:
            pre = hh[:, c2:] + 2.0
            z2 = (z2 + hh[:, :c2]) * torch.sigmoid(pre)
            logdet = logdet + F.logsigmoid(pre).flatten(1).sum(1)
        return torch.cat([z1, z2], 1), logdet

    def step_inv_fast(self, z, l, k):
        name = f"flow.{l}.{k}"
        ch = z.shape[1]
        c2 = ch // 2
        z1, z2 = z[:, :c2], z[:, c2:]
        hh = self.f_fast(z1, name + ".coupling")
        if self.c["coupling"] == "additive":
            z2 = z2 - hh
        else:
            z2 = z2 / torch.sigmoid(hh[:, c2:] + 2.0) - hh[:, :c2]
        z = torch.cat([z1, z2], 1)
        b, lg = self.p[name + ".actnorm.bias"], self.p[name + ".actnorm.logs"]
        si = torch.exp(-3 * lg)
        perm = self.c["permutation"]
        if perm == "invconv":
            Wi = self.invconv_winv(name + ".invconv")
            return F.conv2d(z, (si.view(-1, 1) * Wi).view(ch, ch, 1, 1), -b)
        z = z[:, torch.argsort(self.p[name + ".shuffle.perm"].long())] if perm == "shuffle" else z.flip(1)
        return z * si.view(1, -1, 1, 1) - b.view(1, -1, 1, 1)

    def top_fast(self, n, y):
        ct, ht, wt = self.level_shapes()[-1]
        if self.c["learn_top"]:
            w, b, lg = self.p["prior.conv.weight"], self.p["prior.conv.bias"], self.p["prior.conv.logs"]
            e = torch.exp(3 * lg)
            h = (b * e).view(1, -1, 1, 1)
            if self.c["edge_bias"]:
                h = h + self.edge_term((w * e.view(-1, 1, 1, 1))[:, 2 * ct:], ht, wt)
            h = h.expand(1, 2 * ct, ht, wt)
        else:
            h = torch.zeros(1, 2 * ct, ht, wt, device=self.device, dtype=self.dtype)
        if self.c["y_condition"] and y is not None:
            oh = F.one_hot(y.long(), self.c["n_classes"]).to(self.dtype)
            e = (oh @ self.p["prior.y_emb.weight"].t() + self.p["prior.y_emb.bias"]) * \
                torch.exp(3 * self.p["prior.y_emb.logs"])
            h = h + e.view(n, -1, 1, 1)
        return h[:, :ct], h[:, ct:]

    def level_shapes(self):
        from glow_torch import level_shapes
        return level_shapes(self.c)

    @staticmethod
    def logn(z, mean, logs):
        return (-0.5 * (LOG2PI + 2 * logs + (z - mean) ** 2 * torch.exp(-2 * logs))).flatten(1).sum(1)

    def forward(self, x, y=None):
        if self.ddi:
            return super().forward(x, y)
        c = self.c
        n = x.shape[0]
        D = x[0].numel()
        z = squeeze(x).contiguous(memory_format=self.mf)
        logdet = torch.zeros(n, device=self.device, dtype=self.dtype)
        logp = 0.0
        zs = []
        for l in range(c["levels"]):
            for k in range(c["steps"]):
                z, logdet = self.step_fast(z, l, k, logdet)
            if l < c["levels"] - 1:
                ch = z.shape[1]
                z1, z2 = z[:, :ch // 2], z[:, ch // 2:]
                h = self.zeros_fast(z1, f"split.{l}.conv", self.halves(ch))
                logp = logp + self.logn(z2, h[:, :ch // 2], h[:, ch // 2:])
                zs.append(z2)
                z = squeeze(z1).contiguous(memory_format=self.mf)
        mean, logs = self.top_fast(n, y)
        logp = logp + self.logn(z, mean, logs)
        zs.append(z)
        return self.objective(z, y, D, logdet, logp, zs)

    def inverse(self, zs, y=None):
        c = self.c
        z = zs[-1]
        for l in range(c["levels"] - 1, -1, -1):
            if l < c["levels"] - 1:
                z = torch.cat([unsqueeze(z), zs[l]], 1)
            for k in range(c["steps"] - 1, -1, -1):
                z = self.step_inv_fast(z, l, k)
        return unsqueeze(z)

    def sample(self, n, temp, y=None, gen=None, seed=None, first=0):
        if seed is not None:
            return super().sample(n, temp, y, gen, seed, first)
        c = self.c
        mean, logs = self.top_fast(n, y)
        z = mean + torch.exp(logs) * torch.randn((n,) + mean.shape[1:], generator=gen, device=self.device,
                                                 dtype=self.dtype) * temp
        z = z.contiguous(memory_format=self.mf)
        for l in range(c["levels"] - 1, -1, -1):
            if l < c["levels"] - 1:
                z1 = unsqueeze(z)
                ch = 2 * z1.shape[1]
                h = self.zeros_fast(z1, f"split.{l}.conv", self.halves(ch))
                mean, logs = h[:, :ch // 2], h[:, ch // 2:]
                z = torch.cat([z1, mean + torch.exp(logs) * torch.randn(mean.shape, generator=gen, device=self.device,
                                                                        dtype=self.dtype) * temp], 1)
                z = z.contiguous(memory_format=self.mf)
            for k in range(c["steps"] - 1, -1, -1):
                z = self.step_inv_fast(z, l, k)
        x = unsqueeze(z)
        nb = 2 ** c["n_bits"]
        u = torch.floor((x + 0.5) * nb) * (256 // nb)
        return torch.nan_to_num(u, nan=0.0).clamp(0, 255).to(torch.uint8)


def port_params(cfg, seed=1):
    """Parameters of the port-style model: init_params without the edge channel,
    and each coupling network's conv1 and conv2 with a bias (zero) in place of
    the actnorm that follows them here."""
    p = init_params(dict(cfg, edge_bias=False), seed)
    for k in [k for k in p if ".coupling.actnorm" in k]:
        del p[k]
    for k in [k for k in p if k.endswith(".coupling.conv1.weight") or k.endswith(".coupling.conv2.weight")]:
        p[k[:-len("weight")] + "bias"] = torch.zeros(p[k].shape[0])
    return p


class PortGlow(FastGlow):
    """The same shapes built the way the popular PyTorch ports build them
    (y0ast/Glow-PyTorch, chaiyujin/glow-pytorch, rosinality/glow-pytorch): no edge
    channel (zero padding), and the coupling network's first two convolutions
    with a bias and ReLU, no actnorm. Not the model of docs/model.md: timed
    beside it, labelled as the port-style peer, never checked against the
    reference cases. Written with FastGlow's care otherwise."""

    def __init__(self, cfg, params, device="cpu", dtype=torch.float32):
        super().__init__(dict(cfg, edge_bias=False), params, device=device, dtype=dtype)

    def f(self, x, name):  # the reference path (DDI) of the parent
        return self.f_fast(x, name)

    def f_fast(self, x, name):
        p = self.p
        h = F.conv2d(x, p[name + ".conv1.weight"], p[name + ".conv1.bias"], padding=1).relu_()
        h = F.conv2d(h, p[name + ".conv2.weight"], p[name + ".conv2.bias"]).relu_()
        cout = p[name + ".conv3.weight"].shape[0]
        if self.ddi:
            return self.zeros(h, name + ".conv3")
        return self.zeros_fast(h, name + ".conv3", self.halves(cout) if self.c["coupling"] == "affine" else None)



def make_optimizer(name, params, lr):
    """torch.optim's Adam or Adamax, with the multi-tensor (foreach) update"""
    return (torch.optim.Adamax if name == "adamax" else torch.optim.Adam)(params, lr=lr, foreach=True)

PEERS = {"ref": Glow, "fast": FastGlow, "port": PortGlow}

# ---------------------------------------------------------------- the check


def rel_err(got, exp):
    got, exp = got.detach().double(), exp.double()
    m = exp.abs().max().item()
    d = (got - exp).abs().max().item()
    return d / m if m > 0 else d


def check_case(path, cls=Glow):
    params, _ = load_safetensors(os.path.join(path, "model.safetensors"))
    case, meta = load_safetensors(os.path.join(path, "case.safetensors"))
    cfg = model_config(json.loads(meta["model"]))
    fails, worst = [], {}

    def cmp(what, got, exp, tol):
        e = rel_err(got, exp)
        worst[what] = max(worst.get(what, 0.0), e)
        if not e <= tol:
            fails.append(f"{what}: error {e:.3g} > {tol:g}")

    m = cls(cfg, params, dtype=torch.float64)
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
            # a parameter the loss does not reach has no .grad (FastGlow skips the
            # learned top's convolution of zeros): its gradient is 0
            cmp("grad", p.grad if p.grad is not None else torch.zeros_like(p), case[key], 1e-3)
            ngrad += 1
    if ngrad == 0:
        fails.append("no gradients compared")
    with torch.no_grad():
        zin = [case[f"expect.z.{l}"].double() for l in range(cfg["levels"] - 1)] + [case["expect.z.top"].double()]
        cmp("inverse", m.inverse(zin, y), case["expect.x"], 1e-4)
    # data-dependent init from reset actnorms
    m2 = cls(cfg, params, dtype=torch.float64)
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
    m3 = cls(cfg, params, dtype=torch.float32)
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
        # the reference model of python/glow_torch.py and the fast one make bench times
        any_fail = False
        for cls in (Glow, FastGlow):
            fails, worst, ngrad = check_case(d, cls)
            summary = " ".join(f"{k} {v:.1e}" for k, v in worst.items())
            print(f"{'FAIL' if fails else 'ok  '} {os.path.basename(d)} ({cls.__name__}): {summary} "
                  f"({ngrad} gradients)")
            for f in fails:
                print("     " + f)
            any_fail = any_fail or bool(fails)
        bad += any_fail
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
    cls = PEERS[a.peer]
    m = cls(cfg, (port_params if cls is PortGlow else init_params)(cfg, 1), device=dev)
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
    cpu = []
    for i in range(a.warmup + a.reps):
        sync(dev)
        t0, c0 = time.perf_counter(), time.process_time()
        once()
        sync(dev)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"mode": a.mode, "peer": a.peer, "batch": a.batch, "median_s": med,
                      "images_per_s": a.batch / med, "times": times,
                      "cpu_s": sorted(cpu)[len(cpu) // 2], "peak_mib": peak_mem(dev),
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
        ap.add_argument("--peer", choices=sorted(PEERS), default="fast",
                        help="fast: FastGlow (the model, written for speed); port: PortGlow (the ports' "
                             "shapes: no edge channel, biases for the coupling actnorms); ref: the reference Glow")
        return run_bench(ap.parse_args(sys.argv[2:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", metavar="REF_DIR", required=True)
    return run_check(ap.parse_args().check)


if __name__ == "__main__":
    sys.exit(main())
