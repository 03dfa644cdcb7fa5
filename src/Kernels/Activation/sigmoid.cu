// sigmoid.cu: in place, x[i] = 1 / (1 + exp(-x[i])), F32, for i < n.
// Used for qwen2_moe's shared-expert gate ([T] gate logits -> per-token scales). Grid-stride loop.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

extern "C" __global__ void sigmoid_f32(float* __restrict__ x, long long n)
{
    moe_wait_prior_grid();
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        x[i] = 1.0f / (1.0f + expf(-x[i]));
}
