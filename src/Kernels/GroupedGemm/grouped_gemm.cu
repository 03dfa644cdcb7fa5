// grouped_gemm.cu: Y[rows of e] = X[rows of e] * W[e]^T for every expert e, on tensor cores.
//   x:             [rows, K]     bf16 or f16, rows sorted by expert
//   w:             [E, N, K]     same dtype as x (a Linear's [out, in] per expert)
//   expertOffsets: [E + 1] int   rows of expert e are expertOffsets[e] .. expertOffsets[e+1]-1 (read on the device)
//   rowScale:      [rows] float  optional (null): each output row is multiplied by it (routing weights)
//   y:             [rows, N] or, fused, [rows, N/2]   bf16, f16 or f32
// Fused SiLU-and-mul (fused != 0): W[e] stacks gate rows 0..I-1 over up rows I..2I-1 (N = 2I) and
//   y[r, j] = silu(x[r] . Wg[j]) * (x[r] . Wu[j]). The B tile interleaves gate and up rows (tile row 2j is
//   gate j, 2j+1 is up j), so an mma accumulator pair (c0, c1) holds the gate and up of one output column.
// Work distribution without host knowledge of per-expert counts: a 1-D grid of mTiles x nTiles blocks, where
//   mTiles is an upper bound on the global m-tiles over the experts (expert e owns ceil(count_e / BM) of them):
//   ceil(rows / BM) + min(E, rows). Blocks map to (m-tile, n-tile) in groups of 8 m-tiles (L2 reuse of W);
//   every warp finds its expert by a warp-wide prefix scan over the offsets. Blocks past the real number
//   of tiles exit at once, so empty experts cost nothing.
// Variants (template <BM, BN, WARPS_M, WARPS_N, STAGES, BK>, entry names below):
//   BK = 32: decode 16x64 (4 warps, 12 stages: with few blocks, each must keep ~55 KB of W in flight),
//     medium 64x128 (8 warps, 4 stages), prefill 128x128 (8 warps, 4 stages). Kept for comparison.
//   BK = 64 (the host's choice): decode64 16x64 (4 warps, 6 stages, 60 KB), medium64 64x128 (8 warps, 4 stages,
//     96 KB), large 128x256 (8 warps of 64x64, 3 stages, 144 KB). A stage reads 128 contiguous bytes per row
//     with an L2 256-byte prefetch hint, and there is one barrier per 64 of K instead of per 32.
//   BK = 128 / 256: decode128 16x64 (3 stages, 60 KB, 3 blocks per SM; the host's 16-row tile) and decode256 16x64
//     (3 stages, 120 KB, 1 per SM; A/B only) read 256 / 512 contiguous bytes of each W row per stage. On an H200,
//     Mixtral T = 16 (2026-11-30): decode64 77-80% of the copy floor, decode128 90-93%, decode256 41-42% (too few
//     blocks per SM to keep enough bytes in flight).
//   All: cp.async multi-stage pipeline, swizzled shared tiles, ldmatrix, mma.sync.m16n8k16 with F32 accumulation.
// Split-K (every tensor-core variant; gridDim.y = splits > 1, chosen on the host by GroupedGemmLaunch): split s
//   computes k-tiles s*kTilesPerSplit .. (s+1)*kTilesPerSplit-1 of its output tile and stores its F32 accumulators
//   to partials [splits][gridDim.x][BM*BN] (only the rows the tile really has), then counts itself in
//   counters[tile] (atomicAdd after __threadfence). The block that arrives last sums the partials of splits
//   0, 1, ..., splits-1 in that order (so the result does not depend on which block came last: bit-identical
//   run to run), applies the epilogue, and sets counters[tile] back to 0, so the workspace is reusable by the
//   next launch without a memset (CUDA-graph friendly). With gridDim.y == 1, partials and counters are unused.
//   Dynamic shared memory: STAGES * (BM + BN) * BK * 2 bytes (above 48 KB: the launcher raises the limit;
//   the 144 KB of large fits sm_80 (163 KB) and sm_90 (227 KB)).
// Launch constraints: block = WARPS_M * WARPS_N * 32 threads; K % 8 == 0 (16-byte row chunks; checked
//   on the host); x and w 16-byte aligned. Tails in M, N and K are zero-filled on load and masked on store.
//   Grid (mTiles * nTiles, splits). Split-K: partials hold splits * gridDim.x * BM * BN floats, counters
//   gridDim.x ints that are zero at launch (and are zero again when the kernel ends); one launch at a time per workspace.
// Also here: grouped_gemm_f32, the plain FMA reference path for all-F32 data (32x32 tiles, 256 threads).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"
#include "expert_tiles.cuh"
#include "mma_tiles.cuh"

