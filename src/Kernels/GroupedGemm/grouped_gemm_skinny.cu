// grouped_gemm_skinny.cu: Y = X * W^T for ONE matrix and few rows (2..128): the MoE layer's dense calls (router GEMM,
// shared expert gate_up and down, shared-expert gate), where a tile per output block leaves most SMs idle and a block
// that walks all of K streams W far slower than the device can. Here every block holds ALL the call's rows and BN = 128
// columns (W rows) over a short K range (split-K), so the grid covers the SMs with short, fully pipelined K walks.
//   x:          [rows, K]   bf16 or f16; the call's rows are rowBegin .. rowEnd-1 = offsets[0] .. offsets[1]-1
//                           (read on the device, clamped to [0, rows]: graph-capturable, never out of bounds)
//   w:          [N, K]      same dtype as x (a Linear's [out, in])
//   offsets:    [2] int     (the grouped GEMM's expertOffsets with one expert)
//   partials:   [splits, rows, N] float   workspace: split s's F32 sums of local row r (r = row - rowBegin), column c
//   rowScale:   [rows] float  optional (null): y[row, :] *= rowScale[row]
//   y:          [rows, N] or, fused, [rows, N/2]   f32, bf16 or f16; rows outside [rowBegin, rowEnd) are not written
// Two kernels, one after the other on a stream:
//   grouped_gemm_skinny{MT}[w]_{in}: grid (ceil(N / 128), splits), 256 threads. Block (c, s) multiplies the call's rows
//     (at most MT: 16, 32, 64 or 128, chosen by the host from the row bound) by W rows 128c .. 128c+127 over k-tiles
//     s*kTilesPerSplit .. (s+1)*kTilesPerSplit-1 (a k-tile is a pipeline stage: 64 of K, or 128 for the wide "w"
//     tiles) and stores the F32 sums to partials[s]. cp.async multi-stage pipeline, swizzled shared tiles, ldmatrix,
//     mma.sync m16n8k16 with F32 accumulation (mma_tiles.cuh). Every block writes its whole partial (zeros for an
//     empty K range), so the reduction never reads stale data.
//   grouped_gemm_skinny_reduce_{out}: a thread per 4 output columns (per column where they are not a multiple of 4),
//     grid-stride: sums splits 0, 1, ..., splits-1 in that order (bit-identical run to run; no atomics), then the
//     epilogue: plain, or fused SiLU-and-mul (W stacks gate rows 0..I-1 over up rows I..2I-1, N = 2I:
//     y[r, j] = silu(gate_j) * up_j, gate_j = column j, up_j = column I + j), times the row scale, in y's dtype.
// Launch constraints (checked on the host): rows <= MT; K % 8 == 0 (16-byte row chunks); x and w 16-byte aligned;
//   partials hold splits * rows * N floats. Tails in rows, N and K are zero-filled on load and masked on store.
//   Dynamic shared memory of the first kernel: STAGES * (MT + 128) * 64 * KSUB * 2 bytes (the wide 128-row tile's
//   192 KB needs sm_90's opt-in limit; the host falls back to the narrow tile where it does not fit).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"
#include "mma_tiles.cuh"

#define SK_BN 128   // W rows (raw output columns) per block
#define SK_BK 64    // K per sub-tile (128 contiguous bytes of each row); a stage holds KSUB sub-tiles
#define SK_WARPS 8

__device__ __forceinline__ void call_rows(const int* __restrict__ offsets, int rows, int& rowBegin, int& rowEnd)
{
    rowBegin = min(max(offsets[0], 0), rows);
    rowEnd = min(max(offsets[1], rowBegin), rows);
}

// MT: rows per block (the call's rows, padded); WARPS_M warps along the rows, SK_WARPS / WARPS_M along the columns.
// KSUB: 64-wide K sub-tiles per pipeline stage (1: 128 bytes of each row per stage; 2, the "wide" tiles: 256 bytes, half
// the stages and barriers per K). A stage is [KSUB][rows][64] in shared memory, each sub-tile swizzled on its own.
template <typename TIn, int MT, int WARPS_M, int STAGES, int KSUB>
__device__ __forceinline__ void skinny_partial(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ offsets,
                                               float* __restrict__ partials, int rows, int n, int k, int kTilesPerSplit)
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

    extern __shared__ __align__(128) unsigned char sharedBytes[];
    TIn* sharedA = reinterpret_cast<TIn*>(sharedBytes); // [STAGES][KSUB][MT][SK_BK]
    TIn* sharedB = sharedA + STAGES * MT * KT;           // [STAGES][KSUB][SK_BN][SK_BK]

    int rowBegin, rowEnd;
    call_rows(offsets, rows, rowBegin, rowEnd);
    const int m = min(rowEnd - rowBegin, MT); // the host guarantees rows <= MT
    if (m <= 0)
        return;

    const int colBegin = blockIdx.x * SK_BN;
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
            int wRow = colBegin + r;
            bool valid = wRow < n && kk < k;
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
    cp_async_wait<0>(); // no copy may still target shared memory when the block exits

    // Store: accumulator c0,c1 = local row (lane/4), columns 2*(lane%4) + {0,1}; c2,c3 = row + 8. Rows past m are not
    // stored (the reduction reads only rows < m). Pairs as one 8-byte store where N is even (then col is even: aligned).
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
                int col = colBegin + warpCol + ni * 8 + (lane & 3) * 2;
                float v0 = acc[mi][ni][half * 2], v1 = acc[mi][ni][half * 2 + 1];
                if (col + 1 < n && (n & 1) == 0)
                {
                    __stcg(reinterpret_cast<float2*>(pRow + col), make_float2(v0, v1));
                }
                else
                {
                    if (col < n)
                        __stcg(pRow + col, v0);
                    if (col + 1 < n)
                        __stcg(pRow + col + 1, v1);
                }
            }
        }
}

