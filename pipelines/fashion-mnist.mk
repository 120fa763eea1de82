# The Fashion-MNIST pipeline: pack Debian's dataset-fashion-mnist into shard
# files (padded to 32x32) and render a grid of the training images.
# Run by `make demo`; OUT=DIR chooses where results go (default out/fashion-mnist).

BUILD ?= build
BIN   := $(BUILD)/bin
OUT   ?= out/fashion-mnist
FMNIST ?= /usr/share/datasets/fashion-mnist

.PHONY: all data
all: $(OUT)/train.png
	@echo "fashion-mnist: $$(ls $(OUT)/train | wc -l) train shard(s), $$(ls $(OUT)/test | wc -l) test shard(s) in $(OUT); grid in $(OUT)/train.png"

$(FMNIST)/train-images-idx3-ubyte.gz:
	@dpkg-query -W -f='$${Status}' dataset-fashion-mnist 2>/dev/null | grep -q 'install ok installed' || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null; }

$(OUT)/train/.done: $(FMNIST)/train-images-idx3-ubyte.gz
	$(BIN)/glow-prep --pad 2 -o $(OUT)/train $(FMNIST)/train-images-idx3-ubyte.gz
	@touch $@

$(OUT)/test/.done: $(FMNIST)/train-images-idx3-ubyte.gz
	$(BIN)/glow-prep --pad 2 -o $(OUT)/test $(FMNIST)/t10k-images-idx3-ubyte.gz
	@touch $@

$(OUT)/train.png: $(OUT)/train/.done $(OUT)/test/.done
	cat $(OUT)/train/*.glow | $(BIN)/pngcat --limit 64 -o $@
