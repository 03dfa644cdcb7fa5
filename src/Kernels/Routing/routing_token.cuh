// routing_token.cuh: a token's top-k routing by one warp, in both layouts of topk_routing.cu (strided: route_token;
// contiguous: route_tokens_contiguous), and the helpers they stand on: the selection keys' order, the exp and sigmoid
// whose bits the CPU twin reproduces, NaN/inf sanitising. topk_routing.cu builds its kernels from it, and the fused
// decode layer (moe_decode.cu) routes its few tokens with the same code, so both choose the same experts with the same
// weights from the same logits.
#pragma once
#include "moe_common.cuh"

__device__ __forceinline__ float negative_infinity() { return __int_as_float(0xff800000); }

// NaN -> -FLT_MAX, +-inf -> +-FLT_MAX: keeps every selection key finite and ordered.
__device__ __forceinline__ float sanitize(float x)
{
    const float float_max = 3.402823466e38f;
    if (x != x)
        return -float_max;
    return fminf(fmaxf(x, -float_max), float_max);
}

// exp(a) from IEEE operations alone (explicit fma, mul and add in one fixed order), so that the CPU twin's RoutingExp
// (TopKRouting.Exp.cs) gives the same bits: CUDA's expf is not correctly rounded (up to 2 ulp) and the host's expf is
// another function, and one ulp in exp(-x) can move 1 + exp(-x) across a rounding boundary, a key by an ulp, and swap
// two nearly tied choices. a = j ln2 + f (j = rint(a log2e), ln2 in two parts), exp(f) by its Taylor polynomial to
// degree 7 (|f| <= 0.35: within 1e-7 relative), times 2^j in two exact power-of-two steps. a is clamped to [-104, 89]
// (exp of the ends is 0 after the scaling, and +inf), NaN stays NaN.
__device__ __forceinline__ float routing_exp(float a)
{
    a = a < -104.0f ? -104.0f : (a > 89.0f ? 89.0f : a);
    const float j = __fsub_rn(fmaf(a, 1.44269502f, 12582912.0f), 12582912.0f);
    float f = fmaf(j, -0.693145752f, a);
    f = fmaf(j, -1.42860677e-6f, f);
    float p = 1.98412701e-4f;
    p = fmaf(p, f, 1.38888892e-3f);
    p = fmaf(p, f, 8.33333377e-3f);
    p = fmaf(p, f, 4.16666679e-2f);
    p = fmaf(p, f, 1.66666672e-1f);
    p = fmaf(p, f, 0.5f);
    p = fmaf(p, f, 1.0f);
    p = fmaf(p, f, 1.0f);
    const int n = a == a ? (int)j : 0;
    const int half = n >> 1; // floor: both halves in [-75, 64]
    return __fmul_rn(__fmul_rn(p, __int_as_float((half + 127) << 23)), __int_as_float((n - half + 127) << 23));
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / __fadd_rn(1.0f, routing_exp(-x)); }

// The contiguous path's scores without a branch per expert. The compiler's 1.0f / y puts a branch (and a call to its
// slow path) around every division, which serialises a lane's P sigmoids; here every reciprocal takes the compiler's
// own fast path (rcp.approx and one Newton step: the correctly rounded 1 / y, the same bits, while y < 2^126), and
// the rare y >= 2^126 (x < -87.3, NaN, -inf) is redone once per token by `sigmoid` (see route_tokens_contiguous).
// ROUTING_SIGMOID_DIVISION (MOE_ROUTING_SIGMOID=division) keeps the plain division there for A/B.
__device__ __forceinline__ float reciprocal_fast(float y)
{
    float r;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(y));
    return fmaf(r, -fmaf(y, r, -1.0f), r);
}

// Whether sigmoid_fast(x) is sigmoid(x) to the bit: 1 + exp(-x) below 2^126.
__device__ __forceinline__ float sigmoid_fast(float x, bool& exact)
{
    const float y = __fadd_rn(1.0f, routing_exp(-x));
    exact = y < 0x1p126f;
    return reciprocal_fast(y);
}

