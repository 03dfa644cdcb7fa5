// mma_tiles.cuh: the tensor-core building blocks the mma.sync grouped GEMM kernels share (grouped_gemm.cu,
// grouped_gemm_skinny.cu): 16-byte cp.async with zero fill, ldmatrix, mma.sync m16n8k16 (bf16/f16 in, F32 accumulate),
// the shared-tile swizzle, paired output stores and SiLU. sm_80+.
#pragma once
#include "moe_common.cuh"

__device__ __forceinline__ moe_u32 smem_address(const void* p)
{
    return (moe_u32)__cvta_generic_to_shared(p);
}

// 16-byte async copy global -> shared; src_bytes 0 writes zeros (out-of-range rows and K tail).
// PREFETCH_256: also ask L2 to fetch the surrounding 256-byte segment. A stage reads only BK * 2 bytes of each
// row (rows K * 2 bytes apart), so without the hint every stage opens a new DRAM burst per row; with it the
// next stages of the same rows hit in L2 (a hint only: it never faults and never changes results).
template <bool PREFETCH_256>
__device__ __forceinline__ void cp_async_16(void* sharedDst, const void* globalSrc, bool valid)
{
    int srcBytes = valid ? 16 : 0;
    if (PREFETCH_256)
        asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(smem_address(sharedDst)), "l"(globalSrc), "r"(srcBytes) : "memory");
    else
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(sharedDst)), "l"(globalSrc), "r"(srcBytes) : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldmatrix_x4(moe_u32& r0, moe_u32& r1, moe_u32& r2, moe_u32& r3, const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(smem_address(p))
                 : "memory");
}

template <typename T> struct Mma;
template <> struct Mma<bf16>
{
    static __device__ __forceinline__ void run(float* c, const moe_u32* a, const moe_u32* b)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};
template <> struct Mma<f16>
{
    static __device__ __forceinline__ void run(float* c, const moe_u32* a, const moe_u32* b)
    {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
};

// Element offset of 16-byte chunk `chunk` of tile row `row` in a [rows][BK] shared tile. BK = 32: a row is four
// chunks (64 bytes), chunk c of row r lives at c ^ ((r >> 1) & 3). BK >= 64: a row is BK / 8 chunks (a whole number
// of 128-byte lines), chunk c lives at c ^ (r & 7) (only its low three bits flip, so it stays in its line). Either way
// the 8 consecutive rows one ldmatrix phase reads (same logical chunk) fall in 8 different 16-byte bank groups, so
// ldmatrix is conflict-free.
template <int BK>
__device__ __forceinline__ int swizzled(int row, int chunk)
{
    static_assert(BK == 32 || BK == 64 || BK == 128 || BK == 256, "BK is 32, 64, 128 or 256");
    return BK == 32 ? row * 32 + ((chunk ^ ((row >> 1) & 3)) << 3) : row * BK + ((chunk ^ (row & 7)) << 3);
}

// Stores two adjacent outputs p[0], p[1] as one 4-byte (16-bit types) or 8-byte (f32) store where p is aligned
// for it (n even and a buffer start that is aligned), else as two stores. Halves the store instructions of the epilogue.
template <typename TOut>
__device__ __forceinline__ void store_pair(TOut* p, float v0, float v1)
{
    TOut o0 = from_float<TOut>(v0), o1 = from_float<TOut>(v1);
    if ((reinterpret_cast<unsigned long long>(p) & (2 * sizeof(TOut) - 1)) == 0)
    {
        if constexpr (sizeof(TOut) == 2)
        {
            moe_u32 packed = (moe_u32)(*reinterpret_cast<moe_u16*>(&o0)) | ((moe_u32)(*reinterpret_cast<moe_u16*>(&o1)) << 16);
            *reinterpret_cast<moe_u32*>(p) = packed;
        }
        else
        {
            *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
        }
        return;
    }
    p[0] = o0;
    p[1] = o1;
}

__device__ __forceinline__ float silu(float v) { return v / (1.0f + __expf(-v)); }
