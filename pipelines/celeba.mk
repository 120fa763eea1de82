# CelebA at 256x256, the seed's GLOW256x256V0 (additive, shuffle) or V1 (affine,
# invconv) model, from your own copy of the images:
#
#   make -f pipelines/celeba.mk DATA=/data/celeba-hq META=/data/celeba-hq/train_meta.csv
#
# packs the images into shard files, trains, draws a sample grid and scores the
# held-out images. Each stage is a file under OUT, so an interrupted run picks up
# where it stopped (training resumes from its last checkpoint).
#
#   DATA       folder of the images (required)
#   META       the seed's meta CSV (',name' header, then 'index,filename' lines,
#              file names relative to DATA); default: every .png/.jpg under DATA
#   TEST_META  a second meta CSV for the held-out set; without it the first
#              SPLIT of the (shuffled) images train and the rest are held out
#   SPLIT      default 0.95
#   VARIANT    v0 (default) or v1: configs/glow-256x256-celeba-VARIANT.yml
#   OUT        default out/celeba; RUN = OUT/run-VARIANT holds the checkpoint
#   DEVICE     default cuda (this model is far too large for a CPU)
#   SAMPLES, TEMP   sample grid size and temperature (default 64, 0.7)
#   TRAIN_FLAGS     extra glow-train arguments
#   EMA        default --ema: sample and score with the EMA weights (EMA= to not)
#
# The seed trained with 8 images on each of 4 GPUs. glow-train runs one process
# on one GPU for now (data-parallel training over several GPUs comes later), so
# this trains with the config's 8 images per step unless TRAIN_FLAGS or the
# config raise it.

SELF     := $(lastword $(MAKEFILE_LIST))
BUILD    ?= build
BIN      := $(BUILD)/bin
VARIANT  ?= v0
CONFIG   ?= configs/glow-256x256-celeba-$(VARIANT).yml
OUT      ?= out/celeba
META     ?=
TEST_META ?=
SPLIT    ?= 0.95
SIZE     ?= 256
DEVICE   ?= cuda
SAMPLES  ?= 64
TEMP     ?= 0.7
TRAIN_FLAGS ?=
EMA      ?= --ema

SHARDS   := $(OUT)/shards
RUN      := $(OUT)/run-$(VARIANT)
CKPT     := $(RUN)/checkpoint.safetensors
PREP     := $(BIN)/glow-prep --crop --size $(SIZE) --root '$(DATA)'
INPUT    := $(if $(META),'$(META)','$(DATA)')

ifeq ($(filter help,$(MAKECMDGOALS)),)
ifeq ($(strip $(DATA)),)
$(error DATA is not set: point it at your copy of the CelebA images, e.g. make -f pipelines/celeba.mk DATA=/data/celeba-hq META=/data/celeba-hq/train_meta.csv (make -f pipelines/celeba.mk help lists the settings))
endif
endif
ifeq ($(filter v0 v1,$(VARIANT)),)
$(error VARIANT=$(VARIANT): expected v0 (additive, shuffle) or v1 (affine, invconv))
endif

.PHONY: all data train sample score help
all: sample score
	@echo "celeba-$(VARIANT): checkpoint $(CKPT), samples $(OUT)/samples-$(VARIANT).png"
	@cat $(OUT)/bpd-$(VARIANT).txt

data: $(SHARDS)/.done
train: $(RUN)/.done
sample: $(OUT)/samples-$(VARIANT).png
score: $(OUT)/bpd-$(VARIANT).txt

$(SHARDS)/.done:
	@test -d '$(DATA)' || { echo "celeba.mk: DATA=$(DATA): no such folder" >&2; exit 1; }
	@test -z '$(META)' || test -f '$(META)' || { echo "celeba.mk: META=$(META): no such file" >&2; exit 1; }
	@test -z '$(TEST_META)' || test -f '$(TEST_META)' || { echo "celeba.mk: TEST_META=$(TEST_META): no such file" >&2; exit 1; }
ifeq ($(strip $(TEST_META)),)
	$(PREP) --shuffle --seed 0 --split $(SPLIT) -o $(SHARDS) $(INPUT)
else
	$(PREP) -o $(SHARDS)/train $(INPUT)
	$(PREP) -o $(SHARDS)/val '$(TEST_META)'
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

$(OUT)/samples-$(VARIANT).png: $(RUN)/.done
	$(BIN)/glow-sample $(CKPT) $(EMA) -n $(SAMPLES) -t $(TEMP) --device $(DEVICE) | $(BIN)/pngcat -o $@

$(OUT)/bpd-$(VARIANT).txt: $(RUN)/.done
	$(BIN)/glow-bpd $(CKPT) $(EMA) --device $(DEVICE) $(SHARDS)/val >$@.tmp && mv $@.tmp $@

help:
	@sed -n '1,/^$$/p' $(SELF) | sed -n 's/^# \{0,1\}//p'
