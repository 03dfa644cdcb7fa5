using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Scaling;

/// <summary>
/// The launch list of an EP forward (ExpertParallelMoe.Forward, contiguous experts), counted per phase and rank; on two
/// GPUs, checked against the kernels the forward really launches in each phase.
/// </summary>
public sealed class EpHostOpsTests
{
    /// <summary>Kernels this thread launched between each phase's Begin and End, per (phase, rank).</summary>
    private sealed class LaunchCounter : IExpertParallelPhaseTimer
    {
        private readonly Dictionary<(ExpertParallelPhase, int), long> _begin = new();
        public Dictionary<(ExpertParallelPhase Phase, int Rank), long> Launches { get; } = new();
        /// <summary>Launches between the first Begin and the last End of a phase over all ranks.</summary>
        public Dictionary<ExpertParallelPhase, long> Window { get; } = new();
        private readonly Dictionary<ExpertParallelPhase, long> _first = new();

        public void Begin(ExpertParallelPhase phase, int rank)
        {
            _begin[(phase, rank)] = CudaKernel.LaunchesOnThisThread;
            _first.TryAdd(phase, CudaKernel.LaunchesOnThisThread);
        }

        public void End(ExpertParallelPhase phase, int rank)
        {
            Launches[(phase, rank)] = CudaKernel.LaunchesOnThisThread - _begin[(phase, rank)];
            Window[phase] = CudaKernel.LaunchesOnThisThread - _first[phase];
        }
    }

    /// <summary>
    /// Launches of a single-matrix GEMM call on the skinny split-K kernel: one with its reduction folded in (the default),
    /// two with MOE_SKINNY_REDUCE=kernel (GroupedGemm.SingleMatrixLaunches).
    /// </summary>
    private static int SkinnyCallLaunches =>
        GroupedGemmSkinny.Enabled && GroupedGemmSkinny.ReduceFromEnvironment == GroupedGemmSkinny.Reduce.Kernel ? 2 : 1;

