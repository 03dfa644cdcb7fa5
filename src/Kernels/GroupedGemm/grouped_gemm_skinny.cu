// grouped_gemm_skinny.cu: Y = X * W^T for ONE matrix and few rows (2..128): the MoE layer's dense calls (router GEMM,
// shared expert gate_up and down, shared-expert gate), where a tile per output block leaves most SMs idle and a block
// that walks all of K streams W far slower than the device can. Here every block holds ALL the call's rows and BN = 128
// columns (W rows) over a short K range (split-K), so the grid covers the SMs with short, fully pipelined K walks.
//   x:          [rows, K]   bf16 or f16; the call's rows are rowBegin .. rowEnd-1 = offsets[0] .. offsets[1]-1
//                           (read on the device, clamped to [0, rows]: graph-capturable, never out of bounds)
//   w:          [N, K]      same dtype as x (a Linear's [out, in])
//   offsets:    [2] int     (the grouped GEMM's expertOffsets with one expert)
//   partials:   [splits, rows, N] float   workspace: split s's F32 sums of local row r (r = row - rowBegin), W row c
//   counters:   [N / 128 rounded up] int  workspace, folded reduction only: zero at launch, zero again at the end
//   rowScale:   [rows] float  optional (null): y[row, :] *= rowScale[row]
//   y:          [rows, N] or, fused, [rows, N/2]   f32, bf16 or f16 (outType 0, 1, 2); rows outside [rowBegin, rowEnd) are not written
// Column block c (blockIdx.x) holds 128 W rows: plain, W rows 128c .. 128c+127 (output columns the same); fused SiLU-and-mul
//   (W stacks gate rows 0..I-1 over up rows I..2I-1, N = 2I), gate rows 64c .. 64c+63 over up rows I+64c .. I+64c+63, so
//   the block holds both operands of output columns 64c .. 64c+63: y[r, j] = silu(gate_j) * up_j. Either way ceil(N / 128) blocks.
// grouped_gemm_skinny{MT}[w]_{in}: grid (ceil(N / 128), splits), 256 threads. Block (c, s) multiplies the call's rows (at
//   most MT: 16, 32, 64 or 128, chosen by the host from the row bound) by its 128 W rows over k-tiles s*kTilesPerSplit ..
//   (s+1)*kTilesPerSplit-1 (a k-tile is a pipeline stage: 64 of K, or 128 for the wide "w" tiles). cp.async multi-stage
//   pipeline, swizzled shared tiles, ldmatrix, mma.sync m16n8k16 with F32 accumulation (mma_tiles.cuh). Then, by fold:
//   fold = 0 (MOE_SKINNY_REDUCE=kernel): it stores its F32 sums to partials[s] (zeros for an empty K range, so the reduction
//     never reads stale data), and grouped_gemm_skinny_reduce_{out} runs after it (below).
//   fold = 1 (the default), one split: no partials; the block stages its sums in its idle shared memory and writes y itself.
//   fold = 1, several splits: it stores partials[s], __threadfence(), and counts itself in counters[c] (atomicAdd); the
//     block that arrives last (splits - 1 before it) sums all splits' partials of its column block with all its threads,
//     applies the epilogue, and sets counters[c] back to 0, so the next launch and CUDA graph replays need no memset.
// grouped_gemm_skinny_reduce_{out}: a thread per 4 output columns (per column where they are not a multiple of 4),
//   grid-stride: the same split sums and epilogue as the folded reduction.
// Every reduction sums splits 0, 1, ..., splits-1 in that order, from 0.0f, through one function (sum_splits), then the
//   epilogue (plain, or fused SiLU-and-mul, times the row scale, in y's dtype): the two paths give the same bits, and
//   every run gives the same bits whichever block arrives last.
// Launch constraints (checked on the host): rows <= MT; K % 8 == 0 (16-byte row chunks); x and w 16-byte aligned; N even
//   when fused; partials hold splits * rows * N floats; folded with several splits, counters hold ceil(N / 128) ints
//   that are zero at launch; one launch at a time per workspace. Tails in rows, N and K are zero-filled on load and masked
//   on store. Dynamic shared memory of the first kernel: STAGES * (MT + 128) * 64 * KSUB * 2 bytes (the wide 128-row
//   tile's 192 KB needs sm_90's opt-in limit; the host falls back to the narrow tile where it does not fit).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"
#include "mma_tiles.cuh"

