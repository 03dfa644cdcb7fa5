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
        Parallel.For(0, tokens, () => new float[experts], (token, _, row) =>
        {
            HostRows.Read(logits, (long)token * experts, row);
            RouteToken(row, bias, options, idsOut.AsSpan(token * k, k), weightsOut.AsSpan(token * k, k));
            return row;
        }, _ => { });
        idsOut.CopyTo(ids);
        weightsOut.CopyTo(weights);
        expertCounts.Clear();
        foreach (int id in idsOut)
            expertCounts[id]++;
    }

    /// <summary>NaN -> -MaxValue, +-inf -> +-MaxValue (the kernel's sanitize).</summary>
    internal static float Sanitize(float x) => float.IsNaN(x) ? -float.MaxValue : Math.Clamp(x, -float.MaxValue, float.MaxValue);

    internal static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    /// <summary>Routes one token: <paramref name="logits"/> [experts] in, ids and weights [k] out.</summary>
    internal static void RouteToken(ReadOnlySpan<float> logits, float[]? bias, TopKRoutingOptions options, Span<int> ids, Span<float> weights)
    {
        int experts = logits.Length;
        int k = options.TopK;
        bool grouped = options.Kind == RoutingKind.DeepSeekGrouped;
        var keys = new float[experts];
        var candidate = new bool[experts];
        for (int e = 0; e < experts; e++)
        {
            float x = Sanitize(logits[e]);
            keys[e] = grouped ? Sanitize(Sigmoid(x) + (bias?[e] ?? 0f)) : x;
            candidate[e] = true;
        }

        if (grouped)
        {
            int groups = options.GroupCount, groupSize = experts / groups;
            var groupScores = new float[groups];
            for (int g = 0; g < groups; g++)
            {
                var sorted = keys.AsSpan(g * groupSize, groupSize).ToArray();
                Array.Sort(sorted); // ascending: the two largest are at the end
                groupScores[g] = sorted[^1] + sorted[^2];
            }
            var keptGroup = new bool[groups];
            var groupCandidate = Enumerable.Repeat(true, groups).ToArray();
            for (int round = 0; round < options.TopKGroups; round++)
            {
                int best = ArgMax(groupScores, groupCandidate);
                keptGroup[best] = true;
                groupCandidate[best] = false;
            }
            for (int e = 0; e < experts; e++)
                candidate[e] = keptGroup[e / groupSize];
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
            float max = keys.Max();
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
