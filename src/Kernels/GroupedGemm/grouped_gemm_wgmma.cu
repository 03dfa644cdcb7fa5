// requires: sm_90a
// grouped_gemm_wgmma.cu: Y[rows of e] = X[rows of e] * W[e]^T for every expert e, on Hopper's warpgroup MMA (sm_90a).
//   mapX:          TMA descriptor of x [rows, K] bf16 or f16 (dims {K, rows}, box {64, 128}, 128-byte swizzle)
//   mapXRows:      the same x with box {64, 16}: the X rows of a tile of at most 64 rows, 16 at a time (GW_SMALL_TILES)
//   mapW:          TMA descriptor of w [E, N, K] same dtype (dims {K, N, E}, box {64, 128, 1}, 128-byte swizzle)
//   expertOffsets: [E + 1] int   rows of expert e are expertOffsets[e] .. expertOffsets[e+1]-1 (read on the device)
//   rowScale:      [rows] float  optional (null): each output row is multiplied by it (routing weights)
//   y:             [rows, N] or, fused, [rows, N/2]   bf16, f16 or f32
// Same function as grouped_gemm.cu's variants (GroupedGemm.cs documents it); this file is the prefill kernel for H100/H200.
//
// Tile: 128 rows x 256 columns of W (fused SiLU-and-mul: 128 gate + 128 up rows, 128 output columns), BK = 64.
// Block: 3 warpgroups (384 threads, one block per SM, persistent over the work):
//   warpgroup 0, the producer (setmaxnreg.dec to GW_PRODUCER_REGS, 56 registers): its warp 0 walks the tiles, lane 0 issues the
//     TMA copies of each K step into a 4-stage ring of shared buffers (48 KB a stage: X 128x64, W 256x64),
//     completing on the stage's `full` mbarrier (expect_tx of the whole box, out-of-bounds parts zero-filled);
//     it waits on the stage's `empty` mbarrier before refilling it. Each stage also carries the tile it belongs to
//     (expert, rows, column tile); after the last tile a stage with expert = -1 tells the consumers to stop.
//   warpgroups 1 and 2, the consumers (setmaxnreg.inc to GW_CONSUMER_REGS, 224): rows 0-63 and 64-127 of the tile, each
//     4 x wgmma.mma_async.m64n256k16 (F32 accumulators, 128 registers a thread) per K step, both operands from
//     shared memory through matrix descriptors; one wgmma group in flight, so a stage is released (one arrive
//     per warp on `empty`: 8 arrivals) once the next K step's group is issued.
//     Epilogue (GW_EPILOGUE_SMEM, set by the launcher from MOE_GROUPED_GEMM_WGMMA_EPILOGUE): 1, each warp stages its
//     16 accumulator rows in chunks of 16 rows x 128 bytes in a 2 KB buffer of its own, then stores them as 16-byte
//     vectors, 8 lanes a row (128-byte row segments); 0, straight from the accumulators (4- or 8-byte stores).
//     Both mask rows outside the expert and columns past N.
// Small tiles (GW_SMALL_TILES, set by the launcher; MOE_GROUPED_GEMM_WGMMA_SMALL_TILES for A/B runs): a tile of at
//   most 64 rows of its expert (decode and T = 128: DeepSeek-V3 has ~7 rows an expert) loads only its rows' X, in
//   boxes of 16 rows (mapXRows) instead of the 128-row box that reads into the next experts' rows, and the consumer
//   warpgroup whose 64 rows hold none of the expert's issues no wgmma (it still waits and releases each stage) when the
//   tile is its expert's only one. The rows left unloaded hold stale shared memory; a row of D depends only on its row
//   of A, and those rows are never stored, so the output's bits are the same either way. GW_SMALL_TILES is a mask: 1
//   the X boxes, 2 the idle warpgroup, 3 both (the default). Why only an expert's only tile: the last, partial m-tile of
//   a larger expert shares each W tile in L2 with its siblings, which the order runs at the same time; idle, it ran
//   through K twice as fast as they did and each W tile came from DRAM twice (twentieth session: DeepSeek-V3 T = 8192
//   gate_up 9.4 ms against 6.0 with the X boxes alone, 7.5 with the dynamic order; docs/PERFORMANCE.md).
// Shared layout: the stages, then the epilogue's 8 warp buffers (16 KB, only the consumers' own: never a stage the
//   producer may be refilling), then the barriers and tile records. Stages (TMA's 128-byte swizzle, which the descriptors name): a tile of R rows of 64 elements is R rows of
//   128 bytes; 16-byte chunk c of row r sits at chunk c ^ (r % 8). Every tile starts on a 1024-byte boundary, so
//   the pattern repeats every 8 rows (1024 bytes: the descriptor's stride byte offset) and a K step of 16 elements
//   is a 32-byte advance of the start address (the hardware applies the XOR to the address it forms).
// Work: global m-tiles over the experts (expert e owns ceil(count_e / 128), tile m of e starts at row
//   offsets[e] + 128 m, so its TMA box reads into the next expert's rows: they are loaded, never stored) times
//   column tiles, visited in groups of GW_GROUP_M m-tiles so that the blocks running at once share W tiles in L2.
//   tickets: the workspace's ints, zero between launches, or null (the orders: wgmma_order.cuh; the host asks for dynamic
//   unless switched to bounded or auto). Dynamic: each block's producer claims its next item from tickets[0] (an
//   atomic add) at its tile's last K step, so the blocks working at once stay on neighbouring items whatever their tiles
//   cost and however late a block starts (the DeepSeek-V3 T = 8192 layer took 14.7-15.0 ms against 16.5-17.5 static,
//   twentieth session; on its router's counts the static blocks drifted ~650 items apart and gate_up took 9.6 ms against
//   6.7, twenty-first session). The last block out zeroes the tickets. Null: the static order, block b taking items b, b + grid, b + 2 grid, ... Every order gives the
//   same bits (a tile is computed the same wherever it runs). Calls that share tickets must not run at the same time.
//   Where an item runs matters as well as when (twenty-first session, docs/PERFORMANCE.md): the static order puts
//   neighbouring items (an expert's m-tiles of one column tile, which share W) on neighbouring blocks, 2j and 2j + 1
//   on one TPC; scrambled over the blocks, the same items took up to 1.8x as long. The dynamic claims scatter items
//   after the first wave, which cost isolated calls up to 8%. A work-stealing order (static placement, late blocks'
//   last items taken by the others) tied the static order and lost the DeepSeek-V3 T = 8192 layer's gate_up as it does
//   (9.8 ms against 7.7 dynamic), so it is not kept.
// K tails (K % 64 != 0), N tails and rows past x's end are zero-filled by TMA (the maps' dims are exact).
// Launch: grid = min(SMs, tile upper bound), block 384, dynamic shared GW_SHARED_BYTES; K % 8 == 0 (TMA strides are
//   multiples of 16 bytes), x and w 16-byte aligned. Compile for sm_90a only (the first line says so).
// Also here, for tests: grouped_gemm_wgmma_debug_tma (one TMA box, raw) and grouped_gemm_wgmma_debug_mma_bf16 (one K
//   step of wgmma without the pipeline), to tell a layout or descriptor error from a pipeline error.
// GW_TRACE (MOE_GROUPED_GEMM_WGMMA_TRACE=1, a diagnostic build): every entry takes a last argument trace:
//   [work items, GW_TRACE_VALUES] u64. For each item it ran: %globaltimer (ns) when the producer issued its first copy,
//   when the first consumer warpgroup was past its first stage, after its last wgmma and after its epilogue; then
//   %smid << 32 | block, and expert << 40 | rows of the tile << 20 | column tile. Where the two schedules' time goes.
//   Paired (GW_CLUSTER > 1), entry t * GW_CLUSTER + rank is item t's half that block `rank` of the pair ran.
// Clusters (GW_CLUSTER = 2, MOE_GROUPED_GEMM_WGMMA_CLUSTER): blocks run in pairs of one cluster (__cluster_dims__), and a
//   pair works on one column tile of two neighbouring m-tiles of an expert (work units of 256 rows: rank r of the pair
//   takes rows 128 r .. 128 r + 127 of the unit). Each block loads its own X and one of the two 128-row W boxes, which TMA
//   multicasts into both blocks' stage at the same offset, completing on both blocks' `full` barrier: L2 serves each W
//   tile once a pair, a third less traffic a K step (as PyTorch's sm_90 grouped GEMM does, on CUTLASS's 2 x 1 clusters).
//   So a stage is free only once both blocks' consumers are done with it: a consumer warp arrives on the
//   `empty` barrier of both blocks (16 arrivals a phase). A rank whose unit has no rows of its own (an expert's odd last
//   m-tile) still loads its W box for its partner and its consumers only wait and release. Barriers are ready in both
//   blocks before either copies (a cluster barrier after init), and no block exits while its partner may still arrive
//   on its barriers: the producer waits for the last release of every stage (the tail). Static order only (a claim
//   would have to be shared by the pair); the tickets are not touched. Every tile's K steps are the same wgmma on the
//   same operands, so the output's bits are those of the unpaired kernel. Off by default (GroupedGemmWgmma.DefaultCluster):
//   on one H200 (twenty-eighth session) pairs tied on Mixtral-8x7B's T = 8192 down and lost 1-3% on its gate_up, and
//   where experts have one m-tile the partner block idles its SM (DeepSeek-V3 T = 1024 gate_up 4086 against 3605 us).
// GW_HANG_TRAP (a compile option, on by default from the launcher): a barrier wait longer than 4 s traps (the launch
//   fails) instead of hanging the device.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
// plain-launch: yet it is launched after the kernel before it ends (KernelSource.PlainLaunchMarker). Overlapped, the layer
//   took 16.2-17.2 ms at DeepSeek-V3 T = 8192 against 15.1-15.2 plainly (one H200, eighteenth session, `pdl18b.sh`; plainly,
//   Mixtral-8x7B T = 8192 was 1-4% faster and T = 128 1% faster, Qwen3-30B-A3B T = 128 2% slower, T = 16 and 1024 within
//   noise). Why overlapping costs the persistent grid that much was not measured. MOE_PDL_OVERLAP=grouped_gemm_wgmma.cu
//   overlaps it again, for A/B runs.
#include "moe_common.cuh"
#include "expert_tiles.cuh"
#include "mbarrier.cuh"
#include "wgmma_order.cuh"

