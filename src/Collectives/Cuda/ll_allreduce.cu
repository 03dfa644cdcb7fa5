// ll_allreduce.cu: small-message AllReduce over a low-latency (LL) transport, one-shot or two-shot, one kernel per rank.
//
// Lines: data travels as 8-byte lines {u32 payload, u32 flag}; a thread moves a unit of 8 payload bytes (E = 8 /
// sizeof(T) elements: 2 f32 or 4 bf16/f16) as two lines, stored with one st.volatile.v2.u64 straight into the
// receiving rank's memory (posted NVLink writes). Each u64 element of a vector access is single-copy atomic, so
// a line's payload and flag arrive together: a reader that sees this call's flag sees this call's payload. No
// barrier: the receiver polls its OWN memory (ld.volatile.v2.u64) until both flags equal the epoch.
// The LL_LINE128 build moves 128-byte lines instead (15 payload units and a flag each, eight lanes a line; its section
// below), in a receive region of its own: the host runs it for calls from LowLatencyKernelOptions.Line128MinBytes.
// Two-shot fences (ll_fence_stores; LL_FENCE picks which fence) where a thread turns from storing to polling. Without
// it, on 2 x H200 (2026-11-30) a quarter to over half of the runs of the LL tests timed out: the scan of the receive
// regions after the kernels ended found every step-0 line there, but a fifth to two thirds of the step-1 lines never
// written, on both ranks. The step-0 lines had arrived only after the waits that needed them gave up, as if a thread's
// stores stayed behind its polling loads. With the fence, 12 of 12 runs passed (2026-11-30, third session). One-shot
// stores and then polls the same way and never failed in any run; why it does not need the fence is not understood.
// The fence only keeps the call live (a line's flag, not the fence, says its payload is this call's), and it costs:
// 8.3 us against 5.9 unfenced at 1 KB (2 x H200), presumably a round trip each time (fence.sc.sys waits until the
// thread's stores to the peer are acknowledged, about twice the one-way time the peer's lines need), twice a call. Two
// variants keep a thread from spinning forever on stores held back without paying that on every call: lazy (LL_FENCE
// 4) fences only in a wait that has polled LL_LAZY_CYCLES SM cycles (plus a share per unit of the call) in vain, and
// sleep (5) fences never and backs off __nanosleep between polls so the loads leave room for the stores.
//
// Epoch: the rank's control words (its own memory) hold the last call's epoch; a call uses the next one (0 skipped:
// zeroed lines never look fresh) and stores it back at its end, so CUDA-graph replays work with nothing from the host.
// Where it is kept (LL_TAIL, MOE_LL_TAIL): 0 counter: one word, control[LL_EPOCH]; every block reads it, and the
// block that finishes last (a device-scope fence, then an atomic count of finished blocks) stores the new epoch. 1
// single: the same, but a grid of one block stores it straight away (its thread 0 read the old one itself). 2 blocks
// (default): one word per block of the largest grid, control[LL_BLOCK_EPOCHS + w], all equal between calls; block b
// reads word b only and at its end stores the new epoch to the words w = b (mod grid), which no other block of the call
// reads: each word is read and then written by one block, so no fence and no atomic, and after the call every word
// holds the new epoch (the words mod grid cover all of them). Block 0 also stores it to control[LL_EPOCH] for the
// host's failure report. The epoch read needs the previous kernel on the stream to have ended: every entry calls
// moe_wait_prior_grid() first, which returns only once the prior grid has completed and its writes are visible, so the
// kernel may be a programmatic dependent launch (its blocks are placed while the kernel before it runs, and the
// wait is all that is left on the call's path). Every rank makes the same calls, so epochs agree across ranks. The flag is 32 bits: a
// line could only pass for fresh if its place went unwritten for exactly 2^32 LL calls (hours of back-to-back calls).
//
// Receive region of a rank (registered once, zeroed): [parity 2][sender ranks][slotUnits] units of 2 lines (16 B),
// parity = epoch & 1. Double buffering is what makes the end barrier unnecessary: a rank that finishes call k+1 has
// received data that depends on every rank having started k+1 (one-shot: each peer's lines; two-shot: each owner's
// reduced chunk, which needed every rank's step-0 piece), so every rank has finished call k, its last read of the
// parity that call k+2 writes. So no rank is ever two calls ahead, and a line of parity P read for epoch E holds E
// or an older epoch of that parity (E-2, E-4, ...), never a newer one.
//
// One-shot: every rank writes its whole input to slot [self] of every peer; every rank sums unit u as
//   input@0 + input@1 + ... + input@N-1 (F32, its own input read locally), rounds once to T, stores its output.
// Two-shot (reduce-scatter then all-gather, two steps whatever N): chunk c = elements [start(c), start(c+1)),
//   start(c) = floor(count*c/N / grain) * grain (the schedule path's chunks), so chunk c is units [start/E, ceil(end/E)).
//   Step 0: rank r writes chunk q of its input to rank q at slot [r] units 0..; rank q sums its chunk in rank order,
//   rounds once, stores its output and writes the rounded chunk to every peer at slot [q] units slotUnits/2 + ...
//   Step 1: every rank copies the other chunks from its slots into its output.
// Unit j of a range always belongs to thread j mod (grid * block), on every rank: block b only waits for block b of
// its peers (the same grid on every rank; all blocks resident). Every output unit is read and written by one
// thread and peers never read this rank's input, so in-place calls are safe.
// Timeout: a wait past the %globaltimer deadline (timeoutNs after the kernel started) abandons the call; the block
// writes {1, step, rank, collective} to the mapped error record (the smallest failed step over the rank's blocks).
// The first wait of a rank to time out also leaves what it saw in the control words from LL_REPORT (the unit, its
// sender, the flag expected and the two flags found), which the host adds to the timeout's message.
//
// Variants ll_allreduce_f32 / _bf16 / _f16 (one-shot or two-shot by the twoShot argument), and each with _one or _two
// appended (that path's code only; the argument must agree). Launch: block LL_BLOCK_THREADS, grid <= every block resident.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define LL_MAX_RANKS 8
#define LL_BLOCK_THREADS 512
// Units a thread has in flight in one trip of its loops (LowLatencyKernelOptions.Unroll, MOE_LL_UNROLL: 1, 2 or 4). A
// thread of the default grids has one unit a range up to 512 KB, so more only adds code on the call's path there.
#ifndef LL_UNROLL
#define LL_UNROLL 4
#endif
// LL_NC_PEERS 1 (MOE_LL_NC_PEERS=1): the receive regions' addresses through the read-only cache (ld.global.nc); they are
// registered once and never written while kernels run.
#ifndef LL_NC_PEERS
#define LL_NC_PEERS 0
#endif
// Control words (u32) per rank: the last epoch, the finished-block count, the smallest failed step (INT_MAX: none).
#define LL_EPOCH 0
#define LL_DONE 1
#define LL_FAILED_STEP 2
// A timed-out wait's report: claimed (1), step, block, thread, sender, slot unit, parity, flag expected, flags found.
#define LL_REPORT 4
#define LL_REPORT_WORDS 10
// The per-block epoch words of LL_TAIL 2: one per block of the largest grid (CudaCollectiveBackend.MaxBlocks).
#define LL_BLOCK_EPOCHS 16
#define LL_MAX_BLOCKS 264
// The trace (LL_TRACE builds): LL_TRACE_STAMPS u64 words after the epoch words, written by block 0's thread 0.
#define LL_TRACE_WORD 280
#define LL_TRACE_STAMPS 16
#define LL_CONTROL_WORDS 312

