// moe_decode.cu: a routed MoE layer for a few tokens (decode) in one launch: router GEMV, top-k routing, gate_up with
// SiLU-and-mul, down and the weighted combine, with two grid-wide barriers between them instead of six kernels. At
// T = 1 each of those kernels costs a launch, a dependent start and a wait for its inputs (2-4 us each, beside 12 and
// 6 us of weight streaming on an H200 for Qwen3-30B-A3B); here the phases follow each other inside one grid.
//   x:        [T, H]        bf16 or f16, the hidden states (T <= MD_MAX_TOKENS)
//   router:   [E, H]        same dtype; bias [E] F32 or null (DeepSeek's correction bias, grouped routing only)
//   gateUp:   [E, 2I, H]    [gate; up] rows of each expert;   down: [E, H, I]
//   residual: [T, H] F32 or null (the shared experts' output, added as Combine adds it)
//   logits:   [T, E] F32    written (phase 1), as the router GEMM writes them
//   ids, weights: [T, k]    written by block 0, as TopKRouting writes them; counts [E] I32 too (tokens per expert)
//   act:      [T * k, I]    scratch (slot order: row t * k + j is token t's j-th choice), the activation in the dtype
//   out:      [T, H] F32    out[t] = residual[t] + sum_j weights[t, j] * down_{ids[t, j]}(act[t * k + j])
//   barrier:  one U32, zero before the launch; the launch leaves it zero (zero it once, when it is allocated)
// Phases (blocks stride over the items of each; every block routes every token itself, so phase 2 needs no barrier):
//   1. router: an item is G = MD_WARPS / routerSplit router rows, a warp group each, every token's row against it;
//   barrier;
//   2. routing: warp t routes token t from the logits staged in shared memory (route_token or route_tokens_contiguous:
//      the layout TopKRouting picks, MD_CONTIGUOUS), so every block holds every token's ids and weights;
//   3. gate_up: an item is G units of 4 W rows (gate and up of two activation columns of one slot); then each block
//      arrives at barrier 2 and asks L2 for the down rows it will stream in phase 4 (prefetchLines 128-byte lines of
//      each; 0 = none), or, built with MD_EARLY_PREFETCH, asks before gate_up, right after the routing;
//   barrier (the wait);
//   4. down and combine: an item is one token's C output columns; its warp groups take (slot, 4 columns) pairs, and
//      the sums of the k slots are added per column in slot order, as Combine adds them.
// The GEMV's bits: every dot product is the decode GEMV's (grouped_gemm_gemv.cu, 4-row build) for the same kSplit:
// lane l of group part p sums chunks p * 32 + l, + 32 * split, ... with fmaf over the 8 elements in order, then a
// butterfly (warp_sum), then the parts in order from 0. The router's split is the dense GEMV's, gate_up's and down's
// the grouped GEMV's (the host passes them), and SiLU-and-mul is the GEMV's fused epilogue, so with the same logits
// the same experts, weights, activation and output come out as from the six kernels, to the bit. Except where the host
// raises gate_up's split because its items would leave most of the grid idle (MoeDecode.GateUpSplitFor: a tensor-parallel
// rank's slice of Qwen3-30B-A3B): its sums are then the GEMV's order at that split, not the chain's.
// Launch: MD_WARPS * 32 threads, cooperative (every block resident: the barriers wait for all), grid <= the blocks the
// device holds at once. H % 8 == 0, I % 8 == 0, 16-byte aligned rows (checked on the host).
// Build options: -DMD_PER_LANE=P (expert slots per lane of the routing: 1..16, 32 * P >= E), -DMD_CONTIGUOUS=0|1,
// -DMD_UNROLL=1|2|4 (chunks of a W row a lane loads at once), -DMD_EARLY_PREFETCH (the down rows' prefetch timing).
// MD_TRACE (MOE_DECODE_TRACE=1, a diagnostic build): the entry takes a last argument trace: [blocks, MD_TRACE_STAMPS]
//   u64, and thread 0 of each block writes %globaltimer (ns) after: the wait, the router phase, barrier 1, the routing,
//   gate_up, the prefetch requests, barrier 2, the down phase; and last the SM the block runs on (%smid, not a time:
//   which SMs hold the blocks of each phase's work). Without it the code is the same as before.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh).
#include "moe_common.cuh"
#include "unpack8.cuh"
#include "gemv_math.cuh"
#include "routing_token.cuh"

