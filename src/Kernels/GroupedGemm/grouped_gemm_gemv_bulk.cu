// grouped_gemm_gemv_bulk.cu: the decode GEMV (grouped_gemm_gemv.cu's 4-row kernel, same function and arguments) built
// for bandwidth on sm_90+: a persistent grid of one wave streams W through shared memory with 1D bulk copies, so each
// SM keeps GB_STAGES x GB_STAGE_BYTES (128 KB) of W in flight instead of a few warps' two 512-byte round trips.
//   x:             [rows, K]   bf16 or f16, rows sorted by expert
//   w:             [E, N, K]   same dtype as x
//   expertOffsets: [E + 1]     read on the device (expert_tiles.cuh)
//   rowScale:      [rows]      optional (null): each output row times it
//   y:             [rows, N]   or, fused, [rows, N/2] (y[r, j] = silu(x[r] . Wg[j]) * (x[r] . Wu[j]), W = [gate; up])
// Work items: (m-tile of up to 4 X rows of one expert, chunk of W rows), item = mTile * chunks + chunk; block b takes
//   items b, b + gridDim.x, ... . A chunk is one stage: plain, R = min(GB_STAGE_BYTES / rowBytes, GB_MAX_STAGE_ROWS)
//   consecutive W rows (output columns); fused, R/2 gate rows then the matching R/2 up rows (two copies, one stage).
//   K limit: a row (plain) or a gate and an up row (fused) must fit a stage: K <= 16384 plain, 8192 fused (bf16/f16).
// Block: warp GB_WARPS is the producer (lane 0 issues the copies; the whole warp maps m-tiles to experts once, the
//   first GB_TILE_TABLE of them in shared memory, searching later ones per item with find_expert_tile), warps
//   0..GB_WARPS-1 consume. Stage s: `full` (the producer's arrive.expect_tx + the copies' bytes) and `empty` (one arrive
//   per consumer warp once it has read the stage). A stage's header (rows, columns, X rows) travels with it; xRows = 0
//   marks the end of the block's items.
// Consumers: the stage's R rows are split over R * ks virtual warps (ks = warps per row, a power of two <= kSplit, the
//   least with R * ks >= GB_WARPS); a virtual warp's lanes take 16-byte chunks lane, lane + 32 ks, ... of its row's part
//   and the same chunks of the m-tile's X rows (through L1), accumulating in F32, then a butterfly across the lanes.
//   Reduction in a fixed order (bit-identical run to run): the epilogue adds a row's ks partial sums in part order.
//   Partial sums are double-buffered, so one consumer barrier per stage separates a stage's writes from its epilogue
//   and from the reads of the stage two before.
// Launch: GB_THREADS threads, GB_STAGES * GB_SLOT_BYTES bytes of dynamic shared memory, any grid (the host: SMs x
//   blocks per SM, fewer when there are fewer items). K % 8 == 0, x and w 16-byte aligned (checked on the host).
// Diagnostic knobs (issue 9, GroupedGemmGemvBulkConfig sets them with -D; the defaults are the shipped kernel):
//   GB_STAGES, GB_STAGE_BYTES, GB_MIN_BLOCKS (the launch bound's blocks per SM);
//   GB_MODE 0 full, 1 copy-only (consumers release each stage as it lands: no arithmetic, no output), 2 no-epilogue-sync
//   (no consumer barrier per stage: each warp posts its partials on the stage's `ready` barrier and releases the stage;
//   warp it % GB_WARPS waits `ready`, sums the partials in part order and only then releases the stage, so a stage's
//   partial buffer is not rewritten before its epilogue has read it);
//   GB_SPLIT_BYTES (> 0: each contiguous range copied in pieces of this size, all on the stage's barrier), GB_COPY_LANES
//   (producer lanes that issue the pieces, round robin; without a split the range is cut into this many pieces),
//   GB_L2_EVICT_FIRST (the copies carry an L2 evict-first cache hint).
// Consumer-side knobs (issue 9: the ring streams at 83-103% of the floor alone, the consumers fall behind it):
//   GB_X_BYTES (> 0: X staged in shared memory: each stage slot is the W area then an X area of this many bytes; the
//   producer bulk-copies the item's X rows, contiguous in x, with the W chunk on the same `full` barrier, so the consumer
//   loop makes no global load; K limit GB_X_BYTES / (GB_TILE_ROWS * 2) as well);
//   GB_CONTIGUOUS (1: block b takes items [b * items / G, (b + 1) * items / G), so consecutive items share the m-tile);
//   GB_UNROLL (the consumer loop's unroll over a lane's 16-byte chunks: more W and X loads in flight).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"
#include "expert_tiles.cuh"
#include "unpack8.cuh"
#include "mbarrier.cuh"

