using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Parallel.Eplb;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Eplb;

/// <summary>
/// The expert-parallel layer over EPLB slots against the layer without replicas (contiguous experts), forward by
/// forward, under skewed routing whose hot set drifts, so online EPLB migrates weights several times while it runs.
/// On CPU accelerators the outputs must be equal bit for bit (each row meets the same expert weights, the k choices
/// are summed in the same order); on CUDA within the dtype's bound (grouped GEMM tiles depend on rows per expert).
/// </summary>
public sealed class ExpertParallelEplbTests
{
    private static readonly int[] TokenSchedule = [33, 40, 1, 0, 57, 33];

    public static TheoryData<string, int, string, string, int> OnlineCases() => new()
    {
        { "cpu", 2, "qwen3_moe", "f32", 2 },
        { "cpu", 2, "deepseek_v3", "bf16", 4 },
        { "cpu", 3, "qwen2_moe", "f32", 3 },
        { "cpu", 4, "qwen3_moe", "bf16", 4 },
        { "cuda", 2, "qwen3_moe", "f32", 2 },
        { "cuda", 2, "deepseek_v3", "bf16", 4 },
    };

    /// <summary>Online EPLB, rebalancing every 2 forwards, the hot experts re-drawn every 5: at least 2 migrations, outputs unchanged.</summary>
    [Theory, MemberData(nameof(OnlineCases))]
    public void OnlineEplbKeepsOutputsExactThroughMigrations(string kind, int ranks, string family, string dtype, int redundant)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        int experts = ranks == 3 ? 12 : 16;
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        using var baseline = new ExpertParallelMoe(group, weights);
        var options = new EplbOptions { Mode = EplbMode.Online, Redundant = redundant, RebalanceEvery = 2, WindowForwards = 3, MinImprovement = 0 };
        using var eplb = ExpertParallelMoe.WithEplb(group, weights, options);
        var slots = eplb.Eplb!;
        Assert.Equal((experts + redundant) / ranks, eplb.ExpertsPerRank);
        var hot = new ZipfRouting(experts, 1, 1.5, seed, driftPeriod: 5);
        int copiesOverlapped = 0;
        for (int step = 0; step < 24; step++)
        {
            int tokens = TokenSchedule[step % TokenSchedule.Length];
            var hidden = MoeLayerFixtures.RoundTo(SkewedHidden(random, weights, hot, tokens, step), type);
            var expected = baseline.Forward(hidden, tokens);
            bool overlapping = slots.CopiesInFlight;
            var actual = eplb.Forward(hidden, tokens);
            copiesOverlapped += overlapping ? 1 : 0;
            string what = $"{family} {dtype} over {ranks} x {kind}, R={redundant}, step {step}, T={tokens}, migrations {slots.Migrations}, seed {seed}";
            if (kind == "cpu")
                Compare.Exact<float>(expected, actual, what);
            else if (tokens > 0)
                Compare.Close(expected, actual, Compare.ToleranceFor(type), what);
            Assert.Equal((long)tokens * weights.Config.TopK, eplb.LastRowsPerRank.Sum());
            // The slots forwards read always hold exactly what the routing table says (copies only touch the back store).
            AssertStoresMatchPlacement(slots, weights);
        }
        Assert.True(slots.Migrations >= 2, $"only {slots.Migrations} migrations in 24 forwards (seed {seed})");
        Assert.True(copiesOverlapped >= 2, $"copies overlapped only {copiesOverlapped} forwards");
        Assert.Equal(slots.Migrations, slots.MigrationMilliseconds.Count);
    }

    [Theory]
    [InlineData("cpu", 2, 2)]
    [InlineData("cpu", 4, 0)]
    [InlineData("cuda", 2, 2)]
    public void StaticEplbFromALoadProfileKeepsOutputsExact(string kind, int ranks, int redundant)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.F32);
        var loads = Enumerable.Range(0, 16).Select(e => (long)(1000 / (1 + (e * 7) % 16))).ToArray();
        string path = Path.Combine(folder.Path, "loads.json");
        File.WriteAllText(path, "[" + string.Join(", ", loads) + "]");
        using var baseline = new ExpertParallelMoe(group, weights);
        using var eplb = ExpertParallelMoe.WithEplb(group, weights, new EplbOptions { Mode = EplbMode.Static, Redundant = redundant, Loads = PlacementFile.ReadLoads(path) });
        var planned = PlacementFile.Plan(path, ranks, (16 + redundant) / ranks);
        Assert.True(planned.SameSlotsAs(eplb.Eplb!.Current), $"layer placement {eplb.Eplb.Current} is not the planned {planned}");
        var hot = new ZipfRouting(16, 1, 1.2, seed);
        foreach (int tokens in new[] { 33, 1, 0, 64 })
        {
            var hidden = SkewedHidden(random, weights, hot, tokens, 0);
            var expected = baseline.Forward(hidden, tokens);
            var actual = eplb.Forward(hidden, tokens);
            if (kind == "cpu")
                Compare.Exact<float>(expected, actual, $"static EPLB over {ranks} x {kind}, T={tokens}, seed {seed}");
            else if (tokens > 0)
                Compare.Close(expected, actual, Compare.F32Tolerance, $"static EPLB over {ranks} x {kind}, T={tokens}, seed {seed}");
        }
        Assert.Equal(0, eplb.Eplb.Migrations);
    }

    /// <summary>Given (synthetic) routing: no balancer and online EPLB agree exactly, and online spreads the rows.</summary>
    [Fact]
    public void GivenZipfRoutingOnlineMatchesNoBalancerAndEvensTheLoad()
    {
        var group = TestDevices.GetGroup("cpu", 4);
        var random = TestData.NewRandom(out int seed);
        var config = SmallConfig(16, 4);
        using var none = ExpertParallelMoe.CreateRandom(group, config, DType.F32, seed, new EplbOptions { Mode = EplbMode.None });
        using var online = ExpertParallelMoe.CreateRandom(group, config, DType.F32, seed,
            new EplbOptions { Mode = EplbMode.Online, Redundant = 4, RebalanceEvery = 2, WindowForwards = 2 });
        var routing = new ZipfRouting(16, 4, 1.2, seed);
        double noneBalance = 0, onlineBalance = 0;
        const int Tokens = 128, Steps = 10;
        for (int step = 0; step < Steps; step++)
        {
            var hidden = TestData.Uniform(random, Tokens * 64);
            var (ids, weights) = routing.Generate(Tokens, step);
            Compare.Exact<float>(none.Forward(hidden, Tokens, ids, weights), online.Forward(hidden, Tokens, ids, weights), $"step {step}, seed {seed}");
            if (step >= Steps / 2)
            {
                noneBalance += Balance(none.LastRowsPerRank);
                onlineBalance += Balance(online.LastRowsPerRank);
            }
        }
        Assert.True(online.Eplb!.Migrations >= 1, "online EPLB never migrated");
        Assert.True(onlineBalance < noneBalance, $"balance online {onlineBalance / 5:F3} not better than none {noneBalance / 5:F3} (seed {seed})");
    }

    [Fact]
    public void EplbOptionsRejectSlotCountsThatDoNotDivide()
    {
        var group = TestDevices.GetGroup("cpu", 3);
        var config = SmallConfig(16, 2);
        var error = Assert.Throws<ArgumentException>(() => ExpertParallelMoe.CreateRandom(group, config, DType.F32, 1, new EplbOptions { Mode = EplbMode.Online, Redundant = 1 }));
        Assert.Contains("17", error.Message);
        Assert.Throws<ArgumentException>(() => ExpertParallelMoe.CreateRandom(TestDevices.GetGroup("cpu", 2), config, DType.F32, 1, new EplbOptions { Mode = EplbMode.Static, Redundant = 2 }));
        Assert.Throws<ArgumentException>(() => ExpertParallelMoe.CreateRandom(TestDevices.GetGroup("cpu", 2), config, DType.F32, 1, new EplbOptions { Mode = EplbMode.None, Redundant = 2 }));
    }

    /// <summary>A softmax top-k layer, H 64, I 32 (random weights, no checkpoint).</summary>
    internal static ModelConfig SmallConfig(int experts, int topK) => new()
    {
        Family = ModelFamily.Qwen3Moe, HiddenSize = 64, MoeIntermediateSize = 32, NumExperts = experts, TopK = topK,
        NumHiddenLayers = 1, NormTopKProb = true,
    };

    internal static double Balance(long[] rowsPerRank) =>
        rowsPerRank.Sum() == 0 ? 1 : rowsPerRank.Max() / rowsPerRank.Average();

    /// <summary>
    /// Hidden states that the real router sends to a Zipf-hot expert: each token is small noise plus a multiple of the
    /// router row of an expert drawn from <paramref name="hot"/> at <paramref name="step"/> (its logit stands out by ~4).
    /// </summary>
    internal static float[] SkewedHidden(Random random, MoeLayerWeights weights, ZipfRouting hot, int tokens, int step)
    {
        int h = weights.Config.HiddenSize;
        var router = weights.RouterGate.ToFloats();
        var (ids, _) = hot.Generate(tokens, step);
        var hidden = TestData.Uniform(random, tokens * h, -0.5f, 0.5f);
        for (int t = 0; t < tokens; t++)
        {
            var row = router.AsSpan(ids[t * hot.TopK] * h, h);
            double norm = 0;
            foreach (var v in row)
                norm += v * v;
            float scale = (float)(4 / Math.Max(norm, 1e-12));
            for (int i = 0; i < h; i++)
                hidden[t * h + i] += scale * row[i];
        }
        return hidden;
    }

    /// <summary>Every front slot holds the weights of the expert the placement says (compared with the host weights).</summary>
    private static void AssertStoresMatchPlacement(EplbSlots slots, MoeLayerWeights weights)
    {
        var gateUp = MoeLayerFixtures.RoundTo(weights.ExpertGateUp.ToFloats(), weights.DType);
        var down = MoeLayerFixtures.RoundTo(weights.ExpertDown.ToFloats(), weights.DType);
        long gateUpExpert = gateUp.Length / weights.Config.NumExperts, downExpert = down.Length / weights.Config.NumExperts;
        for (int d = 0; d < slots.Devices; d++)
        {
            var store = slots.Store(d);
            var storedGateUp = ToFloats(store.GateUp);
            var storedDown = ToFloats(store.Down);
            for (int s = 0; s < store.Slots; s++)
            {
                int expert = slots.Current.ExpertAt(d, s);
                Assert.Equal(expert, store.Experts[s]);
                Compare.Exact<float>(gateUp.AsSpan((int)(expert * gateUpExpert), (int)gateUpExpert), storedGateUp.AsSpan((int)(s * gateUpExpert), (int)gateUpExpert), $"gate_up of slot {s} of device {d} (expert {expert})");
                Compare.Exact<float>(down.AsSpan((int)(expert * downExpert), (int)downExpert), storedDown.AsSpan((int)(s * downExpert), (int)downExpert), $"down of slot {s} of device {d} (expert {expert})");
            }
        }
    }

    internal static float[] ToFloats(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(v => (float)v).ToArray(),
        MemoryBuffer<Half> x => x.ToArray().Select(v => (float)v).ToArray(),
        _ => throw new ArgumentException(buffer.Describe()),
    };
}
