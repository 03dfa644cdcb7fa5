using MoeRuntime.Runtime.Eplb;

namespace MoeRuntime.Tests.Eplb;

/// <summary>The synthetic skewed routing of <c>moe bench eplb</c>: valid, reproducible, skewed as the law says, drifting only at period boundaries.</summary>
public sealed class ZipfRoutingTests
{
    [Theory]
    [InlineData(64, 6, 1.2, 4096)]
    [InlineData(16, 16, 2.0, 33)]    // top-E: every expert once per token
    [InlineData(8, 1, 0.0, 1)]
    [InlineData(256, 8, 1.2, 0)]
    public void IdsAreDistinctPerTokenAndWeightsSumToOne(int experts, int k, double s, int tokens)
    {
        var routing = new ZipfRouting(experts, k, s, seed: 5);
        var (ids, weights) = routing.Generate(tokens, step: 3);
        Assert.Equal(tokens * k, ids.Length);
        Assert.Equal(tokens * k, weights.Length);
        for (int t = 0; t < tokens; t++)
        {
            var row = ids.AsSpan(t * k, k).ToArray();
            Assert.All(row, id => Assert.InRange(id, 0, experts - 1));
            Assert.Equal(k, row.Distinct().Count());
            Assert.All(weights.AsSpan(t * k, k).ToArray(), w => Assert.True(w > 0));
            Assert.Equal(1.0, weights.AsSpan(t * k, k).ToArray().Sum(), 5);
        }
    }

    [Fact]
    public void SameSeedAndStepGiveTheSameRouting()
    {
        var a = new ZipfRouting(64, 6, 1.2, seed: 11).Generate(100, 7);
        var b = new ZipfRouting(64, 6, 1.2, seed: 11).Generate(100, 7);
        Assert.Equal(a.Ids, b.Ids);
        Assert.Equal(a.Weights, b.Weights);
        Assert.NotEqual(a.Ids, new ZipfRouting(64, 6, 1.2, seed: 12).Generate(100, 7).Ids);
    }

    /// <summary>Top-1 shares follow 1/(i+1)^s over the permuted ranks within sampling error (100k draws: about 0.005).</summary>
    [Fact]
    public void TopOneSharesFollowTheZipfLaw()
    {
        var routing = new ZipfRouting(16, 1, 1.2, seed: 3);
        var (ids, _) = routing.Generate(100_000, 0);
        var expected = routing.ExpertProbabilities(0);
        var counts = new double[16];
        foreach (int id in ids)
            counts[id]++;
        for (int e = 0; e < 16; e++)
            Assert.InRange(counts[e] / ids.Length, expected[e] - 0.01, expected[e] + 0.01);
        int hottest = Array.IndexOf(expected, expected.Max());
        Assert.Equal(routing.Permutation(0)[0], hottest);
        Assert.InRange(expected.Max(), 0.36, 0.37);   // 1 / sum_{i<=16} i^-1.2 = 1 / 2.733 = 0.366
    }

    [Fact]
    public void DriftRedrawsTheHotSetOnlyAtPeriodBoundaries()
    {
        var drifting = new ZipfRouting(64, 6, 1.2, seed: 9, driftPeriod: 4);
        Assert.Equal(drifting.Permutation(0), drifting.Permutation(3));
        Assert.NotEqual(drifting.Permutation(3), drifting.Permutation(4));
        Assert.Equal(drifting.Permutation(4), drifting.Permutation(7));
        var still = new ZipfRouting(64, 6, 1.2, seed: 9);
        Assert.Equal(still.Permutation(0), still.Permutation(1000));
    }

    [Theory]
    [InlineData("zipf:1.2", 1.2)]
    [InlineData("ZIPF:0", 0.0)]
    public void SkewSpecsParse(string spec, double s) => Assert.Equal(s, ZipfRouting.ParseSkew(spec));

    [Theory]
    [InlineData("zipf:")]
    [InlineData("zipf:-1")]
    [InlineData("uniform")]
    [InlineData("zipf:abc")]
    public void BadSkewSpecsSayWhatIsExpected(string spec) =>
        Assert.Contains("zipf:S", Assert.Throws<FormatException>(() => ZipfRouting.ParseSkew(spec)).Message);

    [Fact]
    public void BadShapesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZipfRouting(0, 1, 1.2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZipfRouting(8, 9, 1.2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZipfRouting(8, 2, -1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZipfRouting(8, 2, 1.2, 1, driftPeriod: -1));
    }
}
