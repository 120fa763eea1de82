# Glow in C and CUDA. Plain make: `make` builds every tool into build/bin,
# `make test` runs the whole suite, `make help` lists the targets.

BUILD    ?= build
CC       ?= gcc
NVCC     ?= nvcc
CUDA_HOME ?= /usr/local/cuda

# CUDA is built when nvcc and cuDNN are present; CUDA=0 / CUDA=1 force it.
ifeq ($(origin CUDA),undefined)
  CUDA := $(shell command -v $(NVCC) >/dev/null 2>&1 && \
            { test -f $(CUDA_HOME)/include/cudnn.h || test -f /usr/include/cudnn.h || \
              test -f /usr/include/x86_64-linux-gnu/cudnn.h; } && echo 1 || echo 0)
endif

OPT      ?= -O2 -march=x86-64-v3
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Ilibcommon -I. -MMD -MP
LDLIBS   := -lpng -ljpeg -lz -lyaml -lcjson -ldnnl -lm -lpthread
LDFLAGS  += -fopenmp

SAN ?=
ifneq ($(SAN),)
  CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=$(SAN)
endif

COMMON_SRC := $(wildcard libcommon/*/*.c) $(wildcard cpu/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
TOOL_SRC   := $(wildcard tools/*.c)
TOOLS      := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
UNIT_SRC   := $(wildcard test/unit/test_*.c)
UNITS      := $(UNIT_SRC:test/unit/%.c=$(BUILD)/test/%)
LIB        := $(BUILD)/libglow.a

ifeq ($(CUDA),1)
  NVCCFLAGS ?= -O3 -std=c++17 --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
               -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
               -gencode arch=compute_90,code=compute_90 -Ilibcommon -I. -lineinfo
  CUDA_SRC  := $(wildcard cuda/*.cu)
  # cuBLAS is loaded when the backend first needs it (cuda/cublas_lazy.c): linked
  # directly, it costs every tool ~200 MiB of resident memory at start-up
  CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o) $(BUILD)/obj/cuda/cublas_lazy.o
  CUDA_LIB  := $(BUILD)/libglowcuda.a
  CFLAGS    += -DGLOW_HAVE_CUDA=1
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcudart -ldl -lstdc++
endif

$(BUILD)/obj/cuda/cublas_lazy.o: CFLAGS += -I$(CUDA_HOME)/include

.PHONY: all test unit bats refcheck check-asan deps demo clean help bench-model gpu-check gpu-bundle bench bench-deps fuzz-torch-pickle FORCE
# Objects of tools and tests are intermediate files to make; keep them.
.SECONDARY:
all: $(TOOLS) $(UNITS)

# CUDA=emu: the CUDA backend on the emulated GPU (make emu-check; test/emu/emu.mk)
include test/emu/emu.mk

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The version --version prints (scripts/version.sh: git describe, or VERSION),
# in a header rewritten only when it changes, so only version.o is rebuilt.
GLOW_VERSION := $(shell scripts/version.sh)
VERSION_H    := $(BUILD)/gen/glow_version.h
$(VERSION_H): FORCE
	@mkdir -p $(dir $@)
	@printf '#define GLOW_VERSION "%s"\n' '$(GLOW_VERSION)' >$@.new; \
	  if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi
$(BUILD)/obj/libcommon/tool/version.o: $(VERSION_H)
$(BUILD)/obj/libcommon/tool/version.o: CFLAGS += -I$(BUILD)/gen

# The tools and bench programs restart themselves with a passive OpenMP wait
# policy (libcommon/tool/tool.h); the unit tests and the reference cases run with
# it too (test/run.sh, make refcheck), unless the environment chose a policy.
OMP_ENV := $(if $(OMP_WAIT_POLICY)$(GOMP_SPINCOUNT),,OMP_WAIT_POLICY=passive)

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CUDA_LIB): $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/obj/tools/%.o $(LIB) $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< -Wl,--start-group $(LIB) $(CUDA_LIB) -Wl,--end-group $(LDLIBS) -o $@

$(BUILD)/test/%: $(BUILD)/obj/test/unit/%.o $(LIB) $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< -Wl,--start-group $(LIB) $(CUDA_LIB) -Wl,--end-group $(LDLIBS) -o $@

# The whole suite: C unit tests, the reference cases, the Bats tests of every
# tool, then the CUDA backend on the emulated GPU (plain and under ASan + UBSan;
# test/emu/emu.mk). test/run.sh prints one summary line "N passed, N failed".
test: all emu-build emu-build-asan
	@BUILD=$(BUILD) test/run.sh

unit: $(UNITS)
	@BUILD=$(BUILD) test/run.sh unit

bats: $(TOOLS)
	@BUILD=$(BUILD) test/run.sh bats

# Every reference case found under REF (a folder of case folders, or one case).
REF    ?= ../shared/reference
DEVICE ?= cpu
refcheck: all
	$(OMP_ENV) $(BUILD)/test/test_refcheck --device $(DEVICE) $(REF)

# Model speed (ms/image, conv GFLOP/s) for the benchmark configs; BENCH=A128|A512|B.
BENCH ?=
$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB) $(CUDA_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $< -Wl,--start-group $(LIB) $(CUDA_LIB) -Wl,--end-group $(LDLIBS) -o $@

bench-model: $(BUILD)/bench/model_bench
	$(BUILD)/bench/model_bench $(BENCH)

# Our tools against a PyTorch Glow of the same model (bench/README.md): about
# 7 minutes, plus 9 for the 8-minute quality run unless BENCH_SKIP_QUALITY=1.
bench: all $(BUILD)/bench/model_bench $(BUILD)/bench/conv_peak $(BUILD)/bench/conv_ops $(BUILD)/bench/maxrss
	BUILD=$(BUILD) /usr/bin/python3 bench/run_bench.py

# PyTorch for make bench (large; not part of make deps).
bench-deps:
	@dpkg-query -W -f='$${Status}\n' python3-torch 2>/dev/null | grep -q '^install ok installed' || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq python3-torch >/dev/null; }

# ---- the GPU machine (docs/gpu-check.md, ../shared/gpu.md) ----
# make gpu-bundle, here: the programs gpu-check runs, linked again with their debug
# information stripped (symbols and the device code's -lineinfo line tables kept)
# and an rpath to the bundle's lib/, plus the libraries such a machine lacks, the
# reference cases, BUILD-INFO and MANIFEST.tsv, in $(GPU_BUNDLE): the one path to
# carry there (at most 64 MiB). make gpu-check, there: scripts/gpu-check.sh.
# HOOK (the CUDA emulator, test/emu): `make gpu-bundle EMU=1` is to build the same
# bundle with the CUDA backend linked against the emulator. The emulator's Makefile
# part sets BUILD (a folder of its own, so GPU_BUNDLE follows) and LDLIBS for
# EMU=1; the rules below take both as they are, and gpu-bundle.sh then carries the
# emulator's libraries (those under this tree) and records emu=1 in BUILD-INFO,
# which makes gpu-check.sh accept a machine without nvidia-smi.
GPU_BUNDLE ?= $(BUILD)/gpu-bundle
EMU        ?= 0
GB_STAGE   := $(GPU_BUNDLE)-stage
GB_TOOLS   := glow-train glow-sample glow-bpd glow-prep glow-ckpt pngcat
GB_TESTS   := test_backend_cuda test_backend_cuda_ops test_cuda_train test_refcheck
GB_BENCH   := gpu_bench
GB_PROGS   := $(GB_TOOLS:%=$(GB_STAGE)/bin/%) $(GB_TESTS:%=$(GB_STAGE)/test/%) \
              $(GB_BENCH:%=$(GB_STAGE)/bench/%)
comma      := ,
GB_LDFLAGS  = $(LDFLAGS) -Wl,-S -Wl,--disable-new-dtags -Wl,-rpath,'$$ORIGIN/../lib'
GB_LDLIBS   = $(filter-out -Wl$(comma)-rpath$(comma)%,$(LDLIBS))
GB_LINK     = mkdir -p $(dir $@) && \
	$(CC) $(GB_LDFLAGS) $< -Wl,--start-group $(LIB) $(CUDA_LIB) -Wl,--end-group $(GB_LDLIBS) -o $@

$(GB_STAGE)/bin/%: $(BUILD)/obj/tools/%.o $(LIB) $(CUDA_LIB)
	$(GB_LINK)
$(GB_STAGE)/test/%: $(BUILD)/obj/test/unit/%.o $(LIB) $(CUDA_LIB)
	$(GB_LINK)
$(GB_STAGE)/bench/%: $(BUILD)/obj/bench/%.o $(LIB) $(CUDA_LIB)
	$(GB_LINK)

gpu-bundle: $(GB_PROGS)
	@[ "$(CUDA)" = 1 ] || { echo "gpu-bundle: this build has no CUDA backend (CUDA=$(CUDA)): nvcc and cuDNN are needed"; exit 1; }
	GPU_BUNDLE=$(GPU_BUNDLE) GPU_BUNDLE_STAGE=$(GB_STAGE) GPU_BUNDLE_EMU=$(EMU) REF=$(REF) \
	  CUDA_HOME=$(CUDA_HOME) scripts/gpu-bundle.sh

# On a GPU machine: the GPU checks of scripts/gpu-check.sh, from the bundle (or,
# without one, from $(BUILD)); summary in $$OUT/gpu-check.md (default out/gpu-check).
gpu-check:
	BUILD=$(BUILD) GPU_BUNDLE=$(GPU_BUNDLE) scripts/gpu-check.sh

# The suite under AddressSanitizer and UndefinedBehaviorSanitizer, in its own
# build folder. oneDNN's JIT and OpenMP runtime are not instrumented; leaks in
# them are suppressed in test/asan.supp.
check-asan:
	$(MAKE) BUILD=build-asan SAN=address,undefined CUDA=0 OPT=-O1 all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/test/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  BUILD=build-asan GLOW_TEST_ASAN=1 test/run.sh

# libFuzzer harness of the PyTorch reader (test/fuzz/fuzz_torch_pickle.c) with clang:
# FUZZ_TIME seconds (default 60) from the seeds in test/fuzz/corpus/torch_pickle/;
# new inputs go to $(BUILD)/fuzz/corpus-torch_pickle, crashes to $(BUILD)/fuzz/.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Ilibcommon -I. \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_TORCH_SRC := test/fuzz/fuzz_torch_pickle.c libcommon/data/torch_zip.c \
                  libcommon/data/torch_pickle.c libcommon/data/torch_state.c \
                  libcommon/model/import_torch.c libcommon/model/checkpoint.c \
                  libcommon/model/params.c libcommon/config/glow_config.c \
                  libcommon/data/safetensors.c libcommon/base/linalg.c libcommon/base/util.c \
                  libcommon/base/atomic_file.c libcommon/base/path.c
$(BUILD)/fuzz/fuzz_torch_pickle: $(FUZZ_TORCH_SRC) $(wildcard libcommon/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_TORCH_SRC) -lcjson -lz -lm -o $@
fuzz-torch-pickle: $(BUILD)/fuzz/fuzz_torch_pickle
	@mkdir -p $(BUILD)/fuzz/corpus-torch_pickle
	cd $(BUILD)/fuzz && ./fuzz_torch_pickle -max_total_time=$(FUZZ_TIME) -max_len=65536 \
	  -rss_limit_mb=2048 -print_final_stats=1 corpus-torch_pickle $(CURDIR)/test/fuzz/corpus/torch_pickle

# Debian packages the project needs (idempotent; quiet when all are present).
DEB_PACKAGES := build-essential pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev \
                libyaml-dev libcjson-dev libdnnl-dev bats python3 python3-numpy \
                dataset-fashion-mnist
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: all
	$(MAKE) -f pipelines/fashion-mnist.mk BUILD=$(BUILD)

clean:
	rm -rf $(BUILD) build-asan $(EMU_BUILD) $(EMU_ASAN_BUILD)

help:
	@echo "make            build every tool into $(BUILD)/bin (CUDA=$(CUDA))"
	@echo "make test       the whole suite (unit, reference cases, bats)"
	@echo "make refcheck   REF=DIR DEVICE=cpu|cuda: every reference case under DIR"
	@echo "make check-asan the suite under ASan + UBSan"
	@echo "make gpu-bundle what gpu-check needs on a GPU machine, in $(GPU_BUNDLE) (carry it there)"
	@echo "make emu-check  the CUDA backend on the emulated GPU (emu-check-asan: with ASan)"
	@echo "make gpu-check  on a GPU machine: CUDA tests, reference cases, benchmark"
	@echo "make deps       install the Debian packages"
	@echo "make demo       the Fashion-MNIST pipeline"
	@echo "make bench      our tools against PyTorch (make bench-deps first)"
	@echo "make fuzz-torch-pickle  libFuzzer on the PyTorch reader (clang; FUZZ_TIME=60)"

-include $(COMMON_OBJ:.o=.d) $(CUDA_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/obj/%.d) $(UNIT_SRC:%.c=$(BUILD)/obj/%.d) \
         $(wildcard $(BUILD)/obj/bench/*.d)
