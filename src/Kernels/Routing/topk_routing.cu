// topk_routing.cu: fused top-k routing, one warp per token (or two: see _x2 below; a team of 8 lanes; or, for softmax
// over at most 16 experts, one thread), tokens-per-expert counts in the same launch.
//
//   logits:       [tokens, experts]  F32, BF16 or F16 (upcast to F32; all routing math in F32)
//   bias:         [experts] F32, DeepSeek correction bias (grouped mode only; may be null)
//   ids:          [tokens, k] I32, chosen experts in order of decreasing selection key
//   weights:      [tokens, k] F32
//   expertCounts: [experts] I32, tokens per expert (see "Counts" below for what must hold before the launch)
//   workspace:    [experts + 1] I32 or null: count accumulators (one word per expert; the last word is spare), all
//                 zero before the launch; the launch leaves them zero again (so zero it once, when it is allocated)
//
// Variants (runtime flag `grouped`):
//   softmax:  key = logit; weight = softmax(logits)[expert], renormalised over the k when asked.
//   grouped (DeepSeek-V3/R1): score = sigmoid(logit) (its exp is routing_exp: the CPU twin's bits), key = score + bias; experts in groupCount
//             equal groups, a group's score is the sum of its two largest keys; the topkGroups best
//             groups are kept and the k best keys inside them chosen; weight = score (unbiased),
//             divided by (sum of the k scores + 1e-20) when renormalising.
//   Both: weight *= scale (routed scaling factor).
// Grouped scores on the contiguous path: a branch-free reciprocal, bit for bit the division (see reciprocal_fast;
// -DROUTING_SIGMOID_DIVISION, MOE_ROUTING_SIGMOID=division, builds the plain division for A/B).
// Ties break to the lower expert (and group) id. Non-finite logits: NaN counts as -FLT_MAX and
// +-inf as +-FLT_MAX, so every key is finite, ids stay in range and all k ids of a token are distinct.
//
// Two layouts, the same results (the weights of softmax without renormalising excepted: each layout sums the denominator
// in its own order, 1-2 ulp apart):
// Contiguous (the fast path): lane l holds experts [l * P, (l + 1) * P), P = experts / 32; used when experts is 32 * P
// (32, 64, 128, 256; not 512, whose 16 sorted entries per lane spill under the 64-register bound), the logits are
// 16-byte aligned and (grouped) groupCount is a power of two, so that a group is whole adjacent lanes. Most work is
// lane-local; see "The contiguous layout" below.
// A token per thread (softmax, experts <= 16, e.g. Mixtral's E=8, from 8192 tokens by default, MOE_ROUTING_THREAD_PER_TOKEN;
// not when the strided layout is forced): a thread holds its token's row; the strided path's results to the bit (see topk_routing_thread).
// Strided (every other shape, e.g. E=96, grouped E=16, 3 or 6 groups; and on request, MOE_ROUTING_LAYOUT=strided): expert
// e = i * 32 + lane lives in slot i of lane (e % 32), as an order key (the float's bits mapped so that unsigned order
// is float order; 0 = removed, below every finite key). One argmax round is
// a warp max of the keys, then a warp min of the ids holding that max (redux.sync on sm_80+), so ties go
// to the lower id. Group scores when a group is exactly one slot (group size 32: DeepSeek-V3's 256 / 8)
// come from warp reductions too; other group sizes scan the group's keys in shared memory. The kept groups are
// found in one step (each group counts the groups ahead of it), and a chosen expert's grouped weight comes from
// the logit already in a lane's registers (a shuffle), not a second read of the row.
//
// Counts: each block keeps a shared-memory histogram over the tokens it routes, then
//   grid of one block:   writes expertCounts directly (nothing needs zeroing);
//   workspace given:     adds (1 << 21) + its count into workspace[e] for every expert e (an arrival above bit
//                        21, the count below); the block that brings e's arrivals to the grid size sees the total
//                        in the value its atomicAdd returns, writes expertCounts[e] and re-zeroes workspace[e]
//                        (needs tokens < 2^21 and grid < 2^11; workspace[experts] is not used and stays zero);
//   neither:             adds its histogram into expertCounts, which must be zeroed before the launch.
//
// Entries topk_routing_{f32,bf16,f16}_{1,2,4,8,16} (strided), topk_routing_contiguous_{f32,bf16,f16}_{1,2,4,8} and
// topk_routing_contiguous_x2_{f32,bf16,f16}_{1,2,4,8} (two tokens per warp, their dependency chains interleaved: used
// for many tokens, where the one-token kernel is latency-bound; bit-identical results): the suffix is the expert
// slots per lane, the smallest power of two >= ceil(experts / 32), so that small expert counts do not pay for 512.
// topk_routing_contiguous_x2p_{f32_4,f32_8,bf16_8,f16_8} (persistent: two tokens per warp, warps looping over pairs
// with the next pair's rows staged into shared memory by cp.async while the current pair is routed; blocks of
// ROUTING_PERSISTENT_WARPS warps; bit-identical results; see stage_pair).
// topk_routing_teams_{f32,bf16,f16} (DeepSeek-V3's shape at many tokens: 8 lanes a token, a group of 32 experts a lane,
// four tokens a warp, the choices by rank among the few candidates; bit-identical results; see topk_routing_teams;
// blocks of up to ROUTING_TEAM_WARPS warps).
// topk_routing_thread_{f32,bf16,f16}_{4,8,16} (softmax, experts <= the suffix: a thread a token, its row's logits, keys
// and exps in registers, vector loads where rows are whole and aligned; blocks of 32 to ROUTING_THREAD_BLOCK threads,
// a whole number of warps, any grid >= 1; bit-identical results; see topk_routing_thread).
// Launch: block = 32 * w threads, w <= ROUTING_WARPS, any grid >= 1 (warps stride over tokens; the op caps the
// grid at about 32 warps per SM so that few blocks add histograms); no dynamic shared memory. Constraints (checked by
// TopKRouting.cs): experts <= 512, 1 <= k <= min(16, experts), groupCount <= 32, experts % groupCount == 0,
// experts / groupCount >= 2, topkGroups * groupSize >= k.
// dependent-launch: every entry calls moe_wait_prior_grid() first (moe_common.cuh), so it may overlap the kernel before it.
#include "moe_common.cuh"

