using System.Text.Json.Nodes;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary>The measurements the scale model needs, on two CPU accelerators: <c>moe bench alltoall</c> and <c>moe bench layer --parallel ep</c>.</summary>
public sealed class ScaleBenchCommandTests
{
    [Fact]
    public void AllToAllOnTwoCpuRanksIsCorrectAndWritesCalibrationJson()
    {
        using var folder = new TempFolder();
        string json = folder.File("a2a.json");
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = AllToAllBenchCommand.Run("cpu:0,cpu:1", "all", "bf16", "1K", "64K", 4, warmup: 1, samples: 2, inner: 1, json, output, errors);
        Assert.True(code == 0, errors.ToString() + output);
        var root = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal("alltoall", root["kind"]!.GetValue<string>());
        var rows = root["rows"]!.AsArray();
        Assert.Equal([1024L, 4096, 16384, 65536], rows.Select(r => r!["BytesPerRank"]!.GetValue<long>()));
        Assert.All(rows, r =>
        {
            Assert.Equal("ours", r!["Algorithm"]!.GetValue<string>());
            Assert.Equal(0, r["WrongElements"]!.GetValue<long>());
            Assert.Equal(r["BytesPerRank"]!.GetValue<long>() / 2, r["PeerBytesPerRank"]!.GetValue<long>());
            Assert.True(r["TimeUs"]!.GetValue<double>() > 0);
        });
    }

    [Fact]
    public void AllToAllRefusesNcclOnCpuAndOneRank()
    {
        var errors = new StringWriter();
        Assert.Equal(2, AllToAllBenchCommand.Run("cpu:0,cpu:1", "nccl", "bf16", "1K", "1K", 2, 0, 1, 1, null, new StringWriter(), errors));
        Assert.Contains("CUDA devices only", errors.ToString());
        errors = new StringWriter();
        Assert.Equal(2, AllToAllBenchCommand.Run("cpu:0", "ours", "bf16", "1K", "1K", 2, 0, 1, 1, null, new StringWriter(), errors));
        Assert.Contains("at least 2 ranks", errors.ToString());
    }

    [Fact]
    public void ExpertParallelLayerBenchRunsBothEnqueueOrdersOnOneLayer()
    {
        using var folder = new TempFolder();
        string json = folder.File("ep-s6.json");
        var errors = new StringWriter();
        var output = new StringWriter();
        int code = LayerBenchCommand.RunExpertParallel("tiny", "1,33", "cpu:0,cpu:1", "bf16", warmup: 1, samples: 2, json, output, errors, "interleaved,ranked");
        Assert.True(code == 0, errors.ToString());
        var first = JsonNode.Parse(File.ReadAllText(json))!;
        var second = JsonNode.Parse(File.ReadAllText(folder.File("ep-s6-ranked.json")))!;
        Assert.Equal("interleaved", first["enqueue"]!.GetValue<string>());
        Assert.Equal("ranked", second["enqueue"]!.GetValue<string>());
        foreach (var root in new[] { first, second })
            Assert.Equal([1, 33], root["rows"]!.AsArray().Select(r => r!["Tokens"]!.GetValue<int>()));
        Assert.Contains("experts enqueued interleaved", output.ToString());
        Assert.Contains("experts enqueued ranked", output.ToString());

        errors = new StringWriter();
        Assert.Equal(2, LayerBenchCommand.RunExpertParallel("tiny", "1", "cpu:0,cpu:1", "bf16", 1, 2, null, new StringWriter(), errors, "ranked,sideways"));
        Assert.Contains("--enqueue ranked,sideways", errors.ToString());
        errors = new StringWriter();
        Assert.Equal(2, LayerBenchCommand.RunExpertParallel("tiny", "1", "cpu:0,cpu:1", "bf16", 1, 2, null, new StringWriter(), errors, "ranked,ranked"));
        Assert.Contains("named twice", errors.ToString());
    }

