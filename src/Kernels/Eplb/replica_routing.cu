// replica_routing.cu: logical expert ids -> physical slot ids, spreading a replicated expert's tokens
// evenly over its replicas.
//   logicalIds [pairs] I32 (the routing op's ids [T, k], flattened row-major), physicalIds [pairs] I32.
//   Replica table: replicaOffsets [E + 1], replicaSlots [P] (expert e's physical slots are
//   replicaSlots[replicaOffsets[e] .. replicaOffsets[e + 1])), replicated [1 + rankedBlocks]:
//   replicated[0] = R, the number of experts with more than one replica, then their ids.
// Rule: the n-th pair (in flattened order) routed to expert e goes to replica n mod count(e). A single
// expert's pairs are thus split over its replicas with counts differing by at most one, for any routing.
// Ids outside [0, E) give -1 (the op cannot read device ids before the launch, so the kernel guards).
// Launch: block ROUTE_THREADS; grid = rankedBlocks + directBlocks with rankedBlocks = P - E (an upper bound
// on R, so the grid, and a CUDA graph holding it, stays valid when the table is rewritten) and directBlocks >= 1.
//   blocks [0, rankedBlocks): block b ranks expert replicated[1 + b] (if b < R) by one ordered pass over all
//     pairs: each thread tests ROUTE_ITEMS consecutive pairs, a block-wide exclusive scan gives ranks;
//   blocks [rankedBlocks, grid): grid-stride map of every pair whose expert has one replica (or a bad id).
// The two roles write disjoint elements. pairs < 2^30.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define ROUTE_THREADS 512
#define ROUTE_ITEMS 8
#define ROUTE_WARPS (ROUTE_THREADS / 32)

extern "C" __global__ void __launch_bounds__(ROUTE_THREADS) replica_route(
    const int* __restrict__ logicalIds, int pairs,
    const int* __restrict__ replicaOffsets, const int* __restrict__ replicaSlots, int experts,
    const int* __restrict__ replicated, int rankedBlocks,
    int* __restrict__ physicalIds)
{
    moe_wait_prior_grid();
    if ((int)blockIdx.x < rankedBlocks)
    {
        // Uniform per block: every thread returns or none does, so the barriers below are safe.
        if ((int)blockIdx.x >= replicated[0])
            return;
        __shared__ int warpOffsets[ROUTE_WARPS];
        __shared__ int chunkTotal;
        const int expert = replicated[1 + blockIdx.x];
        const int first = replicaOffsets[expert];
        const int count = replicaOffsets[expert + 1] - first;
        const int lane = threadIdx.x & 31;
        const int warp = threadIdx.x >> 5;
        int base = 0;  // pairs of this expert in earlier chunks
        for (int chunk = 0; chunk < pairs; chunk += ROUTE_THREADS * ROUTE_ITEMS)
        {
            const int start = chunk + threadIdx.x * ROUTE_ITEMS;
            unsigned mine = 0;  // bit j: pair start + j is routed to this expert
#pragma unroll
            for (int j = 0; j < ROUTE_ITEMS; ++j)
            {
                const int i = start + j;
                if (i < pairs && logicalIds[i] == expert)
                    mine |= 1u << j;
            }
            const int own = __popc(mine);
            const int inclusive = warp_inclusive_sum(own);
            if (lane == 31)
                warpOffsets[warp] = inclusive;
            __syncthreads();
            if (threadIdx.x == 0)
            {
                int running = 0;
                for (int w = 0; w < ROUTE_WARPS; ++w)
                {
                    const int total = warpOffsets[w];
                    warpOffsets[w] = running;
                    running += total;
                }
                chunkTotal = running;
            }
            __syncthreads();
            int rank = base + warpOffsets[warp] + inclusive - own;
#pragma unroll
            for (int j = 0; j < ROUTE_ITEMS; ++j)
            {
                if (mine & (1u << j))
                {
                    physicalIds[start + j] = replicaSlots[first + rank % count];
                    ++rank;
                }
            }
            base += chunkTotal;
            __syncthreads();  // warpOffsets and chunkTotal are rewritten by the next chunk
        }
        return;
    }
    const int directBlocks = gridDim.x - rankedBlocks;
    for (int i = (blockIdx.x - rankedBlocks) * ROUTE_THREADS + threadIdx.x; i < pairs; i += directBlocks * ROUTE_THREADS)
    {
        const int expert = logicalIds[i];
        if ((unsigned)expert >= (unsigned)experts)
        {
            physicalIds[i] = -1;
            continue;
        }
        const int first = replicaOffsets[expert];
        if (replicaOffsets[expert + 1] - first == 1)
            physicalIds[i] = replicaSlots[first];
    }
}