#define ROUTING_WARPS 16
#define ROUTING_MAX_EXPERTS 512
// Workspace word of an expert: arrivals (blocks done) above ROUTING_COUNT_BITS, tokens counted below.
#define ROUTING_COUNT_BITS 21
#define ROUTING_ARRIVAL (1u << ROUTING_COUNT_BITS)

#include "routing_token.cuh"

// The persistent two-token path (topk_routing_contiguous_x2p_*): a warp loops over token pairs, and while it routes one
// pair the next pair's rows are already on their way into shared memory (cp.async, 16 bytes a lane at a time), so the
// loads of trip n + 1 overlap the compute of trip n instead of every warp loading, then computing, in lockstep. Each
// warp owns two stage buffers (double buffering: the buffer being filled is never the one just read). A lane stages
// and reads back only its own bytes, so no warp synchronisation is needed around the buffers. Stage layout of one
// buffer: 16-byte chunk (t, v, lane) at ((t * chunks + v) * 32 + lane) * 16 (a warp's read of one chunk index is 512
// contiguous bytes: no bank conflicts).
#define ROUTING_PERSISTENT_WARPS 8

// Stage buffers are addressed by 32-bit shared-window addresses (not generic pointers: two registers fewer, which keeps
// the F32 E=256 entry from spilling).
// 16 bytes global -> shared without passing through registers (cp.async, sm_80+; a plain copy before).
__device__ __forceinline__ void copy16_async(unsigned shared, const void* global)
{
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16;" ::"r"(shared), "l"(global) : "memory");
#else
    const uint4 chunk = *reinterpret_cast<const uint4*>(global);
    asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};" ::"r"(shared), "r"(chunk.x), "r"(chunk.y), "r"(chunk.z),
                 "r"(chunk.w) : "memory");
#endif
}

__device__ __forceinline__ uint4 load16_shared(unsigned shared)
{
    uint4 chunk;
    asm volatile("ld.shared.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(chunk.x), "=r"(chunk.y), "=r"(chunk.z), "=r"(chunk.w)
                 : "r"(shared) : "memory");
    return chunk;
}

