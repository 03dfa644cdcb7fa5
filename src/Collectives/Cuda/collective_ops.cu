// collective_ops.cu: runs one rank's collective step schedule (Schedule/*.cs) over peer memory.
//
// One launch per rank per call, all ranks launched before anyone waits. Each rank reads its peers'
// registered staging / partial buffers, and (AllReduce) its peers' own input and output buffers, directly
// through UVA pointers (peer access enabled); it orders steps with barriers made of flags in peer memory.
//
// Ops (struct CollectiveOp, 64 bytes, mirrors Schedule/CollectiveOp.cs):
//   COPY             dst = src0                      (through F32; exact for f32/bf16/f16 values)
//   ADD              dst = src0 + src1               (F32)
//   REDUCE_ALL       dst = src0@0 + src0@1 + ... + src0@N-1  (F32, always this order: bit-identical on every rank)
//   REDUCE_ALL_PUSH  dst@q = the same sum, for every rank q (the two-shot's reduce-scatter writing straight
//                    into every rank's output: no all-gather pass)
//   BARRIER          every rank has finished the ops before it
// Buffers: INPUT / OUTPUT with rank -1 (or this rank) are the call's own; with another rank q, rank q's buffer of
// this call (q writes its addresses into this rank's control words with its first barrier's flag: valid after it).
// Range of an op: chunk c >= 0 -> [start(c), start(c+1)), start(c) = floor(count*c/N / grain) * grain,
//                 start(N) = count (offset 0 in a BASE_ZERO buffer); chunk -1 -> length elements at
//                 srcOffset / dstOffset. AllReduce passes grain 8 so chunks start 16-byte aligned.
// Elements move in groups of GROUP = 8: group g of a range (elements 8g..8g+7) always belongs to thread
// g mod (grid * block), on every rank and every op of a call, whether it moves by 16-byte vectors (every operand
// 16-byte aligned) or one element at a time (a misaligned operand, the tail): block b's barrier only has to
// order block b of every rank. The vector path issues the loads of UNROLL groups from every source before any
// add (bytes in flight are what NVLink reads need), then sums in rank order in F32.
//
// Barrier k of a call, block b, value v = epoch[b] + k (epoch[b] lives in this rank's memory and advances by
// the call's barrier count, so a CUDA graph replays correctly without resetting anything: no sequence number
// comes from the host):
//   thread t < N stores v into rank t's flags[b][self] (st.release.sys), then spins on its own flags[b][t]
//   with ld.acquire.sys until it is >= v, or until the %globaltimer deadline: then it writes an error record
//   {1, step, rank, collective} to mapped host memory and the whole block leaves the kernel.
//
// Variants: collective_run_f32 / _bf16 / _f16. Launch: grid <= MAX_BLOCKS and every block resident at once
// (the host caps the grid at SMs x occupancy; the same grid on every rank of a call), any block size >= MAX_RANKS
// (512 used). Control words per rank (CONTROL_WORDS, mirrored by CudaCollectiveBackend.ControlWords):
// flags [MAX_BLOCKS][MAX_RANKS] u32, epochs [MAX_BLOCKS] u32, then [MAX_RANKS] x {input, output} u64: the call's
// addresses of rank q, written by rank q into every peer's slot q with its first barrier's flag.
#include "moe_common.cuh"

#define MAX_RANKS 8
#define MAX_BLOCKS 264
// Threads per block (CudaCollectiveBackend.BlockSize): the launch bound caps registers so a block of this size
// always fits (the unrolled loads otherwise take more than 65536 / 512 registers per thread).
#define BLOCK_THREADS 512
#define GROUP 8
#define POINTER_WORDS (4 * MAX_RANKS)
#define CONTROL_WORDS (MAX_BLOCKS * MAX_RANKS + MAX_BLOCKS + POINTER_WORDS)

