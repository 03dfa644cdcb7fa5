using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Parallel.Eplb;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The expert-parallel layer enqueues its experts phase step by step across ranks (interleaved) or rank after rank (ranked,
/// the default; MOE_EP_ENQUEUE). Each rank's stream runs the same kernels on the same data in the same
/// order either way, so the two orders give the same bits, on CPU and CUDA alike; and the phase timer sees the order asked for.
/// </summary>
public sealed class ExpertParallelEnqueueOrderTests
{
    private static readonly int[] Schedule = [33, 70, 5, 1, 0, 2, 33];

    public static TheoryData<string, int, string, string, string> Cases() => new()
    {
        { "cpu", 2, "deepseek_v3", "bf16", "none" },
        { "cpu", 3, "qwen2_moe", "f32", "none" },
        { "cpu", 4, "mixtral", "f32", "static" },
        { "cuda", 2, "deepseek_v3", "bf16", "none" },
        { "cuda", 2, "qwen3_moe", "bf16", "none" },
        { "cuda", 2, "qwen3_moe", "f32", "static" },
    };

    [Theory, MemberData(nameof(Cases))]
    public void InterleavedGivesTheBitsOfRanked(string kind, int ranks, string family, string dtype, string eplb)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        // Two layers, so that neither order can pass on buffers the other left behind (a step run out of order would
        // read the last forward's rows: another batch, or none).
        using var rankedLayer = Create(group, weights, eplb);
        using var interleavedLayer = Create(group, weights, eplb);
        rankedLayer.EnqueueOrder = EpEnqueueOrder.Ranked;
        interleavedLayer.EnqueueOrder = EpEnqueueOrder.Interleaved;
        foreach (int tokens in Schedule)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * weights.Config.HiddenSize), type);
            var ranked = rankedLayer.Forward(hidden, tokens);
            var interleaved = interleavedLayer.Forward(hidden, tokens);
            string what = $"interleaved vs ranked: {family} {dtype} over {ranks} x {kind}, EPLB {eplb}, T={tokens}, seed {seed}";
            Compare.Exact<float>(ranked, interleaved, what);
            Assert.Equal(rankedLayer.LastRowsPerRank, interleavedLayer.LastRowsPerRank);
        }
    }

    /// <summary>The timer's experts marks come in the order asked for: ranked closes rank 0 before rank 1 opens; interleaved opens every rank first.</summary>
    [Theory]
    [InlineData(EpEnqueueOrder.Ranked, "B0 E0 B1 E1 B2 E2")]
    [InlineData(EpEnqueueOrder.Interleaved, "B0 B1 B2 E0 E1 E2")]
    public void ExpertsMarksFollowTheOrder(EpEnqueueOrder order, string expected)
    {
        var group = TestDevices.GetGroup("cpu", 3);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.F32);
        using var moe = Create(group, weights, "none");
        var timer = new RecordingTimer();
        moe.PhaseTimer = timer;
        moe.EnqueueOrder = order;
        int tokens = 40; // 80 rows over 12 experts: every rank receives some (a rank without rows has no marks)
        moe.Forward(TestData.Uniform(random, tokens * weights.Config.HiddenSize), tokens);
        Assert.All(moe.LastRowsPerRank, rows => Assert.True(rows > 0, $"a rank received no rows (seed {seed})"));
        Assert.Equal(expected, string.Join(' ', timer.Marks));
    }

    [Theory]
    [InlineData(null, EpEnqueueOrder.Ranked)]
    [InlineData("", EpEnqueueOrder.Ranked)]
    [InlineData("interleaved", EpEnqueueOrder.Interleaved)]
    [InlineData(" Ranked ", EpEnqueueOrder.Ranked)]
    public void ParsesTheSwitch(string? value, EpEnqueueOrder expected) => Assert.Equal(expected, EpEnqueue.Parse(value));

    [Fact]
    public void RejectsAnUnknownOrderByName()
    {
        var error = Assert.Throws<ArgumentException>(() => EpEnqueue.Parse("threads"));
        Assert.Contains("MOE_EP_ENQUEUE='threads'", error.Message);
        Assert.Contains("interleaved or ranked", error.Message);
    }

    private sealed class RecordingTimer : IExpertParallelPhaseTimer
    {
        public List<string> Marks { get; } = [];
        public void Begin(ExpertParallelPhase phase, int rank) => Add("B", phase, rank);
        public void End(ExpertParallelPhase phase, int rank) => Add("E", phase, rank);
        private void Add(string what, ExpertParallelPhase phase, int rank)
        {
            if (phase == ExpertParallelPhase.Experts)
                Marks.Add(what + rank);
        }
    }

    private static ExpertParallelMoe Create(IReadOnlyList<Accelerator> group, MoeLayerWeights weights, string eplb) => eplb switch
    {
        "none" => new ExpertParallelMoe(group, weights),
        "static" => ExpertParallelMoe.WithEplb(group, weights, new EplbOptions
        {
            Mode = EplbMode.Static, Redundant = 2 * group.Count,
            Loads = Enumerable.Range(0, weights.Config.NumExperts).Select(e => (long)(1000 / (1 + (e * 5) % weights.Config.NumExperts))).ToArray(),
        }),
        _ => throw new ArgumentException(eplb),
    };
}
