// The cuDNN stand-in: 2-d convolutions of 4-d tensors computed naively on the host,
// with cuDNN's checks: descriptors (NCHW/NHWC tensors, KCRS/KRSC filters through
// the filter format, or explicit strides), data and compute types, output shape,
// algorithms and their workspace sizes, the workspace given, alpha/beta (beta = 0
// never reads the output), device pointers. Work is queued on the handle's stream.
//
// Arithmetic: operands as the math type rounds them (FLOAT data: FMA = exact fp32;
// DEFAULT and TENSOR_OP = tf32, as on sm_80 and later unless NVIDIA_TF32_OVERRIDE=0;
// TENSOR_OP_MATH_ALLOW_CONVERSION = fp16, overflow to inf above 65504); products
// summed in double by deterministic algorithms, in fp32 from a starting point that
// moves with every call by non-deterministic ones (so repeated calls differ in the
// last bits, as atomics make them on a GPU); the result rounded to the data type.
//
// Algorithms (emulator's own table, not cuDNN's): the v7 heuristics list, best
// first, one non-deterministic algorithm, then deterministic ones with different
// workspace sizes, then those the shape does not support (status NOT_SUPPORTED).
// Test hooks (environment, each SPEC = OP[:key=value,...], OP = fwd | bwd_data |
// bwd_filter | all, keys n c h w (the input) k r s (the filter), layout (nhwc or
// nchw: the data tensors') and math (default, tensor_op, conversion, fma: the
// convolution descriptor's), SPECs joined by ';'):
//   GLOW_EMU_CUDNN_NODET=SPEC   no deterministic algorithm runs for matching shapes
//   GLOW_EMU_CUDNN_NO_BF16=SPEC no algorithm takes bf16 data for matching shapes
#include <cudnn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "emu/numeric.h"
#include "emu_internal.h"

struct cudnnContext {
    cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
    bool set = false;
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t fmt = CUDNN_TENSOR_NCHW;
    int n = 0, c = 0, h = 0, w = 0;
    long ns = 0, cs = 0, hs = 0, ws = 0;
};
struct cudnnFilterStruct {
    bool set = false;
    cudnnDataType_t dt = CUDNN_DATA_FLOAT;
    cudnnTensorFormat_t fmt = CUDNN_TENSOR_NCHW;
    int k = 0, c = 0, r = 0, s = 0;
};
struct cudnnConvolutionStruct {
    bool set = false;
    int ph = 0, pw = 0, u = 1, v = 1, dh = 1, dw = 1;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    cudnnDataType_t ct = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = CUDNN_DEFAULT_MATH;
    int groups = 1;
};

using namespace emu;

