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

// An L2 policy that marks the lines a load brings in as first to evict (PTX ISA 7.4, sm_80+).
__device__ __forceinline__ unsigned long long l2_evict_first_policy()
{
    unsigned long long policy;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
    return policy;
}

// load_stream with an L2 cache policy (l2_evict_first_policy).
__device__ __forceinline__ uint4 load_stream_hinted(const void* p, unsigned long long policy)
{
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p), "l"(policy));
    return v;
}