// The split sums in fixed order and the epilogue. VEC consecutive output columns per thread and step of a grid-stride
// loop (4: one float4 per split and operand, when the output columns and N are multiples of 4, so every float4 is aligned).
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

template <int VEC, typename TOut>
__device__ __forceinline__ void skinny_reduce_vec(const float* __restrict__ partials, const float* __restrict__ rowScale, TOut* __restrict__ y,
                                                  int rowBegin, int m, int rows, int n, int outCols, int fused, int splits)
{
    typedef typename ReduceLoad<VEC>::type Load;
    const int groups = outCols / VEC; // VEC divides outCols
    const long long total = (long long)m * groups;
    const long long splitStride = (long long)rows * n;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x)
    {
        const int r = (int)(i / groups), c = (int)(i % groups) * VEC;
        const float* p = partials + (long long)r * n + c;
        float gate[VEC], up[VEC];
#pragma unroll
        for (int v = 0; v < VEC; v++)
            gate[v] = up[v] = 0.0f;
#pragma unroll 4
        for (int s = 0; s < splits; s++)
        {
            add_to(gate, __ldcg(reinterpret_cast<const Load*>(p + s * splitStride)));
            if (fused)
                add_to(up, __ldcg(reinterpret_cast<const Load*>(p + s * splitStride + outCols)));
        }
        const int row = rowBegin + r;
        const float scale = rowScale != nullptr ? rowScale[row] : 1.0f;
        TOut* out = y + (long long)row * outCols + c;
#pragma unroll
        for (int v = 0; v < VEC; v++)
            out[v] = from_float<TOut>(fused ? silu(gate[v]) * up[v] * scale : gate[v] * scale);
    }
}

template <typename TOut>
__device__ __forceinline__ void skinny_reduce(const float* __restrict__ partials, const int* __restrict__ offsets,
                                              const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int fused, int splits)
{
    int rowBegin, rowEnd;
    call_rows(offsets, rows, rowBegin, rowEnd);
    const int outCols = fused ? n / 2 : n;
    if (outCols % 4 == 0) // then N (= outCols or 2 outCols) is a multiple of 4 too
        skinny_reduce_vec<4>(partials, rowScale, y, rowBegin, rowEnd - rowBegin, rows, n, outCols, fused, splits);
    else
        skinny_reduce_vec<1>(partials, rowScale, y, rowBegin, rowEnd - rowBegin, rows, n, outCols, fused, splits);
}

// MT 16: one warp row of 16 x 16 warp tiles; 32: 2 x 4 warps of 16 x 32; 64: 32 x 32; 128: 64 x 32 (3 stages: 96 KB).
// The wide tiles (KSUB 2, entry suffix "w"): 3 stages of 256 bytes per row (108 KB for 16 rows .. 192 KB for 128).
#define SK_PARTIAL(MT, WARPS_M, STAGES, KSUB, NAME, SUFFIX, TIN)                                                              \
    extern "C" __global__ void __launch_bounds__(SK_WARPS * 32, 2) NAME##_##SUFFIX(                                          \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ offsets, float* __restrict__ partials,  \
        int rows, int n, int k, int kTilesPerSplit)                                                                           \
    {                                                                                                                         \
        moe_wait_prior_grid();                                                                                               \
        skinny_partial<TIN, MT, WARPS_M, STAGES, KSUB>(x, w, offsets, partials, rows, n, k, kTilesPerSplit);                 \
    }

#define SK_PARTIALS(SUFFIX, TIN)                                       \
    SK_PARTIAL(16, 1, 4, 1, grouped_gemm_skinny16, SUFFIX, TIN)         \
    SK_PARTIAL(32, 2, 4, 1, grouped_gemm_skinny32, SUFFIX, TIN)         \
    SK_PARTIAL(64, 2, 4, 1, grouped_gemm_skinny64, SUFFIX, TIN)         \
    SK_PARTIAL(128, 2, 3, 1, grouped_gemm_skinny128, SUFFIX, TIN)       \
    SK_PARTIAL(16, 1, 3, 2, grouped_gemm_skinny16w, SUFFIX, TIN)        \
    SK_PARTIAL(32, 2, 3, 2, grouped_gemm_skinny32w, SUFFIX, TIN)        \
    SK_PARTIAL(64, 2, 3, 2, grouped_gemm_skinny64w, SUFFIX, TIN)        \
    SK_PARTIAL(128, 2, 3, 2, grouped_gemm_skinny128w, SUFFIX, TIN)

SK_PARTIALS(bf16, bf16)
SK_PARTIALS(f16, f16)

#define SK_REDUCE(SUFFIX, TOUT)                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) grouped_gemm_skinny_reduce_##SUFFIX(                                  \
        const float* __restrict__ partials, const int* __restrict__ offsets, const float* __restrict__ rowScale,            \
        TOUT* __restrict__ y, int rows, int n, int fused, int splits)                                                       \
    {                                                                                                                        \
        moe_wait_prior_grid();                                                                                               \
        skinny_reduce<TOUT>(partials, offsets, rowScale, y, rows, n, fused, splits);                                         \
    }

SK_REDUCE(f32, float)
SK_REDUCE(bf16, bf16)
SK_REDUCE(f16, f16)
