# Glow in C and CUDA. Plain make: `make` builds every tool into build/bin,
# `make test` runs the whole suite, `make help` lists the targets.

BUILD    ?= build
# make gpu-bundle EMU=1 (docs/gpu-check.md): the same bundle, its programs built
# against the CUDA emulator (test/emu/emu.mk) in the emulator's build folder
EMU      ?= 0
ifeq ($(EMU),1)
  override BUILD := $(or $(EMU_BUILD),build-emu)
  override CUDA  := emu
endif
CC       ?= gcc
NVCC     ?= nvcc
CUDA_HOME ?= /usr/local/cuda

# CUDA is built when nvcc and cuDNN are present; CUDA=0 / CUDA=1 force it.
ifeq ($(origin CUDA),undefined)
  CUDA := $(shell command -v $(NVCC) >/dev/null 2>&1 && \
            { test -f $(CUDA_HOME)/include/cudnn.h || test -f /usr/include/cudnn.h || \
              test -f /usr/include/x86_64-linux-gnu/cudnn.h; } && echo 1 || echo 0)
endif

# MPI (several training processes, docs/distributed.md) is built when its compiler
# wrapper or pkg-config file is found (Open MPI: openmpi-bin, libopenmpi-dev);
# MPI=0 / MPI=1 force it. NCCL (GPU all-reduce) is built with CUDA when nccl.h and
# libnccl are found; NCCL=0 / NCCL=1 force it.
ifeq ($(origin MPI),undefined)
  MPI := $(shell { pkg-config --exists ompi-c 2>/dev/null || pkg-config --exists mpich 2>/dev/null || \
            command -v mpicc >/dev/null 2>&1; } && echo 1 || echo 0)
endif
ifeq ($(origin NCCL),undefined)
  NCCL := $(shell [ "$(CUDA)" = 1 ] && \
            { { test -f $(CUDA_HOME)/include/nccl.h && ls $(CUDA_HOME)/lib64/libnccl.so* >/dev/null 2>&1; } || \
              { test -f /usr/include/nccl.h && ls /usr/lib/x86_64-linux-gnu/libnccl.so* >/dev/null 2>&1; }; } && \
            echo 1 || echo 0)
endif

OPT      ?= -O2 -march=x86-64-v3
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fopenmp -Ilibcommon -I. -MMD -MP
LDLIBS   := -lpng -ljpeg -lz -lyaml -lcjson -ldnnl -lm -lpthread
LDFLAGS  += -fopenmp

# cpu/cpu_optim.c's element-wise updates vectorise only without errno (its comment)
$(BUILD)/obj/cpu/cpu_optim.o: CFLAGS += -fno-math-errno

SAN ?=
ifneq ($(SAN),)
  CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=$(SAN)
endif

ifeq ($(MPI),1)
  MPI_PC    := $(shell pkg-config --exists ompi-c 2>/dev/null && echo ompi-c || \
                 { pkg-config --exists mpich 2>/dev/null && echo mpich; })
  MPI_CFLAGS := $(if $(MPI_PC),$(shell pkg-config --cflags $(MPI_PC)),$(shell mpicc --showme:compile 2>/dev/null))
  MPI_LIBS   := $(if $(MPI_PC),$(shell pkg-config --libs $(MPI_PC)),$(shell mpicc --showme:link 2>/dev/null))
  CFLAGS    += -DGLOW_HAVE_MPI=1 $(MPI_CFLAGS)
  LDLIBS    += $(MPI_LIBS)
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
  ifneq ($(NCCL),1)
    CUDA_SRC := $(filter-out cuda/cuda_nccl.cu,$(CUDA_SRC))
  endif
  # cuBLAS is loaded when the backend first needs it (cuda/cublas_lazy.c): linked
  # directly, it costs every tool ~200 MiB of resident memory at start-up
  CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/obj/%.o) $(BUILD)/obj/cuda/cublas_lazy.o
  CUDA_LIB  := $(BUILD)/libglowcuda.a
  CFLAGS    += -DGLOW_HAVE_CUDA=1
  LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcudart -ldl -lstdc++
  ifeq ($(NCCL),1)
    CFLAGS    += -DGLOW_HAVE_NCCL=1
    LDLIBS    += -lnccl
  endif
else
  NCCL := 0
endif

$(BUILD)/obj/cuda/cublas_lazy.o: CFLAGS += -I$(CUDA_HOME)/include

.PHONY: all test unit bats doc-test refcheck check-asan deps demo clean help install uninstall deb deb-check man-check bench-model gpu-check gpu-bundle bench bench-deps FORCE \
        fuzz fuzz-build fuzz-deps fuzz-torch-pickle
