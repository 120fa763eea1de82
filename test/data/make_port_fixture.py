#!/usr/bin/python3
"""Makes the PyTorch-port fixtures of test/data/ports/ by running the ports' own
code (not copied here: it is imported from a checkout given on the command line).

  make_port_fixture.py y0ast PORT_CHECKOUT OUT_DIR
      github.com/y0ast/Glow-PyTorch: two tiny models, saved as its trainer saves
      them (torch.save(model.state_dict())):
        y0ast-affine-ycond.pt     1x8x8, L=2, K=2, width 8, affine, invconv,
                                  learned top, 4 classes
        y0ast-additive-reverse.pt 3x8x8, L=2, K=2, width 4, additive, reverse,
                                  no learned top
  make_port_fixture.py chaiyujin PORT_CHECKOUT OUT_DIR
      github.com/chaiyujin/glow-pytorch (needs SciPy, tqdm and Matplotlib, which
      its modules import):
        chaiyujin-additive-lu.pkg 1x8x8, L=2, K=1, width 4, additive, LU,
                                  learned top, saved with its glow.utils.save
                                  ({"global_step", "graph", "optim", "criterion"})

Each model is initialised by the port (its data-dependent actnorm init on a first
batch) and trained a few optimizer steps on random images, so that every tensor,
the zero-initialised ones too, holds non-trivial values. Beside each, NAME.expect
(safetensors) holds N images (input.image), their labels (input.label), the
dequantisation noise the tools draw for them with --seed SEED (input.noise, from
python/glow_rng.py: glow-bpd adds exactly these numbers), and the bits per
dimension the port computes for them with that noise in float64 (expect.bpd): the
bpd of our import must equal it to 1e-4.

y0ast's model takes x = u/256 - 0.5 (its preprocess) and adds the noise in
uniform_binning_correction, which is wrapped to add ours instead. chaiyujin's takes
x = u/255 (torchvision's ToTensor, unshifted) and adds Gaussian noise with
torch.normal, replaced for the call by ours scaled by 256/255; its nll divides by
H*W (not C*H*W) and leaves out the Jacobian of x = u/255, so expect.bpd is
  bpd = nll * H*W / D + log2(256) * (1 - H*W / D) - log2(256/255)
(port.nll keeps the port's own number). Run with /usr/bin/python3 (Debian's
python3-torch: make bench-deps).
"""
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import glow_rng  # noqa: E402
import st  # noqa: E402

SEED = 7        # the --seed of the noise
N = 6           # images per fixture


