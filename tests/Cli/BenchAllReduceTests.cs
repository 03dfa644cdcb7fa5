using MoeRuntime.Cli.Bench;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe bench allreduce</c>'s parts: sizes and algorithm names, the harness's rows and check, the chart.</summary>
public class BenchAllReduceTests
{
    [Theory]
    [InlineData("4096", 4096L)]
    [InlineData("1K", 1024L)]
    [InlineData("256M", 256L << 20)]
    [InlineData("1g", 1L << 30)]
    [InlineData("64KB", 64L << 10)]
    public void ParsesSizes(string text, long bytes) => Assert.Equal(bytes, BenchCommand.ParseSize(text, "--max"));

    [Fact]
    public void RejectsBadSizesAndAlgorithms()
    {
        Assert.Contains("--min", Assert.Throws<ArgumentException>(() => BenchCommand.ParseSize("12Q", "--min")).Message);
        Assert.Contains("--algo bogus", Assert.Throws<ArgumentException>(() => BenchCommand.ParseAlgorithms("ring,bogus")).Message);
        Assert.Equal([AllReduceAlgorithm.Ring, AllReduceAlgorithm.Auto], BenchCommand.ParseAlgorithms("ring,auto"));
        Assert.Equal(5, BenchCommand.ParseAlgorithms("all").Count);
    }

    [Theory]
    [InlineData("graph", "Graph")]
    [InlineData("Eager", "Eager")]
    [InlineData(" eager ", "Eager")]
    public void ParsesTimingModes(string text, string expected) => Assert.Equal(expected, BenchCommand.ParseTiming(text).ToString());

    [Fact]
    public void RejectsAnUnknownTimingMode() =>
        Assert.Contains("--timing stopwatch: graph or eager", Assert.Throws<ArgumentException>(() => BenchCommand.ParseTiming("stopwatch")).Message);

    [Fact]
    public void TheCommandTakesATimingOptionDefaultingToGraphs()
    {
        var allreduce = BenchCommand.Create().Subcommands.Single(c => c.Name == "allreduce");
        var option = allreduce.Options.Single(o => o.Name == "--timing");
        var parsed = allreduce.Parse("--devices cpu:0,cpu:1");
        Assert.Empty(parsed.Errors);
        Assert.Equal("graph", parsed.GetValue<string>("--timing"));
        Assert.Equal("eager", allreduce.Parse("--timing eager").GetValue<string>("--timing"));
        Assert.NotNull(option.Description);
    }

    [Fact]
    public void HarnessRowsCarryBusBandwidthAndAZeroErrorCheck()
    {
        var group = TestDevices.GetGroup("cpu", 3);
        using var communicator = Communicator.Create(group, new CommunicatorOptions { CapacityBytes = 1 << 16 });
        var harness = new AllReduceBench(group, MoeRuntime.Accelerators.DType.BF16, warmup: 0, samples: 1, inner: 1, log: _ => { });
        var rows = harness.Run(AllReduceAlgorithm.Auto, [1024, 4096], communicator).ToList();
        Assert.Equal(2, rows.Count);
        Assert.All(rows, r =>
        {
            Assert.Equal(0, r.WrongElements);
            Assert.Equal("OneShot", r.Picked);
            Assert.True(r.TimeUs > 0);
            Assert.Equal(r.AlgorithmGBs * 2 * 2 / 3, r.BusGBs, 9); // 2(N-1)/N with N = 3
        });
        Assert.Equal(512, rows[0].Count);
        string csv = BenchCommand.ToCsv(rows);
        Assert.StartsWith("algorithm,ranks,dtype,bytes", csv);
        Assert.Contains("Auto,3,bf16,4096,2048,", csv);
    }

    [Fact]
    public void ChartHasOneLinePerSeries()
    {
        var svg = LatencyChart.Render("t", new Dictionary<string, IReadOnlyList<(long, double)>>
        {
            ["Ring"] = [(1024, 10.0), (1 << 20, 40.0)],
            ["NCCL"] = [(1024, 12.0), (1 << 20, 25.0)],
        });
        Assert.StartsWith("<svg", svg);
        Assert.Equal(2, svg.Split("<polyline").Length - 1);
        Assert.Contains(">Ring<", svg);
        Assert.EndsWith("</svg>\n", svg.ReplaceLineEndings("\n"));
    }
}