    [Fact]
    public void ExpertParallelLayerBenchTimesEveryPhaseAndValidates()
    {
        using var folder = new TempFolder();
        string json = folder.File("ep.json");
        var errors = new StringWriter();
        int code = LayerBenchCommand.RunExpertParallel("tiny", "1,16,33", "cpu:0,cpu:1", "bf16", warmup: 1, samples: 2, json, new StringWriter(), errors);
        Assert.True(code == 0, errors.ToString());
        var root = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.Equal("ep_layer", root["kind"]!.GetValue<string>());
        Assert.Equal(2, root["ranks"]!.GetValue<int>());
        var rows = root["rows"]!.AsArray();
        Assert.Equal([1, 16, 33], rows.Select(r => r!["Tokens"]!.GetValue<int>()));
        foreach (var row in rows)
        {
            var phases = row!["PhaseUs"]!.AsObject();
            Assert.Equal(Enum.GetNames<ExpertParallelPhase>(), phases.Select(p => p.Key));
            Assert.True(phases["Experts"]!.GetValue<double>() > 0);
            Assert.True(phases["Dispatch"]!.GetValue<double>() > 0);
            int tokens = row["Tokens"]!.GetValue<int>();
            Assert.Equal(tokens, row["TokensPerRank"]!.AsArray().Sum(t => t!.GetValue<double>()));
            Assert.Equal(tokens * 4, row["RowsPerRank"]!.AsArray().Sum(t => t!.GetValue<double>()));
            Assert.All(row["ActiveExpertsPerRank"]!.AsArray(), a => Assert.InRange(a!.GetValue<double>(), 0, 8));
            // Each held expert's rows: they add up to the rank's rows, and the experts with rows are the hit ones.
            var held = row["RowsPerHeldExpert"]!.AsArray();
            Assert.Equal(2, held.Count);
            for (int r = 0; r < 2; r++)
            {
                var experts = held[r]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
                Assert.Equal(8, experts.Length); // tiny: 16 experts over 2 ranks
                Assert.Equal(row["RowsPerRank"]![r]!.GetValue<double>(), experts.Sum());
                Assert.Equal(row["ActiveExpertsPerRank"]![r]!.GetValue<double>(), experts.Count(x => x > 0));
            }
            // Per rank, on one clock: every phase a rank ran, its marks in order on the device and on the host.
            var perRank = row["PerRank"]!.AsArray();
            for (int r = 0; r < 2; r++)
            {
                var marks = perRank.Where(x => x!["Rank"]!.GetValue<int>() == r).ToList();
                var expected = new List<string> { "RouteAndPermute", "Dispatch", "Experts", "Combine", "SharedAndUnpermute" };
                if (row["TokensPerRank"]![r]!.GetValue<double>() == 0)
                    expected.Remove("SharedAndUnpermute"); // the route's marks are issued on every rank, an empty phase on one without tokens
                if (row["RowsPerRank"]![r]!.GetValue<double>() == 0)
                    expected.Remove("Experts");
                Assert.Equal(expected, marks.Select(x => x!["Phase"]!.GetValue<string>()));
                double last = 0;
                foreach (var x in marks)
                {
                    double begin = x!["HostBeginUs"]!.GetValue<double>(), end = x["HostEndUs"]!.GetValue<double>();
                    Assert.True(begin >= last && end >= begin, $"rank {r} {x["Phase"]}: host marks {begin}-{end} after {last}");
                    Assert.True(x["DeviceEndUs"]!.GetValue<double>() >= x["DeviceBeginUs"]!.GetValue<double>());
                    last = end;
                }
            }
        }
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Validate = json }, output, new StringWriter()));
        Assert.Contains("|error| mean", output.ToString());
        Assert.Contains("over 3 points", output.ToString());
    }

    /// <summary>Ranks that build only their own block of random experts run the same layer as one device holding them all.</summary>
    [Fact]
    public void PerRankRandomExpertBlocksMatchTheWholeRandomLayer()
    {
        var config = LayerPresets.Get("tiny");
        var cpu0 = TestDevices.Context.Get("cpu:0");
        var cpu1 = TestDevices.Context.Get("cpu:1");
        const int tokens = 9;
        var random = new Random(5);
        var hidden = Enumerable.Range(0, tokens * config.HiddenSize).Select(_ => 2 * random.NextSingle() - 1).ToArray();
        using var whole = DeviceMoeWeights.CreateRandom(cpu0, config, DType.F32, seed: 11);
        var layer = new MoeLayer(whole);
        using var workspace = new MoeWorkspace(whole, tokens);
        using var input = cpu0.Upload<float>(hidden);
        using var expected = cpu0.Allocate<float>((long)tokens * config.HiddenSize);
        layer.Forward(input, expected, workspace);

        int block = config.NumExperts / 2;
        using var ep = new ExpertParallelMoe([
            DeviceMoeWeights.CreateRandom(cpu0, config, DType.F32, 11, 0, block),
            DeviceMoeWeights.CreateRandom(cpu1, config, DType.F32, 11, block, block)]);
        var actual = ep.Forward(hidden, tokens);
        Compare.Close(expected.ToArray(), actual, 1e-5, "EP over per-rank random blocks against the whole layer (F32: 1e-5)");
        Assert.Equal(tokens * config.TopK, ep.LastRowsPerRank.Sum());
    }

    [Fact]
    public void PerRankWeightsMustBeTheRanksBlocks()
    {
        var config = LayerPresets.Get("tiny");
        var cpu0 = TestDevices.Context.Get("cpu:0");
        var cpu1 = TestDevices.Context.Get("cpu:1");
        var weights = new[] { DeviceMoeWeights.CreateRandom(cpu0, config, DType.F32, 1, 0, 8), DeviceMoeWeights.CreateRandom(cpu1, config, DType.F32, 1, 0, 8) };
        try
        {
            Assert.Contains("rank 1 holds experts [0, 8)", Assert.Throws<ArgumentException>(() => new ExpertParallelMoe(weights)).Message);
        }
        finally
        {
            foreach (var w in weights)
                w.Dispose();
        }
    }
}