// Every rank's receive region (the same table on every rank).
struct LlPeers
{
    moe_u64 receive[LL_MAX_RANKS];
};

// Two-shot: a fence after a thread's stores to peers and before it polls, so its lines are out before it spins (see
// the header). LL_FENCE (MOE_LL_FENCE, LowLatencyFence on the host) picks it for A/B runs:
//   0 system (default): every thread fence.sc.sys (__threadfence_system; membar.sys is the same instruction).
//   1 acqrel: every thread fence.acq_rel.sys: still orders the thread's stores before its later loads at system scope,
//     without joining fence.sc's single total order (the PTX model's lighter fence; nothing here needs that order).
//   2 warp: the lanes that got here meet at bar.warp.sync (which orders their memory accesses among them), one lane
//     issues fence.sc.sys, and they meet again before polling: one fence per warp instead of one per thread.
//   3 none: no fence, the build that lost lines on 2 x H200 (to reproduce it).
//   4 lazy: no fence here; a two-shot wait that has polled for LL_LAZY_CYCLES SM cycles, plus LL_LAZY_CYCLES_PER_KUNIT
//     per 1024 units of the call (a larger call's lines take longer to come), issues fence.sc.sys, then polls on (and
//     fences again after each further such stretch).
//   5 sleep: no fence; a two-shot wait sleeps LL_SLEEP_NS (__nanosleep) after each poll that found its line stale.
//   6 step0: system's fence after the step-0 stores (where the lost lines were), none after the step-1 pushes; step-1
//     waits are lazy's (a fence only after LL_LAZY_CYCLES of vain polling). Half of system's fences.
// One-shot waits are the same under every LL_FENCE.
#ifndef LL_FENCE
#define LL_FENCE 0
#endif
#ifndef LL_LAZY_CYCLES
#define LL_LAZY_CYCLES 4096
#endif
#ifndef LL_LAZY_CYCLES_PER_KUNIT
#define LL_LAZY_CYCLES_PER_KUNIT 64
#endif
#ifndef LL_SLEEP_NS
#define LL_SLEEP_NS 64
#endif
// LL_TRACE 1 (LowLatencyKernelOptions.Trace; off by default, for the benchmark's trace of where a call's time goes):
// block 0's thread 0 stores %globaltimer stamps of the call's steps to the trace words (LlTraceStamp), and its polls
// per wait; the host reads the last call's (LowLatencyTransport.ReadTrace). Thread 0 takes part in every step of a
// call of at most one unit a thread per chunk (its unit 0 of each range).
#ifndef LL_TRACE
#define LL_TRACE 0
#endif
enum LlTraceStamp
{
    LL_T_ENTRY,          // the kernel's start, before its wait for the prior grid
    LL_T_WAITED,         // past moe_wait_prior_grid
    LL_T_STORED,         // step 0's stores to the peers issued (so the epoch and the first input unit had come)
    LL_T_RECEIVED,       // the first peer's step-0 unit seen (one-shot: its line; two-shot: a piece of this rank's chunk)
    LL_T_PUSHED,         // two-shot: the reduced unit pushed to the peers (one-shot: the output stored)
    LL_T_GATHERED,       // two-shot: the other chunk's unit seen and stored (step 1)
    LL_T_END,            // past the final barriers and the epoch words
    LL_T_PREVIOUS_END,   // the previous call's LL_T_END (copied at LL_T_WAITED): the gap between calls
    LL_T_POLLS0,         // polls of the step-0 wait (0: the line was there at the first look)
    LL_T_POLLS1,         // polls of the step-1 wait
};
#if LL_TRACE
#define LL_STAMP(control, i) do { if (blockIdx.x == 0 && threadIdx.x == 0) ((moe_u64*)((control) + LL_TRACE_WORD))[i] = globaltimer_ns(); } while (0)
#define LL_TRACE_SET(control, i, v) do { if (blockIdx.x == 0 && threadIdx.x == 0) ((moe_u64*)((control) + LL_TRACE_WORD))[i] = (v); } while (0)
// Past the wait: the previous call's end kept, this call's later stamps cleared (a one-shot call leaves no step-1 stamp,
// and a two-shot one's must not show), the wait's end stamped.
#define LL_TRACE_START(control)                                                                                        \
    do                                                                                                                 \
    {                                                                                                                  \
        if (blockIdx.x == 0 && threadIdx.x == 0)                                                                       \
        {                                                                                                              \
            moe_u64* trace = (moe_u64*)((control) + LL_TRACE_WORD);                                                    \
            trace[LL_T_PREVIOUS_END] = trace[LL_T_END];                                                                \
            for (int i = LL_T_STORED; i < LL_TRACE_STAMPS; i++)                                                        \
                if (i != LL_T_PREVIOUS_END)                                                                            \
                    trace[i] = 0;                                                                                      \
            trace[LL_T_WAITED] = globaltimer_ns();                                                                        \
        }                                                                                                              \
    } while (0)