namespace {

template <class T>
std::set<T> &live()
{
    static std::set<T> *s = new std::set<T>;
    return *s;
}

template <class T>
bool ok(T d)
{
    return d && live<T>().count(d);
}

enum op_kind { FWD = 0, BWD_DATA = 1, BWD_FILTER = 2 };
const char *const op_names[3] = {"fwd", "bwd_data", "bwd_filter"};

size_t elem_size(cudnnDataType_t t)
{
    switch (t) {
    case CUDNN_DATA_DOUBLE: return 8;
    case CUDNN_DATA_HALF:
    case CUDNN_DATA_BFLOAT16: return 2;
    case CUDNN_DATA_INT8:
    case CUDNN_DATA_UINT8: return 1;
    default: return 4;
    }
}

bool known_type(cudnnDataType_t t)
{
    return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE || t == CUDNN_DATA_HALF ||
           t == CUDNN_DATA_INT8 || t == CUDNN_DATA_INT32 || t == CUDNN_DATA_UINT8 ||
           t == CUDNN_DATA_BFLOAT16;
}

// A convolution problem, checked: the input x [n c h w], filter [k c r s], output
// [n k oh ow].
struct geom {
    cudnnTensorStruct x, y;
    cudnnFilterStruct f;
    cudnnConvolutionStruct cv;
    int oh = 0, ow = 0;
};

int out_dim(int in, int pad, int filt, int stride, int dil)
{
    return (in + 2 * pad - ((filt - 1) * dil + 1)) / stride + 1;
}

// Descriptor checks shared by queries and calls. x, y: the data-side tensors
// (dx/dy for the backward passes).
cudnnStatus_t make_geom(const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                        const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t y,
                        geom *g)
{
    if (!ok(x) || !ok(w) || !ok(c) || !ok(y) || !x->set || !w->set || !c->set || !y->set)
        return CUDNN_STATUS_BAD_PARAM;
    g->x = *x;
    g->y = *y;
    g->f = *w;
    g->cv = *c;
    if (x->dt != y->dt || x->dt != w->dt)
        return CUDNN_STATUS_BAD_PARAM;
    // the data/compute configurations cuDNN has
    const cudnnDataType_t dt = x->dt, ct = c->ct;
    const bool config_ok = (dt == CUDNN_DATA_FLOAT && ct == CUDNN_DATA_FLOAT) ||
                           (dt == CUDNN_DATA_DOUBLE && ct == CUDNN_DATA_DOUBLE) ||
                           (dt == CUDNN_DATA_HALF && (ct == CUDNN_DATA_HALF || ct == CUDNN_DATA_FLOAT)) ||
                           (dt == CUDNN_DATA_BFLOAT16 && ct == CUDNN_DATA_FLOAT);
    if (!config_ok)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (c->groups != 1 || x->c != w->c)
        return CUDNN_STATUS_BAD_PARAM;
    g->oh = out_dim(x->h, c->ph, w->r, c->u, c->dh);
    g->ow = out_dim(x->w, c->pw, w->s, c->v, c->dw);
    if (g->oh < 1 || g->ow < 1)
        return CUDNN_STATUS_BAD_PARAM;
    if (y->n != x->n || y->c != w->k || y->h != g->oh || y->w != g->ow)
        return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

// ---- test hooks ----

bool spec_matches(const char *var, int op, const geom &g)
{
    const char *spec = env(var);
    if (!spec)
        return false;
    std::string all(spec);
    size_t pos = 0;
    while (pos <= all.size()) {
        size_t end = all.find(';', pos);
        if (end == std::string::npos)
            end = all.size();
        std::string item = all.substr(pos, end - pos);
        pos = end + 1;
        if (item.empty())
            continue;
        size_t colon = item.find(':');
        std::string o = item.substr(0, colon);
        if (o != "all" && o != "fwd" && o != "bwd_data" && o != "bwd_filter")
            fatal("%s=%s: unknown operation '%s' (fwd, bwd_data, bwd_filter, all)", var, spec,
                  o.c_str());
        bool match = o == "all" || o == op_names[op];
        if (colon != std::string::npos) {
            std::string keys = item.substr(colon + 1);
            size_t kp = 0;
            while (match && kp < keys.size()) {
                size_t ke = keys.find(',', kp);
                if (ke == std::string::npos)
                    ke = keys.size();
                std::string kv = keys.substr(kp, ke - kp);
                kp = ke + 1;
                size_t eq = kv.find('=');
                if (eq == std::string::npos)
                    fatal("%s=%s: expected key=value, got '%s'", var, spec, kv.c_str());
                std::string key = kv.substr(0, eq), sval = kv.substr(eq + 1);
                if (key == "layout") { // of the data tensors
                    if (sval != "nhwc" && sval != "nchw")
                        fatal("%s=%s: layout=%s: expected nhwc or nchw", var, spec, sval.c_str());
                    match = (sval == "nhwc") == (g.x.fmt == CUDNN_TENSOR_NHWC);
                    continue;
                }
                if (key == "math") { // the convolution descriptor's math type
                    static const char *const maths[] = {"default", "tensor_op", "conversion", "fma"};
                    int m = -1;
                    for (int i = 0; i < 4; i++)
                        if (sval == maths[i])
                            m = i;
                    if (m < 0)
                        fatal("%s=%s: math=%s: expected default, tensor_op, conversion or fma", var,
                              spec, sval.c_str());
                    match = (int)g.cv.math == m;
                    continue;
                }
                int val = atoi(sval.c_str());
                int have = key == "n"   ? g.x.n
                           : key == "c" ? g.x.c
                           : key == "h" ? g.x.h
                           : key == "w" ? g.x.w
                           : key == "k" ? g.f.k
                           : key == "r" ? g.f.r
                           : key == "s" ? g.f.s
                                        : (fatal("%s=%s: unknown key '%s' (n c h w k r s layout math)", var,
                                                 spec, key.c_str()),
                                           0);
                match = have == val;
            }
        }
        if (match)
            return true;
    }
    return false;
}

// ---- algorithms ----

struct algo {
    int id;
    bool det;
    const char *name;
};

// heuristic order, best first
const algo fwd_algos[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING, false, "FFT_TILING"},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, true, "IMPLICIT_PRECOMP_GEMM"},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED, true, "WINOGRAD_NONFUSED"},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, true, "GEMM"},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, true, "IMPLICIT_GEMM"},
    {CUDNN_CONVOLUTION_FWD_ALGO_FFT, true, "FFT"},
    {CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD, true, "WINOGRAD"},
    {CUDNN_CONVOLUTION_FWD_ALGO_DIRECT, true, "DIRECT"},
};
const algo bwd_data_algos[] = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, false, "ALGO_0"},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED, true, "WINOGRAD_NONFUSED"},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, true, "ALGO_1"},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING, true, "FFT_TILING"},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT, true, "FFT"},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD, true, "WINOGRAD"},
};
const algo bwd_filter_algos[] = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, false, "ALGO_0"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3, false, "ALGO_3"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED, true, "WINOGRAD_NONFUSED"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, true, "ALGO_1"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT, true, "FFT"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING, true, "FFT_TILING"},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD, true, "WINOGRAD"},
};

const algo *algos_of(int op, int *n)
{
    if (op == FWD) {
        *n = (int)(sizeof fwd_algos / sizeof *fwd_algos);
        return fwd_algos;
    }
    if (op == BWD_DATA) {
        *n = (int)(sizeof bwd_data_algos / sizeof *bwd_data_algos);
        return bwd_data_algos;
    }
    *n = (int)(sizeof bwd_filter_algos / sizeof *bwd_filter_algos);
    return bwd_filter_algos;
}

const algo *find_algo(int op, int id)
{
    int n;
    const algo *a = algos_of(op, &n);
    for (int i = 0; i < n; i++)
        if (a[i].id == id)
            return &a[i];
    return nullptr;
}

size_t pow2_at_least(size_t v)
{
    size_t p = 1;
    while (p < v)
        p <<= 1;
    return p;
}

