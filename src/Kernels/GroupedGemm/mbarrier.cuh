// mbarrier.cuh: the shared-memory mbarrier operations of the sm_90 pipelines (grouped_gemm_wgmma.cu's TMA ring,
// grouped_gemm_gemv_bulk.cu's bulk-copy ring). Addresses are shared-window (32-bit) addresses: shared_addr(p).
// arrive.expect_tx is PTX ISA 8.0: a source that NVRTC 11 compiles may include this file but must not call it.
#pragma once
#include "moe_common.cuh"

__device__ __forceinline__ moe_u32 shared_addr(const void* p) { return (moe_u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(moe_u32 bar, moe_u32 count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}

// An arrive that also tells the barrier to expect `bytes` more from asynchronous copies (TMA, bulk copies).
__device__ __forceinline__ void mbar_arrive_expect_tx(moe_u32 bar, moe_u32 bytes)
{
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_arrive(moe_u32 bar)
{
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}

// True once the phase with parity `parity` has completed (a fresh barrier counts its parity-1 phase as complete).
__device__ __forceinline__ bool mbar_try_wait(moe_u32 bar, moe_u32 parity)
{
    moe_u32 done;
    asm volatile("{\n\t.reg .pred p;\n\t"
                 "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                 "selp.u32 %0, 1, 0, p;\n\t}"
                 : "=r"(done)
                 : "r"(bar), "r"(parity)
                 : "memory");
    return done != 0;
}

// Returns once the phase with parity `parity` has completed.
__device__ __forceinline__ void mbar_wait(moe_u32 bar, moe_u32 parity)
{
    while (!mbar_try_wait(bar, parity))
    {
    }
}