    [Theory]
    [InlineData("qwen3_moe", 33)]
    [InlineData("deepseek_v3", 70)]
    [InlineData("qwen2_moe", 1)]   // rank 0 without tokens; the shared expert's gate and sigmoid
    public void TheListMatchesTheLaunchesOfARealForwardOnTwoGpus(string family, int tokens)
    {
        var group = TestDevices.GetGroup("cuda", 2);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16);
        // Ranked: each rank's experts marks bracket only its own launches (interleaved, rank 0's bracket holds rank 1's steps).
        using var layer = new ExpertParallelMoe(group, weights) { EnqueueOrder = EpEnqueueOrder.Ranked };
        var hidden = TestData.Uniform(random, tokens * weights.Config.HiddenSize);
        layer.Forward(hidden, tokens); // first forward: buffers and kernels
        var counter = new LaunchCounter();
        layer.PhaseTimer = counter;
        layer.Forward(hidden, tokens);
        // Interleaved: the same launches, all ranks' experts inside the phase's window.
        var interleaved = new LaunchCounter();
        layer.PhaseTimer = interleaved;
        layer.EnqueueOrder = EpEnqueueOrder.Interleaved;
        layer.Forward(hidden, tokens);
        Assert.Equal(Enumerable.Range(0, 2).Sum(r => (long)EpHostOps.Experts((int)layer.LastRowsPerRank[r], layer.ExpertsPerRank).Launches),
            interleaved.Window[ExpertParallelPhase.Experts]);
        var c = weights.Config;
        string what = $"{family} T={tokens} seed {seed}";
        for (int r = 0; r < 2; r++)
        {
            int share = layer.LastTokensPerRank[r], rows = (int)layer.LastRowsPerRank[r];
            Assert.True(share == 0 || counter.Launches[(ExpertParallelPhase.RouteAndPermute, r)] == EpHostOps.Route(c, share).Launches,
                $"{what}: rank {r} route launched {counter.Launches.GetValueOrDefault((ExpertParallelPhase.RouteAndPermute, r))}, listed {EpHostOps.Route(c, share).Launches}");
            Assert.True(rows == 0 || counter.Launches[(ExpertParallelPhase.Experts, r)] == EpHostOps.Experts(rows, layer.ExpertsPerRank).Launches,
                $"{what}: rank {r} experts launched {counter.Launches.GetValueOrDefault((ExpertParallelPhase.Experts, r))}, listed {EpHostOps.Experts(rows, layer.ExpertsPerRank).Launches}");
            Assert.True(share == 0 || counter.Launches[(ExpertParallelPhase.SharedAndUnpermute, r)] == EpHostOps.Output(c, share).Launches,
                $"{what}: rank {r} output launched {counter.Launches.GetValueOrDefault((ExpertParallelPhase.SharedAndUnpermute, r))}, listed {EpHostOps.Output(c, share).Launches}");
            // Each all-to-allv launches one kernel per rank, all inside every rank's marks (the marks bracket the whole call).
            Assert.Equal(2, counter.Launches[(ExpertParallelPhase.Dispatch, r)]);
            Assert.Equal(2, counter.Launches[(ExpertParallelPhase.Combine, r)]);
        }
    }

    [Theory]
    // T*k slots in chunks of 512; one chunk (and at most 2048 rows) is one kernel; else offsets and scatter fuse while
    // chunks * ceil(E / 128) <= 128.
    [InlineData(64, 8, 128, true, 1)]     // 1 chunk: the one-kernel path
    [InlineData(512, 1, 64, false, 1)]    // 1 chunk, no gather
    [InlineData(128, 8, 128, true, 3)]    // 2 chunks: count, offsets+scatter, gather
    [InlineData(1024, 1, 64, false, 2)]   // 2 chunks, no gather
    [InlineData(8192, 8, 128, true, 3)]   // 128 chunks x 1: still fused
    [InlineData(8192, 8, 256, true, 4)]   // 128 chunks x 2: offsets and scatter apart
    [InlineData(0, 8, 128, true, 1)]      // nothing to count or gather: the one-kernel path's single block
    public void PermuteLaunchesFollowItsPathChoice(int tokens, int topK, int experts, bool gather, int launches) =>
        Assert.Equal(launches, Permute.Launches(tokens, topK, experts, gather));

    [Fact]
    public void EachPhaseCountsTheOpsTheForwardIssues()
    {
        var qwen = LayerPresets.Get("qwen3-30b-a3b");
        var deepseek = LayerPresets.Get("deepseek-v3");
        int skinny = SkinnyCallLaunches;
        // Route: router GEMM (the skinny kernel at 2..128 rows, 1 on the GEMV at 1), top-k, permute (1 at 64 tokens x 8 of
        // 128 experts: one chunk; 3 at 128 tokens).
        Assert.Equal(new HostOps(skinny + 2, 0, GemmCalls: 1), EpHostOps.Route(qwen, 64));
        Assert.Equal(new HostOps(skinny + 4, 0, GemmCalls: 1), EpHostOps.Route(qwen, 128));
        Assert.Equal(new HostOps(1 + 1 + Permute.Launches(1, 8, 128, gather: true), 0, GemmCalls: 1), EpHostOps.Route(qwen, 1));
        Assert.Equal(default, EpHostOps.Route(qwen, 0));
        // Experts: id upload; permute by local expert (1 at 512 rows, 3 at 1024), gate_up, down, un-permute.
        Assert.Equal(new HostOps(4, 1, GemmCalls: 2), EpHostOps.Experts(512, 64));
        Assert.Equal(new HostOps(6, 1, GemmCalls: 2), EpHostOps.Experts(1024, 64));
        Assert.Equal(default, EpHostOps.Experts(0, 64));
        // Its steps, as an interleaved forward issues them across ranks: upload + permute, gate_up, down, un-permute.
        Assert.Equal([new HostOps(3, 1), new HostOps(1, 0, GemmCalls: 1), new HostOps(1, 0, GemmCalls: 1), new HostOps(1, 0)], EpHostOps.ExpertSteps(1024, 64));
        Assert.Equal(Enum.GetValues<MoeRuntime.Runtime.Layers.ReceivedRowsStep>().Length, EpHostOps.ExpertSteps(512, 64).Length);
        Assert.Empty(EpHostOps.ExpertSteps(0, 64));
        // Output: the weighted sum, after the shared expert's gate_up and down where the model has one (and its gate + sigmoid, qwen2_moe).
        Assert.Equal(new HostOps(1, 0), EpHostOps.Output(qwen, 64));
        // DeepSeek-V3 at 64 rows: gate_up+SiLU on the skinny kernel (16 wgmma tiles), down on the wgmma kernel (1; 28 tiles).
        Assert.Equal(new HostOps(skinny + 2, 0, GemmCalls: 2), EpHostOps.Output(deepseek, 64));
        Assert.Equal(new HostOps(2 * skinny + 3, 0, GemmCalls: 3), EpHostOps.Output(deepseek with { HasSharedExpertGate = true }, 64));
        Assert.Equal(new HostOps(0, 1), EpHostOps.BeforeRoute);
        Assert.Equal(new HostOps(0, 1), EpHostOps.AfterRoute);
        Assert.Equal(new HostOps(0, 1), EpHostOps.AfterOutput);
    }

    /// <summary>
    /// At up to 4 tokens a router of at most 1 MiB is one launch on the GEMV (GroupedGemmDenseGemv's heuristic), whatever
    /// the reduction; at 16 tokens, and DeepSeek-V3's 3.7 MB router, keep the skinny count; so do its shared gate_up and
    /// down; its sigmoid gate (N = 1) is one launch at 4 tokens.
    /// </summary>
    [Fact]
    public void SmallCallsOnTheGemvAreOneLaunch()
    {
        Assert.SkipUnless(GroupedGemmDenseGemv.Enabled, $"{GroupedGemmDenseGemv.EnvironmentVariable}=off");
        var qwen = LayerPresets.Get("qwen3-30b-a3b");
        var deepseek = LayerPresets.Get("deepseek-v3");
        int skinny = SkinnyCallLaunches;
        Assert.Equal(new HostOps(1 + 1 + Permute.Launches(4, 8, 128, gather: true), 0, GemmCalls: 1), EpHostOps.Route(qwen, 4));
        Assert.Equal(new HostOps(skinny + 1 + Permute.Launches(16, 8, 128, gather: true), 0, GemmCalls: 1), EpHostOps.Route(qwen, 16));
        Assert.Equal(new HostOps(skinny + 1 + Permute.Launches(2, 8, 256, gather: true), 0, GemmCalls: 1), EpHostOps.Route(deepseek, 2));
        Assert.Equal(new HostOps(2 * skinny + 1, 0, GemmCalls: 2), EpHostOps.Output(deepseek, 4));
        Assert.Equal(new HostOps(2 * skinny + 1 + 2, 0, GemmCalls: 3), EpHostOps.Output(deepseek with { HasSharedExpertGate = true }, 4));
    }

    [Fact]
    public void HostOpsAreFreeWithoutHostParams()
    {
        var ops = new HostOps(6, 1);
        Assert.Equal(0, ops.Us(null));
        Assert.Equal(6 * 4.5 + 1 * 3, ops.Us(new HostParams(4.5, 3, 1, 10)), 1e-12);
        Assert.Equal(new HostOps(7, 3), ops + new HostOps(1, 2));
    }

    [Fact]
    public void AGemmCallIsPricedAtItsOwnCostAndItsSecondLaunchAsALaunch()
    {
        var host = new HostParams(LaunchUs: 6, CopyUs: 2, EventUs: 1, CollectivePerRankUs: 20) { GemmCallUs = 14 };
        // Qwen3 route at 128 tokens: router GEMM on the skinny kernel (a call of 1 launch, or 2 with MOE_SKINNY_REDUCE=kernel),
        // top-k, permute (3).
        int skinny = SkinnyCallLaunches;
        Assert.Equal(14 + (skinny + 3) * 6, EpHostOps.Route(LayerPresets.Get("qwen3-30b-a3b"), 128).Us(host), 1e-9);
        // Experts at 1024 rows: 2 GEMM calls, 4 other launches, 1 copy.
        Assert.Equal(2 * 14 + 4 * 6 + 2, EpHostOps.Experts(1024, 64).Us(host), 1e-9);
        // Files without the GEMM part price a GEMM call as a launch, as before.
        Assert.Equal(6 * 6 + 2, EpHostOps.Experts(1024, 64).Us(host with { GemmCallUs = null }), 1e-9);
    }
}