// Whether algorithm a of op runs for g (NOT_SUPPORTED if not), and its workspace.
cudnnStatus_t algo_ws(int op, const algo &a, const geom &g, size_t *ws)
{
    *ws = 0;
    const size_t es = elem_size(g.x.dt);
    const size_t n = g.x.n, c = g.x.c, k = g.f.k, r = g.f.r, s = g.f.s, oh = g.oh, ow = g.ow;
    const bool unit = g.cv.u == 1 && g.cv.v == 1 && g.cv.dh == 1 && g.cv.dw == 1;
    const bool w3 = r == 3 && s == 3 && unit;
    const bool low = g.x.dt == CUDNN_DATA_HALF || g.x.dt == CUDNN_DATA_BFLOAT16;
    if (spec_matches("GLOW_EMU_CUDNN_NO_BF16", op, g) && g.x.dt == CUDNN_DATA_BFLOAT16)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (a.det && spec_matches("GLOW_EMU_CUDNN_NODET", op, g))
        return CUDNN_STATUS_NOT_SUPPORTED;
    const size_t fft_tile = 32 * 17, fft_full = pow2_at_least(g.x.h + 2 * g.cv.ph) *
                                                  (pow2_at_least(g.x.w + 2 * g.cv.pw) / 2 + 1);
    const size_t planes = n * c + c * k + n * k;
    const char *nm = a.name;
    if (!strcmp(nm, "DIRECT") || (!strcmp(nm, "WINOGRAD") && op == BWD_FILTER))
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (!strcmp(nm, "FFT") || !strcmp(nm, "FFT_TILING")) {
        if (!unit || low || r > 32 || s > 32)
            return CUDNN_STATUS_NOT_SUPPORTED;
        *ws = 8 * planes * (!strcmp(nm, "FFT") ? fft_full : fft_tile);
        return CUDNN_STATUS_SUCCESS;
    }
    if (!strcmp(nm, "WINOGRAD")) {
        if (!w3 || g.x.dt != CUDNN_DATA_FLOAT)
            return CUDNN_STATUS_NOT_SUPPORTED;
        return CUDNN_STATUS_SUCCESS;
    }
    if (!strcmp(nm, "WINOGRAD_NONFUSED")) {
        if (!w3)
            return CUDNN_STATUS_NOT_SUPPORTED;
        *ws = es * 16 * (n * c + n * k) * ((oh + 1) / 2) * ((ow + 1) / 2) + es * 16 * c * k;
        return CUDNN_STATUS_SUCCESS;
    }
    if (op == FWD) {
        if (!strcmp(nm, "GEMM")) {
            if (low)
                return CUDNN_STATUS_NOT_SUPPORTED;
            *ws = es * c * r * s * oh * ow;
        } else if (!strcmp(nm, "IMPLICIT_PRECOMP_GEMM")) {
            *ws = sizeof(int) * 2 * c * r * s + 256;
        }
        return CUDNN_STATUS_SUCCESS; // IMPLICIT_GEMM: none
    }
    if (op == BWD_DATA) {
        if (!strcmp(nm, "ALGO_1"))
            *ws = sizeof(int) * k * r * s + 128;
        return CUDNN_STATUS_SUCCESS; // ALGO_0: none
    }
    if (!strcmp(nm, "ALGO_1"))
        *ws = 4 * k * c * r * s + 512;
    else if (!strcmp(nm, "ALGO_3"))
        *ws = 4 * k * c * r * s * 4;
    return CUDNN_STATUS_SUCCESS; // ALGO_0: none
}

// ---- arithmetic ----

enum class rnd { none, tf32, f16 };

rnd operand_rounding(const geom &g)
{
    if (g.x.dt != CUDNN_DATA_FLOAT)
        return rnd::none; // half, bf16: the data is already rounded; double: exact
    switch (g.cv.math) {
    case CUDNN_FMA_MATH: return rnd::none;
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return rnd::f16;
    default: return config().tf32_off ? rnd::none : rnd::tf32; // DEFAULT, TENSOR_OP on sm_90
    }
}