__device__ __forceinline__ void copy_async_commit()
{
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void copy_async_wait()
{
#if __CUDA_ARCH__ >= 800
    asm volatile("cp.async.wait_group %0;" ::"n"(pending) : "memory");
#endif
}

// Starts the copy of the lane's share of tokens `token` and `token + 1` (those below `tokens`) into `stage`.
// `logits`: rows of 32 * P elements, 16-byte aligned; P * sizeof(T) a multiple of 16.
template <typename T, int P>
__device__ __forceinline__ void stage_pair(unsigned stage, const T* __restrict__ logits, int token, int tokens, int lane)
{
    constexpr int chunks = P * (int)sizeof(T) / 16;
    static_assert(chunks >= 1 && chunks * 16 == P * (int)sizeof(T), "the persistent path stages whole 16-byte chunks");
#pragma unroll
    for (int t = 0; t < 2; t++)
        if (token + t < tokens)
        {
            const unsigned char* mine = reinterpret_cast<const unsigned char*>(logits + (long long)(token + t) * 32 * P + lane * P);
#pragma unroll
            for (int v = 0; v < chunks; v++)
                copy16_async(stage + ((t * chunks + v) * 32 + lane) * 16, mine + v * 16);
        }
}

// The lane's P logits of both tokens from `stage` (as load_contiguous unpacks them); an absent token stays zeros.
template <typename T, int P>
__device__ __forceinline__ void unstage_pair(unsigned stage, int token, int tokens, int lane, T (&logit)[2][P])
{
    constexpr int chunks = P * (int)sizeof(T) / 16;
#pragma unroll
    for (int t = 0; t < 2; t++)
    {
        moe_u32 word[chunks * 4];
#pragma unroll
        for (int v = 0; v < chunks; v++)
        {
            const uint4 chunk = load16_shared(stage + ((t * chunks + v) * 32 + lane) * 16);
            word[4 * v] = chunk.x;
            word[4 * v + 1] = chunk.y;
            word[4 * v + 2] = chunk.z;
            word[4 * v + 3] = chunk.w;
        }
        const bool present = token + t < tokens;
#pragma unroll
        for (int i = 0; i < P; i++)
        {
            if constexpr (sizeof(T) == 4)
                logit[t][i] = __uint_as_float(present ? word[i] : 0u);
            else
                logit[t][i].bits = present ? (moe_u16)(word[i / 2] >> (16 * (i % 2))) : (moe_u16)0;
        }
    }
}

// Counts after the block's tokens are routed and `histogram` is complete (after __syncthreads): see "Counts" in the
// header for the three cases.
__device__ __forceinline__ void write_counts(
    const int* histogram, int experts, int* __restrict__ expertCounts, int* __restrict__ workspace)
{
    if (gridDim.x == 1)
    {
        for (int e = threadIdx.x; e < experts; e += blockDim.x)
            expertCounts[e] = histogram[e];
        return;
    }
    if (workspace == nullptr)
    {
        for (int e = threadIdx.x; e < experts; e += blockDim.x)
            if (histogram[e] != 0)
                atomicAdd(&expertCounts[e], histogram[e]);
        return;
    }

    // Every block adds (one arrival, its count) to every expert's word; the block whose add completes the
    // arrivals has the total in the returned value: it writes the count and re-zeroes the word. One atomic round
    // trip, no fence and no ticket.
    unsigned* packed = reinterpret_cast<unsigned*>(workspace);
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
    {
        unsigned before = atomicAdd(&packed[e], ROUTING_ARRIVAL + (unsigned)histogram[e]);
        if ((before >> ROUTING_COUNT_BITS) == gridDim.x - 1)
        {
            expertCounts[e] = (int)((before & (ROUTING_ARRIVAL - 1)) + (unsigned)histogram[e]);
            packed[e] = 0;
        }
    }
}

// PER_LANE: expert slots per lane (1, 2, 4, 8 or 16, at least ceil(experts / 32)); loops over it unroll.
// CONTIGUOUS: the fast layout (experts == 32 * PER_LANE, 16-byte aligned logits, groupCount a power of two).
// TOKENS_PER_WARP: 1, or 2 (contiguous only): a warp routes tokens 2w and 2w + 1 together (the second absent when
// tokens is odd and 2w + 1 == tokens).
// PERSISTENT (two tokens, contiguous, PER_LANE * sizeof(T) a multiple of 16): the pairs are staged through shared memory
// one trip ahead (stage_pair); the same routing of each pair, so the same results.
template <typename T, int PER_LANE, bool CONTIGUOUS, int TOKENS_PER_WARP, bool PERSISTENT = false>
__device__ __forceinline__ void topk_routing(
    const T* __restrict__ logits, const float* __restrict__ bias, int tokens, int experts, int k,
    int renormalize, int grouped, int groupCount, int topkGroups, float scale,
    int* __restrict__ ids, float* __restrict__ weights, int* __restrict__ expertCounts, int* __restrict__ workspace)
{
    constexpr int NT = TOKENS_PER_WARP;
    static_assert(NT == 1 || (NT == 2 && CONTIGUOUS), "two tokens per warp: contiguous layout only");
    static_assert(!PERSISTENT || NT == 2, "the persistent path routes two tokens per warp");
    __shared__ int histogram[ROUTING_MAX_EXPERTS];
    // The persistent path's two stage buffers per warp, each two tokens' rows (the other paths need none).
    constexpr int stageBytes = 2 * 32 * PER_LANE * (int)sizeof(T);
    __shared__ __align__(16) unsigned char stage[PERSISTENT ? ROUTING_PERSISTENT_WARPS : 1][PERSISTENT ? 2 * stageBytes : 16];
    // The strided path's shared keys for groups other than one slot (the contiguous path needs none).
    __shared__ float fallbackKeys[CONTIGUOUS ? 1 : ROUTING_WARPS][CONTIGUOUS ? 1 : ROUTING_MAX_EXPERTS];
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int warps = blockDim.x / 32;
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
        histogram[e] = 0;
    __syncthreads();

    // Warps stride over tokens (a whole warp takes the same trip count: only warp-level synchronisation inside).
    // One token per warp: the next token's logits load while this one is routed. Two: both tokens' loads are issued
    // together at the top of the trip (at the sizes it is used for, most warps make one trip).
    const int stride = gridDim.x * warps * NT;
    int token = (blockIdx.x * warps + warp) * NT;
    T logit[PER_LANE] = {};
    // Contiguous path: the lane's bias values, zeros when there is none. One token per warp: read once, kept in
    // registers for every token. Two: re-read each trip (an L1 hit), so that they are not live through the picks.
    auto loadBias = [&](float (&into)[PER_LANE])
    {
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            into[i] = 0.0f;
        if (CONTIGUOUS && grouped && bias != nullptr)
        {
#pragma unroll
            for (int i = 0; i < PER_LANE; i++)
                into[i] = bias[lane * PER_LANE + i];
        }
    };
    float laneBias[PER_LANE];
    if constexpr (NT == 1)
        loadBias(laneBias);
    auto load = [&](int t, T (&into)[PER_LANE])
    {
        if constexpr (CONTIGUOUS)
            load_contiguous<T, PER_LANE>(logits + (long long)t * experts, lane, into);
        else
            load_row<T, PER_LANE>(logits + (long long)t * experts, experts, lane, into);
    };
    if (NT == 1 && token < tokens)
        load(token, logit);
    const unsigned stageOfWarp = (unsigned)__cvta_generic_to_shared(stage[PERSISTENT ? warp : 0]);
    if constexpr (PERSISTENT)
    {
        if (token < tokens)
            stage_pair<T, PER_LANE>(stageOfWarp, logits, token, tokens, lane);
        copy_async_commit();
    }
    for (int trip = 0; token < tokens; token += stride, trip++)
    {
        T current[NT][PER_LANE] = {}; // an absent second token stays zeros: routed (warp-uniform work), not stored
        if constexpr (PERSISTENT)
        {
            // The next pair into the other buffer (read last trip, routed since), then wait for this pair's group.
            if (token + stride < tokens)
                stage_pair<T, PER_LANE>(stageOfWarp + ((trip + 1) & 1) * stageBytes, logits, token + stride, tokens, lane);
            copy_async_commit(); // possibly empty: every trip commits one group, so "all but the newest" is this pair
            copy_async_wait<1>();
            unstage_pair<T, PER_LANE>(stageOfWarp + (trip & 1) * stageBytes, token, tokens, lane, current);
            loadBias(laneBias);
        }
        else if constexpr (NT == 1)
        {
#pragma unroll
            for (int i = 0; i < PER_LANE; i++)
                current[0][i] = logit[i];
            if (token + stride < tokens)
                load(token + stride, logit);
        }
        else
        {
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (token + t < tokens)
                    load(token + t, current[t]);
            loadBias(laneBias);
        }
        int expert[NT];
        float weight[NT];
        if constexpr (CONTIGUOUS)
        {
            const T* rows[NT];
#pragma unroll
            for (int t = 0; t < NT; t++)
                rows[t] = logits + (long long)(token + t < tokens ? token + t : token) * experts;
            route_tokens_contiguous<T, PER_LANE, NT>(current, rows, laneBias, k, renormalize, grouped, groupCount,
                                                     topkGroups, lane, expert, weight);
        }
        else
            route_token<T, PER_LANE>(current[0], bias, experts, k, renormalize, grouped, groupCount, topkGroups,
                                     fallbackKeys[warp], lane, expert[0], weight[0]);
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (lane < k && token + t < tokens)
            {
                long long slot = (long long)(token + t) * k + lane;
                ids[slot] = expert[t];
                weights[slot] = weight[t] * scale;
                atomicAdd(&histogram[expert[t]], 1);
            }
    }
    __syncthreads();
    write_counts(histogram, experts, expertCounts, workspace);
}

// ---- Token teams (topk_routing_teams_*: DeepSeek-V3's shape at many tokens) ----
// Eight lanes route one token, four tokens a warp: team lane g holds group g (experts [32g, 32g + 32), 128 or 64
// contiguous bytes of the row) as 32 order keys, so the group's top 2 and score are lane-local (no shuffles). The kept
// groups come from 8 shuffles inside the team. Selection by rank instead of k argmax rounds: every kept group has >= 2
// keys at or above its second largest, so at least 2 * topkGroups >= k candidates reach `bound`, the smallest second
// key of the kept groups, and every chosen expert is at or above it; those few (about 10 of 128 for random logits, all
// 128 when everything ties) go to shared memory as (key, ~id) words, and a candidate's place in (key descending, id
// ascending) order is the number of candidate words above its own. The candidate at place j < k is choice j. Warp-wide
// steps serve four tokens at once, and nothing is sorted. Same keys (sigmoid_fast and its redo), group scores, kept
// groups, tie rule and weights (the same butterfly sum, whose lanes >= 8 only added zeros) as the contiguous path: the
// same bits. The row reaches the team through shared memory: its 8 lanes copy it coalesced (cp.async, one 128-byte
// line an instruction, not 32 lines of 16 bytes) and read their groups back; the bias is staged sanitised once a block.
// SASS on the common path (sm_90, F32, one warp trip = 4 tokens, the rank loop's body once): about 1310 instructions
// (the 32 keys 541 with 64 MUFU, their top two 95, staging 64, candidates about 215) against about 1840 before route6
// (keys 840, top two 190, branchy candidates up to 400).
// Shape: experts 256, 8 groups, k <= 8, topkGroups <= 4 (<= 128 candidates), 2 * topkGroups >= k; logits
// and bias 16-byte aligned (TopKRouting.UsesTeamPath checks).
#define ROUTING_TEAM_WARPS 8
#define ROUTING_TEAM_CANDIDATES 128
// A team's shared words: the candidates, its k picks (8 ints = 4 words), two words of padding so that every team starts
// 16-byte aligned (the row is staged there first) and the four teams of a warp start on different banks (134 words =
// 268 banks apart: 0, 12, 24, 4).
#define ROUTING_TEAM_WORDS (ROUTING_TEAM_CANDIDATES + 4 + 2)

// Where 16-byte chunk c of a staged row (1 KB in F32: chunks 0-63; 512 B in BF16/F16: 0-31) or of the staged bias lives:
// chunk c ^ ((c / 8) % 8), a permutation inside every 8 chunks (128 bytes, all 32 banks). A team's 8 lanes copy chunks
// 8v + g (one 128-byte line an instruction: coalesced) and read back chunks g * C + u (C = 8 or 4 chunks a lane),
// and neither access has two lanes of a team in one bank group: the XOR spreads the lanes' stride of C chunks.
__device__ __forceinline__ int team_chunk(int c) { return c ^ ((c >> 3) & 7); }

// Order key of score + bias where the bias is sanitised and the score in [+0, 1] (never -0): the sum is finite, never
// NaN, never -0, so order_key(sanitize(score + bias)) is this (the sum of a score and a sanitised bias equals the sum
// of the score and the raw bias sanitised: a score <= 1 is below half an ulp of FLT_MAX, so +-inf and NaN biases give
// +-FLT_MAX either way; -0 needs both terms -0).
__device__ __forceinline__ moe_u32 team_key(float sum)
{
    const moe_u32 bits = __float_as_uint(sum);
    return bits ^ ((moe_u32)((int)bits >> 31) | 0x80000000u);
}

// The lane's 32 logits (group `group` of the row staged at `stage`, see team_chunk).
template <typename T>
__device__ __forceinline__ void team_logits(unsigned stage, int group, T (&logit)[32])
{
    constexpr int chunks = 32 * (int)sizeof(T) / 16;
#pragma unroll
    for (int u = 0; u < chunks; u++)
    {
        const uint4 chunk = load16_shared(stage + team_chunk(group * chunks + u) * 16);
        const moe_u32 word[4] = {chunk.x, chunk.y, chunk.z, chunk.w};
#pragma unroll
        for (int w = 0; w < 4; w++)
        {
            if constexpr (sizeof(T) == 4)
                logit[4 * u + w] = __uint_as_float(word[w]);
            else
            {
                logit[8 * u + 2 * w].bits = (moe_u16)(word[w] & 0xffffu); // little-endian: the lower half first
                logit[8 * u + 2 * w + 1].bits = (moe_u16)(word[w] >> 16);
            }
        }
    }
}

// The lane's 32 keys from its logits and the sanitised bias staged at `biasStage` (see team_chunk). `exact`: every fast
// sigmoid was the division's bits. The logit is not sanitised first: a NaN or -inf logit makes 1 + exp(-x) NaN or inf
// (not exact: redone), +inf makes it 1 or NaN (1 is sigmoid(FLT_MAX)'s bits), and a finite one is its own sanitised value.
template <typename T, bool FAST>
__device__ __forceinline__ void team_keys(const T (&logit)[32], unsigned biasStage, int group, moe_u32 (&key)[32], bool& exact)
{
    exact = true;
#pragma unroll
    for (int v = 0; v < 8; v++)
    {
        const uint4 b = load16_shared(biasStage + team_chunk(group * 8 + v) * 16);
        const float laneBias[4] = {__uint_as_float(b.x), __uint_as_float(b.y), __uint_as_float(b.z), __uint_as_float(b.w)};
#pragma unroll
        for (int i = 0; i < 4; i++)
        {
            if constexpr (FAST)
            {
                bool slotExact = true;
                const float score = sigmoid_fast(to_float(logit[4 * v + i]), slotExact);
                exact = exact && slotExact;
                key[4 * v + i] = team_key(score + laneBias[i]);
            }
            else
            {
                key[4 * v + i] = team_key(sigmoid(sanitize(to_float(logit[4 * v + i]))) + laneBias[i]);
            }
        }
    }
}

// The group's two largest keys (a repeated largest counts twice): the top two of every 4 keys, merged into the running
// two (a chain of 8 merges, not of 32 steps).
__device__ __forceinline__ void team_top_two(const moe_u32 (&key)[32], moe_u32& top, moe_u32& second)
{
    top = 0;
    second = 0;
#pragma unroll
    for (int v = 0; v < 8; v++)
    {
        const moe_u32 hi0 = max(key[4 * v], key[4 * v + 1]), lo0 = min(key[4 * v], key[4 * v + 1]);
        const moe_u32 hi1 = max(key[4 * v + 2], key[4 * v + 3]), lo1 = min(key[4 * v + 2], key[4 * v + 3]);
        const moe_u32 blockTop = max(hi0, hi1), blockSecond = max(min(hi0, hi1), max(lo0, lo1));
        second = max(max(second, blockSecond), min(top, blockTop));
        top = max(top, blockTop);
    }
}

template <typename T>
__device__ __forceinline__ void topk_routing_teams(
    const T* __restrict__ logits, const float* __restrict__ bias, int tokens, int k, int renormalize, int topkGroups,
    float scale, int* __restrict__ ids, float* __restrict__ weights, int* __restrict__ expertCounts,
    int* __restrict__ workspace)
{
    constexpr int experts = 256;
    constexpr int chunks = 32 * (int)sizeof(T) / 16; // 16-byte chunks of a lane's group
    __shared__ int histogram[experts];
    __shared__ __align__(16) float biasStage[experts]; // sanitised, chunks placed by team_chunk; zeros without a bias
    __shared__ __align__(16) moe_u64 teamWords[ROUTING_TEAM_WARPS * 4][ROUTING_TEAM_WORDS];
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int team = lane / 8;
    const int group = lane % 8; // the team lane
    const int warps = blockDim.x / 32;
    moe_u64* candidates = teamWords[warp * 4 + team];
    int* picks = reinterpret_cast<int*>(candidates + ROUTING_TEAM_CANDIDATES);
    const unsigned stage = (unsigned)__cvta_generic_to_shared(candidates); // the row, before the candidates
    const unsigned biasAt = (unsigned)__cvta_generic_to_shared(biasStage);
    for (int e = threadIdx.x; e < experts; e += blockDim.x)
    {
        histogram[e] = 0;
        biasStage[team_chunk(e / 4) * 4 + e % 4] = bias != nullptr ? sanitize(bias[e]) : 0.0f;
    }
    __syncthreads();

    // Warps stride over groups of four tokens (every lane of a warp takes the same trips: the shuffles span the warp).
    const int stride = gridDim.x * warps * 4;
    for (int first = (blockIdx.x * warps + warp) * 4; first < tokens; first += stride)
    {
        const int token = first + team;
        const bool present = token < tokens;
        const T* row = logits + (long long)(present ? token : first) * experts; // an absent token routes a real row, unstored
        // The row into the team's words, coalesced (lane g copies chunks 8v + g), then the lane's group out of them.
        __syncwarp(); // the previous trip's reads of `candidates` and `picks` are done
#pragma unroll
        for (int v = 0; v < chunks; v++) // the row is 8 * chunks chunks
            copy16_async(stage + team_chunk(8 * v + group) * 16, reinterpret_cast<const uint4*>(row) + 8 * v + group);
        copy_async_commit();
        copy_async_wait<0>();
        __syncwarp();
        moe_u32 key[32];
        {
            T logit[32];
            team_logits<T>(stage, group, logit);
            bool exact;
#ifdef ROUTING_SIGMOID_DIVISION
            team_keys<T, false>(logit, biasAt, group, key, exact);
#else
            team_keys<T, true>(logit, biasAt, group, key, exact);
            if (!exact) // rare (a score below 2^-126, a non-finite logit): the lane's keys again with the division
            {
                const T* again = row;
                asm volatile("" : "+l"(again)); // a fresh read: the first one's registers are not kept for this
                load_contiguous<T, 32>(again, group, logit);
                const float* biasAgain = bias;
#pragma unroll
                for (int i = 0; i < 32; i++)
                    key[i] = team_key(sigmoid(sanitize(to_float(logit[i]))) +
                                      (biasAgain != nullptr ? sanitize(biasAgain[group * 32 + i]) : 0.0f));
            }
#endif
        }
        moe_u32 top, second;
        team_top_two(key, top, second);
        // The group's score from its two largest keys, summed as the twin sums.
        const moe_u32 groupKey = order_key(order_value(top) + order_value(second));
        // Kept: fewer than topkGroups groups ahead (score descending, id ascending).
        int ahead = 0;
#pragma unroll
        for (int j = 0; j < 8; j++)
        {
            const moe_u32 other = __shfl_sync(0xffffffffu, groupKey, j, 8);
            ahead += (other > groupKey || (other == groupKey && j < group)) ? 1 : 0;
        }
        const bool kept = ahead < topkGroups;
        moe_u32 bound = kept ? second : 0xffffffffu;
#pragma unroll
        for (int offset = 4; offset > 0; offset >>= 1)
            bound = min(bound, __shfl_xor_sync(0xffffffffu, bound, offset, 8));
        // Keys are sanitised (at most FLT_MAX's key, 0xff7fffff), so a group that is not kept has no candidate.
        const moe_u32 limit = kept ? bound : 0xffffffffu;
        int count = 0;
#pragma unroll
        for (int i = 0; i < 32; i++)
            count += key[i] >= limit ? 1 : 0;
        int offset = count; // inclusive scan over the team's lanes, then exclusive
#pragma unroll
        for (int d = 1; d < 8; d *= 2)
        {
            const int below = __shfl_up_sync(0xffffffffu, offset, d, 8);
            if (group >= d)
                offset += below;
        }
        const int candidateCount = __shfl_sync(0xffffffffu, offset, 7, 8);
        offset -= count;
        __syncwarp(); // every lane's reads of the staged row are done
        moe_u64* slot = candidates + offset; // a running pointer: no address arithmetic a candidate
        unsigned lowestId = ~(unsigned)(group * 32); // ~(group * 32 + i) = lowestId - i
        asm("" : "+r"(lowestId)); // one register, not rebuilt from `group` for every slot
#pragma unroll
        for (int i = 0; i < 32; i++)
            if (key[i] >= limit)
                *slot++ = ((moe_u64)key[i] << 32) | (lowestId - i);
        __syncwarp();

        // Places: lane g ranks candidates g and g + 8 of each 16 against all of the team's (the words are distinct).
        // The loop bounds differ between the warp's teams; nothing inside synchronises.
        for (int chunk = 0; chunk < candidateCount; chunk += 16)
        {
            const int a = chunk + group, b = a + 8;
            const moe_u64 mineA = a < candidateCount ? candidates[a] : ~0ull;
            const moe_u64 mineB = b < candidateCount ? candidates[b] : ~0ull;
            int placeA = 0, placeB = 0;
            for (int c = 0; c < candidateCount; c++)
            {
                const moe_u64 other = candidates[c];
                placeA += other > mineA ? 1 : 0;
                placeB += other > mineB ? 1 : 0;
            }
            if (a < candidateCount && placeA < k)
                picks[placeA] = (int)~(moe_u32)mineA;
            if (b < candidateCount && placeB < k)
                picks[placeB] = (int)~(moe_u32)mineB;
        }
        __syncwarp();

        // Team lane j < k: choice j, its unbiased score from its logit read again (an L1/L2 hit).
        int expert = 0;
        float weight = 0.0f;
        if (group < k)
        {
            expert = picks[group];
            weight = sigmoid(sanitize(to_float(row[expert])));
        }
        if (renormalize)
        {
            float total = weight;
#pragma unroll
            for (int o = 4; o > 0; o >>= 1)
                total += __shfl_xor_sync(0xffffffffu, total, o, 8);
            weight = weight / (total + 1e-20f);
        }
        if (present && group < k)
        {
            const long long slot = (long long)token * k + group;
            ids[slot] = expert;
            weights[slot] = weight * scale;
            atomicAdd(&histogram[expert], 1);
        }
    }
    __syncthreads();
    write_counts(histogram, experts, expertCounts, workspace);
}

// Every entry is bounded to 64 registers (2 blocks of ROUTING_WARPS warps: 32 warps an SM); the two-token entries
// fit without spilling (ptxas, sm_80/sm_90) because no per-expert value outlives the keys.
#define ROUTING_ENTRY(NAME, T, PER_LANE, CONTIGUOUS, TOKENS_PER_WARP)                                        \
    extern "C" __global__ void __launch_bounds__(32 * ROUTING_WARPS, 2) NAME(                                  \
        const T* logits, const float* bias, int tokens, int experts, int k, int renormalize, int grouped,     \
        int groupCount, int topkGroups, float scale, int* ids, float* weights, int* expertCounts, int* workspace) \
    {                                                                                                        \
        moe_wait_prior_grid();                                                                                 \
        topk_routing<T, PER_LANE, CONTIGUOUS, TOKENS_PER_WARP>(logits, bias, tokens, experts, k, renormalize,  \
            grouped, groupCount, topkGroups, scale, ids, weights, expertCounts, workspace);                   \
    }

// Persistent entries: blocks of ROUTING_PERSISTENT_WARPS warps (their stage buffers are static shared memory, under
// 48 KB a block), 4 blocks an SM: the same 32 warps an SM and 64-register bound.
#define ROUTING_PERSISTENT_ENTRY(NAME, T, PER_LANE)                                                          \
    extern "C" __global__ void __launch_bounds__(32 * ROUTING_PERSISTENT_WARPS, 4) NAME(                        \
        const T* logits, const float* bias, int tokens, int experts, int k, int renormalize, int grouped,     \
        int groupCount, int topkGroups, float scale, int* ids, float* weights, int* expertCounts, int* workspace) \
    {                                                                                                        \
        moe_wait_prior_grid();                                                                                 \
        topk_routing<T, PER_LANE, true, 2, true>(logits, bias, tokens, experts, k, renormalize, grouped,       \
            groupCount, topkGroups, scale, ids, weights, expertCounts, workspace);                            \
    }

#define ROUTING_ENTRIES_OF(SUFFIX, T, PER_LANE)                                                               \
    ROUTING_ENTRY(topk_routing_##SUFFIX##_##PER_LANE, T, PER_LANE, false, 1)           \
    ROUTING_ENTRY(topk_routing_contiguous_##SUFFIX##_##PER_LANE, T, PER_LANE, true, 1) \
    ROUTING_ENTRY(topk_routing_contiguous_x2_##SUFFIX##_##PER_LANE, T, PER_LANE, true, 2)

// One logits dtype and one group of entries a build: the host defines ROUTING_ONE_DTYPE and ROUTING_DTYPE_<f32|bf16|f16>,
// and ROUTING_ONE_GROUP and ROUTING_GROUP_<group>, so a first use compiles the few entries a call can take (a dtype's
// entries took 6.7-9.4 s by NVRTC 13 on the H200 machine's host, all of them 27 s). The groups: lanes<1|2|4|8|16> (the
// warp entries of that many expert slots a lane: strided, contiguous and two-token), persistent, teams, thread.
// Neither macro pair: every entry.
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_lanes1)
#define ROUTING_LANES_1(SUFFIX, T) ROUTING_ENTRIES_OF(SUFFIX, T, 1)
#else
#define ROUTING_LANES_1(SUFFIX, T)
#endif
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_lanes2)
#define ROUTING_LANES_2(SUFFIX, T) ROUTING_ENTRIES_OF(SUFFIX, T, 2)
#else
#define ROUTING_LANES_2(SUFFIX, T)
#endif
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_lanes4)
#define ROUTING_LANES_4(SUFFIX, T) ROUTING_ENTRIES_OF(SUFFIX, T, 4)
#else
#define ROUTING_LANES_4(SUFFIX, T)
#endif
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_lanes8)
#define ROUTING_LANES_8(SUFFIX, T) ROUTING_ENTRIES_OF(SUFFIX, T, 8)
#else
#define ROUTING_LANES_8(SUFFIX, T)
#endif
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_lanes16)
#define ROUTING_LANES_16(SUFFIX, T) ROUTING_ENTRY(topk_routing_##SUFFIX##_16, T, 16, false, 1)
#else
#define ROUTING_LANES_16(SUFFIX, T)
#endif

