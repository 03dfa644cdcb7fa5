// wgmma_order.cuh: the order in which the wgmma kernel's persistent blocks take their work items (grouped_gemm_wgmma.cu,
// "Work"). Lane 0 of each block's producer asks; only its answers matter. tickets: the call's workspace ints
// (GroupedGemmWorkspace.Tickets, zero between launches), or null: the static order, block b taking items b, b + grid, ...
// With tickets, by build:
//   (default) dynamic: tickets[0] counts the items handed out; a block takes the next one as it is about to be free.
//   GW_ORDER_GANGS=S, GW_GANG_CHUNK=C: gangs of S consecutive blocks (block b in gang b / S). A gang takes chunks of C
//     consecutive items from tickets[0] as it needs them, and its blocks take the items of the gang's chunk as each is
//     about to be free. So neighbouring items (an expert's m-tiles of one column tile, which share W) run on the gang's
//     blocks, which the block scheduler puts on neighbouring SMs, and no block waits for another's tiles. Gang g's word,
//     the u64 after the first two ints + g, holds (its chunk + 1) << 32 | items of the chunk handed out.
//   GW_ORDER_BOUNDED=D: the static order, but a block starts its item of round j (item b + j grid) only once
//     (j - D + 1) grid items have started (tickets[0] counts them): no block runs more than D rounds ahead of the last.
// tickets[1] counts the blocks done asking; the last zeroes everything for the next launch (gw_release_tickets).
#pragma once
#include "moe_common.cuh"

#if defined(GW_ORDER_GANGS) && !defined(GW_GANG_CHUNK)
#error "GW_ORDER_GANGS needs GW_GANG_CHUNK"
#endif

// A spin of the work order that lasts 4 s is a bug: trap (GW_HANG_TRAP), as the pipeline's barrier waits do.
__device__ __forceinline__ void gw_order_spin(moe_u64 start, unsigned int& polls)
{
    __nanosleep(64);
#ifdef GW_HANG_TRAP
    if ((++polls & 1023u) == 0 && globaltimer_ns() - start > 4000000000ull)
        __trap();
#endif
}

#ifdef GW_ORDER_GANGS
__device__ __forceinline__ unsigned long long* gw_gang_word(int* tickets, int gang)
{
    return reinterpret_cast<unsigned long long*>(tickets) + 1 + gang;
}

// The next item of this block's gang, or `work` when there are none left.
__device__ __forceinline__ int gw_gang_claim(int* tickets, int work)
{
    unsigned long long* word = gw_gang_word(tickets, (int)blockIdx.x / GW_ORDER_GANGS);
    const moe_u64 start = globaltimer_ns();
    unsigned int polls = 0;
    for (;;)
    {
        const unsigned long long held = atomicAdd(word, 1ull);
        const int chunk = (int)(held >> 32) - 1; // -1: the gang has no chunk yet
        const int index = (int)(held & 0xffffffffu);
        if (chunk >= 0 && (long long)chunk * GW_GANG_CHUNK >= work)
            return work;
        const int capacity = chunk < 0 ? 0 : GW_GANG_CHUNK;
        if (index < capacity)
            return min(chunk * GW_GANG_CHUNK + index, work);
        if (index == capacity)
        {
            // This block found the chunk spent first: it takes the gang's next chunk and that chunk's first item.
            const int next = atomicAdd(tickets, 1);
            atomicExch(word, (unsigned long long)(next + 1) << 32 | 1ull);
            return (long long)next * GW_GANG_CHUNK < work ? next * GW_GANG_CHUNK : work;
        }
        // Another block of the gang is taking the next chunk: wait until it is there, then ask again.
        while ((int)(*reinterpret_cast<volatile unsigned long long*>(word) >> 32) - 1 == chunk)
            gw_order_spin(start, polls);
    }
}
#endif

// The block's first item.
__device__ __forceinline__ int gw_first_item(int* tickets, int lane, int work)
{
#if defined(GW_ORDER_GANGS)
    return tickets != nullptr && lane == 0 ? gw_gang_claim(tickets, work) : (int)blockIdx.x;
#elif defined(GW_ORDER_BOUNDED)
    return (int)blockIdx.x;
#else
    return tickets != nullptr && lane == 0 ? atomicAdd(tickets, 1) : (int)blockIdx.x;
#endif
}

// The block's item after t, asked as the block is about to be free (the last K step of item t).
__device__ __forceinline__ int gw_next_item(int* tickets, int lane, int work, int t)
{
#if defined(GW_ORDER_GANGS)
    return tickets != nullptr && lane == 0 ? gw_gang_claim(tickets, work) : t + (int)gridDim.x;
#elif defined(GW_ORDER_BOUNDED)
    return t + (int)gridDim.x;
#else
    return tickets != nullptr && lane == 0 ? atomicAdd(tickets, 1) : t + (int)gridDim.x;
#endif
}

// Lane 0, before item t's first copy. GW_ORDER_BOUNDED: wait until the rounds D back have all started, then count t in.
__device__ __forceinline__ void gw_item_starts(int* tickets, int t)
{
#ifdef GW_ORDER_BOUNDED
    if (tickets == nullptr)
        return;
    const int round = t / (int)gridDim.x;
    if (round >= GW_ORDER_BOUNDED)
    {
        const int needed = (round - GW_ORDER_BOUNDED + 1) * (int)gridDim.x;
        const moe_u64 start = globaltimer_ns();
        unsigned int polls = 0;
        while (*reinterpret_cast<volatile int*>(tickets) < needed)
            gw_order_spin(start, polls);
    }
    atomicAdd(tickets, 1);
#endif
}

// Lane 0 of each block's producer, after its last ask (one past the work): the last block to get here zeroes the
// tickets, so the next launch on the workspace starts from item 0. Every block's asks are done by then: each returned
// before its block counted itself out, and no block waits on another once every block has started its last item.
__device__ __forceinline__ void gw_release_tickets(int* tickets)
{
    __threadfence();
    if (atomicAdd(tickets + 1, 1) == (int)gridDim.x - 1)
    {
        atomicExch(tickets, 0);
        atomicExch(tickets + 1, 0);
#ifdef GW_ORDER_GANGS
        for (int gang = 0; gang * GW_ORDER_GANGS < (int)gridDim.x; gang++)
            atomicExch(gw_gang_word(tickets, gang), 0ull);
#endif
    }
}