double load(const void *p, cudnnDataType_t t, size_t i)
{
    switch (t) {
    case CUDNN_DATA_DOUBLE: return ((const double *)p)[i];
    case CUDNN_DATA_HALF: return f16_to_f32(((const uint16_t *)p)[i]);
    case CUDNN_DATA_BFLOAT16: return bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

void store(void *p, cudnnDataType_t t, size_t i, double v)
{
    switch (t) {
    case CUDNN_DATA_DOUBLE: ((double *)p)[i] = v; break;
    case CUDNN_DATA_HALF: ((uint16_t *)p)[i] = f16_bits((float)v); break;
    case CUDNN_DATA_BFLOAT16: ((uint16_t *)p)[i] = bf16_bits((float)v); break;
    default: ((float *)p)[i] = (float)v; break;
    }
}

size_t tensor_index(const cudnnTensorStruct &t, int n, int c, int h, int w)
{
    return (size_t)(n * t.ns + c * t.cs + h * t.hs + w * t.ws);
}

size_t filter_index(const cudnnFilterStruct &f, int k, int c, int r, int s)
{
    if (f.fmt == CUDNN_TENSOR_NHWC) // KRSC
        return (((size_t)k * f.r + r) * f.s + s) * f.c + c;
    return (((size_t)k * f.c + c) * f.r + r) * f.s + s; // KCRS
}

size_t tensor_extent(const cudnnTensorStruct &t)
{
    return ((size_t)((t.n - 1) * t.ns + (t.c - 1) * t.cs + (t.h - 1) * t.hs + (t.w - 1) * t.ws) +
            1) *
           elem_size(t.dt);
}

size_t filter_extent(const cudnnFilterStruct &f)
{
    return (size_t)f.k * f.c * f.r * f.s * elem_size(f.dt);
}

// Dense copies of the operands in NCHW / KCRS order, rounded.
std::vector<double> gather_tensor(const cudnnTensorStruct &t, const void *p, rnd r, bool dbl)
{
    std::vector<double> out((size_t)t.n * t.c * t.h * t.w);
    size_t o = 0;
    for (int n = 0; n < t.n; n++)
        for (int c = 0; c < t.c; c++)
            for (int h = 0; h < t.h; h++)
                for (int w = 0; w < t.w; w++) {
                    double v = load(p, t.dt, tensor_index(t, n, c, h, w));
                    if (!dbl)
                        v = r == rnd::tf32 ? round_tf32((float)v)
                            : r == rnd::f16 ? round_f16((float)v)
                                            : v;
                    out[o++] = v;
                }
    return out;
}

std::vector<double> gather_filter(const cudnnFilterStruct &f, const void *p, rnd r, bool dbl)
{
    std::vector<double> out((size_t)f.k * f.c * f.r * f.s);
    size_t o = 0;
    for (int k = 0; k < f.k; k++)
        for (int c = 0; c < f.c; c++)
            for (int y = 0; y < f.r; y++)
                for (int x = 0; x < f.s; x++) {
                    double v = load(p, f.dt, filter_index(f, k, c, y, x));
                    if (!dbl)
                        v = r == rnd::tf32 ? round_tf32((float)v)
                            : r == rnd::f16 ? round_f16((float)v)
                                            : v;
                    out[o++] = v;
                }
    return out;
}

// The sum of terms: in double in order (deterministic), or in float from a moving
// start (non-deterministic).
struct summer {
    bool det;
    unsigned long rot;
    std::vector<double> terms;
    void clear() { terms.clear(); }
    void add(double v) { terms.push_back(v); }
    double sum() const
    {
        const size_t n = terms.size();
        if (det) {
            double s = 0;
            for (double t : terms)
                s += t;
            return s;
        }
        float s = 0;
        for (size_t i = 0; i < n; i++)
            s += (float)terms[(i + rot) % n];
        return s;
    }
};

unsigned long call_counter;

struct conv_call {
    int op;
    geom g;
    algo a;
    const void *x, *w, *y; // inputs of the op (y: dy for the backward passes)
    void *out;
    double alpha, beta;
    void *ws;
    size_t ws_bytes;
};

void run_conv(const conv_call &cc)
{
    const geom &g = cc.g;
    const rnd r = operand_rounding(g);
    const bool dbl = g.x.dt == CUDNN_DATA_DOUBLE;
    if (cc.ws && cc.ws_bytes)
        memset(cc.ws, 0xa5, cc.ws_bytes); // the algorithm's scratch
    const int N = g.x.n, C = g.x.c, H = g.x.h, W = g.x.w, K = g.f.k, R = g.f.r, S = g.f.s;
    const int OH = g.oh, OW = g.ow;
    const int ph = g.cv.ph, pw = g.cv.pw, u = g.cv.u, v = g.cv.v, dh = g.cv.dh, dw = g.cv.dw;
    const bool flip = g.cv.mode == CUDNN_CONVOLUTION;
    summer sm{cc.a.det, call_counter++, {}};
    auto widx = [&](int k, int c, int y, int x) {
        if (flip) {
            y = R - 1 - y;
            x = S - 1 - x;
        }
        return (((size_t)k * C + c) * R + y) * S + x;
    };
    auto emit = [&](const cudnnTensorStruct *t, const cudnnFilterStruct *f, size_t idx, double acc) {
        cudnnDataType_t dt = t ? t->dt : f->dt;
        double val = dbl ? cc.alpha * acc : (double)((float)cc.alpha * (float)acc);
        if (cc.beta != 0) {
            double old = load(cc.out, dt, idx);
            val = dbl ? val + cc.beta * old : (double)((float)val + (float)cc.beta * (float)old);
        }
        store(cc.out, dt, idx, val);
    };
    // Both operands all zero bytes (a trial run on zeroed scratch): every sum is
    // +0, so the sums are skipped and the result written as they would write it.
    auto zero_bytes = [](const void *p, size_t bytes) {
        const unsigned char *b = (const unsigned char *)p;
        for (size_t i = 0; i < bytes; i++)
            if (b[i])
                return false;
        return true;
    };
    const bool zeros =
        cc.op == FWD        ? zero_bytes(cc.x, tensor_extent(g.x)) && zero_bytes(cc.w, filter_extent(g.f))
        : cc.op == BWD_DATA ? zero_bytes(cc.y, tensor_extent(g.y)) && zero_bytes(cc.w, filter_extent(g.f))
                            : zero_bytes(cc.x, tensor_extent(g.x)) && zero_bytes(cc.y, tensor_extent(g.y));
    if (zeros) {
        if (cc.op == FWD) {
            for (int n = 0; n < N; n++)
                for (int k = 0; k < K; k++)
                    for (int oy = 0; oy < OH; oy++)
                        for (int ox = 0; ox < OW; ox++)
                            emit(&g.y, nullptr, tensor_index(g.y, n, k, oy, ox), 0.0);
        } else if (cc.op == BWD_DATA) {
            for (int n = 0; n < N; n++)
                for (int c = 0; c < C; c++)
                    for (int iy = 0; iy < H; iy++)
                        for (int ix = 0; ix < W; ix++)
                            emit(&g.x, nullptr, tensor_index(g.x, n, c, iy, ix), 0.0);
        } else {
            for (int k = 0; k < K; k++)
                for (int c = 0; c < C; c++)
                    for (int y = 0; y < R; y++)
                        for (int x = 0; x < S; x++)
                            emit(nullptr, &g.f, filter_index(g.f, k, c, y, x), 0.0);
        }
        return;
    }
    if (cc.op == FWD) {
        std::vector<double> X = gather_tensor(g.x, cc.x, r, dbl), Wt = gather_filter(g.f, cc.w, r, dbl);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++)
                for (int oy = 0; oy < OH; oy++)
                    for (int ox = 0; ox < OW; ox++) {
                        sm.clear();
                        for (int c = 0; c < C; c++)
                            for (int y = 0; y < R; y++) {
                                int iy = oy * u - ph + y * dh;
                                if (iy < 0 || iy >= H)
                                    continue;
                                for (int x = 0; x < S; x++) {
                                    int ix = ox * v - pw + x * dw;
                                    if (ix < 0 || ix >= W)
                                        continue;
                                    sm.add(X[(((size_t)n * C + c) * H + iy) * W + ix] *
                                           Wt[widx(k, c, y, x)]);
                                }
                            }
                        emit(&g.y, nullptr, tensor_index(g.y, n, k, oy, ox), sm.sum());
                    }
    } else if (cc.op == BWD_DATA) {
        std::vector<double> DY = gather_tensor(g.y, cc.y, r, dbl), Wt = gather_filter(g.f, cc.w, r, dbl);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int iy = 0; iy < H; iy++)
                    for (int ix = 0; ix < W; ix++) {
                        sm.clear();
                        for (int k = 0; k < K; k++)
                            for (int y = 0; y < R; y++) {
                                int ty = iy + ph - y * dh;
                                if (ty < 0 || ty % u || ty / u >= OH)
                                    continue;
                                for (int x = 0; x < S; x++) {
                                    int tx = ix + pw - x * dw;
                                    if (tx < 0 || tx % v || tx / v >= OW)
                                        continue;
                                    sm.add(DY[(((size_t)n * K + k) * OH + ty / u) * OW + tx / v] *
                                           Wt[widx(k, c, y, x)]);
                                }
                            }
                        emit(&g.x, nullptr, tensor_index(g.x, n, c, iy, ix), sm.sum());
                    }
    } else {
        std::vector<double> X = gather_tensor(g.x, cc.x, r, dbl), DY = gather_tensor(g.y, cc.y, r, dbl);
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                for (int y = 0; y < R; y++)
                    for (int x = 0; x < S; x++) {
                        sm.clear();
                        for (int n = 0; n < N; n++)
                            for (int oy = 0; oy < OH; oy++) {
                                int iy = oy * u - ph + y * dh;
                                if (iy < 0 || iy >= H)
                                    continue;
                                for (int ox = 0; ox < OW; ox++) {
                                    int ix = ox * v - pw + x * dw;
                                    if (ix < 0 || ix >= W)
                                        continue;
                                    sm.add(X[(((size_t)n * C + c) * H + iy) * W + ix] *
                                           DY[(((size_t)n * K + k) * OH + oy) * OW + ox]);
                                }
                            }
                        int fy = flip ? R - 1 - y : y, fx = flip ? S - 1 - x : x;
                        emit(nullptr, &g.f, filter_index(g.f, k, c, fy, fx), sm.sum());
                    }
    }
}

