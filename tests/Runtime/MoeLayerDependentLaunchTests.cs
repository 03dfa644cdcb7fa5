using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer's kernels launched to overlap the kernel before them (programmatic dependent launch, on by default on
/// Hopper) give bit for bit what plain launches give: eagerly, replayed from a CUDA graph, with the shared experts on
/// their own stream. A kernel that read its input before the previous kernel finished would differ here.
/// </summary>
[Collection(ProcessSwitches.Name)]
public class MoeLayerDependentLaunchTests
{
    [Theory]
    [InlineData("mixtral", "bf16", 1)]
    [InlineData("qwen3_moe", "bf16", 16)]
    [InlineData("deepseek_v3", "bf16", 128)]
    [InlineData("qwen2_moe", "f32", 33)]
    public void DependentLaunchesMatchPlainLaunchesBitForBit(string family, string dtype, int tokens)
    {
        var accelerator = (CudaAccelerator)TestDevices.Get("cuda:0");
        if (accelerator.Info.ComputeMajor < 9)
            Assert.Skip($"dependent launch needs compute capability 9.0+; {accelerator.Info.Architecture} here");
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, type);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeLayer(device);
        using var workspace = new MoeWorkspace(device, tokens, sharedExpertStream: true);
        int h = weights.Config.HiddenSize;
        using var input = DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, tokens * h), type);
        using var expected = accelerator.Allocate<float>((long)tokens * h);
        using var actual = accelerator.Allocate<float>((long)tokens * h);
        using var stream = (CudaStream)accelerator.CreateStream();
        bool before = CudaKernel.DependentLaunchEnabled;
        try
        {
            CudaKernel.DependentLaunchEnabled = false;
            TestData.Poison(expected);
            layer.Forward(input, expected, workspace, stream);
            stream.Synchronize();

            CudaKernel.DependentLaunchEnabled = true;
            string where = $"{family} {dtype} T={tokens} seed {seed}";
            for (int pass = 0; pass < 2; pass++)
            {
                TestData.Poison(actual);
                layer.Forward(input, actual, workspace, stream);
                stream.Synchronize();
                Assert.True(expected.ToArray().AsSpan().SequenceEqual(actual.ToArray()), $"eager pass {pass} with dependent launches differs, {where}");
            }
            stream.BeginCapture();
            layer.Forward(input, actual, workspace, stream);
            using var graph = stream.EndCapture();
            for (int replay = 0; replay < 2; replay++)
            {
                TestData.Poison(actual);
                accelerator.Synchronize();
                graph.Launch(stream);
                stream.Synchronize();
                Assert.True(expected.ToArray().AsSpan().SequenceEqual(actual.ToArray()), $"graph replay {replay} with dependent launches differs, {where}");
            }
        }
        finally
        {
            CudaKernel.DependentLaunchEnabled = before;
        }
    }
}
