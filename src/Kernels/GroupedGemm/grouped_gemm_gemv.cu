// grouped_gemm_gemv.cu: the grouped GEMM of decode, where each active expert has a row or a few (T = 1: one row per
// expert; Mixtral T = 16: about 4). Its time is streaming the active experts' W once, so it is written as matrix-vector
// products on the CUDA cores: a warp walks W rows front to back, 512 contiguous bytes per row per step (whole DRAM
// bursts), instead of a tensor-core tile of 16 mostly empty rows reading 128-byte pieces of 64 rows at once.
//   x:             [rows, K]   bf16 or f16, rows sorted by expert
//   w:             [E, N, K]   same dtype as x
//   expertOffsets: [E + 1]     read on the device (expert_tiles.cuh): the launch needs no per-expert counts
//   rowScale:      [rows]      optional (null): each output row times it (routing weights)
//   y:             [rows, N]   or, fused, [rows, N/2] (y[r, j] = silu(x[r] . Wg[j]) * (x[r] . Wu[j]), W = [gate; up])
// Variants (entry names): grouped_gemm_gemv_* multiply up to 4 X rows per W pass (m-tiles of 4 rows), grouped_gemm_gemv8_*
//   up to 8 (m-tiles of 8 rows: an expert with 5..8 rows streams its W once), grouped_gemm_gemv1_* one (the 4-row
//   entry's tiles, a pass a row: for calls whose experts have one row each, at 4 blocks an SM; grouped_gemv_single).
//   An expert with more rows than the tile has several m-tiles, each a pass over its W (any count is correct: all 32
//   rows in one expert are 4 passes).
// Work: m-tiles of ROWS rows per expert x column blocks. 4 rows: blockIdx.x = mTile * columnBlocks + columnBlock, blocks
//   past the real m-tiles exit at once. 8 rows: blockIdx.x = columnBlock * tileSlots + slot, slot s runs m-tiles s,
//   s + tileSlots, ... (see grouped_gemv). A block has GV_WARPS warps in groups of kSplit: the warps of a group share
//   GV_WROWS W rows (plain: output columns c..c+3; fused: gate and up rows of columns j, j+1) and interleave K in
//   512-byte segments (warp p of the group takes segments p, p + kSplit, ...), so long rows keep enough blocks for
//   every SM. Lane l reads 16 bytes at chunk 32 s + l of each W row and the same chunk of each X row (L1-cached: every
//   warp of the block reads the same X rows), accumulating in F32; rows past the tile's real count cost no arithmetic.
// Reduction, in a fixed order (bit-identical run to run): a butterfly across the lanes, then the group's first warp
//   adds its kSplit partial sums in warp order. The 1-row entry at a split of 1 adds its one partial sum to 0 in the
//   warp that made it and writes, with no block barrier (gemv_pass): the same additions, so the same bits.
// Launch: block GV_WARPS * 32 threads, grid slots * ceil(outCols / columns per block) (4 rows: slots = an upper bound on
//   the m-tiles; 8 rows: any slots >= 1, the host's choice); kSplit divides GV_WARPS. K % 8 == 0, x and w 16-byte
//   aligned (checked on the host).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it;
//   the prefetch build runs its hint (GV_PREFETCH_BEFORE_WAIT, below) before it.
// GV_TRACE (MOE_GROUPED_GEMM_GEMV_TRACE=1, a diagnostic build): every entry takes a last argument
//   trace: [blocks, GV_TRACE_STAMPS] u64, and thread 0 of each block writes %globaltimer (ns) at: after the wait
//   (nothing comes before it: the entry's first statement is the wait), tile found, first W loads arrived, loop end,
//   after its write (8 rows: the last tile's; the 1-row entry at a split of 1: warp 0's own write, not the block's last).
//   Blocks past the last m-tile write only the first two, the second as 0. Without it the code is the same as before.
#include "moe_common.cuh"
#include "expert_tiles.cuh"
#include "unpack8.cuh"
#include "gemv_math.cuh"

