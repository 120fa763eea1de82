/* The CUDA emulator's counters, for tests (C and C++; docs/cuda-emulation.md). The
 * emulator counts every launch, library call, copy, synchronisation and allocation
 * from the start of the process; a test reads them before and after the work it
 * measures. Outside the emulator (a build against the real CUDA libraries) the
 * function is not linked: include this header from C, where glow_emu_stats is a weak
 * reference, and test it for NULL ("not the emulator"). */
#ifndef GLOW_EMU_STATS_H
#define GLOW_EMU_STATS_H

enum {
    GLOW_EMU_KERNELS = 0,   /* kernel launches */
    GLOW_EMU_BLOCKS,        /* blocks launched */
    GLOW_EMU_CUBLAS,        /* cuBLAS GEMMs */
    GLOW_EMU_CUDNN,         /* cuDNN convolutions */
    GLOW_EMU_H2D,           /* host-to-device copies */
    GLOW_EMU_D2H,           /* device-to-host copies */
    GLOW_EMU_D2D,           /* device-to-device copies */
    GLOW_EMU_MEMSETS,       /* memsets */
    GLOW_EMU_STREAM_SYNCS,  /* cudaStreamSynchronize */
    GLOW_EMU_DEVICE_SYNCS,  /* cudaDeviceSynchronize */
    GLOW_EMU_MALLOCS,       /* cudaMalloc */
    GLOW_EMU_FREES,         /* cudaFree */
    GLOW_EMU_EVENT_RECORDS, /* cudaEventRecord */
    GLOW_EMU_EVENT_SYNCS,   /* cudaEventSynchronize */
    GLOW_EMU_NSTATS
};

#ifdef __cplusplus
extern "C" {
#endif
/* Copies the first n counters (in the order above) into out; returns how many the
 * emulator has (GLOW_EMU_NSTATS). */
#ifdef __cplusplus
int glow_emu_stats(unsigned long long *out, int n);
#else
int glow_emu_stats(unsigned long long *out, int n) __attribute__((weak));
#endif
#ifdef __cplusplus
}
#endif

#endif