#define SK_BN 128   // W rows (raw output columns) per block
#define SK_BK 64    // K per sub-tile (128 contiguous bytes of each row); a stage holds KSUB sub-tiles
#define SK_WARPS 8
#define SK_STAGED (SK_BN + 4) // floats per row of the single-split staging tile (16-byte aligned rows)

__device__ __forceinline__ void call_rows(const int* __restrict__ offsets, int rows, int& rowBegin, int& rowEnd)
{
    rowBegin = min(max(offsets[0], 0), rows);
    rowEnd = min(max(offsets[1], rowBegin), rows);
}

// The W row that tile row r (0..127) of column block c holds, or -1 past the weights: plain, 128c + r; fused, gate rows
// 64c .. 64c+63 (r < 64) over up rows I + 64c .. (r >= 64), both valid while 64c + r % 64 < I.
__device__ __forceinline__ int tile_w_row(int colBlock, int r, int n, int fused)
{
    if (!fused)
    {
        const int row = colBlock * SK_BN + r;
        return row < n ? row : -1;
    }
    const int half = n >> 1, j = colBlock * (SK_BN / 2) + (r & (SK_BN / 2 - 1));
    return j >= half ? -1 : r < SK_BN / 2 ? j : half + j;
}

// ---- The split sums and the epilogue, shared by every path so their float operations are the same ----

template <int VEC> struct ReduceLoad { typedef float type; };
template <> struct ReduceLoad<4> { typedef float4 type; };
__device__ __forceinline__ void add_to(float (&acc)[1], float v) { acc[0] += v; }
__device__ __forceinline__ void add_to(float (&acc)[4], float4 v)
{
    acc[0] += v.x;
    acc[1] += v.y;
    acc[2] += v.z;
    acc[3] += v.w;
}

// SHARED: the sums come from shared memory (one split staged by the block) rather than the global partials (L2 loads).
template <int VEC, bool SHARED>
__device__ __forceinline__ typename ReduceLoad<VEC>::type load_sum(const float* p)
{
    typedef typename ReduceLoad<VEC>::type Load;
    if (SHARED)
        return *reinterpret_cast<const Load*>(p);
    return __ldcg(reinterpret_cast<const Load*>(p));
}

// VEC consecutive outputs: splits 0, 1, ..., splits-1 summed in that order from 0.0f (gate at p + s * splitStride, up
// upOffset floats further when FUSED), then the epilogue: silu(gate) * up * scale, or gate * scale. UNROLL only sets how
// many splits' loads are in flight at once (the folded reduction, on the critical path, takes 8); the operations and
// their order are the same for every UNROLL.
template <int VEC, bool SHARED, bool FUSED, int UNROLL>
__device__ __forceinline__ void sum_splits(const float* p, long long splitStride, int upOffset, int splits, float scale, float (&out)[VEC])
{
    float gate[VEC], up[VEC];
#pragma unroll
    for (int v = 0; v < VEC; v++)
        gate[v] = up[v] = 0.0f;
#pragma unroll UNROLL
    for (int s = 0; s < splits; s++)
    {
        add_to(gate, load_sum<VEC, SHARED>(p + s * splitStride));
        if (FUSED)
            add_to(up, load_sum<VEC, SHARED>(p + s * splitStride + upOffset));
    }
#pragma unroll
    for (int v = 0; v < VEC; v++)
        out[v] = FUSED ? silu(gate[v]) * up[v] * scale : gate[v] * scale;
}

// y's dtype chosen at run time in the partial kernel (one entry per tile and input dtype serves every output dtype).
template <int VEC>
__device__ __forceinline__ void store_out(void* y, int outType, long long index, const float (&v)[VEC])
{
#pragma unroll
    for (int i = 0; i < VEC; i++)
    {
        if (outType == 0)
            static_cast<float*>(y)[index + i] = v[i];
        else if (outType == 1)
            static_cast<bf16*>(y)[index + i] = from_float<bf16>(v[i]);
        else
            static_cast<f16*>(y)[index + i] = from_float<f16>(v[i]);
    }
}