// The entry's stamp, before the wait (a *_BEFORE_WAIT hint: it stores only to this call's trace word, which no kernel before reads).
#define LL_TRACE_BEFORE_WAIT(control) LL_STAMP((moe_u32*)(control), LL_T_ENTRY);
#else
#define LL_TRACE_BEFORE_WAIT(control)
#define LL_TRACE_START(control) do { } while (0)
#define LL_STAMP(control, i) do { } while (0)
#define LL_TRACE_SET(control, i, v) do { } while (0)
#endif

// Where the epoch is kept and how the call's end publishes it: 0 counter, 1 single, 2 blocks (the header).
#ifndef LL_TAIL
#define LL_TAIL 2
#endif
// push: the fence after the step-1 pushes (step0 skips it; the others fence the same at both turns).
__device__ __forceinline__ void ll_fence_stores(bool push = false)
{
#if LL_FENCE == 6
    if (!push)
        __threadfence_system();
#elif LL_FENCE == 0
    __threadfence_system();
#elif LL_FENCE == 1
    asm volatile("fence.acq_rel.sys;" ::: "memory");
#elif LL_FENCE == 2
    // The lanes active here (a loop's last trip may hold fewer than 32); the lowest of them fences for the group.
    unsigned lanes = __activemask();
    __syncwarp(lanes);
    if ((int)(threadIdx.x & 31) == __ffs(lanes) - 1)
        __threadfence_system();
    __syncwarp(lanes);
#endif
}

__device__ __forceinline__ void ll_store(moe_u64* line, moe_u64 payload, moe_u32 flag)
{
    moe_u64 lo = (payload & 0xffffffffull) | ((moe_u64)flag << 32);
    moe_u64 hi = (payload >> 32) | ((moe_u64)flag << 32);
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" :: "l"(line), "l"(lo), "l"(hi) : "memory");
}

__device__ __forceinline__ void ll_load(const moe_u64* line, moe_u64& lo, moe_u64& hi)
{
    asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(lo), "=l"(hi) : "l"(line) : "memory");
}

__device__ __forceinline__ bool ll_fresh(moe_u64 lo, moe_u64 hi, moe_u32 flag)
{
    return (moe_u32)(lo >> 32) == flag && (moe_u32)(hi >> 32) == flag;
}

__device__ __forceinline__ moe_u64 ll_payload(moe_u64 lo, moe_u64 hi) { return (lo & 0xffffffffull) | (hi << 32); }

// Polls a unit until it carries flag; false when the deadline passes first (lo and hi: the lines last seen).
// lazyCycles: a two-shot wait's polling before its lazy fence (LL_FENCE 4 and 6); -1 for one-shot (no fence, no sleep).
__device__ __forceinline__ bool ll_wait(const moe_u64* line, moe_u32 flag, moe_u64 deadline, long long lazyCycles, moe_u64& lo, moe_u64& hi,
                                        long long& polls)
{
#if LL_FENCE == 4 || LL_FENCE == 6
    long long started = clock64();
    const bool oneShot = lazyCycles < 0;   // never fences
#endif
    for (;;)
    {
        ll_load(line, lo, hi);
        polls++;
        if (ll_fresh(lo, hi, flag))
            return true;
        if (globaltimer_ns() > deadline)
            return false;
#if LL_FENCE == 4 || LL_FENCE == 6
        if (!oneShot && clock64() - started > lazyCycles)
        {
            // Out with this thread's stores; again after as long if the line still has not come.
            __threadfence_system();
            started = clock64();
        }
#elif LL_FENCE == 5
        if (lazyCycles >= 0)
            __nanosleep(LL_SLEEP_NS);
#endif
    }
}

__device__ __forceinline__ moe_u32 elem_bits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ moe_u32 elem_bits(bf16 x) { return x.bits; }
__device__ __forceinline__ moe_u32 elem_bits(f16 x) { return x.bits; }
template <typename T> __device__ __forceinline__ T bits_elem(moe_u32 b);
template <> __device__ __forceinline__ float bits_elem<float>(moe_u32 b) { return __uint_as_float(b); }
template <> __device__ __forceinline__ bf16 bits_elem<bf16>(moe_u32 b) { bf16 x; x.bits = (moe_u16)b; return x; }
template <> __device__ __forceinline__ f16 bits_elem<f16>(moe_u32 b) { f16 x; x.bits = (moe_u16)b; return x; }

