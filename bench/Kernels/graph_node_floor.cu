// graph_node_floor.cu: the least a kernel node of a CUDA graph can cost, to set beside the one-kernel token ops at
// small T (a routing call is one such node): one block that waits for the kernel before it, like every kernel of
// src/Kernels, and reads one word (never equal to the sentinel, so it writes nothing).
// dependent-launch: the entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

extern "C" __global__ void graph_node_floor(int* word)
{
    moe_wait_prior_grid();
    if (threadIdx.x == 0 && word[0] == 0x7fffffff)
        word[0] = 0;
}