// The epilogue of one column block by all its threads: output columns outBegin .. outBegin + outWidth - 1 of local rows
// 0 .. m-1, whose sums lie at src + r * srcRowStride + c (c = column - outBegin; up, split s as in sum_splits).
template <int VEC, bool SHARED, bool FUSED, int UNROLL>
__device__ __forceinline__ void block_epilogue(const float* src, long long srcRowStride, long long splitStride, int upOffset, int splits,
                                               const float* __restrict__ rowScale, void* y, int outType, int rowBegin, int m,
                                               int outCols, int outBegin, int outWidth)
{
    const int groups = outWidth / VEC; // VEC divides outWidth
    for (int i = threadIdx.x; i < m * groups; i += blockDim.x)
    {
        const int r = i / groups, c = (i % groups) * VEC;
        const int row = rowBegin + r;
        const float scale = rowScale != nullptr ? rowScale[row] : 1.0f;
        float v[VEC];
        sum_splits<VEC, SHARED, FUSED, UNROLL>(src + r * srcRowStride + c, splitStride, upOffset, splits, scale, v);
        store_out<VEC>(y, outType, (long long)row * outCols + outBegin + c, v);
    }
}

// block_epilogue with VEC (4 where the output columns are a multiple of 4) and FUSED chosen at run time. Fused, half
// the splits at once (two loads a split): the same loads in flight, and registers the GEMM's occupancy can afford.
template <bool SHARED, int UNROLL>
__device__ __forceinline__ void block_epilogue_any(const float* src, long long srcRowStride, long long splitStride, int upOffset, int splits,
                                                   const float* __restrict__ rowScale, void* y, int outType, int rowBegin, int m,
                                                   int outCols, int outBegin, int outWidth, int fused)
{
    if (outCols % 4 == 0) // then outBegin, outWidth, N, I and the staging rows keep float4s aligned
    {
        if (fused)
            block_epilogue<4, SHARED, true, (UNROLL + 1) / 2>(src, srcRowStride, splitStride, upOffset, splits, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth);
        else
            block_epilogue<4, SHARED, false, UNROLL>(src, srcRowStride, splitStride, upOffset, splits, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth);
    }
    else if (fused)
        block_epilogue<1, SHARED, true, (UNROLL + 1) / 2>(src, srcRowStride, splitStride, upOffset, splits, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth);
    else
        block_epilogue<1, SHARED, false, UNROLL>(src, srcRowStride, splitStride, upOffset, splits, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth);
}

// ---- The GEMM ----
// partials and counters carry no __restrict__: other blocks write them, and the last block reads them back after a fence.

