// link_probe.cu: the one-way latency of a posted store from one GPU to another, seen by a thread polling its own
// memory: the cost of one LL step (ll_allreduce.cu) with nothing else in it, so the floor under one-shot (one such
// hop) and two-shot (two in a row) can be measured rather than guessed.
//
// Ping-pong between two ranks, one kernel each, running at once: `units` threads a rank, thread t owning the 16-byte
// unit t of every slot. Round i (1..rounds): rank 0's thread t stores unit t (two {payload, flag} lines, flag = i, one
// st.volatile.v2.u64 as LL stores them) into rank 1's slot, then polls its own slot (ld.volatile.v2.u64) until rank
// 1's answer carries flag i; rank 1's thread t polls for rank 0's line of round i, then answers into rank 0's slot.
// A round is one round trip, two hops; rank 0's thread 0 reads %globaltimer after `warmRounds` rounds and after the
// last: result[0] = ns of the timed rounds. Units a step = the LL step's size (64 units: a 1 KB two-shot's chunk).
//
// Slots: [units] units of 16 bytes on each rank, zeroed by the host before the call (flag 0 never matches a round).
// result (on each rank, u64): [0] ns of the timed rounds (rank 0), [1] 1 if any thread's wait passed the deadline.
// A wait past the deadline (timeoutNs after the thread started) ends that thread's rounds: the kernel always ends.
// Launch: one block of `units` threads (1..1024) per rank.
#include "moe_common.cuh"

__device__ __forceinline__ void probe_store(moe_u64* unit, moe_u32 flag)
{
    moe_u64 line = ((moe_u64)flag << 32) | flag;   // payload and flag both carry the round
    asm volatile("st.volatile.global.v2.u64 [%0], {%1, %2};" :: "l"(unit), "l"(line), "l"(line) : "memory");
}

// Polls a unit until both its lines carry flag; false when the deadline passes first.
__device__ __forceinline__ bool probe_wait(const moe_u64* unit, moe_u32 flag, moe_u64 deadline)
{
    for (;;)
    {
        moe_u64 lo, hi;
        asm volatile("ld.volatile.global.v2.u64 {%0, %1}, [%2];" : "=l"(lo), "=l"(hi) : "l"(unit) : "memory");
        if ((moe_u32)(lo >> 32) == flag && (moe_u32)(hi >> 32) == flag)
            return true;
        if (globaltimer_ns() > deadline)
            return false;
    }
}

// mine: this rank's slot [units][2] u64; peer: the other rank's slot (a peer pointer).
extern "C" __global__ void link_pingpong(moe_u64* mine, moe_u64* peer, int rank, int rounds, int warmRounds, long long timeoutNs,
                                         moe_u64* result)
{
    const int t = threadIdx.x;
    const moe_u64 deadline = globaltimer_ns() + (moe_u64)timeoutNs;
    moe_u64 started = 0;
    bool ok = true;
    for (int i = 1; i <= rounds && ok; i++)
    {
        if (rank == 0 && t == 0 && i == warmRounds + 1)
            started = globaltimer_ns();
        const moe_u32 flag = (moe_u32)i;
        if (rank == 0)
        {
            probe_store(peer + 2 * t, flag);
            ok = probe_wait(mine + 2 * t, flag, deadline);
        }
        else
        {
            ok = probe_wait(mine + 2 * t, flag, deadline);
            if (ok)
                probe_store(peer + 2 * t, flag);
        }
    }
    if (!ok)
        result[1] = 1;
    if (rank == 0 && t == 0 && ok)
        result[0] = globaltimer_ns() - started;
}