def commit_of(path):
    return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def images(n, c, h, w, seed):
    """uint8 images with some structure (smooth waves plus noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    f = rng.uniform(0.2, 0.9, size=(n, c, 2, 1, 1))
    v = 128 + 90 * np.sin(f[:, :, 0] * yy + f[:, :, 1] * xx) + rng.normal(0, 20, (n, c, h, w))
    return np.clip(v, 0, 255).astype(np.uint8)


def write_expect(path, img, labels, noise, bpd, meta, extra=None):
    t = {"input.image": img}
    if labels is not None:
        t["input.label"] = labels.astype(np.int32)
    t["input.noise"] = noise
    t["expect.bpd"] = np.asarray(bpd, np.float64)
    for k, v in (extra or {}).items():
        t[k] = np.asarray(v, np.float64)
    st.write(path, t, {k: str(v) for k, v in meta.items()})


def y0ast(port, out):
    sys.path.insert(0, port)
    import model as ymodel  # the port's model.py

    commit = commit_of(port)
    orig = ymodel.uniform_binning_correction
    noise_now = {}

    def with_our_noise(x, n_bits=8):
        _, objective = orig(x.clone(), n_bits)   # the port's -log(n_bins) * C*H*W term
        return x + noise_now["n"].to(x.dtype), objective

    def make(name, c, width, coupling, permutation, lu, learn_top, classes, seed):
        torch.manual_seed(seed)
        m = ymodel.Glow((8, 8, c), width, 2, 2, 1.0, permutation, coupling, lu, classes or 1,
                        learn_top, classes > 0)
        g = torch.Generator().manual_seed(seed)
        train = torch.from_numpy(images(32, c, 8, 8, seed + 1)).float() / 256 - 0.5
        ytrain = torch.randint(0, max(classes, 1), (32,), generator=g)
        onehot = F.one_hot(ytrain, max(classes, 1)).float() if classes else None
        m.train()
        ymodel.uniform_binning_correction = orig
        with torch.no_grad():
            m(train.clone(), onehot)                    # data-dependent actnorm init
        opt = torch.optim.Adamax(m.parameters(), lr=5e-3)
        for _ in range(12):
            opt.zero_grad()
            _, nll, logits = m(train.clone(), onehot)
            loss = nll.mean() + (0.5 * F.cross_entropy(logits, ytrain) if classes else 0)
            loss.backward()
            opt.step()
        torch.save(m.state_dict(), os.path.join(out, name + ".pt"))
        # the port's bpd of fixed images with our noise, in float64
        img = images(N, c, 8, 8, seed + 2)
        lab = np.arange(N) % classes if classes else None
        noise = glow_rng.dequant_noise(SEED, 0, N, (c, 8, 8), 8)
        m = m.double().eval()
        ymodel.uniform_binning_correction = with_our_noise
        noise_now["n"] = torch.from_numpy(noise)
        x = torch.from_numpy(img).double() / 256 - 0.5
        yo = F.one_hot(torch.from_numpy(lab), classes).double() if classes else None
        with torch.no_grad():
            _, bpd, _ = m(x, yo)
        ymodel.uniform_binning_correction = orig
        write_expect(os.path.join(out, name + ".expect"), img, lab, noise, bpd.numpy(),
                     {"port": "y0ast/Glow-PyTorch", "port_commit": commit, "seed": SEED,
                      "n_bits": 8, "made_by": "test/data/make_port_fixture.py"})
        print(name, "bpd", bpd.numpy())

    make("y0ast-affine-ycond", 1, 8, "affine", "invconv", False, True, 4, 11)
    make("y0ast-additive-reverse", 3, 4, "additive", "reverse", False, False, 0, 12)


def chaiyujin(port, out):
    sys.path.insert(0, port)
    from glow import models, utils
    from glow.config import JsonConfig

    commit = commit_of(port)
    name, c, B = "chaiyujin-additive-lu", 1, N
    hp = JsonConfig({
        "Glow": {"image_shape": [8, 8, c], "hidden_channels": 4, "K": 1, "L": 2,
                 "actnorm_scale": 1.0, "flow_permutation": "invconv",
                 "flow_coupling": "additive", "LU_decomposed": True, "learn_top": True,
                 "y_condition": False, "y_classes": 1},
        "Device": {"glow": ["cpu"], "data": "cpu"},
        "Train": {"batch_size": B}})
    torch.manual_seed(21)
    np.random.seed(21)
    m = models.Glow(hp)
    train = torch.from_numpy(images(B, c, 8, 8, 22)).float() / 255   # ToTensor: u / 255
    m.train()
    with torch.no_grad():
        m(train)                                    # data-dependent actnorm init
    opt = torch.optim.Adam(m.parameters(), lr=5e-3)
    for step in range(12):
        opt.zero_grad()
        _, nll, _ = m(train)
        models.Glow.loss_generative(nll).backward()
        opt.step()
    pkg = os.path.join(out, "pkg.tmp")
    os.makedirs(pkg, exist_ok=True)
    utils.save(global_step=12, graph=m, optim=opt, pkg_dir=pkg)
    saved = [f for f in os.listdir(pkg) if f.endswith(".pkg")]
    shutil.move(os.path.join(pkg, saved[0]), os.path.join(out, name + ".pkg"))
    shutil.rmtree(pkg)
    img = images(N, c, 8, 8, 23)
    noise = glow_rng.dequant_noise(SEED, 0, N, (c, 8, 8), 8)
    m = m.double().eval()
    normal = torch.normal
    torch.normal = lambda mean, std: torch.from_numpy(noise).double() * (256.0 / 255.0)
    try:
        with torch.no_grad():
            _, nll, _ = m(torch.from_numpy(img).double() / 255)
    finally:
        torch.normal = normal
    hw, d = 64, c * 64
    nll = nll.numpy()
    bpd = nll * hw / d + 8 * (1 - hw / d) - math.log2(256 / 255)
    write_expect(os.path.join(out, name + ".expect"), img, None, noise, bpd,
                 {"port": "chaiyujin/glow-pytorch", "port_commit": commit, "seed": SEED,
                  "n_bits": 8, "made_by": "test/data/make_port_fixture.py",
                  "bpd": "nll * H*W / D + log2(256) * (1 - H*W / D) - log2(256/255)"},
                 {"port.nll": nll})
    print(name, "bpd", bpd)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("y0ast", "chaiyujin"):
        sys.exit(__doc__)
    port, out = os.path.abspath(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    {"y0ast": y0ast, "chaiyujin": chaiyujin}[sys.argv[1]](port, out)


if __name__ == "__main__":
    main()
