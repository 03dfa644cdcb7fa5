using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cpu;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Parallel.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The expert-parallel layer keeps its device buffers across forwards (grown to the largest batch, views for smaller
/// ones). A layer that has run other batches before must give what a fresh layer gives: larger, smaller, one token
/// (a rank with no tokens), zero tokens, and back. Bit for bit on CPU accelerators; on CUDA within 1e-6 (the same
/// kernels on the same data; the kept split-K scratch is at least what a fresh layer sizes, so the split choice is the same).
/// And a forward no larger than an earlier one allocates no device memory at all.
/// </summary>
public sealed class ExpertParallelReuseTests
{
    private static readonly int[] Schedule = [33, 70, 5, 5, 1, 0, 2, 33]; // 5 twice: the kept router offsets not set again

    public static TheoryData<string, int, string, string, string> Cases() => new()
    {
        { "cpu", 2, "deepseek_v3", "bf16", "none" },
        { "cpu", 3, "qwen2_moe", "f32", "none" },
        { "cpu", 4, "mixtral", "f32", "none" },
        { "cpu", 2, "qwen3_moe", "f32", "static" },
        { "cpu", 4, "deepseek_v3", "bf16", "static" },
        { "cuda", 2, "deepseek_v3", "bf16", "none" },
        { "cuda", 2, "qwen3_moe", "f32", "static" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void ReusedLayerMatchesFreshLayer(string kind, int ranks, string family, string dtype, string eplb)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        using var reused = Create(group, weights, eplb);
        foreach (int tokens in Schedule)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * weights.Config.HiddenSize), type);
            var actual = reused.Forward(hidden, tokens);
            using var fresh = Create(group, weights, eplb);
            var expected = fresh.Forward(hidden, tokens);
            string what = $"{family} {dtype} over {ranks} x {kind}, EPLB {eplb}, T={tokens}, seed {seed}";
            Assert.Equal(expected.Length, actual.Length);
            if (kind == "cpu")
                Compare.Exact<float>(expected, actual, what);
            else if (tokens > 0)
                Compare.Close(expected, actual, 1e-6, what);
            Assert.Equal(fresh.LastRowsPerRank, reused.LastRowsPerRank);
            Assert.Equal(tokens, reused.LastTokensPerRank.Sum());
            // The dispatch statistics: each rank's held experts' rows add up to what it received, and (contiguous experts)
            // the active count is the held experts with rows.
            Assert.Equal(fresh.LastRowsPerHeldExpert, reused.LastRowsPerHeldExpert);
            for (int d = 0; d < ranks; d++)
            {
                Assert.Equal(reused.LastRowsPerRank[d], reused.LastRowsPerHeldExpert[d].Sum());
                if (eplb == "none")
                    Assert.Equal(reused.LastRowsPerHeldExpert[d].Count(rows => rows > 0), reused.LastActiveExpertsPerRank[d]);
            }
        }
    }

    /// <summary>The caller-array forward rejects an output or input of the wrong length by name, and the layer works after.</summary>
    [Fact]
    public void ForwardIntoAnArrayRejectsWrongLengths()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.F32);
        using var moe = Create(group, weights, "none");
        int h = weights.Config.HiddenSize;
        var hidden = TestData.Uniform(random, 5 * h);
        var error = Assert.Throws<ArgumentException>(() => moe.Forward(hidden, 5, new float[5 * h - 1]));
        Assert.Equal("output", error.ParamName);
        Assert.Contains("[T=5, H=", error.Message);
        error = Assert.Throws<ArgumentException>(() => moe.Forward(hidden.AsSpan(1), 5, new float[5 * h]));
        Assert.Equal("hidden", error.ParamName);
        var output = new float[5 * h];
        moe.Forward(hidden, 5, output);
        Compare.Exact<float>(moe.Forward(hidden, 5), output, $"the array forward after rejected calls (seed {seed})");
    }

    public static TheoryData<string, string> AllocationCases() => new()
    {
        { "cpu", "none" },
        { "cpu", "static" },
        { "cuda", "none" },
        { "cuda", "static" },
    };

    /// <summary>On accelerators of its own (so no other test's buffers are counted): after a forward of 80 tokens, the same forward again and forwards of 40, 17, 1 and 0 tokens allocate nothing.</summary>
    [Theory, MemberData(nameof(AllocationCases))]
    public void SteadyStateForwardsAllocateNothing(string kind, string eplb)
    {
        TestDevices.GetGroup(kind, 2); // skips without the device
        var ranks = Enumerable.Range(0, 2).Select(i => kind == "cpu" ? (Accelerator)new CpuAccelerator(i) : CudaAccelerator.Open(i)).ToList();
        try
        {
            var random = TestData.NewRandom(out int seed);
            using var folder = new TempFolder();
            var (_, layer) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 12, seed);
            var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
            using var ep = Create(ranks, weights, eplb);
            int h = weights.Config.HiddenSize;
            var first = TestData.Uniform(random, 80 * h);
            ep.Forward(first, 80);
            var before = ranks.Select(a => a.AllocationCount).ToArray();
            var bytes = ranks.Select(a => a.AllocatedBytes).ToArray();
            ep.Forward(first, 80);
            // Received rows are kept at twice a rank's first share (at most all 80k pairs): at least 40 tokens' worth.
            foreach (int tokens in new[] { 40, 17, 1, 0, 40 })
                ep.Forward(TestData.Uniform(random, tokens * h), tokens);
            Assert.Equal(before, ranks.Select(a => a.AllocationCount).ToArray());
            Assert.Equal(bytes, ranks.Select(a => a.AllocatedBytes).ToArray());
        }
        finally
        {
            foreach (var a in ranks)
                a.Dispose();
        }
    }

    private static ExpertParallelMoe Create(IReadOnlyList<Accelerator> group, MoeLayerWeights weights, string eplb) => eplb switch
    {
        "none" => new ExpertParallelMoe(group, weights),
        // A static placement with 2 replicas per rank: hot experts in several slots, rows spread over them.
        "static" => ExpertParallelMoe.WithEplb(group, weights, new EplbOptions
        {
            Mode = EplbMode.Static, Redundant = 2 * group.Count,
            Loads = Enumerable.Range(0, weights.Config.NumExperts).Select(e => (long)(1000 / (1 + (e * 5) % weights.Config.NumExperts))).ToArray(),
        }),
        _ => throw new ArgumentException(eplb),
    };
}
