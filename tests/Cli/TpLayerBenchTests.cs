using System.Text.Json.Nodes;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
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
        var weights = ranks.Select(r => DeviceMoeWeights.CreateRandom(r, slice, DType.BF16, seed: 7)).ToList();
        try
        {
            var rows = new TpLayerBench(ranks, communicator, AllReduceAlgorithm.OneShot, warmup: 1, samples: 3, _ => { }).Run("tiny", weights, [1, 16, 200]).ToList();
            Assert.All(rows, r => Assert.True(r.EagerMs > 0));
            Assert.All(rows.Take(2), r => Assert.Equal("cuda-graph", r.Timing));
            Assert.All(rows.Take(2), r => Assert.True(r.GraphMs > 0));
            Assert.Null(rows[2].GraphMs);   // T > 128: eager only
            Assert.All(rows, r => Assert.StartsWith("OneShot", r.AllReduce));
        }
        finally
        {
            weights.ForEach(w => w.Dispose());
        }
    }
}
