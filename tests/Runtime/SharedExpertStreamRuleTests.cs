using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// Where the shared experts get their own stream (<see cref="SharedExpertStream.BesideRouted"/>): by default only where
/// the routed experts' GEMMs are not the decode GEMV, for a workspace and for its views of fewer tokens; the switch's
/// values; and the forward's bits either way.
/// </summary>
public sealed class SharedExpertStreamRuleTests
{
    [Theory]
    [InlineData(null, SharedExpertStream.Mode.Auto)]
    [InlineData(" AUTO ", SharedExpertStream.Mode.Auto)]
    [InlineData("on", SharedExpertStream.Mode.On)]
    [InlineData("1", SharedExpertStream.Mode.On)]
    [InlineData("off", SharedExpertStream.Mode.Off)]
    [InlineData("0", SharedExpertStream.Mode.Off)]
    public void TheSwitchParses(string? value, SharedExpertStream.Mode expected) => Assert.Equal(expected, SharedExpertStream.Parse(value));

    [Fact]
    public void ABadSwitchValueNamesTheVariable() =>
        Assert.Contains(SharedExpertStream.VariableName, Assert.Throws<ArgumentException>(() => SharedExpertStream.Parse("yes")).Message);

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void AutoFollowsTheRoutedGemmsKernel(string device)
    {
        var accelerator = TestDevices.Get(device);
        foreach (int rows in new[] { 4, 12, 63, 132, 1024 })
        {
            bool gemv = GroupedGemm.RunsGemv(accelerator, DType.BF16, rows, 16);
            Assert.Equal(!gemv, SharedExpertStream.BesideRouted(accelerator, DType.BF16, rows, 16, SharedExpertStream.Mode.Auto));
            Assert.True(SharedExpertStream.BesideRouted(accelerator, DType.BF16, rows, 16, SharedExpertStream.Mode.On));
            Assert.False(SharedExpertStream.BesideRouted(accelerator, DType.BF16, rows, 16, SharedExpertStream.Mode.Off));
        }
        // 4 rows over 16 experts is the GEMV's on CUDA; the CPU has no GEMV.
        Assert.Equal(accelerator.Kind == AcceleratorKind.Cpu, SharedExpertStream.BesideRouted(accelerator, DType.BF16, 4, 16, SharedExpertStream.Mode.Auto));
    }

    /// <summary>
    /// DeepSeek-style layer, 16 experts, top-4, on CUDA: T = 3 (12 rows, the GEMV) gets no stream by default and T = 33 one;
    /// asked for, T = 3 gets one; a T = 33 workspace's view of 3 tokens runs without it, of 20 (80 rows) with it; and the
    /// forward at T = 3 gives the same bits with and without the stream.
    /// </summary>
    [Fact]
    public void AWorkspaceAndItsViewsTakeTheStreamByTheRule()
    {
        var accelerator = TestDevices.Get("cuda:0");
        if (SharedExpertStream.Setting != SharedExpertStream.Mode.Auto)
            Assert.Skip($"{SharedExpertStream.VariableName} is set: the default is not the rule");
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.BF16);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        using (var few = new MoeWorkspace(device, 3))
            Assert.Null(few.SharedStream);
        using (var asked = new MoeWorkspace(device, 3, sharedExpertStream: true))
            Assert.NotNull(asked.SharedStream);
        using var whole = new MoeWorkspace(device, 33);
        Assert.NotNull(whole.SharedStream);
        using var routerOffsets = accelerator.Allocate<int>(2);
        using var splitK = GroupedGemmWorkspace.For(accelerator, MoeWorkspace.GemmShapes(device, 33));
        Assert.Null(whole.Prefix(3, routerOffsets, splitK).SharedStream);
        Assert.Same(whole.SharedStream, whole.Prefix(20, routerOffsets, splitK).SharedStream);

        var layer = new MoeLayer(device);
        int h = config.HiddenSize;
        using var hidden = DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, 3 * h), DType.BF16);
        using var expected = accelerator.Allocate<float>(3L * h);
        using var actual = accelerator.Allocate<float>(3L * h);
        using var without = new MoeWorkspace(device, 3);
        using var with = new MoeWorkspace(device, 3, sharedExpertStream: true);
        TestData.Poison(expected);
        TestData.Poison(actual);
        layer.Forward(hidden, expected, without);
        layer.Forward(hidden, actual, with);
        accelerator.Synchronize();
        Compare.Exact<float>(expected.ToArray(), actual.ToArray(), $"T=3 with and without the shared experts' stream, seed {seed}");
    }
}