// MT: rows per block (the call's rows, padded); WARPS_M warps along the rows, SK_WARPS / WARPS_M along the columns.
// KSUB: 64-wide K sub-tiles per pipeline stage (1: 128 bytes of each row per stage; 2, the "wide" tiles: 256 bytes, half
// the stages and barriers per K). A stage is [KSUB][rows][64] in shared memory, each sub-tile swizzled on its own.
template <typename TIn, int MT, int WARPS_M, int STAGES, int KSUB>
__device__ __forceinline__ void skinny_gemm(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ offsets,
                                            float* partials, int* counters, const float* __restrict__ rowScale,
                                            void* y, int outType, int rows, int n, int k, int kTilesPerSplit, int fused, int fold)
{
    constexpr int WARPS_N = SK_WARPS / WARPS_M;
    constexpr int THREADS = SK_WARPS * 32;
    constexpr int WARP_M = MT / WARPS_M;
    constexpr int WARP_N = SK_BN / WARPS_N;
    constexpr int MI = WARP_M / 16;
    constexpr int NI = WARP_N / 8;
    constexpr int CHUNKS = SK_BK / 8;   // 16-byte chunks per row of a sub-tile
    constexpr int KT = SK_BK * KSUB;     // K per stage
    static_assert(MI >= 1 && NI >= 2 && NI % 2 == 0, "warp tile must be a multiple of 16x16");
    static_assert(MT * SK_STAGED * 4 <= STAGES * (MT + SK_BN) * KT * 2, "the single-split staging tile fits the pipeline's shared memory");

    extern __shared__ __align__(128) unsigned char sharedBytes[];
    TIn* sharedA = reinterpret_cast<TIn*>(sharedBytes); // [STAGES][KSUB][MT][SK_BK]
    TIn* sharedB = sharedA + STAGES * MT * KT;           // [STAGES][KSUB][SK_BN][SK_BK]

    int rowBegin, rowEnd;
    call_rows(offsets, rows, rowBegin, rowEnd);
    const int m = min(rowEnd - rowBegin, MT); // the host guarantees rows <= MT
    if (m <= 0)
        return; // every block of the launch returns here (same offsets): no counter is touched

    const int colBlock = blockIdx.x;
    const int kTilesAll = ceil_div(k, KT);
    const int kTileBegin = (int)blockIdx.y * kTilesPerSplit;
    const int kTiles = max(min(kTilesAll, kTileBegin + kTilesPerSplit) - kTileBegin, 0);

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int warpRow = (warp / WARPS_N) * WARP_M;
    const int warpCol = (warp % WARPS_N) * WARP_N;
    const int mPadded = ceil_div(m, 16) * 16; // A rows past this are never read by an mma that matters: skip their copies

    // Consecutive threads copy consecutive 16-byte chunks of a row: KT * 2 contiguous bytes per row and stage.
    auto loadStage = [&](int stage, int kTile) {
        const int kBase = kTile * KT;
        TIn* a = sharedA + stage * MT * KT;
        TIn* b = sharedB + stage * SK_BN * KT;
        for (int i = tid; i < mPadded * CHUNKS * KSUB; i += THREADS)
        {
            int r = i / (CHUNKS * KSUB), c = i % (CHUNKS * KSUB);
            int kk = kBase + c * 8;
            bool valid = r < m && kk < k;
            const TIn* src = valid ? x + (long long)(rowBegin + r) * k + kk : x;
            cp_async_16<true>(a + (c / CHUNKS) * MT * SK_BK + swizzled<SK_BK>(r, c % CHUNKS), src, valid);
        }
        for (int i = tid; i < SK_BN * CHUNKS * KSUB; i += THREADS)
        {
            int r = i / (CHUNKS * KSUB), c = i % (CHUNKS * KSUB);
            int kk = kBase + c * 8;
            int wRow = tile_w_row(colBlock, r, n, fused);
            bool valid = wRow >= 0 && kk < k;
            const TIn* src = valid ? w + (long long)wRow * k + kk : w;
            cp_async_16<true>(b + (c / CHUNKS) * SK_BN * SK_BK + swizzled<SK_BK>(r, c % CHUNKS), src, valid);
        }
    };

    float acc[MI][NI][4];
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int ni = 0; ni < NI; ni++)
#pragma unroll
            for (int q = 0; q < 4; q++)
                acc[mi][ni][q] = 0.0f;

    // A warp whose rows all lie past the call's rows skips the mma (its accumulators stay zero and are not stored).
    const bool warpHasRows = warpRow < m;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++)
    {
        if (s < kTiles)
            loadStage(s, kTileBegin + s);
        cp_async_commit(); // always commit, so group i is k-tile i even when it is empty
    }

    for (int kTile = 0; kTile < kTiles; kTile++)
    {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        int next = kTile + STAGES - 1;
        if (next < kTiles)
            loadStage(next % STAGES, kTileBegin + next);
        cp_async_commit();
        if (!warpHasRows)
            continue;

#pragma unroll
        for (int sub = 0; sub < KSUB; sub++)
#pragma unroll
        for (int k16 = 0; k16 < SK_BK / 16; k16++)
        {
            const TIn* a = sharedA + (kTile % STAGES) * MT * KT + sub * MT * SK_BK;
            const TIn* b = sharedB + (kTile % STAGES) * SK_BN * KT + sub * SK_BN * SK_BK;
            moe_u32 aFrag[MI][4];
            moe_u32 bFrag[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
            {
                int r = warpRow + mi * 16 + (lane & 15);
                int chunk = k16 * 2 + (lane >> 4);
                if (warpRow + mi * 16 < mPadded)
                    ldmatrix_x4(aFrag[mi][0], aFrag[mi][1], aFrag[mi][2], aFrag[mi][3], a + swizzled<SK_BK>(r, chunk));
                else
                    aFrag[mi][0] = aFrag[mi][1] = aFrag[mi][2] = aFrag[mi][3] = 0u; // rows never loaded this launch
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; nj++)
            {
                int r = warpCol + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                int chunk = k16 * 2 + ((lane >> 3) & 1);
                ldmatrix_x4(bFrag[2 * nj][0], bFrag[2 * nj][1], bFrag[2 * nj + 1][0], bFrag[2 * nj + 1][1], b + swizzled<SK_BK>(r, chunk));
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
                if (warpRow + mi * 16 < mPadded)
#pragma unroll
                    for (int ni = 0; ni < NI; ni++)
                        Mma<TIn>::run(acc[mi][ni], aFrag[mi], bFrag[ni]);
        }
    }
    cp_async_wait<0>(); // no copy may still target shared memory when the block exits or reuses it

    const int splits = gridDim.y;
    const int outCols = fused ? n / 2 : n;
    const int outBegin = fused ? colBlock * (SK_BN / 2) : colBlock * SK_BN;
    const int outWidth = min(fused ? SK_BN / 2 : SK_BN, outCols - outBegin);

    // Accumulator c0,c1 = local row (lane/4), tile columns 2*(lane%4) + {0,1}; c2,c3 = row + 8. Rows past m are not
    // stored (no reduction reads them).
    if (fold && splits == 1)
    {
        // One split: the sums are final. Staged in the idle shared memory as [m][SK_STAGED] by tile column, then the
        // block's epilogue reads gate (and up, 64 columns on) from there.
        __syncthreads(); // every warp is done with the pipeline's tiles
        float* staged = reinterpret_cast<float*>(sharedBytes);
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
#pragma unroll
            for (int half = 0; half < 2; half++)
            {
                int r = warpRow + mi * 16 + (lane >> 2) + half * 8;
                if (r >= m)
                    continue;
#pragma unroll
                for (int ni = 0; ni < NI; ni++)
                {
                    int tileCol = warpCol + ni * 8 + (lane & 3) * 2;
                    *reinterpret_cast<float2*>(staged + r * SK_STAGED + tileCol) = make_float2(acc[mi][ni][half * 2], acc[mi][ni][half * 2 + 1]);
                }
            }
        __syncthreads();
        block_epilogue_any<true, 1>(staged, SK_STAGED, 0, SK_BN / 2, 1, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth, fused);
        return;
    }

    // partials[s][r][W row]: pairs as one 8-byte store where both W rows follow each other at an even index.
    float* part = partials + (long long)blockIdx.y * rows * n;
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int half = 0; half < 2; half++)
        {
            int r = warpRow + mi * 16 + (lane >> 2) + half * 8;
            if (r >= m)
                continue;
            float* pRow = part + (long long)r * n;
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
            {
                int tileCol = warpCol + ni * 8 + (lane & 3) * 2;
                int w0 = tile_w_row(colBlock, tileCol, n, fused), w1 = tile_w_row(colBlock, tileCol + 1, n, fused);
                float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
                if (w0 >= 0 && w1 == w0 + 1 && (w0 & 1) == 0 && (n & 1) == 0)
                {
                    __stcg(reinterpret_cast<float2*>(pRow + w0), make_float2(v0, v1));
                }
                else
                {
                    if (w0 >= 0)
                        __stcg(pRow + w0, v0);
                    if (w1 >= 0)
                        __stcg(pRow + w1, v1);
                }
            }
        }
    if (!fold)
        return; // grouped_gemm_skinny_reduce_{out} follows

    // Several splits, folded: the last block of this column block to arrive sums every split's partials.
    __threadfence(); // this thread's partials are visible device-wide before the block is counted
    __syncthreads(); // every thread of the block has written and fenced, and none reads the shared tiles any more
    volatile int* arrivedLast = reinterpret_cast<volatile int*>(sharedBytes);
    if (tid == 0)
        *arrivedLast = atomicAdd(counters + colBlock, 1) == splits - 1;
    __syncthreads();
    if (!*arrivedLast)
        return;
    __threadfence(); // order the reads below after the other splits' counted writes
    const long long splitStride = (long long)rows * n;
    block_epilogue_any<false, 8>(partials + outBegin, n, splitStride, outCols, splits, rowScale, y, outType, rowBegin, m, outCols, outBegin, outWidth, fused);
    if (tid == 0)
        counters[colBlock] = 0; // every split of this column block has arrived: nobody else touches the counter this launch
}

