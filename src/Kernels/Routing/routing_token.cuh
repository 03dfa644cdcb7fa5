// routing_token.cuh: one token's top-k routing by one warp (route_token) and the helpers it stands on: the selection
// keys' order, the exp and sigmoid whose bits the CPU twin reproduces, NaN/inf sanitising. topk_routing.cu builds its
// kernels from it, and the fused decode layer (moe_decode.cu) routes its few tokens with the same code, so both choose
// the same experts with the same weights from the same logits.
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