#ifdef GV_TRACE
#define GV_TRACE_STAMPS 5
#define GV_TRACE_PARAM , unsigned long long* __restrict__ gvTrace
#define GV_TRACE_ARG , gvTrace
#define GV_STAMP(slot) block_stamp(gvTrace, GV_TRACE_STAMPS, slot)
#else
#define GV_TRACE_PARAM
#define GV_TRACE_ARG
#define GV_STAMP(slot)
#endif

// GV_TILE_MAP (GroupedGemmOptions.TileMap; MOE_GEMV_TILE_MAP=on in the layer): every entry takes, before the trace, a
//   tileMap: [m-tiles, 3] I32 (expert, rowBegin, rowEnd) of 4-row tiles (Permute.TileMap.cs), and the 4-row variant
//   reads its tile there with one load instead of searching expertOffsets (find_expert_tile: E / 32 dependent round
//   trips). The 8-row variant ignores it. Without it the code is the same as before. Registers of the 4-row entries
//   (NVRTC 11.8, sm_90): 80 with it and without, so 3 blocks an SM either way.
#ifdef GV_TILE_MAP
#define GV_MAP_PARAM , const int* __restrict__ gvTileMap
#define GV_MAP_ARG , gvTileMap
#else
#define GV_MAP_PARAM
#define GV_MAP_ARG
#endif

#define GV_WARPS 8
#ifndef GV_WROWS
#define GV_WROWS 4   // W rows per warp group (8: half the blocks; MOE_GROUPED_GEMM_GEMV_WROWS=8|auto, GroupedGemmGemv.WRowsFor)
#endif
#ifndef GV_UNROLL
// 512-byte segments per W row in flight per warp (MOE_GROUPED_GEMM_GEMV_UNROLL=1|2|4 for A/B). 1 since the eighth session:
// 80 registers against 2's 103 (NVRTC 11.8, sm_90), so 3 blocks an SM instead of 2, more warps each with fewer loads in
// flight; H200, same run: the layer at T=1 Qwen3-30B-A3B 40.85 -> 38.44 us, Mixtral-8x7B 191.5 -> 188.9, DeepSeek-V3
// 223.6 -> 223.3 (docs/PERFORMANCE.md).
#define GV_UNROLL 1
#endif


// The epilogue of a tile: lane r of a group's first warp adds the group's kSplit partial sums (in warp order) for
// output row rowBegin + r and writes its columns (plain: col0 .. col0 + GV_WROWS - 1; fused: silu(gate) * up of
// col0 .. col0 + GV_WROWS / 2 - 1).
template <int ROWS, typename TOut>
__device__ __forceinline__ void gemv_write(bool fused, int outCols, int col0, int r, int rowBegin, const float* __restrict__ rowScale,
                                           TOut* __restrict__ y, const float (&partial)[GV_WARPS][GV_WROWS][ROWS], int warp, int kSplit)
{
    float sum[GV_WROWS];
#pragma unroll
    for (int q = 0; q < GV_WROWS; q++)
    {
        sum[q] = 0.0f;
        for (int p = 0; p < kSplit; p++)
            sum[q] += partial[warp + p][q][r];
    }
    const float scale = rowScale != nullptr ? rowScale[rowBegin + r] : 1.0f;
    TOut* yRow = y + (long long)(rowBegin + r) * outCols;
    if (fused)
    {
#pragma unroll
        for (int j = 0; j < GV_WROWS / 2; j++)
            if (col0 + j < outCols)
                yRow[col0 + j] = from_float<TOut>(gv_silu(sum[j]) * sum[GV_WROWS / 2 + j] * scale);
    }
    else
    {
#pragma unroll
        for (int q = 0; q < GV_WROWS; q++)
            if (col0 + q < outCols)
                yRow[col0 + q] = from_float<TOut>(sum[q] * scale);
    }
}

