using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Routing;

/// <summary>The CPU twin of topk_routing.cu: the same F32 arithmetic, token by token (tokens in parallel).</summary>
public static partial class TopKRouting
{
    private static void RunCpu(MemoryBuffer logits, int tokens, int experts, TopKRoutingOptions options,
        Span<int> ids, Span<float> weights, Span<int> expertCounts)
    {
        int k = options.TopK;
        float[]? bias = options.CorrectionBias?.Slice(0, experts).ToArray();
        var idsOut = new int[tokens * k];
        var weightsOut = new float[tokens * k];
        Parallel.For(0, tokens, () => new Scratch(experts, options.GroupCount), (token, _, scratch) =>
        {
            HostRows.Read(logits, (long)token * experts, scratch.Logits);
            RouteToken(scratch, bias, options, idsOut.AsSpan(token * k, k), weightsOut.AsSpan(token * k, k));
            return scratch;
        }, _ => { });
        idsOut.CopyTo(ids);
        weightsOut.CopyTo(weights);
        expertCounts.Clear();
        foreach (int id in idsOut)
            expertCounts[id]++;
    }

    /// <summary>NaN -> -MaxValue, +-inf -> +-MaxValue (the kernel's sanitize).</summary>
    internal static float Sanitize(float x) => float.IsNaN(x) ? -float.MaxValue : Math.Clamp(x, -float.MaxValue, float.MaxValue);

    /// <summary>The kernel's sigmoid: 1 / (1 + exp(-x)) with <see cref="RoutingExp"/>, so keys match to the bit.</summary>
    internal static float Sigmoid(float x) => 1f / (1f + RoutingExp(-x));

    /// <summary>One worker's arrays: a token's logits, selection keys and candidate flags, and the group arrays.</summary>
    private sealed class Scratch(int experts, int groups)
    {
        public readonly float[] Logits = new float[experts];
        public readonly float[] Keys = new float[experts];
        public readonly bool[] Candidate = new bool[experts];
        public readonly float[] GroupScores = new float[groups];
        public readonly bool[] GroupCandidate = new bool[groups];
    }

    /// <summary>Routes one token: scratch.Logits [experts] in, ids and weights [k] out.</summary>
    private static void RouteToken(Scratch scratch, float[]? bias, TopKRoutingOptions options, Span<int> ids, Span<float> weights)
    {
        var logits = scratch.Logits;
        var keys = scratch.Keys;
        var candidate = scratch.Candidate;
        int experts = logits.Length;
        int k = options.TopK;
        bool grouped = options.Kind == RoutingKind.DeepSeekGrouped;
        for (int e = 0; e < experts; e++)
        {
            float x = Sanitize(logits[e]);
            keys[e] = grouped ? Sanitize(Sigmoid(x) + (bias?[e] ?? 0f)) : x;
            candidate[e] = true;
        }

        if (grouped)
        {
            int groups = options.GroupCount, groupSize = experts / groups;
            var groupScores = scratch.GroupScores;
            var groupCandidate = scratch.GroupCandidate;
            for (int g = 0; g < groups; g++)
            {
                // The group's score: its largest key plus its second largest (equal to the largest if repeated).
                int first = g * groupSize + ArgMax(keys.AsSpan(g * groupSize, groupSize), candidate.AsSpan(g * groupSize, groupSize));
                candidate[first] = false;
                int second = g * groupSize + ArgMax(keys.AsSpan(g * groupSize, groupSize), candidate.AsSpan(g * groupSize, groupSize));
                candidate[first] = true;
                groupScores[g] = keys[first] + keys[second];
                groupCandidate[g] = true;
            }
            // Kept groups are the ones no longer candidates after TopKGroups rounds of argmax.
            for (int round = 0; round < options.TopKGroups; round++)
                groupCandidate[ArgMax(groupScores, groupCandidate)] = false;
            for (int e = 0; e < experts; e++)
                candidate[e] = !groupCandidate[e / groupSize];
        }

        for (int j = 0; j < k; j++)
        {
            int best = ArgMax(keys, candidate);
            ids[j] = best;
            candidate[best] = false;
        }

        if (grouped)
        {
            for (int j = 0; j < k; j++)
                weights[j] = Sigmoid(Sanitize(logits[ids[j]]));
        }
        else
        {
            float max = float.NegativeInfinity;
            foreach (float key in keys)
                max = Math.Max(max, key);
            float expSum = 0f;
            foreach (float key in keys)
                expSum += MathF.Exp(key - max);
            for (int j = 0; j < k; j++)
                weights[j] = MathF.Exp(keys[ids[j]] - max) / expSum;
        }
        if (options.Renormalize)
        {
            float total = 0f;
            for (int j = 0; j < k; j++)
                total += weights[j];
            if (grouped)
                total += 1e-20f;
            for (int j = 0; j < k; j++)
                weights[j] /= total;
        }
        for (int j = 0; j < k; j++)
            weights[j] *= options.RoutedScalingFactor;
    }

    /// <summary>The largest value among candidates; equal values go to the lower index.</summary>
    private static int ArgMax(ReadOnlySpan<float> values, ReadOnlySpan<bool> candidate)
    {
        int best = -1;
        for (int i = 0; i < values.Length; i++)
            if (candidate[i] && (best < 0 || values[i] > values[best]))
                best = i;
        return best;
    }
}
