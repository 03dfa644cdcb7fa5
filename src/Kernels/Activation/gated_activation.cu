// gated_activation.cu: gated MLP activations, act(gate) * up.
//
//   gateUp: [rows, 2 * intermediate] F32, BF16 or F16; columns [0, I) are gate, [I, 2I) are up
//   output: [rows, intermediate] same dtype: output[r, i] = act(gateUp[r, i]) * gateUp[r, I + i], in F32
//   act:    silu(x) = x / (1 + exp(-x));
//           gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))  (the tanh approximation);
//           gelu_erf(x) = 0.5 x (1 + erf(x / sqrt(2)))                      (exact GELU).
//
// Variants: {silu,gelu_tanh,gelu_erf}_mul_{f32,bf16,f16}_{vec,scalar}; vec moves 16 bytes per load
// (intermediate % (16 / sizeof(T)) == 0 and 16-byte aligned bases, checked by GatedActivation.cs).
// Launch: grid = rows, block = ACT_THREADS; threads stride over the packs of the row.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define ACT_THREADS 256
#define ACT_SILU 0
#define ACT_GELU_TANH 1
#define ACT_GELU_ERF 2

template <typename T, int VEC>
struct alignas(sizeof(T) * VEC) ActPack
{
    T v[VEC];
};

template <int KIND>
__device__ __forceinline__ float activate(float x)
{
    if (KIND == ACT_SILU)
        return x / (1.0f + expf(-x));
    if (KIND == ACT_GELU_TANH)
        return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
}

template <typename T, int VEC, int KIND>
__device__ __forceinline__ void gated_activation(const T* __restrict__ gateUp, int intermediate, T* __restrict__ output)
{
    typedef ActPack<T, VEC> Pack;
    const long long row = blockIdx.x;
    const Pack* gate = reinterpret_cast<const Pack*>(gateUp + row * 2 * intermediate);
    const Pack* up = reinterpret_cast<const Pack*>(gateUp + row * 2 * intermediate + intermediate);
    Pack* out = reinterpret_cast<Pack*>(output + row * intermediate);
    const int packs = intermediate / VEC;
    for (int p = threadIdx.x; p < packs; p += blockDim.x)
    {
        Pack g = gate[p], u = up[p], result;
#pragma unroll
        for (int v = 0; v < VEC; v++)
            result.v[v] = from_float<T>(activate<KIND>(to_float(g.v[v])) * to_float(u.v[v]));
        out[p] = result;
    }
}

#define ACT_ENTRY(NAME, T, VEC, KIND)                                                                       \
    extern "C" __global__ void __launch_bounds__(ACT_THREADS) NAME(const T* gateUp, int intermediate, T* output) \
    {                                                                                                       \
        moe_wait_prior_grid();                                                                              \
        gated_activation<T, VEC, KIND>(gateUp, intermediate, output);                                       \
    }

#define ACT_ENTRIES(KINDNAME, KIND)                              \
    ACT_ENTRY(KINDNAME##_mul_f32_vec, float, 4, KIND)            \
    ACT_ENTRY(KINDNAME##_mul_f32_scalar, float, 1, KIND)         \
    ACT_ENTRY(KINDNAME##_mul_bf16_vec, bf16, 8, KIND)            \
    ACT_ENTRY(KINDNAME##_mul_bf16_scalar, bf16, 1, KIND)         \
    ACT_ENTRY(KINDNAME##_mul_f16_vec, f16, 8, KIND)              \
    ACT_ENTRY(KINDNAME##_mul_f16_scalar, f16, 1, KIND)

ACT_ENTRIES(silu, ACT_SILU)
ACT_ENTRIES(gelu_tanh, ACT_GELU_TANH)
ACT_ENTRIES(gelu_erf, ACT_GELU_ERF)
