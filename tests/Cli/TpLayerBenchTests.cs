using System.Text.Json.Nodes;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe bench layer --parallel tp</c>: the slice's shapes, a run over two and three CPU ranks, and its argument errors.</summary>
public sealed class TpLayerBenchTests
{
    [Fact]
    public void ASliceDividesTheRoutedAndSharedIntermediateSizesAndKeepsTheRest()
    {
        var deepSeek = LayerBench.Preset("deepseek-v3");
        var slice = TpLayerBench.Slice(deepSeek, 4);
        Assert.Equal(deepSeek.MoeIntermediateSize / 4, slice.MoeIntermediateSize);
        Assert.Equal(deepSeek.SharedIntermediateSize / 4, slice.SharedIntermediateSize);
        Assert.Equal(deepSeek with { MoeIntermediateSize = slice.MoeIntermediateSize, SharedIntermediateSize = slice.SharedIntermediateSize }, slice);
        Assert.Contains("split evenly over 5 ranks", Assert.Throws<ArgumentException>(() => TpLayerBench.Slice(deepSeek, 5)).Message);
    }

    [Theory]
    [InlineData("cpu:0,cpu:1", "OneShot")]
    [InlineData("cpu:0,cpu:1,cpu:2", "OneShot")]
    public void TinyPresetOverCpuRanksPrintsAndWritesOneRowPerTokenCount(string devices, string picked)
    {
        string json = Path.Combine(Path.GetTempPath(), $"tp-bench-{Guid.NewGuid():N}.json");
        try
        {
            var output = new StringWriter();
            var errors = new StringWriter();
            int code = LayerBenchCommand.RunTensorParallel("tiny", "1,5,33", devices, "bf16", "auto", warmup: 1, samples: 2, json, output, errors);
            Assert.True(code == 0, errors.ToString());
            var root = JsonNode.Parse(File.ReadAllText(json))!;
            Assert.Equal("tp_layer", root["kind"]!.GetValue<string>());
            Assert.Equal(devices.Split(',').Length, root["ranks"]!.GetValue<int>());
            var rows = root["rows"]!.AsArray();
            Assert.Equal([1, 5, 33], rows.Select(r => r!["Tokens"]!.GetValue<int>()));
            Assert.All(rows, r => Assert.Equal("chain", r!["Decode"]!.GetValue<string>()));   // CPU ranks fuse only when asked
            Assert.All(rows, r => Assert.True(r!["EagerMs"]!.GetValue<double>() > 0));
            Assert.All(rows, r => Assert.Equal(picked, r!["AllReduce"]!.GetValue<string>()));
            Assert.Equal([1L * 64 * 4, 5L * 64 * 4, 33L * 64 * 4], rows.Select(r => r!["AllReduceBytes"]!.GetValue<long>()));
            Assert.Equal(3, output.ToString().Split('\n').Count(l => l.StartsWith("tiny ", StringComparison.Ordinal)));
        }
        finally
        {
            File.Delete(json);
        }
    }