#define GG_GROUP_M 8

template <typename TIn, typename TOut, int BM, int BN, int WARPS_M, int WARPS_N, int STAGES, int BK>
__device__ __forceinline__ void grouped_gemm_tc(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets,
                                                const float* __restrict__ rowScale, TOut* __restrict__ y,
                                                int rows, int n, int k, int experts, int fused, int mTiles,
                                                float* partials, int* counters, int kTilesPerSplit)
{
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    constexpr int WARP_M = BM / WARPS_M;   // rows per warp
    constexpr int WARP_N = BN / WARPS_N;   // columns per warp
    constexpr int MI = WARP_M / 16;        // m16 fragments per warp
    constexpr int NI = WARP_N / 8;         // n8 fragments per warp (even: B is loaded two n8 blocks at a time)
    constexpr int CHUNKS = BK / 8;         // 16-byte chunks per tile row
    static_assert(MI >= 1 && NI >= 2 && NI % 2 == 0, "warp tile must be a multiple of 16x16");

    extern __shared__ __align__(128) unsigned char sharedBytes[];
    TIn* sharedA = reinterpret_cast<TIn*>(sharedBytes);               // [STAGES][BM][BK]
    TIn* sharedB = sharedA + STAGES * BM * BK;                         // [STAGES][BN][BK]

    // Block -> (m-tile, n-tile) in groups of GG_GROUP_M m-tiles: blocks resident together share a few row tiles
    // and sweep the columns, so each W tile is read from DRAM once per group rather than once per m-tile.
    const int outCols = fused ? n / 2 : n;
    const int colsPerTile = fused ? BN / 2 : BN;
    const int nTiles = ceil_div(outCols, colsPerTile);
    const long long blocksPerGroup = (long long)GG_GROUP_M * nTiles;
    const int firstM = (int)(blockIdx.x / blocksPerGroup) * GG_GROUP_M;
    const int groupRows = min(mTiles - firstM, GG_GROUP_M);
    const int inGroup = (int)(blockIdx.x % blocksPerGroup);
    const int mTile = firstM + inGroup % groupRows;
    const int nTile = inGroup / groupRows;

    int expert, rowBegin, rowEnd;
    // The serial walk: the one-round-trip find_expert_tile took the decode tiles from 56-61 registers to 71-117 and
    // decode64 to 8 bytes of spills (ptxas 11.8, sm_90).
    find_expert_tile_serial(expertOffsets, experts, rows, BM, mTile, expert, rowBegin, rowEnd);
    if (expert < 0)
        return; // the whole block agrees: every warp computed the same answer

    // Output columns of this block. Fused: tile row 2j is gate row (outBegin + j), 2j+1 is up row (I + outBegin + j).
    const int outBegin = nTile * colsPerTile;
    const TIn* wExpert = w + (long long)expert * n * k;

    const int tid = threadIdx.x;
    const int warp = tid >> 5;
    const int lane = tid & 31;
    const int warpRow = (warp / WARPS_N) * WARP_M;
    const int warpCol = (warp % WARPS_N) * WARP_N;
    // This block's K range: all of K, or (split-K) k-tiles [kTileBegin, kTileEnd) of split blockIdx.y.
    const int splits = (int)gridDim.y;
    const int kTileBegin = splits > 1 ? (int)blockIdx.y * kTilesPerSplit : 0;
    const int kTileEnd = splits > 1 ? min(ceil_div(k, BK), kTileBegin + kTilesPerSplit) : ceil_div(k, BK);
    const int kTiles = max(kTileEnd - kTileBegin, 0); // k-tiles of this block

    auto loadStage = [&](int stage, int kTile) {
        const int kBase = kTile * BK;
        TIn* a = sharedA + stage * BM * BK;
        TIn* b = sharedB + stage * BN * BK;
        for (int i = tid; i < BM * CHUNKS; i += THREADS)
        {
            int r = i / CHUNKS, chunk = i % CHUNKS;
            int row = rowBegin + r;
            int kk = kBase + chunk * 8;
            bool valid = row < rowEnd && kk < k;
            const TIn* src = valid ? x + (long long)row * k + kk : x;
            cp_async_16<BK >= 64>(a + swizzled<BK>(r, chunk), src, valid);
        }
        for (int i = tid; i < BN * CHUNKS; i += THREADS)
        {
            int r = i / CHUNKS, chunk = i % CHUNKS;
            int kk = kBase + chunk * 8;
            int wRow;
            bool valid;
            if (fused)
            {
                int j = outBegin + (r >> 1);
                wRow = (r & 1) ? outCols + j : j;
                valid = j < outCols;
            }
            else
            {
                wRow = outBegin + r;
                valid = wRow < n;
            }
            valid = valid && kk < k;
            const TIn* src = valid ? wExpert + (long long)wRow * k + kk : w;
            cp_async_16<BK >= 64>(b + swizzled<BK>(r, chunk), src, valid);
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

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++)
    {
        if (s < kTiles)
            loadStage(s, kTileBegin + s);
        cp_async_commit(); // always commit, so group i is k-tile i even when it is empty
    }

    for (int kTile = 0; kTile < kTiles; kTile++)
    {
        cp_async_wait<STAGES - 2>(); // k-tile kTile has landed (for this thread) ...
        __syncthreads();             // ... for every thread; and every thread is done reading stage (kTile - 1)
        int next = kTile + STAGES - 1;
        if (next < kTiles)
            loadStage(next % STAGES, kTileBegin + next);
        cp_async_commit();

        const TIn* a = sharedA + (kTile % STAGES) * BM * BK;
        const TIn* b = sharedB + (kTile % STAGES) * BN * BK;
#pragma unroll
        for (int k16 = 0; k16 < BK / 16; k16++)
        {
            moe_u32 aFrag[MI][4];
            moe_u32 bFrag[NI][2];
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
            {
                // lanes 0-15: rows 0-15 at k 0-7; lanes 16-31: rows 0-15 at k 8-15 -> a0..a3 in mma order
                int r = warpRow + mi * 16 + (lane & 15);
                int chunk = k16 * 2 + (lane >> 4);
                ldmatrix_x4(aFrag[mi][0], aFrag[mi][1], aFrag[mi][2], aFrag[mi][3], a + swizzled<BK>(r, chunk));
            }
#pragma unroll
            for (int nj = 0; nj < NI / 2; nj++)
            {
                // lanes 0-7: n 0-7, k 0-7; 8-15: n 0-7, k 8-15; 16-23: n 8-15, k 0-7; 24-31: n 8-15, k 8-15
                int r = warpCol + nj * 16 + (lane & 7) + ((lane >> 4) << 3);
                int chunk = k16 * 2 + ((lane >> 3) & 1);
                ldmatrix_x4(bFrag[2 * nj][0], bFrag[2 * nj][1], bFrag[2 * nj + 1][0], bFrag[2 * nj + 1][1], b + swizzled<BK>(r, chunk));
            }
#pragma unroll
            for (int mi = 0; mi < MI; mi++)
#pragma unroll
                for (int ni = 0; ni < NI; ni++)
                    Mma<TIn>::run(acc[mi][ni], aFrag[mi], bFrag[ni]);
        }
    }
    cp_async_wait<0>(); // no copy may still target shared memory when the block exits

    if (splits > 1)
    {
        // Split-K: publish this split's accumulators, then the last block of the tile reduces them. Partial layout
        // per tile: [MI][NI][THREADS] float4 (one float4 per fragment per thread: coalesced 16-byte accesses), and
        // the reducing block has the same thread layout, so each thread reads back exactly its own fragments.
        // Rows past the tile's end are neither written nor read (a 1-row tile moves 1/16 of the bytes).
        const long long tileFloats = (long long)BM * BN;
        const long long tileSlot = blockIdx.x;
        float4* mine = reinterpret_cast<float4*>(partials + ((long long)blockIdx.y * gridDim.x + tileSlot) * tileFloats);
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
        {
            // c0,c1 belong to row (lane/4), c2,c3 to row (lane/4)+8: the float4 is needed if either row exists.
            const bool live = rowBegin + warpRow + mi * 16 + (lane >> 2) < rowEnd;
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
                if (live)
                    __stcg(mine + (mi * NI + ni) * THREADS + tid, make_float4(acc[mi][ni][0], acc[mi][ni][1], acc[mi][ni][2], acc[mi][ni][3]));
        }
        __threadfence(); // this thread's partials are visible device-wide before the block is counted
        __syncthreads(); // every thread of the block has written and fenced, and is done with the shared tiles
        // The arrival verdict lives in the first word of the (now idle) dynamic shared memory: no static shared
        // memory, so the variant's shared bytes stay exactly STAGES * (BM + BN) * BK * 2.
        volatile int* arrivedLast = reinterpret_cast<volatile int*>(sharedBytes);
        if (tid == 0)
            *arrivedLast = atomicAdd(counters + tileSlot, 1) == splits - 1;
        __syncthreads();
        if (!*arrivedLast)
            return;
        __threadfence(); // order the reads below after the other splits' counted writes
#pragma unroll
        for (int mi = 0; mi < MI; mi++)
        {
            const bool live = rowBegin + warpRow + mi * 16 + (lane >> 2) < rowEnd;
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
            {
                if (!live)
                    continue;
                float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                for (int s = 0; s < splits; s++) // fixed order: deterministic whichever split arrived last
                {
                    const float4* part = reinterpret_cast<const float4*>(partials + ((long long)s * gridDim.x + tileSlot) * tileFloats);
                    float4 p = __ldcg(part + (mi * NI + ni) * THREADS + tid);
                    sum.x += p.x;
                    sum.y += p.y;
                    sum.z += p.z;
                    sum.w += p.w;
                }
                acc[mi][ni][0] = sum.x;
                acc[mi][ni][1] = sum.y;
                acc[mi][ni][2] = sum.z;
                acc[mi][ni][3] = sum.w;
            }
        }
        if (tid == 0)
            counters[tileSlot] = 0; // every split of this tile has arrived: nobody else touches the counter this launch
    }

    // Epilogue. Accumulator c0,c1: row (lane/4), columns 2*(lane%4) + {0,1}; c2,c3: row + 8.
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int half = 0; half < 2; half++)
        {
            int row = rowBegin + warpRow + mi * 16 + (lane >> 2) + half * 8;
            if (row >= rowEnd)
                continue;
            float scale = rowScale ? rowScale[row] : 1.0f;
            TOut* yRow = y + (long long)row * outCols;
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
            {
                int tileCol = warpCol + ni * 8 + (lane & 3) * 2;
                float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
                if (fused)
                {
                    int col = outBegin + (tileCol >> 1);
                    if (col < outCols)
                        yRow[col] = from_float<TOut>(silu(v0) * v1 * scale);
                }
                else
                {
                    int col = outBegin + tileCol;
                    if (col + 1 < n)
                        store_pair(yRow + col, v0 * scale, v1 * scale);
                    else if (col < n)
                        yRow[col] = from_float<TOut>(v0 * scale);
                }
            }
        }
}

