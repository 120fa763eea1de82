/* The cuBLAS functions of the CUDA backend, loaded on first use instead of at
 * program start. Linking libcublas directly maps it (and libcublasLt) into every
 * tool and costs about 200 MiB of resident memory at start-up, relocations and
 * static initialisers, before main runs, even for --device cpu; through these
 * forwarding functions a process pays it only when it creates a cuBLAS handle
 * (the CUDA backend does, cuda_context.cu). Built with CUDA=1 only: the emulator
 * (test/emu) provides these functions itself.
 *
 * Each one resolves its target by name from libcublas.so.<major of the headers>
 * (RTLD_NOW | RTLD_LOCAL) and calls it. When the library cannot be loaded,
 * cublasCreate_v2 fails with CUBLAS_STATUS_NOT_INITIALIZED, which the backend
 * reports like any other cuBLAS failure; the others are only called with a
 * handle that cublasCreate_v2 made. */
#include <cublas_v2.h>
#include <dlfcn.h>
#include <stddef.h>

#define LAZY_STR2(x) #x
#define LAZY_STR(x) LAZY_STR2(x)

static void *lib;

static void *sym(const char *name)
{
    if (!lib)
        lib = dlopen("libcublas.so." LAZY_STR(CUBLAS_VER_MAJOR), RTLD_NOW | RTLD_LOCAL);
    return lib ? dlsym(lib, name) : NULL;
}

/* fn: the function of that name in libcublas, looked up once */
#define LAZY_FN(ret, name, params)                  \
    typedef ret(*name##_fn) params;                 \
    static name##_fn name##_get(void)               \
    {                                               \
        static name##_fn f;                         \
        if (!f)                                     \
            *(void **)&f = sym(#name);              \
        return f;                                   \
    }

LAZY_FN(cublasStatus_t, cublasCreate_v2, (cublasHandle_t *))
LAZY_FN(cublasStatus_t, cublasDestroy_v2, (cublasHandle_t))
LAZY_FN(cublasStatus_t, cublasSetStream_v2, (cublasHandle_t, cudaStream_t))
LAZY_FN(cublasStatus_t, cublasSetMathMode, (cublasHandle_t, cublasMath_t))
LAZY_FN(cublasStatus_t, cublasSetPointerMode_v2, (cublasHandle_t, cublasPointerMode_t))
LAZY_FN(const char *, cublasGetStatusString, (cublasStatus_t))
LAZY_FN(cublasStatus_t, cublasSgemm_v2,
        (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const float *,
         const float *, int, const float *, int, const float *, float *, int))
LAZY_FN(cublasStatus_t, cublasGemmEx,
        (cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
         const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
         cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t))

cublasStatus_t cublasCreate_v2(cublasHandle_t *handle)
{
    cublasCreate_v2_fn f = cublasCreate_v2_get();
    return f ? f(handle) : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) { return cublasDestroy_v2_get()(handle); }

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream)
{
    return cublasSetStream_v2_get()(handle, stream);
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    return cublasSetMathMode_get()(handle, mode);
}

cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode)
{
    return cublasSetPointerMode_v2_get()(handle, mode);
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    cublasGetStatusString_fn f = cublasGetStatusString_get();
    return f ? f(status) : "libcublas could not be loaded";
}

cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa,
                              cublasOperation_t transb, int m, int n, int k, const float *alpha,
                              const float *A, int lda, const float *B, int ldb, const float *beta,
                              float *C, int ldc)
{
    return cublasSgemm_v2_get()(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C,
                                ldc);
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo)
{
    return cublasGemmEx_get()(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb,
                              beta, C, Ctype, ldc, computeType, algo);
}