# Objects of tools and tests are intermediate files to make; keep them.
.SECONDARY:
all: $(TOOLS) $(UNITS) $(BUILD)/share/glow/configs

# The tools find configs by name in BINDIR/../share/glow/configs
# (libcommon/config/config_find.h): in the build folder a link to configs/.
$(BUILD)/share/glow/configs:
	@mkdir -p $(dir $@)
	ln -sfn $(CURDIR)/configs $@

# The compilers and flags an object was built with, in a file rewritten only when
# they change, and a prerequisite of every object: a change of flags (NCCL found,
# another OPT, an emulator knob) rebuilds what it affects instead of leaving
# objects of the old flags in a build folder.
FLAGS_STAMP := $(BUILD)/gen/flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@printf '%s\n' '$(subst ','\'',$(CC) $(CFLAGS) | $(CXX) $(EMU_CXXFLAGS) | $(NVCC) $(NVCCFLAGS))' >$@.new; \
	  if cmp -s $@.new $@; then rm -f $@.new; else mv $@.new $@; fi

# CUDA=emu: the CUDA backend on the emulated GPU (make emu-check; test/emu/emu.mk)
include test/emu/emu.mk

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP)
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

$(BUILD)/obj/%.o: %.cu $(FLAGS_STAMP)
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

# The commands of README.md, docs/*.md, the man pages and every --help
# (docs/doc-tests.md): run against small data, or syntax-checked.
doc-test: $(TOOLS) $(BUILD)/test/test_image
	@BUILD=$(BUILD) test/run.sh doc

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
bench: all $(BUILD)/bench/model_bench $(BUILD)/bench/conv_peak $(BUILD)/bench/conv_ops $(BUILD)/bench/maxrss \
       $(BUILD)/bench/mem_plan
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
# carry there (at most 64 MiB); with MPI, Open MPI's mpirun, plug-ins and help texts
# besides (mpi/). make gpu-check, there: scripts/gpu-check.sh.
# `make gpu-bundle EMU=1` builds the same bundle with the CUDA backend linked
# against the emulator (BUILD and CUDA set at the top, so GPU_BUNDLE is
# build-emu/gpu-bundle); gpu-bundle.sh then carries any library of this tree and
# records emu=1 in BUILD-INFO, which makes gpu-check.sh accept a machine without
# nvidia-smi (the emulated rehearsal, docs/gpu-check.md).
GPU_BUNDLE ?= $(BUILD)/gpu-bundle
GB_STAGE   := $(GPU_BUNDLE)-stage
GB_TOOLS   := glow-train glow-sample glow-bpd glow-prep glow-ckpt pngcat
GB_TESTS   := test_backend_cuda test_backend_cuda_ops test_cuda_train test_refcheck test_comm
GB_BENCH   := gpu_bench comm_bench
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
	@[ "$(CUDA)" = 1 ] || [ "$(EMU)" = 1 ] || { echo "gpu-bundle: this build has no CUDA backend (CUDA=$(CUDA)): nvcc and cuDNN are needed (or EMU=1: against the emulator)"; exit 1; }
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

