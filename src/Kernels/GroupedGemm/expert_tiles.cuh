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

// Expert and row range of global m-tile `tile` (a warp-wide prefix scan over the experts, 32 at a time). Every
// lane of the calling warp gets the same answer; expert = -1 when `tile` is past the last tile.
__device__ __forceinline__ void find_expert_tile(const int* __restrict__ expertOffsets, int experts, int rows, int tileRows, int tile,
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
        int inclusive = tiles;
#pragma unroll
        for (int d = 1; d < 32; d <<= 1)
        {
            int up = __shfl_up_sync(0xffffffffu, inclusive, d);
            if (lane >= d)
                inclusive += up;
        }
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