const char *math_name(cudnnMathType_t m)
{
    switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA";
    }
    return "?";
}

const char *type_name(cudnnDataType_t t)
{
    switch (t) {
    case CUDNN_DATA_FLOAT: return "FLOAT";
    case CUDNN_DATA_DOUBLE: return "DOUBLE";
    case CUDNN_DATA_HALF: return "HALF";
    case CUDNN_DATA_BFLOAT16: return "BFLOAT16";
    default: return "other";
    }
}

// A convolution call: checks, then queues it. x, y are the data-side descriptors
// (y = dy for the backward passes); out is y, dx or dw.
cudnnStatus_t conv(int op, const char *call, cudnnHandle_t h, const void *alpha,
                   const cudnnTensorDescriptor_t xd, const void *x,
                   const cudnnFilterDescriptor_t wd, const void *w,
                   const cudnnTensorDescriptor_t yd, const void *y,
                   const cudnnConvolutionDescriptor_t cd, int algo_id, void *ws, size_t ws_bytes,
                   const void *beta, void *out)
{
    if (!ok(h))
        return CUDNN_STATUS_NOT_INITIALIZED;
    conv_call cc;
    cc.op = op;
    cudnnStatus_t st = make_geom(xd, wd, cd, yd, &cc.g);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    const algo *a = find_algo(op, algo_id);
    if (!a)
        return CUDNN_STATUS_BAD_PARAM;
    cc.a = *a;
    size_t need = 0;
    st = algo_ws(op, *a, cc.g, &need);
    if (st != CUDNN_STATUS_SUCCESS) {
        if (config().trace)
            note("%s: algorithm %s does not run here", call, a->name);
        return st;
    }
    if (ws_bytes < need || (need > 0 && !ws)) {
        if (config().trace)
            note("%s: algorithm %s needs %zu bytes of workspace, got %zu at %p", call, a->name,
                 need, ws_bytes, ws);
        return CUDNN_STATUS_BAD_PARAM;
    }
    if (!alpha || !beta)
        return CUDNN_STATUS_BAD_PARAM;
    const bool dbl = cc.g.x.dt == CUDNN_DATA_DOUBLE;
    require_host(alpha, dbl ? 8 : 4, call, "alpha (a host pointer)");
    require_host(beta, dbl ? 8 : 4, call, "beta (a host pointer)");
    cc.alpha = dbl ? *(const double *)alpha : *(const float *)alpha;
    cc.beta = dbl ? *(const double *)beta : *(const float *)beta;
    const geom &g = cc.g;
    if (op == FWD) {
        require_device(x, tensor_extent(g.x), call, "x");
        require_device(w, filter_extent(g.f), call, "w");
        require_device(out, tensor_extent(g.y), call, "y");
    } else if (op == BWD_DATA) {
        require_device(w, filter_extent(g.f), call, "w");
        require_device(y, tensor_extent(g.y), call, "dy");
        require_device(out, tensor_extent(g.x), call, "dx");
    } else {
        require_device(x, tensor_extent(g.x), call, "x");
        require_device(y, tensor_extent(g.y), call, "dy");
        require_device(out, filter_extent(g.f), call, "dw");
    }
    if (ws && ws_bytes)
        require_device(ws, ws_bytes, call, "the workspace");
    cc.x = x;
    cc.w = w;
    cc.y = y;
    cc.out = out;
    cc.ws = ws;
    cc.ws_bytes = need;
    stream_state *s = stream_of(h->stream);
    if (!s)
        fatal("%s: the handle's stream %p is no longer a stream", call, (void *)h->stream);
    auto o = std::make_unique<emu::op>();
    char buf[240];
    snprintf(buf, sizeof buf, "%s(%s, %s math, %s, x %dx%dx%dx%d, w %dx%dx%dx%d)", call, a->name,
             math_name(g.cv.math), type_name(g.x.dt), g.x.n, g.x.c, g.x.h, g.x.w, g.f.k, g.f.c,
             g.f.r, g.f.s);
    o->what = buf;
    o->uses = {(uintptr_t)x, (uintptr_t)w, (uintptr_t)y, (uintptr_t)out, (uintptr_t)ws};
    count(ST_CUDNN);
    o->run = [cc] { run_conv(cc); };
    enqueue(s, std::move(o));
    return CUDNN_STATUS_SUCCESS;
}