#define GW_BM 128
#define GW_BN 256
#define GW_BK 64
#define GW_STAGES 4
#define GW_THREADS 384
// Registers a thread after setmaxnreg (multiples of 8): the launch gives each of the 384 threads 168, and the producer's
// warpgroup hands what it gives up to the two consumer warpgroups: producer + 2 consumers <= 3 x 168.
#ifndef GW_PRODUCER_REGS
#define GW_PRODUCER_REGS 56 // A/B: MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS. At 40 the producer spilled 16 bytes (twenty-first session)
#endif
#define GW_CONSUMER_REGS (((3 * 168 - GW_PRODUCER_REGS) / 2) & ~7)
#ifndef GW_GROUP_M
#define GW_GROUP_M 8   // a compile option for A/B runs (MOE_GROUPED_GEMM_WGMMA_GROUP_M)
#endif
#ifndef GW_CLUSTER
#define GW_CLUSTER 1   // blocks a cluster: 1 or 2 (the launcher sets it; "Clusters" above)
#endif
#if GW_CLUSTER != 1 && GW_CLUSTER != 2
#error GW_CLUSTER must be 1 or 2
#endif
#ifndef GW_CLUSTER_SHARE
#define GW_CLUSTER_SHARE 1 // 0 (A/B, MOE_GROUPED_GEMM_WGMMA_CLUSTER_SHARE=0): paired work, but each block loads its own W
#endif
#define GW_SHARES_W (GW_CLUSTER > 1 && GW_CLUSTER_SHARE)
#define GW_UNIT_ROWS (GW_BM * GW_CLUSTER)                                // rows of a work unit: a pair's two m-tiles
#define GW_GROUP_UNITS (GW_GROUP_M / GW_CLUSTER > 0 ? GW_GROUP_M / GW_CLUSTER : 1)
#define GW_A_BYTES (GW_BM * GW_BK * 2)
#define GW_XS_ROWS 16                         // rows of mapXRows's box
#define GW_XS_BYTES (GW_XS_ROWS * GW_BK * 2)  // 2 KB: two 1024-byte swizzle spans, so the pattern is the 128-row box's
#ifndef GW_SMALL_TILES
#define GW_SMALL_TILES 3 // the launcher always sets it (GroupedGemmWgmma.DefaultSmallTiles)
#endif
#define GW_B_BYTES (GW_BN * GW_BK * 2)
#define GW_STAGE_BYTES (GW_A_BYTES + GW_B_BYTES)
#define GW_CONSUMER_WARPS 8
#ifndef GW_EPILOGUE_SMEM
#define GW_EPILOGUE_SMEM 1 // the launcher always sets it (GroupedGemmWgmma.DefaultEpilogue)
#endif
#define GW_EPI_ROW_BYTES 128                          // one staged chunk: 16 rows x 128 bytes a warp
#define GW_EPI_WARP_BYTES (16 * (GW_EPI_ROW_BYTES + 32)) // rows padded to 160 bytes at most (gw_epi_pitch)
#ifdef GW_TRACE
#define GW_TRACE_VALUES 6
#define GW_TRACE_PARAM , unsigned long long* __restrict__ gwTrace
#define GW_TRACE_ARG , gwTrace
#else
#define GW_TRACE_PARAM
#define GW_TRACE_ARG
#endif
// Tiles, the epilogue buffers, 1024 bytes of alignment slack, then the barriers and the stages' tile records.
#define GW_SHARED_BYTES (GW_STAGES * GW_STAGE_BYTES + GW_CONSUMER_WARPS * GW_EPI_WARP_BYTES + 1024 + 256)