#define MD_WARPS 8
#define MD_MAX_TOKENS 8   // warp t routes token t
#define MD_MAX_K 16
#define MD_WROWS 4        // W rows a warp group streams together (the GEMV's 4-row build)
#define MD_MAX_QUADS 8    // 4-column groups of a down item: C = 4 * quads columns
#ifndef MD_PER_LANE
#define MD_PER_LANE 4
#endif
#ifndef MD_CONTIGUOUS
#define MD_CONTIGUOUS 1
#endif
#define MD_MAX_EXPERTS (32 * MD_PER_LANE)
#define MD_MIN_BLOCKS 4 // blocks an SM: 64 registers a thread at most, so the grid holds 4 x 132 blocks on an H100/H200

#ifdef MD_TRACE
#define MD_TRACE_STAMPS 9 // 8 times, then %smid
#define MD_TRACE_PARAM , unsigned long long* __restrict__ mdTrace
#define MD_TRACE_ARG , mdTrace
#define MD_STAMP(slot) block_stamp(mdTrace, MD_TRACE_STAMPS, slot)
#else
#define MD_TRACE_PARAM
#define MD_TRACE_ARG
#define MD_STAMP(slot)
#endif

// A 16-byte chunk this launch wrote (logits, activation), from L2: another SM wrote it, after this SM's L1 was filled.
__device__ __forceinline__ uint4 load_written(const void* p)
{
    uint4 v;
    asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ float load_written_f32(const float* p)
{
    float v;
    asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
    return v;
}

// A grid barrier in two halves: the block arrives (its writes fenced first), may then issue work that the barrier need
// not order (barrier 2: the down rows' L2 prefetches, which the arrival's fence would otherwise wait for), then waits
// until `target` arrivals (gridDim.x times the barriers passed so far) are in.
__device__ __forceinline__ void grid_arrive(unsigned* counter)
{
    __syncthreads();
    if (threadIdx.x == 0)
    {
        __threadfence(); // this block's writes before its arrival
        atomicAdd(counter, 1u);
    }
}

__device__ __forceinline__ void grid_wait(unsigned* counter, unsigned target)
{
    if (threadIdx.x == 0)
    {
        unsigned seen;
        do
            asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(counter) : "memory");
        while (seen < target);
        __threadfence();
    }
    __syncthreads();
}

// W loads of the expert phases. MD_EARLY_PREFETCH (MOE_DECODE_PREFETCH=early): the down rows were asked for with
// evict_last right after the routing, so gate_up's stream goes in as evict_first and leaves them in L2. The hints are
// PTX ISA 7.4 (CUDA 11.4); older NVRTC builds plain loads and prefetches (the same results: only cache priorities).
#if defined(MD_EARLY_PREFETCH) && (__CUDACC_VER_MAJOR__ > 11 || (__CUDACC_VER_MAJOR__ == 11 && __CUDACC_VER_MINOR__ >= 4))
#define MD_CACHE_HINTS 1
#else
#define MD_CACHE_HINTS 0
#endif

struct StreamPolicy
{
    moe_u64 bits;
};

__device__ __forceinline__ StreamPolicy stream_policy()
{
    StreamPolicy policy{0};
#if MD_CACHE_HINTS
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy.bits));
#endif
    return policy;
}

__device__ __forceinline__ uint4 load_w(const void* p, StreamPolicy policy)
{
#if MD_CACHE_HINTS
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p), "l"(policy.bits));
    return v;
#else
    return load_stream(p);
#endif
}

__device__ __forceinline__ void prefetch_kept(const void* p)
{
#if MD_CACHE_HINTS
    asm volatile("prefetch.global.L2::evict_last [%0];" ::"l"(p));
#else
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
#endif
}

#ifndef MD_UNROLL
#define MD_UNROLL 1 // 16-byte chunks of each gate_up W row a lane has in flight (MOE_DECODE_UNROLL=1|2|4)
#endif

