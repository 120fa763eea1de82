# The CUDA emulator (docs/cuda-emulation.md), included by the Makefile.
#
#   make emu-check        the CUDA tests and reference cases on the emulated GPU
#   make emu-check-asan   the same under AddressSanitizer and UndefinedBehaviorSanitizer
#
# Both build the library with GLOW_HAVE_CUDA=1 in their own folder, the CUDA
# sources rewritten by rewrite.py and compiled by g++ against test/emu/include, and
# the emulator's objects in place of cudart, cuBLAS and cuDNN.

EMU_BUILD      ?= build-emu
EMU_ASAN_BUILD ?= build-emu-asan
EMU_SUBMAKE     = $(MAKE) --no-print-directory

.PHONY: emu-build emu-build-asan emu-check emu-check-asan emu-units

emu-build:
	@$(EMU_SUBMAKE) BUILD=$(EMU_BUILD) CUDA=emu emu-units

emu-build-asan:
	@$(EMU_SUBMAKE) BUILD=$(EMU_ASAN_BUILD) CUDA=emu SAN=address,undefined OPT='-O1 -march=x86-64-v3' emu-units

emu-check: emu-build
	@EMU_BUILD=$(EMU_BUILD) test/run.sh emu

emu-check-asan: emu-build-asan
	@EMU_ASAN_BUILD=$(EMU_ASAN_BUILD) test/run.sh emu-asan

ifeq ($(CUDA),emu)
CXX         ?= g++
EMU_DIR     := test/emu
EMU_GEN     := $(BUILD)/emu-src
EMU_BASE     = -g -std=c++17 -Wall -Wextra -Werror -I$(EMU_DIR)/include -I$(EMU_DIR) -Ilibcommon \
               -I. -MMD -MP
EMU_CXXFLAGS = $(OPT) $(EMU_BASE) $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer \
               -fno-sanitize-recover=all)

EMU_RT_SRC  := $(wildcard $(EMU_DIR)/emu_*.cpp)
EMU_RT_OBJ  := $(EMU_RT_SRC:%.cpp=$(BUILD)/obj/%.o)
# NCCL: the stand-in of emu_nccl.cpp (over MPI when the build has MPI), so the NCCL
# communicator cuda/cuda_nccl.cu is built and run here too (NCCL=0 leaves it out)
ifneq ($(origin NCCL),command line)
  NCCL      := 1
endif
EMU_CU_SRC  := $(wildcard cuda/*.cu)
ifeq ($(NCCL),1)
  CFLAGS    += -DGLOW_HAVE_NCCL=1
else
  EMU_CU_SRC := $(filter-out cuda/cuda_nccl.cu,$(EMU_CU_SRC))
endif
EMU_MPI_LIBS := $(if $(filter 1,$(MPI)),$(MPI_LIBS))
EMU_CU_OBJ  := $(EMU_CU_SRC:cuda/%.cu=$(BUILD)/obj/emu-cuda/%.o)
EMU_CU_HDR  := $(patsubst cuda/%,$(EMU_GEN)/cuda/%,$(wildcard cuda/*.h cuda/*.cuh))
EMU_TESTS   := test_backend_cuda test_backend_cuda_ops test_backend_cuda_edge test_cuda_train \
               test_refcheck
CUDA_OBJ    := $(EMU_CU_OBJ) $(EMU_RT_OBJ)
CUDA_LIB    := $(BUILD)/libglowcuda.a
CFLAGS      += -DGLOW_HAVE_CUDA=1
LDLIBS      += -lstdc++

# the tools too in the plain emulator build (test/run.sh emu runs the latent tools
# and glow-train on the emulated device)
emu-units: $(EMU_TESTS:%=$(BUILD)/test/%) $(BUILD)/test/test_emu $(BUILD)/test/test_emu_nccl \
    $(if $(SAN),,$(TOOLS) $(BUILD)/test/test_comm)

# rewritten copies of cuda/*: line numbers and file names kept (#line)
$(EMU_GEN)/cuda/%: cuda/% $(EMU_DIR)/rewrite.py
	@python3 $(EMU_DIR)/rewrite.py $(dir $@) $<
$(EMU_GEN)/test/%: $(EMU_DIR)/% $(EMU_DIR)/rewrite.py
	@python3 $(EMU_DIR)/rewrite.py $(dir $@) $<

$(BUILD)/obj/emu-cuda/%.o: $(EMU_GEN)/cuda/%.cu $(FLAGS_STAMP) | $(EMU_CU_HDR)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -include cuda_runtime.h -c $< -o $@

# the stand-ins' naive arithmetic is the slow part of a sanitizer run: optimised and
# not instrumented there (every buffer the backend hands them is checked at the call)
$(BUILD)/obj/$(EMU_DIR)/emu_cudnn.o $(BUILD)/obj/$(EMU_DIR)/emu_cublas.o: \
    EMU_CXXFLAGS = -O2 $(filter -march=%,$(OPT)) $(EMU_BASE)

# the NCCL stand-in talks MPI between the ranks when the build has it
ifeq ($(MPI),1)
$(BUILD)/obj/$(EMU_DIR)/emu_nccl.o: EMU_CXXFLAGS += -DGLOW_HAVE_MPI=1 $(MPI_CFLAGS)
endif

$(BUILD)/obj/$(EMU_DIR)/%.o: $(EMU_DIR)/%.cpp $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -c $< -o $@

# the emulator's own tests, CUDA code too
$(BUILD)/obj/emu-test/%.o: $(EMU_GEN)/test/%.cu $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Itest/unit -x c++ -include cuda_runtime.h -c $< -o $@

$(BUILD)/test/test_emu: $(BUILD)/obj/emu-test/test_emu.o $(EMU_RT_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMU_MPI_LIBS) -lm -lpthread -o $@

# the NCCL stand-in's own tests: alone (one rank) and under mpirun (test/emu/mpi.bats)
$(BUILD)/obj/emu-test/test_emu_nccl.o: EMU_CXXFLAGS += $(if $(filter 1,$(MPI)),-DGLOW_HAVE_MPI=1 $(MPI_CFLAGS))
$(BUILD)/test/test_emu_nccl: $(BUILD)/obj/emu-test/test_emu_nccl.o $(EMU_RT_OBJ)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ $(EMU_MPI_LIBS) -lm -lpthread -o $@

-include $(EMU_CU_OBJ:.o=.d) $(EMU_RT_OBJ:.o=.d) $(BUILD)/obj/emu-test/test_emu.d \
         $(BUILD)/obj/emu-test/test_emu_nccl.d
endif
