// dependent_launch.cu: test kernels for programmatic dependent launch (DependentLaunchTests).
// dependent-launch: marked so CudaKernel launches these with the attribute; copy_without_wait breaks the rule on purpose.
#include "moe_common.cuh"

// Waits for the prior grid, which also lets the next kernel launch; then spins spinNs nanoseconds and fills data.
extern "C" __global__ void slow_fill(int* __restrict__ data, int n, int value, long long spinNs)
{
    moe_wait_prior_grid();
    moe_u64 start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    while ((long long)(now - start) < spinNs);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        data[i] = value;
}

// The rule kept: waits for slow_fill to end before it reads.
extern "C" __global__ void copy_after_wait(const int* __restrict__ src, int* __restrict__ dst, int n)
{
    moe_wait_prior_grid();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        dst[i] = src[i];
}

// The negative control: reads at once, so under a dependent launch it sees what was there before slow_fill wrote.
extern "C" __global__ void copy_without_wait(const int* __restrict__ src, int* __restrict__ dst, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        dst[i] = ((volatile const int*)src)[i];
}
