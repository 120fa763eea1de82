"""A PyTorch Glow of exactly the model of docs/model.md, as a module: load our
checkpoints into PyTorch and compute bits per dimension, latents and samples there,
with the very noise the tools draw; write our checkpoints from PyTorch; export a
model to the state dict of a PyTorch port (the reverse of glow-ckpt import).

    import sys; sys.path.insert(0, "python")        # from the repository root
    import glow_torch as gt
    m = gt.load("run/checkpoint.safetensors")       # a Glow (float32, CPU)
    bpd = m.bpd(images)                             # uint8 [N, C0, H, W]; = glow-bpd --seed 0
    zs = m.encode(images)                           # the latents: z2 of each split, then the top
    x = m.inverse(zs)                               # the dequantised images back
    img = m.sample(16, temperature=0.7, seed=1)     # = glow-sample -n 16 -t 0.7 --seed 1
    sd = gt.to_port_state_dict(m.c, m.p, "y0ast")   # y0ast/Glow-PyTorch's names and conventions
    torch.save(sd, "glow.pt")

The model is functional: its parameters are a dict of tensors named as in our
checkpoints (docs/model.md section 8), so files load without translation.
bench/torch_glow.py (make bench, the reference-case check) is built on it.
"""
import collections
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import glow_rng  # noqa: E402

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
        return self.objective(z, y, D, logdet, logp, zs)

    def objective(self, z, y, D, logdet, logp, zs):
        """bpd per image (docs/model.md section 6), the mean loss with the class
        head's cross-entropy when y-conditioned, and what forward() returns."""
        c = self.c
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

    def sample(self, n, temp, y=None, gen=None, seed=None, first=0):
        """uint8 images [n, C0, H, W] at temperature temp. With seed, the noise is
        the tools' (docs/model.md section 10.5): image i is glow-sample's image
        first + i for that seed (labels default to class 0); without, it is drawn
        with torch.randn from gen."""
        c = self.c
        if c["y_condition"] and y is None and seed is not None:
            y = torch.zeros(n, dtype=torch.long, device=self.device)

        def eps(t, level):
            if seed is None:
                return torch.randn(t.shape, generator=gen, device=self.device, dtype=self.dtype)
            _, ch, h, w = t.shape
            e = glow_rng.sample_eps(seed, level, first, n, ch, h, w)
            return torch.from_numpy(e).to(self.device, self.dtype)
        mean, logs = self.top(n, y)
        z = mean + torch.exp(logs) * eps(mean, c["levels"] - 1) * temp
        for l in range(c["levels"] - 1, -1, -1):
            if l < c["levels"] - 1:
                z1 = unsqueeze(z)
                h = self.zeros(z1, f"split.{l}.conv")
                mean, logs = h[:, 0::2], h[:, 1::2]
                z = torch.cat([z1, mean + torch.exp(logs) * eps(mean, l) * temp], 1)
            for k in range(c["steps"] - 1, -1, -1):
                z, _ = self.step(z, l, k, None, reverse=True)
        x = unsqueeze(z)
        nb = 2 ** c["n_bits"]
        u = torch.floor((x.double() + 0.5) * nb) * (256 // nb)
        return torch.nan_to_num(u, nan=0.0).clamp(0, 255).to(torch.uint8)

    # -- images in, numbers out
    def noise(self, n, seed=0, first=0):
        """The dequantisation noise the tools give images first .. first+n-1 under
        seed (glow-bpd --seed, glow-train's noise at images_seen = first)."""
        shape = (self.c["channels"], *self.c["image_size"])
        e = glow_rng.dequant_noise(seed, first, n, shape, self.c["n_bits"])
        return torch.from_numpy(e).to(self.device, self.dtype)

    def _prepare(self, images, labels, noise, seed, first):
        img = torch.as_tensor(np.asarray(images)).to(self.device)
        if noise is None:
            noise = self.noise(img.shape[0], seed, first)
        y = None if labels is None else torch.as_tensor(np.asarray(labels)).to(self.device)
        if self.c["y_condition"] and y is None:
            raise ValueError("this model is class-conditional: give labels")
        return self.dequant(img, torch.as_tensor(noise).to(self.device)), y

    def bpd(self, images, labels=None, noise=None, seed=0, first=0):
        """Bits per dimension of uint8 images [N, C0, H, W], with the noise of
        glow-bpd --seed seed unless noise is given."""
        x, y = self._prepare(images, labels, noise, seed, first)
        with torch.no_grad():
            return self.forward(x, y)[0]

    def encode(self, images, labels=None, noise=None, seed=0, first=0):
        """The latents of uint8 images: the z2 of each split, then the top z."""
        x, y = self._prepare(images, labels, noise, seed, first)
        with torch.no_grad():
            return self.forward(x, y)[4]


def load(path, device="cpu", dtype=torch.float32, ema=False):
    """A Glow from one of our checkpoints (ema: its EMA weights)."""
    tensors, meta = load_safetensors(path)
    if meta.get("format") != "glow":
        raise ValueError(f"{path}: not a Glow checkpoint (metadata format is not 'glow')")
    cfg = model_config(json.loads(meta["model"]))
    if ema:
        if not any(k.startswith("ema.") for k in tensors):
            raise ValueError(f"{path}: no EMA weights")
        tensors = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
    return Glow(cfg, tensors, device=device, dtype=dtype)


_ST_NAMES = {torch.float32: "F32", torch.float64: "F64", torch.int32: "I32",
             torch.int64: "I64", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata):
    """Write tensors (name -> tensor, in order) and string metadata as safetensors,
    the header padded to 8 bytes like our writer."""
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        raw = v.numpy().tobytes()
        header[k] = {"dtype": _ST_NAMES[v.dtype], "shape": list(v.shape),
                     "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def param_names(cfg):
    """Every parameter of the model, in the layout order of docs/model.md section 8.4."""
    c = model_config(cfg)
    out = []
    for l in range(c["levels"]):
        for k in range(c["steps"]):
            n = f"flow.{l}.{k}."
            out += [n + "actnorm.bias", n + "actnorm.logs"]
            if c["permutation"] == "invconv":
                out += [n + "invconv." + t for t in
                        (("p", "lower", "upper", "log_s", "sign_s") if c["lu"] else ("weight",))]
            elif c["permutation"] == "shuffle":
                out.append(n + "shuffle.perm")
            out += [n + "coupling." + t for t in
                    ("conv1.weight", "actnorm1.bias", "actnorm1.logs", "conv2.weight",
                     "actnorm2.bias", "actnorm2.logs", "conv3.weight", "conv3.bias", "conv3.logs")]
    out += [f"split.{l}.conv.{t}" for l in range(c["levels"] - 1) for t in ("weight", "bias", "logs")]
    if c["learn_top"]:
        out += ["prior.conv.weight", "prior.conv.bias", "prior.conv.logs"]
    if c["y_condition"]:
        out += ["prior.y_emb.weight", "prior.y_emb.bias", "prior.y_emb.logs"]
        if c["weight_y"] > 0:
            out += ["classifier.weight", "classifier.bias", "classifier.logs"]
    return out


def save(path, model, metadata=None):
    """Our weights-only checkpoint of a Glow (float32, shuffle.perm int32)."""
    meta = {"format": "glow", "version": "1", "model": json.dumps(model.c), "step": "0",
            "images_seen": "0"}
    meta.update(metadata or {})
    out = collections.OrderedDict()
    for k in param_names(model.c):
        t = model.p[k].detach()
        out[k] = t.to(torch.int32) if k.endswith(".shuffle.perm") else t.to(torch.float32)
    save_safetensors(path, out, meta)

# ---------------------------------------------------------------- PyTorch ports

# The tensor names of the ports glow-ckpt import reads (libcommon/model/import_torch.c),
# relative to a step or split (flow.layers.N.) or to the model.
PORTS = {
    "y0ast": dict(conv1="block.0.conv.weight", an1="block.0.actnorm", conv2="block.2.conv.weight",
                  an2="block.2.actnorm", conv3w="block.4.conv.weight", conv3b="block.4.conv.bias",
                  conv3l="block.4.logs", lower="lower", upper="upper", split="conv.conv.",
                  split_l="conv.logs", top="learn_top_fn.conv.", top_l="learn_top_fn.logs",
                  ycond="project_ycond.linear.", ycond_l="project_ycond.logs",
                  cls="project_class.linear.", cls_l="project_class.logs", input="centered"),
    "chaiyujin": dict(conv1="f.0.weight", an1="f.0.actnorm", conv2="f.2.weight", an2="f.2.actnorm",
                      conv3w="f.4.weight", conv3b="f.4.bias", conv3l="f.4.logs", lower="l",
                      upper="u", split="conv.", split_l="conv.logs", top="learn_top.",
                      top_l="learn_top.logs", ycond="project_ycond.", ycond_l="project_ycond.logs",
                      cls="project_class.", cls_l="project_class.logs", input="unit"),
}


def to_port_state_dict(cfg, params, port="y0ast", dtype=torch.float32, batch=1):
    """The state dict a port's Glow of the same model loads (load_state_dict):
    y0ast/Glow-PyTorch or chaiyujin/glow-pytorch names, their actnorm log-scale
    (3 * ours), their shapes, the zero prior_h buffer ([batch, 2Ct, Ht, Wt]) and,
    for chaiyujin, the first actnorm unfolded for its x = u/255 input. Only models
    without the edge channel and without a shuffle permutation can be exported."""
    c = model_config(cfg)
    if c["edge_bias"]:
        raise ValueError("the ports have no edge channel: edge_bias models cannot be exported")
    if c["permutation"] == "shuffle":
        raise ValueError("the ports do not save a shuffle permutation")
    n = PORTS[port]
    p = {k: v.detach().double() for k, v in params.items()}
    sd = collections.OrderedDict()
    K, L = c["steps"], c["levels"]
    col = lambda t: t.view(1, -1, 1, 1)
    for l, (ch, _, _) in enumerate(level_shapes(c)):
        for k in range(K):
            t, o = f"flow.layers.{l * (K + 2) + 1 + k}.", f"flow.{l}.{k}."
            b, s = p[o + "actnorm.bias"], 3 * p[o + "actnorm.logs"]
            if l == 0 and k == 0 and n["input"] == "unit":
                if c["n_bits"] != 8:
                    raise ValueError("chaiyujin's input x = u/255 has 8 bits")
                b, s = (b - 0.5) * (256 / 255), s - math.log(256 / 255)
            sd[t + "actnorm.bias"], sd[t + "actnorm.logs"] = col(b), col(s)
            if c["permutation"] == "invconv" and not c["lu"]:
                sd[t + "invconv.weight"] = p[o + "invconv.weight"]
            elif c["permutation"] == "invconv":
                sd[t + "invconv.p"] = p[o + "invconv.p"]
                sd[t + "invconv.sign_s"] = p[o + "invconv.sign_s"]
                sd[t + "invconv." + n["lower"]] = p[o + "invconv.lower"]
                sd[t + "invconv.log_s"] = p[o + "invconv.log_s"]
                sd[t + "invconv." + n["upper"]] = p[o + "invconv.upper"]
            sd[t + n["conv1"]] = p[o + "coupling.conv1.weight"]
            sd[t + n["an1"] + ".bias"] = col(p[o + "coupling.actnorm1.bias"])
            sd[t + n["an1"] + ".logs"] = col(3 * p[o + "coupling.actnorm1.logs"])
            sd[t + n["conv2"]] = p[o + "coupling.conv2.weight"]
            sd[t + n["an2"] + ".bias"] = col(p[o + "coupling.actnorm2.bias"])
            sd[t + n["an2"] + ".logs"] = col(3 * p[o + "coupling.actnorm2.logs"])
            sd[t + n["conv3w"]] = p[o + "coupling.conv3.weight"]
            sd[t + n["conv3b"]] = p[o + "coupling.conv3.bias"]
            sd[t + n["conv3l"]] = p[o + "coupling.conv3.logs"].view(-1, 1, 1)
        if l < L - 1:
            t, o = f"flow.layers.{l * (K + 2) + 1 + K}.", f"split.{l}.conv."
            sd[t + n["split"] + "weight"] = p[o + "weight"]
            sd[t + n["split"] + "bias"] = p[o + "bias"]
            sd[t + n["split_l"]] = p[o + "logs"].view(-1, 1, 1)
    ct, ht, wt = level_shapes(c)[-1]
    if c["learn_top"]:
        sd[n["top"] + "weight"] = p["prior.conv.weight"]
        sd[n["top"] + "bias"] = p["prior.conv.bias"]
        sd[n["top_l"]] = p["prior.conv.logs"].view(-1, 1, 1)
    if c["y_condition"]:
        sd[n["ycond"] + "weight"] = p["prior.y_emb.weight"]
        sd[n["ycond"] + "bias"] = p["prior.y_emb.bias"]
        sd[n["ycond_l"]] = p["prior.y_emb.logs"]
        head = c["weight_y"] > 0  # the ports always have the head; zeros without ours
        nc = c["n_classes"]
        sd[n["cls"] + "weight"] = p["classifier.weight"] if head else torch.zeros(nc, ct)
        sd[n["cls"] + "bias"] = p["classifier.bias"] if head else torch.zeros(nc)
        sd[n["cls_l"]] = p["classifier.logs"] if head else torch.zeros(nc)
    sd["prior_h"] = torch.zeros(batch, 2 * ct, ht, wt)
    return collections.OrderedDict((k, v.to(dtype).contiguous()) for k, v in sd.items())

# ---------------------------------------------------------------- initialisation


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


