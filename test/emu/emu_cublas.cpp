// The cuBLAS stand-in: GEMM computed naively (products of the operands as the math
// mode or compute type rounds them, summed in double, rounded once to the output
// type), with cuBLAS's argument checks, queued on the handle's stream.
//
// Operand rounding: pedantic and default math = exact fp32; CUBLAS_TF32_TENSOR_OP_MATH
// or CUBLAS_COMPUTE_32F_FAST_TF32 = tf32; the deprecated CUBLAS_TENSOR_OP_MATH or
// CUBLAS_COMPUTE_32F_FAST_16F = fp16 (overflow to inf above 65504);
// CUBLAS_COMPUTE_32F_FAST_16BF = bf16. beta = 0 never reads C.
#include <cublas_v2.h>

#include <cstdio>
#include <cstring>
#include <set>

#include "emu/numeric.h"
#include "emu_internal.h"

struct cublasContext {
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    cublasPointerMode_t pmode = CUBLAS_POINTER_MODE_HOST;
};

using namespace emu;

namespace {
std::set<cublasHandle_t> &handles()
{
    static std::set<cublasHandle_t> *h = new std::set<cublasHandle_t>;
    return *h;
}

bool live(cublasHandle_t h) { return h && handles().count(h); }

enum class rnd { none, tf32, f16, bf16 };

float round_as(float v, rnd r)
{
    switch (r) {
    case rnd::tf32: return round_tf32(v);
    case rnd::f16: return round_f16(v);
    case rnd::bf16: return round_bf16(v);
    default: return v;
    }
}

size_t type_size(cudaDataType t)
{
    switch (t) {
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    default: return 0;
    }
}

double load(const void *p, cudaDataType t, size_t i)
{
    switch (t) {
    case CUDA_R_16F: return f16_to_f32(((const uint16_t *)p)[i]);
    case CUDA_R_16BF: return bf16_to_f32(((const uint16_t *)p)[i]);
    case CUDA_R_32F: return ((const float *)p)[i];
    default: return ((const double *)p)[i];
    }
}

void store(void *p, cudaDataType t, size_t i, double v)
{
    switch (t) {
    case CUDA_R_16F: ((uint16_t *)p)[i] = f16_bits((float)v); break;
    case CUDA_R_16BF: ((uint16_t *)p)[i] = bf16_bits((float)v); break;
    case CUDA_R_32F: ((float *)p)[i] = (float)v; break;
    default: ((double *)p)[i] = v; break;
    }
}

const char *op_name(cublasOperation_t o) { return o == CUBLAS_OP_N ? "N" : o == CUBLAS_OP_T ? "T" : "C"; }

struct gemm_args {
    cublasOperation_t ta, tb;
    int m, n, k;
    const void *A, *B;
    void *C;
    int lda, ldb, ldc;
    cudaDataType at, bt, ct;
    bool dbl;         // double scalars and accumulation
    rnd r;            // operand rounding
    double alpha, beta;
    const void *alpha_dev, *beta_dev; // pointer mode device: read when it runs
};

void run_gemm(const gemm_args &g)
{
    double alpha = g.alpha, beta = g.beta;
    if (g.alpha_dev) {
        alpha = g.dbl ? *(const double *)g.alpha_dev : *(const float *)g.alpha_dev;
        beta = g.dbl ? *(const double *)g.beta_dev : *(const float *)g.beta_dev;
    }
    const int m = g.m, n = g.n, k = g.k;
    // op(A) is m x k, op(B) is k x n, all column-major
    std::vector<double> a((size_t)m * k), b((size_t)k * n);
    for (int i = 0; i < m; i++)
        for (int l = 0; l < k; l++) {
            size_t idx = g.ta == CUBLAS_OP_N ? (size_t)l * g.lda + i : (size_t)i * g.lda + l;
            double v = load(g.A, g.at, idx);
            a[(size_t)i * k + l] = g.dbl ? v : round_as((float)v, g.r);
        }
    for (int l = 0; l < k; l++)
        for (int j = 0; j < n; j++) {
            size_t idx = g.tb == CUBLAS_OP_N ? (size_t)j * g.ldb + l : (size_t)l * g.ldb + j;
            double v = load(g.B, g.bt, idx);
            b[(size_t)j * k + l] = g.dbl ? v : round_as((float)v, g.r);
        }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            const double *ar = &a[(size_t)i * k], *bc = &b[(size_t)j * k];
            double s = 0;
            for (int l = 0; l < k; l++)
                s += ar[l] * bc[l];
            size_t ci = (size_t)j * g.ldc + i;
            double v = g.dbl ? alpha * s : (double)((float)alpha * (float)s);
            if (beta != 0)
                v = g.dbl ? v + beta * load(g.C, g.ct, ci)
                          : (double)((float)v + (float)beta * (float)load(g.C, g.ct, ci));
            store(g.C, g.ct, ci, v);
        }
}