#define ROUTING_ENTRIES(SUFFIX, T) \
    ROUTING_LANES_1(SUFFIX, T)     \
    ROUTING_LANES_2(SUFFIX, T)     \
    ROUTING_LANES_4(SUFFIX, T)     \
    ROUTING_LANES_8(SUFFIX, T)     \
    ROUTING_LANES_16(SUFFIX, T)

#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f32)
ROUTING_ENTRIES(f32, float)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_bf16)
ROUTING_ENTRIES(bf16, bf16)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f16)
ROUTING_ENTRIES(f16, f16)
#endif

// Persistent two-token entries where a lane's share is whole 16-byte chunks (E = 128, 256 in F32; E = 256 in BF16/F16).
#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_persistent)
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f32)
ROUTING_PERSISTENT_ENTRY(topk_routing_contiguous_x2p_f32_4, float, 4)
ROUTING_PERSISTENT_ENTRY(topk_routing_contiguous_x2p_f32_8, float, 8)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_bf16)
ROUTING_PERSISTENT_ENTRY(topk_routing_contiguous_x2p_bf16_8, bf16, 8)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f16)
ROUTING_PERSISTENT_ENTRY(topk_routing_contiguous_x2p_f16_8, f16, 8)
#endif
#endif

// Token-team entries (DeepSeek-V3's shape at many tokens; see topk_routing_teams): blocks of ROUTING_TEAM_WARPS warps,
// 4 blocks an SM (36 KB of shared memory a block): 32 warps an SM, the 64-register bound.
#define ROUTING_TEAM_ENTRY(NAME, T)                                                                          \
    extern "C" __global__ void __launch_bounds__(32 * ROUTING_TEAM_WARPS, 4) NAME(                             \
        const T* logits, const float* bias, int tokens, int experts, int k, int renormalize, int grouped,     \
        int groupCount, int topkGroups, float scale, int* ids, float* weights, int* expertCounts, int* workspace) \
    {                                                                                                        \
        moe_wait_prior_grid();                                                                                \
        topk_routing_teams<T>(logits, bias, tokens, k, renormalize, topkGroups, scale, ids, weights,          \
            expertCounts, workspace);                                                                         \
    }

