using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Tests.Scaling;

/// <summary>The launch list of an EP forward (ExpertParallelMoe.Forward, contiguous experts), counted per phase and rank.</summary>
public sealed class EpHostOpsTests
{
    [Theory]
    // T*k slots in chunks of 512; offsets and scatter fuse while chunks * ceil(E / 128) <= 128.
    [InlineData(64, 8, 128, true, 3)]     // 1 chunk: count, offsets+scatter, gather
    [InlineData(512, 1, 64, false, 2)]    // no gather
    [InlineData(8192, 8, 128, true, 3)]   // 128 chunks x 1: still fused
    [InlineData(8192, 8, 256, true, 4)]   // 128 chunks x 2: offsets and scatter apart
    [InlineData(0, 8, 128, true, 1)]      // nothing to count or gather: the (one-block) offsets kernel only
    public void PermuteLaunchesFollowItsPathChoice(int tokens, int topK, int experts, bool gather, int launches) =>
        Assert.Equal(launches, Permute.Launches(tokens, topK, experts, gather));

    [Fact]
    public void EachPhaseCountsTheOpsTheForwardIssues()
    {
        var qwen = LayerPresets.Get("qwen3-30b-a3b");
        var deepseek = LayerPresets.Get("deepseek-v3");
        // Route: router GEMM, top-k, permute (3 at 64 tokens x 8 of 128 experts).
        Assert.Equal(new HostOps(5, 0), EpHostOps.Route(qwen, 64));
        Assert.Equal(default, EpHostOps.Route(qwen, 0));
        // Experts: id upload; permute by local expert (3), gate_up, down, un-permute.
        Assert.Equal(new HostOps(6, 1), EpHostOps.Experts(512, 64));
        Assert.Equal(default, EpHostOps.Experts(0, 64));
        // Output: the weighted sum, after the shared expert's gate_up and down where the model has one (and its gate + sigmoid, qwen2_moe).
        Assert.Equal(new HostOps(1, 0), EpHostOps.Output(qwen, 64));
        Assert.Equal(new HostOps(3, 0), EpHostOps.Output(deepseek, 64));
        Assert.Equal(new HostOps(5, 0), EpHostOps.Output(deepseek with { HasSharedExpertGate = true }, 64));
        Assert.Equal(new HostOps(0, 1), EpHostOps.BeforeRoute);
        Assert.Equal(new HostOps(0, 1), EpHostOps.AfterRoute);
        Assert.Equal(new HostOps(0, 1), EpHostOps.AfterOutput);
    }

    [Fact]
    public void HostOpsAreFreeWithoutHostParams()
    {
        var ops = new HostOps(6, 1);
        Assert.Equal(0, ops.Us(null));
        Assert.Equal(6 * 4.5 + 1 * 3, ops.Us(new HostParams(4.5, 3, 1, 10)), 1e-12);
        Assert.Equal(new HostOps(7, 3), ops + new HostOps(1, 2));
    }
}