// The W rows of a warp group whose first output column is col0: plain, columns col0 .. col0 + GV_WROWS - 1; fused, the
// gate rows of columns col0 .. col0 + GV_WROWS / 2 - 1, then their up rows. A row past outCols is not live (its pointer
// is the expert's first row, never read).
template <typename TIn>
__device__ __forceinline__ void gv_w_rows(const TIn* __restrict__ w, int expert, int n, int k, int fused, int outCols, int col0,
                                          const TIn* (&wRow)[GV_WROWS], bool (&live)[GV_WROWS])
{
#pragma unroll
    for (int q = 0; q < GV_WROWS; q++)
    {
        int col = fused ? col0 + q % (GV_WROWS / 2) : col0 + q;
        int row = fused ? (q < GV_WROWS / 2 ? col : outCols + col) : col;
        live[q] = col < outCols;
        wRow[q] = w + ((long long)expert * n + (live[q] ? row : 0)) * k;
    }
}

// The m-tile and column block of this block in the one-tile-a-block order (4 rows).
__device__ __forceinline__ void gv_block_tile(int columnBlocks, int& mTile, int& columnBlock)
{
#ifdef GV_TILE_INNER
    // An expert's m-tiles side by side (MOE_GROUPED_GEMM_GEMV_ORDER=tile): its later passes over a W row read L2.
    const int mTiles = (int)(gridDim.x / columnBlocks);
    mTile = (int)(blockIdx.x % mTiles);
    columnBlock = (int)(blockIdx.x / mTiles);
#else
    mTile = (int)(blockIdx.x / columnBlocks);
    columnBlock = (int)(blockIdx.x % columnBlocks);
#endif
}

// Expert and rows of m-tile mTile by the search over the offsets (every lane of every warp gets the same answer).
template <int ROWS>
__device__ __forceinline__ void gv_find_tile(const int* __restrict__ expertOffsets, int rows, int experts, int mTile,
                                             int& expert, int& rowBegin, int& rowEnd)
{
#ifdef GV_BLOCK_TILE_SEARCH
    // One warp searches and the block reads its answer (MOE_GROUPED_GEMM_GEMV_TILE_SEARCH=block, for A/B): every warp of
    // every block reads the same offsets, so the search's L2 requests fall on a few lines; this sends 1 in GV_WARPS.
    __shared__ int tileOfBlock[3];
    if (threadIdx.x < 32)
    {
        find_expert_tile(expertOffsets, experts, rows, ROWS, mTile, expert, rowBegin, rowEnd);
        if (threadIdx.x == 0)
        {
            tileOfBlock[0] = expert;
            tileOfBlock[1] = rowBegin;
            tileOfBlock[2] = rowEnd;
        }
    }
    __syncthreads();
    expert = tileOfBlock[0];
    rowBegin = tileOfBlock[1];
    rowEnd = tileOfBlock[2];
#else
    find_expert_tile(expertOffsets, experts, rows, ROWS, mTile, expert, rowBegin, rowEnd);
#endif
}

#ifdef GV_TILE_MAP
// Expert and rows of m-tile mTile from the map (the host checked it holds every m-tile of the grid). Clamped as the
// search clamps the offsets, so a bad map cannot make the kernel read or write out of bounds: rows within [0, rows]
// and at most ROWS of them, an expert outside [0, experts) or no rows is "past the last tile".
template <int ROWS>
__device__ __forceinline__ void gv_read_tile_map(const int* __restrict__ tileMap, int rows, int experts, int mTile,
                                                 int& expert, int& rowBegin, int& rowEnd)
{
    const int* entry = tileMap + 3 * (long long)mTile;
    expert = __ldg(entry);
    rowBegin = min(max(__ldg(entry + 1), 0), rows);
    rowEnd = min(max(__ldg(entry + 2), rowBegin), min(rowBegin + ROWS, rows));
    if (expert < 0 || expert >= experts || rowEnd == rowBegin)
    {
        expert = -1;
        rowBegin = 0;
        rowEnd = 0;
    }
}
#endif