// Lane sums of NW W rows against NX X rows over K (k / 8 chunks), the GEMV's order: chunks part * 32 + lane, then
// + 32 * split; fmaf over the chunk's 8 elements in order. UNROLL chunks of each row are loaded before any is summed
// (the same order of sums, more bytes in flight: gate_up takes MD_UNROLL, the short router and down phases 1). X rows come through the read-only path (the layer's input) or from L2
// (X_WRITTEN: rows this launch wrote). A W row that is not live is not read (its sums stay 0).
template <typename TIn, int NW, int NX, bool X_WRITTEN, int UNROLL = 1>
__device__ __forceinline__ void lane_dots(const TIn* const (&w)[NW], const bool (&live)[NW], const TIn* x, long long xStride, int nx,
                                          int k, int part, int split, int lane, StreamPolicy policy, float (&acc)[NW][NX])
{
#pragma unroll
    for (int q = 0; q < NW; q++)
#pragma unroll
        for (int r = 0; r < NX; r++)
            acc[q][r] = 0.0f;
    const int chunks = k / 8, stride = 32 * split;
    for (int base = part * 32 + lane; base < chunks; base += stride * UNROLL)
    {
        uint4 wv[UNROLL][NW];
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            const int c = base + u * stride;
#pragma unroll
            for (int q = 0; q < NW; q++)
                wv[u][q] = live[q] && c < chunks ? load_w(w[q] + 8 * c, policy) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < UNROLL; u++)
        {
            const int c = base + u * stride;
            if (c >= chunks)
                break;
            float wf[NW][8];
#pragma unroll
            for (int q = 0; q < NW; q++)
                unpack8((const TIn*)nullptr, wv[u][q], wf[q]);
#pragma unroll
            for (int r = 0; r < NX; r++)
            {
                if (r >= nx)
                    break;
                const TIn* xr = x + r * xStride + 8 * c;
                float xf[8];
                unpack8((const TIn*)nullptr, X_WRITTEN ? load_written(xr) : __ldg(reinterpret_cast<const uint4*>(xr)), xf);
#pragma unroll
                for (int q = 0; q < NW; q++)
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        acc[q][r] = fmaf(wf[q][e], xf[e], acc[q][r]);
            }
        }
    }
}

// The down rows a block streams in phase 4 (its items: blockIdx.x, + gridDim.x, ...), `lines` 128-byte lines of each,
// asked of L2.
template <typename TIn>
__device__ __forceinline__ void prefetch_down(const TIn* __restrict__ down, const int* slotExpert, int tokens, int k, int hidden, int inter,
                                              int columns, int lines)
{
    const int itemsPerToken = (hidden + columns - 1) / columns;
    const int rowLines = (inter * (int)sizeof(TIn) + 127) / 128;
    lines = min(lines, rowLines);
    for (int item = blockIdx.x; item < tokens * itemsPerToken; item += gridDim.x)
    {
        const int t = item / itemsPerToken, c0 = (item % itemsPerToken) * columns;
        const int rows = k * columns;
        for (int i = threadIdx.x; i < rows * lines; i += blockDim.x)
        {
            const int r = i / lines, line = i % lines;
            const int col = c0 + r % columns;
            if (col < hidden)
                prefetch_kept(reinterpret_cast<const char*>(down + ((long long)slotExpert[t * k + r / columns] * hidden + col) * inter) + 128 * line);
        }
    }
}

// The group's sums after lane_dots: each warp's butterfly into partial[warp], a block barrier, then lane r of the group's
// first warp holds part-ordered totals (0 + part 0 + part 1 + ..., as the GEMV's epilogue adds them) in `sum`.
// With split > 1 every warp of the block calls it (it synchronises the block); with split 1 it is warp-local.
template <int NW, int NX>
__device__ __forceinline__ void group_sums(const float (&acc)[NW][NX], int nx, float (&partial)[MD_WARPS][MD_WROWS][MD_MAX_TOKENS],
                                           int warp, int part, int split, int lane, float (&sum)[NW])
{
    if (split == 1) // a group is one warp: its butterfly is the total, with no shared memory and no block barrier
    {
#pragma unroll
        for (int q = 0; q < NW; q++)
        {
            float mine = 0.0f;
#pragma unroll
            for (int r = 0; r < NX; r++)
            {
                const float v = r < nx ? warp_sum(acc[q][r]) : 0.0f;
                if (lane == r)
                    mine = v;
            }
            sum[q] = 0.0f + mine; // as below: 0 + part 0 (a -0 total becomes +0 there too)
        }
        return;
    }
#pragma unroll
    for (int q = 0; q < NW; q++)
#pragma unroll
        for (int r = 0; r < NX; r++)
        {
            float v = r < nx ? warp_sum(acc[q][r]) : 0.0f;
            if (lane == 0)
                partial[warp][q][r] = v;
        }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < NW; q++)
    {
        sum[q] = 0.0f;
        if (part == 0 && lane < nx && lane < NX)
            for (int p = 0; p < split; p++)
                sum[q] += partial[warp + p][q][lane];
    }
}