#define GB_WARPS 8               // consumer warps
#define GB_THREADS ((GB_WARPS + 1) * 32)
#define GB_TILE_ROWS 4           // X rows per m-tile
#ifndef GB_STAGES
#define GB_STAGES 4
#endif
#ifndef GB_STAGE_BYTES
#define GB_STAGE_BYTES 32768
#endif
#ifndef GB_MIN_BLOCKS
#define GB_MIN_BLOCKS 1
#endif
#ifndef GB_MODE
#define GB_MODE 0
#endif
#ifndef GB_SPLIT_BYTES
#define GB_SPLIT_BYTES 0
#endif
#ifndef GB_COPY_LANES
#define GB_COPY_LANES 1
#endif
#ifndef GB_L2_EVICT_FIRST
#define GB_L2_EVICT_FIRST 0
#endif
#ifndef GB_X_BYTES
#define GB_X_BYTES 0
#endif
#ifndef GB_CONTIGUOUS
#define GB_CONTIGUOUS 0
#endif
#ifndef GB_UNROLL
#define GB_UNROLL 2
#endif
#define GB_SLOT_BYTES (GB_STAGE_BYTES + GB_X_BYTES) // a stage's shared memory: its W chunk, then (GB_X_BYTES > 0) its X rows
#define GB_MAX_STAGE_ROWS 64     // short rows: at most this many per stage (bounds the partial sums)
#define GB_MAX_PARTS (GB_MAX_STAGE_ROWS > 2 * GB_WARPS ? GB_MAX_STAGE_ROWS : 2 * GB_WARPS)
#define GB_TILE_TABLE 256        // m-tiles the producer maps once per block; later ones are searched item by item
#define GB_PARTIAL_BUFFERS (GB_MODE == 2 ? GB_STAGES : 2) // no-epilogue-sync: one per stage, else double-buffered

// A stage's work, written by the producer before its arrive.
struct GbStage
{
    int rowBegin;  // first X row of the m-tile
    int xRows;     // 1..4; 0: no more items
    int col0;      // first output column
    int cols;      // output columns of the stage (plain: its rows; fused: half its rows)
};

__device__ __forceinline__ float gb_silu(float v) { return v / (1.0f + __expf(-v)); }

// The bulk copies and expect_tx are PTX ISA 8.0 (CUDA 12): NVRTC 11 builds the trapping body below (the host refuses
// the variant there, GroupedGemmGemvBulk.Supports), except for the register probe.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && (__CUDACC_VER_MAJOR__ >= 12 || defined(GB_PTX78_PROBE))

// GB_PTX78_PROBE: PTX ISA 7.8 stand-ins for the sm_90 instructions NVRTC 11.8's ptxas does not know, only so that
// tools/nvrtc-resources.py can count registers without a CUDA 12 toolkit; never a kernel to run.
__device__ __forceinline__ void gb_bar_arrive_expect_tx(moe_u32 bar, moe_u32 bytes)
{
#ifdef GB_PTX78_PROBE
    mbar_arrive(bar + bytes);
#else
    mbar_arrive_expect_tx(bar, bytes);
#endif
}

// `bytes` (a multiple of 16) from global `src` (16-byte aligned) to shared `dst`, completing on `bar`; `policy`: an L2
// cache policy (createpolicy), used where GB_L2_EVICT_FIRST.
__device__ __forceinline__ void gb_bulk_copy(moe_u32 dst, const void* src, moe_u32 bytes, moe_u32 bar, moe_u64 policy)
{
#ifdef GB_PTX78_PROBE
    asm volatile("st.shared.u32 [%0], %1;" ::"r"(dst), "r"((moe_u32)(size_t)src + bytes + bar + (moe_u32)policy) : "memory");
#elif GB_L2_EVICT_FIRST
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, [%3], %4;"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(bar), "l"(policy) : "memory");
#else
    (void)policy;
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(bar) : "memory");
#endif
}