#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_teams)
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f32)
ROUTING_TEAM_ENTRY(topk_routing_teams_f32, float)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_bf16)
ROUTING_TEAM_ENTRY(topk_routing_teams_bf16, bf16)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f16)
ROUTING_TEAM_ENTRY(topk_routing_teams_f16, f16)
#endif
#endif

// ---- A token per thread (topk_routing_thread_*: softmax routing over few experts, e.g. Mixtral's E=8) ----
// Each thread routes one token with its row in registers: no shuffles, and every lane busy (the strided path keeps
// E of 32 lanes busy and chains warp reductions per token). SLOTS (4, 8 or 16) >= experts; slots >= experts hold key 0
// (removed) and exp 0. The same values as the strided path's route_token, to the bit:
// - keys order_key(sanitize(x)); the row max is the largest key, exps expf(value - max) (its expression);
// - sums as its warp_sum butterfly forms them (xor 16, 8, 4, 2, 1; lane e holds expert e's exp, lanes >= experts 0):
//   every lane ends with the same bits (a + b = b + a), so take lane 0's: sum_tree over 32 values; those from 16 on are
//   zeros, and x + 0 = x for the exps (>= 0, never NaN), so the xor-16 step changes nothing (nor, for SLOTS < 16, the
//   steps that pair slots >= SLOTS) and the tree over SLOTS values, zeros from `experts` on, is the same sum; the renormalising sum is that tree over the k chosen weights in
//   choice order (lane j held choice j, lanes >= k 0);
// - choices: k rounds of argmax over keys, strict > in increasing expert order (the lowest id among equal keys, as
//   warp max then warp min of the holders' ids), the chosen key then 0.
// Counts: per expert a ballot over the warp's tokens and one shared atomic (lane e for expert e), then write_counts.
// Why few experts only: a thread holds ~3 * SLOTS values (sm_90: 46 / 56 / 87 registers for 4 / 8 / 16 slots, no
// spills) and pays k * SLOTS compare-selects a token; 17 to 31 experts would need 32 slots (~130 values, k up to 16 rounds
// of 32), and from E = 32 the contiguous warp layouts hold 1-8 experts a lane with every lane busy.
#define ROUTING_THREAD_BLOCK 128

