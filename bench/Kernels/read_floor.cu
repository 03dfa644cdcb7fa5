// read_floor.cu: the practical floor of reading the active experts' weights once, to set beside the decode grouped GEMM
// rows: the same bytes at the same addresses (experts[a] of w: [E, expertChunks 16-byte chunks]), read with the
// simplest fast pattern: 16-byte loads past L1, READ_FLOOR_UNROLL in flight per thread, grid (blocks per expert,
// active experts) with enough blocks for every SM. The loads fold into an XOR that is written only when `impossible`
// is set (the host passes 0), so nothing is optimised away and nothing is written.
// READ_FLOOR_TRACE (MOE_SWEEP_READ_FLOOR_TRACE=1, a diagnostic build): a last argument trace: [blocks, 5] u64 (block
// blockIdx.y * gridDim.x + blockIdx.x), where thread 0 writes %globaltimer (ns) at the decode GEMV trace's points: after
// the wait, expert found, first loads arrived, loop end, and after the block's last warp (grouped_gemm_gemv.cu, GV_TRACE).
// dependent-launch: the entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define READ_FLOOR_UNROLL 4

#ifdef READ_FLOOR_TRACE
#define RF_TRACE_PARAM , unsigned long long* __restrict__ trace
#define RF_STAMP(slot)                                                                            \
    if (threadIdx.x == 0)                                                                         \
        trace[(blockIdx.y * gridDim.x + blockIdx.x) * 5 + (slot)] = globaltimer_ns();
#else
#define RF_TRACE_PARAM
#define RF_STAMP(slot)
#endif

extern "C" __global__ void __launch_bounds__(256) read_floor(const uint4* __restrict__ w, const int* __restrict__ experts,
                                                            long long expertChunks, int impossible, unsigned* sink RF_TRACE_PARAM)
{
    moe_wait_prior_grid();
    RF_STAMP(0);
    const uint4* expert = w + (long long)experts[blockIdx.y] * expertChunks;
#ifdef READ_FLOOR_TRACE
    __shared__ volatile unsigned rfSink; // the first loads stored, so the stamp after it waits for them
    bool firstLoads = true;
    if (threadIdx.x == 0)
        rfSink = (unsigned)(expert - w);
    __threadfence_block();
    RF_STAMP(1);
#endif
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
#ifdef READ_FLOOR_TRACE
        if (firstLoads && threadIdx.x == 0)
        {
            rfSink = v[0].x ^ v[READ_FLOOR_UNROLL - 1].w;
            __threadfence_block();
            RF_STAMP(2);
        }
        firstLoads = false;
#endif
#pragma unroll
        for (int u = 0; u < READ_FLOOR_UNROLL; u++)
            acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    RF_STAMP(3);
    if (impossible && acc == 0x9e3779b9u)
        sink[0] = acc;
#ifdef READ_FLOOR_TRACE
    __syncthreads();
    RF_STAMP(4);
#endif
}
