using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer's one-launch decode path (<see cref="MoeDecode"/>, MOE_DECODE_FUSED): on CUDA the same bits as the six-kernel
/// chain wherever the chain's router is the dense GEMV (T &lt;= 4; above, its router is another kernel, whose logits differ in
/// the last bits), for every family (shared experts' residual included), with fresh inputs into the
/// same workspace and under graph replay (its grid barrier resets itself); on the CPU its twin against the reference.
/// </summary>
public sealed class MoeLayerFusedDecodeTests
{
    public static TheoryData<string, int> Families => new()
    {
        { "qwen3_moe", 128 }, { "mixtral", 16 }, { "deepseek_v3", 16 }, { "qwen2_moe", 16 },
    };

    [Theory, MemberData(nameof(Families))]
    public void TheFusedKernelGivesTheChainsBits(string family, int experts)
    {
        var gpu = TestDevices.Get("cuda:0");
        for (int round = 0; round < 2; round++)
        {
            var random = TestData.NewRandom(out int seed);
            using var folder = new TempFolder();
            var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
            var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16);
            using var device = DeviceMoeWeights.Upload(gpu, weights);
            foreach (int tokens in new[] { 1, 2, 3, 4 })
            {
                var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
                var chain = Run(device, hidden, tokens, fusedMaxTokens: 0, expectFused: false);
                var fused = Run(device, hidden, tokens, fusedMaxTokens: MoeDecode.MaxTokens, expectFused: true);
                string what = $"{family} E={experts} T={tokens} seed {seed}";
                Compare.Exact<float>(chain.Logits, fused.Logits, $"logits, {what}");
                Compare.Exact<int>(chain.Ids, fused.Ids, $"ids, {what}");
                Compare.Exact<float>(chain.Weights, fused.Weights, $"weights, {what}");
                Compare.Exact<int>(chain.Counts, fused.Counts, $"counts, {what}");
                for (int i = 0; i < chain.Output.Length; i++)
                    Assert.True(BitConverter.SingleToInt32Bits(chain.Output[i]) == BitConverter.SingleToInt32Bits(fused.Output[i]),
                        $"{what}: output element {i}: the chain {chain.Output[i]}, the fused kernel {fused.Output[i]}");
            }
        }
    }

    /// <summary>Token counts where the chain's gate_up is the decode GEMV (the fused path stands for that chain only): all eight with E = 128, up to 3 with E = 16.</summary>
    [Theory]
    [InlineData("cpu", "qwen3_moe", 128, "1,4,8")]
    [InlineData("cpu", "deepseek_v3", 16, "1,3,8")]
    [InlineData("cpu", "qwen2_moe", 16, "1,3")]
    [InlineData("cuda:0", "qwen3_moe", 128, "1,5,8")]
    [InlineData("cuda:0", "deepseek_v3", 16, "1,3")]
    [InlineData("cuda:0", "mixtral", 16, "2,3")]
    public void TheFusedPathMatchesTheReference(string deviceName, string family, int experts, string tokenCounts)
    {
        var accelerator = TestDevices.Get(deviceName);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16);
        var reference = new MoeRuntime.Runtime.Reference.MoeBlockReference(weights);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        foreach (int tokens in tokenCounts.Split(',').Select(int.Parse))
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
            var actual = Run(device, hidden, tokens, fusedMaxTokens: MoeDecode.MaxTokens, expectFused: true).Output;
            Compare.Close(reference.Forward(hidden), Compare.ToDouble(actual), Compare.ToleranceFor(DType.BF16),
                $"{family} fused decode, T={tokens}, on {deviceName}, seed {seed}");
        }
    }

    /// <summary>One workspace, fresh inputs each time, eager and replayed from one graph: the barrier word is back to zero after every launch.</summary>
    [Fact]
    public void TheSameWorkspaceServesFreshInputsEagerAndUnderGraphReplay()
    {
        var accelerator = (CudaAccelerator)TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeLayer(device);
        const int Tokens = 2;
        int h = config.HiddenSize;
        using var workspace = new MoeWorkspace(device, Tokens, fusedDecodeMaxTokens: Tokens);
        Assert.True(layer.RunsFusedDecode(workspace));
        using var input = accelerator.Allocate(DType.BF16, Tokens * h);
        using var output = accelerator.Allocate<float>(Tokens * h);
        using var stream = (CudaStream)accelerator.CreateStream();
        float[] Upload()
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, Tokens * h), DType.BF16);
            using var fresh = DeviceMoeWeights.UploadFloats(accelerator, hidden, DType.BF16);
            input.CopyFrom(fresh);
            TestData.Poison(output);
            accelerator.Synchronize();
            return hidden;
        }
        for (int eager = 0; eager < 3; eager++)
        {
            var hidden = Upload();
            layer.Forward(input, output, workspace, stream);
            stream.Synchronize();
            Assert.Equal(0, workspace.DecodeBarrier!.ToArray()[0]);
            Compare.Exact<float>(Run(device, hidden, Tokens, 0, false).Output, output.ToArray(), $"eager forward {eager}, seed {seed}");
        }
        stream.BeginCapture();
        layer.Forward(input, output, workspace, stream);
        using var graph = stream.EndCapture();
        for (int replay = 0; replay < 3; replay++)
        {
            var hidden = Upload();
            graph.Launch(stream);
            stream.Synchronize();
            Assert.Equal(0, workspace.DecodeBarrier!.ToArray()[0]);
            Compare.Exact<float>(Run(device, hidden, Tokens, 0, false).Output, output.ToArray(), $"graph replay {replay}, seed {seed}");
        }
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void TheLayerFusesOnlyWhereTheWorkspaceAndTheShapesAllow(string deviceName)
    {
        var accelerator = TestDevices.Get(deviceName);
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, 3);
        using var device = DeviceMoeWeights.Upload(accelerator, MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16));
        var layer = new MoeLayer(device);
        using (var two = new MoeWorkspace(device, 2, fusedDecodeMaxTokens: 2))
            Assert.True(layer.RunsFusedDecode(two));
        using (var three = new MoeWorkspace(device, 3, fusedDecodeMaxTokens: 2))
            Assert.False(layer.RunsFusedDecode(three)); // more tokens than it allows
        using (var off = new MoeWorkspace(device, 1, fusedDecodeMaxTokens: 0))
        {
            Assert.False(layer.RunsFusedDecode(off));
            Assert.Null(off.DecodeBarrier);
        }
        using (var nine = new MoeWorkspace(device, 9, fusedDecodeMaxTokens: MoeDecode.MaxTokens))
            Assert.False(layer.RunsFusedDecode(nine)); // past the kernel's 8 tokens
        Assert.Equal("fusedDecodeMaxTokens", Assert.Throws<ArgumentOutOfRangeException>(() => new MoeWorkspace(device, 1, fusedDecodeMaxTokens: 9)).ParamName);
        Assert.Equal("fusedDecodeMaxTokens", Assert.Throws<ArgumentOutOfRangeException>(() => new MoeWorkspace(device, 1, fusedDecodeMaxTokens: -1)).ParamName);
        using (var f32 = DeviceMoeWeights.Upload(accelerator, MoeLayerWeights.Load(folder.Path, layerIndex, DType.F32)))
        using (var asked = new MoeWorkspace(f32, 1, fusedDecodeMaxTokens: 1))
        {
            Assert.Equal(0, asked.FusedDecodeMaxTokens); // the kernel takes bf16 and f16 only
            Assert.False(new MoeLayer(f32).RunsFusedDecode(asked));
        }
        using (var timed = new MoeWorkspace(device, 1, fusedDecodeMaxTokens: 1))
        {
            layer.PhaseTimer = new NullPhaseTimer();
            Assert.False(layer.RunsFusedDecode(timed)); // the phase timer times the six kernels
            layer.PhaseTimer = null;
            Assert.True(layer.RunsFusedDecode(timed));
        }
    }

    private sealed class NullPhaseTimer : IMoeLayerPhaseTimer
    {
        public void Begin(MoeLayerPhase phase, AcceleratorStream stream) { }
        public void End(MoeLayerPhase phase, AcceleratorStream stream) { }
    }

    private sealed record Result(float[] Output, float[] Logits, int[] Ids, float[] Weights, int[] Counts);

    private static Result Run(DeviceMoeWeights device, float[] hidden, int tokens, int fusedMaxTokens, bool expectFused)
    {
        var accelerator = device.Accelerator;
        var layer = new MoeLayer(device);
        using var workspace = new MoeWorkspace(device, tokens, gemvTileMap: true, fusedDecodeMaxTokens: fusedMaxTokens);
        Assert.Equal(expectFused, layer.RunsFusedDecode(workspace));
        using var input = DeviceMoeWeights.UploadFloats(accelerator, hidden, device.DType);
        using var output = accelerator.Allocate<float>((long)tokens * device.Config.HiddenSize);
        TestData.Poison(output);
        layer.Forward(input, output, workspace);
        accelerator.Synchronize();
        return new Result(output.ToArray(), workspace.Logits.ToArray(), workspace.Ids.ToArray(), workspace.RoutingWeights.ToArray(),
            workspace.RoutedCounts.ToArray());
    }
}