// A CUtensorMap: 128 opaque bytes, 64-byte aligned, passed by value as a __grid_constant__ parameter.
struct __align__(64) TmaDescriptor
{
    moe_u64 opaque[16];
};

// What a stage holds: the tile its K step belongs to. expert = -1: no more work. only: the tile holds all of its expert's
// rows (the expert's one m-tile).
struct GwTile
{
    int expert;
    int rowBegin;
    int rowEnd;
    int nTile;
    int only;
#ifdef GW_TRACE
    int item;
#endif
};

__device__ __forceinline__ void gw_bar_wait(moe_u32 bar, moe_u32 parity)
{
#ifdef GW_HANG_TRAP
    // No wait of a correct pipeline lasts more than microseconds; 4 seconds means a bug (wrong parity, missing
    // arrive, a TMA that never lands): trap, so the launch fails instead of hanging the device.
    if (mbar_try_wait(bar, parity))
        return;
    const moe_u64 start = globaltimer_ns();
    unsigned int polls = 0;
    while (!mbar_try_wait(bar, parity))
        if ((++polls & 1023u) == 0 && globaltimer_ns() - start > 4000000000ull)
            __trap();
#else
    mbar_wait(bar, parity);
#endif
}

// ---- TMA ----

__device__ __forceinline__ void gw_tma_prefetch(const TmaDescriptor* map)
{
    asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<moe_u64>(map)) : "memory");
}

// Box of `map` at element coordinates (c0 innermost, c1) into shared `dst`, completing on barrier `bar`.
__device__ __forceinline__ void gw_tma_load_2d(moe_u32 dst, const TmaDescriptor* map, moe_u32 bar, int c0, int c1)
{
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4}], [%2];"
                 ::"r"(dst), "l"(reinterpret_cast<moe_u64>(map)), "r"(bar), "r"(c0), "r"(c1)
                 : "memory");
}

__device__ __forceinline__ void gw_tma_load_3d(moe_u32 dst, const TmaDescriptor* map, moe_u32 bar, int c0, int c1, int c2)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%3, %4, %5}], [%2];"
                 ::"r"(dst), "l"(reinterpret_cast<moe_u64>(map)), "r"(bar), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}

// The W box of a pair: written at the same shared offset `dst` in both blocks of the cluster (ctaMask 0b11), completing
// on the barrier at offset `bar` in each.
__device__ __forceinline__ void gw_tma_load_3d_multicast(moe_u32 dst, const TmaDescriptor* map, moe_u32 bar, int c0, int c1, int c2,
                                                         moe_u16 ctaMask)
{
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster"
                 " [%0], [%1, {%4, %5, %6}], [%2], %3;"
                 ::"r"(dst), "l"(reinterpret_cast<moe_u64>(map)), "r"(bar), "h"(ctaMask), "r"(c0), "r"(c1), "r"(c2)
                 : "memory");
}

// ---- clusters ----

__device__ __forceinline__ int gw_cluster_rank()
{
#if GW_CLUSTER > 1
    moe_u32 rank;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
    return (int)rank;
#else
    return 0;
#endif
}

// Every thread of the cluster's blocks: the barriers both blocks initialised are visible to both (__syncthreads without clusters).
__device__ __forceinline__ void gw_cluster_sync()
{
#if GW_CLUSTER > 1
    asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
#else
    __syncthreads();
#endif
}

// A consumer warp is done with a stage: one arrive on the stage's `empty` barrier in every block whose producer fills it.
// The arrive's default release is CTA-scoped: what it orders is the stage's reads by wgmma, complete at the wait_group
// before it, and no write of this thread's. With cluster-scoped releases (.release.cluster) a tile's K loop took 1.7x as
// long paired (twenty-eighth session, Mixtral-8x7B T = 8192 down: 264 us against 152 unpaired); with these, 157.
__device__ __forceinline__ void gw_release(moe_u32 emptyBar)
{
#if GW_SHARES_W
#pragma unroll
    for (int rank = 0; rank < GW_CLUSTER; rank++)
        asm volatile("{\n\t.reg .b32 remote;\n\t"
                     "mapa.shared::cluster.u32 remote, %0, %1;\n\t"
                     "mbarrier.arrive.shared::cluster.b64 _, [remote];\n\t}"
                     ::"r"(emptyBar), "r"(rank)
                     : "memory");
#else
    mbar_arrive(emptyBar);
#endif
}

// ---- wgmma ----

// Matrix descriptor of a K-major operand tile in 128-byte-swizzled shared memory (rows of 64 two-byte elements):
//   bits  0-13  start address >> 4 (the tile's base, plus 32 bytes per 16-element K step)
//   bits 16-29  leading dimension byte offset >> 4: not used by swizzled K-major layouts whose K step fits in the
//               swizzle span (16 elements = 32 bytes < 128); 1 by convention
//   bits 32-45  stride dimension byte offset >> 4: 1024 bytes from one group of 8 rows to the next
//   bits 49-51  base offset: 0 (tiles start on 1024-byte boundaries)
//   bits 62-63  swizzle mode: 1 = 128-byte swizzle (2 = 64-byte, 3 = 32-byte, 0 = none)
__device__ __forceinline__ moe_u64 gw_descriptor(moe_u32 smemAddress)
{
    return (moe_u64)((smemAddress & 0x3FFFFu) >> 4)
         | ((moe_u64)1 << 16)
         | ((moe_u64)(1024 >> 4) << 32)
         | ((moe_u64)1 << 62);
}