# Fuzzing (test/fuzz/README.md): libFuzzer harnesses of the readers of untrusted
# files, built with clang, ASan and UBSan in build-fuzz/, each run FUZZ_SECONDS
# from its seed corpus (test/fuzz/corpus/NAME, written by test/fuzz/seeds.sh).
FUZZ_CC      ?= clang-14
FUZZ_SECONDS ?= 10
FUZZ_BUILD   := build-fuzz
FUZZERS      := shard safetensors png jpeg yaml csv torch_pickle
FUZZ_LIBSRC  := $(wildcard libcommon/base/*.c libcommon/config/*.c libcommon/data/*.c \
                  libcommon/model/*.c libcommon/prep/*.c) libcommon/train/train_state.c
FUZZ_OBJ     := $(FUZZ_LIBSRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -Ilibcommon -I. -MMD -MP \
                -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_BINS    := $(FUZZERS:%=$(FUZZ_BUILD)/fuzz_%)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libfuzzglow.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_BUILD)/libfuzzglow.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_BUILD)/libfuzzglow.a \
	  -lpng -ljpeg -lz -lyaml -lcjson -lm -lpthread -o $@

fuzz-build: $(FUZZ_BINS)

# Every harness for FUZZ_SECONDS from its corpus (new finds go to a scratch copy,
# so the committed corpus stays as it is); a crash fails the target.
fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) test/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZERS)

# The PyTorch reader of glow-ckpt import alone (test/fuzz/fuzz_torch_pickle.c),
# FUZZ_TIME seconds (default 60).
FUZZ_TIME ?= 60
fuzz-torch-pickle: $(FUZZ_BUILD)/fuzz_torch_pickle
	FUZZ_BUILD=$(FUZZ_BUILD) test/fuzz/run.sh $(FUZZ_TIME) torch_pickle

# clang and its libFuzzer runtime (not part of make deps).
FUZZ_PACKAGES := clang-14 libclang-rt-14-dev
fuzz-deps:
	@missing=$$(for p in $(FUZZ_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

-include $(FUZZ_OBJ:.o=.d)

# Debian packages the project needs (idempotent; quiet when all are present).
DEB_PACKAGES := build-essential pkg-config libpng-dev libjpeg62-turbo-dev zlib1g-dev \
                libyaml-dev libcjson-dev libdnnl-dev bats python3 python3-numpy \
                dataset-fashion-mnist openmpi-bin libopenmpi-dev gnuplot-nox \
                dpkg-dev fakeroot groff-base man-db
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

# ---- installing (README "Installing") ----
# make install [PREFIX=/usr/local] [DESTDIR=staging root]: the tools, the man
# pages (man/), the configs and pipelines under share/glow, the docs and the bash
# completion; the list of what was installed goes to share/glow/MANIFEST, which
# make uninstall (same PREFIX and DESTDIR) removes, file by file, then the
# folders install made when they are empty. No library is installed: the tools
# are linked with the project's static libraries.
PREFIX     ?= /usr/local
DESTDIR    ?=
INSTALL_ENV = BUILD=$(BUILD) PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' GLOW_VERSION='$(GLOW_VERSION)'
install: $(TOOLS)
	$(INSTALL_ENV) scripts/install.sh install $(TOOLS:$(BUILD)/bin/%=%)
uninstall:
	$(INSTALL_ENV) scripts/install.sh uninstall

# make deb: a Debian package of this build ($(BUILD)/glow-tools_VERSION_ARCH.deb)
# made with dpkg-deb from a staged install under /usr; its Depends come from
# dpkg-shlibdeps on the linked libraries. make deb-check installs it, runs
# glow-train --help and a tiny training from another folder, and removes it:
# with dpkg -i/-r on the system when run as root with DEB_CHECK=system (CI),
# otherwise into a private dpkg root (dpkg --root).
DEB_CHECK ?= private
deb: $(TOOLS)
	BUILD=$(BUILD) GLOW_VERSION='$(GLOW_VERSION)' scripts/deb.sh $(TOOLS:$(BUILD)/bin/%=%)
deb-check: deb
	BUILD=$(BUILD) scripts/deb-check.sh $(DEB_CHECK)

# The man pages: groff's and man's warnings, and --help against the page both ways.
man-check: $(TOOLS)
	BUILD=$(BUILD) scripts/man-check.sh

demo: all
	$(MAKE) -f pipelines/fashion-mnist.mk BUILD=$(BUILD)

clean:
	rm -rf $(BUILD) build-asan $(EMU_BUILD) $(EMU_ASAN_BUILD) $(FUZZ_BUILD)

help:
	@echo "make            build every tool into $(BUILD)/bin (CUDA=$(CUDA) MPI=$(MPI) NCCL=$(NCCL))"
	@echo "make test       the whole suite (unit, reference cases, bats)"
	@echo "make doc-test   the commands of README.md, docs/, man pages and --help (docs/doc-tests.md)"
	@echo "make refcheck   REF=DIR DEVICE=cpu|cuda: every reference case under DIR"
	@echo "make check-asan the suite under ASan + UBSan"
	@echo "make fuzz       every fuzz harness FUZZ_SECONDS (default 10) from its corpus"
	@echo "make gpu-bundle what gpu-check needs on a GPU machine, in $(GPU_BUNDLE) (carry it there)"
	@echo "make emu-check  the CUDA backend on the emulated GPU (emu-check-asan: with ASan)"
	@echo "make gpu-check  on a GPU machine: CUDA tests, reference cases, benchmark"
	@echo "make deps       install the Debian packages"
	@echo "make demo       the Fashion-MNIST pipeline"
	@echo "make install    the tools, man pages, configs, pipelines, docs, completion (PREFIX=$(PREFIX) DESTDIR=)"
	@echo "make uninstall  removes what make install installed (same PREFIX and DESTDIR)"
	@echo "make deb        a Debian package of this build; make deb-check installs, tries and removes it"
	@echo "make man-check  the man pages: groff/man warnings, options against --help"
	@echo "make bench      our tools against PyTorch (make bench-deps first)"
	@echo "make fuzz-torch-pickle  libFuzzer on the PyTorch reader (clang; FUZZ_TIME=60)"

-include $(COMMON_OBJ:.o=.d) $(CUDA_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/obj/%.d) $(UNIT_SRC:%.c=$(BUILD)/obj/%.d) \
         $(wildcard $(BUILD)/obj/bench/*.d)