// Checks shared by both GEMMs; queues the work. Returns the status cuBLAS would.
cublasStatus_t gemm(cublasHandle_t h, const char *call, gemm_args g, const void *alpha,
                    const void *beta)
{
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    for (cublasOperation_t t : {g.ta, g.tb})
        if (t != CUBLAS_OP_N && t != CUBLAS_OP_T && t != CUBLAS_OP_C)
            return CUBLAS_STATUS_INVALID_VALUE;
    const int ar = g.ta == CUBLAS_OP_N ? g.m : g.k, ac = g.ta == CUBLAS_OP_N ? g.k : g.m;
    const int br = g.tb == CUBLAS_OP_N ? g.k : g.n, bc = g.tb == CUBLAS_OP_N ? g.n : g.k;
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.lda < (ar > 1 ? ar : 1) || g.ldb < (br > 1 ? br : 1) ||
        g.ldc < (g.m > 1 ? g.m : 1)) {
        if (config().trace)
            note("%s: invalid value: m=%d n=%d k=%d op(A)=%s op(B)=%s lda=%d ldb=%d ldc=%d",
                 call, g.m, g.n, g.k, op_name(g.ta), op_name(g.tb), g.lda, g.ldb, g.ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (g.m == 0 || g.n == 0)
        return CUBLAS_STATUS_SUCCESS;
    char what[160];
    if (h->pmode == CUBLAS_POINTER_MODE_HOST) {
        snprintf(what, sizeof what, "%s (pointer mode host)", call);
        require_host(alpha, g.dbl ? 8 : 4, what, "alpha");
        require_host(beta, g.dbl ? 8 : 4, what, "beta");
        g.alpha = g.dbl ? *(const double *)alpha : *(const float *)alpha;
        g.beta = g.dbl ? *(const double *)beta : *(const float *)beta;
    } else {
        snprintf(what, sizeof what, "%s (pointer mode device)", call);
        require_device(alpha, g.dbl ? 8 : 4, what, "alpha");
        require_device(beta, g.dbl ? 8 : 4, what, "beta");
        g.alpha_dev = alpha;
        g.beta_dev = beta;
    }
    const size_t as = type_size(g.at), bs = type_size(g.bt), cs = type_size(g.ct);
    if (g.k > 0) {
        require_device(g.A, ((size_t)(ac - 1) * g.lda + ar) * as, call, "A");
        require_device(g.B, ((size_t)(bc - 1) * g.ldb + br) * bs, call, "B");
    }
    require_device(g.C, ((size_t)(g.n - 1) * g.ldc + g.m) * cs, call, "C");
    stream_state *s = stream_of(h->stream);
    if (!s)
        fatal("%s: the handle's stream %p is no longer a stream", call, (void *)h->stream);
    auto o = std::make_unique<op>();
    char buf[200];
    snprintf(buf, sizeof buf, "%s(%s%s, m=%d n=%d k=%d)", call, op_name(g.ta), op_name(g.tb),
             g.m, g.n, g.k);
    o->what = buf;
    o->uses = {(uintptr_t)g.A, (uintptr_t)g.B, (uintptr_t)g.C};
    if (g.k == 0) {
        g.A = g.B = nullptr; // C = beta C
    }
    count(ST_CUBLAS);
    o->run = [g] {
        if (g.k == 0) {
            gemm_args z = g;
            double beta = g.beta_dev ? (g.dbl ? *(const double *)g.beta_dev
                                              : *(const float *)g.beta_dev)
                                     : g.beta;
            for (int j = 0; j < z.n; j++)
                for (int i = 0; i < z.m; i++) {
                    size_t ci = (size_t)j * z.ldc + i;
                    store(z.C, z.ct, ci, beta != 0 ? beta * load(z.C, z.ct, ci) : 0.0);
                }
            return;
        }
        run_gemm(g);
    };
    enqueue(s, std::move(o));
    return CUBLAS_STATUS_SUCCESS;
}

rnd fp32_rounding(cublasMath_t math)
{
    switch ((int)math & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) {
    case CUBLAS_TF32_TENSOR_OP_MATH: return config().tf32_off ? rnd::none : rnd::tf32;
    case CUBLAS_TENSOR_OP_MATH: return rnd::f16;
    default: return rnd::none;
    }
}
} // namespace

