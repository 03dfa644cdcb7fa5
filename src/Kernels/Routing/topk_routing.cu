// topk_routing.cu: fused top-k routing, one warp per token.
//
//   logits:       [tokens, experts]  F32, BF16 or F16 (upcast to F32; all routing math in F32)
//   bias:         [experts] F32, DeepSeek correction bias (grouped mode only; may be null)
//   ids:          [tokens, k] I32, chosen experts in order of decreasing selection key
//   weights:      [tokens, k] F32
//   expertCounts: [experts] I32, tokens per expert; must be zeroed before the launch (atomic adds)
//
// Variants (runtime flag `grouped`):
//   softmax:  key = logit; weight = softmax(logits)[expert], renormalised over the k when asked.
//   grouped (DeepSeek-V3/R1): score = sigmoid(logit), key = score + bias; experts in groupCount
//             equal groups, a group's score is the sum of its two largest keys; the topkGroups best
//             groups are kept and the k best keys inside them chosen; weight = score (unbiased),
//             divided by (sum of the k scores + 1e-20) when renormalising.
//   Both: weight *= scale (routed scaling factor).
// Ties break to the lower expert (and group) id. Non-finite logits: NaN counts as -FLT_MAX and
// +-inf as +-FLT_MAX, so every key is finite, ids stay in range and all k ids of a token are distinct.
//
// Entries topk_routing_{f32,bf16,f16}_{1,2,4,8,16}: the suffix is the expert slots per lane, the smallest
// power of two >= ceil(experts / 32), so that small expert counts do not pay for 512.
// Launch: block = 32 * ROUTING_WARPS threads, grid = ceil(tokens / ROUTING_WARPS); no dynamic shared
// memory. Constraints (checked by TopKRouting.cs): experts <= 512, 1 <= k <= min(16, experts),
// groupCount <= 32, experts % groupCount == 0, experts / groupCount >= 2, topkGroups * groupSize >= k.
#include "moe_common.cuh"

#define ROUTING_WARPS 4
#define ROUTING_MAX_EXPERTS 512
#define ROUTING_NONE 0x7fffffff

__device__ __forceinline__ float negative_infinity() { return __int_as_float(0xff800000); }

