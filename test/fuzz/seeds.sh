#!/usr/bin/env bash
# Writes the seed corpora of the fuzz harnesses, test/fuzz/corpus/NAME/, from the
# project's own tools and test writers: shard streams, checkpoints of small
# models (with training state, LU, shuffle, labels, weights only), PNGs of every
# colour type, baseline and progressive JPEGs, the shipped configs, meta CSVs and
# lists, and the crafted files of test/data/crafted.py. Needs a build (make).
# Usage: test/fuzz/seeds.sh [BUILD]     (BUILD default build)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${1:-build}
BIN="$ROOT/$BUILD/bin"
C="$ROOT/test/fuzz/corpus"
py() { PYTHONPATH="$ROOT/test/data" /usr/bin/python3 "$@"; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
rm -rf "$C"/{shard,safetensors,png,jpeg,yaml,csv}
mkdir -p "$C"/{shard,safetensors,png,jpeg,yaml,csv}

# ---- shard streams ----
sg() { py test/data/shardgen.py "$@"; }
sg "$C/shard/u8.glow" --n 3 --c 1 --h 4 --w 4
sg "$C/shard/rgb-labels.glow" --n 2 --c 3 --h 4 --w 2 --labels
sg "$C/shard/f32.glow" --n 2 --c 1 --h 3 --w 3 --dtype f32
sg "$C/shard/records.glow" --n 5 --c 1 --h 2 --w 2 --per-record 2 --labels
sg "$C/shard/c2.glow" --n 1 --c 2 --h 2 --w 2
: >"$C/shard/empty.glow"
cat "$C/shard/u8.glow" "$C/shard/u8.glow" >"$C/shard/two-files.glow"
sg "$TMP/x.glow" --n 1 --c 1 --h 2 --w 2
head -c 40 "$TMP/x.glow" >"$C/shard/truncated.glow"

# ---- checkpoints ----
cat >"$TMP/m.yml" <<'EOF'
model:
  image_size: [4, 4]
  channels: 1
  levels: 1
  steps: 1
  width: 2
train:
  batch_size: 2
  init_batch: 2
  steps: 1
  ema_decay: 0.5
  log_every: 0
  val_every: 0
  checkpoint_every: 0
EOF
sg "$TMP/d.glow" --n 4 --c 1 --h 4 --w 4 --label-mod 2
train() { "$BIN/glow-train" -q -c "$TMP/m.yml" --device cpu -o "$TMP/$1" "${@:2}" "$TMP/d.glow"; }
train plain
train lu --set model.lu=true --set train.optimizer=adamax
train shuffle --set model.permutation=shuffle --set model.coupling=additive
train ycond --set model.y_condition=true --set model.n_classes=2 --set model.levels=2 \
    --set train.ema_decay=0
cp "$TMP/plain/checkpoint.safetensors" "$C/safetensors/train.safetensors"
cp "$TMP/lu/checkpoint.safetensors" "$C/safetensors/lu-adamax.safetensors"
cp "$TMP/shuffle/checkpoint.safetensors" "$C/safetensors/shuffle-additive.safetensors"
cp "$TMP/ycond/checkpoint.safetensors" "$C/safetensors/ycond.safetensors"
"$BIN/glow-ckpt" --export-weights "$C/safetensors/weights.safetensors" \
    "$TMP/plain/checkpoint.safetensors"
cr() { py test/data/crafted.py "$@"; }
cr st-empty-last "$C/safetensors/empty-last.safetensors"
cr st-header "$C/safetensors/unicode.safetensors" \
    '{"__metadata__": {"format": "glow", "n\u00e9": "caf\xc3\xa9"}, "a": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
cr st-header "$C/safetensors/dtypes.safetensors" \
    '{"f": {"dtype": "F64", "shape": [0, 2], "data_offsets": [0, 0]}, "b": {"dtype": "BF16", "shape": [], "data_offsets": [0, 0]}}'

# ---- images ----
TI() { "$ROOT/$BUILD/test/test_image" --write "$@"; }
TI png-gray 7 5 1 "$C/png/gray.png"
TI png-rgb 5 6 2 "$C/png/rgb.png"
TI png-rgba 4 4 3 "$C/png/rgba.png"
TI png-palette 6 3 4 "$C/png/palette.png"
TI png-gray16 3 5 5 "$C/png/gray16.png"
TI jpeg-rgb 16 12 1 "$C/jpeg/rgb.jpg"
TI jpeg-gray 9 9 2 "$C/jpeg/gray.jpg"
# progressive, CMYK and interlaced files where PIL is at hand
if /usr/bin/python3 -c 'import PIL' 2>/dev/null; then
    /usr/bin/python3 - "$C" <<'EOF'
import sys
from PIL import Image
c = sys.argv[1]
im = Image.linear_gradient("L").resize((12, 10)).convert("RGB")
im.save(c + "/jpeg/progressive.jpg", progressive=True, quality=60)
im.convert("CMYK").save(c + "/jpeg/cmyk.jpg", quality=60)
im.save(c + "/jpeg/subsampled.jpg", subsampling=2, quality=40)
im.save(c + "/png/interlaced.png", interlace=1)
im.convert("LA").save(c + "/png/gray-alpha.png")
im.convert("1").save(c + "/png/bilevel.png")
EOF
fi

# ---- configs ----
cp configs/*.yml "$C/yaml/"
printf 'model: {image_size: 8, channels: 1, levels: 2, steps: 1, width: 4}\ntrain: {steps: 1}\n' \
    >"$C/yaml/flow.yml"
printf '{"model": {"image_size": [8, 8]}, "train": {"epochs": 1.5, "seed": 18446744073709551615}}\n' \
    >"$C/yaml/json.yml"
# escapes that read as YAML's other line breaks and as characters it takes only
# escaped (the writer once wrote NEL raw, which reads back as a space)
printf '%s\n' 'description: "nel\N ls\L ps\P c1\x80 bom\uFEFF"' \
    'model: {image_size: 8, channels: 1, levels: 2, steps: 1, width: 4}' >"$C/yaml/escapes.yml"

# ---- CSVs and lists ----
printf ',name\n0,000001.jpg\n1,000002.jpg\n' >"$C/csv/seed-meta.csv"
printf '\xef\xbb\xbfpath,label\n"a, b.png",3\n"q""uote.jpg",0\n\nc.png,1\n' >"$C/csv/labels.csv"
printf 'a.png\nsub/b.jpg\r\n/abs/c.jpeg\n\n' >"$C/csv/list.txt"
printf 'filename,x\nz.png,1,2\n"open.png\n' >"$C/csv/bad-lines.csv"
ls "$C"/* | wc -l