// The butterfly's sum as lane 0 forms it, over the first 2 * HALF values: pairs (i, i + HALF), then their pairs, ...
// (a template step a level, so that every index is a constant and the values stay in registers).
template <int HALF, int N>
__device__ __forceinline__ float sum_tree(float (&v)[N])
{
    if constexpr (HALF == 0)
        return v[0];
    else
    {
#pragma unroll
        for (int i = 0; i < HALF; i++)
            v[i] = v[i] + v[i + HALF];
        return sum_tree<HALF / 2, N>(v);
    }
}

template <typename T, int SLOTS>
__device__ __forceinline__ void topk_routing_thread(
    const T* __restrict__ logits, int tokens, int experts, int k, int renormalize, float scale,
    int* __restrict__ ids, float* __restrict__ weights, int* __restrict__ expertCounts, int* __restrict__ workspace)
{
    __shared__ int histogram[SLOTS];
    const int lane = threadIdx.x % 32;
    if (threadIdx.x < SLOTS)
        histogram[threadIdx.x] = 0;
    __syncthreads();

    // Whole rows as one to four vector loads when a row is exactly SLOTS elements and the logits are aligned to
    // min(row bytes, 16) (load_contiguous's loads); element loads otherwise. Either way the same values.
    constexpr int rowBytes = SLOTS * (int)sizeof(T);
    const bool vectorRows = experts == SLOTS && (reinterpret_cast<unsigned long long>(logits) % (rowBytes < 16 ? rowBytes : 16)) == 0;
    // Warps stride over groups of 32 tokens (the whole warp takes every trip: the ballots span it).
    const int stride = gridDim.x * blockDim.x;
    for (int first = blockIdx.x * blockDim.x + (threadIdx.x - lane); first < tokens; first += stride)
    {
        const int token = first + lane;
        const bool present = token < tokens;
        unsigned chosenMask = 0; // bit e: expert e chosen for this thread's token
        if (present)
        {
            const T* row = logits + (long long)token * experts;
            T logit[SLOTS];
            if (vectorRows)
                load_contiguous<T, SLOTS>(row, 0, logit);
            else
            {
#pragma unroll
                for (int e = 0; e < SLOTS; e++)
                    if (e < experts)
                        logit[e] = row[e];
            }
            moe_u32 key[SLOTS];
            moe_u32 maxKey = 0;
#pragma unroll
            for (int e = 0; e < SLOTS; e++)
            {
                key[e] = e < experts ? order_key(sanitize(to_float(logit[e]))) : 0u;
                maxKey = max(maxKey, key[e]);
            }
            const float rowMax = order_value(maxKey);
            float expOf[SLOTS];
#pragma unroll
            for (int e = 0; e < SLOTS; e++)
                expOf[e] = e < experts ? expf(order_value(key[e]) - rowMax) : 0.0f;
            float expSum = 1.0f; // renormalising: the denominator cancels (route_token does not form it either)
            if (!renormalize)
            {
                float partial[SLOTS];
#pragma unroll
                for (int e = 0; e < SLOTS; e++)
                    partial[e] = expOf[e];
                expSum = sum_tree<SLOTS / 2, SLOTS>(partial);
            }

            // k rounds: choice j's expert (stored now) and weight (into weight[j] by a select per slot: the array stays
            // in registers while the rounds are a loop).
            int* tokenIds = ids + (long long)token * k;
            float weight[SLOTS];
#pragma unroll
            for (int j = 0; j < SLOTS; j++)
                weight[j] = 0.0f;
#pragma unroll 1
            for (int j = 0; j < k; j++)
            {
                moe_u32 best = 0;
                int bestExpert = 0;
                float bestExp = 0.0f;
#pragma unroll
                for (int e = 0; e < SLOTS; e++)
                    if (key[e] > best)
                    {
                        best = key[e];
                        bestExpert = e;
                        bestExp = expOf[e];
                    }
#pragma unroll
                for (int e = 0; e < SLOTS; e++)
                    if (e == bestExpert)
                        key[e] = 0;
                tokenIds[j] = bestExpert;
                chosenMask |= 1u << bestExpert;
                const float w = bestExp / expSum;
#pragma unroll
                for (int p = 0; p < SLOTS; p++)
                    if (p == j)
                        weight[p] = w;
            }
            if (renormalize)
            {
                float partial[SLOTS];
#pragma unroll
                for (int j = 0; j < SLOTS; j++)
                    partial[j] = weight[j];
                const float total = sum_tree<SLOTS / 2, SLOTS>(partial);
#pragma unroll
                for (int j = 0; j < SLOTS; j++)
                    weight[j] = weight[j] / total;
            }
#pragma unroll
            for (int j = 0; j < SLOTS; j++)
                if (j < k)
                    weights[(long long)token * k + j] = weight[j] * scale;
        }
        // The warp's tokens per expert: one ballot an expert, lane e adds expert e's.
#pragma unroll
        for (int e = 0; e < SLOTS; e++)
        {
            const int count = __popc(__ballot_sync(0xffffffffu, (chosenMask >> e) & 1u));
            if (lane == e && count != 0)
                atomicAdd(&histogram[e], count);
        }
    }
    __syncthreads();
    write_counts(histogram, experts, expertCounts, workspace);
}