template <typename TIn>
__device__ __forceinline__ void moe_decode(
    const TIn* __restrict__ x, const TIn* __restrict__ router, const float* __restrict__ bias, const TIn* __restrict__ gateUp,
    const TIn* __restrict__ down, const float* __restrict__ residual, float* logits, int* __restrict__ ids,
    float* __restrict__ weights, int* __restrict__ counts, TIn* act, float* __restrict__ out, unsigned* barrier,
    int tokens, int hidden, int inter, int experts, int k, int renormalize, int grouped, int groupCount, int topkGroups,
    float scale, int routerSplit, int gateUpSplit, int downSplit, int downQuads, int prefetchLines MD_TRACE_PARAM)
{
    // The routing's logits and the expert phases' sums are never live together (barrier 1 and the routing's block barrier
    // part them), so they share their bytes.
    __shared__ __align__(16) union
    {
        float stagedLogits[MD_MAX_TOKENS][MD_MAX_EXPERTS];
        struct
        {
            float partial[MD_WARPS][MD_WROWS][MD_MAX_TOKENS];
            float slotSums[MD_MAX_K][4 * MD_MAX_QUADS];
        } sums;
    } scratch;
    auto& stagedLogits = scratch.stagedLogits;
    auto& partial = scratch.sums.partial;
    auto& slotSums = scratch.sums.slotSums;
#if !MD_CONTIGUOUS
    __shared__ float fallbackKeys[MD_MAX_TOKENS][MD_MAX_EXPERTS];
#endif
    __shared__ int slotExpert[MD_MAX_TOKENS * MD_MAX_K];
    __shared__ float slotWeight[MD_MAX_TOKENS * MD_MAX_K];

    MD_STAMP(0); // the entry waited for the prior grid
#ifdef MD_TRACE
    if (threadIdx.x == 0)
    {
        unsigned sm;
        asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
        mdTrace[blockIdx.x * MD_TRACE_STAMPS + MD_TRACE_STAMPS - 1] = sm;
    }
#endif
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int slots = tokens * k;

    // ---- 1. Router logits: item b, group g takes router row b * G + g against every token ----
    {
        const int split = routerSplit, groups = MD_WARPS / split;
        const int group = warp / split, part = warp % split;
        for (int item = blockIdx.x; item * groups < experts; item += gridDim.x)
        {
            const int e = item * groups + group;
            const TIn* w[1] = {router + (long long)(e < experts ? e : 0) * hidden};
            const bool live[1] = {e < experts};
            float acc[1][MD_MAX_TOKENS];
            lane_dots<TIn, 1, MD_MAX_TOKENS, false>(w, live, x, hidden, tokens, hidden, part, split, lane, StreamPolicy{0}, acc);
            float sum[1];
            group_sums<1, MD_MAX_TOKENS>(acc, tokens, partial, warp, part, split, lane, sum);
            if (part == 0 && lane < tokens && e < experts)
                logits[(long long)lane * experts + e] = sum[0];
            if (split > 1)
                __syncthreads(); // partial is rewritten by the next item
        }
    }
    MD_STAMP(1);
    grid_arrive(barrier);
    grid_wait(barrier, gridDim.x);
    MD_STAMP(2);

    // ---- 2. Routing, in every block: stage the logits, warp t routes token t ----
    for (int i = threadIdx.x; i < tokens * experts; i += blockDim.x)
        stagedLogits[i / experts][i % experts] = load_written_f32(logits + i);
    __syncthreads();
    if (warp < tokens)
    {
        int expert;
        float weight;
#if MD_CONTIGUOUS
        float logit[1][MD_PER_LANE];
        load_contiguous<float, MD_PER_LANE>(stagedLogits[warp], lane, logit[0]);
        float laneBias[MD_PER_LANE];
#pragma unroll
        for (int i = 0; i < MD_PER_LANE; i++)
            laneBias[i] = grouped && bias != nullptr ? bias[lane * MD_PER_LANE + i] : 0.0f;
        const float* rows[1] = {stagedLogits[warp]};
        int chosen[1];
        float chosenWeight[1];
        route_tokens_contiguous<float, MD_PER_LANE, 1>(logit, rows, laneBias, k, renormalize, grouped, groupCount, topkGroups,
                                                      lane, chosen, chosenWeight);
        expert = chosen[0];
        weight = chosenWeight[0];
#else
        float logit[MD_PER_LANE];
        load_row<float, MD_PER_LANE>(stagedLogits[warp], experts, lane, logit);
        route_token<float, MD_PER_LANE>(logit, bias, experts, k, renormalize, grouped, groupCount, topkGroups,
                                        fallbackKeys[warp], lane, expert, weight);
#endif
        if (lane < k)
        {
            slotExpert[warp * k + lane] = expert;
            slotWeight[warp * k + lane] = weight * scale;
            if (blockIdx.x == 0)
            {
                ids[warp * k + lane] = expert;
                weights[warp * k + lane] = weight * scale;
            }
        }
    }
    __syncthreads();
    if (blockIdx.x == 0)
        for (int e = threadIdx.x; e < experts; e += blockDim.x)
        {
            int n = 0;
            for (int s = 0; s < slots; s++)
                n += slotExpert[s] == e ? 1 : 0;
            counts[e] = n;
        }
    const int columns = 4 * downQuads;
    const int itemsPerToken = (hidden + columns - 1) / columns;
#ifdef MD_EARLY_PREFETCH
    // The down rows now, while gate_up streams (they are needed only after barrier 2; gate_up's loads evict first).
    if (prefetchLines > 0)
        prefetch_down<TIn>(down, slotExpert, tokens, k, hidden, inter, columns, prefetchLines);
#endif
    MD_STAMP(3);

    // ---- 3. gate_up and SiLU-and-mul: unit u = slot u / pairs, activation columns 2 (u % pairs) and + 1 ----
    {
        const int split = gateUpSplit, groups = MD_WARPS / split;
        const int group = warp / split, part = warp % split;
        const int pairs = (inter + 1) / 2;
        const StreamPolicy policy = stream_policy();
        const long long units = (long long)slots * pairs;
        for (long long item = blockIdx.x; item * groups < units; item += gridDim.x)
        {
            const long long unit = item * groups + group;
            const bool real = unit < units;
            const int slot = real ? (int)(unit / pairs) : 0;
            const int col0 = real ? 2 * (int)(unit % pairs) : 0;
            const TIn* expertRows = gateUp + (long long)slotExpert[slot] * 2 * inter * hidden;
            // The GEMV's fused rows: gate of col0, col0 + 1, then up of the same columns.
            const TIn* w[MD_WROWS];
            bool live[MD_WROWS];
#pragma unroll
            for (int q = 0; q < MD_WROWS; q++)
            {
                const int col = col0 + (q & 1);
                live[q] = real && col < inter;
                w[q] = expertRows + (long long)((q < 2 ? 0 : inter) + (live[q] ? col : 0)) * hidden;
            }
            float acc[MD_WROWS][1];
            lane_dots<TIn, MD_WROWS, 1, false, MD_UNROLL>(w, live, x + (long long)(slot / k) * hidden, hidden, 1, hidden, part, split, lane, policy, acc);
            float sum[MD_WROWS];
            group_sums<MD_WROWS, 1>(acc, 1, partial, warp, part, split, lane, sum);
            if (real && part == 0 && lane == 0)
            {
                TIn* row = act + (long long)slot * inter;
#pragma unroll
                for (int j = 0; j < 2; j++)
                    if (col0 + j < inter)
                        row[col0 + j] = from_float<TIn>(gv_silu(sum[j]) * sum[2 + j]);
            }
            if (split > 1)
                __syncthreads(); // partial is rewritten by the next item
        }
    }

    MD_STAMP(4);
    grid_arrive(barrier); // before the prefetches: the arrival's fence then waits for the activation's writes alone
#ifndef MD_EARLY_PREFETCH
    // The down rows this block streams in phase 4, into L2 while the other blocks finish gate_up.
    if (prefetchLines > 0)
        prefetch_down<TIn>(down, slotExpert, tokens, k, hidden, inter, columns, prefetchLines);
#endif
    MD_STAMP(5);
    grid_wait(barrier, 2 * gridDim.x);
    MD_STAMP(6);

    // ---- 4. down and combine: item = token t, columns c0 .. c0 + C - 1; pair p = slot j (p / quads), quad p % quads ----
    {
        const int split = downSplit, groups = MD_WARPS / split;
        const int group = warp / split, part = warp % split;
        const int pairs = k * downQuads;
        for (int item = blockIdx.x; item < tokens * itemsPerToken; item += gridDim.x)
        {
            const int t = item / itemsPerToken, c0 = (item % itemsPerToken) * columns;
            for (int round = 0; round * groups < pairs; round++)
            {
                const int pair = round * groups + group;
                const bool real = pair < pairs;
                const int j = real ? pair / downQuads : 0, quad = real ? pair % downQuads : 0;
                const int slot = t * k + j;
                const TIn* expertRows = down + (long long)slotExpert[slot] * hidden * inter;
                const TIn* w[MD_WROWS];
                bool live[MD_WROWS];
#pragma unroll
                for (int q = 0; q < MD_WROWS; q++)
                {
                    const int col = c0 + 4 * quad + q;
                    live[q] = real && col < hidden;
                    w[q] = expertRows + (long long)(live[q] ? col : 0) * inter;
                }
                float acc[MD_WROWS][1];
                lane_dots<TIn, MD_WROWS, 1, true>(w, live, act + (long long)slot * inter, inter, 1, inter, part, split, lane, StreamPolicy{0}, acc);
                float sum[MD_WROWS];
                group_sums<MD_WROWS, 1>(acc, 1, partial, warp, part, split, lane, sum);
                if (real && part == 0 && lane == 0)
#pragma unroll
                    for (int q = 0; q < MD_WROWS; q++)
                        slotSums[j][4 * quad + q] = sum[q];
                if (split > 1)
                    __syncthreads(); // partial is rewritten by the next round
            }
            if (split == 1)
                __syncthreads(); // slotSums complete
            // Combine's order: the residual (or 0), then + weight * sum for slots 0 .. k - 1.
            if (threadIdx.x < columns && c0 + threadIdx.x < hidden)
            {
                const int col = c0 + threadIdx.x;
                float total = residual != nullptr ? residual[(long long)t * hidden + col] : 0.0f;
                for (int j = 0; j < k; j++)
                    total = fmaf(slotWeight[t * k + j], slotSums[j][threadIdx.x], total);
                out[(long long)t * hidden + col] = total;
            }
            __syncthreads();
        }
    }

    MD_STAMP(7);
    // A third arrival: the block that completes it resets the counter (every block has left both barriers by then).
    if (threadIdx.x == 0)
    {
        const unsigned before = atomicAdd(barrier, 1u);
        if (before == 3 * gridDim.x - 1)
            atomicExch(barrier, 0u);
    }
}