// Unit u of a tensor of count elements as 8 payload bytes (element k in bits [k * 8 * sizeof(T), ...), zero past
// the end): one 8-byte load when the unit is whole and aligned, element by element otherwise (misaligned, tail).
template <typename T>
__device__ __forceinline__ moe_u64 load_unit(const T* base, long long count, long long u)
{
    const int E = 8 / (int)sizeof(T);
    long long i0 = u * E;
    const T* p = base + i0;
    if (i0 + E <= count && ((moe_u64)p & 7) == 0)
        return *(const moe_u64*)p;
    moe_u64 w = 0;
    for (int k = 0; k < E; k++)
        if (i0 + k < count)
            w |= (moe_u64)elem_bits(p[k]) << (k * 8 * (int)sizeof(T));
    return w;
}

template <typename T>
__device__ __forceinline__ void store_unit(T* base, long long count, long long u, moe_u64 w)
{
    const int E = 8 / (int)sizeof(T);
    long long i0 = u * E;
    T* p = base + i0;
    if (i0 + E <= count && ((moe_u64)p & 7) == 0)
    {
        *(moe_u64*)p = w;
        return;
    }
    const moe_u64 mask = sizeof(T) == 4 ? 0xffffffffull : 0xffffull;
    for (int k = 0; k < E; k++)
        if (i0 + k < count)
            p[k] = bits_elem<T>((moe_u32)((w >> (k * 8 * (int)sizeof(T))) & mask));
}

// Adds a unit's E elements (as F32) into sum; the first rank's unit starts it (0 + x would turn -0 into +0).
template <typename T>
__device__ __forceinline__ void add_unit(moe_u64 w, float* sum, bool first)
{
    const int E = 8 / (int)sizeof(T);
    const moe_u64 mask = sizeof(T) == 4 ? 0xffffffffull : 0xffffull;
#pragma unroll
    for (int k = 0; k < E; k++)
    {
        float x = to_float(bits_elem<T>((moe_u32)((w >> (k * 8 * (int)sizeof(T))) & mask)));
        sum[k] = first ? x : sum[k] + x;
    }
}

// The sum rounded once to T, as a unit.
template <typename T>
__device__ __forceinline__ moe_u64 pack_unit(const float* sum)
{
    const int E = 8 / (int)sizeof(T);
    moe_u64 w = 0;
#pragma unroll
    for (int k = 0; k < E; k++)
        w |= (moe_u64)elem_bits(from_float<T>(sum[k])) << (k * 8 * (int)sizeof(T));
    return w;
}

// x / d for a non-negative x: by a constant divisor (a multiply and a shift) for the rank counts and the grain the
// kernel sees (1..8), a 64-bit division (a subroutine of dozens of instructions) otherwise. A thread's first step-0
// store waits for its chunk's bounds.
__device__ __forceinline__ unsigned long long div_small(unsigned long long x, int d)
{
    switch (d)
    {
    case 1: return x;
    case 2: return x / 2;
    case 3: return x / 3;
    case 4: return x / 4;
    case 5: return x / 5;
    case 6: return x / 6;
    case 7: return x / 7;
    case 8: return x / 8;
    default: return x / (unsigned long long)d;
    }
}

// Elements [start(c), end(c)) of chunk c, as units (start(c) = floor(count * c / ranks / grain) * grain).
__device__ __forceinline__ void chunk_units(long long count, int grain, int ranks, int c, int E, long long& first, long long& end)
{
    unsigned long long n = (unsigned long long)count;
    long long start = (long long)(div_small(div_small(n * c, ranks), grain) * grain);
    long long stop = c + 1 >= ranks ? count : (long long)(div_small(div_small(n * (c + 1), ranks), grain) * grain);
    first = start / E;
    end = (stop + E - 1) / E;
}

struct LlCall
{
    const LlPeers* peers;
    moe_u32* control;
    long long slotUnits;
    moe_u32 flag;
    int parity, rank, ranks;
    moe_u64 deadline;
    long long lazyCycles;   // ll_wait's: two-shot's polling before a lazy fence (and its switch for sleep); -1: one-shot
};

__device__ __forceinline__ LlCall ll_call(const LlPeers* peers, moe_u32* control, long long slotUnits, moe_u32 epoch, int rank, int ranks,
                                         long long timeoutNs, long long lazyCycles)
{
    LlCall c;
    c.peers = peers;
    c.control = control;
    c.slotUnits = slotUnits;
    c.flag = epoch;
    c.parity = (int)(epoch & 1);
    c.rank = rank;
    c.ranks = ranks;
    c.deadline = globaltimer_ns() + (moe_u64)timeoutNs;
    c.lazyCycles = lazyCycles;
    return c;
}

// Unit `unit` of rank `receiver`'s slot [sender] of this call's parity (16 bytes: two lines).
__device__ __forceinline__ moe_u64* slot_unit(const LlCall& c, int receiver, int sender, long long unit)
{
#if LL_NC_PEERS
    moe_u64* region = (moe_u64*)__ldg(&c.peers->receive[receiver]);
#else
    moe_u64* region = (moe_u64*)c.peers->receive[receiver];
#endif
    return region + 2 * (((long long)c.parity * c.ranks + sender) * c.slotUnits + unit);
}

// The first timed-out wait of this rank records what it waited for and what it found (the host reads it back).
__device__ void ll_report(const LlCall& c, int step, int sender, long long unit, moe_u64 lo, moe_u64 hi)
{
    if (atomicCAS(c.control + LL_REPORT, 0u, 1u) != 0u)
        return;
    moe_u32* r = c.control + LL_REPORT;
    r[1] = (moe_u32)step;
    r[2] = blockIdx.x;
    r[3] = threadIdx.x;
    r[4] = (moe_u32)sender;
    r[5] = (moe_u32)unit;
    r[6] = (moe_u32)c.parity;
    r[7] = c.flag;
    r[8] = (moe_u32)(lo >> 32);
    r[9] = (moe_u32)(hi >> 32);
}

