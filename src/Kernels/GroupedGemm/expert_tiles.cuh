// expert_tiles.cuh: the work map every grouped GEMM kernel shares. Rows sorted by expert are cut into m-tiles of
// tileRows rows per expert (expert e owns ceil(count_e / tileRows) of them, the last one partial), numbered
// globally in expert order; a kernel finds its tile's expert and rows on the device, so the host never needs the
// per-expert counts. Offsets are clamped to [0, rows]: bad offsets cannot make a kernel read or write out of bounds.
#pragma once
#include "moe_common.cuh"

// Rows [begin, end) of expert e, clamped.
__device__ __forceinline__ void expert_rows(const int* __restrict__ expertOffsets, int rows, int e, int& begin, int& end)
{
    begin = min(max(expertOffsets[e], 0), rows);
    end = min(max(expertOffsets[e + 1], begin), rows);
}

// One pass over the experts, 32 at a time with a warp-wide scan: visit(e, begin, end, firstTile) runs in lane e % 32 for
// each expert e, with its rows (clamped as expert_rows does) and the m-tiles of the experts before it. Every lane gets
// the total m-tiles. For kernels that map their tiles once per block (the wgmma kernel's table, the bulk GEMV's map).
template <typename Visit>
__device__ __forceinline__ int scan_expert_tiles(const int* __restrict__ expertOffsets, int experts, int rows, int tileRows, Visit visit)
{
    const int lane = threadIdx.x & 31;
    int base = 0;
    for (int chunk = 0; chunk < experts; chunk += 32)
    {
        const int e = chunk + lane;
        int begin = 0, end = 0;
        if (e < experts)
            expert_rows(expertOffsets, rows, e, begin, end);
        const int tiles = ceil_div(end - begin, tileRows);
        const int inclusive = warp_inclusive_sum(tiles);
        if (e < experts)
            visit(e, begin, end, base + inclusive - tiles);
        base += __shfl_sync(0xffffffffu, inclusive, 31);
    }
    return base;
}

// Total m-tiles over all experts; every lane of the calling warp gets it.
__device__ __forceinline__ int total_expert_tiles(const int* __restrict__ expertOffsets, int experts, int rows, int tileRows)
{
    int total = 0;
    for (int e = threadIdx.x & 31; e < experts; e += 32)
    {
        int begin, end;
        expert_rows(expertOffsets, rows, e, begin, end);
        total += ceil_div(end - begin, tileRows);
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1)
        total += __shfl_xor_sync(0xffffffffu, total, d);
    return total;
}

// The walk of find_expert_tile for any E: a warp-wide prefix scan over the experts, 32 at a time, each chunk a
// dependent round trip of loads and a 5-step scan (E = 128: 4 in a row before the first W load).
__device__ __forceinline__ void find_expert_tile_serial(const int* __restrict__ expertOffsets, int experts, int rows, int tileRows, int tile,
                                                 int& expert, int& rowBegin, int& rowEnd)
{
    const int lane = threadIdx.x & 31;
    int base = 0; // tiles of the experts before this chunk of 32
    expert = -1;
    rowBegin = 0;
    rowEnd = 0;
    for (int chunk = 0; chunk < experts; chunk += 32)
    {
        int e = chunk + lane;
        int begin = 0, end = 0;
        if (e < experts)
            expert_rows(expertOffsets, rows, e, begin, end);
        int tiles = ceil_div(end - begin, tileRows);
        int inclusive = warp_inclusive_sum(tiles);
        int exclusive = inclusive - tiles;
        bool mine = tiles > 0 && tile >= base + exclusive && tile < base + inclusive;
        unsigned found = __ballot_sync(0xffffffffu, mine);
        if (found)
        {
            int owner = __ffs(found) - 1;
            int ownerExclusive = __shfl_sync(0xffffffffu, exclusive, owner);
            int ownerBegin = __shfl_sync(0xffffffffu, begin, owner);
            int ownerEnd = __shfl_sync(0xffffffffu, end, owner);
            expert = chunk + owner;
            rowBegin = ownerBegin + (tile - base - ownerExclusive) * tileRows;
            rowEnd = min(rowBegin + tileRows, ownerEnd);
            return;
        }
        base += __shfl_sync(0xffffffffu, inclusive, 31);
    }
}

// Most experts find_expert_tile reads in one round trip: EXPERT_TILES_PER_LANE contiguous experts per lane.
#define EXPERT_TILES_PER_LANE 16

