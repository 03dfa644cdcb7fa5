namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// Synthetic skewed routing for EPLB benchmarks and tests: each token picks k distinct experts, drawn from a Zipf
/// law over expert ranks (rank i has weight 1 / (i + 1)^s) mapped to experts by a seeded permutation, so the hot
/// experts are not simply 0, 1, 2, ... With drift the permutation is re-drawn every <see cref="DriftPeriod"/> steps:
/// the hot set moves and a static placement goes stale. Routing weights are random and sum to 1 per token.
/// Deterministic in (seed, step).
/// <para>Example: E=4, s=1.2: rank weights 1, 0.435, 0.268, 0.190, so the expert at rank 0 of the permutation gets
/// about 53% of top-1 choices.</para>
/// </summary>
public sealed class ZipfRouting
{
    private readonly double[] _cumulative;   // [E]: cumulative rank probabilities, last = 1

    public ZipfRouting(int experts, int topK, double exponent, int seed, int driftPeriod = 0)
    {
        if (experts <= 0)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, "the number of experts must be positive");
        if (topK <= 0 || topK > experts)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, $"top-k must be in [1, {experts}]");
        if (!(exponent >= 0) || double.IsInfinity(exponent))
            throw new ArgumentOutOfRangeException(nameof(exponent), exponent, "the Zipf exponent must be finite and >= 0");
        if (driftPeriod < 0)
            throw new ArgumentOutOfRangeException(nameof(driftPeriod), driftPeriod, "the drift period must be >= 0 (0: no drift)");
        Experts = experts;
        TopK = topK;
        Exponent = exponent;
        Seed = seed;
        DriftPeriod = driftPeriod;
        _cumulative = new double[experts];
        double sum = 0;
        for (int i = 0; i < experts; i++)
            sum += 1.0 / Math.Pow(i + 1, exponent);
        double running = 0;
        for (int i = 0; i < experts; i++)
        {
            running += 1.0 / Math.Pow(i + 1, exponent) / sum;
            _cumulative[i] = running;
        }
        _cumulative[experts - 1] = 1.0;
    }

    public int Experts { get; }
    public int TopK { get; }
    public double Exponent { get; }
    public int Seed { get; }

    /// <summary>Steps between re-draws of the hot set; 0: no drift.</summary>
    public int DriftPeriod { get; }

    /// <summary>"zipf:1.2" -> 1.2; throws <see cref="FormatException"/> naming what is wrong.</summary>
    public static double ParseSkew(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        const string Prefix = "zipf:";
        if (!spec.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) ||
            !double.TryParse(spec.AsSpan(Prefix.Length), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double s) ||
            !(s >= 0) || double.IsInfinity(s))
            throw new FormatException($"skew '{spec}': expected zipf:S with an exponent S >= 0, e.g. zipf:1.2");
        return s;
    }

    /// <summary>Rank -> expert at <paramref name="step"/>: a permutation drawn from (seed, epoch), epoch = step / period.</summary>
    public int[] Permutation(int step)
    {
        int epoch = DriftPeriod > 0 ? step / DriftPeriod : 0;
        var permutation = Enumerable.Range(0, Experts).ToArray();
        new Random(Mix(Seed, epoch, 0x5EED)).Shuffle(permutation);
        return permutation;
    }

    /// <summary>A seed from (seed, index, stream) that is the same in every process (HashCode is randomised per process).</summary>
    private static int Mix(int seed, int index, int stream)
    {
        ulong z = (ulong)(uint)seed * 0x9E3779B97F4A7C15UL ^ (ulong)(uint)index * 0xBF58476D1CE4E5B9UL ^ (ulong)(uint)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    /// <summary>Expected share of (token, choice) pairs per expert of a single draw (top-1) at <paramref name="step"/>.</summary>
    public double[] ExpertProbabilities(int step)
    {
        var permutation = Permutation(step);
        var result = new double[Experts];
        for (int i = 0; i < Experts; i++)
            result[permutation[i]] = _cumulative[i] - (i == 0 ? 0 : _cumulative[i - 1]);
        return result;
    }

    /// <summary>The routing of <paramref name="tokens"/> tokens at <paramref name="step"/>: ids [T, k] (distinct per token) and weights [T, k].</summary>
    public (int[] Ids, float[] Weights) Generate(int tokens, int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var permutation = Permutation(step);
        var random = new Random(Mix(Seed, step, 0xD1CE));
        int k = TopK;
        var ids = new int[tokens * k];
        var weights = new float[tokens * k];
        var chosen = new bool[Experts];
        for (int t = 0; t < tokens; t++)
        {
            float sum = 0;
            for (int j = 0; j < k; j++)
            {
                int rank = -1;
                for (int attempt = 0; attempt < 64 && rank < 0; attempt++)
                {
                    int drawn = Array.BinarySearch(_cumulative, random.NextDouble());
                    drawn = drawn < 0 ? ~drawn : drawn;
                    drawn = Math.Min(drawn, Experts - 1);
                    if (!chosen[permutation[drawn]])
                        rank = drawn;
                }
                if (rank < 0)   // the head is taken: the hottest rank still free
                    rank = Enumerable.Range(0, Experts).First(i => !chosen[permutation[i]]);
                int expert = permutation[rank];
                chosen[expert] = true;
                ids[t * k + j] = expert;
                float w = 0.05f + random.NextSingle();
                weights[t * k + j] = w;
                sum += w;
            }
            for (int j = 0; j < k; j++)
            {
                weights[t * k + j] /= sum;
                chosen[ids[t * k + j]] = false;
            }
        }
        return (ids, weights);
    }
}
