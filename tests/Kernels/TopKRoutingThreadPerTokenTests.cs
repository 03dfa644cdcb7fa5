using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Infrastructure;
using Case = MoeRuntime.Tests.Kernels.TopKRoutingTests.Case;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The token-per-thread routing kernel (topk_routing_thread_*: softmax over at most 16 experts, a thread a token)
/// against the strided warp-per-token kernel it replaces, bit for bit (ids, weight bits, counts), and against the CPU
/// twin and the reference: every E of 2, 3, 4, 8, 16 with every k from 1 to E, each logit dtype, renormalising on and
/// off, T from 1 to 8192, rows with ties, NaN / +-inf and all-equal rows; with and without the count workspace.
/// </summary>
[Collection(ProcessSwitches.Name)]
public class TopKRoutingThreadPerTokenTests
{
    private static readonly int[] TokenCounts = [1, 2, 31, 32, 33, 1000, 8192];
    private static readonly DType[] DTypes = [DType.F32, DType.BF16, DType.F16];

    /// <summary>
    /// Rows of several kinds mixed in one input: plain uniform, coarse (9 values: many exact ties), all equal, about a
    /// quarter NaN / +-inf, all NaN, all +-inf.
    /// </summary>
    private static float[] Logits(Random random, int tokens, int experts, DType dtype)
    {
        var logits = TokenOpsData.RoundTo(dtype, TestData.Uniform(random, tokens * experts, -4f, 4f));
        for (int t = 0; t < tokens; t++)
        {
            var row = logits.AsSpan(t * experts, experts);
            switch (random.Next(8))
            {
                case 0:
                    for (int e = 0; e < experts; e++)
                        row[e] = MathF.Round(row[e]);
                    break;
                case 1:
                    row.Fill(row[0]);
                    break;
                case 2:
                    for (int e = 0; e < experts; e++)
                        row[e] = random.Next(4) switch { 0 => float.NaN, 1 => float.PositiveInfinity, 2 => float.NegativeInfinity, _ => row[e] };
                    break;
                case 3:
                    row.Fill(random.Next(2) == 0 ? float.NaN : float.PositiveInfinity);
                    break;
                case 4:
                    for (int e = 0; e < experts; e++)
                        row[e] = random.Next(2) == 0 ? float.PositiveInfinity : float.NegativeInfinity;
                    break;
            }
        }
        return logits;
    }

