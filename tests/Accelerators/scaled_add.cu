// scaled_add.cu: y[i] = alpha * x[i] + y[i] for i < n, F32.
// A test kernel that exercises the whole path: NVRTC compile (with the shared header), module load,
// launch with pointer, int and float arguments. Grid-stride loop, any grid size.
#include "moe_common.cuh"

extern "C" __global__ void scaled_add_f32(const float* __restrict__ x, float* __restrict__ y, float alpha, long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = alpha * x[i] + y[i];
}

// bf16 round trip through the shared header's conversions: out[i] = bf16(float(in[i]) * 2).
extern "C" __global__ void double_bf16(const bf16* __restrict__ in, bf16* __restrict__ out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = from_float<bf16>(to_float(in[i]) * 2.0f);
}
