/* Deterministic reductions for the CUDA ops: no atomics. Work is cut into chunks
 * whose bounds depend only on the shape; each block reduces its chunk in double in
 * a fixed tree, writes one partial to scratch, and a second kernel combines the
 * partials in a fixed order (strided per thread, then a fixed tree). Results are
 * therefore the same on every run and GPU, whatever its number of SMs.
 *
 * Two shapes of sum:
 *  - seg_sum: one scalar per segment (an image): sum over its rows x c elements of
 *    f(row, j), the functor may also write element results as a side effect;
 *  - col_sum: NV values per channel per segment: sum over the segment's rows of
 *    f(row, j, v[NV]). */
#ifndef GLOW_CUDA_REDUCE_CUH
#define GLOW_CUDA_REDUCE_CUH

#include "cuda_internal.h"

#define RED_BLOCK 256
#define RED_CHUNK_ELEMS 8192 /* target elements per block of seg_sum */
#define RED_MAX_COL_CHUNKS 1024 /* bound on col_sum partials per segment */
#define COL_TX 32
#define COL_TY 8

/* Sum of buf[0..RED_BLOCK) into buf[0], fixed tree. All threads call it. */
__device__ __forceinline__ void red_block_tree(double *buf)
{
    for (int s = RED_BLOCK / 2; s > 0; s >>= 1) {
        __syncthreads();
        if ((int)threadIdx.x < s)
            buf[threadIdx.x] += buf[threadIdx.x + s];
    }
    __syncthreads();
}

/* Sum of p[0..n) by the block: each thread adds its stride of p in order, then
 * the fixed tree; every thread gets the result. All threads call it. */
template <typename N>
__device__ __forceinline__ double red_block_sum(const double *p, N n, double *buf)
{
    double acc = 0;
    for (N k = threadIdx.x; k < n; k += RED_BLOCK)
        acc += p[k];
    buf[threadIdx.x] = acc;
    red_block_tree(buf);
    return buf[0];
}

/* Chunks of rpc rows that cover `rows`, at least 1. */
static inline size_t red_chunks(size_t rows, size_t rpc)
{
    size_t n = (rows + rpc - 1) / rpc;
    return n ? n : 1;
}

/* ---- seg_sum ---- */
static inline size_t seg_rows_per_chunk(int c)
{
    size_t r = RED_CHUNK_ELEMS / (size_t)(c > 0 ? c : 1);
    return r ? r : 1;
}

template <class F>
__global__ void k_seg_partial(F f, size_t rows_per_seg, int c, size_t rows_per_chunk,
                              unsigned chunks_per_seg, double *part)
{
    __shared__ double buf[RED_BLOCK];
    const size_t seg = blockIdx.x / chunks_per_seg, k = blockIdx.x % chunks_per_seg;
    const size_t r0 = k * rows_per_chunk;
    size_t r1 = r0 + rows_per_chunk;
    if (r1 > rows_per_seg)
        r1 = rows_per_seg;
    const size_t ne = (r1 - r0) * (size_t)c, base = seg * rows_per_seg + r0;
    double acc = 0;
    for (size_t e = threadIdx.x; e < ne; e += RED_BLOCK)
        acc += (double)f(base + e / (size_t)c, (int)(e % (size_t)c));
    buf[threadIdx.x] = acc;
    red_block_tree(buf);
    if (threadIdx.x == 0)
        part[blockIdx.x] = buf[0];
}

/* out[seg] += (float)(sum of the segment's partials), one block per segment
 * (a template only so that every file including this header may leave it unused) */
template <int Unused = 0>
__global__ void k_seg_final(const double *part, unsigned chunks_per_seg, float *out)
{
    __shared__ double buf[RED_BLOCK];
    const double s = red_block_sum(part + (size_t)blockIdx.x * chunks_per_seg, chunks_per_seg, buf);
    if (threadIdx.x == 0)
        out[blockIdx.x] += (float)s;
}

/* Runs seg_sum for nseg segments of rows_per_seg rows; adds into out[nseg]. */
template <class F>
void seg_sum(cuda_ctx *ctx, int slot, F f, int nseg, size_t rows_per_seg, int c, float *out)
{
    if (nseg <= 0)
        return;
    const size_t rpc = seg_rows_per_chunk(c), cps = red_chunks(rows_per_seg, rpc);
    const size_t nblk = (size_t)nseg * cps;
    double *part = (double *)cuda_scratch(ctx, slot, nblk * sizeof(double));
    LAUNCH_GRID(ctx, (unsigned)nblk, RED_BLOCK, k_seg_partial<F>, f, rows_per_seg, c, rpc,
                (unsigned)cps, part);
    LAUNCH_GRID(ctx, (unsigned)nseg, RED_BLOCK, k_seg_final<>, part, (unsigned)cps, out);
}

/* ---- col_sum ---- */
static inline size_t col_rows_per_chunk(size_t rows_per_seg)
{
    size_t r = (rows_per_seg + RED_MAX_COL_CHUNKS - 1) / RED_MAX_COL_CHUNKS;
    return r < 64 ? 64 : r;
}