template <class Perf>
cudnnStatus_t heuristics(int op, const char *call, cudnnHandle_t h,
                         const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                         const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t y,
                         int requested, int *returned, Perf *perf)
{
    if (!ok(h))
        return CUDNN_STATUS_NOT_INITIALIZED;
    if (!returned || !perf || requested < 1)
        return CUDNN_STATUS_BAD_PARAM;
    if (inject(call))
        return CUDNN_STATUS_INTERNAL_ERROR;
    geom g;
    cudnnStatus_t st = make_geom(x, w, c, y, &g);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    int n;
    const algo *as = algos_of(op, &n);
    std::vector<Perf> runs, refused;
    for (int i = 0; i < n; i++) {
        Perf p;
        memset(&p, 0, sizeof p);
        p.algo = (decltype(p.algo))as[i].id;
        p.determinism = as[i].det ? CUDNN_DETERMINISTIC : CUDNN_NON_DETERMINISTIC;
        p.mathType = g.cv.math;
        size_t ws = 0;
        p.status = algo_ws(op, as[i], g, &ws);
        p.memory = ws;
        p.time = p.status == CUDNN_STATUS_SUCCESS ? 0.01f * (float)(i + 1) : -1.0f;
        (p.status == CUDNN_STATUS_SUCCESS ? runs : refused).push_back(p);
    }
    runs.insert(runs.end(), refused.begin(), refused.end());
    *returned = 0;
    for (int i = 0; i < (int)runs.size() && i < requested; i++) {
        perf[i] = runs[i];
        ++*returned;
    }
    if (config().trace) {
        std::string l;
        for (int i = 0; i < *returned; i++) {
            char b[96];
            snprintf(b, sizeof b, " %s%s(%zu)%s", find_algo(op, (int)perf[i].algo)->name,
                     perf[i].determinism == CUDNN_DETERMINISTIC ? "" : "[nondet]",
                     perf[i].memory, perf[i].status == CUDNN_STATUS_SUCCESS ? "" : "[refused]");
            l += b;
        }
        note("%s (%s math, %s):%s", call, math_name(g.cv.math), type_name(g.x.dt), l.c_str());
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t ws_query(int op, const char *call, cudnnHandle_t h,
                       const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                       const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t y,
                       int algo_id, size_t *bytes)
{
    (void)call;
    if (!ok(h))
        return CUDNN_STATUS_NOT_INITIALIZED;
    if (!bytes)
        return CUDNN_STATUS_BAD_PARAM;
    geom g;
    cudnnStatus_t st = make_geom(x, w, c, y, &g);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    const algo *a = find_algo(op, algo_id);
    if (!a)
        return CUDNN_STATUS_BAD_PARAM;
    return algo_ws(op, *a, g, bytes);
}

} // namespace

extern "C" size_t cudnnGetVersion(void) { return CUDNN_VERSION; }
extern "C" size_t cudnnGetCudartVersion(void) { return CUDART_VERSION; }

extern "C" const char *cudnnGetErrorString(cudnnStatus_t s)
{
    switch (s) {
#define EMU_NAME(x)                                                                        \
    case x: return #x;
        EMU_NAME(CUDNN_STATUS_SUCCESS)
        EMU_NAME(CUDNN_STATUS_NOT_INITIALIZED)
        EMU_NAME(CUDNN_STATUS_SUBLIBRARY_VERSION_MISMATCH)
        EMU_NAME(CUDNN_STATUS_DEPRECATED)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_NULL_POINTER)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_STREAM_MISMATCH)
        EMU_NAME(CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_SHAPE)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_ARCH_MISMATCH)
        EMU_NAME(CUDNN_STATUS_NOT_SUPPORTED_PADDING)
        EMU_NAME(CUDNN_STATUS_INTERNAL_ERROR)
        EMU_NAME(CUDNN_STATUS_EXECUTION_FAILED)
