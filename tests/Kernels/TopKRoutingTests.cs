using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Top-k routing on every accelerator against an independent reference (selection by a stable sort,
/// softmax and sigmoid weights in double); the CUDA kernel also against the CPU twin. Ids and counts must
/// match exactly; weights within F32 tolerance (F32 math on both sides; only summation order differs).
/// </summary>
// TopKRouting's path thresholds are process-wide: the classes that set them share one collection (run one at a time).
[Collection(ProcessSwitches.Name)]
public class TopKRoutingTests
{
    public sealed record Case(string Name, int Tokens, int Experts, int TopK, RoutingKind Kind, DType DType,
        bool Renormalize = true, int Groups = 1, int TopKGroups = 1, float Scale = 1f, bool Bias = false, bool Coarse = false,
        bool TwoLevels = false, bool NonFinite = false, int Offset = 0, bool NonFiniteRows = false)
    {
        public override string ToString() => Name;
    }

    public static TheoryData<string, Case> Cases()
    {
        var cases = new[]
        {
            new Case("mixtral E8 k2 f32", 33, 8, 2, RoutingKind.Softmax, DType.F32),
            new Case("no tokens", 0, 8, 2, RoutingKind.Softmax, DType.F32),
            new Case("T1 E128 k8 bf16 no-renorm", 1, 128, 8, RoutingKind.Softmax, DType.BF16, Renormalize: false),
            new Case("qwen E128 k8 f16", 100, 128, 8, RoutingKind.Softmax, DType.F16, Renormalize: false),
            new Case("bf16 ties E128 k8", 64, 128, 8, RoutingKind.Softmax, DType.BF16),
            new Case("top-E", 5, 8, 8, RoutingKind.Softmax, DType.F32),
            new Case("E1 k1", 3, 1, 1, RoutingKind.Softmax, DType.F32),
            new Case("E512 k16", 20, 512, 16, RoutingKind.Softmax, DType.F32, Scale: 0.5f),
            new Case("E33 odd k3", 9, 33, 3, RoutingKind.Softmax, DType.F16),
            new Case("deepseek E256 k8 g8/4 bf16", 64, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
            new Case("deepseek E256 k8 g8/4 f32 no-renorm", 40, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, false, 8, 4, 1f, true),
            new Case("grouped E16 k3 g4/2 f16 no-bias", 17, 16, 3, RoutingKind.DeepSeekGrouped, DType.F16, true, 4, 2),
            new Case("grouped E512 k16 g32/8", 9, 512, 16, RoutingKind.DeepSeekGrouped, DType.F32, true, 32, 8, 1.5f, true),
            new Case("grouped one group", 7, 8, 2, RoutingKind.DeepSeekGrouped, DType.F32, true, 1, 1, 1f, true),
            // Group size 32 (a group is one slot of every lane) with fewer groups than slots (E96: 3 groups, 4 slots),
            // and with 16 slots; coarse logits make equal keys and equal group scores common (ties to the lower id).
            new Case("grouped E96 k4 g3/2 group size 32", 50, 96, 4, RoutingKind.DeepSeekGrouped, DType.F32, true, 3, 2, 1f, true),
            new Case("grouped E512 k16 g16/5 group size 32", 30, 512, 16, RoutingKind.DeepSeekGrouped, DType.BF16, true, 16, 5, 2f, true),
            new Case("deepseek ties E256 k8 g8/4 coarse", 300, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, Coarse: true),
            new Case("grouped ties E64 k4 g8/3 coarse", 200, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, false, 8, 3, 1f, Coarse: true),
            new Case("softmax ties E128 k8 coarse", 300, 128, 8, RoutingKind.Softmax, DType.F32, Coarse: true),
            // Many tokens: CUDA runs big blocks whose warps stride over several tokens each, and many blocks
            // add their count histograms.
            new Case("many tokens E8 k2 f32", 9000, 8, 2, RoutingKind.Softmax, DType.F32),
            new Case("many tokens deepseek E256 k8 g8/4 bf16", 4500, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
            new Case("many tokens grouped E64 k4 g4/2 f16", 3000, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, false, 4, 2, 1f, true),
            // The contiguous layout (experts 32/64/128/256, power-of-two group counts): lane l holds experts
            // [l * E/32, (l + 1) * E/32), a group spans E/32-expert lanes, picks are warp maxima of sorted lane lists.
            new Case("many blocks deepseek E256 k8 g8/4 f32", 20000, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
            new Case("deepseek E256 k1 g8/4", 100, 256, 1, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
            new Case("deepseek E256 k16 g8/1", 50, 256, 16, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 1, 1f, true),
            new Case("grouped E256 k8 g32/8 (one lane a group)", 60, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 32, 8, 1f, true),
            new Case("grouped E256 k8 g1/1", 40, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 1, 1, 1f, true),
            new Case("grouped E128 k8 g8/4 bf16", 200, 128, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
            new Case("grouped E64 k6 g4/2", 150, 64, 6, RoutingKind.DeepSeekGrouped, DType.F32, true, 4, 2, 1f, true),
            new Case("grouped E64 k8 g8/4 f16", 150, 64, 8, RoutingKind.DeepSeekGrouped, DType.F16, true, 8, 4, 2f, true),
            new Case("grouped E64 k4 g32/3 (groups of 2)", 150, 64, 4, RoutingKind.DeepSeekGrouped, DType.F32, false, 32, 3, 1f, true),
            new Case("grouped E32 k4 g4/2 (one expert a lane)", 90, 32, 4, RoutingKind.DeepSeekGrouped, DType.F16, true, 4, 2, 1f, true),
            new Case("grouped E96 k4 g6/2 (strided: 6 groups)", 90, 96, 4, RoutingKind.DeepSeekGrouped, DType.F32, true, 6, 2, 1f, true),
            new Case("softmax E128 k1", 100, 128, 1, RoutingKind.Softmax, DType.F32),
            new Case("softmax E256 k8 no-renorm", 100, 256, 8, RoutingKind.Softmax, DType.BF16, Renormalize: false),
            new Case("softmax E32 k4 f16", 70, 32, 4, RoutingKind.Softmax, DType.F16),
            new Case("softmax E64 k16 no-renorm", 70, 64, 16, RoutingKind.Softmax, DType.F32, Renormalize: false),
            // Two logit values only: most keys tie, within lanes, across lanes and across groups (ties to the lower id).
            new Case("two levels deepseek E256 k8 g8/4", 300, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, TwoLevels: true),
            new Case("two levels grouped E64 k8 g8/4", 300, 64, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 1f, TwoLevels: true),
            new Case("two levels softmax E128 k8", 300, 128, 8, RoutingKind.Softmax, DType.F32, TwoLevels: true),
            // NaN and +-inf sprinkled in (NaN as -MaxValue, +-inf as +-MaxValue: ids stay in range and distinct).
            new Case("non-finite deepseek E256 k8 g8/4", 300, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, NonFinite: true),
            new Case("non-finite grouped E64 k4 g4/2 bf16", 300, 64, 4, RoutingKind.DeepSeekGrouped, DType.BF16, true, 4, 2, 1f, true, NonFinite: true),
            new Case("non-finite softmax E128 k8", 300, 128, 8, RoutingKind.Softmax, DType.F32, NonFinite: true),
            // Logits at an odd element offset (not 16-byte aligned): the strided path, same results.
            new Case("offset logits deepseek E256 k8 g8/4", 70, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, Offset: 1),
            new Case("offset logits softmax E128 k8 bf16", 70, 128, 8, RoutingKind.Softmax, DType.BF16, Offset: 3),
            // Two tokens per warp (contiguous path from TopKRouting.TwoTokensPerWarpFrom tokens): exactly at the
            // threshold, odd counts (the last warp's second token absent), ties, and whole non-finite rows beside
            // normal rows in the same warp.
            new Case("x2 at threshold deepseek E256 k8 g8/4", TopKRouting.TwoTokensPerWarpFrom, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
            new Case("x2 odd deepseek E256 k8 g8/4 bf16", 1025, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
            new Case("x2 odd many blocks deepseek E256 k8 g8/4", 8191, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, false, 8, 4, 1f, true),
            new Case("x2 even softmax E128 k8 no-renorm", 2048, 128, 8, RoutingKind.Softmax, DType.F32, Renormalize: false),
            new Case("x2 odd softmax E64 k4 f16", 1501, 64, 4, RoutingKind.Softmax, DType.F16),
            new Case("x2 odd softmax E32 k2 bf16", 1999, 32, 2, RoutingKind.Softmax, DType.BF16),
            new Case("x2 two levels deepseek E256 k8 g8/4", 1100, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, TwoLevels: true),
            new Case("x2 coarse grouped E64 k4 g8/3", 1300, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, false, 8, 3, 1f, Coarse: true),
            new Case("x2 non-finite rows deepseek E256 k8 g8/4 no-renorm", 1027, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, false, 8, 4, 2.5f, true, NonFiniteRows: true),
            new Case("x2 non-finite rows softmax E128 k8 no-renorm", 1029, 128, 8, RoutingKind.Softmax, DType.F32, Renormalize: false, NonFiniteRows: true),
        };
        return TestDevices.Each(cases);
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheReference(string device, Case c)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        var logits = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f));
        logits = Shape(random, c, logits);
        var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
        var (ids, weights, counts) = Route(accelerator, c, logits, bias);
        var (expectedIds, expectedWeights) = Reference(logits, c, bias);
        string what = $"{c.Name} on {device}, seed {seed}";
        Compare.Exact<int>(expectedIds, ids, $"ids, {what}");
        Compare.Close(expectedWeights, weights, Compare.F32Tolerance, $"weights, {what}");
        Compare.Exact<int>(Histogram(expectedIds, c.Experts), counts, $"counts, {what}");
        if (c.Renormalize)
            for (int t = 0; t < c.Tokens; t++)
                Assert.Equal(c.Scale, weights.AsSpan(t * c.TopK, c.TopK).ToArray().Sum(), 1e-5 * c.Scale);

        if (accelerator.Kind != AcceleratorKind.Cpu)
        {
            var (twinIds, twinWeights, twinCounts) = Route(TestDevices.Context.Cpu, c, logits, bias);
            Compare.Exact<int>(twinIds, ids, $"ids against the CPU twin, {what}");
            Compare.Close(twinWeights, weights, Compare.F32Tolerance, $"weights against the CPU twin, {what}");
            Compare.Exact<int>(twinCounts, counts, $"counts against the CPU twin, {what}");
        }
    }

    /// <summary>
    /// Coarse logits (17 values), two levels (0 and 1: ties nearly everywhere), about 5% NaN / +-inf, or whole
    /// non-finite rows (every odd token: all NaN, or NaN / +-inf mixed) between normal ones.
    /// </summary>
    private static float[] Shape(Random random, Case c, float[] logits)
    {
        if (c.NonFiniteRows)
        {
            logits = logits.ToArray();
            for (int t = 1; t < c.Tokens; t += 2)
                for (int e = 0; e < c.Experts; e++)
                    logits[t * c.Experts + e] = t % 4 == 1 ? float.NaN : random.Next(3) switch
                    {
                        0 => float.NaN,
                        1 => float.PositiveInfinity,
                        _ => float.NegativeInfinity,
                    };
        }
        if (c.Coarse)
            logits = logits.Select(x => MathF.Round(x * 2f) / 2f).ToArray(); // 17 values: many exact ties
        if (c.TwoLevels)
            logits = logits.Select(x => x > 2f ? 1f : 0f).ToArray();
        if (c.NonFinite)
            logits = logits.Select(x => random.Next(20) switch
            {
                0 => float.NaN,
                1 => float.PositiveInfinity,
                2 => float.NegativeInfinity,
                _ => x,
            }).ToArray();
        return logits;
    }

    /// <summary>
    /// On CUDA the contiguous layout (the fast path) and the strided one must give the same ids, counts and weight bits on
    /// the shapes where both apply; softmax without renormalising only within F32 tolerance, since each layout sums the
    /// denominator in its own order (a lane's experts, then the warp's butterfly), 1-2 ulp apart.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void BothLayoutsAgree(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in new[]
                 {
                     new Case("layouts deepseek E256 k8 g8/4", 5000, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("layouts deepseek E256 k8 g8/4 coarse", 2000, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true, Coarse: true),
                     new Case("layouts grouped E64 k4 g8/3 two levels", 2000, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, false, 8, 3, 1f, true, TwoLevels: true),
                     new Case("layouts softmax E128 k8", 5000, 128, 8, RoutingKind.Softmax, DType.F32),
                     new Case("layouts softmax E128 k8 no-renorm", 3000, 128, 8, RoutingKind.Softmax, DType.BF16, Renormalize: false),
                     new Case("layouts softmax E256 k8 non-finite", 2000, 256, 8, RoutingKind.Softmax, DType.F32, NonFinite: true),
                 })
        {
            var logits = Shape(random, c, TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f)));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            var (ids, weights, counts) = Route(accelerator, c, logits, bias);
            (int[] Ids, float[] Weights, int[] Counts) strided;
            TopKRouting.ForceStridedLayout = true;
            try
            {
                strided = Route(accelerator, c, logits, bias);
            }
            finally
            {
                TopKRouting.ForceStridedLayout = false;
            }
            string what = $"{c.Name} on {device}, seed {seed}";
            Compare.Exact<int>(strided.Ids, ids, $"ids, contiguous against strided, {what}");
            if (c.Kind == RoutingKind.Softmax && !c.Renormalize)
                Compare.Close(strided.Weights, weights, Compare.F32Tolerance, $"weights, contiguous against strided, {what}");
            else
                Compare.Exact<int>(strided.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                    weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, contiguous against strided, {what}");
            Compare.Exact<int>(strided.Counts, counts, $"counts, contiguous against strided, {what}");
        }
    }

    /// <summary>
    /// On CUDA the two-tokens-per-warp kernel and the one-token kernel must give bit-identical ids, weights and counts
    /// (the same arithmetic per token, interleaved): odd and even token counts, at the threshold, ties, non-finite rows.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TwoTokensPerWarpMatchesOneBitForBit(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in new[]
                 {
                     new Case("x2/x1 deepseek E256 k8 g8/4 f32", 8192, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("x2/x1 deepseek E256 k8 g8/4 odd", 8191, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
                     new Case("x2/x1 deepseek at threshold no-renorm", TopKRouting.TwoTokensPerWarpFrom, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, false, 8, 4, 1f, true),
                     new Case("x2/x1 deepseek coarse", 3001, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, Coarse: true),
                     new Case("x2/x1 grouped E64 k4 g8/3 two levels", 2001, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, false, 8, 3, 1f, true, TwoLevels: true),
                     new Case("x2/x1 deepseek non-finite rows", 1031, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, NonFiniteRows: true),
                     new Case("x2/x1 softmax E128 k8", 4097, 128, 8, RoutingKind.Softmax, DType.F32),
                     new Case("x2/x1 softmax E128 k8 no-renorm non-finite", 2000, 128, 8, RoutingKind.Softmax, DType.F32, Renormalize: false, NonFinite: true),
                     new Case("x2/x1 softmax E256 k16 non-finite rows", 1501, 256, 16, RoutingKind.Softmax, DType.BF16, NonFiniteRows: true),
                     new Case("x2/x1 softmax E32 k4 f16", 1200, 32, 4, RoutingKind.Softmax, DType.F16),
                 })
        {
            var logits = Shape(random, c, TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f)));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            (int[] Ids, float[] Weights, int[] Counts) one;
            int[] ids, counts;
            float[] weights;
            int savedTeams = TopKRouting.TeamsFrom;
            TopKRouting.TeamsFrom = int.MaxValue; // the two-token kernel, not the token teams (TeamsMatchTheOldPathBitForBit)
            try
            {
                (ids, weights, counts) = Route(accelerator, c, logits, bias);
                TopKRouting.ForceOneTokenPerWarp = true;
                one = Route(accelerator, c, logits, bias);
            }
            finally
            {
                TopKRouting.ForceOneTokenPerWarp = false;
                TopKRouting.TeamsFrom = savedTeams;
            }
            string what = $"{c.Name} on {device}, seed {seed}";
            Compare.Exact<int>(one.Ids, ids, $"ids, two tokens per warp against one, {what}");
            Compare.Exact<int>(one.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, two tokens per warp against one, {what}");
            Compare.Exact<int>(one.Counts, counts, $"counts, two tokens per warp against one, {what}");
            var (expectedIds, _) = Reference(logits, c, bias);
            Compare.Exact<int>(expectedIds, ids, $"ids against the reference, {what}");
        }
    }

    /// <summary>
    /// On CUDA the contiguous path's branch-free sigmoid (reciprocal by rcp.approx and a Newton step, the rare
    /// 1 + exp(-x) >= 2^126 redone by division) and the plain division build (MOE_ROUTING_SIGMOID=division) must give
    /// bit-identical ids, weights and counts: one and two tokens per warp, scores that underflow (logits from -95 to
    /// -80: denormal and zero scores, the redo), with and without bias, non-finite rows.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void FastSigmoidMatchesDivisionBitForBit(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in new[]
                 {
                     new Case("sigmoid deepseek E256 k8 g8/4 x2", 4096, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("sigmoid deepseek E256 k8 g8/4 x1 no bias", 333, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f),
                     new Case("sigmoid deepseek E256 x2 no bias bf16", 2049, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, false, 8, 4, 1f),
                     new Case("sigmoid grouped E64 k4 g8/3 f16", 1500, 64, 4, RoutingKind.DeepSeekGrouped, DType.F16, true, 8, 3, 1f, true),
                     new Case("sigmoid deepseek non-finite rows", 1031, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, NonFiniteRows: true),
                 })
        {
            // A quarter of the logits far negative: 1 + exp(-x) from 2^115 to overflow, around the redo's 2^126.
            var logits = TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f)
                .Select(x => random.Next(4) == 0 ? -80f - 15f * random.NextSingle() : x).ToArray();
            logits = Shape(random, c, TokenOpsData.RoundTo(c.DType, logits));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            var (ids, weights, counts) = Route(accelerator, c, logits, bias);
            (int[] Ids, float[] Weights, int[] Counts) division;
            TopKRouting.SigmoidByDivision = true;
            try
            {
                division = Route(accelerator, c, logits, bias);
            }
            finally
            {
                TopKRouting.SigmoidByDivision = false;
            }
            string what = $"{c.Name} on {device}, seed {seed}";
            Compare.Exact<int>(division.Ids, ids, $"ids, fast sigmoid against division, {what}");
            Compare.Exact<int>(division.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, fast sigmoid against division, {what}");
            Compare.Exact<int>(division.Counts, counts, $"counts, fast sigmoid against division, {what}");
        }
    }

    /// <summary>
    /// On CUDA the persistent two-token kernel (warps looping over token pairs, the next pair staged by cp.async) must
    /// give bit-identical ids, weights and counts to the path it replaces (MOE_ROUTING_PERSISTENT=0: the one-pass
    /// two-token kernel, or one token per warp below its threshold), and the CPU twin's ids and counts, for 1, 2 and 3
    /// pairs a warp at least: token counts not a multiple of the loop (an odd last pair), fewer tokens than the grid
    /// has warps, more trips than the minimum (the grid capped at the resident warps), ties, NaN/Inf rows, every
    /// entry (F32 E=128/256, BF16/F16 E=256), with and without the count workspace.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void PersistentMatchesOnePassBitForBit(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        foreach (var c in new[]
                 {
                     new Case("persistent deepseek E256 k8 g8/4 f32", 8192, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("persistent deepseek odd many trips", 20001, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("persistent deepseek bf16 odd", 8193, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, false, 8, 4, 1f, true),
                     new Case("persistent deepseek f16 coarse", 3001, 256, 8, RoutingKind.DeepSeekGrouped, DType.F16, true, 8, 4, 2.5f, true, Coarse: true),
                     new Case("persistent T1", 1, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("persistent T3 below the grid", 3, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("persistent T65 below the grid", 65, 256, 8, RoutingKind.DeepSeekGrouped, DType.BF16, true, 8, 4, 2.5f, true),
                     new Case("persistent two levels deepseek", 2050, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, TwoLevels: true),
                     new Case("persistent non-finite rows deepseek", 1031, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true, NonFiniteRows: true),
                     new Case("persistent non-finite softmax E128 f32 no-renorm", 999, 128, 8, RoutingKind.Softmax, DType.F32, Renormalize: false, NonFinite: true),
                     new Case("persistent softmax E128 k8", 4097, 128, 8, RoutingKind.Softmax, DType.F32),
                     new Case("persistent softmax E256 k16 bf16 non-finite rows", 1501, 256, 16, RoutingKind.Softmax, DType.BF16, NonFiniteRows: true),
                     new Case("persistent softmax E256 k8 f32 coarse", 777, 256, 8, RoutingKind.Softmax, DType.F32, Coarse: true),
                 })
        {
            var logits = Shape(random, c, TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f)));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            string what = $"{c.Name} on {device}, seed {seed}";
            (int[] Ids, float[] Weights, int[] Counts) onePass;
            int savedFrom = TopKRouting.PersistentFrom, savedPairs = TopKRouting.PairsPerWarp, savedTeams = TopKRouting.TeamsFrom;
            try
            {
                TopKRouting.TeamsFrom = int.MaxValue; // the token teams would take the DeepSeek cases
                TopKRouting.PersistentFrom = int.MaxValue;
                onePass = Route(accelerator, c, logits, bias);
                TopKRouting.PersistentFrom = 0;
                foreach (int pairs in new[] { 1, 2, 3 })
                {
                    TopKRouting.PairsPerWarp = pairs;
                    using var workspace = pairs == 2 ? accelerator.Upload<int>(new int[TopKRouting.WorkspaceElements(c.Experts)]) : null;
                    var (ids, weights, counts) = Route(accelerator, c, logits, bias, workspace);
                    string how = $"persistent ({pairs} pairs a warp{(workspace is null ? "" : ", workspace")}) against one pass, {what}";
                    Compare.Exact<int>(onePass.Ids, ids, $"ids, {how}");
                    Compare.Exact<int>(onePass.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                        weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, {how}");
                    Compare.Exact<int>(onePass.Counts, counts, $"counts, {how}");
                    if (workspace is not null)
                        Compare.Exact<int>(new int[TopKRouting.WorkspaceElements(c.Experts)], workspace.ToArray(), $"workspace left zero, {how}");
                }
            }
            finally
            {
                TopKRouting.PersistentFrom = savedFrom;
                TopKRouting.PairsPerWarp = savedPairs;
                TopKRouting.TeamsFrom = savedTeams;
            }
            var (twinIds, twinWeights, twinCounts) = Route(TestDevices.Context.Cpu, c, logits, bias);
            Compare.Exact<int>(twinIds, onePass.Ids, $"ids against the CPU twin, {what}");
            Compare.Close(twinWeights, onePass.Weights, Compare.F32Tolerance, $"weights against the CPU twin, {what}");
            Compare.Exact<int>(twinCounts, onePass.Counts, $"counts against the CPU twin, {what}");
        }
    }

    /// <summary>
    /// On CUDA the token-team kernel (topk_routing_teams_*: 8 lanes a token, 4 tokens a warp, choices by rank among the
    /// candidates at or above the kept groups' smallest second key) must give bit-identical ids, weights and counts to the
    /// path it replaces (MOE_ROUTING_TEAMS=0: the two-token kernel, or one token per warp below its threshold), and the
    /// CPU twin's ids and counts and the reference's ids: token counts that are not a multiple of 4 (absent team tokens),
    /// one token, many blocks with several trips a warp, every dtype, k 1 to 8 with 2 to 4 kept groups, no bias, no
    /// renormalising, ties (coarse, two levels: up to all 128 candidates), NaN/Inf logits and rows, scores that underflow
    /// (the sigmoid's redo), NaN/Inf/FLT_MAX biases (staged sanitised), with and without the count workspace.
    /// </summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TeamsMatchTheOldPathBitForBit(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        const RoutingKind grouped = RoutingKind.DeepSeekGrouped;
        foreach (var (c, underflow, oddBias) in new (Case, bool, bool)[]
                 {
                     (new Case("teams deepseek f32 T8192", 8192, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true), false, false),
                     (new Case("teams deepseek f32 odd many trips", 20001, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true), false, false),
                     (new Case("teams deepseek bf16 T1025", 1025, 256, 8, grouped, DType.BF16, true, 8, 4, 2.5f, true), false, false),
                     (new Case("teams deepseek f16 T1027 no-renorm", 1027, 256, 8, grouped, DType.F16, false, 8, 4, 1f, true), false, false),
                     (new Case("teams deepseek T1", 1, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true), false, false),
                     (new Case("teams deepseek T6", 6, 256, 8, grouped, DType.BF16, true, 8, 4, 2.5f, true), false, false),
                     (new Case("teams deepseek T131 no bias", 131, 256, 8, grouped, DType.F32, true, 8, 4, 1f), false, false),
                     (new Case("teams k1 g8/1", 1500, 256, 1, grouped, DType.F32, true, 8, 1, 2f, true), false, false),
                     (new Case("teams k4 g8/2 f16", 1203, 256, 4, grouped, DType.F16, true, 8, 2, 1f, true), false, false),
                     (new Case("teams k6 g8/3", 2001, 256, 6, grouped, DType.F32, false, 8, 3, 1.5f, true), false, false),
                     (new Case("teams coarse", 3001, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true, Coarse: true), false, false),
                     (new Case("teams coarse bf16 no bias", 2002, 256, 8, grouped, DType.BF16, true, 8, 4, 2.5f, Coarse: true), false, false),
                     (new Case("teams two levels", 2050, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, TwoLevels: true), false, false),
                     (new Case("teams non-finite", 1999, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true, NonFinite: true), false, false),
                     (new Case("teams non-finite rows", 1031, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true, NonFiniteRows: true), false, false),
                     (new Case("teams non-finite rows f16 no bias", 1029, 256, 8, grouped, DType.F16, false, 8, 4, 1f, NonFiniteRows: true), false, false),
                     (new Case("teams underflow", 4097, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true), true, false),
                     (new Case("teams underflow bf16 no bias", 1030, 256, 8, grouped, DType.BF16, true, 8, 4, 2.5f), true, false),
                     (new Case("teams non-finite bias", 2003, 256, 8, grouped, DType.F32, true, 8, 4, 2.5f, true), false, true),
                     (new Case("teams non-finite bias and logits bf16", 1033, 256, 8, grouped, DType.BF16, true, 8, 4, 2.5f, true, NonFinite: true), true, true),
                 })
        {
            var logits = TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f);
            if (underflow) // a quarter far negative: 1 + exp(-x) around 2^126, where the fast sigmoid is redone by division
                logits = logits.Select(x => random.Next(4) == 0 ? -80f - 15f * random.NextSingle() : x).ToArray();
            logits = Shape(random, c, TokenOpsData.RoundTo(c.DType, logits));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            if (oddBias && bias is not null) // the teams stage the bias sanitised: NaN, +-inf and +-FLT_MAX biases (FLT_MAX and +inf both in group 3)
                foreach (var (expert, value) in new[] { (5, float.NaN), (40, float.PositiveInfinity), (77, float.NegativeInfinity),
                             (100, float.MaxValue), (101, float.PositiveInfinity), (140, -float.MaxValue), (200, float.NaN), (255, float.NaN) })
                    bias[expert] = value;
            string what = $"{c.Name} on {device}, seed {seed}";
            (int[] Ids, float[] Weights, int[] Counts) old;
            int savedTeams = TopKRouting.TeamsFrom;
            try
            {
                TopKRouting.TeamsFrom = int.MaxValue;
                old = Route(accelerator, c, logits, bias);
                TopKRouting.TeamsFrom = 1;
                foreach (bool withWorkspace in new[] { false, true })
                {
                    using var workspace = withWorkspace ? accelerator.Upload<int>(new int[TopKRouting.WorkspaceElements(c.Experts)]) : null;
                    var (ids, weights, counts) = Route(accelerator, c, logits, bias, workspace);
                    string how = $"teams{(withWorkspace ? " (workspace)" : "")} against the old path, {what}";
                    Compare.Exact<int>(old.Ids, ids, $"ids, {how}");
                    Compare.Exact<int>(old.Weights.Select(BitConverter.SingleToInt32Bits).ToArray(),
                        weights.Select(BitConverter.SingleToInt32Bits).ToArray(), $"weight bits, {how}");
                    Compare.Exact<int>(old.Counts, counts, $"counts, {how}");
                    if (workspace is not null)
                        Compare.Exact<int>(new int[TopKRouting.WorkspaceElements(c.Experts)], workspace.ToArray(), $"workspace left zero, {how}");
                }
            }
            finally
            {
                TopKRouting.TeamsFrom = savedTeams;
            }
            var (twinIds, twinWeights, twinCounts) = Route(TestDevices.Context.Cpu, c, logits, bias);
            Compare.Exact<int>(twinIds, old.Ids, $"ids against the CPU twin, {what}");
            Compare.Close(twinWeights, old.Weights, Compare.F32Tolerance, $"weights against the CPU twin, {what}");
            Compare.Exact<int>(twinCounts, old.Counts, $"counts against the CPU twin, {what}");
            var (expectedIds, _) = Reference(logits, c, bias);
            Compare.Exact<int>(expectedIds, old.Ids, $"ids against the reference, {what}");
        }
    }

    [Fact]
    public void TeamsOnlyOnDeepSeekShapesFromTheThreshold()
    {
        var deepSeek = TopKRoutingOptions.DeepSeek(8, 8, 4, 2.5f, null);
        int saved = TopKRouting.TeamsFrom;
        try
        {
            TopKRouting.TeamsFrom = TopKRouting.DefaultTeamsFrom;
            int from = TopKRouting.DefaultTeamsFrom;
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek, from - 1));
            Assert.True(TopKRouting.UsesTeamPath(true, 256, deepSeek, from));
            Assert.False(TopKRouting.UsesTeamPath(false, 256, deepSeek, from));                        // strided
            Assert.False(TopKRouting.UsesTeamPath(true, 128, deepSeek, from));                         // E=128
            Assert.False(TopKRouting.UsesTeamPath(true, 256, TopKRoutingOptions.Softmax(8), from));     // softmax
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek with { GroupCount = 16 }, from)); // 16 groups
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek with { TopKGroups = 5 }, from));  // > 128 candidates
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek with { TopKGroups = 3 }, from));  // 2 * 3 < k = 8
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek with { TopK = 16, TopKGroups = 4 }, from)); // k > 8
            Assert.True(TopKRouting.UsesTeamPath(true, 256, deepSeek with { TopK = 6, TopKGroups = 3 }, from));
            TopKRouting.TeamsFrom = int.MaxValue;
            Assert.False(TopKRouting.UsesTeamPath(true, 256, deepSeek, 1 << 20));
            Assert.Equal(TopKRouting.DefaultTeamsFrom, TopKRouting.TeamsFromEnvironment(null));
            Assert.Equal(int.MaxValue, TopKRouting.TeamsFromEnvironment("0"));
            Assert.Equal(int.MaxValue, TopKRouting.TeamsFromEnvironment("off"));
            Assert.Equal(1, TopKRouting.TeamsFromEnvironment("1"));
            Assert.Equal(4096, TopKRouting.TeamsFromEnvironment("4096"));
        }
        finally
        {
            TopKRouting.TeamsFrom = saved;
        }
    }

    [Fact]
    public void PersistentOnlyWhereItsEntriesExistFromTheThreshold()
    {
        int from = TopKRouting.DefaultPersistentFrom;
        int saved = TopKRouting.PersistentFrom;
        try
        {
            TopKRouting.PersistentFrom = from;
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 4, from - 1));
            Assert.True(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 4, from));   // F32 E=256
            Assert.True(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 4, elementSize: 4, from));   // F32 E=128
            Assert.True(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 2, from));   // BF16 E=256
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 4, elementSize: 2, from));  // BF16 E=128: 8 bytes a lane
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 2, elementSize: 4, from));  // F32 E=64
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: false, perLane: 8, elementSize: 4, from)); // strided
            TopKRouting.PersistentFrom = int.MaxValue; // the default (MOE_ROUTING_PERSISTENT unset)
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 4, 1 << 20));
            TopKRouting.PersistentFrom = 0;
            Assert.False(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 4, 0));
            Assert.True(TopKRouting.UsesPersistentPath(contiguous: true, perLane: 8, elementSize: 4, 1));
        }
        finally
        {
            TopKRouting.PersistentFrom = saved;
        }
    }

    [Fact]
    public void TwoTokensPerWarpOnlyOnTheContiguousPathFromTheThreshold()
    {
        int from = TopKRouting.TwoTokensPerWarpFrom;
        Assert.Equal(1, TopKRouting.TokensPerWarp(contiguous: true, from - 1));
        Assert.Equal(2, TopKRouting.TokensPerWarp(contiguous: true, from));
        Assert.Equal(2, TopKRouting.TokensPerWarp(contiguous: true, from + 1));
        Assert.Equal(1, TopKRouting.TokensPerWarp(contiguous: false, 1 << 20));
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HandWorkedSoftmax(string device)
    {
        var accelerator = TestDevices.Get(device);
        var c = new Case("hand", 2, 4, 2, RoutingKind.Softmax, DType.F32);
        // Token 0: the tie 3 = 3 goes to experts 1 and 2 in id order; renormalised, half each.
        // Token 1: softmax([0, ln 3, 0, ln 6]) = [1, 3, 1, 6] / 11; top 2 = experts 3, 1 -> [6/9, 3/9].
        var logits = new[] { 1f, 3f, 3f, 0f, 0f, MathF.Log(3f), 0f, MathF.Log(6f) };
        var (ids, weights, counts) = Route(accelerator, c, logits, null);
        Assert.Equal(new[] { 1, 2, 3, 1 }, ids);
        Compare.Close(new[] { 0.5f, 0.5f, 2f / 3f, 1f / 3f }, weights, 1e-6, "weights");
        Assert.Equal(new[] { 0, 2, 1, 1 }, counts);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void HandWorkedDeepSeekGrouping(string device)
    {
        var accelerator = TestDevices.Get(device);
        // 8 experts in 4 groups of 2, keep 2 groups, choose 3. Logits are chosen so that sigmoid(x) is
        // s = [.9, .1 | .6, .6 | .8, .05 | .5, .45]; the bias lifts expert 7 by .3.
        // Keys: [.9, .1, .6, .6, .8, .05, .5, .75]; group scores: 1.0, 1.2, .85, 1.25 -> keep groups 3 and 1.
        // Candidates 2 (.6), 3 (.6), 6 (.5), 7 (.75): choose 7, 2, 3 (the tie .6 = .6 to the lower id).
        // Weights: unbiased scores [.45, .6, .6], renormalised over 1.65, times 2.
        float[] s = { 0.9f, 0.1f, 0.6f, 0.6f, 0.8f, 0.05f, 0.5f, 0.45f };
        var logits = s.Select(p => MathF.Log(p / (1 - p))).ToArray();
        var bias = new float[] { 0, 0, 0, 0, 0, 0, 0, 0.3f };
        var c = new Case("hand", 1, 8, 3, RoutingKind.DeepSeekGrouped, DType.F32, true, 4, 2, 2f, true);
        var (ids, weights, counts) = Route(accelerator, c, logits, bias);
        Assert.Equal(new[] { 7, 2, 3 }, ids);
        Compare.Close(new[] { 2 * 0.45f / 1.65f, 2 * 0.6f / 1.65f, 2 * 0.6f / 1.65f }, weights, 1e-5, "weights");
        Assert.Equal(new[] { 0, 0, 1, 1, 0, 0, 0, 1 }, counts);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void NonFiniteLogitsKeepIdsInRange(string device)
    {
        var accelerator = TestDevices.Get(device);
        float nan = float.NaN, inf = float.PositiveInfinity;
        var logits = new[]
        {
            nan, nan, nan, nan, nan, nan, nan, nan,     // all NaN: every key -MaxValue, ties -> 0, 1, 2
            nan, inf, 1f, -inf, nan, 2f, 3f, 0f,        // +inf first, then 3, 2; NaN never beats a number
        };
        var softmax = new Case("nan", 2, 8, 3, RoutingKind.Softmax, DType.F32);
        var (ids, weights, _) = Route(accelerator, softmax, logits, null);
        Assert.Equal(new[] { 0, 1, 2, 1, 6, 5 }, ids);
        // All-NaN row: equal keys -> uniform softmax, 1/3 each after renormalising; +inf takes all the weight.
        Compare.Close(new[] { 1f / 3, 1f / 3, 1f / 3, 1f, 0f, 0f }, weights, 1e-6, "softmax weights");

        var grouped = new Case("nan grouped", 2, 8, 3, RoutingKind.DeepSeekGrouped, DType.F32, true, 4, 2);
        (ids, weights, _) = Route(accelerator, grouped, logits, null);
        Assert.All(ids, id => Assert.InRange(id, 0, 7));
        Assert.Equal(new[] { 0, 1, 2 }, ids[..3]);          // NaN scores 0: groups and experts tie to the lowest
        // Scores [0, 1, .73, 0, 0, .88, .95, .5]: groups {6,7} 1.45, {0,1} 1.0 (the +inf), {4,5} .88, {2,3} .73
        // -> keep groups 3 and 0 -> experts 1, 6, 7.
        Assert.Equal(new[] { 1, 6, 7 }, ids[3..]);
        Assert.All(weights, w => Assert.True(float.IsFinite(w), $"weight {w} is not finite"));
        Assert.Equal(0f, weights[0]);                       // 0 / (0 + 1e-20)
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void WorkspaceRunsAreRightAndLeaveItZero(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var workspace = accelerator.Allocate<int>(TopKRouting.WorkspaceElements(256));
        workspace.Clear();
        // One token (one block: no workspace use), then several launches of several blocks through the same
        // workspace (each block adds an arrival and its counts into one word per expert; the last arrival writes
        // the count and re-zeroes the word): each must count from zero, so the one before must have left it zero.
        foreach (var c in new[]
                 {
                     new Case("workspace T1", 1, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     // Two small blocks: most experts get no token, and their counts must still be written (0).
                     new Case("workspace T5 deepseek", 5, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("workspace deepseek", 3000, 256, 8, RoutingKind.DeepSeekGrouped, DType.F32, true, 8, 4, 2.5f, true),
                     new Case("workspace softmax E128", 2000, 128, 8, RoutingKind.Softmax, DType.BF16),
                     new Case("workspace softmax E8", 6000, 8, 2, RoutingKind.Softmax, DType.F32),
                     new Case("workspace deepseek again", 777, 256, 8, RoutingKind.DeepSeekGrouped, DType.F16, true, 8, 4, 2.5f, true),
                 })
        {
            var logits = TokenOpsData.RoundTo(c.DType, TestData.Uniform(random, c.Tokens * c.Experts, -4f, 4f));
            var bias = c.Bias ? TestData.Uniform(random, c.Experts, -0.5f, 0.5f) : null;
            var (ids, weights, counts) = Route(accelerator, c, logits, bias, workspace);
            var (expectedIds, expectedWeights) = Reference(logits, c, bias);
            string what = $"{c.Name} on {device}, seed {seed}";
            Compare.Exact<int>(expectedIds, ids, $"ids, {what}");
            Compare.Close(expectedWeights, weights, Compare.F32Tolerance, $"weights, {what}");
            Compare.Exact<int>(Histogram(expectedIds, c.Experts), counts, $"counts, {what}");
            Compare.Exact<int>(new int[TopKRouting.WorkspaceElements(256)], workspace.ToArray(), $"workspace after {what}");
        }
    }

    [Fact]
    public void BadInputIsRejectedBeforeAnyLaunch()
    {
        var cpu = TestDevices.Context.Cpu;
        using var logits = cpu.Allocate<float>(4 * 8);
        using var intLogits = cpu.Allocate<int>(4 * 8);
        using var ids = cpu.Allocate<int>(4 * 8);
        using var weights = cpu.Allocate<float>(4 * 8);
        using var counts = cpu.Allocate<int>(8);
        using var bias = cpu.Allocate<float>(8);
        void Run(MemoryBuffer l, int tokens, int experts, TopKRoutingOptions o) => TopKRouting.Run(l, tokens, experts, o, ids, weights, counts);

        Assert.Contains("TopK", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.Softmax(9))).Message);
        Assert.Contains("TopK", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.Softmax(0))).Message);
        Assert.Equal("logits", Assert.ThrowsAny<ArgumentException>(() => Run(intLogits, 4, 8, TopKRoutingOptions.Softmax(2))).ParamName);
        Assert.Equal("logits", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 5, 8, TopKRoutingOptions.Softmax(2))).ParamName);
        Assert.Equal("experts", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 0, 513, TopKRoutingOptions.Softmax(2))).ParamName);
        Assert.Equal("tokens", Assert.ThrowsAny<ArgumentException>(() => Run(logits, -1, 8, TopKRoutingOptions.Softmax(2))).ParamName);
        Assert.Contains("divide", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(2, 3, 1, 1f, bias))).Message);
        Assert.Contains("not enough experts", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(3, 4, 1, 1f, bias))).Message);
        Assert.Contains("at least 2 experts", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(2, 8, 4, 1f, bias))).Message);
        Assert.Contains("TopKGroups", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(2, 4, 5, 1f, bias))).Message);
        Assert.Contains("CorrectionBias", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.Softmax(2) with { CorrectionBias = bias })).Message);
        Assert.Contains("RoutedScalingFactor", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(2, 4, 2, float.NaN, bias))).Message);
        using var shortBias = cpu.Allocate<float>(4);
        Assert.Contains("CorrectionBias", Assert.ThrowsAny<ArgumentException>(() => Run(logits, 4, 8, TopKRoutingOptions.DeepSeek(2, 4, 2, 1f, shortBias))).Message);
        using var shortWorkspace = cpu.Allocate<int>(TopKRouting.WorkspaceElements(8) - 1);
        Assert.Equal("workspace", Assert.ThrowsAny<ArgumentException>(() => TopKRouting.Run(logits, 4, 8, TopKRoutingOptions.Softmax(2), ids, weights, counts, workspace: shortWorkspace)).ParamName);
        using var shortCounts = cpu.Allocate<int>(7);
        Assert.Equal("expertCounts", Assert.ThrowsAny<ArgumentException>(() => TopKRouting.Run(logits, 4, 8, TopKRoutingOptions.Softmax(2), ids, weights, shortCounts)).ParamName);
    }

    internal static (int[] Ids, float[] Weights, int[] Counts) Route(Accelerator accelerator, Case c, float[] logits, float[]? bias,
        MemoryBuffer<int>? workspace = null)
    {
        // Offset: the logits start that many elements into the buffer (a view that is not 16-byte aligned).
        using var paddedBuffer = TokenOpsData.Upload(accelerator, c.DType, new float[c.Offset].Concat(logits).ToArray());
        MemoryBuffer logitsBuffer = c.Offset == 0 ? paddedBuffer : paddedBuffer switch
        {
            MemoryBuffer<float> f => f.Slice(c.Offset, logits.Length),
            MemoryBuffer<BFloat16> b => b.Slice(c.Offset, logits.Length),
            MemoryBuffer<Half> h => h.Slice(c.Offset, logits.Length),
            _ => throw new ArgumentOutOfRangeException(nameof(c)),
        };
        using var biasBuffer = bias is null ? null : accelerator.Upload<float>(bias);
        using var ids = TokenOpsData.Poisoned<int>(accelerator, c.Tokens * c.TopK);
        using var weights = TokenOpsData.Poisoned<float>(accelerator, c.Tokens * c.TopK);
        using var counts = TokenOpsData.Poisoned<int>(accelerator, c.Experts);
        var options = new TopKRoutingOptions(c.Kind, c.TopK, c.Renormalize, c.Groups, c.TopKGroups, c.Scale, biasBuffer);
        TopKRouting.Run(logitsBuffer, c.Tokens, c.Experts, options, ids, weights, counts, workspace: workspace);
        return (ids.ToArray(), weights.ToArray(), counts.ToArray());
    }

    private static int[] Histogram(int[] ids, int experts)
    {
        var counts = new int[experts];
        foreach (int id in ids)
            counts[id]++;
        return counts;
    }

    private static float Sanitize(float x) => float.IsNaN(x) ? -float.MaxValue : Math.Clamp(x, -float.MaxValue, float.MaxValue);

    /// <summary>The routing written the slow, obvious way: sort by (key descending, id ascending), weights in double.</summary>
    internal static (int[] Ids, float[] Weights) Reference(float[] logits, Case c, float[]? bias)
    {
        int e = c.Experts, k = c.TopK;
        var ids = new int[c.Tokens * k];
        var weights = new float[c.Tokens * k];
        for (int t = 0; t < c.Tokens; t++)
        {
            var x = Enumerable.Range(0, e).Select(i => Sanitize(logits[t * e + i])).ToArray();
            int[] chosen;
            double[] w;
            if (c.Kind == RoutingKind.Softmax)
            {
                chosen = Enumerable.Range(0, e).OrderByDescending(i => x[i]).ThenBy(i => i).Take(k).ToArray();
                double max = x.Max();
                double z = x.Sum(v => Math.Exp(v - max));
                w = chosen.Select(i => Math.Exp(x[i] - max) / z).ToArray();
                if (c.Renormalize)
                {
                    double sum = w.Sum();
                    w = w.Select(v => v / sum).ToArray();
                }
            }
            else
            {
                // Keys in F32 as the kernel computes them (its exp: MathF.Exp differs in the last bit now and then, which
                // can swap nearly tied keys), so that exact ties stay ties.
                var keys = Enumerable.Range(0, e).Select(i => Sanitize(1f / (1f + TopKRouting.RoutingExp(-x[i])) + (bias?[i] ?? 0f))).ToArray();
                int size = e / c.Groups;
                var groupScore = Enumerable.Range(0, c.Groups)
                    .Select(g => keys.Skip(g * size).Take(size).OrderByDescending(v => v).Take(2).Sum()).ToArray();
                var kept = Enumerable.Range(0, c.Groups).OrderByDescending(g => groupScore[g]).ThenBy(g => g).Take(c.TopKGroups).ToHashSet();
                chosen = Enumerable.Range(0, e).Where(i => kept.Contains(i / size)).OrderByDescending(i => keys[i]).ThenBy(i => i).Take(k).ToArray();
                w = chosen.Select(i => 1 / (1 + Math.Exp(-(double)x[i]))).ToArray();
                if (c.Renormalize)
                {
                    double sum = w.Sum() + 1e-20;
                    w = w.Select(v => v / sum).ToArray();
                }
            }
            for (int j = 0; j < k; j++)
            {
                ids[t * k + j] = chosen[j];
                weights[t * k + j] = (float)(w[j] * c.Scale);
            }
        }
        return (ids, weights);
    }
}