// Expert and rows of m-tile mTile of ROWS-row tiles (the map holds 4-row tiles; the search takes any ROWS); expert -1
// past the last m-tile (every warp finds the same tile, so the whole block agrees). Stamps "tile found".
template <int ROWS>
__device__ __forceinline__ void gv_tile_of(const int* __restrict__ expertOffsets, int rows, int experts, int mTile,
                                           int& expert, int& rowBegin, int& rowEnd GV_MAP_PARAM GV_TRACE_PARAM)
{
#ifdef GV_TILE_MAP
    if (ROWS == 4)
        gv_read_tile_map<ROWS>(gvTileMap, rows, experts, mTile, expert, rowBegin, rowEnd);
    else
#endif
        gv_find_tile<ROWS>(expertOffsets, rows, experts, mTile, expert, rowBegin, rowEnd);
#ifdef GV_TRACE
    if (expert < 0 && threadIdx.x == 0)
        gvTrace[blockIdx.x * GV_TRACE_STAMPS + 1] = 0;
#endif
    if (expert >= 0)
        GV_STAMP(1);
}

// One pass of the block's warp groups over their W rows of `expert` (column block columnBlock) against X rows
// rowBegin .. rowEnd - 1 (1 .. ROWS of them), written to y. UNROLL: 512-byte segments of each W row a warp has in flight.
// A caller that runs another pass synchronises first: the writers still read `partial`.
template <int ROWS, int UNROLL, typename TIn, typename TOut>
__device__ __forceinline__ void gemv_pass(const TIn* __restrict__ x, const TIn* __restrict__ w, const float* __restrict__ rowScale,
                                          TOut* __restrict__ y, int n, int k, int fused, int kSplit, int columnBlock,
                                          int expert, int rowBegin, int rowEnd,
                                          float (&partial)[GV_WARPS][GV_WROWS][ROWS] GV_TRACE_PARAM)
{
    const int outCols = fused ? n / 2 : n;
    const int colsPerGroup = fused ? GV_WROWS / 2 : GV_WROWS;
    const int colsPerBlock = colsPerGroup * (GV_WARPS / kSplit);
#ifdef GV_TRACE
    bool firstLoads = true;
    __shared__ volatile unsigned gvSink; // the first W loads stored, so the stamp after it waits for them
#endif
    const int xRows = rowEnd - rowBegin; // 1 .. ROWS

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int group = warp / kSplit, part = warp % kSplit;
    const int col0 = columnBlock * colsPerBlock + group * colsPerGroup;

    const TIn* wRow[GV_WROWS];
    bool live[GV_WROWS];
    gv_w_rows(w, expert, n, k, fused, outCols, col0, wRow, live);

    float acc[GV_WROWS][ROWS];
#pragma unroll
    for (int q = 0; q < GV_WROWS; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++)
            acc[q][r] = 0.0f;

    const int chunks = k / 8; // 16-byte chunks per row
    const int stride = 32 * kSplit;
    for (int base = part * 32 + lane; base < chunks; base += stride * UNROLL)
    {
        uint4 wv[UNROLL][GV_WROWS];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            const int c = base + u * stride;
#pragma unroll
            for (int q = 0; q < GV_WROWS; q++)
                wv[u][q] = live[q] && c < chunks ? load_stream(wRow[q] + 8 * c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            const int c = base + u * stride;
            if (c >= chunks)
                break;
#ifdef GV_TRACE
            if (firstLoads && threadIdx.x == 0)
            {
                gvSink = wv[0][0].x ^ wv[UNROLL - 1][GV_WROWS - 1].w;
                __threadfence_block();
                GV_STAMP(2);
            }
            firstLoads = false;
#endif
            if (GV_WROWS > 4 || ROWS == 1)
            {
                // 8 W rows: the tile's X chunks first (L1 hits), then one W row at a time against them, so 8 W floats are
                // live instead of 64: the 4-row entry takes 127 registers (2 blocks an SM) instead of 155 (1); the 1-row entry
                // keeps under its 64. Each accumulator sums the same products in the same order as below, so every build
                // gives the same bits.
                float xf[ROWS][8];
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                {
                    const uint4 xv = r < xRows ? __ldg(reinterpret_cast<const uint4*>(x + (long long)(rowBegin + r) * k) + c) : make_uint4(0, 0, 0, 0);
                    unpack8((const TIn*)nullptr, xv, xf[r]);
                }
#pragma unroll
                for (int q = 0; q < GV_WROWS; q++)
                {
                    float wf[8];
                    unpack8((const TIn*)nullptr, wv[u][q], wf);
#pragma unroll
                    for (int r = 0; r < ROWS; r++)
                    {
                        if (r >= xRows)
                            break;
#pragma unroll
                        for (int e = 0; e < 8; e++)
                            acc[q][r] = fmaf(wf[e], xf[r][e], acc[q][r]);
                    }
                }
            }
            else
            {
                // 4 W rows (the default): every W row unpacked, then one X row at a time (80 registers; the order above costs
                // 12 bytes of spills here).
                float wf[GV_WROWS][8];
#pragma unroll
                for (int q = 0; q < GV_WROWS; q++)
                    unpack8((const TIn*)nullptr, wv[u][q], wf[q]);
#pragma unroll
                for (int r = 0; r < ROWS; r++)
                {
                    if (r >= xRows)
                        break;
                    float xf[8];
                    unpack8((const TIn*)nullptr, __ldg(reinterpret_cast<const uint4*>(x + (long long)(rowBegin + r) * k) + c), xf);
#pragma unroll
                    for (int q = 0; q < GV_WROWS; q++)
#pragma unroll
                        for (int e = 0; e < 8; e++)
                            acc[q][r] = fmaf(wf[q][e], xf[e], acc[q][r]);
                }
            }
        }
    }
    GV_STAMP(3);
    if (ROWS == 1 && kSplit == 1)
    {
        // A split of 1 (the 1-row entry): the warp's butterfly is its columns' whole sums, so its lane 0 writes them with the
        // additions gemv_write makes (0 + the one partial sum), and no block barrier. One H200, Qwen3-30B-A3B at T = 1,
        // against the barrier (`diag25g.sh`): gate_up 13.88-13.96 us against 14.21-14.26, down*w 6.99-7.01 against
        // 7.34-7.40.
        float own[GV_WARPS][GV_WROWS][ROWS];
#pragma unroll
        for (int q = 0; q < GV_WROWS; q++)
            own[0][q][0] = xRows > 0 ? warp_sum(acc[q][0]) : 0.0f;
        if (lane == 0 && xRows > 0)
            gemv_write<ROWS>(fused != 0, outCols, col0, 0, rowBegin, rowScale, y, own, 0, 1);
        GV_STAMP(4);
        return;
    }

#pragma unroll
    for (int q = 0; q < GV_WROWS; q++)
#pragma unroll
        for (int r = 0; r < ROWS; r++)
        {
            float v = r < xRows ? warp_sum(acc[q][r]) : 0.0f;
            if (lane == 0)
                partial[warp][q][r] = v;
        }
    __syncthreads();
    if (part == 0 && lane < ROWS && lane < xRows)
        gemv_write<ROWS>(fused != 0, outCols, col0, lane, rowBegin, rowScale, y, partial, warp, kSplit);
    GV_STAMP(4);
}