#define GG_ENTRY(NAME, TIN, TOUT, BM, BN, WM, WN, ST, BK)                                                                   \
    extern "C" __global__ void __launch_bounds__(WM * WN * 32) NAME(                                                      \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ expertOffsets,                      \
        const float* __restrict__ rowScale, TOUT* __restrict__ y, int rows, int n, int k, int experts, int fused,          \
        int mTiles, float* partials, int* counters, int kTilesPerSplit)                                                   \
    {                                                                                                                     \
        moe_wait_prior_grid();                                                                                            \
        grouped_gemm_tc<TIN, TOUT, BM, BN, WM, WN, ST, BK>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused,  \
                                                       mTiles, partials, counters, kTilesPerSplit);                       \
    }

#define GG_VARIANTS(SUFFIX, TIN, TOUT)                                    \
    GG_ENTRY(grouped_gemm_decode_##SUFFIX, TIN, TOUT, 16, 64, 1, 4, 12, 32)      \
    GG_ENTRY(grouped_gemm_medium_##SUFFIX, TIN, TOUT, 64, 128, 2, 4, 4, 32)      \
    GG_ENTRY(grouped_gemm_prefill_##SUFFIX, TIN, TOUT, 128, 128, 2, 4, 4, 32)    \
    GG_ENTRY(grouped_gemm_decode64_##SUFFIX, TIN, TOUT, 16, 64, 1, 4, 6, 64)     \
    GG_ENTRY(grouped_gemm_decode128_##SUFFIX, TIN, TOUT, 16, 64, 1, 4, 3, 128)   \
    GG_ENTRY(grouped_gemm_decode256_##SUFFIX, TIN, TOUT, 16, 64, 1, 4, 3, 256)   \
    GG_ENTRY(grouped_gemm_medium64_##SUFFIX, TIN, TOUT, 64, 128, 2, 4, 4, 64)    \
    GG_ENTRY(grouped_gemm_large_##SUFFIX, TIN, TOUT, 128, 256, 2, 4, 3, 64)

// One dtype pair a build: the host defines GG_ONE_PAIR and GG_PAIR_<in>_<out> (GG_PAIR_f32 for the F32 kernel), so a
// first use compiles 8 entries or 1, not all 49 (57 s by NVRTC 13 on the H200 machine's host). Neither: every entry.
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_bf16_bf16)
GG_VARIANTS(bf16_bf16, bf16, bf16)
#endif
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_bf16_f32)
GG_VARIANTS(bf16_f32, bf16, float)
#endif
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_f16_f16)
GG_VARIANTS(f16_f16, f16, f16)
#endif
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_f16_f32)
GG_VARIANTS(f16_f32, f16, float)
#endif
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_bf16_f16)
GG_VARIANTS(bf16_f16, bf16, f16)
#endif
#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_f16_bf16)
GG_VARIANTS(f16_bf16, f16, bf16)
#endif

#if !defined(GG_ONE_PAIR) || defined(GG_PAIR_f32)
// All-F32 reference path: 32x32 output tile per block of 32x8 threads, each thread 4 rows of one column.
// Same tile walk as above (block y = global 32-row tile). No K restriction.
extern "C" __global__ void __launch_bounds__(256) grouped_gemm_f32(
    const float* __restrict__ x, const float* __restrict__ w, const int* __restrict__ expertOffsets,
    const float* __restrict__ rowScale, float* __restrict__ y, int rows, int n, int k, int experts, int fused)
{
    moe_wait_prior_grid();
    __shared__ float tileX[32][33];
    __shared__ float tileW[32][33]; // [tile row (logical W row)][k]
    int expert, rowBegin, rowEnd;
    find_expert_tile_serial(expertOffsets, experts, rows, 32, blockIdx.y, expert, rowBegin, rowEnd);
    if (expert < 0)
        return;
    const int outCols = fused ? n / 2 : n;
    const int outBegin = blockIdx.x * (fused ? 16 : 32);
    const float* wExpert = w + (long long)expert * n * k;
    const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int kBase = 0; kBase < k; kBase += 32)
    {
        for (int i = ty; i < 32; i += 8)
        {
            int row = rowBegin + i, kk = kBase + tx;
            tileX[i][tx] = (row < rowEnd && kk < k) ? x[(long long)row * k + kk] : 0.0f;
            int wRow;
            bool valid;
            if (fused)
            {
                int j = outBegin + (i >> 1);
                wRow = (i & 1) ? outCols + j : j;
                valid = j < outCols;
            }
            else
            {
                wRow = outBegin + i;
                valid = wRow < n;
            }
            tileW[i][tx] = (valid && kk < k) ? wExpert[(long long)wRow * k + kk] : 0.0f;
        }
        __syncthreads();
        for (int kk = 0; kk < 32; kk++)
        {
            float wv = tileW[tx][kk];
#pragma unroll
            for (int i = 0; i < 4; i++)
                acc[i] = fmaf(tileX[ty + 8 * i][kk], wv, acc[i]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        int row = rowBegin + ty + 8 * i;
        if (row >= rowEnd)
            continue;
        float scale = rowScale ? rowScale[row] : 1.0f;
        if (fused)
        {
            // Column tx holds gate (even tx) or up (odd tx) of output column outBegin + tx/2.
            float partner = __shfl_xor_sync(0xffffffffu, acc[i], 1);
            int col = outBegin + (tx >> 1);
            if ((tx & 1) == 0 && col < outCols)
                y[(long long)row * outCols + col] = silu(acc[i]) * partner * scale;
        }
        else
        {
            int col = outBegin + tx;
            if (col < n)
                y[(long long)row * n + col] = acc[i] * scale;
        }
    }
}
#endif