    private static (int[] Ids, float[] Weights, int[] Counts) RouteBy(bool threadPerToken, Accelerator accelerator, Case c,
        float[] logits, MemoryBuffer<int>? workspace)
    {
        int saved = TopKRouting.ThreadPerTokenFrom;
        TopKRouting.ThreadPerTokenFrom = threadPerToken ? 1 : int.MaxValue;
        try
        {
            return TopKRoutingTests.Route(accelerator, c, logits, null, workspace);
        }
        finally
        {
            TopKRouting.ThreadPerTokenFrom = saved;
        }
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ThreadPerTokenMatchesTheStridedPathBitForBit(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var workspace = accelerator.Allocate<int>(TopKRouting.WorkspaceElements(16));
        workspace.Clear();
        var cases = new List<Case>();
        int n = 0;
        foreach (int experts in new[] { 2, 3, 4, 8, 16 })
            for (int k = 1; k <= experts; k++)
                foreach (bool renormalize in new[] { true, false })
                {
                    // Token counts and dtypes cycle through the (E, k, renormalise) cases; every one meets each E.
                    int tokens = TokenCounts[n % TokenCounts.Length];
                    var dtype = DTypes[n / TokenCounts.Length % DTypes.Length];
                    // Every fifth case at an odd element offset (the element loads, not the vector ones), a scale now and then.
                    cases.Add(new Case($"E{experts} k{k} {dtype} T{tokens}{(renormalize ? "" : " no-renorm")}", tokens, experts, k,
                        RoutingKind.Softmax, dtype, renormalize, Scale: n % 3 == 0 ? 2.5f : 1f, Offset: n % 5 == 4 ? 1 : 0));
                    n++;
                }
        // Mixtral's shape at every token count and dtype.
        foreach (int tokens in TokenCounts)
            foreach (var dtype in DTypes)
                cases.Add(new Case($"mixtral E8 k2 {dtype} T{tokens}", tokens, 8, 2, RoutingKind.Softmax, dtype));

        n = 0;
        foreach (var c in cases)
        {
            var logits = Logits(random, c.Tokens, c.Experts, c.DType);
            // Half the cases through the count workspace (several blocks: one launch), half without (a memset first).
            var ws = n++ % 2 == 0 ? workspace : null;
            var (ids, weights, counts) = RouteBy(true, accelerator, c, logits, ws);
            var strided = RouteBy(false, accelerator, c, logits, ws);
            string what = $"{c.Name}{(c.Offset != 0 ? " offset" : "")} on {device}, seed {seed}";
            Compare.Exact<int>(strided.Ids, ids, $"ids, a token per thread against the strided path, {what}");
            Compare.Exact<int>(strided.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, a token per thread against the strided path, {what}");
            Compare.Exact<int>(strided.Counts, counts, $"counts, a token per thread against the strided path, {what}");
            Compare.Exact<int>(new int[TopKRouting.WorkspaceElements(16)], workspace.ToArray(), $"workspace after {what}");

            var (expectedIds, _) = TopKRoutingTests.Reference(logits, c, null);
            Compare.Exact<int>(expectedIds, ids, $"ids against the reference, {what}");
            if (accelerator.Kind != AcceleratorKind.Cpu)
            {
                var twin = TopKRoutingTests.Route(TestDevices.Context.Cpu, c, logits, null);
                Compare.Exact<int>(twin.Ids, ids, $"ids against the CPU twin, {what}");
                Compare.Close(twin.Weights, weights, Compare.F32Tolerance, $"weights against the CPU twin, {what}");
                Compare.Exact<int>(twin.Counts, counts, $"counts against the CPU twin, {what}");
            }
        }
    }

    [Fact]
    public void ThreadPathOnlyForSoftmaxOverFewExpertsFromTheThreshold()
    {
        int saved = TopKRouting.ThreadPerTokenFrom;
        try
        {
            var softmax = TopKRoutingOptions.Softmax(2);
            var grouped = new TopKRoutingOptions(RoutingKind.DeepSeekGrouped, 2, true, 4, 2, 1f);
            TopKRouting.ThreadPerTokenFrom = 1;
            Assert.True(TopKRouting.UsesThreadPath(8, softmax, 1));
            Assert.True(TopKRouting.UsesThreadPath(2, softmax, 8192));
            Assert.True(TopKRouting.UsesThreadPath(TopKRouting.ThreadPerTokenMaxExperts, softmax, 1000));
            Assert.False(TopKRouting.UsesThreadPath(TopKRouting.ThreadPerTokenMaxExperts + 1, softmax, 1000));
            Assert.False(TopKRouting.UsesThreadPath(32, softmax, 1000));
            Assert.False(TopKRouting.UsesThreadPath(8, grouped, 1000));
            Assert.False(TopKRouting.UsesThreadPath(8, softmax, 0));
            TopKRouting.ForceStridedLayout = true;
            try
            {
                Assert.False(TopKRouting.UsesThreadPath(8, softmax, 1000));
            }
            finally
            {
                TopKRouting.ForceStridedLayout = false;
            }
            TopKRouting.ThreadPerTokenFrom = 100;
            Assert.False(TopKRouting.UsesThreadPath(8, softmax, 99));
            Assert.True(TopKRouting.UsesThreadPath(8, softmax, 100));

            Assert.Equal(TopKRouting.DefaultThreadPerTokenFrom, TopKRouting.ThreadPerTokenFromEnvironment(null));
            Assert.Equal(int.MaxValue, TopKRouting.ThreadPerTokenFromEnvironment("0"));
            Assert.Equal(64, TopKRouting.ThreadPerTokenFromEnvironment("64"));
            foreach (string bad in new[] { "off", "-1", "", "1.5" })
                Assert.Contains("MOE_ROUTING_THREAD_PER_TOKEN must be 0", Assert.Throws<ArgumentException>(() => TopKRouting.ThreadPerTokenFromEnvironment(bad)).Message);
        }
        finally
        {
            TopKRouting.ThreadPerTokenFrom = saved;
        }
    }
}