__device__ __forceinline__ void gw_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void gw_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void gw_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory"); }

// Keeps the compiler from moving accumulator reads and writes across wgmma fences and waits.
__device__ __forceinline__ void gw_fence_accumulators(float* d)
{
#pragma unroll
    for (int i = 0; i < 128; i++)
        asm volatile("" : "+f"(d[i])::"memory");
}

#define GW_ACC_LIST \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"

#define GW_ACC_OPERANDS \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
    "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

// D[64 x 256] (+)= A[64 x 16] * B[256 x 16]^T; scaleD = 0 overwrites D (first K step of a tile).
// Accumulator layout (thread t of the warpgroup, warp w = t / 32, lane l): d[4j + 2i + c] is
// row 16 w + l / 4 + 8 i, column 8 j + 2 (l % 4) + c, for j = 0..31, i, c = 0..1.
#define GW_WGMMA(TYPE)                                                                                         \
    asm volatile("{\n\t.reg .pred p;\n\tsetp.ne.b32 p, %130, 0;\n\t"                                           \
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32." TYPE "." TYPE " {"                             \
                 GW_ACC_LIST                                                                                   \
                 "}, %128, %129, p, 1, 1, 0, 0;\n\t}"                                                          \
                 : GW_ACC_OPERANDS                                                                             \
                 : "l"(descA), "l"(descB), "r"(scaleD))

template <typename TIn>
__device__ __forceinline__ void gw_wgmma_m64n256k16(float* d, moe_u64 descA, moe_u64 descB, int scaleD);

template <>
__device__ __forceinline__ void gw_wgmma_m64n256k16<bf16>(float* d, moe_u64 descA, moe_u64 descB, int scaleD)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    GW_WGMMA("bf16");
#else
    __trap();
#endif
}

template <>
__device__ __forceinline__ void gw_wgmma_m64n256k16<f16>(float* d, moe_u64 descA, moe_u64 descB, int scaleD)
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    GW_WGMMA("f16");
#else
    __trap();
#endif
}

template <int COUNT>
__device__ __forceinline__ void gw_setmaxnreg_dec()
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;" ::"n"(COUNT));
#endif
}

template <int COUNT>
__device__ __forceinline__ void gw_setmaxnreg_inc()
{
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;" ::"n"(COUNT));
#endif
}

// ---- work ----

// The work map (expert_tiles.cuh): m-tiles of GW_BM rows per expert.

// ---- epilogue ----

template <typename TOut>
__device__ __forceinline__ void gw_store_pair(TOut* p, float v0, float v1)
{
    TOut o0 = from_float<TOut>(v0), o1 = from_float<TOut>(v1);
    if ((reinterpret_cast<moe_u64>(p) & (2 * sizeof(TOut) - 1)) == 0)
    {
        if constexpr (sizeof(TOut) == 2)
            *reinterpret_cast<moe_u32*>(p) = (moe_u32)(*reinterpret_cast<moe_u16*>(&o0)) | ((moe_u32)(*reinterpret_cast<moe_u16*>(&o1)) << 16);
        else
            *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
        return;
    }
    p[0] = o0;
    p[1] = o1;
}

__device__ __forceinline__ float gw_silu(float v) { return v / (1.0f + __expf(-v)); }

// The tile a consumer warp stores: its 16 rows (rows 16 w .. 16 w + 15 of its warpgroup's 64) of the output tile.
struct GwWarpTile
{
    int firstRow;  // global row of the warp's row 0
    int rowEnd;    // rows from here on belong to another expert: never stored
    int firstCol;  // global output column of the tile's column 0
    int outCols;   // N, or N / 2 when fused
};

// Straight from the accumulators: lane l holds rows l / 4 and l / 4 + 8, columns 8 j + 2 (l % 4) + {0, 1}.
template <typename TOut>
__device__ __forceinline__ void gw_epilogue_direct(const float* acc, const GwWarpTile& t, const float* __restrict__ rowScale,
                                                   TOut* __restrict__ y, int fused, int lane)
{
    const int colBase = t.firstCol + 2 * (lane & 3);
#pragma unroll
    for (int i = 0; i < 2; i++)
    {
        const int r = t.firstRow + (lane >> 2) + 8 * i;
        if (r >= t.rowEnd)
            continue;
        const float scale = rowScale != nullptr ? rowScale[r] : 1.0f;
        TOut* yRow = y + (size_t)r * t.outCols;
        if (!fused)
        {
#pragma unroll
            for (int j = 0; j < 32; j++)
            {
                const int col = colBase + 8 * j;
                const float v0 = acc[4 * j + 2 * i] * scale, v1 = acc[4 * j + 2 * i + 1] * scale;
                if (col + 1 < t.outCols)
                    gw_store_pair(yRow + col, v0, v1);
                else if (col < t.outCols)
                    yRow[col] = from_float<TOut>(v0);
            }
        }
        else
        {
#pragma unroll
            for (int j = 0; j < 16; j++)
            {
                const int col = colBase + 8 * j;
                const float v0 = gw_silu(acc[4 * j + 2 * i]) * acc[4 * (j + 16) + 2 * i] * scale;
                const float v1 = gw_silu(acc[4 * j + 2 * i + 1]) * acc[4 * (j + 16) + 2 * i + 1] * scale;
                if (col + 1 < t.outCols)
                    gw_store_pair(yRow + col, v0, v1);
                else if (col < t.outCols)
                    yRow[col] = from_float<TOut>(v0);
            }
        }
    }
}

// Through shared memory: a chunk is 16 rows x 128 bytes (64 columns of a 2-byte type, 32 of f32) of the warp's rows,
// staged rows gw_epi_pitch bytes apart. The padding keeps both sides free of bank conflicts:
//   writes, 2-byte outputs: one instruction is rows 0-7 (+ 8 i) x 4 lanes of 4 bytes at the same column; a 144-byte
//     pitch moves each row 4 banks on, so the 8 rows x 4 lanes fill the 32 banks;
//   writes, f32: 8-byte stores go a half-warp at a time, rows 0-3 (or 4-7) x 4 lanes of 8 bytes; a 160-byte pitch
//     moves each row 8 banks on: 4 rows x 4 lanes x 2 banks, the 32 banks;
//   reads: 8 lanes read one row's 128 contiguous bytes, the 32 banks.
// (A padded pitch, unlike an XOR swizzle, leaves every address a lane's base plus a constant: no registers held.)
template <typename TOut>
__device__ __forceinline__ constexpr int gw_epi_pitch() { return GW_EPI_ROW_BYTES + 8 * (int)sizeof(TOut); }