// Waits for unit `unit` of slot [sender] of this rank; on a timeout reports it and returns false.
__device__ __forceinline__ bool ll_receive(const LlCall& c, int step, int sender, long long unit, moe_u64& payload)
{
    moe_u64 lo, hi;
    long long polls = 0;
    bool ok = ll_wait(slot_unit(c, c.rank, sender, unit), c.flag, c.deadline, c.lazyCycles, lo, hi, polls);
    LL_TRACE_SET(c.control, step == 0 ? LL_T_POLLS0 : LL_T_POLLS1, polls);
    if (!ok)
    {
        ll_report(c, step, sender, unit, lo, hi);
        return false;
    }
    payload = ll_payload(lo, hi);
    return true;
}

// Units [begin, end) of this thread (first, first + stride, ...), LL_UNROLL at a time: the sum in rank order of
// every rank's unit (this rank's from its input, each peer's from slot [peer] at unit - begin of this rank's
// region), rounded once; stored to the output and, when push, to every peer's slot [self] at pushAt + unit - begin.
// This rank's units are loaded before any wait (a rank past 0 would otherwise load them only after the peers' lines
// came, one more global load on its critical path), and fenceFirst puts the two-shot fence after those loads are
// issued (and once, after the loop, for a thread with no units here). False when a wait timed out.
template <typename T>
__device__ bool sum_units(const LlCall& c, const T* input, T* output, long long count, long long begin, long long end,
                          long long first, long long stride, bool push, long long pushAt, bool fenceFirst)
{
    const int E = 8 / (int)sizeof(T);
    bool fenced = !fenceFirst;
    for (long long u0 = begin + first; u0 < end; u0 += stride * LL_UNROLL)
    {
        float sum[LL_UNROLL][E];
        moe_u64 own[LL_UNROLL];
#pragma unroll
        for (int k = 0; k < LL_UNROLL; k++)
            own[k] = u0 + k * stride < end ? load_unit(input, count, u0 + k * stride) : 0;
        if (!fenced)
        {
            ll_fence_stores();
            fenced = true;
        }
        for (int p = 0; p < c.ranks; p++)
        {
            moe_u64 w[LL_UNROLL];
            if (p == c.rank)
            {
#pragma unroll
                for (int k = 0; k < LL_UNROLL; k++)
                    w[k] = own[k];
            }
            else
            {
                // Every unit's loads in flight before the first check.
                moe_u64 lo[LL_UNROLL], hi[LL_UNROLL];
#pragma unroll
                for (int k = 0; k < LL_UNROLL; k++)
                    if (u0 + k * stride < end)
                        ll_load(slot_unit(c, c.rank, p, u0 + k * stride - begin), lo[k], hi[k]);
#pragma unroll
                for (int k = 0; k < LL_UNROLL; k++)
                {
                    w[k] = 0;
                    if (u0 + k * stride >= end)
                        continue;
                    if (ll_fresh(lo[k], hi[k], c.flag))
                        w[k] = ll_payload(lo[k], hi[k]);
                    else if (!ll_receive(c, 0, p, u0 + k * stride - begin, w[k]))
                        return false;
                }
                LL_STAMP(c.control, LL_T_RECEIVED);
            }
#pragma unroll
            for (int k = 0; k < LL_UNROLL; k++)
                add_unit<T>(w[k], sum[k], p == 0);
        }
#pragma unroll
        for (int k = 0; k < LL_UNROLL; k++)
        {
            long long u = u0 + k * stride;
            if (u >= end)
                continue;
            moe_u64 rounded = pack_unit<T>(sum[k]);
            store_unit(output, count, u, rounded);
            if (push)
                for (int q = 0; q < c.ranks; q++)
                    if (q != c.rank)
                        ll_store(slot_unit(c, q, c.rank, pushAt + u - begin), rounded, c.flag);
        }
        LL_STAMP(c.control, LL_T_PUSHED);
        if (push)
            ll_fence_stores(true);
    }
    if (!fenced)
        ll_fence_stores();
    return true;
}

// Units [begin, end) of this thread copied from this rank's slot [sender] at from + unit - begin into its output.
template <typename T>
__device__ bool copy_units(const LlCall& c, T* output, long long count, int sender, long long begin, long long end, long long from,
                           long long first, long long stride)
{
    for (long long u0 = begin + first; u0 < end; u0 += stride * LL_UNROLL)
    {
        moe_u64 lo[LL_UNROLL], hi[LL_UNROLL];
#pragma unroll
        for (int k = 0; k < LL_UNROLL; k++)
            if (u0 + k * stride < end)
                ll_load(slot_unit(c, c.rank, sender, from + u0 + k * stride - begin), lo[k], hi[k]);
#pragma unroll
        for (int k = 0; k < LL_UNROLL; k++)
        {
            long long u = u0 + k * stride;
            if (u >= end)
                continue;
            moe_u64 w;
            if (ll_fresh(lo[k], hi[k], c.flag))
                w = ll_payload(lo[k], hi[k]);
            else if (!ll_receive(c, 1, sender, from + u - begin, w))
                return false;
            store_unit(output, count, u, w);
        }
        LL_STAMP(c.control, LL_T_GATHERED);
    }
    return true;
}