// The separate reduction (fold = 0): VEC consecutive output columns per thread and step of a grid-stride loop (4: one
// float4 per split and operand, when the output columns and N are multiples of 4, so every float4 is aligned).
template <int VEC, bool FUSED, typename TOut>
__device__ __forceinline__ void skinny_reduce_vec(const float* __restrict__ partials, const float* __restrict__ rowScale, TOut* __restrict__ y,
                                                  int rowBegin, int m, int rows, int n, int outCols, int splits)
{
    const int groups = outCols / VEC; // VEC divides outCols
    const long long total = (long long)m * groups;
    const long long splitStride = (long long)rows * n;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    {
        const int r = (int)(i / groups), c = (int)(i % groups) * VEC;
        const int row = rowBegin + r;
        const float scale = rowScale != nullptr ? rowScale[row] : 1.0f;
        float v[VEC];
        sum_splits<VEC, false, FUSED, 4>(partials + (long long)r * n + c, splitStride, outCols, splits, scale, v);
        TOut* out = y + (long long)row * outCols + c;
#pragma unroll
        for (int q = 0; q < VEC; q++)
            out[q] = from_float<TOut>(v[q]);
    }
}

template <typename TOut>
__device__ __forceinline__ void skinny_reduce(const float* __restrict__ partials, const int* __restrict__ offsets,
                                              const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int fused, int splits)
{
    int rowBegin, rowEnd;
    call_rows(offsets, rows, rowBegin, rowEnd);
    const int outCols = fused ? n / 2 : n;
    const int m = rowEnd - rowBegin;
    if (outCols % 4 == 0) // then N (= outCols or 2 outCols) is a multiple of 4 too
    {
        if (fused)
            skinny_reduce_vec<4, true>(partials, rowScale, y, rowBegin, m, rows, n, outCols, splits);
        else
            skinny_reduce_vec<4, false>(partials, rowScale, y, rowBegin, m, rows, n, outCols, splits);
    }
    else if (fused)
        skinny_reduce_vec<1, true>(partials, rowScale, y, rowBegin, m, rows, n, outCols, splits);
    else
        skinny_reduce_vec<1, false>(partials, rowScale, y, rowBegin, m, rows, n, outCols, splits);
}