// Stages output columns col, col + 1 (col even, within the chunk) of staged row r.
template <typename TOut>
__device__ __forceinline__ void gw_stage_pair(unsigned char* buffer, int r, int col, float v0, float v1)
{
    unsigned char* p = buffer + r * gw_epi_pitch<TOut>() + col * (int)sizeof(TOut);
    if constexpr (sizeof(TOut) == 2)
    {
        const TOut o0 = from_float<TOut>(v0), o1 = from_float<TOut>(v1);
        *reinterpret_cast<moe_u32*>(p) = (moe_u32)o0.bits | ((moe_u32)o1.bits << 16);
    }
    else
        *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
}

// Stores the staged chunk whose column 0 is output column firstCol: lane l takes unit l % 8 of rows l / 8 + 4 it.
template <typename TOut>
__device__ __forceinline__ void gw_store_chunk(const unsigned char* buffer, const GwWarpTile& t, int firstCol, bool vectors,
                                               TOut* __restrict__ y, int lane)
{
    constexpr int VEC = 16 / (int)sizeof(TOut); // elements per 16-byte unit
    const int u = lane & 7;
    const int col = firstCol + VEC * u;
#pragma unroll
    for (int it = 0; it < 4; it++)
    {
        const int r = 4 * it + (lane >> 3);
        const int row = t.firstRow + r;
        if (row >= t.rowEnd || col >= t.outCols)
            continue;
        const unsigned char* src = buffer + r * gw_epi_pitch<TOut>() + 16 * u;
        TOut* dst = y + (size_t)row * t.outCols + col;
        if (vectors && col + VEC <= t.outCols)
            *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
        else
        {
            const TOut* e = reinterpret_cast<const TOut*>(src); // a row tail or rows not on 16 bytes: cold
#pragma unroll 1
            for (int c = 0; c < VEC && col + c < t.outCols; c++)
                dst[c] = e[c];
        }
    }
}

template <typename TOut>
__device__ __forceinline__ void gw_epilogue_smem(const float* acc, const GwWarpTile& t, const float* __restrict__ rowScale,
                                                 TOut* __restrict__ y, int fused, int lane, unsigned char* buffer)
{
    constexpr int CHUNK_COLS = GW_EPI_ROW_BYTES / (int)sizeof(TOut); // 64 or 32
    constexpr int CHUNK_J = CHUNK_COLS / 8;                           // accumulator column groups a chunk: 8 or 4
    // 16-byte stores need every row to start on 16 bytes: y aligned and a row a multiple of 16 bytes.
    const bool vectors = (reinterpret_cast<moe_u64>(y) & 15) == 0 && (t.outCols * (int)sizeof(TOut)) % 16 == 0;
    float scale[2];
#pragma unroll
    for (int i = 0; i < 2; i++)
    {
        const int r = t.firstRow + (lane >> 2) + 8 * i;
        scale[i] = rowScale != nullptr && r < t.rowEnd ? rowScale[r] : 1.0f;
    }
    const int pairCol = 2 * (lane & 3);
    if (!fused)
    {
#pragma unroll
        for (int chunk = 0; chunk < GW_BN / CHUNK_COLS; chunk++)
        {
            if (t.firstCol + chunk * CHUNK_COLS >= t.outCols)
                break;
            __syncwarp(); // the previous chunk's reads are done
#pragma unroll
            for (int jj = 0; jj < CHUNK_J; jj++)
#pragma unroll
                for (int i = 0; i < 2; i++)
                {
                    const int j = chunk * CHUNK_J + jj;
                    gw_stage_pair<TOut>(buffer, (lane >> 2) + 8 * i, 8 * jj + pairCol, acc[4 * j + 2 * i] * scale[i], acc[4 * j + 2 * i + 1] * scale[i]);
                }
            __syncwarp();
            gw_store_chunk<TOut>(buffer, t, t.firstCol + chunk * CHUNK_COLS, vectors, y, lane);
        }
    }
    else
    {
#pragma unroll
        for (int chunk = 0; chunk < GW_BN / 2 / CHUNK_COLS; chunk++)
        {
            if (t.firstCol + chunk * CHUNK_COLS >= t.outCols)
                break;
            __syncwarp();
#pragma unroll
            for (int jj = 0; jj < CHUNK_J; jj++)
#pragma unroll
                for (int i = 0; i < 2; i++)
                {
                    const int j = chunk * CHUNK_J + jj; // gate column group j, up column group j + 16
                    const float v0 = gw_silu(acc[4 * j + 2 * i]) * acc[4 * (j + 16) + 2 * i] * scale[i];
                    const float v1 = gw_silu(acc[4 * j + 2 * i + 1]) * acc[4 * (j + 16) + 2 * i + 1] * scale[i];
                    gw_stage_pair<TOut>(buffer, (lane >> 2) + 8 * i, 8 * jj + pairCol, v0, v1);
                }
            __syncwarp();
            gw_store_chunk<TOut>(buffer, t, t.firstCol + chunk * CHUNK_COLS, vectors, y, lane);
        }
    }
}

// ---- the kernel ----

// ---- the work order ----

// GW_LATE_ODD_BLOCKS (tests only): the odd blocks start this many ns late, as blocks do whose SMs another kernel holds.
#ifdef GW_LATE_ODD_BLOCKS
#define GW_LATE_START()                                                                                                      \
    if (blockIdx.x % 2 == 1)                                                                                                 \
        for (const moe_u64 start = globaltimer_ns(); globaltimer_ns() - start < (moe_u64)(GW_LATE_ODD_BLOCKS);)
#else
#define GW_LATE_START()
#endif

// Dynamic shared memory of every entry (tiles are placed from its first 1024-byte boundary on).
extern __shared__ __align__(1024) unsigned char gwShared[];