#ifndef LL_LINE128
#define LL_LINE128 0
#endif
#if LL_LINE128
// ---- 128-byte lines (LL_LINE128 1: LowLatencyKernelOptions.Line128MinBytes, MOE_LL128_MIN_BYTES) ----
// A line is 128 bytes, 16 u64: 15 payload units and the flag (the epoch) last. Eight lanes of a warp move a line, lane j
// its bytes [16 j, 16 j + 16) in one st.volatile.v2.u64 (lanes 0-6: units 2j and 2j + 1; lane 7: unit 14 and the flag), all
// eight in one warp instruction; the reader's eight lanes load it the same way and take the line when lane 7 sees the
// flag. Unlike the 8-byte lines above, nothing in the PTX memory model makes those 128 bytes arrive together: this relies,
// as NCCL's LL128 protocol does over NVLink, on a warp's aligned 128-byte store reaching the peer's memory as one write
// and a warp's aligned 128-byte load reading one. What it buys is the link's bytes: 120 payload bytes in 128 against 8 in
// 16. It runs in its own receive region (the host's second one), so no 8-byte-line call reads payload bytes as flags.
// Waits are lazy-fenced whatever LL_FENCE (a fence after LL_LAZY_CYCLES of vain polling, two-shot only).
#define LL128_UNITS 15

// Line `line` of rank `receiver`'s slot [sender] of this call's parity (c.slotUnits holds lines a slot here).
__device__ __forceinline__ moe_u64* slot_line(const LlCall& c, int receiver, int sender, long long line)
{
    moe_u64* region = (moe_u64*)c.peers->receive[receiver];
    return region + 16 * (((long long)c.parity * c.ranks + sender) * c.slotUnits + line);
}

// Stores this lane's 16 bytes of a line: units a and b, or a and the flag for lane 7 (every lane of the warp converged
// first, so a line's eight stores are one instruction).
__device__ __forceinline__ void ll128_store(moe_u64* line, moe_u64 a, moe_u64 b, moe_u32 flag)
{
    const int piece = threadIdx.x & 7;
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" ::"l"(line + 2 * piece), "l"(a), "l"(piece == 7 ? (moe_u64)flag : b)
                 : "memory");
}

// Waits, with every lane of the warp, for line `line` of this rank's slot [sender] (active: this lane's group has a line
// there; the others count as arrived) and leaves this lane's 16 bytes in a, b. False, for the whole warp, when the
// deadline passed first (the first lane of a missing line reports it).
__device__ __forceinline__ bool ll128_wait(const LlCall& c, int step, int sender, long long line, bool active, moe_u64& a, moe_u64& b)
{
    const int lane = threadIdx.x & 31;
    const moe_u64* at = active ? slot_line(c, c.rank, sender, line) + 2 * (lane & 7) : nullptr;
    bool arrived = !active;
    long long started = clock64();
    long long polls = 0;
    a = b = 0;
    for (;;)
    {
        __syncwarp();
        if (!arrived)
            ll_load(at, a, b);
        polls++;
        bool lineFresh = __shfl_sync(0xffffffffu, (lane & 7) != 7 || b == (moe_u64)c.flag, lane | 7);
        arrived = arrived || lineFresh;
        if (__all_sync(0xffffffffu, arrived))
        {
            LL_TRACE_SET(c.control, step == 0 ? LL_T_POLLS0 : LL_T_POLLS1, polls);
            return true;
        }
        if (__any_sync(0xffffffffu, globaltimer_ns() > c.deadline))
        {
            if (!arrived && (lane & 7) == 7)
                ll_report(c, step, sender, line, b << 32, b << 32);
            return false;
        }
        if (c.lazyCycles >= 0 && clock64() - started > c.lazyCycles)
        {
            __threadfence_system();   // out with this thread's stores (the header's lost lines); again after as long
            started = clock64();
        }
    }
}

// This lane's place in lines of a range of units [begin, end): the warp's trips cover lines (warp + t * warps) * 4 +
// group, a group of eight lanes a line, lane j of it units 2j and 2j + 1 of the line (lane 7: unit 14).
struct Ll128Lane
{
    long long warp, warps;
    int group, piece;
};

__device__ __forceinline__ Ll128Lane ll128_lane()
{
    Ll128Lane l;
    l.warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    l.warps = ((long long)gridDim.x * blockDim.x) >> 5;
    l.group = (threadIdx.x & 31) >> 3;
    l.piece = threadIdx.x & 7;
    return l;
}

// Units [begin, end) of the input stored as lines to every peer's slot [self] at line `at` on (one-shot: the tensor;
// two-shot: one peer's chunk, to that peer only when only >= 0).
template <typename T>
__device__ void ll128_send(const LlCall& c, const T* input, long long count, long long begin, long long end, int only)
{
    const Ll128Lane l = ll128_lane();
    long long lines = (end - begin + LL128_UNITS - 1) / LL128_UNITS;
    for (long long base = l.warp * 4; base < lines; base += l.warps * 4)
    {
        long long line = base + l.group;
        long long u = begin + line * LL128_UNITS + 2 * l.piece;
        bool active = line < lines;
        moe_u64 a = active && u < end ? load_unit(input, count, u) : 0;
        moe_u64 b = active && l.piece < 7 && u + 1 < end ? load_unit(input, count, u + 1) : 0;
        __syncwarp();
        if (active)
            for (int q = 0; q < c.ranks; q++)
                if (q != c.rank && (only < 0 || q == only))
                    ll128_store(slot_line(c, q, c.rank, line), a, b, c.flag);
    }
}