    /// <summary>--layers 3: the forwards cycle through three layers; one rank is the single device in the same harness.</summary>
    [Theory]
    [InlineData("cpu:0")]
    [InlineData("cpu:0,cpu:1")]
    public void CycledLayersAreNamedInTheTableAndTheJson(string devices)
    {
        string json = Path.Combine(Path.GetTempPath(), $"tp-bench-{Guid.NewGuid():N}.json");
        try
        {
            var output = new StringWriter();
            var errors = new StringWriter();
            int code = LayerBenchCommand.RunTensorParallel("tiny", "1,2", devices, "bf16", "auto", warmup: 1, samples: 2, json, output, errors, layerCount: 3);
            Assert.True(code == 0, errors.ToString());
            Assert.Contains("3 layers cycled", output.ToString());
            var root = JsonNode.Parse(File.ReadAllText(json))!;
            Assert.Equal(3, root["layers"]!.GetValue<int>());
            var rows = root["rows"]!.AsArray();
            Assert.All(rows, r => Assert.Equal(3, r!["Layers"]!.GetValue<int>()));
            Assert.All(rows, r => Assert.True(r!["EagerMs"]!.GetValue<double>() > 0));
            Assert.All(rows, r => Assert.Equal(devices.Contains(',') ? "OneShot" : "-", r!["AllReduce"]!.GetValue<string>()));
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Fact]
    public void LayersOutsideOneToSixteenExitWithCode2()
    {
        foreach (int layers in new[] { 0, LayerBenchCommand.MaxLayers + 1 })
        {
            var errors = new StringWriter();
            Assert.Equal(2, LayerBenchCommand.RunTensorParallel("tiny", "1", "cpu:0,cpu:1", "bf16", "auto", 1, 1, null, new StringWriter(), errors, layers));
            Assert.Contains($"--layers {layers}: 1 to {LayerBenchCommand.MaxLayers}", errors.ToString());
        }
    }

    [Theory]
    [InlineData("tiny", "cpu:0,cpu:1", "bogus", "--allreduce bogus: ring")]
    [InlineData("tiny", "cpu:0,cpu:1", "ring,nccl", "--allreduce ring,nccl: name one of")]
    [InlineData("deepseek-v3", "cpu:0,cpu:1,cpu:2,cpu:3,cpu:4", "auto", "split evenly over 5 ranks")]
    public void BadArgumentsExitWithCode2(string preset, string devices, string allReduce, string message)
    {
        var errors = new StringWriter();
        Assert.Equal(2, LayerBenchCommand.RunTensorParallel(preset, "1", devices, "bf16", allReduce, 1, 1, null, new StringWriter(), errors));
        Assert.Contains(message, errors.ToString());
    }

    /// <summary>On two GPUs every rank's layer and the AllReduce are captured into one graph per rank and replayed.</summary>
    [Fact]
    public void TwoGpusReplayTheWholeForwardFromGraphs()
    {
        var ranks = TestDevices.GetGroup("cuda", 2);
        var slice = TpLayerBench.Slice(LayerBench.Preset("tiny"), 2);
        using var communicator = Communicator.Create(ranks);
        // Two layers of different weights, cycled: each graph holds a forward of both.
        var weights = new[] { 7, 8 }.Select(seed => ranks.Select(r => DeviceMoeWeights.CreateRandom(r, slice, DType.BF16, seed)).ToList()).ToList();
        try
        {
            var rows = new TpLayerBench(ranks, communicator, AllReduceAlgorithm.OneShot, warmup: 1, samples: 3, _ => { }).Run("tiny", weights, [1, 16, 200]).ToList();
            Assert.All(rows, r => Assert.Equal(2, r.Layers));
            Assert.All(rows, r => Assert.True(r.EagerMs > 0));
            Assert.All(rows.Take(2), r => Assert.Equal("cuda-graph", r.Timing));
            Assert.All(rows.Take(2), r => Assert.True(r.GraphMs > 0));
            Assert.Null(rows[2].GraphMs);   // T > 128: eager only
            Assert.All(rows, r => Assert.StartsWith("OneShot", r.AllReduce));
            bool fuses = MoeDecodeSwitch.MaxTokensFor(MoeDecodeSwitch.ActiveBytes(slice.TopK, slice.HiddenSize, slice.MoeIntermediateSize, DType.BF16), tensorParallelRank: true) >= 1
                && MoeDecode.Unsupported(DType.BF16, 1, slice.NumExperts, slice.TopK, slice.HiddenSize, slice.MoeIntermediateSize) is null;
            Assert.Equal(fuses ? "fused" : "chain", rows[0].Decode);
            Assert.All(rows.Skip(1), r => Assert.Equal("chain", r.Decode));   // T > MoeDecode.MaxTokens
        }
        finally
        {
            weights.ForEach(l => l.ForEach(w => w.Dispose()));
        }
    }
}