template <typename TIn, typename TOut>
__device__ __forceinline__ void grouped_gemm_wgmma(const TmaDescriptor* mapX, const TmaDescriptor* mapXRows, const TmaDescriptor* mapW,
                                                   const int* __restrict__ expertOffsets,
                                                   const float* __restrict__ rowScale, TOut* __restrict__ y,
                                                   int* __restrict__ tickets, int rows, int n, int k, int experts, int fused GW_TRACE_PARAM)
{
    // The swizzle pattern and the descriptors assume 1024-byte aligned tiles.
    const moe_u32 rawBase = shared_addr(gwShared);
    const moe_u32 tilesBase = (rawBase + 1023u) & ~1023u;
    unsigned char* epilogueBuffers = gwShared + (tilesBase - rawBase) + GW_STAGES * GW_STAGE_BYTES;
    unsigned char* tail = epilogueBuffers + GW_CONSUMER_WARPS * GW_EPI_WARP_BYTES;
    moe_u64* fullBars = reinterpret_cast<moe_u64*>(tail);
    moe_u64* emptyBars = fullBars + GW_STAGES;
    GwTile* stageTiles = reinterpret_cast<GwTile*>(emptyBars + GW_STAGES);
    const moe_u32 fullBase = shared_addr(fullBars), emptyBase = shared_addr(emptyBars);

    if (threadIdx.x == 0)
    {
        for (int s = 0; s < GW_STAGES; s++)
        {
            mbar_init(fullBase + 8 * s, 1);                  // the producer's arrive.expect_tx (+ the TMA bytes)
            mbar_init(emptyBase + 8 * s, GW_CONSUMER_WARPS * (GW_SHARES_W ? GW_CLUSTER : 1)); // one arrive per consumer warp filled
        }
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    gw_cluster_sync();

    const int outCols = fused ? n / 2 : n;
    const int colsPerTile = fused ? GW_BN / 2 : GW_BN;
    const int nTiles = ceil_div(outCols, colsPerTile);
    const int kSteps = ceil_div(k, GW_BK);
    const int warpgroup = threadIdx.x / 128;

    if (warpgroup == 0)
    {
        // ---- producer ----
        gw_setmaxnreg_dec<GW_PRODUCER_REGS>();
        if (threadIdx.x >= 32)
            return;
        const int lane = threadIdx.x;
        if (lane == 0)
        {
            gw_tma_prefetch(mapX);
            gw_tma_prefetch(mapXRows);
            gw_tma_prefetch(mapW);
        }
#if GW_CLUSTER > 1
        tickets = nullptr; // the static order (see "Clusters")
#endif
        const int rank = gw_cluster_rank();
        // Work units: m-tiles, or a pair's two m-tiles (GW_UNIT_ROWS rows of an expert).
        const int mUnitsTotal = total_expert_tiles(expertOffsets, experts, rows, GW_UNIT_ROWS);
        const int work = mUnitsTotal * nTiles;
        const bool bounded = gw_bounds_drift(tickets, expertOffsets, experts, rows, GW_UNIT_ROWS, mUnitsTotal);
        int* claims = bounded ? nullptr : tickets; // the dynamic order's tickets, else null (static, bounded)
        int stage = 0;
        moe_u32 phase = 0;
        int claim = gw_claim(claims, lane);
        int t = claims != nullptr ? __shfl_sync(0xffffffffu, claim, 0) : (int)blockIdx.x / GW_CLUSTER;
        while (t < work)
        {
            // Groups of GW_GROUP_M m-tiles: consecutive work items walk down the m-tiles of one column tile first.
            const int group = t / (GW_GROUP_UNITS * nTiles);
            const int firstM = group * GW_GROUP_UNITS;
            const int groupM = min(mUnitsTotal - firstM, GW_GROUP_UNITS);
            const int local = t - group * GW_GROUP_UNITS * nTiles;
            const int mUnit = firstM + local % groupM;
            const int nTile = local / groupM;
            int expert, unitBegin, unitEnd;
            // The serial walk: this kernel's registers under the one-round-trip find_expert_tile are unchecked (NVRTC
            // 11.8 cannot build sm_90a), and at 64+ rows the walk is a small share of a tile.
            find_expert_tile_serial(expertOffsets, experts, rows, GW_UNIT_ROWS, mUnit, expert, unitBegin, unitEnd);
            if (expert < 0)
                break; // cannot happen with consistent offsets; stop cleanly if it does
            // This block's rows of the unit: all of them, or its rank's 128 (none where the unit has one m-tile).
            const int rowBegin = min(unitBegin + rank * GW_BM, unitEnd);
            const int rowEnd = min(rowBegin + GW_BM, unitEnd);
            if (lane == 0)
            {
                // W rows of the two 128-row boxes: gate and up halves when fused, else two halves of 256 columns.
                const int firstRow = fused ? nTile * (GW_BN / 2) : nTile * GW_BN;
                const int secondRow = fused ? n / 2 + nTile * (GW_BN / 2) : nTile * GW_BN + GW_BN / 2;
                // X boxes of 16 rows for a tile of at most 64 rows, else the one 128-row box; none for a rank without rows.
                const bool smallX = (GW_SMALL_TILES & 1) && rowEnd - rowBegin <= GW_BM / 2;
                const int xBoxes = smallX ? ceil_div(rowEnd - rowBegin, GW_XS_ROWS) : 0;
                const moe_u32 xBytes = smallX ? xBoxes * GW_XS_BYTES : rowEnd > rowBegin ? GW_A_BYTES : 0;
                int expertBegin, expertEnd;
                expert_rows(expertOffsets, rows, expert, expertBegin, expertEnd);
                const int only = rowBegin == expertBegin && rowEnd == expertEnd ? 1 : 0;
                for (int ks = 0; ks < kSteps; ks++)
                {
                    // The next item is claimed at the last K step, as the block is about to be free: claimed at a tile's
                    // start, an item waited a whole tile while the siblings claimed beside it ran (twentieth session:
                    // DeepSeek-V3 T = 8192 gate_up 7.1 ms against 6.0 static). The wait for the stage hides the round trip:
                    // claiming 4 steps earlier, or finding tiles in a table in shared memory instead of walking the offsets,
                    // changed nothing (twenty-first session).
                    if (ks == kSteps - 1)
                        claim = gw_claim(claims, lane);
                    gw_bar_wait(emptyBase + 8 * stage, phase ^ 1);
                    if (ks == 0)
                    {
                        gw_item_starts(tickets, bounded, t);
#ifdef GW_TRACE
                        // Paired, each block stamps its own half of the item: entry t * GW_CLUSTER + rank.
                        const int traced = t * GW_CLUSTER + rank;
                        stageTiles[stage] = GwTile{expert, rowBegin, rowEnd, nTile, only, traced};
                        gwTrace[(long long)traced * GW_TRACE_VALUES] = globaltimer_ns();
                        gwTrace[(long long)traced * GW_TRACE_VALUES + 5] =
                            (moe_u64)expert << 40 | (moe_u64)(rowEnd - rowBegin) << 20 | (moe_u64)nTile;
#else
                        stageTiles[stage] = GwTile{expert, rowBegin, rowEnd, nTile, only};
#endif
                    }
                    const moe_u32 full = fullBase + 8 * stage;
                    mbar_arrive_expect_tx(full, xBytes + GW_B_BYTES);
                    const moe_u32 a = tilesBase + stage * GW_STAGE_BYTES;
                    const moe_u32 b = a + GW_A_BYTES;
                    if (xBytes == GW_A_BYTES)
                        gw_tma_load_2d(a, mapX, full, ks * GW_BK, rowBegin);
                    else
                        for (int box = 0; box < xBoxes; box++)
                            gw_tma_load_2d(a + box * GW_XS_BYTES, mapXRows, full, ks * GW_BK, rowBegin + box * GW_XS_ROWS);
#if GW_SHARES_W
                    // One W box a rank, into both blocks (the other rank's lands here on the same barrier).
                    gw_tma_load_3d_multicast(b + rank * (GW_B_BYTES / 2), mapW, full, ks * GW_BK, rank == 0 ? firstRow : secondRow,
                                             expert, (moe_u16)((1u << GW_CLUSTER) - 1));
#else
                    gw_tma_load_3d(b, mapW, full, ks * GW_BK, firstRow, expert);
                    gw_tma_load_3d(b + GW_B_BYTES / 2, mapW, full, ks * GW_BK, secondRow, expert);
#endif
                    if (++stage == GW_STAGES)
                    {
                        stage = 0;
                        phase ^= 1;
                    }
                }
            }
            __syncwarp();
            t = claims != nullptr ? __shfl_sync(0xffffffffu, claim, 0) : t + (int)gridDim.x / GW_CLUSTER;
        }
        if (tickets != nullptr && lane == 0)
            gw_release_tickets(tickets);
        if (lane == 0)
        {
            // The stop record: a stage with no copies, completed by the plain arrive.
            gw_bar_wait(emptyBase + 8 * stage, phase ^ 1);
            stageTiles[stage] = GwTile{-1};
            mbar_arrive(fullBase + 8 * stage);
#if GW_CLUSTER > 1
            // The tail: the partner's consumers arrive on this block's barriers until they release their last stage;
            // this block stays resident until every stage's last release (the stop stage's was waited for above).
            for (int s = 1; s < GW_STAGES; s++)
            {
                if (++stage == GW_STAGES)
                {
                    stage = 0;
                    phase ^= 1;
                }
                gw_bar_wait(emptyBase + 8 * stage, phase ^ 1);
            }
#endif
        }
        return;
    }

    // ---- consumers ----
    gw_setmaxnreg_inc<GW_CONSUMER_REGS>();
    const int half = warpgroup - 1;             // rows 64 * half .. 64 * half + 63 of the tile
    const int tid = threadIdx.x & 127;
    const int warp = tid >> 5, lane = tid & 31;
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; i++)
        acc[i] = 0.0f;
    int stage = 0;
    moe_u32 phase = 0;
    for (;;)
    {
        gw_bar_wait(fullBase + 8 * stage, phase);
        const GwTile tile = stageTiles[stage];
        if (tile.expert < 0)
            break;
#ifdef GW_TRACE
        // Thread 0 of the first consumer warpgroup: its rows 0-63 always hold rows of the tile.
        const bool stamps = half == 0 && tid == 0;
        unsigned long long* itemTrace = gwTrace + (long long)tile.item * GW_TRACE_VALUES;
        if (stamps)
        {
            moe_u32 smid;
            asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
            itemTrace[1] = globaltimer_ns();
            itemTrace[4] = (moe_u64)smid << 32 | blockIdx.x;
        }
#endif
        // Paired (GW_CLUSTER > 1), a warpgroup with no rows of the tile idles whatever the tile: the pair moves through K
        // together (each stage waits for both blocks' releases), so it cannot run ahead of its siblings.
        const bool noRows = tile.rowEnd - tile.rowBegin <= 64 * half;
        if (GW_CLUSTER > 1 ? noRows : (GW_SMALL_TILES & 2) && half == 1 && tile.only && noRows)
        {
            // An expert of at most 64 rows: none in this warpgroup's 64. Each stage is waited for and released, no wgmma.
            for (int ks = 0; ks < kSteps; ks++)
            {
                if (ks > 0)
                    gw_bar_wait(fullBase + 8 * stage, phase);
                __syncwarp();
                if (lane == 0)
                    gw_release(emptyBase + 8 * stage);
                if (++stage == GW_STAGES)
                {
                    stage = 0;
                    phase ^= 1;
                }
            }
            continue;
        }
        int previous = -1;
        for (int ks = 0; ks < kSteps; ks++)
        {
            if (ks > 0)
                gw_bar_wait(fullBase + 8 * stage, phase);
            const moe_u32 a = tilesBase + stage * GW_STAGE_BYTES + half * (64 * GW_BK * 2);
            const moe_u32 b = tilesBase + stage * GW_STAGE_BYTES + GW_A_BYTES;
            gw_fence_accumulators(acc);
            gw_wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < GW_BK / 16; kk++)
                gw_wgmma_m64n256k16<TIn>(acc, gw_descriptor(a + 32 * kk), gw_descriptor(b + 32 * kk), (ks > 0 || kk > 0) ? 1 : 0);
            gw_wgmma_commit();
            gw_wgmma_wait<1>(); // the previous K step's group is done: its stage can be refilled
            gw_fence_accumulators(acc);
            if (previous >= 0 && lane == 0)
                gw_release(emptyBase + 8 * previous);
            previous = stage;
            if (++stage == GW_STAGES)
            {
                stage = 0;
                phase ^= 1;
            }
        }
        gw_wgmma_wait<0>();
        gw_fence_accumulators(acc);
        if (lane == 0)
            gw_release(emptyBase + 8 * previous);
#ifdef GW_TRACE
        if (stamps)
            itemTrace[2] = globaltimer_ns();
#endif

        // Epilogue: rows of this expert only; columns below N (or I when fused). A warp's 16 rows are its own.
        const GwWarpTile warpTile{tile.rowBegin + half * 64 + warp * 16, tile.rowEnd, tile.nTile * colsPerTile, outCols};
        if (warpTile.firstRow >= warpTile.rowEnd)
            continue;
        if constexpr (GW_EPILOGUE_SMEM)
            gw_epilogue_smem<TOut>(acc, warpTile, rowScale, y, fused, lane, epilogueBuffers + (4 * half + warp) * GW_EPI_WARP_BYTES);
        else
            gw_epilogue_direct<TOut>(acc, warpTile, rowScale, y, fused, lane);
#ifdef GW_TRACE
        if (stamps)
            itemTrace[3] = globaltimer_ns();
#endif
    }
}