// Expert and row range of global m-tile `tile`. Every lane of the calling warp gets the same answer; expert = -1 when
// `tile` is past the last tile. E <= 512: lane l owns experts [l * per, (l + 1) * per), per = ceil(E / 32), and loads
// their per + 1 offsets at once (one round trip, not one per 32 experts); it sums their tiles, one 5-step warp scan
// gives each lane the tiles before its experts, and the lane holding `tile` finds the expert among its own in
// registers. Same answer as the serial walk (the first expert with tiles whose range holds `tile`).
// Only with -DEXPERT_TILES_PARALLEL_WALK (MOE_EXPERT_TILES_WALK=parallel, for A/B; otherwise, and above 512 experts,
// the serial walk): it lost on the H200 (2026-11-30, eighth session, same run): Qwen3 T=1 down 11.40 -> 12.02 us,
// gate_up 17.84 -> 18.65, DeepSeek-V3 T=1 gate_up 121.0 -> 125.4; the layer at T=1 Qwen3 40.8 -> 44.1, Mixtral 192.0
// -> 204.4, DeepSeek-V3 223.4 -> 230.9 (the GEMV's registers 106 -> 109 at NVRTC 11.8 sm_90; the walk's round trips
// were not what its blocks wait on). Only the GEMV takes it; the other kernels call find_expert_tile_serial.
// Example: E = 128, tileRows 4, offsets 0 at experts 0..99, then experts 100..107 one row each: lane 25 (experts
// 100..103) sums 4 tiles, lane 26 (104..107) 4, the scan gives lane 26 exclusive 4, so tile 5 is expert 105, row 5.
__device__ __forceinline__ void find_expert_tile(const int* __restrict__ expertOffsets, int experts, int rows, int tileRows, int tile,
                                                 int& expert, int& rowBegin, int& rowEnd)
{
#ifdef EXPERT_TILES_PARALLEL_WALK
    if (experts <= 32 * EXPERT_TILES_PER_LANE)
    {
        const int lane = threadIdx.x & 31;
        const int per = ceil_div(experts, 32);
        const int first = lane * per;                    // this lane's first expert
        const int count = max(0, min(per, experts - first)); // its experts (0 past the last)
        // Every load issued before any is used: offsets[first .. first + count].
        int offset[EXPERT_TILES_PER_LANE + 1];
#pragma unroll
        for (int j = 0; j <= EXPERT_TILES_PER_LANE; j++)
            offset[j] = j <= count && count > 0 ? expertOffsets[first + j] : 0;
        int tiles = 0;
#pragma unroll
        for (int j = 0; j < EXPERT_TILES_PER_LANE; j++)
            if (j < count)
            {
                int begin = min(max(offset[j], 0), rows);
                int end = min(max(offset[j + 1], begin), rows);
                tiles += ceil_div(end - begin, tileRows);
            }
        int inclusive = warp_inclusive_sum(tiles);
        const int exclusive = inclusive - tiles;
        const unsigned found = __ballot_sync(0xffffffffu, tiles > 0 && tile >= exclusive && tile < inclusive);
        int mine = -1, myBegin = 0, myEnd = 0;
        if (tiles > 0 && tile >= exclusive && tile < inclusive)
        {
            int before = exclusive; // tiles of the experts before expert first + j
#pragma unroll
            for (int j = 0; j < EXPERT_TILES_PER_LANE; j++)
                if (j < count && mine < 0)
                {
                    int begin = min(max(offset[j], 0), rows);
                    int end = min(max(offset[j + 1], begin), rows);
                    int t = ceil_div(end - begin, tileRows);
                    if (tile < before + t)
                    {
                        mine = first + j;
                        myBegin = begin + (tile - before) * tileRows;
                        myEnd = min(myBegin + tileRows, end);
                    }
                    before += t;
                }
        }
        if (found == 0)
        {
            expert = -1;
            rowBegin = 0;
            rowEnd = 0;
            return;
        }
        const int owner = __ffs(found) - 1;
        expert = __shfl_sync(0xffffffffu, mine, owner);
        rowBegin = __shfl_sync(0xffffffffu, myBegin, owner);
        rowEnd = __shfl_sync(0xffffffffu, myEnd, owner);
        return;
    }
#endif
    find_expert_tile_serial(expertOffsets, experts, rows, tileRows, tile, expert, rowBegin, rowEnd);
}