#define MD_ENTRY(NAME, TIN)                                                                                                     \
    extern "C" __global__ void __launch_bounds__(MD_WARPS * 32, MD_MIN_BLOCKS) NAME(                                            \
        const TIN* x, const TIN* router, const float* bias, const TIN* gateUp, const TIN* down, const float* residual,          \
        float* logits, int* ids, float* weights, int* counts, TIN* act, float* out, unsigned* barrier, int tokens, int hidden,  \
        int inter, int experts, int k, int renormalize, int grouped, int groupCount, int topkGroups, float scale,              \
        int routerSplit, int gateUpSplit, int downSplit, int downQuads, int prefetchLines MD_TRACE_PARAM)                       \
    {                                                                                                                           \
        moe_wait_prior_grid();                                                                                                  \
        moe_decode<TIN>(x, router, bias, gateUp, down, residual, logits, ids, weights, counts, act, out, barrier, tokens,      \
                        hidden, inter, experts, k, renormalize, grouped, groupCount, topkGroups, scale, routerSplit,            \
                        gateUpSplit, downSplit, downQuads, prefetchLines MD_TRACE_ARG);                                         \
    }

// MD_ONE_DTYPE with MD_DTYPE_<bf16|f16> (the host's build, DTypeBuilds.One): that dtype's entry alone, so a first use
// compiles one of the two (NVRTC took 1.7-2.1 s for both on an H200 machine). Without it, both (the compile tests).
#if !defined(MD_ONE_DTYPE) || defined(MD_DTYPE_bf16)
MD_ENTRY(moe_decode_bf16, bf16)
#endif
#if !defined(MD_ONE_DTYPE) || defined(MD_DTYPE_f16)
MD_ENTRY(moe_decode_f16, f16)
#endif
