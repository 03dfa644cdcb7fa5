// gemv_math.cuh: the decode GEMV's W load and SiLU, shared by grouped_gemm_gemv.cu and the fused decode layer
// (moe_decode.cu), which must give the GEMV's bits.
#pragma once
#include "moe_common.cuh"

// W is read once: stream it past L1.
__device__ __forceinline__ uint4 load_stream(const void* p)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

__device__ __forceinline__ float gv_silu(float v) { return v / (1.0f + __expf(-v)); }