enum { OP_COPY = 1, OP_ADD = 2, OP_REDUCE_ALL = 3, OP_BARRIER = 4, OP_REDUCE_ALL_PUSH = 5 };
enum { BUF_INPUT = 0, BUF_OUTPUT = 1, BUF_STAGING = 2, BUF_PARTIAL = 3, BUF_KIND_MASK = 15, BUF_BASE_ZERO = 16 };

struct CollectiveOp
{
    int kind, chunk, src0, src0Rank, src1, src1Rank, dst, step;
    long long srcOffset, dstOffset, length, reserved;
};

// Device addresses of every rank's registered buffers (the same table on every rank).
struct PeerTable
{
    moe_u64 staging[MAX_RANKS];
    moe_u64 partial[MAX_RANKS];
    moe_u64 control[MAX_RANKS];   // flags then epochs
};

__device__ __forceinline__ void store_release_sys(moe_u32* p, moe_u32 v)
{
    asm volatile("st.release.sys.global.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ moe_u32 load_acquire_sys(const moe_u32* p)
{
    moe_u32 v;
    asm volatile("ld.acquire.sys.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Loads that skip L1 (not coherent with peers' writes): peers' data changes between the steps of one kernel.
__device__ __forceinline__ float load_cg_f32(const float* p)
{
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ moe_u16 load_cg_u16(const void* p)
{
    moe_u16 v;
    asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ float load_elem(const float* base, long long i) { return load_cg_f32(base + i); }
__device__ __forceinline__ float load_elem(const bf16* base, long long i) { bf16 x; x.bits = load_cg_u16(base + i); return to_float(x); }
__device__ __forceinline__ float load_elem(const f16* base, long long i) { f16 x; x.bits = load_cg_u16(base + i); return to_float(x); }

// 16-byte loads (L1 bypassed, like the scalar ones) and stores.
__device__ __forceinline__ void load_cg_v4_f32(const float* p, float* v)
{
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];" : "=f"(v[0]), "=f"(v[1]), "=f"(v[2]), "=f"(v[3]) : "l"(p) : "memory");
}

__device__ __forceinline__ void load_cg_v4_u32(const void* p, moe_u32* v)
{
    asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3]) : "l"(p) : "memory");
}

__device__ __forceinline__ void store_v4_f32(float* p, const float* v)
{
    asm volatile("st.global.v4.f32 [%0], {%1, %2, %3, %4};" :: "l"(p), "f"(v[0]), "f"(v[1]), "f"(v[2]), "f"(v[3]) : "memory");
}

__device__ __forceinline__ void store_v4_u32(void* p, const moe_u32* v)
{
    asm volatile("st.global.v4.u32 [%0], {%1, %2, %3, %4};" :: "l"(p), "r"(v[0]), "r"(v[1]), "r"(v[2]), "r"(v[3]) : "memory");
}

// An operand: a base address already moved to the op's range start, and whether it holds F32 partials.
struct Operand
{
    const void* base;
    bool isF32;
};

template <typename T>
__device__ __forceinline__ float load_operand(Operand o, long long i)
{
    return o.isF32 ? load_cg_f32((const float*)o.base + i) : load_elem((const T*)o.base + 0, i);
}

template <typename T>
__device__ __forceinline__ void store_operand(Operand o, long long i, float v)
{
    if (o.isF32)
        ((float*)o.base)[i] = v;
    else
        ((T*)o.base)[i] = from_float<T>(v);
}

// A group of GROUP elements at p (16-byte aligned) as F32, and back; one overload per element type.
__device__ __forceinline__ void load_elems(const float* p, float* v)
{
    load_cg_v4_f32(p, v);
    load_cg_v4_f32(p + 4, v + 4);
}

template <typename H>   // bf16 or f16: 8 x 2 bytes in four 32-bit words, low half first (little endian)
__device__ __forceinline__ void load_halves(const H* p, float* v)
{
    moe_u32 words[4];
    load_cg_v4_u32(p, words);
    for (int k = 0; k < 4; k++)
    {
        H lo, hi;
        lo.bits = (moe_u16)(words[k] & 0xffffu);
        hi.bits = (moe_u16)(words[k] >> 16);
        v[2 * k] = to_float(lo);
        v[2 * k + 1] = to_float(hi);
    }
}

__device__ __forceinline__ void load_elems(const bf16* p, float* v) { load_halves(p, v); }
__device__ __forceinline__ void load_elems(const f16* p, float* v) { load_halves(p, v); }

__device__ __forceinline__ void store_elems(float* p, const float* v)
{
    store_v4_f32(p, v);
    store_v4_f32(p + 4, v + 4);
}

template <typename H>
__device__ __forceinline__ void store_halves(H* p, const float* v)
{
    moe_u32 words[4];
    for (int k = 0; k < 4; k++)
        words[k] = (moe_u32)from_float<H>(v[2 * k]).bits | ((moe_u32)from_float<H>(v[2 * k + 1]).bits << 16);
    store_v4_u32(p, words);
}

__device__ __forceinline__ void store_elems(bf16* p, const float* v) { store_halves(p, v); }
__device__ __forceinline__ void store_elems(f16* p, const float* v) { store_halves(p, v); }

// Group at element i of an operand (i a multiple of GROUP, the operand 16-byte aligned).
template <typename T>
__device__ __forceinline__ void load_group(Operand o, long long i, float* v)
{
    if (o.isF32)
        load_elems((const float*)o.base + i, v);
    else
        load_elems((const T*)o.base + i, v);
}

template <typename T>
__device__ __forceinline__ void store_group(Operand o, long long i, const float* v)
{
    if (o.isF32)
        store_elems((float*)o.base + i, v);
    else
        store_elems((T*)o.base + i, v);
}

__device__ __forceinline__ bool aligned16(Operand o) { return ((moe_u64)o.base & 15) == 0; }

// This call's input and output addresses of every rank (own ones from the arguments, peers' read from their
// control words after the first barrier).
struct CallBuffers
{
    moe_u64 input[MAX_RANKS];
    moe_u64 output[MAX_RANKS];
};

template <typename T>
__device__ __forceinline__ Operand resolve(const PeerTable* peers, const CallBuffers* call, int code, int rank, int self, long long offset)
{
    Operand o;
    int owner = rank < 0 ? self : rank;
    switch (code & BUF_KIND_MASK)
    {
        case BUF_INPUT: o.base = (const T*)call->input[owner] + offset; o.isF32 = false; break;
        case BUF_OUTPUT: o.base = (const T*)call->output[owner] + offset; o.isF32 = false; break;
        case BUF_STAGING: o.base = (const T*)peers->staging[rank] + offset; o.isF32 = false; break;
        default: o.base = (const float*)peers->partial[rank] + offset; o.isF32 = true; break;
    }
    return o;
}

// Word offset of the address slots in a rank's control words: [MAX_RANKS] x {input, output} u64, slot q written by rank q.
#define ADDRESS_OFFSET (MAX_BLOCKS * MAX_RANKS + MAX_BLOCKS)

// Returns false (in every thread of the block) when a peer did not arrive before the deadline. With publish (the
// call's first barrier), thread t first writes this rank's input and output addresses into rank t's slot for this
// rank: the same release that carries the flag carries them (every block writes the same values).
__device__ __forceinline__ bool block_barrier(const PeerTable* peers, int rank, int ranks, moe_u32 value,
                                              long long timeoutNs, volatile int* errorRecord, int step, int collective,
                                              volatile int* timedOut, bool publish, const void* input, const void* output)
{
    __syncthreads();   // every thread of this block has finished the step's loads and stores
    int t = threadIdx.x;
    if (t < ranks)
    {
        moe_u32* peerControl = (moe_u32*)peers->control[t];
        if (publish)
        {
            moe_u64* slot = (moe_u64*)(peerControl + ADDRESS_OFFSET) + 2 * rank;
            slot[0] = (moe_u64)input;
            slot[1] = (moe_u64)output;
        }
        // st.release.sys is cumulative: the block's stores before __syncthreads are visible to whoever acquires v.
        store_release_sys(peerControl + blockIdx.x * MAX_RANKS + rank, value);
        const moe_u32* ownSlot = (const moe_u32*)peers->control[rank] + blockIdx.x * MAX_RANKS + t;
        moe_u64 start = globaltimer_ns();
        while ((int)(load_acquire_sys(ownSlot) - value) < 0)
        {
            if ((long long)(globaltimer_ns() - start) > timeoutNs)
            {
                errorRecord[1] = step;
                errorRecord[2] = rank;
                errorRecord[3] = collective;
                __threadfence_system();
                errorRecord[0] = 1;
                *timedOut = 1;
                break;
            }
        }
    }
    __syncthreads();
    return *timedOut == 0;
}

// GROUP elements of T as 32-bit words (4 for bf16/f16, 8 for f32), to F32 and back.
template <typename T> struct GroupWords { enum { COUNT = GROUP * (int)sizeof(T) / 4 }; };

__device__ __forceinline__ void unpack(const float*, const moe_u32* w, float* v)
{
    for (int k = 0; k < GROUP; k++)
        v[k] = __uint_as_float(w[k]);
}

template <typename H>
__device__ __forceinline__ void unpack(const H*, const moe_u32* w, float* v)
{
    for (int k = 0; k < GROUP / 2; k++)
    {
        H lo, hi;
        lo.bits = (moe_u16)(w[k] & 0xffffu);
        hi.bits = (moe_u16)(w[k] >> 16);
        v[2 * k] = to_float(lo);
        v[2 * k + 1] = to_float(hi);
    }
}

__device__ __forceinline__ void pack(const float*, const float* v, moe_u32* w)
{
    for (int k = 0; k < GROUP; k++)
        w[k] = __float_as_uint(v[k]);
}

template <typename H>
__device__ __forceinline__ void pack(const H*, const float* v, moe_u32* w)
{
    for (int k = 0; k < GROUP / 2; k++)
        w[k] = (moe_u32)from_float<H>(v[2 * k]).bits | ((moe_u32)from_float<H>(v[2 * k + 1]).bits << 16);
}

// The vector path: groups [0, groups) of every source (all of element type T, 16-byte aligned), summed in rank
// order in F32, stored to every destination. NS bounds the source count (registers: UNROLL x NS x 16-32 bytes),
// UNROLL groups per thread per iteration, all their loads issued before the first add.
template <typename T, int NS, int UNROLL>
__device__ __forceinline__ void reduce_vectors(const Operand* sources, int sourceCount, const Operand* dests, int destCount,
                                               long long groups, long long first, long long stride)
{
    const int WORDS = GroupWords<T>::COUNT;
    const char* src[NS];
#pragma unroll
    for (int p = 0; p < NS; p++)
        src[p] = (const char*)sources[p < sourceCount ? p : 0].base;
    for (long long g0 = first; g0 < groups; g0 += stride * UNROLL)
    {
        moe_u32 raw[UNROLL][NS][WORDS];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            long long g = g0 + u * stride;
            if (g < groups)
            {
#pragma unroll
                for (int p = 0; p < NS; p++)
                {
                    if (p < sourceCount)
                    {
#pragma unroll
                        for (int w = 0; w < WORDS; w += 4)
                            load_cg_v4_u32(src[p] + g * (GROUP * sizeof(T)) + w * 4, &raw[u][p][w]);
                    }
                }
            }
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            long long g = g0 + u * stride;
            if (g < groups)
            {
                float sum[GROUP], value[GROUP];
                unpack((const T*)0, raw[u][0], sum);
#pragma unroll
                for (int p = 1; p < NS; p++)
                {
                    if (p < sourceCount)
                    {
                        unpack((const T*)0, raw[u][p], value);
                        for (int k = 0; k < GROUP; k++)
                            sum[k] += value[k];
                    }
                }
                moe_u32 out[WORDS];
                pack((const T*)0, sum, out);
                for (int d = 0; d < destCount; d++)
                {
                    char* at = (char*)dests[d].base + g * (GROUP * sizeof(T));
#pragma unroll
                    for (int w = 0; w < WORDS; w += 4)
                        store_v4_u32(at + w * 4, &out[w]);
                }
            }
        }
    }
}

template <typename T>
__device__ void run_schedule(const CollectiveOp* ops, int opCount, const PeerTable* peers, const void* input, void* output,
                             long long count, int grain, int rank, int ranks, int* errorRecord, long long timeoutNs, int collective)
{
    __shared__ moe_u32 epochBase;
    __shared__ int timedOut;
    __shared__ CallBuffers call;
    moe_u32* control = (moe_u32*)peers->control[rank];
    moe_u32* epochs = control + MAX_BLOCKS * MAX_RANKS;
    if (threadIdx.x == 0)
    {
        epochBase = epochs[blockIdx.x];
        timedOut = 0;
    }
    if (threadIdx.x < MAX_RANKS)
    {
        call.input[threadIdx.x] = (moe_u64)input;
        call.output[threadIdx.x] = (moe_u64)output;
    }
    __syncthreads();
    moe_u32 barriers = 0;
    long long first = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long stride = (long long)gridDim.x * blockDim.x;
    for (int k = 0; k < opCount; k++)
    {
        const CollectiveOp op = ops[k];
        if (op.kind == OP_BARRIER)
        {
            barriers++;
            if (!block_barrier(peers, rank, ranks, epochBase + barriers, timeoutNs, errorRecord, op.step, collective, &timedOut,
                               barriers == 1, input, output))
                return;
            if (barriers == 1)
            {
                // Thread t acquired rank t's flag, released after rank t wrote its addresses here (local reads).
                int t = threadIdx.x;
                if (t < ranks && t != rank)
                {
                    const volatile moe_u64* slot = (const volatile moe_u64*)(control + ADDRESS_OFFSET) + 2 * t;
                    call.input[t] = slot[0];
                    call.output[t] = slot[1];
                }
                __syncthreads();
            }
            continue;
        }
        long long src0At, src1At, dstAt, length;
        if (op.chunk >= 0)
        {
            long long start = count * op.chunk / ranks / grain * grain;
            long long end = op.chunk + 1 >= ranks ? count : count * (op.chunk + 1) / ranks / grain * grain;
            length = end - start;
            src0At = (op.src0 & BUF_BASE_ZERO) ? 0 : start;
            src1At = (op.src1 & BUF_BASE_ZERO) ? 0 : start;
            dstAt = (op.dst & BUF_BASE_ZERO) ? 0 : start;
        }
        else
        {
            src0At = op.srcOffset;
            src1At = op.srcOffset;
            dstAt = op.dstOffset;
            length = op.length;
        }
        Operand dests[MAX_RANKS];
        int destCount;
        if (op.kind == OP_REDUCE_ALL_PUSH)
        {
            destCount = ranks;
            for (int q = 0; q < ranks; q++)
                dests[q] = resolve<T>(peers, &call, op.dst, q, rank, dstAt);
        }
        else
        {
            destCount = 1;
            dests[0] = resolve<T>(peers, &call, op.dst, rank, rank, dstAt);
        }
        Operand sources[MAX_RANKS];
        int sourceCount;
        if (op.kind == OP_REDUCE_ALL || op.kind == OP_REDUCE_ALL_PUSH)
        {
            sourceCount = ranks;
            for (int p = 0; p < ranks; p++)
                sources[p] = resolve<T>(peers, &call, op.src0, p, rank, src0At);
        }
        else
        {
            // COPY: one source; ADD: two, summed in that order.
            sourceCount = op.kind == OP_ADD ? 2 : 1;
            sources[0] = resolve<T>(peers, &call, op.src0, op.src0Rank, rank, src0At);
            if (op.kind == OP_ADD)
                sources[1] = resolve<T>(peers, &call, op.src1, op.src1Rank, rank, src1At);
        }
        bool vectors = true, anyF32 = false;
        for (int d = 0; d < destCount; d++)
        {
            vectors = vectors && aligned16(dests[d]);
            anyF32 = anyF32 || dests[d].isF32;
        }
        for (int p = 0; p < sourceCount; p++)
        {
            vectors = vectors && aligned16(sources[p]);
            anyF32 = anyF32 || sources[p].isF32;
        }
        long long groups = (length + GROUP - 1) / GROUP;
        long long vectorGroups = 0;
        if (vectors && !anyF32)
        {
            // Every operand holds T: the unrolled path over the whole groups, the ragged tail below.
            vectorGroups = length / GROUP;
            const int U = GroupWords<T>::COUNT == 4 ? 4 : 2;   // 16 or 32 bytes per group
            if (sourceCount <= 2)
                reduce_vectors<T, 2, U>(sources, sourceCount, dests, destCount, vectorGroups, first, stride);
            else if (sourceCount <= 4)
                reduce_vectors<T, 4, U / 2>(sources, sourceCount, dests, destCount, vectorGroups, first, stride);
            else
                reduce_vectors<T, MAX_RANKS, 1>(sources, sourceCount, dests, destCount, vectorGroups, first, stride);
        }
        // Group g still belongs to thread g mod stride: start at this thread's first group at or after vectorGroups.
        long long from = vectorGroups + ((first - vectorGroups) % stride + stride) % stride;
        for (long long g = from; g < groups; g += stride)
        {
            long long i0 = g * GROUP;
            if (vectors && i0 + GROUP <= length)
            {
                float sum[GROUP], value[GROUP];
                load_group<T>(sources[0], i0, sum);
                for (int p = 1; p < sourceCount; p++)
                {
                    load_group<T>(sources[p], i0, value);
                    for (int k = 0; k < GROUP; k++)
                        sum[k] += value[k];
                }
                for (int d = 0; d < destCount; d++)
                    store_group<T>(dests[d], i0, sum);
            }
            else
            {
                long long i1 = i0 + GROUP < length ? i0 + GROUP : length;
                for (long long i = i0; i < i1; i++)
                {
                    float sum = load_operand<T>(sources[0], i);
                    for (int p = 1; p < sourceCount; p++)
                        sum += load_operand<T>(sources[p], i);
                    for (int d = 0; d < destCount; d++)
                        store_operand<T>(dests[d], i, sum);
                }
            }
        }
    }
    // Every rank's block runs the same barrier count: the epochs stay in step without a reset.
    if (threadIdx.x == 0)
        epochs[blockIdx.x] = epochBase + barriers;
}

// Compile-time checks of the layout the host mirrors (CudaCollectiveBackend.ControlWords, MaxBlocks).
static_assert(CONTROL_WORDS == ADDRESS_OFFSET + POINTER_WORDS, "control words layout");
static_assert(ADDRESS_OFFSET % 2 == 0, "the address words must be 8-byte aligned");

#define COLLECTIVE_ENTRY(NAME, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(BLOCK_THREADS) NAME(const CollectiveOp* ops, int opCount, const PeerTable* peers,          \
                                    const void* input, void* output, long long count, int grain,          \
                                    int rank, int ranks,                                                   \
                                    int* errorRecord, long long timeoutNs, int collective)                 \
    {                                                                                                      \
        run_schedule<T>(ops, opCount, peers, input, output, count, grain, rank, ranks, errorRecord, timeoutNs, collective); \
    }

COLLECTIVE_ENTRY(collective_run_f32, float)
COLLECTIVE_ENTRY(collective_run_bf16, bf16)
COLLECTIVE_ENTRY(collective_run_f16, f16)
