using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// Tensor-parallel ranks that run their slice of every expert as the one-launch decode kernel (MOE_DECODE_FUSED_TP) before
/// the AllReduce: the sum of the partials matches the reference within bf16's bound, on CPU ranks (the kernel's twin) and
/// on two GPUs. On the GPUs it is also the ranks' six-kernel chain to the bit: per rank the kernel gives the chain's bits
/// where the chain's gate_up is the decode GEMV (16 experts, T &lt;= 3), and the ring sums the same partials in the same order.
/// </summary>
public sealed class TensorParallelFusedDecodeTests
{
    private static readonly int[] TokenCounts = [1, 3];

    public static TheoryData<string, string, int> Cases()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var family in MoeLayerFixtures.Families)
        {
            data.Add("cpu", family, 2);
            data.Add("cpu", family, 3);
            data.Add("cuda", family, 2);
        }
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void FusedRanksMatchTheReferenceAndTheChain(string kind, string family, int ranks)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layer) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        var reference = new MoeBlockReference(weights);
        using var fused = new TensorParallelMoe(group, weights, AllReduceAlgorithm.Ring, fusedDecodeMaxTokens: MoeDecode.MaxTokens);
        using var chain = new TensorParallelMoe(group, weights, AllReduceAlgorithm.Ring, fusedDecodeMaxTokens: 0);
        foreach (int tokens in TokenCounts)
        {
            string what = $"{family} over {ranks} x {kind}, T={tokens}, seed {seed}";
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
            var byKernel = fused.Forward(hidden, tokens);
            Assert.True(fused.LastForwardFused, $"the ranks ran the chain, not the fused kernel: {what}");
            var byChain = chain.Forward(hidden, tokens);
            Assert.False(chain.LastForwardFused, $"the ranks ran the fused kernel with the limit 0: {what}");
            Compare.Close(reference.Forward(hidden), Compare.ToDouble(byKernel), Compare.ToleranceFor(DType.BF16), "fused TP vs reference, " + what);
            if (kind != "cuda")
                continue;
            for (int i = 0; i < byChain.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(byChain[i]) == BitConverter.SingleToInt32Bits(byKernel[i]),
                    $"{what}: output element {i}: the ranks' chain {byChain[i]}, their fused kernel {byKernel[i]}");
        }
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(MoeDecode.MaxTokens + 1)]
    public void ALimitOutsideTheKernelsRangeIsRefusedWhenBuilt(int limit)
    {
        var group = TestDevices.GetGroup("cpu", 2);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 16, seed: 1);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new TensorParallelMoe(group, weights, fusedDecodeMaxTokens: limit));
        Assert.Equal("fusedDecodeMaxTokens", e.ParamName);
        Assert.Contains($"0 (never) to {MoeDecode.MaxTokens} tokens", e.Message);
    }

    [Fact]
    public void TheTensorParallelSwitchParses()
    {
        Assert.Null(MoeDecodeSwitch.ParseTensorParallel(null));
        Assert.Equal(0, MoeDecodeSwitch.ParseTensorParallel("off"));
        Assert.Equal(MoeDecodeSwitch.DefaultMaxTokens, MoeDecodeSwitch.ParseTensorParallel("on"));
        Assert.Equal(2, MoeDecodeSwitch.ParseTensorParallel("2"));
        Assert.Contains("MOE_DECODE_FUSED_TP", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParseTensorParallel("9")).Message);
        Assert.Contains("MOE_DECODE_FUSED_TP", Assert.Throws<ArgumentException>(() => MoeDecodeSwitch.ParseTensorParallel("yes")).Message);
    }
}
