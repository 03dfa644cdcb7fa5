// load_window.cu: one forward's tokens per expert into a sliding window of the last W forwards.
//   counts [E] I32 (the routing op's tokens per expert for this forward),
//   window [W, E] I32 ring buffer (row r = forward number r mod W), sums [E] I64 = sum of the window's rows,
//   state [1] I64 = forwards recorded so far (the row to write is state mod W).
// Per expert: sums[e] += counts[e] - window[row, e]; window[row, e] = counts[e]. Thread 0 advances state after
// a barrier, so every thread reads the same row. The cursor lives on the device, so the launch can sit in a
// CUDA graph that is replayed every forward.
// Launch: exactly one block of WINDOW_THREADS threads (block-stride loop over experts), any E.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define WINDOW_THREADS 256

extern "C" __global__ void __launch_bounds__(WINDOW_THREADS) load_window_push(
    const int* __restrict__ counts, int* __restrict__ window, long long* __restrict__ sums,
    long long* __restrict__ state, int experts, int windowForwards)
{
    moe_wait_prior_grid();
    const long long recorded = state[0];
    const int row = (int)(recorded % windowForwards);
    int* slot = window + (long long)row * experts;
    for (int e = threadIdx.x; e < experts; e += WINDOW_THREADS)
    {
        const int incoming = counts[e];
        sums[e] += (long long)incoming - slot[e];
        slot[e] = incoming;
    }
    __syncthreads();  // every thread has read state[0] before it moves on
    if (threadIdx.x == 0)
        state[0] = recorded + 1;
}
