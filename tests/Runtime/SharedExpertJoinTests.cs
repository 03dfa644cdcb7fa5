using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The shared expert as routed expert E (<see cref="SharedExpertJoin"/>): the weights keep it right after the routed
/// experts, the forward appends the T hidden rows after the T*k permuted ones and the combine adds their output. Checked
/// against the F64 reference and against the shared expert as GEMMs of its own, on every accelerator, eagerly and
/// replayed from a CUDA graph, through a workspace view for fewer tokens, and with what must be rejected.
/// </summary>
public sealed class SharedExpertJoinTests
{
    private static readonly ModelConfig Tiny = LayerPresets.Get("tiny");

    [Fact]
    public void WeightsHoldTheSharedExpertAfterTheRoutedOnes()
    {
        var accelerator = TestDevices.Get("cpu");
        using var folder = new TempFolder();
        var (_, layerIndex) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, seed: 41);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, DType.F32);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        var joinedGateUp = Assert.IsType<MemoryBuffer<float>>(device.JoinedGateUp).ToArray();
        var joinedDown = Assert.IsType<MemoryBuffer<float>>(device.JoinedDown).ToArray();
        var gateUp = weights.ExpertGateUp.ToFloats();
        var down = weights.ExpertDown.ToFloats();
        Assert.Equal(gateUp.Length + weights.SharedGateUp!.ToFloats().Length, joinedGateUp.Length);
        Assert.Equal(gateUp, joinedGateUp[..gateUp.Length]);
        Assert.Equal(weights.SharedGateUp.ToFloats(), joinedGateUp[gateUp.Length..]);
        Assert.Equal(down, joinedDown[..down.Length]);
        Assert.Equal(weights.SharedDown!.ToFloats(), joinedDown[down.Length..]);
        // The four tensors the other paths read are views of the joined memory.
        Assert.True(device.GateUp.IsView && device.Down.IsView && device.SharedGateUp!.IsView && device.SharedDown!.IsView);
        Assert.Equal(weights.SharedGateUp.ToFloats(), ((MemoryBuffer<float>)device.SharedGateUp).ToArray());
        Assert.Equal(device.JoinedGateUp!.LengthBytes + device.JoinedDown!.LengthBytes + device.RouterGate.LengthBytes + device.Bias!.LengthBytes, device.Bytes);
    }

    [Fact]
    public void OnlyOneUngatedSharedExpertOfTheRoutedShapeJoins()
    {
        var accelerator = TestDevices.Get("cpu");
        using var joined = DeviceMoeWeights.CreateRandom(accelerator, Tiny, DType.F32, seed: 42);
        using var gated = DeviceMoeWeights.CreateRandom(accelerator, Tiny with { HasSharedExpertGate = true }, DType.F32, seed: 42);
        using var twoShared = DeviceMoeWeights.CreateRandom(accelerator, Tiny with { SharedIntermediateSize = 2 * Tiny.MoeIntermediateSize }, DType.F32, seed: 42);
        using var none = DeviceMoeWeights.CreateRandom(accelerator, Tiny with { SharedIntermediateSize = 0 }, DType.F32, seed: 42);
        Assert.NotNull(joined.JoinedGateUp);
        Assert.Null(gated.JoinedGateUp);
        Assert.Null(twoShared.JoinedGateUp);
        Assert.Null(none.JoinedGateUp);
        // Joined or not, the random layer holds the same values (benchmarks of either layout read the same weights).
        Assert.Equal(((MemoryBuffer<float>)gated.SharedGateUp!).ToArray(), ((MemoryBuffer<float>)joined.SharedGateUp!).ToArray());
        Assert.Equal(((MemoryBuffer<float>)gated.SharedDown!).ToArray(), ((MemoryBuffer<float>)joined.SharedDown!).ToArray());
        Assert.Equal(((MemoryBuffer<float>)none.Down).ToArray(), ((MemoryBuffer<float>)joined.Down).ToArray());
        using (var workspace = new MoeWorkspace(gated, 9))
            Assert.False(workspace.JoinsSharedExpert);
        using (var workspace = new MoeWorkspace(joined, 9, joinSharedExpert: false))
            Assert.False(workspace.JoinsSharedExpert);
        // An expert-parallel rank's block runs its received rows, not this forward.
        using var block = DeviceMoeWeights.CreateRandom(accelerator, Tiny, DType.F32, seed: 42, firstExpert: 4, expertCount: 4);
        Assert.NotNull(block.JoinedGateUp);
        using (var workspace = new MoeWorkspace(block, 9))
            Assert.False(workspace.JoinsSharedExpert);
        using (var workspace = new MoeWorkspace(joined, 9, joinSharedExpert: true))
        {
            Assert.True(workspace.JoinsSharedExpert);
            Assert.Equal(Tiny.NumExperts + 2, workspace.Joined!.Offsets.Length);
            Assert.Equal(Tiny.NumExperts + 1, workspace.ExpertOffsets.Length);
            Assert.Equal(9L * (Tiny.TopK + 1) * Tiny.HiddenSize, workspace.Joined.ExpertOutput.Length);
            Assert.Equal(9L * Tiny.TopK * Tiny.HiddenSize, workspace.ExpertOutput.Length);
        }
    }

    public static TheoryData<string, string, int> ForwardCases()
    {
        var data = new TheoryData<string, string, int>();
        foreach (var dtype in new[] { "f32", "bf16" })
        {
            foreach (int tokens in new[] { 1, 5, 33 })
                data.Add("cpu", dtype, tokens);
            // On CUDA the routed GEMMs of 16 experts take the wgmma kernel from 64 rows on (under, the GEMV: not joined).
            foreach (int tokens in new[] { 33, 100 })
                data.Add("cuda:0", dtype, tokens);
        }
        return data;
    }

    /// <summary>
    /// Joined and as GEMMs of its own, the shared expert gives the reference's layer (F32 1e-5, BF16 1e-2), and the two
    /// agree with each other within the dtype's bound: the same products, the shared rows summed by another kernel.
    /// </summary>
    [Theory]
    [MemberData(nameof(ForwardCases))]
    public void JoinedForwardMatchesTheReferenceAndTheSeparateSharedExpert(string device, string dtype, int tokens)
    {
        var accelerator = TestDevices.Get(device);
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, type);
        using (var device1 = DeviceMoeWeights.Upload(accelerator, weights))
        using (var workspace = new MoeWorkspace(device1, tokens, joinSharedExpert: true))
            Assert.True(workspace.JoinsSharedExpert, $"T={tokens} on {device}: the routed GEMMs are the GEMV's, so nothing joins");
        var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), type);
        var expected = new MoeBlockReference(weights).Forward(hidden);
        var joined = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens, joinSharedExpert: true);
        var separate = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens, joinSharedExpert: false);
        string what = $"deepseek_v3 {dtype} T={tokens} on {device}, seed {seed}";
        double tolerance = Compare.ToleranceFor(type);
        Compare.Close(expected, Compare.ToDouble(joined), tolerance, "joined vs reference, " + what);
        Compare.Close(expected, Compare.ToDouble(separate), tolerance, "separate vs reference, " + what);
        Compare.Close(Compare.ToDouble(separate), Compare.ToDouble(joined), tolerance, "joined vs separate, " + what);
    }

    /// <summary>
    /// A view of a joined workspace for fewer tokens puts its shared rows right after its own T'*k routed rows and gives
    /// a fresh workspace's forward at T' (bit for bit on the CPU; on CUDA within 1e-6, the same kernels on the same data);
    /// at few enough tokens for the GEMV (CUDA), the view does not join.
    /// </summary>
    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void AViewForFewerTokensIsAFreshWorkspacesForward(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, Tiny, DType.BF16, seed);
        var layer = new MoeLayer(weights);
        int h = Tiny.HiddenSize;
        using var whole = new MoeWorkspace(weights, 40, joinSharedExpert: true);
        Assert.True(whole.JoinsSharedExpert);
        using var routerOffsets = accelerator.Allocate<int>(2);
        foreach (int tokens in new[] { 33, 3, 40 })
        {
            bool joins = !GroupedGemm.RunsGemv(accelerator, DType.BF16, tokens * Tiny.TopK, Tiny.NumExperts);
            using var splitK = GroupedGemmWorkspace.For(accelerator, MoeWorkspace.GemmShapes(weights, tokens, joinedShared: joins));
            var view = whole.Prefix(tokens, routerOffsets, splitK);
            Assert.Equal(joins, view.JoinsSharedExpert);
            using var fresh = new MoeWorkspace(weights, tokens, joinSharedExpert: true);
            Assert.Equal(joins, fresh.JoinsSharedExpert);
            using var hidden = DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, tokens * h), DType.BF16);
            using var expected = accelerator.Allocate<float>((long)tokens * h);
            using var actual = accelerator.Allocate<float>((long)tokens * h);
            TestData.Poison(expected);
            TestData.Poison(actual);
            if (whole.Joined is { } rows)
                TestData.Poison(rows.ExpertOutput);
            layer.Forward(hidden, expected, fresh);
            layer.Forward(hidden, actual, view);
            accelerator.Synchronize();
            string what = $"T={tokens} in a view of 40 on {device}, seed {seed}";
            if (accelerator.Kind == AcceleratorKind.Cpu)
                Compare.Exact<float>(expected.ToArray(), actual.ToArray(), what);
            else
                Compare.Close(expected.ToArray(), actual.ToArray(), 1e-6, what);
        }
    }

    /// <summary>
    /// The forward cut after permute has the hidden states after the routed rows and the shared expert's offset set; cut
    /// after down, the shared rows hold the shared expert's output (its own GEMMs', within 1e-6 in F32) and the layer's
    /// output is not written.
    /// </summary>
    [Fact]
    public void TheCutsWriteTheSharedRows()
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, Tiny, DType.F32, seed: 43);
        var layer = new MoeLayer(weights);
        const int tokens = 7;
        int h = Tiny.HiddenSize, slots = tokens * Tiny.TopK;
        using var workspace = new MoeWorkspace(weights, tokens, joinSharedExpert: true);
        var joined = workspace.Joined!;
        var values = TestData.Uniform(TestData.NewRandom(out int seed), tokens * h);
        using var hidden = accelerator.Upload<float>(values);
        using var output = accelerator.Allocate<float>((long)tokens * h);
        TestData.Poison(joined.Offsets);
        TestData.Poison(joined.Gathered);
        layer.ForwardThrough(MoeLayerPhase.Permute, hidden, output, workspace, null, null);
        var offsets = joined.Offsets.ToArray();
        Assert.Equal(slots, offsets[Tiny.NumExperts]);
        Assert.Equal(slots + tokens, offsets[Tiny.NumExperts + 1]);
        Assert.Equal(values, ((MemoryBuffer<float>)joined.Gathered).ToArray()[(slots * h)..]);

        TestData.Poison(output);
        TestData.Poison(joined.ExpertOutput);
        var poisoned = output.ToArray();
        layer.ForwardThrough(MoeLayerPhase.ExpertsDown, hidden, output, workspace, null, null);
        Assert.Equal(poisoned, output.ToArray());
        var sharedRows = joined.ExpertOutput.ToArray()[(slots * h)..];
        var own = layer.RunSharedExperts(hidden, workspace, null)!.ToArray();
        Compare.Close(own, sharedRows, 1e-6, $"shared rows vs the shared expert's own GEMMs, seed {seed}");
    }

    [Fact]
    public void WhatCannotBeJoinedIsRejected()
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, Tiny, DType.F32, seed: 44);
        using var gated = DeviceMoeWeights.CreateRandom(accelerator, Tiny with { HasSharedExpertGate = true }, DType.F32, seed: 44);
        const int tokens = 3;
        int h = Tiny.HiddenSize;
        using var workspace = new MoeWorkspace(weights, tokens, joinSharedExpert: true);
        using var hidden = accelerator.Upload<float>(new float[tokens * h]);
        using var output = accelerator.Allocate<float>((long)tokens * h);
        using var residual = accelerator.Allocate<float>((long)tokens * h);
        var layer = new MoeLayer(weights);
        var error = Assert.Throws<ArgumentException>(() => layer.ForwardThrough(MoeLayerPhase.Combine, hidden, output, workspace, residual, null));
        Assert.Equal("residual", error.ParamName);
        // A layer whose weights do not hold the shared expert after the routed ones cannot run a joined workspace.
        error = Assert.Throws<ArgumentException>(() => new MoeLayer(gated).Forward(hidden, output, workspace));
        Assert.Equal("workspace", error.ParamName);
        Assert.Contains("joins the shared expert", error.Message);
    }

    [Theory]
    [InlineData(null, true)]
    [InlineData("on", true)]
    [InlineData(" OFF ", false)]
    [InlineData("0", false)]
    public void TheSwitchParses(string? value, bool expected) => Assert.Equal(expected, SharedExpertJoin.Parse(value));

    [Fact]
    public void ABadSwitchValueNamesTheVariable() =>
        Assert.Contains(SharedExpertJoin.VariableName, Assert.Throws<ArgumentException>(() => SharedExpertJoin.Parse("sometimes")).Message);

    /// <summary>
    /// Captured in a CUDA graph (the shared rows' copy and offset are graph nodes), a joined forward replayed on new hidden
    /// states gives what an eager forward gives on them, with the shared rows poisoned before each replay.
    /// </summary>
    [Theory]
    [InlineData("bf16", 33)]
    [InlineData("f16", 100)]
    public void CudaGraphReplayOfAJoinedForwardMatchesEager(string dtype, int tokens)
    {
        var accelerator = (MoeRuntime.Accelerators.Cuda.CudaAccelerator)TestDevices.Get("cuda:0");
        var type = DTypes.Parse(dtype);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layerIndex) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, seed);
        var weights = MoeLayerWeights.Load(folder.Path, layerIndex, type);
        using var device = DeviceMoeWeights.Upload(accelerator, weights);
        var layer = new MoeLayer(device);
        int h = config.HiddenSize;
        using var workspace = new MoeWorkspace(device, tokens, joinSharedExpert: true);
        Assert.True(workspace.JoinsSharedExpert);
        using var input = DeviceMoeWeights.UploadFloats(accelerator, TestData.Uniform(random, tokens * h), type);
        using var output = accelerator.Allocate<float>((long)tokens * h);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)accelerator.CreateStream();
        layer.Forward(input, output, workspace, stream);
        stream.Synchronize();
        stream.BeginCapture();
        layer.Forward(input, output, workspace, stream);
        using var graph = stream.EndCapture();
        for (int replay = 0; replay < 2; replay++)
        {
            var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * h), type);
            using (var fresh = DeviceMoeWeights.UploadFloats(accelerator, hidden, type))
                input.CopyFrom(fresh);
            TestData.Poison(output);
            TestData.Poison(workspace.Joined!.Gathered);
            TestData.Poison(workspace.Joined.Offsets);
            accelerator.Synchronize();
            graph.Launch(stream);
            stream.Synchronize();
            var eager = MoeLayerFixtures.RunSingle(accelerator, weights, hidden, tokens, joinSharedExpert: true);
            Compare.Close(eager, output.ToArray(), 1e-6, $"graph replay {replay} vs eager, deepseek_v3 {dtype} T={tokens}, seed {seed}");
        }
    }
}
