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

// Shared memory of both kinds: 8 KB static and `n` floats dynamic. out[i] = in[n - 1 - i] + static slot i % 2048, one
// block: a launch whose static + dynamic bytes pass 48 KB must opt in to the larger dynamic size first.
extern "C" __global__ void reverse_through_shared_f32(const float* __restrict__ in, float* __restrict__ out, int n)
{
    __shared__ float fixedPart[2048];
    extern __shared__ float dynamicPart[];
    for (int i = threadIdx.x; i < 2048; i += blockDim.x)
        fixedPart[i] = (float)i;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        dynamicPart[i] = in[i];
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        out[i] = dynamicPart[n - 1 - i] + fixedPart[i % 2048];
}