#if GW_CLUSTER > 1
#define GW_CLUSTER_DIMS __cluster_dims__(GW_CLUSTER, 1, 1)
#else
#define GW_CLUSTER_DIMS
#endif

#define GW_ENTRY(SUFFIX, TIN, TOUT)                                                                                          \
    extern "C" __global__ void __launch_bounds__(GW_THREADS, 1) GW_CLUSTER_DIMS grouped_gemm_wgmma_##SUFFIX(                 \
        const __grid_constant__ TmaDescriptor mapX, const __grid_constant__ TmaDescriptor mapXRows,                          \
        const __grid_constant__ TmaDescriptor mapW, const int* __restrict__ expertOffsets, const float* __restrict__ rowScale, \
        TOUT* __restrict__ y, int* __restrict__ tickets, int rows, int n, int k, int experts, int fused GW_TRACE_PARAM)       \
    {                                                                                                                        \
        moe_wait_prior_grid();                                                                                               \
        GW_LATE_START();                                                                                                     \
        grouped_gemm_wgmma<TIN, TOUT>(&mapX, &mapXRows, &mapW, expertOffsets, rowScale, y, tickets, rows, n, k, experts,     \
                                      fused GW_TRACE_ARG);                                                                   \
    }

// One dtype pair a build: the host defines GW_ONE_PAIR and GW_PAIR_<in>_<out>, so a first use compiles that pair's entry,
// not all six (4.9-8.0 s by NVRTC 13 on the H200 machine's host). Neither: every entry and the debug entries.
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_bf16_bf16)
GW_ENTRY(bf16_bf16, bf16, bf16)
#endif
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_bf16_f32)
GW_ENTRY(bf16_f32, bf16, float)
#endif
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_f16_f16)
GW_ENTRY(f16_f16, f16, f16)
#endif
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_f16_f32)
GW_ENTRY(f16_f32, f16, float)
#endif
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_bf16_f16)
GW_ENTRY(bf16_f16, bf16, f16)
#endif
#if !defined(GW_ONE_PAIR) || defined(GW_PAIR_f16_bf16)
GW_ENTRY(f16_bf16, f16, bf16)
#endif