// One m-tile times one column block; false past the last m-tile. A caller that runs another tile synchronises first:
// the writers still read `partial`.
template <int ROWS, typename TIn, typename TOut>
__device__ __forceinline__ bool gemv_tile(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets,
                                          const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int k,
                                          int experts, int fused, int kSplit, int mTile, int columnBlock,
                                          float (&partial)[GV_WARPS][GV_WROWS][ROWS] GV_MAP_PARAM GV_TRACE_PARAM)
{
    int expert, rowBegin, rowEnd;
    gv_tile_of<ROWS>(expertOffsets, rows, experts, mTile, expert, rowBegin, rowEnd GV_MAP_ARG GV_TRACE_ARG);
    if (expert < 0)
        return false;
    gemv_pass<ROWS, GV_UNROLL>(x, w, rowScale, y, n, k, fused, kSplit, columnBlock, expert, rowBegin, rowEnd, partial GV_TRACE_ARG);
    return true;
}

// ROWS: X rows per m-tile (4 or 8). The 8-row variant holds 32 accumulators per lane (4 W rows x 8 X rows) beside the
// 8 chunks of W in flight: 128 registers, no spills (ptxas 11.8, sm_90), 2 blocks per SM; 16 rows take 154 (1 block
// per SM) and, at 16 FMAs per W element, would leave the CUDA cores rather than DRAM the limit.
// TILE_LOOP (8 rows): blockIdx.x = columnBlock * tileSlots + slot, tileSlots = gridDim.x / columnBlocks; slot s takes
// m-tiles s, s + tileSlots, ... . The host sizes tileSlots to the rows, not to the bound on m-tiles (12 for Mixtral's
// 32 rows over 8 experts, 6 of them real in the sweep), so few blocks start only to find no tile; an expert's m-tiles
// sit in neighbouring slots, so its passes over the same W rows run at the same time and the later ones hit L2.
// Without it (4 rows, the T = 1 kernel as it was): blockIdx.x = mTile * columnBlocks + columnBlock, one m-tile a block.
template <int ROWS, bool TILE_LOOP, typename TIn, typename TOut>
__device__ __forceinline__ void grouped_gemv(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets,
                                             const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int k,
                                             int experts, int fused, int kSplit GV_MAP_PARAM GV_TRACE_PARAM)
{
    __shared__ float partial[GV_WARPS][GV_WROWS][ROWS];
    const int outCols = fused ? n / 2 : n;
    const int colsPerBlock = (fused ? GV_WROWS / 2 : GV_WROWS) * (GV_WARPS / kSplit);
    const int columnBlocks = ceil_div(outCols, colsPerBlock);
    if (!TILE_LOOP)
    {
        int mTile, columnBlock;
        gv_block_tile(columnBlocks, mTile, columnBlock);
        gemv_tile<ROWS>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused, kSplit, mTile, columnBlock, partial GV_MAP_ARG GV_TRACE_ARG);
        return;
    }
    const int tileSlots = (int)(gridDim.x / columnBlocks);
    const int columnBlock = (int)(blockIdx.x / tileSlots);
    for (int mTile = (int)(blockIdx.x % tileSlots);; mTile += tileSlots)
    {
        if (!gemv_tile<ROWS>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused, kSplit, mTile, columnBlock, partial GV_MAP_ARG GV_TRACE_ARG))
            return;
        __syncthreads(); // the writers' reads of partial before the next tile's writes
    }
}

