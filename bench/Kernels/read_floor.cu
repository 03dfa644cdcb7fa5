// read_floor.cu: the practical floor of reading the active experts' weights once, to set beside the decode grouped GEMM
// rows: the same bytes at the same addresses (experts[a] of w: [E, expertChunks 16-byte chunks]), read with the
// simplest fast pattern: 16-byte loads past L1, READ_FLOOR_UNROLL in flight per thread, grid (blocks per expert,
// active experts) with enough blocks for every SM. The loads fold into an XOR that is written only when `impossible`
// is set (the host passes 0), so nothing is optimised away and nothing is written.
// dependent-launch: the entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define READ_FLOOR_UNROLL 4

extern "C" __global__ void __launch_bounds__(256) read_floor(const uint4* __restrict__ w, const int* __restrict__ experts,
                                                            long long expertChunks, int impossible, unsigned* sink)
{
    moe_wait_prior_grid();
    const uint4* expert = w + (long long)experts[blockIdx.y] * expertChunks;
    const long long stride = (long long)gridDim.x * blockDim.x;
    unsigned acc = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < expertChunks; i += stride * READ_FLOOR_UNROLL)
    {
        uint4 v[READ_FLOOR_UNROLL];
#pragma unroll
        for (int u = 0; u < READ_FLOOR_UNROLL; u++)
        {
            const long long c = i + u * stride;
            if (c < expertChunks)
                asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                             : "=r"(v[u].x), "=r"(v[u].y), "=r"(v[u].z), "=r"(v[u].w)
                             : "l"(expert + c));
            else
                v[u] = make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < READ_FLOOR_UNROLL; u++)
            acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (impossible && acc == 0x9e3779b9u)
        sink[0] = acc;
}