// NaN -> -FLT_MAX, +-inf -> +-FLT_MAX: keeps every selection key finite and ordered.
__device__ __forceinline__ float sanitize(float x)
{
    const float float_max = 3.402823466e38f;
    if (x != x)
        return -float_max;
    return fminf(fmaxf(x, -float_max), float_max);
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Warp-wide argmax over (value, index) pairs; index ROUTING_NONE means "no candidate". Larger value
// wins, equal values go to the lower index, so every lane ends with the same (value, index).
__device__ __forceinline__ void warp_argmax(float& value, int& index)
{
    for (int offset = 16; offset > 0; offset >>= 1)
    {
        float otherValue = __shfl_xor_sync(0xffffffffu, value, offset);
        int otherIndex = __shfl_xor_sync(0xffffffffu, index, offset);
        bool better = otherIndex != ROUTING_NONE &&
            (index == ROUTING_NONE || otherValue > value || (otherValue == value && otherIndex < index));
        if (better)
        {
            value = otherValue;
            index = otherIndex;
        }
    }
}

// PER_LANE: expert slots per lane (1, 2, 4, 8 or 16, at least ceil(experts / 32)); loops over it unroll.
template <typename T, int PER_LANE>
__device__ __forceinline__ void topk_routing(
    const T* __restrict__ logits, const float* __restrict__ bias, int tokens, int experts, int k,
    int renormalize, int grouped, int groupCount, int topkGroups, float scale,
    int* __restrict__ ids, float* __restrict__ weights, int* __restrict__ expertCounts)
{
    __shared__ float groupKeys[ROUTING_WARPS][ROUTING_MAX_EXPERTS];
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    const int token = blockIdx.x * ROUTING_WARPS + warp;
    if (token >= tokens)
        return; // the whole warp leaves together; only warp-level synchronisation below
    const T* row = logits + (long long)token * experts;
    const float removed = negative_infinity(); // below every sanitised key: taken or excluded

    // Expert e = i * 32 + lane lives in key[i] of lane (e % 32); absent experts hold `removed`.
    float key[PER_LANE];
#pragma unroll
    for (int i = 0; i < PER_LANE; i++)
    {
        int e = i * 32 + lane;
        key[i] = removed;
        if (e < experts)
        {
            float x = sanitize(to_float(row[e]));
            key[i] = grouped ? sanitize(sigmoid(x) + (bias != nullptr ? bias[e] : 0.0f)) : x;
        }
    }

    float rowMax = 0.0f, expSum = 1.0f;
    if (!grouped)
    {
        float m = removed;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            m = fmaxf(m, key[i]);
        rowMax = warp_max(m);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            if (i * 32 + lane < experts)
                s += expf(key[i] - rowMax);
        expSum = warp_sum(s);
    }
    else
    {
        // Group scores: lane g scans group g (experts [g * groupSize, (g + 1) * groupSize)).
        float* shared = groupKeys[warp];
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            if (i * 32 + lane < experts)
                shared[i * 32 + lane] = key[i];
        __syncwarp();
        const int groupSize = experts / groupCount;
        float groupScore = 0.0f;
        int groupIndex = ROUTING_NONE;
        if (lane < groupCount)
        {
            float best = removed, second = removed;
            for (int j = 0; j < groupSize; j++)
            {
                float v = shared[lane * groupSize + j];
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
            groupScore = best + second;
            groupIndex = lane;
        }
        unsigned keptGroups = 0;
        for (int g = 0; g < topkGroups; g++)
        {
            float value = groupScore;
            int index = groupIndex;
            warp_argmax(value, index);
            keptGroups |= 1u << index;
            if (lane == index)
                groupIndex = ROUTING_NONE; // chosen: no longer a candidate
        }
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
        {
            int e = i * 32 + lane;
            if (e < experts && !((keptGroups >> (e / groupSize)) & 1u))
                key[i] = removed;
        }
    }

    // k rounds of argmax; lane j keeps the expert of round j.
    int myExpert = 0;
    for (int j = 0; j < k; j++)
    {
        float value = removed;
        int index = ROUTING_NONE;
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
        {
            // Ascending i means ascending expert id within the lane: strict > keeps the lower id.
            if (key[i] > removed && (index == ROUTING_NONE || key[i] > value))
            {
                value = key[i];
                index = i * 32 + lane;
            }
        }
        warp_argmax(value, index);
#pragma unroll
        for (int i = 0; i < PER_LANE; i++)
            if (i * 32 + lane == index)
                key[i] = removed;
        if (lane == j)
            myExpert = index;
    }

    float weight = 0.0f;
    if (lane < k)
    {
        float x = sanitize(to_float(row[myExpert]));
        weight = grouped ? sigmoid(x) : expf(x - rowMax) / expSum;
    }
    if (renormalize)
    {
        float total = warp_sum(weight);
        weight = grouped ? weight / (total + 1e-20f) : weight / total;
    }
    if (lane < k)
    {
        long long slot = (long long)token * k + lane;
        ids[slot] = myExpert;
        weights[slot] = weight * scale;
        atomicAdd(&expertCounts[myExpert], 1);
    }
}

#define ROUTING_ENTRY(SUFFIX, T, PER_LANE)                                                               \
    extern "C" __global__ void __launch_bounds__(32 * ROUTING_WARPS) topk_routing_##SUFFIX##_##PER_LANE( \
        const T* logits, const float* bias, int tokens, int experts, int k, int renormalize, int grouped, \
        int groupCount, int topkGroups, float scale, int* ids, float* weights, int* expertCounts)        \
    {                                                                                                    \
        topk_routing<T, PER_LANE>(logits, bias, tokens, experts, k, renormalize, grouped, groupCount,    \
                                  topkGroups, scale, ids, weights, expertCounts);                        \
    }

#define ROUTING_ENTRIES(SUFFIX, T)  \
    ROUTING_ENTRY(SUFFIX, T, 1)     \
    ROUTING_ENTRY(SUFFIX, T, 2)     \
    ROUTING_ENTRY(SUFFIX, T, 4)     \
    ROUTING_ENTRY(SUFFIX, T, 8)     \
    ROUTING_ENTRY(SUFFIX, T, 16)

ROUTING_ENTRIES(f32, float)
ROUTING_ENTRIES(bf16, bf16)
ROUTING_ENTRIES(f16, f16)
