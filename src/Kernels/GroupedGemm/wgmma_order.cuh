// wgmma_order.cuh: the order in which the wgmma kernel's persistent blocks take their work items (grouped_gemm_wgmma.cu,
// "Work"). Lane 0 of each block's producer asks; only its answers matter. tickets: the call's workspace ints
// (GroupedGemmWorkspace.Tickets, zero between launches), or null: the static order, block b taking items b, b + grid, ...
// With tickets, by build:
//   (default) dynamic: tickets[0] counts the items handed out; a block takes the next one as it is about to be free.
//   GW_ORDER_BOUNDED=D: bounded, the static order, but a block starts its item of round j (item b + j grid) only once
//     (j - D + 1) grid items have started (tickets[0] counts them): no block runs more than D rounds ahead of the last.
//     It needs every block of the grid on an SM at some point while the others wait: where fewer SMs are granted than the
//     device has (an MPS thread limit, a green context), the early blocks would wait for blocks that cannot start until
//     they exit, and the hang trap (GW_HANG_TRAP) fails the launch after 4 s. An A/B order only, for that and for its speed.
//   GW_ORDER_AUTO (with GW_ORDER_BOUNDED=D): bounded where at most 1 in GW_ORDER_AUTO_SHARE of the m-tiles is an expert's
//     only one, else dynamic; every block reads the same offsets, so all choose alike. Why: the static placement runs an
//     expert's m-tiles of one column tile, which share W, on neighbouring SMs at the same time, which the dynamic claims
//     scatter (up to 13% on Mixtral-8x7B T = 1024); but an expert's only tile streams its W alone and costs more than its
//     neighbours, and a bounded block waits for the round's slowest (twenty-second session, docs/PERFORMANCE.md). Auto
//     won isolated calls (Mixtral-8x7B T = 1024 by 3-8%) but not the Mixtral layer, so the host's default is dynamic.
// tickets[1] counts the blocks done asking; the last zeroes both for the next launch (gw_release_tickets).
#pragma once
#include "moe_common.cuh"
#include "expert_tiles.cuh"

#ifndef GW_ORDER_AUTO_SHARE
#define GW_ORDER_AUTO_SHARE 16
#endif

// Whether this launch bounds its blocks' drift (see above); false without tickets. Every lane of the warp gets it.
__device__ __forceinline__ bool gw_bounds_drift(const int* tickets, const int* __restrict__ expertOffsets, int experts, int rows,
                                                int tileRows, int mTilesTotal)
{
#if defined(GW_ORDER_AUTO)
    if (tickets == nullptr)
        return false;
    int onlyTiles = 0; // experts with 1 .. tileRows rows: their one m-tile
    for (int e = threadIdx.x & 31; e < experts; e += 32)
    {
        int begin, end;
        expert_rows(expertOffsets, rows, e, begin, end);
        onlyTiles += end > begin && end - begin <= tileRows ? 1 : 0;
    }
#pragma unroll
    for (int d = 16; d > 0; d >>= 1)
        onlyTiles += __shfl_xor_sync(0xffffffffu, onlyTiles, d);
    return onlyTiles * GW_ORDER_AUTO_SHARE <= mTilesTotal;
#elif defined(GW_ORDER_BOUNDED)
    return tickets != nullptr;
#else
    return false;
#endif
}

// Lane 0 claims the next work item from tickets[0] (the dynamic order; null: no claim, the caller walks its own items);
// the value matters only in lane 0.
__device__ __forceinline__ int gw_claim(int* tickets, int lane)
{
    return tickets != nullptr && lane == 0 ? atomicAdd(tickets, 1) : 0;
}

// Lane 0, before item t's first copy, under the bounded order: wait until the rounds D back have all started, then count
// t in. A spin of 4 s is a bug: trap (GW_HANG_TRAP), as the pipeline's barrier waits do.
__device__ __forceinline__ void gw_item_starts(int* tickets, bool bounded, int t)
{
#ifdef GW_ORDER_BOUNDED
    if (!bounded)
        return;
    const int round = t / (int)gridDim.x;
    if (round >= GW_ORDER_BOUNDED)
    {
        const int needed = (round - GW_ORDER_BOUNDED + 1) * (int)gridDim.x;
        const moe_u64 start = globaltimer_ns();
        unsigned int polls = 0;
        while (*reinterpret_cast<volatile int*>(tickets) < needed)
        {
            __nanosleep(64);
#ifdef GW_HANG_TRAP
            if ((++polls & 1023u) == 0 && globaltimer_ns() - start > 4000000000ull)
                __trap();
#endif
        }
    }
    atomicAdd(tickets, 1);
#endif
}

// Lane 0 of each block's producer, after its last ask (one past the work): the last block to get here zeroes the
// tickets, so the next launch on the workspace starts from item 0. Every block's asks are done by then: each returned
// before its block counted itself out, and no bounded block waits once every block has started its last item.
__device__ __forceinline__ void gw_release_tickets(int* tickets)
{
    __threadfence();
    if (atomicAdd(tickets + 1, 1) == (int)gridDim.x - 1)
    {
        atomicExch(tickets, 0);
        atomicExch(tickets + 1, 0);
    }
}