// MT 16: one warp row of 16 x 16 warp tiles; 32: 2 x 4 warps of 16 x 32; 64: 32 x 32; 128: 64 x 32 (3 stages: 96 KB).
// The wide tiles (KSUB 2, entry suffix "w"): 3 stages of 256 bytes per row (108 KB for 16 rows .. 192 KB for 128).
// Blocks per SM in the launch bounds: what sm_90's shared memory holds (GroupedGemmSkinny.BlocksPerSm, which the host's
// split count assumes), at least 2: 3 for the narrow 16-row tile (72 KB), so its registers stay at 80 or fewer.
#define SK_MIN_BLOCKS(MT, KSUB) ((MT) == 16 && (KSUB) == 1 ? 3 : 2)
#define SK_PARTIAL(MT, WARPS_M, STAGES, KSUB, NAME, SUFFIX, TIN)                                                              \
    extern "C" __global__ void __launch_bounds__(SK_WARPS * 32, SK_MIN_BLOCKS(MT, KSUB)) NAME##_##SUFFIX(                    \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ offsets, float* partials,               \
        int* counters, const float* __restrict__ rowScale, void* y, int outType, int rows, int n, int k,                     \
        int kTilesPerSplit, int fused, int fold)                                                                              \
    {                                                                                                                         \
        moe_wait_prior_grid();                                                                                               \
        skinny_gemm<TIN, MT, WARPS_M, STAGES, KSUB>(x, w, offsets, partials, counters, rowScale, y, outType, rows, n, k,    \
                                                    kTilesPerSplit, fused, fold);                                             \
    }

