// The CUDA emulator's library_types.h: the data types of cuBLAS (the real values).
#ifndef EMU_LIBRARY_TYPES_H
#define EMU_LIBRARY_TYPES_H

typedef enum cudaDataType_t {
    CUDA_R_16F = 2,
    CUDA_R_32F = 0,
    CUDA_R_64F = 1,
    CUDA_R_16BF = 14,
    CUDA_R_8I = 3,
    CUDA_R_32I = 10
} cudaDataType;
typedef cudaDataType cudaDataType_t;

#endif
