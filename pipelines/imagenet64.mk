# ImageNet at 64x64, the seed's GLOW64x64V0 model (the Glow paper's ImageNet 64x64
# setting: L=4, K=48, width 512, invconv, affine), from your own copy:
#
#   make -f pipelines/imagenet64.mk DATA=/data/imagenet/train META=/data/imagenet/train_meta.csv
#
# packs the images into shard files (centre-cropped, resized to 64x64), trains,
# draws a sample grid and scores the held-out images. Each stage is a file under
# OUT, so an interrupted run picks up where it stopped (training resumes from its
# last checkpoint).
#
#   DATA       folder of the images (required); without META every
#              .png/.jpg/.jpeg below it, e.g. ImageNet's train/nXXXXXXXX/ folders
#   META       the seed's meta CSV (',name' header, then 'index,filename' lines,
#              file names relative to DATA)
#   TEST_META  a meta CSV of the held-out images (e.g. ImageNet's validation set),
#              relative to TEST_DATA (default DATA); without it the first SPLIT
#              of the (shuffled) images train and the rest are held out
#   SPLIT      default 0.95
#   OUT        default out/imagenet64; RUN = OUT/run holds the checkpoint
#   DEVICE     default cuda (this model is far too large for a CPU)
#   SAMPLES, TEMP   sample grid size and temperature (default 64, 0.7)
#   TRAIN_FLAGS     extra glow-train arguments
#   EMA        default --ema: sample and score with the EMA weights (EMA= to not)
#   JOBS       glow-prep decoding threads (default: its own choice)
#
# The seed trained this model on one GPU with 64 images per step, which is what
# glow-train does here; data-parallel training over several GPUs comes later.

SELF     := $(lastword $(MAKEFILE_LIST))
BUILD    ?= build
BIN      := $(BUILD)/bin
CONFIG   ?= configs/glow-64x64-imagenet.yml
OUT      ?= out/imagenet64
META     ?=
TEST_META ?=
TEST_DATA ?= $(DATA)
SPLIT    ?= 0.95
SIZE     ?= 64
DEVICE   ?= cuda
SAMPLES  ?= 64
TEMP     ?= 0.7
TRAIN_FLAGS ?=
EMA      ?= --ema
JOBS     ?=

SHARDS   := $(OUT)/shards
RUN      := $(OUT)/run
CKPT     := $(RUN)/checkpoint.safetensors
PREP     := $(BIN)/glow-prep --crop --size $(SIZE) $(if $(JOBS),-j $(JOBS))
INPUT    := $(if $(META),'$(META)','$(DATA)')

ifeq ($(filter help,$(MAKECMDGOALS)),)
ifeq ($(strip $(DATA)),)
$(error DATA is not set: point it at your copy of the ImageNet images, e.g. make -f pipelines/imagenet64.mk DATA=/data/imagenet/train META=/data/imagenet/train_meta.csv (make -f pipelines/imagenet64.mk help lists the settings))
endif
endif

.PHONY: all data train sample score help
all: sample score
	@echo "imagenet64: checkpoint $(CKPT), samples $(OUT)/samples.png"
	@cat $(OUT)/bpd.txt

data: $(SHARDS)/.done
train: $(RUN)/.done
sample: $(OUT)/samples.png
score: $(OUT)/bpd.txt

$(SHARDS)/.done:
	@test -d '$(DATA)' || { echo "imagenet64.mk: DATA=$(DATA): no such folder" >&2; exit 1; }
	@test -z '$(META)' || test -f '$(META)' || { echo "imagenet64.mk: META=$(META): no such file" >&2; exit 1; }
	@test -z '$(TEST_META)' || test -f '$(TEST_META)' || { echo "imagenet64.mk: TEST_META=$(TEST_META): no such file" >&2; exit 1; }
ifeq ($(strip $(TEST_META)),)
	$(PREP) --root '$(DATA)' --shuffle --seed 0 --split $(SPLIT) -o $(SHARDS) $(INPUT)
else
	$(PREP) --root '$(DATA)' -o $(SHARDS)/train $(INPUT)
	$(PREP) --root '$(TEST_DATA)' -o $(SHARDS)/val '$(TEST_META)'
endif
	@touch $@

# A checkpoint left by an interrupted run is continued, not started over; a run
# stopped before its first checkpoint is moved aside (--force: RUN.old-N) and begun again.
$(RUN)/.done: $(SHARDS)/.done
	if [ -f $(CKPT) ]; then \
	  $(BIN)/glow-train --resume $(RUN) $(SHARDS)/train --val $(SHARDS)/val --device $(DEVICE) $(TRAIN_FLAGS); \
	else \
	  $(BIN)/glow-train -c $(CONFIG) -o $(RUN) --force $(SHARDS)/train --val $(SHARDS)/val --device $(DEVICE) $(TRAIN_FLAGS); \
	fi
	@touch $@

$(OUT)/samples.png: $(RUN)/.done
	$(BIN)/glow-sample $(CKPT) $(EMA) -n $(SAMPLES) -t $(TEMP) --device $(DEVICE) | $(BIN)/pngcat -o $@

$(OUT)/bpd.txt: $(RUN)/.done
	$(BIN)/glow-bpd $(CKPT) $(EMA) --device $(DEVICE) $(SHARDS)/val >$@.tmp && mv $@.tmp $@

help:
	@sed -n '1,/^$$/p' $(SELF) | sed -n 's/^# \{0,1\}//p'