extern "C" cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    EMU_API;
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    int n = 0;
    if (inject("cublasCreate") || cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        *handle = nullptr;
        return CUBLAS_STATUS_NOT_INITIALIZED;
    }
    *handle = new cublasContext;
    handles().insert(*handle);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    handles().erase(h);
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetVersion(cublasHandle_t h, int *version)
{
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!version)
        return CUBLAS_STATUS_INVALID_VALUE;
    *version = 130000;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t stream)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream_of(stream))
        fatal("cublasSetStream: %p is not a live stream", (void *)stream);
    h->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetStream(cublasHandle_t h, cudaStream_t *stream)
{
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream)
        return CUBLAS_STATUS_INVALID_VALUE;
    *stream = h->stream;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    int base = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base < 0 || base > 4 || ((int)mode & ~(16 | 7)))
        return CUBLAS_STATUS_INVALID_VALUE;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetMathMode(cublasHandle_t h, cublasMath_t *mode)
{
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode)
        return CUBLAS_STATUS_INVALID_VALUE;
    *mode = h->math;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetPointerMode(cublasHandle_t h, cublasPointerMode_t mode)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE)
        return CUBLAS_STATUS_INVALID_VALUE;
    h->pmode = mode;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetPointerMode(cublasHandle_t h, cublasPointerMode_t *mode)
{
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!mode)
        return CUBLAS_STATUS_INVALID_VALUE;
    *mode = h->pmode;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE:
        return "an unsupported value or parameter was passed to the function";
    case CUBLAS_STATUS_ARCH_MISMATCH:
        return "the function requires an architectural feature absent from the device";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the function failed to launch on the GPU";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the requested functionality is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "the license check failed";
    }
    return "unknown error";
}

extern "C" const char *cublasGetStatusName(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

extern "C" cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t transa,
                                      cublasOperation_t transb, int m, int n, int k,
                                      const float *alpha, const float *A, int lda,
                                      const float *B, int ldb, const float *beta, float *C,
                                      int ldc)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (inject("cublasSgemm"))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    gemm_args g = {transa, transb, m, n, k, A, B, C, lda, ldb, ldc, CUDA_R_32F, CUDA_R_32F,
                   CUDA_R_32F, false, fp32_rounding(h->math), 0, 0, nullptr, nullptr};
    return gemm(h, "cublasSgemm", g, alpha, beta);
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t transa,
                                       cublasOperation_t transb, int m, int n, int k,
                                       const void *alpha, const void *A, cudaDataType Atype,
                                       int lda, const void *B, cudaDataType Btype, int ldb,
                                       const void *beta, void *C, cudaDataType Ctype, int ldc,
                                       cublasComputeType_t computeType, cublasGemmAlgo_t algo)
{
    EMU_API;
    if (!live(h))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (inject("cublasGemmEx"))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!((algo >= CUBLAS_GEMM_DEFAULT && algo <= CUBLAS_GEMM_ALGO23) ||
          (algo >= CUBLAS_GEMM_DEFAULT_TENSOR_OP && algo <= CUBLAS_GEMM_ALGO15_TENSOR_OP)))
        return CUBLAS_STATUS_INVALID_VALUE;
    // the type combinations of cublasGemmEx's table that the stand-in computes
    rnd r = rnd::none;
    bool dbl = false;
    const bool f32 = Atype == CUDA_R_32F && Btype == CUDA_R_32F && Ctype == CUDA_R_32F;
    const bool low = Atype == Btype && (Atype == CUDA_R_16BF || Atype == CUDA_R_16F) &&
                     (Ctype == CUDA_R_32F || Ctype == Atype);
    switch (computeType) {
    case CUBLAS_COMPUTE_32F:
        if (!f32 && !low)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        r = f32 ? fp32_rounding(h->math) : rnd::none;
        break;
    case CUBLAS_COMPUTE_32F_PEDANTIC:
        if (!f32 && !low)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        break;
    case CUBLAS_COMPUTE_32F_FAST_TF32:
        if (!f32)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        r = rnd::tf32;
        break;
    case CUBLAS_COMPUTE_32F_FAST_16F:
        if (!f32)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        r = rnd::f16;
        break;
    case CUBLAS_COMPUTE_32F_FAST_16BF:
        if (!f32)
            return CUBLAS_STATUS_NOT_SUPPORTED;
        r = rnd::bf16;
        break;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC:
        if (!(Atype == CUDA_R_64F && Btype == CUDA_R_64F && Ctype == CUDA_R_64F))
            return CUBLAS_STATUS_NOT_SUPPORTED;
        dbl = true;
        break;
    default:
        return CUBLAS_STATUS_NOT_SUPPORTED; // 16F and integer compute: not emulated
    }
    gemm_args g = {transa, transb, m, n, k, A, B, C, lda, ldb, ldc, Atype, Btype,
                   Ctype, dbl, r, 0, 0, nullptr, nullptr};
    return gemm(h, "cublasGemmEx", g, alpha, beta);
}