#ifndef GV1_UNROLL
// The 1-row entry's segments in flight (MOE_GROUPED_GEMM_GEMV1_UNROLL=1|2|3|4, for A/B). 1: 62 registers (NVRTC 11.2, sm_90),
// where 2 spills 16 bytes and 3 spills 72. One H200, T = 1 alone (`gemv17a.sh`), 1 / 2 / 3, us: Qwen3-30B-A3B down 7.44 /
// 7.69 / 9.30, Mixtral-8x7B gate_up 110.1 / 110.7, DeepSeek-V3 down 58.1 / 58.5.
#define GV1_UNROLL 1
#endif

// The 1-row entry (grouped_gemm_gemv1_*): the 4-row entry's blocks and tiles (its grid, its map), each tile's rows one
// pass at a time, so a lane keeps the accumulators of one X row, not four: under 64 registers, so 4 blocks an SM where
// the 4-row entry holds 3 (Qwen3-30B-A3B's down at T = 1, 512 blocks: one wave, not two). For calls whose experts have
// one row each (T = 1: a token's experts are distinct); an expert of 2..4 rows is still right, its W read once per row
// (the later passes from L2). Its sums are the 4-row entry's bits: the same products in the same order, whatever the
// unroll.
template <typename TIn, typename TOut>
__device__ __forceinline__ void grouped_gemv_single(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets,
                                                    const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int k,
                                                    int experts, int fused, int kSplit GV_MAP_PARAM GV_TRACE_PARAM)
{
    __shared__ float partial[GV_WARPS][GV_WROWS][1];
    const int outCols = fused ? n / 2 : n;
    const int colsPerBlock = (fused ? GV_WROWS / 2 : GV_WROWS) * (GV_WARPS / kSplit);
    int mTile, columnBlock;
    gv_block_tile(ceil_div(outCols, colsPerBlock), mTile, columnBlock);
    int expert, rowBegin, rowEnd;
    gv_tile_of<4>(expertOffsets, rows, experts, mTile, expert, rowBegin, rowEnd GV_MAP_ARG GV_TRACE_ARG);
    if (expert < 0)
        return;
    for (int row = rowBegin; row < rowEnd; row++)
    {
        if (row > rowBegin)
            __syncthreads(); // the writers' reads of partial before the next pass's writes
        gemv_pass<1, GV1_UNROLL>(x, w, rowScale, y, n, k, fused, kSplit, columnBlock, expert, row, row + 1, partial GV_TRACE_ARG);
    }
}

