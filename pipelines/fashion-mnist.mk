# The Fashion-MNIST demo (make demo): pack Debian's dataset-fashion-mnist into
# shard files padded to 32x32, train configs/fashion-mnist.yml (about 15 minutes
# on 2 CPU cores), draw a grid of samples and score the test set.
#
#   make -f pipelines/fashion-mnist.mk [OUT=DIR] [DEMO_STEPS=N] [DEVICE=D]
#
#   OUT         results (default out/fashion-mnist): train/ and test/ shard files,
#               train.png (a grid of training images), run/ (config.yml,
#               checkpoint.safetensors, log.jsonl), samples.png, test-bpd.txt,
#               interpolation.png (4 pairs of test images, 11 steps between the
#               two of each: glow-encode | glow-latent mix | glow-decode; more in
#               pipelines/latent.mk)
#   DEMO_STEPS  train to this step instead of the config's steps (a quick run:
#               DEMO_STEPS=50); a later run with more steps continues the same run
#   DEVICE      cpu, cuda, cuda:N or auto (default auto: a GPU when there is one)
#
# Each stage is a file under OUT, so an interrupted run picks up where it stopped:
# Ctrl-C during training saves a checkpoint and the next make resumes from it.
# Delete OUT/run to train from scratch (after changing the config, say).

SELF   := $(lastword $(MAKEFILE_LIST))
BUILD  ?= build
BIN    := $(BUILD)/bin
OUT    ?= out/fashion-mnist
FMNIST ?= /usr/share/datasets/fashion-mnist
CONFIG ?= configs/fashion-mnist.yml
DEVICE ?= auto
DEMO_STEPS ?=

RUN   := $(OUT)/run
CKPT  := $(RUN)/checkpoint.safetensors
STEPS := $(if $(strip $(DEMO_STEPS)),--steps $(DEMO_STEPS))
# A stamp per run length, so a new DEMO_STEPS trains on (or stops) accordingly.
TRAINED := $(RUN)/.done-$(if $(strip $(DEMO_STEPS)),$(DEMO_STEPS),config)
# Sample and score with the moving average of the weights when the run kept one.
EMA_FLAG = $$($(BIN)/glow-ckpt $(CKPT) | grep -q '^ema: yes' && echo --ema)

.PHONY: all data train sample score interpolate help
all: $(OUT)/train.png $(OUT)/samples.png $(OUT)/test-bpd.txt $(OUT)/interpolation.png
	@echo "fashion-mnist: checkpoint $(CKPT), samples $(OUT)/samples.png, training images $(OUT)/train.png"
	@echo "fashion-mnist: interpolation strips $(OUT)/interpolation.png"
	@echo "fashion-mnist: test set $$(cat $(OUT)/test-bpd.txt)"

data: $(OUT)/train/.done $(OUT)/test/.done
train: $(TRAINED)
sample: $(OUT)/samples.png
score: $(OUT)/test-bpd.txt
interpolate: $(OUT)/interpolation.png

$(FMNIST)/train-images-idx3-ubyte.gz $(FMNIST)/t10k-images-idx3-ubyte.gz:
	@dpkg-query -W -f='$${Status}' dataset-fashion-mnist 2>/dev/null | grep -q 'install ok installed' || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
	@test -f $@ || { echo "fashion-mnist.mk: $@: missing (install dataset-fashion-mnist or set FMNIST=DIR)" >&2; exit 1; }

$(OUT)/train/.done: $(FMNIST)/train-images-idx3-ubyte.gz
	$(BIN)/glow-prep -q --pad 2 -o $(OUT)/train $<
	@touch $@

$(OUT)/test/.done: $(FMNIST)/t10k-images-idx3-ubyte.gz
	$(BIN)/glow-prep -q --pad 2 -o $(OUT)/test $<
	@touch $@

$(OUT)/train.png: $(OUT)/train/.done
	$(BIN)/pngcat --limit 64 -o $@ $(OUT)/train/*.glow

# A checkpoint left by an interrupted run is continued, not started over; a run
# stopped before its first checkpoint is moved aside (--force: RUN.old-N) and begun again.
$(TRAINED): $(OUT)/train/.done
	@rm -f $(RUN)/.done-*
	if [ -f $(CKPT) ]; then \
	  $(BIN)/glow-train --resume $(RUN) --device $(DEVICE) $(STEPS) $(OUT)/train; \
	else \
	  $(BIN)/glow-train -c $(CONFIG) -o $(RUN) --force --device $(DEVICE) $(STEPS) $(OUT)/train; \
	fi
	@touch $@

$(OUT)/samples.png: $(TRAINED)
	$(BIN)/glow-sample $(CKPT) -n 64 -t 0.7 --seed 1 $(EMA_FLAG) --device $(DEVICE) -o $(OUT)/samples.glow
	$(BIN)/pngcat -o $@ $(OUT)/samples.glow

$(OUT)/test-bpd.txt: $(TRAINED) $(OUT)/test/.done
	$(BIN)/glow-bpd $(CKPT) $(EMA_FLAG) --device $(DEVICE) $(OUT)/test >$@.tmp && mv $@.tmp $@

# The first 8 test images as 4 pairs, 11 images from the first of each to the second.
$(OUT)/interpolation.png: $(TRAINED) $(OUT)/test/.done
	$(BIN)/glow-encode $(CKPT) $(EMA_FLAG) --device $(DEVICE) --limit 8 -o $(OUT)/pairs.lat $(OUT)/test
	$(BIN)/glow-latent mix --steps 11 -o $(OUT)/mix.lat $(OUT)/pairs.lat
	$(BIN)/glow-decode $(CKPT) $(EMA_FLAG) --device $(DEVICE) -o $(OUT)/interpolation.glow $(OUT)/mix.lat
	$(BIN)/pngcat --cols 11 -o $@ $(OUT)/interpolation.glow

help:
	@sed -n '1,/^$$/p' $(SELF) | sed -n 's/^# \{0,1\}//p'