// The L2 policy of the copies: evict-first where GB_L2_EVICT_FIRST (W is read once per call), else unused.
__device__ __forceinline__ moe_u64 gb_l2_policy()
{
    moe_u64 policy = 0;
#if GB_L2_EVICT_FIRST && !defined(GB_PTX78_PROBE)
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
#endif
    return policy;
}

// One contiguous range of a stage, `bytes` from `src` to shared `dst`, issued by the calling lane's share of its pieces:
// piece p (GB_SPLIT_BYTES each, or the range cut into GB_COPY_LANES) goes to lane (firstPiece + p) % GB_COPY_LANES.
// Returns the pieces the range took (the next range's firstPiece offset). Default: lane 0 issues one copy.
__device__ __forceinline__ int gb_copy_range(moe_u32 dst, const unsigned char* src, moe_u32 bytes, moe_u32 bar, moe_u64 policy, int lane,
                                             int firstPiece)
{
#if GB_SPLIT_BYTES > 0
    const moe_u32 piece = GB_SPLIT_BYTES;
#else
    const moe_u32 piece = GB_COPY_LANES == 1 ? bytes : (bytes / GB_COPY_LANES + 15u) / 16u * 16u;
#endif
    const int pieces = piece == 0 ? 0 : (int)((bytes + piece - 1) / piece);
    for (int p = 0; p < pieces; p++)
        if ((firstPiece + p) % GB_COPY_LANES == lane)
        {
            const moe_u32 offset = (moe_u32)p * piece;
            gb_bulk_copy(dst + offset, src + offset, min(piece, bytes - offset), bar, policy);
        }
    return pieces;
}

// Consumer warps only (the producer warp never joins it).
__device__ __forceinline__ void gb_consumer_sync() { asm volatile("bar.sync 1, %0;" ::"n"(GB_WARPS * 32) : "memory"); }

// W rows per stage: plain, whole rows up to the stage; fused, pairs (gate, up). 0 when K is past the limit.
__device__ __forceinline__ int gb_stage_rows(int k, int fused)
{
    const int rowBytes = k * 2;
    return fused ? 2 * min(GB_STAGE_BYTES / (2 * rowBytes), GB_MAX_STAGE_ROWS / 2) : min(GB_STAGE_BYTES / rowBytes, GB_MAX_STAGE_ROWS);
}

extern __shared__ __align__(128) unsigned char gbStages[];

// The producer warp's map of m-tiles to (expert, first row, end row), the first GB_TILE_TABLE of them, in one pass over
// the experts (a warp-wide scan, as find_expert_tile does per tile); returns the total m-tiles.
__device__ __forceinline__ int gb_map_tiles(const int* __restrict__ expertOffsets, int experts, int rows, int3* table)
{
    const int total = scan_expert_tiles(expertOffsets, experts, rows, GB_TILE_ROWS, [&](int e, int begin, int end, int firstTile) {
        const int tiles = ceil_div(end - begin, GB_TILE_ROWS);
        for (int t = 0; t < tiles && firstTile + t < GB_TILE_TABLE; t++)
            table[firstTile + t] = make_int3(e, begin + t * GB_TILE_ROWS, min(begin + (t + 1) * GB_TILE_ROWS, end));
    });
    __syncwarp();
    return total;
}

