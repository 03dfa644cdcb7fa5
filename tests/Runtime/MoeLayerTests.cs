using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The whole MoE layer on every accelerator against the F64 <see cref="MoeBlockReference"/>, for every family,
/// T = 0, 1, 5, 33, in F32 (bound 1e-5: the same products summed in another order) and BF16 (bound 1e-2:
/// the reference runs on the bf16-rounded weights and inputs; the layer also rounds its intermediate
/// activation to bf16). Then tensor and expert parallelism over 2, 3, 4 ranks against the single accelerator.
/// </summary>
public sealed class MoeLayerTests
{
    private static readonly int[] TokenCounts = [0, 1, 5, 33];

    public static TheoryData<string, string, string> SingleCases()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var device in TestDevices.Names)
            foreach (var family in MoeLayerFixtures.Families)
                foreach (var dtype in new[] { "f32", "bf16" })
                    data.Add(device.Data, family, dtype);
        return data;
    }

    [Theory]
    [MemberData(nameof(SingleCases))]
    public void ForwardMatchesReference(string device, string family, string dtype)
    {
        var accelerator = TestDevices.Get(device);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        int experts = family is "qwen3_moe" or "deepseek_v3" ? 16 : 8;
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        var reference = new MoeBlockReference(weights);
        foreach (int tokens in TokenCounts)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * 64), type);
            var expected = reference.Forward(hidden);
            var actual = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens);
            Assert.Equal(expected.Length, actual.Length);
            if (tokens > 0)
                Compare.Close(expected, Compare.ToDouble(actual), Compare.ToleranceFor(type), $"{family} {dtype} on {device}, T={tokens}, seed {seed}");
        }
    }

    public static TheoryData<string, string, int, string> ParallelCases()
    {
        var data = new TheoryData<string, string, int, string>();
        foreach (var family in MoeLayerFixtures.Families)
        {
            foreach (int ranks in new[] { 2, 3, 4 })
                data.Add("cpu", family, ranks, ranks == 3 ? "bf16" : "f32");
            data.Add("cuda", family, 2, "f32");
            data.Add("cuda", family, 2, "bf16");
        }
        return data;
    }

    /// <summary>12 experts split over 2, 3 and 4 ranks; deepseek_v3's 4 groups of 3.</summary>
    [Theory]
    [MemberData(nameof(ParallelCases))]
    public void TensorAndExpertParallelMatchSingleAccelerator(string kind, string family, int ranks, string dtype)
    {
        var group = TestDevices.GetGroup(kind, ranks);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, 12, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layer, type);
        var reference = new MoeBlockReference(weights);
        using var tensorParallel = new TensorParallelMoe(group, weights, AllReduceAlgorithm.Ring);
        using var expertParallel = new ExpertParallelMoe(group, weights);
        foreach (int tokens in TokenCounts)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * 64), type);
            var single = MoeLayerFixtures.RunSingle(group[0], weights, hidden, tokens);
            var tp = tensorParallel.Forward(hidden, tokens);
            var ep = expertParallel.Forward(hidden, tokens);
            Assert.Equal(single.Length, tp.Length);
            Assert.Equal(single.Length, ep.Length);
            if (tokens == 0)
                continue;
            string what = $"{family} {dtype} over {ranks} x {kind}, T={tokens}, seed {seed}";
            double tolerance = Compare.ToleranceFor(type);
            Compare.Close(single, tp, tolerance, "TP vs single, " + what);
            Compare.Close(single, ep, tolerance, "EP vs single, " + what);
            // And both against the oracle, so a shared mistake cannot pass.
            Compare.Close(reference.Forward(hidden), Compare.ToDouble(ep), tolerance, "EP vs reference, " + what);
            Assert.Equal(tokens, expertParallel.LastTokensPerRank.Sum());
            Assert.Equal((long)tokens * weights.Config.TopK, expertParallel.LastRowsPerRank.Sum());
        }
    }

    /// <summary>
    /// Decode on CUDA: the forward captured once in a graph, replayed on new hidden states written into the same
    /// input buffer, gives what an eager forward gives on them (routing, counts and offsets stay on the device);
    /// bound 1e-6: the same kernels on the same data.
    /// </summary>
    [Theory]
    [InlineData("mixtral", "bf16")]
    [InlineData("deepseek_v3", "bf16")]
    [InlineData("qwen2_moe", "f32")]
    public void CudaGraphReplayMatchesEagerForward(string family, string dtype)
    {
        var accelerator = (MoeRuntime.Accelerators.Cuda.CudaAccelerator)TestDevices.Get("cuda:0");
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, type);
        using var device = MoeRuntime.Runtime.Layers.DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeRuntime.Runtime.Layers.MoeLayer(device);
        const int Tokens = 5;
        using var workspace = new MoeRuntime.Runtime.Layers.MoeWorkspace(device, Tokens);
        using var input = MoeRuntime.Runtime.Layers.DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, Tokens * 64), type);
        using var output = accelerator.Allocate<float>(Tokens * 64);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)accelerator.CreateStream();
        layer.Forward(input, output, workspace, stream);
        stream.Synchronize();
        stream.BeginCapture();
        layer.Forward(input, output, workspace, stream);
        using var graph = stream.EndCapture();
        for (int replay = 0; replay < 3; replay++)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, Tokens * 64), type);
            using (var fresh = MoeRuntime.Runtime.Layers.DeviceMoeWeights.UploadFloats(accelerator, hidden, type))
                input.CopyFrom(fresh);
            TestData.Poison(output);
            accelerator.Synchronize();
            graph.Launch(stream);
            stream.Synchronize();
            var replayed = output.ToArray();
            var eager = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, Tokens);
            Compare.Close(eager, replayed, 1e-6, $"graph replay {replay} vs eager, {family} {dtype}, seed {seed}");
        }
    }

    /// <summary>
    /// The shared experts on their own stream (fork and join around the routed path) give bit for bit what they give on
    /// the forward's stream, eagerly and replayed from a CUDA graph that captured the fork; a second forward on the same
    /// workspace (its side stream reused) too.
    /// </summary>
    [Theory]
    [InlineData("deepseek_v3", "bf16", 7)]
    [InlineData("qwen2_moe", "bf16", 33)]
    [InlineData("deepseek_v3", "f16", 128)]
    public void SharedExpertStreamMatchesOneStreamBitForBit(string family, string dtype, int tokens)
    {
        var accelerator = (MoeRuntime.Accelerators.Cuda.CudaAccelerator)TestDevices.Get("cuda:0");
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, type);
        using var device = MoeRuntime.Runtime.Layers.DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeRuntime.Runtime.Layers.MoeLayer(device);
        using var oneStream = new MoeRuntime.Runtime.Layers.MoeWorkspace(device, tokens, sharedExpertStream: false);
        using var twoStreams = new MoeRuntime.Runtime.Layers.MoeWorkspace(device, tokens, sharedExpertStream: true);
        Assert.Null(oneStream.SharedStream);
        Assert.NotNull(twoStreams.SharedStream);
        // Beside each other, the routed and the shared GEMMs' blocks may start late: the wgmma kernel's auto order is dynamic.
        Assert.False(oneStream.SplitK!.SharesDevice);
        Assert.True(twoStreams.SplitK!.SharesDevice);
        Assert.True(twoStreams.SharedStream!.SplitK.SharesDevice);
        int h = weights.Config.HiddenSize;
        using var input = MoeRuntime.Runtime.Layers.DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, tokens * h), type);
        using var expected = accelerator.Allocate<float>((long)tokens * h);
        using var actual = accelerator.Allocate<float>((long)tokens * h);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)accelerator.CreateStream();
        TestData.Poison(expected);
        layer.Forward(input, expected, oneStream, stream);
        for (int pass = 0; pass < 2; pass++)
        {
            TestData.Poison(actual);
            layer.Forward(input, actual, twoStreams, stream);
            stream.Synchronize();
            Assert.Equal(expected.ToArray(), actual.ToArray());
        }
        stream.BeginCapture();
        layer.Forward(input, actual, twoStreams, stream);
        using var graph = stream.EndCapture();
        TestData.Poison(actual);
        accelerator.Synchronize();
        graph.Launch(stream);
        stream.Synchronize();
        Assert.True(expected.ToArray().AsSpan().SequenceEqual(actual.ToArray()), $"graph replay with the side stream differs, {family} {dtype} T={tokens} seed {seed}");
    }

    [Fact]
    public void ExpertParallelRejectsUnevenExperts()
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 8, 5);
        var weights = MoeLayerWeights.Load(folder.Path, layer, DType.F32);
        var error = Assert.Throws<ArgumentException>(() => new ExpertParallelMoe(TestDevices.GetGroup("cpu", 3), weights));
        Assert.Contains("8 experts do not split evenly over 3", error.Message);
    }
}
