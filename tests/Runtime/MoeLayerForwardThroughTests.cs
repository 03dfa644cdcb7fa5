using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// <see cref="MoeLayer.ForwardThrough"/>, the forward cut after a phase (Forward runs it through down; sweep moe_layer's
/// prefix rows time its cuts): through combine with the shared experts' output as the residual it is the forward, bit for
/// bit, and each cut leaves what the later phases write untouched.
/// </summary>
public sealed class MoeLayerForwardThroughTests
{
    [Theory]
    [InlineData(DType.F32)]
    [InlineData(DType.BF16)]
    public void ThroughCombineWithTheSharedExpertsIsTheForward(DType dtype)
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, LayerBench.Preset("tiny"), dtype, seed: 31);
        Assert.NotNull(weights.SharedGateUp);
        var layer = new MoeLayer(weights);
        const int tokens = 9;
        int h = weights.Config.HiddenSize;
        using var workspace = new MoeWorkspace(weights, tokens);
        using var hidden = DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(TestData.NewRandom(out _), tokens * h), dtype);
        using var output = accelerator.Allocate<float>(tokens * h);
        layer.Forward(hidden, output, workspace);
        var forward = output.ToArray();

        TestData.Poison(output);
        var residual = layer.RunSharedExperts(hidden, workspace, null);
        layer.ForwardThrough(MoeLayerPhase.Combine, hidden, output, workspace, residual, null);
        Assert.Equal(forward, output.ToArray());
    }

    [Fact]
    public void EachCutLeavesTheLaterPhasesOutputsUntouched()
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, LayerBench.Preset("tiny"), DType.F32, seed: 32);
        var layer = new MoeLayer(weights);
        const int tokens = 5;
        int h = weights.Config.HiddenSize;
        using var workspace = new MoeWorkspace(weights, tokens);
        using var hidden = accelerator.Upload<float>(TestData.Uniform(TestData.NewRandom(out _), tokens * h));
        using var output = accelerator.Allocate<float>(tokens * h);
        layer.Forward(hidden, output, workspace);
        var expertOutput = workspace.ExpertOutput.ToArray();

        // Through down: the expert rows are the forward's, the output is not written.
        TestData.Poison(output);
        TestData.Poison(workspace.ExpertOutput);
        var poisoned = output.ToArray();
        layer.ForwardThrough(MoeLayerPhase.ExpertsDown, hidden, output, workspace, null, null);
        Assert.Equal(expertOutput, workspace.ExpertOutput.ToArray());
        Assert.Equal(poisoned, output.ToArray());

        // Through permute: no expert row is written.
        TestData.Poison(workspace.ExpertOutput);
        var poisonedRows = workspace.ExpertOutput.ToArray();
        layer.ForwardThrough(MoeLayerPhase.Permute, hidden, output, workspace, null, null);
        Assert.Equal(poisonedRows, workspace.ExpertOutput.ToArray());

        var error = Assert.Throws<ArgumentException>(() => layer.ForwardThrough(MoeLayerPhase.SharedExperts, hidden, output, workspace, null, null));
        Assert.Contains("SharedExperts", error.Message);
    }
}