template <typename TIn>
__device__ __forceinline__ void gb_produce(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets, int rows, int n, int k,
                                           int experts, int fused, int colsPerChunk, GbStage* info, moe_u32 fullBase, moe_u32 emptyBase,
                                           int3* tileTable)
{
    const int lane = threadIdx.x & 31;
    const int outCols = fused ? n / 2 : n;
    const int chunks = ceil_div(outCols, colsPerChunk);
    const long long items = (long long)gb_map_tiles(expertOffsets, experts, rows, tileTable) * chunks;
    const long long rowBytes = (long long)k * 2;
    const moe_u64 policy = gb_l2_policy();
#if GB_CONTIGUOUS
    const long long itemBegin = items * blockIdx.x / gridDim.x, itemEnd = items * (blockIdx.x + 1) / gridDim.x, itemStep = 1;
#else
    const long long itemBegin = blockIdx.x, itemEnd = items, itemStep = gridDim.x;
#endif
    int it = 0;
    for (long long item = itemBegin;; item += itemStep, it++)
    {
        const int s = it % GB_STAGES;
        mbar_wait(emptyBase + 8 * s, ((it / GB_STAGES) & 1) ^ 1);
        int expert = -1, rowBegin = 0, rowEnd = 0;
        if (item < itemEnd)
        {
            const int mTile = (int)(item / chunks);
            if (mTile < GB_TILE_TABLE)
            {
                const int3 tile = tileTable[mTile];
                expert = tile.x, rowBegin = tile.y, rowEnd = tile.z;
            }
            else
                // The serial walk: only tiles past the shared table come here (registers unchecked: NVRTC 11.8 builds a stub).
                find_expert_tile_serial(expertOffsets, experts, rows, GB_TILE_ROWS, mTile, expert, rowBegin, rowEnd);
        }
        const moe_u32 full = fullBase + 8 * s;
        const int col0 = (int)(item % chunks) * colsPerChunk;
        const int cols = min(colsPerChunk, outCols - col0);
        const moe_u32 bytes = (moe_u32)(cols * rowBytes);
        if (lane == 0)
        {
            if (expert < 0)
            {
                info[s] = GbStage{0, 0, 0, 0};
                mbar_arrive(full);
            }
            else
            {
                info[s] = GbStage{rowBegin, rowEnd - rowBegin, col0, cols};
                gb_bar_arrive_expect_tx(full, (fused ? 2 * bytes : bytes) + (GB_X_BYTES > 0 ? (moe_u32)((rowEnd - rowBegin) * rowBytes) : 0u));
            }
        }
#if GB_COPY_LANES > 1
        __syncwarp(); // the expect_tx before any lane's copy can complete
#endif
        if (expert >= 0 && lane < GB_COPY_LANES)
        {
            const moe_u32 dst = shared_addr(gbStages + s * GB_SLOT_BYTES);
            const unsigned char* wExpert = reinterpret_cast<const unsigned char*>(w) + (long long)expert * n * rowBytes;
            const int pieces = gb_copy_range(dst, wExpert + col0 * rowBytes, bytes, full, policy, lane, 0);
            if (fused)
                gb_copy_range(dst + bytes, wExpert + (outCols + (long long)col0) * rowBytes, bytes, full, policy, lane, pieces);
        }
#if GB_X_BYTES > 0
        // The m-tile's X rows (contiguous: rows are sorted by expert), one copy on the same barrier, by lane 0 (after its
        // expect_tx, whatever GB_COPY_LANES).
        if (expert >= 0 && lane == 0)
            gb_bulk_copy(shared_addr(gbStages + s * GB_SLOT_BYTES + GB_STAGE_BYTES), reinterpret_cast<const unsigned char*>(x) + rowBegin * rowBytes,
                         (moe_u32)((rowEnd - rowBegin) * rowBytes), full, policy);
#else
        (void)x;
#endif
        __syncwarp();
        if (expert < 0)
            return;
    }
}

// Output element i of a stage (column i / GB_TILE_ROWS, X row i % GB_TILE_ROWS): its ks partial sums in part order,
// SiLU-and-mul where fused, the row scale.
template <typename TOut>
__device__ __forceinline__ void gb_store_output(int i, const GbStage& stage, int ks, int fused, int outCols, const float* __restrict__ rowScale,
                                                TOut* __restrict__ y, const float (&partial)[GB_MAX_PARTS][GB_TILE_ROWS])
{
    const int col = i / GB_TILE_ROWS, r = i % GB_TILE_ROWS;
    if (r >= stage.xRows)
        return;
    float sum = 0.0f;
    for (int p = 0; p < ks; p++)
        sum += partial[col * ks + p][r];
    if (fused)
    {
        float up = 0.0f;
        for (int p = 0; p < ks; p++)
            up += partial[(stage.cols + col) * ks + p][r];
        sum = gb_silu(sum) * up;
    }
    const int xRow = stage.rowBegin + r;
    const float scale = rowScale != nullptr ? rowScale[xRow] : 1.0f;
    y[(long long)xRow * outCols + stage.col0 + col] = from_float<TOut>(sum * scale);
}

