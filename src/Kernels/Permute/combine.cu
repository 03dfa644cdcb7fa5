// combine.cu: un-permute and weighted sum over the k choices, as a gather per token (no atomics:
// the result does not depend on scheduling, run to run).
//
//   expertOutput: [expertRows, hidden] F32, BF16 or F16, rows in expert order (Permute's rows)
//   rowOfSlot:    [tokens, topK] I32 row of each (token, slot); rows < 0 or >= expertRows are skipped
//   weights:      [tokens, topK] F32
//   residual:     [tokens, hidden] same dtype as output, or null
//   output:       [tokens, hidden]: out[t, :] = residual[t, :] + sum_j weights[t, j] * expertOutput[rowOfSlot[t, j], :]
//                 accumulated in F32 in slot order j = 0..topK-1, rounded once to the output dtype.
//
// Variants: combine_{f32,bf16,f16}_{vec,scalar}; vec moves 16 bytes per load (hidden % (16 / sizeof(T)) == 0
// and 16-byte aligned bases, checked by Combine.cs).
// Launch: grid = (tokens, chunks), block = COMBINE_THREADS; the chunks' threads stride together over the packs of a
// row. With few tokens (a decode step: DeepSeek-V3 T = 128 is 128 rows of 28 KB F32 per slot) one block per token
// leaves each thread a long serial walk over its row; chunks > 1 spread a row over several blocks (Combine.cs picks).
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define COMBINE_THREADS 128

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) CombinePack
{
    T v[VEC];
};

template <typename T, int VEC>
__device__ __forceinline__ void combine(const T* __restrict__ expertOutput, long long expertRows,
    const int* __restrict__ rowOfSlot, const float* __restrict__ weights, int topK, int hidden,
    const T* __restrict__ residual, T* __restrict__ output)
{
    typedef CombinePack<T, VEC> Pack;
    const long long token = blockIdx.x;
    const int packs = hidden / VEC;
    const int* rows = rowOfSlot + token * topK;
    const float* tokenWeights = weights + token * topK;
    for (int p = blockIdx.y * blockDim.x + threadIdx.x; p < packs; p += gridDim.y * blockDim.x)
    {
        float acc[VEC];
        if (residual != nullptr)
        {
            Pack r = reinterpret_cast<const Pack*>(residual + token * hidden)[p];
#pragma unroll
            for (int v = 0; v < VEC; v++)
                acc[v] = to_float(r.v[v]);
        }
        else
        {
#pragma unroll
            for (int v = 0; v < VEC; v++)
                acc[v] = 0.0f;
        }
#pragma unroll 4
        for (int j = 0; j < topK; j++)
        {
            const int row = rows[j];
            if (row < 0 || row >= expertRows)
                continue; // dropped slot (expert elsewhere) or no row
            const float w = tokenWeights[j];
            Pack x = reinterpret_cast<const Pack*>(expertOutput + (long long)row * hidden)[p];
#pragma unroll
            for (int v = 0; v < VEC; v++)
                acc[v] += w * to_float(x.v[v]);
        }
        Pack out;
#pragma unroll
        for (int v = 0; v < VEC; v++)
            out.v[v] = from_float<T>(acc[v]);
        reinterpret_cast<Pack*>(output + token * hidden)[p] = out;
    }
}

#define COMBINE_ENTRY(NAME, T, VEC)                                                                          \
    extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) NAME(const T* expertOutput, long long expertRows, \
        const int* rowOfSlot, const float* weights, int topK, int hidden, const T* residual, T* output)      \
    {                                                                                                        \
        moe_wait_prior_grid();                                                                              \
        combine<T, VEC>(expertOutput, expertRows, rowOfSlot, weights, topK, hidden, residual, output);      \
    }

COMBINE_ENTRY(combine_f32_vec, float, 4)
COMBINE_ENTRY(combine_f32_scalar, float, 1)
COMBINE_ENTRY(combine_bf16_vec, bf16, 8)
COMBINE_ENTRY(combine_bf16_scalar, bf16, 1)
COMBINE_ENTRY(combine_f16_vec, f16, 8)
COMBINE_ENTRY(combine_f16_scalar, f16, 1)
