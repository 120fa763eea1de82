# Latents of a trained Fashion-MNIST model (make -f pipelines/latent.mk, after
# make demo): reconstructions, an interpolation strip, a temperature sweep and a
# class-attribute manipulation, as PNGs, all made by glow-encode, glow-latent and
# glow-decode in pipes.
#
#   make -f pipelines/latent.mk [CKPT=FILE] [OUT=DIR] [LIMIT=N] [DEVICE=D]
#
#   CKPT    a checkpoint of a 1x32x32 model (default: the demo's,
#           out/fashion-mnist/run/checkpoint.safetensors); its EMA weights when
#           it has them
#   OUT     results (default out/latent):
#             reconstructions.png  16 test images (top) and their encode -> decode
#             interpolation.png    4 pairs of test images, 11 steps between each
#             temperature.png      8 test images at temperatures 0, 0.25, .. 1
#             attribute.png        8 dresses plus 0, 0.25, .. 1 times the
#                                  trouser-minus-dress direction (labels 1 and 3)
#             latents.glow         the latents of the first LIMIT test images
#   LIMIT   test images encoded (default 2000); the direction is the difference
#           of the mean latents of their trousers and dresses
#   DEVICE  cpu, cuda, cuda:N or auto (default auto)

SELF   := $(lastword $(MAKEFILE_LIST))
BUILD  ?= build
BIN    := $(BUILD)/bin
CKPT   ?= out/fashion-mnist/run/checkpoint.safetensors
OUT    ?= out/latent
FMNIST ?= /usr/share/datasets/fashion-mnist
LIMIT  ?= 2000
DEVICE ?= auto

# A stage fails when any command of its pipe fails.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -ec

EMA_FLAG = $$($(BIN)/glow-ckpt $(CKPT) | grep -q '^ema: yes' && echo --ema)
ENCODE   = $(BIN)/glow-encode $(EMA_FLAG) --device $(DEVICE) $(CKPT)
DECODE   = $(BIN)/glow-decode $(EMA_FLAG) --device $(DEVICE) $(CKPT)
LATENT   = $(BIN)/glow-latent
TEMPS    := 0,0.25,0.5,0.75,1
ALPHAS   := 0,0.25,0.5,0.75,1

PNGS := $(addprefix $(OUT)/,reconstructions.png interpolation.png temperature.png attribute.png)

.PHONY: all help
all: $(PNGS)
	@echo "latent: $(PNGS)"

$(CKPT):
	@echo "latent.mk: $(CKPT): no checkpoint (run make demo first, or give CKPT=FILE)" >&2; exit 1

$(FMNIST)/t10k-images-idx3-ubyte.gz:
	@echo "latent.mk: $@: missing (install dataset-fashion-mnist or set FMNIST=DIR)" >&2; exit 1

# the first LIMIT test images, padded to 32x32, with their labels
$(OUT)/test.glow: $(FMNIST)/t10k-images-idx3-ubyte.gz
	@mkdir -p $(OUT)
	$(BIN)/glow-prep -q --pad 2 --limit $(LIMIT) $< >$@.tmp && mv $@.tmp $@

$(OUT)/latents.glow: $(OUT)/test.glow $(CKPT)
	$(ENCODE) -o $@ $<

$(OUT)/reconstructions.png: $(OUT)/latents.glow
	$(LATENT) select --limit 16 $< | $(DECODE) -o $(OUT)/reconstructed.glow
	$(BIN)/glow-prep -q --pad 2 --limit 16 $(FMNIST)/t10k-images-idx3-ubyte.gz \
	  | cat - $(OUT)/reconstructed.glow | $(BIN)/pngcat --cols 16 -o $@

$(OUT)/interpolation.png: $(OUT)/latents.glow
	$(LATENT) select --limit 8 $< | $(LATENT) mix --steps 11 | $(DECODE) \
	  | $(BIN)/pngcat --cols 11 -o $@

$(OUT)/temperature.png: $(OUT)/latents.glow
	$(LATENT) select --limit 8 $< | $(LATENT) scale $(TEMPS) | $(DECODE) \
	  | $(BIN)/pngcat --cols 5 -o $@

$(OUT)/trouser-dress.glow: $(OUT)/latents.glow
	$(LATENT) attr --label 1,3 -o $@ $<

$(OUT)/attribute.png: $(OUT)/latents.glow $(OUT)/trouser-dress.glow
	$(LATENT) select --label 3 --limit 8 $< | $(LATENT) add $(OUT)/trouser-dress.glow --alpha $(ALPHAS) \
	  | $(DECODE) | $(BIN)/pngcat --cols 5 -o $@

help:
	@sed -n '1,/^$$/p' $(SELF) | sed -n 's/^# \{0,1\}//p'