template <typename TIn, typename TOut>
__device__ __forceinline__ void gb_consume(const TIn* __restrict__ x, const float* __restrict__ rowScale, TOut* __restrict__ y, int n, int k,
                                           int fused, int kSplit, int stageRows, const GbStage* info, moe_u32 fullBase, moe_u32 emptyBase,
                                           moe_u32 readyBase, float (&partial)[GB_PARTIAL_BUFFERS][GB_MAX_PARTS][GB_TILE_ROWS])
{
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int outCols = fused ? n / 2 : n;
    const int chunksPerRow = k / 8;
    // Warps per row: enough virtual warps for every consumer warp on a stage of full rows.
    int ks = 1;
    while (ks < kSplit && stageRows * ks < GB_WARPS)
        ks *= 2;
    for (int it = 0;; it++)
    {
        const int s = it % GB_STAGES, buffer = GB_MODE == 2 ? s : it & 1;
        mbar_wait(fullBase + 8 * s, (it / GB_STAGES) & 1);
        const GbStage stage = info[s];
        if (stage.xRows == 0)
            return;
#if GB_MODE == 1
        // copy-only: release the stage as soon as it has landed.
        __syncwarp();
        if (lane == 0)
            mbar_arrive(emptyBase + 8 * s);
        continue;
#endif
        const int wRows = fused ? 2 * stage.cols : stage.cols;
        const TIn* stageW = reinterpret_cast<const TIn*>(gbStages + s * GB_SLOT_BYTES);
#if GB_X_BYTES > 0
        const uint4* stageX = reinterpret_cast<const uint4*>(gbStages + s * GB_SLOT_BYTES + GB_STAGE_BYTES);
#else
        const uint4* stageX = reinterpret_cast<const uint4*>(x + (long long)stage.rowBegin * k);
#endif
        for (int vw = warp; vw < wRows * ks; vw += GB_WARPS)
        {
            const int row = vw / ks, part = vw % ks;
            const uint4* wRow = reinterpret_cast<const uint4*>(stageW + (long long)row * k);
            float acc[GB_TILE_ROWS] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll GB_UNROLL
            for (int c = part * 32 + lane; c < chunksPerRow; c += 32 * ks)
            {
                float wf[8];
                unpack8((const TIn*)nullptr, wRow[c], wf);
#pragma unroll
                for (int r = 0; r < GB_TILE_ROWS; r++)
                {
                    if (r >= stage.xRows)
                        break;
                    float xf[8];
#if GB_X_BYTES > 0
                    unpack8((const TIn*)nullptr, stageX[r * chunksPerRow + c], xf);
#else
                    unpack8((const TIn*)nullptr, __ldg(stageX + (long long)r * chunksPerRow + c), xf);
#endif
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        acc[r] = fmaf(wf[e], xf[e], acc[r]);
                }
            }
#pragma unroll
            for (int r = 0; r < GB_TILE_ROWS; r++)
            {
                const float v = r < stage.xRows ? warp_sum(acc[r]) : 0.0f;
                if (lane == 0)
                    partial[buffer][vw][r] = v;
            }
        }
#if GB_MODE == 2
        // no-epilogue-sync: post the partials; warp it % GB_WARPS sums them once all are posted and releases the stage
        // last (the stage's partial buffer is rewritten only after the producer refills the stage).
        __syncwarp();
        if (lane == 0)
            mbar_arrive(readyBase + 8 * s);
        if (warp != it % GB_WARPS)
        {
            if (lane == 0)
                mbar_arrive(emptyBase + 8 * s);
            continue;
        }
        mbar_wait(readyBase + 8 * s, (it / GB_STAGES) & 1);
        for (int i = lane; i < stage.cols * GB_TILE_ROWS; i += 32)
            gb_store_output(i, stage, ks, fused, outCols, rowScale, y, partial[buffer]);
        __syncwarp();
        if (lane == 0)
            mbar_arrive(emptyBase + 8 * s);
#else
        // The stage is read: the producer may refill it while this one's epilogue runs.
        __syncwarp();
        if (lane == 0)
            mbar_arrive(emptyBase + 8 * s);
        gb_consumer_sync();
        for (int i = threadIdx.x; i < stage.cols * GB_TILE_ROWS; i += GB_WARPS * 32)
            gb_store_output(i, stage, ks, fused, outCols, rowScale, y, partial[buffer]);
#endif
    }
}

