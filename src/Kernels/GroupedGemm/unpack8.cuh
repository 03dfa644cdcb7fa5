// unpack8.cuh: 8 bf16 or f16 elements of a 16-byte chunk to F32 (the GEMV kernels' W and X loads).
#pragma once
#include "moe_common.cuh"

// 8 elements of a 16-byte chunk to F32.
__device__ __forceinline__ void unpack8(const bf16*, uint4 v, float* f)
{
    const moe_u32 words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        f[2 * i] = __uint_as_float(words[i] << 16);
        f[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
    }
}

__device__ __forceinline__ void unpack8(const f16*, uint4 v, float* f)
{
    const moe_u32 words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; i++)
    {
        f16 lo, hi;
        lo.bits = (moe_u16)(words[i] & 0xffffu);
        hi.bits = (moe_u16)(words[i] >> 16);
        f[2 * i] = to_float(lo);
        f[2 * i + 1] = to_float(hi);
    }
}