// Units [begin, end): the sum in rank order of every rank's unit (this rank's from its input, each peer's from its
// lines in slot [peer]), rounded once, stored to the output and, when push, as lines to every peer's slot [self] from
// line pushAt. False when a wait timed out.
template <typename T>
__device__ bool ll128_sum(const LlCall& c, const T* input, T* output, long long count, long long begin, long long end, bool push,
                          long long pushAt)
{
    const int E = 8 / (int)sizeof(T);
    const Ll128Lane l = ll128_lane();
    long long lines = (end - begin + LL128_UNITS - 1) / LL128_UNITS;
    for (long long base = l.warp * 4; base < lines; base += l.warps * 4)
    {
        long long line = base + l.group;
        long long u = begin + line * LL128_UNITS + 2 * l.piece;
        bool active = line < lines, hasA = active && u < end, hasB = active && l.piece < 7 && u + 1 < end;
        moe_u64 ownA = hasA ? load_unit(input, count, u) : 0, ownB = hasB ? load_unit(input, count, u + 1) : 0;
        float sumA[E], sumB[E];
        for (int p = 0; p < c.ranks; p++)
        {
            moe_u64 a = ownA, b = ownB;
            if (p != c.rank && !ll128_wait(c, 0, p, line, active, a, b))
                return false;
            add_unit<T>(a, sumA, p == 0);
            add_unit<T>(hasB ? b : 0, sumB, p == 0);
        }
        LL_STAMP(c.control, LL_T_RECEIVED);
        moe_u64 a = pack_unit<T>(sumA), b = pack_unit<T>(sumB);
        if (hasA)
            store_unit(output, count, u, a);
        if (hasB)
            store_unit(output, count, u + 1, b);
        if (push)
        {
            __syncwarp();
            if (active)
                for (int q = 0; q < c.ranks; q++)
                    if (q != c.rank)
                        ll128_store(slot_line(c, q, c.rank, pushAt + line), a, b, c.flag);
        }
        LL_STAMP(c.control, LL_T_PUSHED);
    }
    return true;
}

// Units [begin, end) copied from this rank's slot [sender] lines from `from` into its output.
template <typename T>
__device__ bool ll128_copy(const LlCall& c, T* output, long long count, int sender, long long begin, long long end, long long from)
{
    const Ll128Lane l = ll128_lane();
    long long lines = (end - begin + LL128_UNITS - 1) / LL128_UNITS;
    for (long long base = l.warp * 4; base < lines; base += l.warps * 4)
    {
        long long line = base + l.group;
        long long u = begin + line * LL128_UNITS + 2 * l.piece;
        bool active = line < lines;
        moe_u64 a, b;
        if (!ll128_wait(c, 1, sender, from + line, active, a, b))
            return false;
        if (active && u < end)
            store_unit(output, count, u, a);
        if (active && l.piece < 7 && u + 1 < end)
            store_unit(output, count, u + 1, b);
        LL_STAMP(c.control, LL_T_GATHERED);
    }
    return true;
}
#endif

