// moe_common.cuh: device helpers shared by every MoeRuntime kernel.
// Needs no CUDA toolkit header (NVRTC compiles it alone, from NVRTC 11.8 up):
//   bf16 and f16 as 2-byte structs with round-to-nearest-even conversions through PTX cvt (sm_80+),
//   to_float / from_float overloads so one template body serves F32, BF16 and F16 data,
//   warp reductions, the %globaltimer clock and a trace's block stamp.
#pragma once

typedef unsigned short moe_u16;
typedef unsigned int moe_u32;
typedef unsigned long long moe_u64;

// The GPU's nanosecond clock (%globaltimer): traces' stamps and the collectives' timeouts.
__device__ __forceinline__ moe_u64 globaltimer_ns()
{
    moe_u64 t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// A phase trace's stamp: thread 0 of the block writes the clock to trace[block * stamps + slot] (diagnostic builds).
__device__ __forceinline__ void block_stamp(moe_u64* trace, int stamps, int slot)
{
    if (threadIdx.x == 0)
        trace[blockIdx.x * stamps + slot] = globaltimer_ns();
}

struct __align__(2) bf16 { moe_u16 bits; };
struct __align__(2) f16 { moe_u16 bits; };

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(((moe_u32)x.bits) << 16); }
__device__ __forceinline__ float to_float(f16 x)
{
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}

template <typename T> __device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_float<bf16>(float x)
{
    bf16 r;
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}
template <> __device__ __forceinline__ f16 from_float<f16>(float x)
{
    f16 r;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
    return r;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// Sum of v over lanes 0..lane (a full warp's inclusive scan).
__device__ __forceinline__ int warp_inclusive_sum(int v)
{
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int d = 1; d < 32; d <<= 1)
    {
        int up = __shfl_up_sync(0xffffffffu, v, d);
        if (lane >= d)
            v += up;
    }
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

__device__ __forceinline__ int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Programmatic dependent launch (sm_90+). A kernel launched with the attribute (CudaKernel.Launch, for sources marked
// "// dependent-launch") may start while the kernel before it in the stream is still running: its launch, block
// scheduling and prologue hide behind that kernel's tail. Every entry of such a source calls this first, before it
// reads or writes global memory: the wait returns once the previous grid has completed and its writes are visible.
// The one exception is a hint macro named *_BEFORE_WAIT (e.g. GV_PREFETCH_BEFORE_WAIT in grouped_gemm_gemv.cu): it may
// read, past L1, data that was complete before the previous grid began, and ask for prefetches; no result depends on it.
// The trigger then lets the next kernel launch as soon as every block of this one has passed its wait. Launched
// without the attribute (other devices, MOE_PDL=0) both instructions return at once.
// MOE_PDL_EARLY_TRIGGER (MOE_PDL_TRIGGER=early, CudaKernel.TriggerBeforeWait): the trigger comes first, so the next
// kernel may launch while this one still waits for its own predecessor; a chain of short kernels then pays its
// launches in parallel with the work instead of one after another. The wait still orders every memory access.
__device__ __forceinline__ void moe_wait_prior_grid()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#if defined(MOE_PDL_EARLY_TRIGGER)
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    asm volatile("griddepcontrol.wait;" ::: "memory");
#else
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
#endif
}