/* The grid and block of col_sum's partials over nblk chunks of c channels. */
static inline dim3 col_grid(size_t nblk, int c)
{
    return dim3((unsigned)nblk, (unsigned)((c + COL_TX - 1) / COL_TX));
}
static inline dim3 col_block() { return dim3(COL_TX, COL_TY); }

/* grid col_grid(nseg * chunks, c), block col_block(). part layout:
 * [(seg * chunks + k) * NV + v][c] */
template <int NV, class F>
__global__ void k_col_partial(F f, size_t rows_per_seg, int c, size_t rows_per_chunk,
                              unsigned chunks_per_seg, double *part)
{
    __shared__ double buf[NV][COL_TY][COL_TX];
    const size_t seg = blockIdx.x / chunks_per_seg, k = blockIdx.x % chunks_per_seg;
    const int j = blockIdx.y * COL_TX + threadIdx.x;
    const size_t r0 = k * rows_per_chunk;
    size_t r1 = r0 + rows_per_chunk;
    if (r1 > rows_per_seg)
        r1 = rows_per_seg;
    double acc[NV];
    for (int v = 0; v < NV; v++)
        acc[v] = 0;
    if (j < c)
        for (size_t r = r0 + threadIdx.y; r < r1; r += COL_TY) {
            float val[NV];
            f(seg * rows_per_seg + r, j, val);
            for (int v = 0; v < NV; v++)
                acc[v] += (double)val[v];
        }
    for (int v = 0; v < NV; v++)
        buf[v][threadIdx.y][threadIdx.x] = acc[v];
    __syncthreads();
    if (threadIdx.y == 0 && j < c)
        for (int v = 0; v < NV; v++) {
            double s = buf[v][0][threadIdx.x];
            for (int t = 1; t < COL_TY; t++)
                s += buf[v][t][threadIdx.x];
            part[((size_t)blockIdx.x * NV + v) * c + j] = s;
        }
}

/* The final sums of col_sum: one block per segment and COL_TX channels; thread
 * (x, y) adds the chunks y, y + FIN_TY, ... of channel x in order (at most 128 of
 * RED_MAX_COL_CHUNKS), then a fixed tree over y combines them, and fin(seg, j,
 * sums) gets the result. The grid and the order depend only on the shape, not on
 * the device. */
#define FIN_TY 8
static inline dim3 fin_block() { return dim3(COL_TX, FIN_TY); }
static inline unsigned fin_grid(int nseg, int c)
{
    return (unsigned)nseg * (unsigned)((c + COL_TX - 1) / COL_TX);
}

template <int NV, class Fin>
__global__ void k_col_final(const double *part, int nseg, int c, unsigned chunks_per_seg,
                            Fin fin)
{
    __shared__ double buf[NV][FIN_TY][COL_TX];
    const int tiles = (c + COL_TX - 1) / COL_TX;
    const int seg = (int)(blockIdx.x / tiles);
    const int j = (int)(blockIdx.x % tiles) * COL_TX + threadIdx.x;
    double acc[NV];
    for (int v = 0; v < NV; v++)
        acc[v] = 0;
    if (j < c && seg < nseg)
        for (unsigned k = threadIdx.y; k < chunks_per_seg; k += FIN_TY) {
            const double *p = part + ((size_t)seg * chunks_per_seg + k) * NV * (size_t)c + j;
            for (int v = 0; v < NV; v++)
                acc[v] += p[(size_t)v * c];
        }
    for (int v = 0; v < NV; v++)
        buf[v][threadIdx.y][threadIdx.x] = acc[v];
    for (int s = FIN_TY / 2; s > 0; s >>= 1) {
        __syncthreads();
        if ((int)threadIdx.y < s)
            for (int v = 0; v < NV; v++)
                buf[v][threadIdx.y][threadIdx.x] += buf[v][threadIdx.y + s][threadIdx.x];
    }
    __syncthreads();
    if (threadIdx.y == 0 && j < c && seg < nseg) {
        double sums[NV];
        for (int v = 0; v < NV; v++)
            sums[v] = buf[v][0][threadIdx.x];
        fin(seg, j, sums);
    }
}

/* k_col_final over the partials part[(seg * chunks + k) * NV + v][c] */
template <int NV, class Fin>
void col_final(cuda_ctx *ctx, const double *part, int nseg, int c, size_t chunks, Fin fin)
{
    LAUNCH_GRID(ctx, fin_grid(nseg, c), fin_block(), (k_col_final<NV, Fin>), part, nseg, c,
                (unsigned)chunks, fin);
}

template <int NV, class F, class Fin>
void col_sum(cuda_ctx *ctx, int slot, F f, Fin fin, int nseg, size_t rows_per_seg, int c)
{
    if (nseg <= 0 || c <= 0)
        return;
    const size_t rpc = col_rows_per_chunk(rows_per_seg), cps = red_chunks(rows_per_seg, rpc);
    const size_t nblk = (size_t)nseg * cps;
    double *part = (double *)cuda_scratch(ctx, slot, nblk * NV * (size_t)c * sizeof(double));
    LAUNCH_GRID(ctx, col_grid(nblk, c), col_block(), (k_col_partial<NV, F>), f, rows_per_seg, c,
                rpc, (unsigned)cps, part);
    col_final<NV>(ctx, part, nseg, c, cps, fin);
}

#endif