// Blocks of ROUTING_THREAD_BLOCK threads (fewer for fewer tokens), at least 4 an SM by the bound (128 registers).
#define ROUTING_THREAD_ENTRY(SUFFIX, T, SLOTS)                                                                 \
    extern "C" __global__ void __launch_bounds__(ROUTING_THREAD_BLOCK, 4) topk_routing_thread_##SUFFIX##_##SLOTS( \
        const T* logits, const float* bias, int tokens, int experts, int k, int renormalize, int grouped,     \
        int groupCount, int topkGroups, float scale, int* ids, float* weights, int* expertCounts, int* workspace) \
    {                                                                                                        \
        moe_wait_prior_grid();                                                                                \
        topk_routing_thread<T, SLOTS>(logits, tokens, experts, k, renormalize, scale, ids, weights,           \
            expertCounts, workspace);                                                                         \
    }

#define ROUTING_THREAD_ENTRIES(SUFFIX, T) \
    ROUTING_THREAD_ENTRY(SUFFIX, T, 4)    \
    ROUTING_THREAD_ENTRY(SUFFIX, T, 8)    \
    ROUTING_THREAD_ENTRY(SUFFIX, T, 16)

#if !defined(ROUTING_ONE_GROUP) || defined(ROUTING_GROUP_thread)
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f32)
ROUTING_THREAD_ENTRIES(f32, float)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_bf16)
ROUTING_THREAD_ENTRIES(bf16, bf16)
#endif
#if !defined(ROUTING_ONE_DTYPE) || defined(ROUTING_DTYPE_f16)
ROUTING_THREAD_ENTRIES(f16, f16)
#endif
#endif
