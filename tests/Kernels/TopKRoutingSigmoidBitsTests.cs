using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The grouped routing's sigmoid is bit for bit the CPU twin's on every CUDA path (strided, contiguous one token a warp,
/// two tokens a warp, persistent, token teams): its exp is routing_exp / TopKRouting.RoutingExp, IEEE operations in one
/// order, not CUDA's expf (up to 2 ulp) nor the host's. Regression: seed 59463 of PersistentMatchesOnePassBitForBit
/// ("persistent deepseek bf16 odd") had token 6655's experts 94 and 230 one ulp apart in key (1 + exp(-2.078125) lies
/// 0.1 ulp below a rounding midpoint), and CUDA's expf, one ulp high, swapped them against the twin.
/// </summary>
// TopKRouting's path thresholds are process-wide: the classes that set them share one collection (run one at a time).
[Collection(ProcessSwitches.Name)]
public class TopKRoutingSigmoidBitsTests
{
    private static readonly string[] Paths =
        ["strided", "one token a warp", "two tokens a warp", "persistent 1 pair", "persistent 2 pairs", "persistent 3 pairs", "teams"];

    /// <summary>Every bf16 bit pattern (NaN, +-inf, denormals, +-0 included) as a whole row: weight bits = the twin's sigmoid.</summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void EveryBf16LogitGivesTheTwinsSigmoidBits(string device)
    {
        var accelerator = TestDevices.Get(device);
        var c = new TopKRoutingTests.Case("every bf16 pattern, rows of one value", 65536, 256, 8, RoutingKind.DeepSeekGrouped,
            DType.BF16, false, 8, 4, 1f);
        var logits = new float[c.Tokens * c.Experts];
        for (int t = 0; t < c.Tokens; t++)
            Array.Fill(logits, (float)BFloat16.FromBits((ushort)t), t * c.Experts, c.Experts);
        AllPathsMatchTheTwin(accelerator, device, c, logits, null);
    }

    /// <summary>The failing input itself: seed 59463 replayed as PersistentMatchesOnePassBitForBit draws it.</summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void Seed59463NearTieMatchesTheTwinOnEveryPath(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = new Random(59463);
        var cases = new (int Tokens, DType DType)[] { (8192, DType.F32), (20001, DType.F32), (8193, DType.BF16) };
        float[] logits = [], bias = [];
        foreach (var (tokens, dtype) in cases) // the first two cases' draws, then the bf16 case's
        {
            logits = TokenOpsData.RoundTo(dtype, TestData.Uniform(random, tokens * 256, -4f, 4f));
            bias = TestData.Uniform(random, 256, -0.5f, 0.5f);
        }
        // Still the near tie: the two keys an ulp or two apart (else the replay no longer tests anything).
        float key94 = TopKRouting.Sigmoid(logits[6655 * 256 + 94]) + bias[94];
        float key230 = TopKRouting.Sigmoid(logits[6655 * 256 + 230]) + bias[230];
        Assert.InRange(Math.Abs(BitConverter.SingleToInt32Bits(key94) - BitConverter.SingleToInt32Bits(key230)), 0, 2);
        var c = new TopKRoutingTests.Case("persistent deepseek bf16 odd, seed 59463", 8193, 256, 8, RoutingKind.DeepSeekGrouped,
            DType.BF16, false, 8, 4, 1f, true);
        AllPathsMatchTheTwin(accelerator, device, c, logits, bias);
    }

    /// <summary>
    /// The contiguous paths' keys use the branch-free reciprocal (rcp.approx and one Newton step), the weights and the
    /// twin the division; where 1 + exp(-x) has an all-ones significand (bf16 x = 2^-23 gives 2 - 2^-23) one Newton step
    /// from an approximation an ulp low lands on a midpoint, the hard case. Each key is made visible: expert a gets
    /// logit x, expert b a saturated logit (score exactly 1) and the bias sigmoid(x) - 1 (exact for x >= 0), so the twin
    /// ties them (the lower id first) and a key an ulp off on any path orders them the other way round, in one of the
    /// two arrangements (a, b) = (0, 1) and (1, 0). 1024 equal rows (two tokens a warp from 1024); every other expert low.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HardReciprocalKeysTieAsOnTheTwin(string device)
    {
        var accelerator = TestDevices.Get(device);
        var hard = new List<float>();
        for (int bits = 0; bits < 0x7F80; bits++) // every finite bf16 x >= 0
        {
            float x = (float)BFloat16.FromBits((ushort)bits);
            if ((BitConverter.SingleToInt32Bits(1f + TopKRouting.RoutingExp(-x)) & 0x7FFFFF) == 0x7FFFFF)
                hard.Add(x);
        }
        Assert.Contains(MathF.ScaleB(1f, -23), hard);
        foreach (float x in hard.Concat([0f, 1f, 2.078125f, 3.6875f]))
            foreach (var (a, b) in new[] { (0, 1), (1, 0) })
            {
                var c = new TopKRoutingTests.Case($"key of x = {x:R} against its exact tie, experts ({a}, {b})", 1024, 256, 8,
                    RoutingKind.DeepSeekGrouped, DType.BF16, false, 8, 4, 1f, true);
                var row = Enumerable.Repeat(-8f, 256).ToArray();
                row[a] = x;
                row[b] = 64f;
                var bias = new float[256];
                bias[b] = TopKRouting.Sigmoid(x) - 1f;
                Assert.Equal(TopKRouting.Sigmoid(x), TopKRouting.Sigmoid(64f) + bias[b]); // the tie, on the twin
                var logits = Enumerable.Range(0, c.Tokens).SelectMany(_ => row).ToArray();
                AllPathsMatchTheTwin(accelerator, device, c, logits, bias);
            }
    }

    /// <summary>RoutingExp against exp in double for every bf16 value and a float sweep; its ends and NaN.</summary>
    [Fact]
    public void RoutingExpIsExpWithinTwoUlp()
    {
        for (int bits = 0; bits < 65536; bits++)
            CheckExp((float)BFloat16.FromBits((ushort)bits));
        for (float a = -110f; a < 95f; a += 0.0123f)
            CheckExp(a);
        Assert.True(float.IsNaN(TopKRouting.RoutingExp(float.NaN)));
        Assert.Equal(float.PositiveInfinity, TopKRouting.RoutingExp(float.PositiveInfinity));
        Assert.Equal(float.PositiveInfinity, TopKRouting.RoutingExp(float.MaxValue));
        Assert.Equal(0f, TopKRouting.RoutingExp(float.NegativeInfinity));
        Assert.Equal(0f, TopKRouting.RoutingExp(-float.MaxValue));
        Assert.Equal(1f, TopKRouting.RoutingExp(0f));
        Assert.Equal(0f, TopKRouting.Sigmoid(-float.MaxValue));
        Assert.Equal(1f, TopKRouting.Sigmoid(float.MaxValue));
        Assert.Equal(0.5f, TopKRouting.Sigmoid(0f));
    }

    private static void CheckExp(float a)
    {
        if (float.IsNaN(a))
            return;
        float actual = TopKRouting.RoutingExp(a);
        double exact = Math.Exp(a);
        if (exact > float.MaxValue)
        {
            Assert.Equal(float.PositiveInfinity, actual);
            return;
        }
        if (exact < 1e-37) // below the normal range: the two scaling steps round the denormal once more
        {
            Assert.InRange(actual, 0f, 2e-37f);
            return;
        }
        double ulp = MathF.BitIncrement((float)exact) - (float)exact; // of the float nearest exp(a)
        Assert.True(Math.Abs(actual - exact) <= 2 * ulp, $"RoutingExp({a:R}) = {actual:R}, exp = {exact:R}");
    }

    /// <summary>
    /// Every path's ids, weight bits and counts against the twin's (grouped, no renormalising, scale 1: a weight is the
    /// sigmoid itself); on the CPU the twin against the reference (ids exact, weights within F32 tolerance).
    /// </summary>
    private static void AllPathsMatchTheTwin(Accelerator accelerator, string device, TopKRoutingTests.Case c, float[] logits, float[]? bias)
    {
        var twin = TopKRoutingTests.Route(TestDevices.Context.Cpu, c, logits, bias);
        if (accelerator.Kind == AcceleratorKind.Cpu)
        {
            var (ids, weights) = TopKRoutingTests.Reference(logits, c, bias);
            Compare.Exact<int>(ids, twin.Ids, $"ids, twin against the reference, {c.Name}");
            Compare.Close(weights, twin.Weights, Compare.F32Tolerance, $"weights, twin against the reference, {c.Name}");
            return;
        }
        foreach (string path in Paths)
        {
            var routed = RouteOn(path, accelerator, c, logits, bias);
            string what = $"{path} against the twin, {c.Name} on {device}";
            Compare.Exact<int>(twin.Ids, routed.Ids, $"ids, {what}");
            Compare.Exact<int>(twin.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                routed.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, {what}");
            Compare.Exact<int>(twin.Counts, routed.Counts, $"counts, {what}");
        }
    }

    private static (int[] Ids, float[] Weights, int[] Counts) RouteOn(string path, Accelerator accelerator, TopKRoutingTests.Case c,
        float[] logits, float[]? bias)
    {
        bool strided = TopKRouting.ForceStridedLayout, one = TopKRouting.ForceOneTokenPerWarp;
        int persistentFrom = TopKRouting.PersistentFrom, pairs = TopKRouting.PairsPerWarp, teamsFrom = TopKRouting.TeamsFrom;
        try
        {
            TopKRouting.ForceStridedLayout = path == "strided";
            TopKRouting.ForceOneTokenPerWarp = path == "one token a warp";
            TopKRouting.PersistentFrom = path.StartsWith("persistent", StringComparison.Ordinal) ? 0 : int.MaxValue;
            TopKRouting.PairsPerWarp = path.StartsWith("persistent", StringComparison.Ordinal) ? path[11] - '0' : pairs;
            TopKRouting.TeamsFrom = path == "teams" ? 1 : int.MaxValue;
            return TopKRoutingTests.Route(accelerator, c, logits, bias);
        }
        finally
        {
            TopKRouting.ForceStridedLayout = strided;
            TopKRouting.ForceOneTokenPerWarp = one;
            TopKRouting.PersistentFrom = persistentFrom;
            TopKRouting.PairsPerWarp = pairs;
            TopKRouting.TeamsFrom = teamsFrom;
        }
    }
}