#undef EMU_NAME
    }
    return "CUDNN_UNKNOWN_STATUS_FOUND";
}

extern "C" cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    EMU_API;
    if (!handle)
        return CUDNN_STATUS_BAD_PARAM;
    int n = 0;
    if (inject("cudnnCreate") || cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        return CUDNN_STATUS_NOT_INITIALIZED;
    }
    *handle = new cudnnContext;
    live<cudnnHandle_t>().insert(*handle);
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnDestroy(cudnnHandle_t h)
{
    EMU_API;
    if (!ok(h))
        return CUDNN_STATUS_BAD_PARAM;
    live<cudnnHandle_t>().erase(h);
    delete h;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t stream)
{
    EMU_API;
    if (!ok(h))
        return CUDNN_STATUS_BAD_PARAM;
    if (!stream_of(stream))
        return CUDNN_STATUS_BAD_PARAM;
    h->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetStream(cudnnHandle_t h, cudaStream_t *stream)
{
    if (!ok(h) || !stream)
        return CUDNN_STATUS_BAD_PARAM;
    *stream = h->stream;
    return CUDNN_STATUS_SUCCESS;
}

#define EMU_DESC(Create, Destroy, T)                                                       \
    extern "C" cudnnStatus_t Create(T *d)                                                  \
    {                                                                                      \
        EMU_API;                                                                           \
        if (!d)                                                                            \
            return CUDNN_STATUS_BAD_PARAM;                                                 \
        *d = new std::remove_pointer_t<T>;                                                 \
        live<T>().insert(*d);                                                              \
        return CUDNN_STATUS_SUCCESS;                                                       \
    }                                                                                      \
    extern "C" cudnnStatus_t Destroy(T d)                                                  \
    {                                                                                      \
        EMU_API;                                                                           \
        if (!d)                                                                            \
            return CUDNN_STATUS_SUCCESS;                                                   \
        if (!live<T>().count(d))                                                           \
            fatal(#Destroy "(%p): not a live descriptor", (void *)d);                      \
        live<T>().erase(d);                                                                \
        delete d;                                                                          \
        return CUDNN_STATUS_SUCCESS;                                                       \
    }
EMU_DESC(cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor, cudnnTensorDescriptor_t)
EMU_DESC(cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor, cudnnFilterDescriptor_t)
EMU_DESC(cudnnCreateConvolutionDescriptor, cudnnDestroyConvolutionDescriptor,
         cudnnConvolutionDescriptor_t)
#undef EMU_DESC

extern "C" cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t d,
                                                      cudnnDataType_t dt, int n, int c, int h,
                                                      int w, int ns, int cs, int hs, int ws)
{
    EMU_API;
    if (!ok(d) || !known_type(dt) || n < 1 || c < 1 || h < 1 || w < 1 || ns < 1 || cs < 1 ||
        hs < 1 || ws < 1)
        return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->dt = dt;
    d->n = n;
    d->c = c;
    d->h = h;
    d->w = w;
    d->ns = ns;
    d->cs = cs;
    d->hs = hs;
    d->ws = ws;
    d->fmt = cs == 1 && c > 1 ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d,
                                                    cudnnTensorFormat_t fmt, cudnnDataType_t dt,
                                                    int n, int c, int h, int w)
{
    EMU_API;
    if (fmt == CUDNN_TENSOR_NCHW_VECT_C)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (fmt != CUDNN_TENSOR_NCHW && fmt != CUDNN_TENSOR_NHWC)
        return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t st;
    if (fmt == CUDNN_TENSOR_NCHW)
        st = cudnnSetTensor4dDescriptorEx(d, dt, n, c, h, w, c * h * w, h * w, w, 1);
    else
        st = cudnnSetTensor4dDescriptorEx(d, dt, n, c, h, w, h * w * c, 1, w * c, c);
    if (st == CUDNN_STATUS_SUCCESS)
        d->fmt = fmt;
    return st;
}

extern "C" cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dt,
                                                    cudnnTensorFormat_t fmt, int k, int c, int h,
                                                    int w)
{
    EMU_API;
    if (!ok(d) || !known_type(dt) || k < 1 || c < 1 || h < 1 || w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    if (fmt == CUDNN_TENSOR_NCHW_VECT_C)
        return CUDNN_STATUS_NOT_SUPPORTED;
    if (fmt != CUDNN_TENSOR_NCHW && fmt != CUDNN_TENSOR_NHWC)
        return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->dt = dt;
    d->fmt = fmt;
    d->k = k;
    d->c = c;
    d->r = h;
    d->s = w;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d,
                                                         int pad_h, int pad_w, int u, int v,
                                                         int dil_h, int dil_w,
                                                         cudnnConvolutionMode_t mode,
                                                         cudnnDataType_t ct)
{
    EMU_API;
    if (!ok(d) || pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 ||
        (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION) || !known_type(ct))
        return CUDNN_STATUS_BAD_PARAM;
    d->set = true;
    d->ph = pad_h;
    d->pw = pad_w;
    d->u = u;
    d->v = v;
    d->dh = dil_h;
    d->dw = dil_w;
    d->mode = mode;
    d->ct = ct;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d,
                                                     cudnnMathType_t m)
{
    EMU_API;
    if (!ok(d) || (int)m < 0 || (int)m > 3)
        return CUDNN_STATUS_BAD_PARAM;
    d->math = m;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionMathType(cudnnConvolutionDescriptor_t d,
                                                     cudnnMathType_t *m)
{
    if (!ok(d) || !m)
        return CUDNN_STATUS_BAD_PARAM;
    *m = d->math;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int g)
{
    EMU_API;
    if (!ok(d) || g < 1)
        return CUDNN_STATUS_BAD_PARAM;
    d->groups = g; // only 1 is computed (others: BAD_PARAM at use)
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(
    const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t x,
    const cudnnFilterDescriptor_t w, int *n, int *k, int *h, int *wo)
{
    EMU_API;
    if (!ok(c) || !ok(x) || !ok(w) || !c->set || !x->set || !w->set || !n || !k || !h || !wo ||
        x->c != w->c)
        return CUDNN_STATUS_BAD_PARAM;
    *n = x->n;
    *k = w->k;
    *h = out_dim(x->h, c->ph, w->r, c->u, c->dh);
    *wo = out_dim(x->w, c->pw, w->s, c->v, c->dw);
    return *h > 0 && *wo > 0 ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

extern "C" cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t h, int *n)
{
    if (!ok(h) || !n)
        return CUDNN_STATUS_BAD_PARAM;
    *n = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t h, int *n)
{
    if (!ok(h) || !n)
        return CUDNN_STATUS_BAD_PARAM;
    *n = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(cudnnHandle_t h,
                                                                            int *n)
{
    if (!ok(h) || !n)
        return CUDNN_STATUS_BAD_PARAM;
    *n = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    return CUDNN_STATUS_SUCCESS;
}

extern "C" cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
    const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t y, const int req,
    int *got, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    EMU_API;
    return heuristics(FWD, "cudnnGetConvolutionForwardAlgorithm_v7", h, x, w, c, y, req, got,
                      perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t dx, const int req,
    int *got, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    EMU_API;
    return heuristics(BWD_DATA, "cudnnGetConvolutionBackwardDataAlgorithm_v7", h, dx, w, c, dy,
                      req, got, perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t c, const cudnnFilterDescriptor_t dw, const int req,
    int *got, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    EMU_API;
    return heuristics(BWD_FILTER, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", h, x, dw, c,
                      dy, req, got, perf);
}

extern "C" cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
    const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t y,
    cudnnConvolutionFwdAlgo_t a, size_t *bytes)
{
    EMU_API;
    return ws_query(FWD, "cudnnGetConvolutionForwardWorkspaceSize", h, x, w, c, y, a, bytes);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t h, const cudnnFilterDescriptor_t w, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t c, const cudnnTensorDescriptor_t dx,
    cudnnConvolutionBwdDataAlgo_t a, size_t *bytes)
{
    EMU_API;
    return ws_query(BWD_DATA, "cudnnGetConvolutionBackwardDataWorkspaceSize", h, dx, w, c, dy, a,
                    bytes);
}

extern "C" cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t h, const cudnnTensorDescriptor_t x, const cudnnTensorDescriptor_t dy,
    const cudnnConvolutionDescriptor_t c, const cudnnFilterDescriptor_t dw,
    cudnnConvolutionBwdFilterAlgo_t a, size_t *bytes)
{
    EMU_API;
    return ws_query(BWD_FILTER, "cudnnGetConvolutionBackwardFilterWorkspaceSize", h, x, dw, c,
                    dy, a, bytes);
}

extern "C" cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                                 const cudnnTensorDescriptor_t xd, const void *x,
                                                 const cudnnFilterDescriptor_t wd, const void *w,
                                                 const cudnnConvolutionDescriptor_t cd,
                                                 cudnnConvolutionFwdAlgo_t algo, void *ws,
                                                 size_t ws_bytes, const void *beta,
                                                 const cudnnTensorDescriptor_t yd, void *y)
{
    EMU_API;
    return conv(FWD, "cudnnConvolutionForward", h, alpha, xd, x, wd, w, yd, nullptr, cd, algo,
                ws, ws_bytes, beta, y);
}

extern "C" cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                                      const cudnnFilterDescriptor_t wd,
                                                      const void *w,
                                                      const cudnnTensorDescriptor_t dyd,
                                                      const void *dy,
                                                      const cudnnConvolutionDescriptor_t cd,
                                                      cudnnConvolutionBwdDataAlgo_t algo,
                                                      void *ws, size_t ws_bytes,
                                                      const void *beta,
                                                      const cudnnTensorDescriptor_t dxd, void *dx)
{
    EMU_API;
    return conv(BWD_DATA, "cudnnConvolutionBackwardData", h, alpha, dxd, nullptr, wd, w, dyd, dy,
                cd, algo, ws, ws_bytes, beta, dx);
}

extern "C" cudnnStatus_t cudnnConvolutionBackwardFilter(
    cudnnHandle_t h, const void *alpha, const cudnnTensorDescriptor_t xd, const void *x,
    const cudnnTensorDescriptor_t dyd, const void *dy, const cudnnConvolutionDescriptor_t cd,
    cudnnConvolutionBwdFilterAlgo_t algo, void *ws, size_t ws_bytes, const void *beta,
    const cudnnFilterDescriptor_t dwd, void *dw)
{
    EMU_API;
    return conv(BWD_FILTER, "cudnnConvolutionBackwardFilter", h, alpha, xd, x, dwd, nullptr,
                dyd, dy, cd, algo, ws, ws_bytes, beta, dw);
}