// MODE: -1 one-shot or two-shot by the twoShot argument (one kernel holds both paths); 0 one-shot, 1 two-shot only (the
// _one and _two entries: only one path's code, LowLatencyKernelOptions.SplitEntries).
template <typename T, int MODE>
__device__ void ll_allreduce(const T* input, T* output, long long count, int grain, int rank, int ranks, const LlPeers* peers,
                             long long slotUnits, moe_u32* control, volatile int* errorRecord, long long timeoutNs, int collective,
                             int twoShotArgument)
{
    const bool twoShot = MODE < 0 ? twoShotArgument != 0 : MODE == 1;
    const int E = 8 / (int)sizeof(T);
    // Every thread reads the epoch itself, with no barrier before its first stores, and loads its first step-0 unit
    // before it uses the epoch: the two loads are in flight together (the call's first L2 round trips, once, not one
    // after the other). A plain L2 load (ld.global.cg), not a volatile one, so the compiler may issue the input load
    // beside it; the previous call's kernel wrote the word, and kernels on one stream are ordered. No thread stores
    // the word before the final barrier, after every thread of the block has read it.
    const moe_u32 epochWord = __ldcg(control + (LL_TAIL == 2 ? LL_BLOCK_EPOCHS + blockIdx.x : LL_EPOCH));
#if LL_LINE128
    long long units = (count + E - 1) / E;
    const moe_u32 epoch = epochWord + 1 == 0 ? 2 : epochWord + 1;   // parity keeps alternating; 0 is what zeroed lines hold
    int failed = 0x7fffffff;   // the step at which this thread's wait timed out
    const LlCall c = ll_call(peers, control, slotUnits, epoch, rank, ranks, timeoutNs,
                             twoShot ? LL_LAZY_CYCLES + units * LL_LAZY_CYCLES_PER_KUNIT / 1024 : -1);
    if (!twoShot)
    {
        ll128_send(c, input, count, 0, units, -1);
        LL_STAMP(control, LL_T_STORED);
        if (!ll128_sum(c, input, output, count, 0, units, false, 0))
            failed = 0;
    }
    else
    {
        // Step 0: chunk q of the input to rank q; this rank's chunk summed, stored and pushed; step 1: the other chunks.
        long long begin, end;
        for (int q = 0; q < ranks; q++)
            if (q != rank)
            {
                chunk_units(count, grain, ranks, q, E, begin, end);
                ll128_send(c, input, count, begin, end, q);
            }
        LL_STAMP(control, LL_T_STORED);
        chunk_units(count, grain, ranks, rank, E, begin, end);
        bool ok = ll128_sum(c, input, output, count, begin, end, true, slotUnits / 2);
        if (!ok)
            failed = 0;
        for (int p = 0; p < ranks && ok; p++)
        {
            if (p == rank)
                continue;
            chunk_units(count, grain, ranks, p, E, begin, end);
            ok = ll128_copy(c, output, count, p, begin, end, slotUnits / 2);
            if (!ok)
                failed = 1;
        }
    }
#else
    long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    long long units = (count + E - 1) / E;
    // Step 0's first store: one-shot, unit `first` to every peer; two-shot, unit `first` of the first peer's chunk.
    int firstPeer = twoShot ? (rank == 0 ? 1 : 0) : -1;
    long long firstBegin = 0, firstEnd = units;
    if (twoShot && ranks > 1)
        chunk_units(count, grain, ranks, firstPeer, E, firstBegin, firstEnd);
    bool hasFirst = (!twoShot || ranks > 1) && firstBegin + first < firstEnd;
    moe_u64 firstPayload = hasFirst ? load_unit(input, count, firstBegin + first) : 0;
    const moe_u32 epoch = epochWord + 1 == 0 ? 2 : epochWord + 1;   // parity keeps alternating; 0 is what zeroed lines hold
    int failed = 0x7fffffff;   // the step at which this thread's wait timed out
    const LlCall c = ll_call(peers, control, slotUnits, epoch, rank, ranks, timeoutNs,
                             twoShot ? LL_LAZY_CYCLES + units * LL_LAZY_CYCLES_PER_KUNIT / 1024 : -1);
    if (!twoShot)
    {
        for (long long u = first; u < units; u += stride)
        {
            moe_u64 w = u == first ? firstPayload : load_unit(input, count, u);
            for (int q = 0; q < ranks; q++)
                if (q != rank)
                    ll_store(slot_unit(c, q, rank, u), w, c.flag);
        }
        LL_STAMP(control, LL_T_STORED);
        if (!sum_units(c, input, output, count, 0, units, first, stride, false, 0, false))
            failed = 0;
    }
    else
    {
        // Step 0: chunk q of the input to rank q, then this rank's chunk summed, stored and pushed to every peer.
        for (int q = 0; q < ranks; q++)
        {
            if (q == rank)
                continue;
            long long begin, end;
            chunk_units(count, grain, ranks, q, E, begin, end);
            for (long long u = begin + first; u < end; u += stride)
                ll_store(slot_unit(c, q, rank, u - begin), q == firstPeer && u == begin + first ? firstPayload : load_unit(input, count, u), c.flag);
        }
        LL_STAMP(control, LL_T_STORED);
        // The fence after the step-0 stores is sum_units' (fenceFirst), once this thread's own units are loading.
        long long begin, end;
        chunk_units(count, grain, ranks, rank, E, begin, end);
        bool ok = sum_units(c, input, output, count, begin, end, first, stride, true, slotUnits / 2, true);
        if (!ok)
            failed = 0;
        // Step 1: every other chunk, from its owner.
        for (int p = 0; p < ranks && ok; p++)
        {
            if (p == rank)
                continue;
            chunk_units(count, grain, ranks, p, E, begin, end);
            ok = copy_units(c, output, count, p, begin, end, slotUnits / 2, first, stride);
            if (!ok)
                failed = 1;
        }
    }
#endif
    // The block's smallest failed step (steps are 0 and 1); these barriers are also the one before the tail.
    bool failedAtStep0 = __syncthreads_or(failed == 0);
    bool failedAtStep1 = __syncthreads_or(failed == 1);
    int failedStep = failedAtStep0 ? 0 : failedAtStep1 ? 1 : 0x7fffffff;
#if LL_TAIL == 2
    // The words w = blockIdx.x (mod grid): every thread of this block read word blockIdx.x before the barriers above; no other block reads them.
    for (int w = blockIdx.x + threadIdx.x * gridDim.x; w < LL_MAX_BLOCKS; w += gridDim.x * blockDim.x)
        control[LL_BLOCK_EPOCHS + w] = epoch;
    if (blockIdx.x == 0 && threadIdx.x == 0)
        control[LL_EPOCH] = epoch;
#endif
    LL_STAMP(control, LL_T_END);
    if (threadIdx.x == 0)
    {
        if (failedStep != 0x7fffffff)
        {
            // The smallest failed step of any block of this rank (the call is abandoned; the host fails the communicator).
            int old = atomicMin((int*)(control + LL_FAILED_STEP), failedStep);
            errorRecord[1] = old < failedStep ? old : failedStep;
            errorRecord[2] = rank;
            errorRecord[3] = collective;
            __threadfence_system();
            errorRecord[0] = 1;
        }
#if LL_TAIL == 1
        if (gridDim.x == 1)
        {
            // The only block: its threads read the old epoch before the barriers above, so this store cannot overtake those reads.
            control[LL_EPOCH] = epoch;
            return;
        }
#endif
#if LL_TAIL != 2
        // The last block to finish publishes the epoch (every block has read the old one by then).
        __threadfence();
        if (atomicAdd(control + LL_DONE, 1u) == gridDim.x - 1)
        {
            control[LL_DONE] = 0;
            control[LL_EPOCH] = epoch;
        }
#endif
    }
}

#define LL_ENTRY(NAME, T, MODE)                                                                                        \
    extern "C" __global__ void __launch_bounds__(LL_BLOCK_THREADS) NAME(const void* input, void* output, long long count, \
        int grain, int rank, int ranks, const LlPeers* peers, long long slotUnits, moe_u32* control, int* errorRecord,   \
        long long timeoutNs, int collective, int twoShot)                                                               \
    {                                                                                                                    \
        LL_TRACE_BEFORE_WAIT(control)                                                                                    \
        moe_wait_prior_grid();                                                                                           \
        LL_TRACE_START((moe_u32*)control);                                                                               \
        ll_allreduce<T, MODE>((const T*)input, (T*)output, count, grain, rank, ranks, peers, slotUnits, control,         \
                              errorRecord,                                                                               \
                              timeoutNs, collective, twoShot);                                                           \
    }

LL_ENTRY(ll_allreduce_f32, float, -1)
LL_ENTRY(ll_allreduce_bf16, bf16, -1)
LL_ENTRY(ll_allreduce_f16, f16, -1)
LL_ENTRY(ll_allreduce_f32_one, float, 0)
LL_ENTRY(ll_allreduce_bf16_one, bf16, 0)
LL_ENTRY(ll_allreduce_f16_one, f16, 0)
LL_ENTRY(ll_allreduce_f32_two, float, 1)
LL_ENTRY(ll_allreduce_bf16_two, bf16, 1)
LL_ENTRY(ll_allreduce_f16_two, f16, 1)
