#!/usr/bin/env bash
# The small world the commands of the documentation run in (test/doc/doctest.py,
# docs/doc-tests.md): FIXTURE_DIR gets, under the names the docs use,
#   train-images-idx3-ubyte.gz ... t10k-labels-idx1-ubyte.gz   Fashion-MNIST subsets
#       (256 train, 128 test images, labels beside them), also in FM/
#   configs/*.yml      every shipped config made tiny (width 8, 2 steps per level,
#                      4 training steps (also for a length in epochs), batches
#                      of 8, device cpu); image shapes, levels and the rest kept
#   fm-train.glow test.glow         the subsets padded to 32x32, as streams
#   fm-test/ test-shards/ data/fm-test/ mnist-test/   shard folders (test; train)
#   data/fm/ data/cifar/{train,val}/ the shard folders of README's glow-prep examples
#   run/               a run of configs/fashion-mnist.yml (its tiny copy) trained for 2 steps
#   out/fashion-mnist/run/ run-a/ run-b/ run-c/   copies of it (`make demo`'s place,
#                      runs to compare)
#   cond.safetensors   a class-conditional checkpoint (10 labels)
#   a.png b.png imgs/*.png photos/{shirt,shoe}/*.png   PNGs of test images
#   data_batch_1.bin ... data_batch_5.bin   CIFAR-10 batches of 64 random images
#   celeba/img_align_celeba/*.jpg train_meta.csv   JPEGs and the seed's meta CSV
#   glow_model_10.pt   a PyTorch port's checkpoint (test/data/ports)
# The Fashion-MNIST subsets come from /usr/share/datasets/fashion-mnist
# (dataset-fashion-mnist, make deps) or, without it, random IDX files.
# Usage: test/doc/fixture.sh FIXTURE_DIR   (BUILD: the build folder, default build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
B="$ROOT/$BUILD/bin"
F=$1
mkdir -p "$F"
cd "$F"
export PATH="$B:$PATH"
py() { PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$@"; }
PT() { py "$ROOT/test/data/prep/preptool.py" "$@"; }

# Fashion-MNIST subsets (IDX, gzip)
py - /usr/share/datasets/fashion-mnist <<'PY'
import gzip, os, random, struct, sys
src = sys.argv[1]
for part, n in (("train", 256), ("t10k", 128)):
    im = os.path.join(src, "%s-images-idx3-ubyte.gz" % part)
    lb = os.path.join(src, "%s-labels-idx1-ubyte.gz" % part)
    if os.path.exists(im) and os.path.exists(lb):
        with gzip.open(im) as f:
            f.read(16); pixels = f.read(n * 784)
        with gzip.open(lb) as f:
            f.read(8); labels = f.read(n)
    else:
        r = random.Random(part)
        pixels = bytes(r.randrange(256) for _ in range(n * 784))
        labels = bytes(r.randrange(10) for _ in range(n))
    with gzip.open("%s-images-idx3-ubyte.gz" % part, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
    with gzip.open("%s-labels-idx1-ubyte.gz" % part, "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels)
PY
mkdir -p FM
cp ./*-ubyte.gz FM/

# every shipped config, tiny: the keys below replaced where the file has them
mkdir -p configs
for c in "$ROOT"/configs/*.yml; do
    py - "$c" "configs/$(basename "$c")" <<'PY'
import re, sys
tiny = {"model.width": "8", "model.steps": "2", "train.steps": "4", "train.batch_size": "8",
        "train.init_batch": "16", "train.warmup": "16", "train.warmup_steps": "2",
        "train.checkpoint_every": "2", "train.val_every": "4", "train.log_every": "2",
        "train.sample_every": "4", "train.device": "cpu", "train.precision": "fp32"}
lines, section = open(sys.argv[1]).read().splitlines(), None
for i, line in enumerate(lines):
    m = re.match(r"(\w+):\s*(#.*)?$", line)
    if m:
        section = m.group(1)
    m = re.match(r"(  (\w+):)", line)
    if m and "%s.%s" % (section, m.group(2)) in tiny:
        lines[i] = "%s %s" % (m.group(1), tiny["%s.%s" % (section, m.group(2))])
    elif m and section == "train" and m.group(2) == "epochs":
        lines[i] = "  steps: 4"   # a run's length in epochs becomes 4 steps
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
done

# streams and shard folders
glow-prep -q --pad 2 train-images-idx3-ubyte.gz > fm-train.glow
glow-prep -q --pad 2 t10k-images-idx3-ubyte.gz > test.glow
glow-prep -q --pad 2 -o data/fm train-images-idx3-ubyte.gz
glow-prep -q test.glow -o fm-test
glow-prep -q test.glow -o test-shards
glow-prep -q test.glow -o data/fm-test
glow-prep -q fm-train.glow --limit 128 -o mnist-test

# runs
glow-train -q -c configs/fashion-mnist.yml --steps 2 -o run fm-train.glow 2>/dev/null
mkdir -p out/fashion-mnist
cp -a run out/fashion-mnist/run
for r in run-a run-b run-c; do cp -a run "$r"; done
sed -e 's/^  y_condition:.*/  y_condition: true/' configs/fashion-mnist.yml > cond.yml
grep -q '^  n_classes:' cond.yml || sed -i 's/^  y_condition: true/&\n  n_classes: 10/' cond.yml
glow-train -q -c cond.yml -o cond-run fm-train.glow 2>/dev/null
cp cond-run/checkpoint.safetensors cond.safetensors
rm -rf cond-run cond.yml

# images
pngcat --split pics --limit 2 test.glow
mv pics/000000.png a.png
mv pics/000001.png b.png
rm -rf pics
glow-prep -q test.glow --limit 40 | pngcat --split imgs
mkdir -p photos
glow-prep -q test.glow --limit 4 | pngcat --split photos/shirt
glow-prep -q fm-train.glow --limit 4 | pngcat --split photos/shoe
mkdir -p celeba/img_align_celeba
printf ',name\n' > train_meta.csv
for i in 0 1 2 3; do
    "$ROOT/$BUILD/test/test_image" --write jpeg-rgb 80 96 "$i" "celeba/img_align_celeba/00000$i.jpg"
    printf '%d,00000%d.jpg\n' "$i" "$i" >> train_meta.csv
done
for i in 1 2 3 4 5; do PT cifar "data_batch_$i.bin" 64 "$i"; rm -f "data_batch_$i.bin".*; done
glow-prep -q data_batch_1.bin data_batch_2.bin --split 0.75 -o data/cifar
cp "$ROOT/test/data/ports/y0ast-affine-ycond.pt" glow_model_10.pt