template <typename TIn, typename TOut>
__device__ __forceinline__ void grouped_gemv_bulk(const TIn* __restrict__ x, const TIn* __restrict__ w, const int* __restrict__ expertOffsets,
                                                  const float* __restrict__ rowScale, TOut* __restrict__ y, int rows, int n, int k,
                                                  int experts, int fused, int kSplit)
{
    __shared__ __align__(8) moe_u64 fullBars[GB_STAGES], emptyBars[GB_STAGES];
#if GB_MODE == 2
    __shared__ __align__(8) moe_u64 readyBars[GB_STAGES];
    const moe_u32 readyBase = shared_addr(readyBars);
#else
    const moe_u32 readyBase = 0;
#endif
    __shared__ GbStage info[GB_STAGES];
    __shared__ float partial[GB_PARTIAL_BUFFERS][GB_MAX_PARTS][GB_TILE_ROWS];
    __shared__ int3 tileTable[GB_TILE_TABLE];
    const moe_u32 fullBase = shared_addr(fullBars), emptyBase = shared_addr(emptyBars);
    const int stageRows = gb_stage_rows(k, fused);
    if (stageRows == 0 || (GB_X_BYTES > 0 && GB_TILE_ROWS * k * 2 > GB_X_BYTES))
        __trap(); // K past the limit: the host never launches it
    if (threadIdx.x == 0)
    {
        for (int s = 0; s < GB_STAGES; s++)
        {
            mbar_init(fullBase + 8 * s, 1);         // the producer's arrive (+ the copies' bytes)
            mbar_init(emptyBase + 8 * s, GB_WARPS); // one arrive per consumer warp
#if GB_MODE == 2
            mbar_init(readyBase + 8 * s, GB_WARPS); // one arrive per consumer warp once its partials are written
#endif
        }
#ifndef GB_PTX78_PROBE
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
    }
    __syncthreads();
    if (threadIdx.x >= GB_WARPS * 32)
        gb_produce(x, w, expertOffsets, rows, n, k, experts, fused, fused ? stageRows / 2 : stageRows, info, fullBase, emptyBase, tileTable);
    else
        gb_consume(x, rowScale, y, n, k, fused, kSplit, stageRows, info, fullBase, emptyBase, readyBase, partial);
}

#else

// Bulk copies need sm_90 and NVRTC 12+; the host refuses the variant elsewhere, and this body keeps the source compiling.
template <typename TIn, typename TOut>
__device__ __forceinline__ void grouped_gemv_bulk(const TIn*, const TIn*, const int*, const float*, TOut*, int, int, int, int, int, int)
{
    __trap();
}

#endif

#define GB_ENTRY(SUFFIX, TIN, TOUT)                                                                                          \
    extern "C" __global__ void __launch_bounds__(GB_THREADS, GB_MIN_BLOCKS) grouped_gemm_gemv_bulk_##SUFFIX(                           \
        const TIN* __restrict__ x, const TIN* __restrict__ w, const int* __restrict__ expertOffsets,                        \
        const float* __restrict__ rowScale, TOUT* __restrict__ y, int rows, int n, int k, int experts, int fused, int kSplit) \
    {                                                                                                                        \
        moe_wait_prior_grid();                                                                                                \
        grouped_gemv_bulk<TIN, TOUT>(x, w, expertOffsets, rowScale, y, rows, n, k, experts, fused, kSplit);                  \
    }

GB_ENTRY(bf16_bf16, bf16, bf16)
GB_ENTRY(bf16_f32, bf16, float)
GB_ENTRY(bf16_f16, bf16, f16)
GB_ENTRY(f16_f16, f16, f16)
GB_ENTRY(f16_f32, f16, float)
GB_ENTRY(f16_bf16, f16, bf16)