#ifdef GV_PREFETCH_W
#ifndef GV_TILE_MAP
#error "GV_PREFETCH_W reads the block's tile from the m-tile map: build with GV_TILE_MAP"
#endif
// GV_PREFETCH_W=S (GroupedGemmOptions.PrefetchBeforeWait; MOE_GEMV_PREFETCH in the layer's down call, whose map Permute
// wrote two kernels back): before waiting for the kernel before it, a 4-row block of the first wave (blockIdx.x below
// gvPrefetchBlocks, the blocks the device holds at once: the host's occupancy) reads its tile from the map and asks L2 for
// the first S 512-byte segments of each W row its warps will stream, one prefetch per 128-byte line. Under dependent
// launch those blocks may be placed while that kernel's last blocks still run, so these bytes come while DRAM would idle;
// a later block starts after the wait is long satisfied, and the map's round trip would only delay it (2 x H200: every
// block prefetching cost DeepSeek-V3's layer at T=16 4%). Only a hint: the read goes past L1 (ld.cg: no stale line for
// the load after the wait), an expert outside [0, E) or a map not yet written prefetches nothing or other in-bounds rows,
// and the tile is read again after the wait.
#define GV_PREFETCH_PARAM , int gvPrefetchBlocks
template <typename TIn>
__device__ __forceinline__ void gv_prefetch_w(const TIn* __restrict__ w, const int* __restrict__ tileMap, int n, int k, int experts,
                                              int fused, int kSplit, int prefetchBlocks)
{
    if ((int)blockIdx.x >= prefetchBlocks)
        return;
    const int outCols = fused ? n / 2 : n;
    const int colsPerGroup = fused ? GV_WROWS / 2 : GV_WROWS;
    const int colsPerBlock = colsPerGroup * (GV_WARPS / kSplit);
    int mTile, columnBlock;
    gv_block_tile(ceil_div(outCols, colsPerBlock), mTile, columnBlock);
    int expert;
    asm volatile("ld.global.cg.s32 %0, [%1];" : "=r"(expert) : "l"(tileMap + 3LL * mTile));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (expert < 0 || expert >= experts || (lane & 7) != 0)
        return;
    const int group = warp / kSplit, part = warp % kSplit;
    const TIn* wRow[GV_WROWS];
    bool live[GV_WROWS];
    gv_w_rows(w, expert, n, k, fused, outCols, columnBlock * colsPerBlock + group * colsPerGroup, wRow, live);
    const int chunks = k / 8, stride = 32 * kSplit;
    int segment = 0;
    for (int c = part * 32 + lane; c < chunks && segment < GV_PREFETCH_W; c += stride, segment++)
#pragma unroll
        for (int q = 0; q < GV_WROWS; q++)
            if (live[q])
                asm volatile("prefetch.global.L2 [%0];" ::"l"(wRow[q] + 8 * c));
}
#define GV_PREFETCH_BEFORE_WAIT(ROWS, TILE_LOOP, TIN) \
    if ((ROWS == 4 || ROWS == 1) && !TILE_LOOP)       \
        gv_prefetch_w<TIN>(w, gvTileMap, n, k, experts, fused, kSplit, gvPrefetchBlocks);
#else
#define GV_PREFETCH_PARAM
#define GV_PREFETCH_BEFORE_WAIT(ROWS, TILE_LOOP, TIN)
#endif

