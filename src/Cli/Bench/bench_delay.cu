// bench_delay.cu: one thread that spins for a given time, so that a benchmark can enqueue a whole forward while the GPU
// is busy with it: the forward's device events then time the GPU's work, not the host's enqueueing (LayerPhaseBench).
//   ns: how long to spin, in nanoseconds of %globaltimer
#include "moe_common.cuh"

extern "C" __global__ void bench_delay(moe_u64 ns)
{
    const moe_u64 start = globaltimer_ns();
    while (globaltimer_ns() - start < ns)
        __nanosleep(1000);
}