// One dtype and one entry a build: the host defines SK_ONE_DTYPE and SK_DTYPE_<f32|bf16|f16>, and SK_ONE_GROUP and
// SK_GROUP_<16|32|64|128|16w|32w|64w|128w|reduce>; it loads a partial entry from its operands' build of its tile and a
// reduce from its output's reduce build, so a first use compiles the one entry it launches (one dtype's entries took
// 7.4-8.4 s by NVRTC 13 on the H200 machine's host, all of them 20.7 s). Neither pair: every entry.
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_16)
#define SK_TILE_ENTRY_16(SUFFIX, TIN) SK_PARTIAL(16, 1, 4, 1, grouped_gemm_skinny16, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_16(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_32)
#define SK_TILE_ENTRY_32(SUFFIX, TIN) SK_PARTIAL(32, 2, 4, 1, grouped_gemm_skinny32, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_32(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_64)
#define SK_TILE_ENTRY_64(SUFFIX, TIN) SK_PARTIAL(64, 2, 4, 1, grouped_gemm_skinny64, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_64(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_128)
#define SK_TILE_ENTRY_128(SUFFIX, TIN) SK_PARTIAL(128, 2, 3, 1, grouped_gemm_skinny128, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_128(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_16w)
#define SK_TILE_ENTRY_16w(SUFFIX, TIN) SK_PARTIAL(16, 1, 3, 2, grouped_gemm_skinny16w, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_16w(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_32w)
#define SK_TILE_ENTRY_32w(SUFFIX, TIN) SK_PARTIAL(32, 2, 3, 2, grouped_gemm_skinny32w, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_32w(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_64w)
#define SK_TILE_ENTRY_64w(SUFFIX, TIN) SK_PARTIAL(64, 2, 3, 2, grouped_gemm_skinny64w, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_64w(SUFFIX, TIN)
#endif
#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_128w)
#define SK_TILE_ENTRY_128w(SUFFIX, TIN) SK_PARTIAL(128, 2, 3, 2, grouped_gemm_skinny128w, SUFFIX, TIN)
#else
#define SK_TILE_ENTRY_128w(SUFFIX, TIN)
#endif

#define SK_PARTIALS(SUFFIX, TIN)                                    \
    SK_TILE_ENTRY_16(SUFFIX, TIN)                                   \
    SK_TILE_ENTRY_32(SUFFIX, TIN)                                   \
    SK_TILE_ENTRY_64(SUFFIX, TIN)                                   \
    SK_TILE_ENTRY_128(SUFFIX, TIN)                                  \
    SK_TILE_ENTRY_16w(SUFFIX, TIN)                                  \
    SK_TILE_ENTRY_32w(SUFFIX, TIN)                                  \
    SK_TILE_ENTRY_64w(SUFFIX, TIN)                                  \
    SK_TILE_ENTRY_128w(SUFFIX, TIN)

#if !defined(SK_ONE_DTYPE) || defined(SK_DTYPE_bf16)
SK_PARTIALS(bf16, bf16)
#endif
#if !defined(SK_ONE_DTYPE) || defined(SK_DTYPE_f16)
SK_PARTIALS(f16, f16)
#endif

#define SK_REDUCE(SUFFIX, TOUT)                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) grouped_gemm_skinny_reduce_##SUFFIX(                                  \
        const float* __restrict__ partials, const int* __restrict__ offsets, const float* __restrict__ rowScale,            \
        TOUT* __restrict__ y, int rows, int n, int fused, int splits)                                                       \
    {                                                                                                                        \
        moe_wait_prior_grid();                                                                                               \
        skinny_reduce<TOUT>(partials, offsets, rowScale, y, rows, n, fused, splits);                                         \
    }

#if !defined(SK_ONE_GROUP) || defined(SK_GROUP_reduce)
#if !defined(SK_ONE_DTYPE) || defined(SK_DTYPE_f32)
SK_REDUCE(f32, float)
#endif
#if !defined(SK_ONE_DTYPE) || defined(SK_DTYPE_bf16)
SK_REDUCE(bf16, bf16)
#endif
#if !defined(SK_ONE_DTYPE) || defined(SK_DTYPE_f16)
SK_REDUCE(f16, f16)
#endif
#endif
