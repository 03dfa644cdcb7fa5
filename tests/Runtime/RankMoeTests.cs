using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cpu;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Runtime.Distributed;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Tests.Collectives;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The per-rank layers of one process per GPU, run as threads on CPU accelerators (<see cref="ThreadProcessGroup"/>):
/// every rank's output equals the in-process multi-accelerator layer's, bit for bit (the same kernels on the same
/// rows; sums in rank order). The multi-process NCCL runs are in tests/Cli/MultiProcessRunTests.
/// </summary>
public class RankMoeTests
{
    public static TheoryData<string, int, int, string> Cases => new()
    {
        { "mixtral", 2, 8, "f32" },
        { "qwen2_moe", 3, 6, "f32" },
        { "deepseek_v3", 4, 16, "f32" },
        { "qwen3_moe", 2, 8, "bf16" },
        { "deepseek_v3", 2, 16, "f32" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void TensorParallelRanksMatchTheInProcessLayer(string family, int ranks, int experts, string dtypeName)
    {
        foreach (int tokens in new[] { 0, 1, 33 })
            Check(family, ranks, experts, DTypes.Parse(dtypeName), tokens, expertParallel: false);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ExpertParallelRanksMatchTheInProcessLayer(string family, int ranks, int experts, string dtypeName)
    {
        // 1 token over several ranks: ranks with no tokens still serve their experts.
        foreach (int tokens in new[] { 0, 1, 33 })
            Check(family, ranks, experts, DTypes.Parse(dtypeName), tokens, expertParallel: true);
    }

    /// <summary>One rank layer kept over batches that grow, shrink, leave ranks without tokens and come back: its kept buffers give what a fresh in-process layer gives.</summary>
    [Theory]
    [InlineData("deepseek_v3", 2, 16, "bf16")]
    [InlineData("qwen2_moe", 3, 6, "f32")]
    public void ExpertParallelRankLayerKeptAcrossBatchesMatchesTheInProcessLayer(string family, int ranks, int experts, string dtypeName)
    {
        int[] schedule = [33, 70, 1, 0, 5, 33];
        var dtype = DTypes.Parse(dtypeName);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, dtype);
        var accelerators = TestDevices.GetGroup("cpu", ranks);
        var inputs = schedule.Select(t => TestData.Uniform(random, t * weights.Config.HiddenSize)).ToArray();
        var expected = inputs.Select((hidden, i) =>
        {
            using var ep = new ExpertParallelMoe(accelerators, weights);
            return ep.Forward(hidden, schedule[i]);
        }).ToArray();
        var groups = ThreadProcessGroup.CreateWorld(accelerators, TimeSpan.FromSeconds(60));
        var outputs = new float[ranks][][];
        ProcessGroupTests.RunRanks(ranks, r =>
        {
            using var kept = new RankExpertParallelMoe(groups[r], weights);
            outputs[r] = inputs.Select((hidden, i) => kept.Forward(hidden, schedule[i])).ToArray();
        });
        for (int r = 0; r < ranks; r++)
            for (int i = 0; i < schedule.Length; i++)
                Compare.Exact<float>(expected[i], outputs[r][i], $"ep {family} {dtypeName} over {ranks} ranks, batch {i} (T={schedule[i]}), rank {r}, seed {seed}");
    }

    /// <summary>
    /// On CPU accelerators of its own (so no other test's buffers are counted): after a forward of 80 tokens, the same
    /// forward again and forwards of 40, 17, 1 and 0 tokens allocate no accelerator memory on any rank.
    /// </summary>
    [Fact]
    public void ExpertParallelRankSteadyStateForwardsAllocateNothing()
    {
        const int ranks = 2;
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 8, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        int h = weights.Config.HiddenSize;
        var accelerators = Enumerable.Range(0, ranks).Select(i => (Accelerator)new CpuAccelerator(i)).ToList();
        try
        {
            var groups = ThreadProcessGroup.CreateWorld(accelerators, TimeSpan.FromSeconds(60));
            var first = TestData.Uniform(random, 80 * h);
            var later = new[] { 40, 17, 1, 0, 40 }.Select(t => (Tokens: t, Hidden: TestData.Uniform(random, t * h))).ToArray();
            var counts = new long[ranks][];
            ProcessGroupTests.RunRanks(ranks, r =>
            {
                using var ep = new RankExpertParallelMoe(groups[r], weights);
                ep.Forward(first, 80);
                ep.Forward(first, 80);
                long before = accelerators[r].AllocationCount;
                foreach (var (tokens, hidden) in later)
                    ep.Forward(hidden, tokens);
                counts[r] = [before, accelerators[r].AllocationCount];
            });
            for (int r = 0; r < ranks; r++)
                Assert.True(counts[r][0] == counts[r][1], $"rank {r}: {counts[r][1] - counts[r][0]} allocations in steady-state forwards (seed {seed})");
        }
        finally
        {
            foreach (var a in accelerators)
                a.Dispose();
        }
    }

    private static void Check(string family, int ranks, int experts, DType dtype, int tokens, bool expertParallel)
    {
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, dtype);
        var hidden = TestData.Uniform(random, tokens * weights.Config.HiddenSize);
        var accelerators = TestDevices.GetGroup("cpu", ranks);

        float[] expected;
        if (expertParallel)
        {
            using var ep = new ExpertParallelMoe(accelerators, weights);
            expected = ep.Forward(hidden, tokens);
        }
        else
        {
            using var tp = new TensorParallelMoe(accelerators, weights, AllReduceAlgorithm.OneShot);
            expected = tp.Forward(hidden, tokens);
        }

        var groups = ThreadProcessGroup.CreateWorld(accelerators, TimeSpan.FromSeconds(60));
        var outputs = new float[ranks][];
        var rowsPerRank = new long[ranks][];
        ProcessGroupTests.RunRanks(ranks, r =>
        {
            if (expertParallel)
            {
                using var layer = new RankExpertParallelMoe(groups[r], weights);
                outputs[r] = layer.Forward(hidden, tokens);
                rowsPerRank[r] = layer.LastRowsPerRank;
            }
            else
            {
                using var layer = new RankTensorParallelMoe(groups[r], weights);
                outputs[r] = layer.Forward(hidden, tokens);
            }
        });
        string what = $"{(expertParallel ? "ep" : "tp")} {family} {DTypes.Name(dtype)} over {ranks} ranks, T={tokens}, seed {seed}";
        for (int r = 0; r < ranks; r++)
            Compare.Exact<float>(expected, outputs[r], $"{what}: rank {r}");
        if (expertParallel)
            for (int r = 1; r < ranks; r++)
                Assert.Equal(rowsPerRank[0], rowsPerRank[r]);
    }
}