// Order key of a non-NaN float: unsigned order = float order, -0 and +0 equal (both map to +0's key).
// Every non-NaN float maps above 0, so 0 can mean "removed".
__device__ __forceinline__ moe_u32 order_key(float x)
{
    moe_u32 bits = __float_as_uint(x == 0.0f ? 0.0f : x);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

__device__ __forceinline__ float order_value(moe_u32 key)
{
    return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

__device__ __forceinline__ moe_u32 warp_max_u32(moe_u32 v)
{
#if __CUDA_ARCH__ >= 800
    return __reduce_max_sync(0xffffffffu, v); // redux.sync
#else
    for (int offset = 16; offset > 0; offset >>= 1)
        v = max(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
#endif
}

__device__ __forceinline__ moe_u32 warp_min_u32(moe_u32 v)
{
#if __CUDA_ARCH__ >= 800
    return __reduce_min_sync(0xffffffffu, v); // redux.sync
#else
    for (int offset = 16; offset > 0; offset >>= 1)
        v = min(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
#endif
}

// The lane's best key and its slot (the lowest slot among equal keys); best 0 when the lane has none left.
// A tree of compare-selects (depth log2(PER_LANE)), the lower-slot half winning ties at every merge.
template <int PER_LANE>
__device__ __forceinline__ void lane_best(const moe_u32 (&key)[PER_LANE], moe_u32& best, int& slot)
{
    moe_u32 treeKey[PER_LANE];
    int treeSlot[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++)
    {
        treeKey[i] = key[i];
        treeSlot[i] = i;
    }
#pragma unroll
    for (int width = 1; width < PER_LANE; width *= 2)
    {
#pragma unroll
        for (int i = 0; i + width < PER_LANE; i += 2 * width)
            if (treeKey[i + width] > treeKey[i])
            {
                treeKey[i] = treeKey[i + width];
                treeSlot[i] = treeSlot[i + width];
            }
    }
    best = treeKey[0];
    slot = treeSlot[0];
}

// Lane's logits of a token row: slot i holds expert i * 32 + lane (absent experts are not read).
template <typename T, int PER_LANE>
__device__ __forceinline__ void load_row(const T* __restrict__ row, int experts, int lane, T (&logit)[PER_LANE])
{
#pragma unroll
    for (int i = 0; i < PER_LANE; i++)
        if (i * 32 + lane < experts)
            logit[i] = row[i * 32 + lane];
}

// Routes one token with the whole warp (`logit`: the lane's slots of the token's row, already loaded; the row is
// not read again); lane j < k returns the j-th choice in `expert` and its weight (before scaling), lanes >= k
// return weight 0.
template <typename T, int PER_LANE>
__device__ __forceinline__ void route_token(
    const T (&logit)[PER_LANE], const float* __restrict__ bias, int experts, int k,
    int renormalize, int grouped, int groupCount, int topkGroups, float* __restrict__ fallbackKeys, int lane,
    int& expert, float& weight)
{
    moe_u32 key[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++)
    {
        int e = i * 32 + lane;
        key[i] = 0;
        if (e < experts)
        {
            float x = sanitize(to_float(logit[i]));
            key[i] = order_key(grouped ? sanitize(sigmoid(x) + (bias != nullptr ? bias[e] : 0.0f)) : x);
        }
    }

    if (grouped)
    {
        const int groupSize = experts / groupCount;
        // Group score of lane g's group g (lanes >= groupCount: 0, never kept).
        moe_u32 groupKey = 0;
        if (groupSize == 32)
        {
            // Group g is slot g: its largest key, then the largest of the rest (the lowest lane holding the
            // largest steps aside), summed in F32 as the CPU twin sums them.
            // No branch around the slots (absent slots are all 0 and lane i >= groupCount keeps 0), so the
            // PER_LANE independent chains of reductions can overlap.
#pragma unroll
            for (int i = 0; i < PER_LANE; i++)
            {
                moe_u32 first = warp_max_u32(key[i]);
                unsigned holders = __ballot_sync(0xffffffffu, key[i] == first);
                moe_u32 second = warp_max_u32(lane == __ffs(holders) - 1 ? 0u : key[i]);
                if (lane == i && i < groupCount)
                    groupKey = order_key(order_value(first) + order_value(second));
            }
        }
        else
        {
            // Lane g scans group g (experts [g * groupSize, (g + 1) * groupSize)) in shared memory.
#pragma unroll
            for (int i = 0; i < PER_LANE; i++)
                if (i * 32 + lane < experts)
                    fallbackKeys[i * 32 + lane] = order_value(key[i]);
            __syncwarp();
            if (lane < groupCount)
            {
                const float removed = negative_infinity();
                float best = removed, second = removed;
                for (int j = 0; j < groupSize; j++)
                {
                    float v = fallbackKeys[lane * groupSize + j];
                    if (v > best)
                    {
                        second = best;
                        best = v;
                    }
                    else if (v > second)
                    {
                        second = v;
                    }
                }
                groupKey = order_key(best + second);
            }
            __syncwarp(); // the keys are read before the next token overwrites them
        }
        // Kept groups: those with fewer than topkGroups groups ahead of them in (score descending, id ascending)
        // order, the same set as topkGroups rounds of argmax; the groupCount shuffles are independent, so this is
        // one short step instead of topkGroups dependent pairs of warp reductions.
        int ahead = 0;
        for (int j = 0; j < groupCount; j++)
        {
            moe_u32 other = __shfl_sync(0xffffffffu, groupKey, j);
            ahead += (other > groupKey || (other == groupKey && j < lane)) ? 1 : 0;
        }
        const unsigned keptGroups = __ballot_sync(0xffffffffu, lane < groupCount && ahead < topkGroups);
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
        {
            int e = i * 32 + lane;
            int group = groupSize == 32 ? i : e / groupSize; // group size 32: slot i is group i (no division)
            if (e < experts && !((keptGroups >> group) & 1u))
                key[i] = 0;
        }
    }

    moe_u32 best;
    int slot;
    lane_best<PER_LANE>(key, best, slot);

    // Softmax: the row max is the first round's key; with renormalisation the softmax denominator cancels.
    float rowMax = 0.0f, expSum = 1.0f;
    if (!grouped)
    {
        rowMax = order_value(warp_max_u32(best));
        if (!renormalize)
        {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < PER_LANE; i++)
                if (i * 32 + lane < experts)
                    s += expf(order_value(key[i]) - rowMax);
            expSum = warp_sum(s);
        }
    }

    // k rounds of argmax; lane j keeps the expert (and key) of round j.
    expert = 0;
    moe_u32 chosenKey = 0;
    for (int j = 0; j < k; j++)
    {
        moe_u32 top = warp_max_u32(best);
        int index = (int)warp_min_u32(best == top ? (moe_u32)(slot * 32 + lane) : 0xffffffffu);
        if (lane == j)
        {
            expert = index;
            chosenKey = top;
        }
        // The lane holding the chosen expert removes it; every lane re-takes its best (no divergent branch;
        // the others' keys are unchanged, so their best is too).
        const bool owner = (index & 31) == lane;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            if (owner && i == slot)
                key[i] = 0;
        lane_best<PER_LANE>(key, best, slot);
    }

    weight = 0.0f;
    if (grouped)
    {
        // The chosen expert's logit from the registers of the lane holding it (not a second read of `row`).
        float x = 0.0f;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
        {
            float v = __shfl_sync(0xffffffffu, to_float(logit[i]), expert & 31);
            if ((expert >> 5) == i)
                x = v;
        }
        if (lane < k)
            weight = sigmoid(sanitize(x));
    }
    else if (lane < k)
    {
        weight = expf(order_value(chosenKey) - rowMax) / expSum;
    }
    if (renormalize)
    {
        float total = warp_sum(weight);
        weight = grouped ? weight / (total + 1e-20f) : weight / total;
    }
}

// ---- The contiguous layout (the fast path) ----
// Lane l holds experts [l * P, (l + 1) * P) (experts == 32 * P exactly), loaded as 16-byte vectors. A group of
// groupSize experts then lives in groupSize / P = 32 / groupCount adjacent lanes (groupCount a power of two), so most
// work is lane-local: a lane's top 2, then log2(lanes per group) xor-shuffles for the group's top 2; the kept groups
// in one step; each lane sorts its candidates (key descending, id ascending) and a pick round is one warp max of the
// lanes' heads plus a ballot: among equal heads the lowest lane holds the lowest id (lanes own ascending id ranges),
// and the winning lane advances its head. Exact: the same experts and tie rule as the strided path and the CPU twin.
// At many tokens one token's chain of ~600 dependent instructions leaves the SM latency-bound, so the _x2 entries route
// two tokens per warp with the chains interleaved. Both fit 64 registers (32 warps an SM) because nothing per expert
// outlives the picks' lists: the grouped weight re-reads the chosen logit, the softmax denominator is summed before
// the sort, and (x2) the bias is re-read each trip.

// Selection entry: order key in the high word (0 = not a candidate), ~expert in the low word, so that unsigned
// order is (key descending, then id ascending).
__device__ __forceinline__ void compare_exchange(moe_u64& a, moe_u64& b) // a gets the larger
{
    const moe_u64 larger = a > b ? a : b;
    b = a > b ? b : a;
    a = larger;
}

// Batcher's odd-even merge sort network on N (a power of two, <= 16) entries: 5 compare-exchanges for N = 4, 19 for 8.
// Built at compile time and applied one comparator per template step, so every index is a constant and the array
// stays in registers (a plain unrolled loop nest left it in local memory).
template <int N>
struct SortNetwork
{
    int count;
    int first[64];
    int second[64];
    __device__ constexpr SortNetwork() : count(0), first(), second()
    {
        for (int p = 1; p < N; p *= 2)
            for (int width = p; width >= 1; width /= 2)
                for (int j = width % p; j + width < N; j += 2 * width)
                    for (int i = 0; i < width && i + j + width < N; i++)
                        if ((i + j) / (2 * p) == (i + j + width) / (2 * p))
                        {
                            first[count] = i + j;
                            second[count] = i + j + width;
                            count++;
                        }
    }
};

template <int N, int C>
__device__ __forceinline__ void sort_steps(moe_u64 (&v)[N])
{
    constexpr SortNetwork<N> network{};
    if constexpr (C < network.count)
    {
        constexpr int a = network.first[C];
        constexpr int b = network.second[C];
        compare_exchange(v[a], v[b]);
        sort_steps<N, C + 1>(v);
    }
}

// Largest first.
template <int N>
__device__ __forceinline__ void sort_descending(moe_u64 (&v)[N]) { sort_steps<N, 0>(v); }

// Lane's P logits of a token row (experts lane * P ...), as 16-byte vectors (one 8-, 4- or 2-byte load when a lane's
// share is smaller); `row` is 16-byte aligned (TopKRouting.cs checks the buffer; rows are 32 * P elements). The
// words are unpacked by value (no byte-wise view of `logit`, which would push it to local memory).
template <typename T, int P>
__device__ __forceinline__ void load_contiguous(const T* __restrict__ row, int lane, T (&logit)[P])
{
    constexpr int bytes = P * (int)sizeof(T);
    const T* mine = row + lane * P;
    if constexpr (bytes < 4)
    {
        logit[0] = mine[0]; // one 2-byte element (P = 1, BF16/F16)
    }
    else
    {
        constexpr int wordCount = bytes / 4;
        moe_u32 word[wordCount];
        if constexpr (bytes >= 16)
        {
#pragma unroll
            for (int v = 0; v < bytes / 16; v++)
            {
                const uint4 chunk = reinterpret_cast<const uint4*>(mine)[v];
                word[4 * v] = chunk.x;
                word[4 * v + 1] = chunk.y;
                word[4 * v + 2] = chunk.z;
                word[4 * v + 3] = chunk.w;
            }
        }
        else if constexpr (bytes == 8)
        {
            const uint2 chunk = *reinterpret_cast<const uint2*>(mine);
            word[0] = chunk.x;
            word[1] = chunk.y;
        }
        else
        {
            word[0] = *reinterpret_cast<const moe_u32*>(mine);
        }
#pragma unroll
        for (int i = 0; i < P; i++)
        {
            if constexpr (sizeof(T) == 4)
                logit[i] = __uint_as_float(word[i]);
            else
                logit[i].bits = (moe_u16)(word[i / 2] >> (16 * (i % 2))); // little-endian: the lower half first
        }
    }
}

// Routes NT tokens (1 or 2) with the whole warp, contiguous layout (`logit[t]`: the lane's P logits of token t; `bias`:
// the lane's P bias values, zeros when there is none). For each token t, lane j < k returns the j-th choice in
// expert[t] and its weight (before scaling), lanes >= k weight 0: the contract of route_token.
// With NT = 2 the two tokens' dependency chains (shuffles, redux.sync, ballots) are interleaved stage by stage and
// pick round by pick round, so one chain's latency hides behind the other's; each token's arithmetic is exactly the
// one-token sequence (same operations, same order), so results are bit-identical.
// `row[t]`: token t's logits row (any valid row for an absent token), read again by lanes < k for their chosen
// expert's grouped weight, so that no per-expert value stays in registers through the picks.
template <typename T, int P, int NT>
__device__ __forceinline__ void route_tokens_contiguous(
    const T (&logit)[NT][P], const T* const (&row)[NT], const float (&bias)[P], int k, int renormalize, int grouped,
    int groupCount, int topkGroups, int lane, int (&expert)[NT], float (&weight)[NT])
{
    moe_u32 key[NT][P];
    bool exact = true; // every fast sigmoid of the lane was the division's (see reciprocal_fast)
#pragma unroll
    for (int t = 0; t < NT; t++)
#pragma unroll
        for (int i = 0; i < P; i++)
        {
            const float x = sanitize(to_float(logit[t][i]));
#ifdef ROUTING_SIGMOID_DIVISION
            key[t][i] = order_key(grouped ? sanitize(sigmoid(x) + bias[i]) : x);
#else
            bool slotExact = true;
            const float score = grouped ? sigmoid_fast(x, slotExact) : 0.0f;
            exact = exact && slotExact;
            key[t][i] = order_key(grouped ? sanitize(score + bias[i]) : x);
#endif
        }
#ifndef ROUTING_SIGMOID_DIVISION
    if (!exact) // rare (a score below 2^-126): the lane's keys again with the division (lane-local, no warp step)
    {
#pragma unroll
        for (int t = 0; t < NT; t++)
#pragma unroll
            for (int i = 0; i < P; i++)
                key[t][i] = order_key(sanitize(sigmoid(sanitize(to_float(logit[t][i]))) + bias[i]));
    }
#endif

    // Softmax: the row max is the first pick's key (the largest of all). Without renormalisation the denominator
    // (summed in slot order) is needed too: the max and the sum are taken here, while the logits are still in
    // registers; with renormalisation the denominator cancels and the first pick gives the max.
    float rowMax[NT], expSum[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
    {
        rowMax[t] = 0.0f;
        expSum[t] = 1.0f;
    }
    if (!grouped && !renormalize)
    {
#pragma unroll
        for (int t = 0; t < NT; t++)
        {
            moe_u32 laneMax = 0;
#pragma unroll
            for (int i = 0; i < P; i++)
                laneMax = max(laneMax, key[t][i]);
            rowMax[t] = order_value(warp_max_u32(laneMax));
        }
#pragma unroll
        for (int t = 0; t < NT; t++)
        {
            float partial = 0.0f;
#pragma unroll
            for (int i = 0; i < P; i++)
                partial += expf(sanitize(to_float(logit[t][i])) - rowMax[t]);
            expSum[t] = warp_sum(partial);
        }
    }

    if (grouped && groupCount > 1)
    {
        // The group's two largest keys (a repeated largest counts twice): the lane's, then merged over the group's
        // lanes. Every key of a real expert is above 0, and a group has >= 2 experts, so `second` ends real.
        moe_u32 first[NT], second[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
        {
            first[t] = 0;
            second[t] = 0;
#pragma unroll
            for (int i = 0; i < P; i++)
            {
                second[t] = max(second[t], min(first[t], key[t][i]));
                first[t] = max(first[t], key[t][i]);
            }
        }
        const int lanesPerGroup = 32 / groupCount;
        for (int offset = 1; offset < lanesPerGroup; offset *= 2)
        {
#pragma unroll
            for (int t = 0; t < NT; t++)
            {
                moe_u32 otherFirst = __shfl_xor_sync(0xffffffffu, first[t], offset);
                moe_u32 otherSecond = __shfl_xor_sync(0xffffffffu, second[t], offset);
                second[t] = max(min(first[t], otherFirst), max(second[t], otherSecond));
                first[t] = max(first[t], otherFirst);
            }
        }
        moe_u32 groupKey[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
            groupKey[t] = order_key(order_value(first[t]) + order_value(second[t])); // summed as the twin sums
        // Kept: fewer than topkGroups groups ahead (score descending, id ascending); the shuffles are independent.
        const int group = lane / lanesPerGroup;
        int ahead[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
            ahead[t] = 0;
        for (int j = 0; j < groupCount; j++)
        {
#pragma unroll
            for (int t = 0; t < NT; t++)
            {
                moe_u32 other = __shfl_sync(0xffffffffu, groupKey[t], j * lanesPerGroup);
                ahead[t] += (other > groupKey[t] || (other == groupKey[t] && j < group)) ? 1 : 0;
            }
        }
#pragma unroll
        for (int t = 0; t < NT; t++)
            if (ahead[t] >= topkGroups)
            {
#pragma unroll
                for (int i = 0; i < P; i++)
                    key[t][i] = 0;
            }
    }

    moe_u64 list[NT][P];
#pragma unroll
    for (int t = 0; t < NT; t++)
    {
#pragma unroll
        for (int i = 0; i < P; i++)
            list[t][i] = ((moe_u64)key[t][i] << 32) | (moe_u32)~(unsigned)(lane * P + i);
        sort_descending<P>(list[t]);
    }

    // k rounds: the warp max of the heads (always a real key: there are >= k candidates), the lowest lane holding
    // it wins; lane j keeps round j's expert and key.
    moe_u32 chosenKey[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
    {
        expert[t] = 0;
        chosenKey[t] = 0;
    }
    for (int j = 0; j < k; j++)
    {
        moe_u32 head[NT], top[NT];
        int winner[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
        {
            head[t] = (moe_u32)(list[t][0] >> 32);
            top[t] = warp_max_u32(head[t]);
        }
#pragma unroll
        for (int t = 0; t < NT; t++)
            winner[t] = __ffs(__ballot_sync(0xffffffffu, head[t] == top[t])) - 1;
#pragma unroll
        for (int t = 0; t < NT; t++)
        {
            const int id = (int)~__shfl_sync(0xffffffffu, (moe_u32)list[t][0], winner[t]);
            if (j == 0 && renormalize)
                rowMax[t] = order_value(top[t]); // the same value as the warp max taken above without renormalising
            if (lane == j)
            {
                expert[t] = id;
                chosenKey[t] = top[t];
            }
            if (lane == winner[t])
            {
#pragma unroll
                for (int i = 0; i + 1 < P; i++)
                    list[t][i] = list[t][i + 1];
                list[t][P - 1] = 0;
            }
        }
    }

#pragma unroll
    for (int t = 0; t < NT; t++)
    {
        weight[t] = 0.0f;
        if (lane < k)
        {
            if (grouped) // the chosen expert's unbiased score, from its logit read again (an L1/L2 hit)
                weight[t] = sigmoid(sanitize(to_float(row[t][expert[t]])));
            else
                weight[t] = expf(order_value(chosenKey[t]) - rowMax[t]) / expSum[t];
        }
    }
    if (renormalize)
    {
        float total[NT];
#pragma unroll
        for (int t = 0; t < NT; t++)
            total[t] = warp_sum(weight[t]);
#pragma unroll
        for (int t = 0; t < NT; t++)
            weight[t] = grouped ? weight[t] / (total[t] + 1e-20f) : weight[t] / total[t];
    }
}
