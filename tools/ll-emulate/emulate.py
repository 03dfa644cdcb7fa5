#!/usr/bin/env python3
"""CPU emulation of ll_allreduce.cu (f32, 2 ranks or EMU_RANKS): every GPU thread an OS thread, LL lines as relaxed 64-bit atomics,
the kernel's own source otherwise. Checks the kernel's logic (chunks, slots, thread mapping, epochs, reports) without a
GPU, not the hardware's memory model. Usage: emulate.py SOURCE.cu OUT.cpp, then g++ -std=c++20 -O1 -pthread OUT.cpp.
Run: ./emu COUNT GRID[,GRID...] SLOT_UNITS [CALLS [TWO_SHOT [ABSENT_RANK]]]; prints each call's errors, wrong elements, epochs
and rank 0's report words."""
import sys

source = open(sys.argv[1]).read().replace('#include "moe_common.cuh"', '#include "shim.h"')

def replace_function(signature, new):
    global source
    i = source.index(signature)
    j = source.index('\n}\n', i) + 3
    source = source[:i] + new + source[j:]

replace_function('__device__ __forceinline__ moe_u64 ll_timer_ns()', '''inline moe_u64 ll_timer_ns()
{
    std::this_thread::yield();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
''')
replace_function('__device__ __forceinline__ void ll_store(', '''inline void ll_store(moe_u64* line, moe_u64 payload, moe_u32 flag)
{
    __atomic_store_n(line, (payload & 0xffffffffull) | ((moe_u64)flag << 32), __ATOMIC_RELAXED);
    __atomic_store_n(line + 1, (payload >> 32) | ((moe_u64)flag << 32), __ATOMIC_RELAXED);
}
''')
replace_function('__device__ __forceinline__ void ll_load(', '''inline void ll_load(const moe_u64* line, moe_u64& lo, moe_u64& hi)
{
    lo = __atomic_load_n(line, __ATOMIC_RELAXED);
    hi = __atomic_load_n(line + 1, __ATOMIC_RELAXED);
}
''')
assert '__ldcg(control' in source, 'the kernel reads its epoch some other way now: update emulate.py and shim.h'
source = source[:source.index('#define LL_ENTRY')]
source = source.replace('template <typename T>\n__device__ bool', 'template <typename T>\nbool')
source = source.replace('template <typename T>\n__device__ void', 'template <typename T>\nvoid')
source += r'''
#include <cstdio>
#include <array>
#include <cstdlib>
int main(int argc, char** argv)
{
    long long count = atoll(argv[1]);
    // GRID: one grid for every call, or a comma list used call by call in turn (grids that change between calls).
    std::vector<int> grids;
    for (char* g = argv[2]; *g; g += *g == ',')
        grids.push_back((int)strtol(g, &g, 10));
    long long slotUnits = atoll(argv[3]);
    int calls = argc > 4 ? atoi(argv[4]) : 1, twoShot = argc > 5 ? atoi(argv[5]) : 1, absent = argc > 6 ? atoi(argv[6]) : -1;
    const int ranks = getenv("EMU_RANKS") ? atoi(getenv("EMU_RANKS")) : 2, threads = 512;
    std::vector<std::vector<moe_u64>> regions(ranks, std::vector<moe_u64>(2 * ranks * slotUnits * 2, 0));
    LlPeers peers;
    for (int r = 0; r < ranks; r++)
        peers.receive[r] = (moe_u64)regions[r].data();
    std::vector<std::vector<float>> in(ranks, std::vector<float>(count)), out(ranks, std::vector<float>(count, -1));
    for (int r = 0; r < ranks; r++)
        for (long long i = 0; i < count; i++)
            in[r][i] = (float)((i * 131 + r * 7919) % 17 - 8);
    std::vector<std::vector<moe_u32>> control(ranks, std::vector<moe_u32>(LL_CONTROL_WORDS, 0));
    for (auto& c : control)
        c[LL_FAILED_STEP] = 0x7fffffff;
    std::vector<std::array<int, 4>> errs(ranks, std::array<int, 4>{});
    for (int call = 0; call < calls; call++)
    {
        int grid = grids[call % grids.size()];
        std::vector<std::thread> pool;
        std::vector<Block> blocks(ranks * grid);
        std::vector<std::barrier<>*> barriers;
        for (auto& b : blocks)
            barriers.push_back(b.bar = new std::barrier<>(threads));
        for (int r = 0; r < ranks; r++)
            for (int b = 0; b < grid && r != absent; b++)
                for (int t = 0; t < threads; t++)
                    pool.emplace_back([&, r, b, t] {
                        threadIdx = {(unsigned)t}; blockIdx = {(unsigned)b}; gridDim = {(unsigned)grid}; blockDim = {(unsigned)threads};
                        g_block = &blocks[r * grid + b];
                        ll_allreduce<float>(in[r].data(), out[r].data(), count, 8, r, ranks, &peers, slotUnits, control[r].data(), errs[r].data(),
                                            absent >= 0 ? 300000000LL : 5000000000LL, 0, twoShot);
                    });
        for (auto& x : pool)
            x.join();
        for (auto* b : barriers)
            delete b;
        long long wrong = 0;
        for (int r = 0; r < ranks; r++)
            for (long long i = 0; i < count; i++)
            {
                float sum = in[0][i];
                for (int q = 1; q < ranks; q++)
                    sum += in[q][i];
                wrong += out[r][i] != sum;
            }
        // LL_TAIL 2: every per-block word must hold the call's epoch after it, on both ranks (unequal: -1).
        std::vector<long long> blockEpochs(ranks);
        for (int r = 0; r < ranks; r++)
        {
            blockEpochs[r] = control[r][LL_BLOCK_EPOCHS];
            for (int w = 1; w < LL_MAX_BLOCKS; w++)
                if (control[r][LL_BLOCK_EPOCHS + w] != control[r][LL_BLOCK_EPOCHS])
                    blockEpochs[r] = -1;
        }
        printf("call %d: errors", call);
        for (int r = 0; r < ranks; r++)
            printf(" r%d %d step %d%s", r, errs[r][0], errs[r][1], r + 1 < ranks ? "," : ";");
        printf(" wrong %lld; epochs", wrong);
        for (int r = 0; r < ranks; r++)
            printf(" %u", control[r][LL_EPOCH]);
        printf("; block words");
        for (int r = 0; r < ranks; r++)
            printf(" %lld", blockEpochs[r]);
        printf("; rank 0 report");
        for (int w = LL_REPORT; w < LL_REPORT + LL_REPORT_WORDS; w++)
            printf(" %u", control[0][w]);
        printf("\n");
    }
}
'''
open(sys.argv[2], 'w').write(source)