// ---- debug entries (tests only): each checks one layer of the kernel on its own; not in a one-pair build ----
#ifndef GW_ONE_PAIR

// One TMA box {64, 128} of `map` at element coordinates (c0, c1), copied raw (swizzled) from shared memory to
// out [128 * 64] u16. The test recomputes the 128-byte swizzle on the host: TMA's placement and zero-fill.
// Launch: grid 1, block 128, dynamic shared GW_A_BYTES + 1024.
extern "C" __global__ void __launch_bounds__(128) grouped_gemm_wgmma_debug_tma(const __grid_constant__ TmaDescriptor map, int c0, int c1,
                                                                              moe_u16* __restrict__ out)
{
    moe_wait_prior_grid();
    __shared__ __align__(8) moe_u64 bar;
    const moe_u32 rawBase = shared_addr(gwShared);
    const moe_u32 base = (rawBase + 1023u) & ~1023u;
    const moe_u16* tile = reinterpret_cast<const moe_u16*>(gwShared + (base - rawBase));
    const moe_u32 barAddr = shared_addr(&bar);
    if (threadIdx.x == 0)
    {
        mbar_init(barAddr, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        mbar_arrive_expect_tx(barAddr, GW_A_BYTES);
        gw_tma_load_2d(base, &map, barAddr, c0, c1);
    }
    gw_bar_wait(barAddr, 0);
    for (int i = threadIdx.x; i < GW_A_BYTES / 2; i += blockDim.x)
        out[i] = tile[i];
}

// One K step without the pipeline: rows row..row+63 of x (first 64 of K) times W[expert] rows wRow..wRow+255, by one
// warpgroup's 4 x m64n256k16 with the kernel's descriptors, into out [64, 256] f32 (row-major) through the documented
// accumulator layout. If this passes and the full kernel fails, look at the pipeline; if it fails, at the descriptors.
// Launch: grid 1, block 128, dynamic shared GW_STAGE_BYTES + 1024.
template <typename TIn>
__device__ __forceinline__ void gw_debug_mma(const TmaDescriptor* mapX, const TmaDescriptor* mapW, int row, int wRow, int expert, float* __restrict__ out)
{
    __shared__ __align__(8) moe_u64 bar;
    const moe_u32 rawBase = shared_addr(gwShared);
    const moe_u32 a = (rawBase + 1023u) & ~1023u;
    const moe_u32 b = a + GW_A_BYTES;
    const moe_u32 barAddr = shared_addr(&bar);
    if (threadIdx.x == 0)
    {
        mbar_init(barAddr, 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
    }
    __syncthreads();
    if (threadIdx.x == 0)
    {
        mbar_arrive_expect_tx(barAddr, GW_STAGE_BYTES);
        gw_tma_load_2d(a, mapX, barAddr, 0, row);
        gw_tma_load_3d(b, mapW, barAddr, 0, wRow, expert);
        gw_tma_load_3d(b + GW_B_BYTES / 2, mapW, barAddr, 0, wRow + GW_BN / 2, expert);
    }
    gw_bar_wait(barAddr, 0);
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; i++)
        acc[i] = 0.0f;
    gw_fence_accumulators(acc);
    gw_wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < GW_BK / 16; kk++)
        gw_wgmma_m64n256k16<TIn>(acc, gw_descriptor(a + 32 * kk), gw_descriptor(b + 32 * kk), kk > 0 ? 1 : 0);
    gw_wgmma_commit();
    gw_wgmma_wait<0>();
    gw_fence_accumulators(acc);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < 32; j++)
#pragma unroll
        for (int i = 0; i < 2; i++)
#pragma unroll
            for (int c = 0; c < 2; c++)
                out[(16 * warp + (lane >> 2) + 8 * i) * GW_BN + 8 * j + 2 * (lane & 3) + c] = acc[4 * j + 2 * i + c];
}

extern "C" __global__ void __launch_bounds__(128) grouped_gemm_wgmma_debug_mma_bf16(const __grid_constant__ TmaDescriptor mapX,
    const __grid_constant__ TmaDescriptor mapW, int row, int wRow, int expert, float* __restrict__ out)
{
    moe_wait_prior_grid();
    gw_debug_mma<bf16>(&mapX, &mapW, row, wRow, expert, out);
}
#endif