// 4 rows: the launch bounds as before (the T = 1 kernel, unchanged); 8 rows: at most 128 registers, 2 blocks per SM.
#define GV_ENTRY(NAME, ROWS, TILE_LOOP, BOUNDS, SUFFIX, TIN, TOUT)                                                          \
    extern "C" __global__ void BOUNDS NAME##_##SUFFIX(                                                                       \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ expertOffsets,                        \
        const float* __restrict__ rowScale, TOUT* __restrict__ y, int rows, int n, int k, int experts, int fused, int kSplit \
        GV_MAP_PARAM GV_PREFETCH_PARAM GV_TRACE_PARAM)                                                                       \
    {                                                                                                                        \
        GV_PREFETCH_BEFORE_WAIT(ROWS, TILE_LOOP, TIN)                                                                        \
        moe_wait_prior_grid();                                                                                                \
        GV_STAMP(0);                                                                                                          \
        grouped_gemv<ROWS, TILE_LOOP, TIN, TOUT>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused, kSplit          \
                                                 GV_MAP_ARG GV_TRACE_ARG);                                                    \
    }

// GV_MIN_BLOCKS (MOE_GROUPED_GEMM_GEMV_MIN_BLOCKS, for A/B): blocks of the 4-row entry an SM must hold, which caps its
// registers; unset, no minimum (103 registers from NVRTC 11.8 at sm_90, 2 blocks an SM; an explicit 1 gives 106).
#ifdef GV_MIN_BLOCKS
#define GV_BOUNDS4 __launch_bounds__(GV_WARPS * 32, GV_MIN_BLOCKS)
#else
#define GV_BOUNDS4 __launch_bounds__(GV_WARPS * 32)
#endif

// The 1-row entry: 4 blocks an SM (64 registers), the 4-row entry's tiles and map (so its prefetch too).
#define GV_ENTRY1(SUFFIX, TIN, TOUT)                                                                                     \
    extern "C" __global__ void __launch_bounds__(GV_WARPS * 32, 4) grouped_gemm_gemv1_##SUFFIX(                          \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ expertOffsets,                        \
        const float* __restrict__ rowScale, TOUT* __restrict__ y, int rows, int n, int k, int experts, int fused, int kSplit \
        GV_MAP_PARAM GV_PREFETCH_PARAM GV_TRACE_PARAM)                                                                       \
    {                                                                                                                        \
        GV_PREFETCH_BEFORE_WAIT(1, false, TIN)                                                                               \
        moe_wait_prior_grid();                                                                                                \
        GV_STAMP(0);                                                                                                          \
        grouped_gemv_single<TIN, TOUT>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused, kSplit GV_MAP_ARG GV_TRACE_ARG); \
    }

#define GV_ENTRIES(SUFFIX, TIN, TOUT)                                   \
    GV_ENTRY(grouped_gemm_gemv, 4, false, GV_BOUNDS4, SUFFIX, TIN, TOUT)     \
    GV_ENTRY(grouped_gemm_gemv8, 8, true, __launch_bounds__(GV_WARPS * 32, 2), SUFFIX, TIN, TOUT) \
    GV_ENTRY1(SUFFIX, TIN, TOUT)

// One dtype pair a build: the host defines GV_ONE_PAIR and GV_PAIR_<in>_<out>, so a first use compiles that pair's three
// entries, not all 18 (a build took 4.3-7.1 s by NVRTC 13 on the H200 machine's host). Neither: every entry.
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_bf16_bf16)
GV_ENTRIES(bf16_bf16, bf16, bf16)
#endif
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_bf16_f32)
GV_ENTRIES(bf16_f32, bf16, float)
#endif
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_bf16_f16)
GV_ENTRIES(bf16_f16, bf16, f16)
#endif
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_f16_f16)
GV_ENTRIES(f16_f16, f16, f16)
#endif
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_f16_f32)
GV_ENTRIES(f16_f32, f16, float)
#endif
#if !defined(GV_ONE_PAIR) || defined(GV_PAIR_f16_bf16)
GV_ENTRIES(f16_bf16, f16, bf16)
#endif
