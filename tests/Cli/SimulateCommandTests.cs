using System.CommandLine;
using System.Text.Json.Nodes;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe simulate</c>: parsing, the table and frontier it prints, calibrate/save/use, and validate.</summary>
public sealed class SimulateCommandTests
{
    [Fact]
    public void CommandLineParsesEveryOption()
    {
        var command = SimulateCommand.Create();
        var parse = command.Parse(["--model", "qwen3-30b-a3b", "--gpus", "16", "--ep", "8,16", "--tokens-per-gpu", "1..64", "--link", "ib400",
            "--eplb", "online", "--skew", "zipf:1.1", "--calibrate", "a.json", "b.json", "--save", "p.json"]);
        Assert.Empty(parse.Errors);
        Assert.Equal("qwen3-30b-a3b", parse.GetValue<string>("--model"));
        Assert.Equal(16, parse.GetValue<int>("--gpus"));
        Assert.Equal(["a.json", "b.json"], parse.GetValue<string[]>("--calibrate")!);
        Assert.Equal("p.json", parse.GetValue<string>("--save"));
    }

    [Theory]
    [InlineData("1..1024", new[] { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 })]
    [InlineData("3..20", new[] { 3, 6, 12, 20 })]
    [InlineData("1,16,128", new[] { 1, 16, 128 })]
    public void TokenRangesArePowersOfTwoWithTheEnd(string text, int[] expected) => Assert.Equal(expected, SimulateCommand.ParseTokens(text));

    [Fact]
    public void SkewAndEplbParse()
    {
        Assert.Equal(0, SimulateCommand.ParseSkew("uniform"));
        Assert.Equal(1.2, SimulateCommand.ParseSkew("zipf:1.2"));
        Assert.Equal(EplbMode.Static, SimulateCommand.ParseEplb("static"));
    }

    [Theory]
    [InlineData("--eplb", "sometimes", "--eplb sometimes")]
    [InlineData("--link", "pcie", "--link pcie")]
    [InlineData("--skew", "zipf:-1", "--skew zipf:-1")]
    [InlineData("--ep", "0", "--ep: '0'")]
    [InlineData("--tokens-per-gpu", "64..8", "the range is empty")]
    public void BadArgumentsExitWithCode2(string option, string value, string message)
    {
        var settings = option switch
        {
            "--eplb" => new SimulateCommand.Settings { Eplb = value },
            "--link" => new SimulateCommand.Settings { Link = value },
            "--skew" => new SimulateCommand.Settings { Skew = value },
            "--ep" => new SimulateCommand.Settings { Ep = value },
            _ => new SimulateCommand.Settings { TokensPerGpu = value },
        };
        var errors = new StringWriter();
        Assert.Equal(2, SimulateCommand.Run(settings with { Steps = 1 }, new StringWriter(), errors));
        Assert.Contains(message, errors.ToString());
    }

    [Fact]
    public void SimulatePrintsEveryPointTheFrontierAndTheBudgetSummary()
    {
        using var folder = new TempFolder();
        var output = new StringWriter();
        var settings = new SimulateCommand.Settings { Ep = "8,32", TokensPerGpu = "1..256", Steps = 2, Json = folder.File("sim.json") };
        Assert.Equal(0, SimulateCommand.Run(settings, output, new StringWriter()));
        string text = output.ToString();
        Assert.Contains($"# params: {DefaultScaleParams.Name}", text);
        Assert.Contains("# Pareto frontier", text);
        Assert.Contains("EP8:", text);
        Assert.Contains("EP32:", text);
        var json = JsonNode.Parse(File.ReadAllText(folder.File("sim.json")))!;
        Assert.Equal(2 * 9, json["points"]!.AsArray().Count);
        Assert.NotEmpty(json["pareto"]!.AsArray());
    }

    [Fact]
    public void LinkAlgoPicksTheAllToAllAlgorithmTheLinkIsFittedFrom()
    {
        using var folder = new TempFolder();
        string a2a = folder.File("a2a.json");
        File.WriteAllText(a2a, """
            {"kind":"alltoall","device":"x","ranks":2,"rows":[
              {"Algorithm":"ours","PeerBytesPerRank":1000,"TimeUs":10},{"Algorithm":"ours","PeerBytesPerRank":1000000000,"TimeUs":10010},
              {"Algorithm":"nccl","PeerBytesPerRank":1000,"TimeUs":10},{"Algorithm":"nccl","PeerBytesPerRank":1000000000,"TimeUs":5010}]}
            """);
        Assert.Equal(200, Calibration.Fit([a2a], DefaultScaleParams.Load()).Link.GBs, 0.01);
        Assert.Equal(100, Calibration.Fit([a2a], DefaultScaleParams.Load(), linkAlgorithm: "ours").Link.GBs, 0.01);
        var errors = new StringWriter();
        Assert.Equal(2, SimulateCommand.Run(new SimulateCommand.Settings { Calibrate = [a2a], LinkAlgo = "mpi" }, new StringWriter(), errors));
        Assert.Contains("--link-algo mpi", errors.ToString());
    }

    [Fact]
    public void CalibrateSavesParamsThatASimulationThenNames()
    {
        using var folder = new TempFolder();
        string a2a = folder.File("a2a.json");
        File.WriteAllText(a2a, """{"kind":"alltoall","device":"x","ranks":2,"rows":[{"Algorithm":"ours","PeerBytesPerRank":1000,"TimeUs":10},{"Algorithm":"ours","PeerBytesPerRank":1000000000,"TimeUs":5010}]}""");
        string saved = folder.File("params.json");
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Calibrate = [a2a], Save = saved }, output, new StringWriter()));
        Assert.Contains($"# saved params: {saved}", output.ToString());
        var p = ScaleParams.Load(saved);
        Assert.Equal(200, p.Link.GBs, 0.01);

        output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Params = saved, Ep = "8", TokensPerGpu = "1", Steps = 1 }, output, new StringWriter()));
        Assert.Contains($"# params: {saved}", output.ToString());
    }

    [Fact]
    public void ValidateComparesThePhaseSumWithTheLayerPlusTheCombinesWait()
    {
        using var folder = new TempFolder();
        string bench = folder.File("ep.json");
        File.WriteAllText(bench, """
            {"kind":"ep_layer","preset":"deepseek-v3","device":"test GPU","ranks":2,"rows":[
              {"Tokens":128,"PhaseUs":{"RouteAndPermute":100,"Dispatch":80,"Experts":1700,"Combine":200,"SharedAndUnpermute":150},
               "TokensPerRank":[64,64],"RowsPerRank":[641,383],"ActiveExpertsPerRank":[76,70]}]}
            """);
        var p = DefaultScaleParams.Load();
        var predicted = ScaleModel.Predict(p, MoeRuntime.Runtime.Models.LayerPresets.Get("deepseek-v3"), LinkPreset.H200Nvlink, [64, 64], [641, 383], [76, 70]);
        Assert.True(predicted.ExpertSkewUs > 0);
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Validate = bench }, output, new StringWriter()));
        string row = output.ToString().Split('\n').Single(l => l.TrimStart().StartsWith("128 ", StringComparison.Ordinal));
        var fields = row.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("2230.0", fields[1]);
        Assert.Equal(predicted.TimedPhaseSumUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[2]);
        Assert.Equal(predicted.TotalUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[5]);
        Assert.Equal(predicted.ExpertSkewUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[6]);
        Assert.Contains($"200/{predicted.TimedCombineUs:F0}", row);
    }

    [Fact]
    public void ValidateCountsEachHeldExpertsTilesWhenTheRunRecordedThem()
    {
        // Qwen3 EP2, 16384 rows a rank on 64 experts: evenly spread that is 256 rows, two tiles each. Recorded: rank 0's
        // experts hold 200 and 312 rows in turn (2 and 3 tiles: 160 tiles), rank 1's 256 each (128 tiles).
        var rank0 = Enumerable.Range(0, 64).Select(i => i % 2 == 0 ? 200L : 312L).ToArray();
        var rank1 = Enumerable.Repeat(256L, 64).ToArray();
        using var folder = new TempFolder();
        string bench = folder.File("ep.json"), recorded = folder.File("ep-held.json");
        string Row(string extra) => "{\"kind\":\"ep_layer\",\"preset\":\"qwen3-30b-a3b\",\"device\":\"x\",\"ranks\":2,\"rows\":[{\"Tokens\":4096,"
            + "\"PhaseUs\":{\"RouteAndPermute\":70,\"Dispatch\":250,\"Experts\":500,\"Combine\":560,\"SharedAndUnpermute\":45},"
            + "\"TokensPerRank\":[2048,2048],\"RowsPerRank\":[16384,16384],\"ActiveExpertsPerRank\":[64,64]" + extra + "}]}";
        File.WriteAllText(bench, Row(""));
        File.WriteAllText(recorded, Row($",\"RowsPerHeldExpert\":[[{string.Join(",", rank0)}],[{string.Join(",", rank1)}]]"));
        var p = DefaultScaleParams.Load();
        var c = MoeRuntime.Runtime.Models.LayerPresets.Get("qwen3-30b-a3b");
        var even = ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [2048, 2048], [16384, 16384], [64, 64], schedule: HostSchedule.InProcessBench);
        var tiles = ScaleModel.Predict(p, c, LinkPreset.H200Nvlink, [2048, 2048], [16384, 16384], [64, 64], [160 * 128.0, 128 * 128.0], schedule: HostSchedule.InProcessBench);
        Assert.True(tiles.TimedPhaseSumUs > even.TimedPhaseSumUs);
        foreach (var (file, expected) in new[] { (bench, even), (recorded, tiles) })
        {
            var output = new StringWriter();
            Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Validate = file }, output, new StringWriter()));
            string row = output.ToString().Split('\n').Single(l => l.TrimStart().StartsWith("4096 ", StringComparison.Ordinal));
            Assert.Equal(expected.TimedPhaseSumUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[2]);
        }
    }
    [Fact]
    public void OutputsNameTheHostTermOrItsAbsence()
    {
        using var folder = new TempFolder();
        // Old params (no host part): the term is 0, and the output says so.
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Ep = "8", TokensPerGpu = "1", Steps = 1 }, output, new StringWriter()));
        Assert.Contains("# host enqueue: none in these params (term = 0", output.ToString());

        // A host_launch sweep calibrates the host part; the calibration prints it and a simulation names its assumption.
        string sweep = folder.File("host.json");
        File.WriteAllText(sweep, """
            {"device":"test GPU","rows":[{"Name":"host permute","Shape":"launches=3","Ms":0.015},{"Name":"host upload","Shape":"copies=1","Ms":0.004},
              {"Name":"host event record","Shape":"events=1","Ms":0.002},{"Name":"host alltoallv","Shape":"ranks=1","Ms":0.012}]}
            """);
        string saved = folder.File("params.json");
        output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Calibrate = [sweep], Save = saved }, output, new StringWriter()));
        Assert.Contains("host:     launch 5.00 us, copy 4.00 us, event 2.00 us, all-to-allv 12.00 us per rank", output.ToString());

        output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Params = saved, Ep = "8", TokensPerGpu = "1", Steps = 1 }, output, new StringWriter()));
        string text = output.ToString();
        Assert.Contains("# host enqueue: one process per GPU", text);
        Assert.Contains("(host enqueue adds", text);

        string bench = folder.File("ep.json");
        File.WriteAllText(bench, """
            {"kind":"ep_layer","preset":"qwen3-30b-a3b","device":"test GPU","ranks":2,"rows":[
              {"Tokens":128,"PhaseUs":{"RouteAndPermute":85,"Dispatch":73,"Experts":244,"Combine":128,"SharedAndUnpermute":10},
               "TokensPerRank":[64,64],"RowsPerRank":[512,512],"ActiveExpertsPerRank":[64,64]}]}
            """);
        output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Params = saved, Validate = bench }, output, new StringWriter()));
        text = output.ToString();
        Assert.Contains("# host enqueue: one thread for all ranks", text);
        var p = ScaleParams.Load(saved);
        // A run without "enqueue" is from before the switch: its experts were enqueued rank after rank.
        Assert.Contains("experts ranked", text);
        var predicted = ScaleModel.Predict(p, MoeRuntime.Runtime.Models.LayerPresets.Get("qwen3-30b-a3b"), LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64],
            schedule: HostSchedule.InProcessBench with { Order = EpEnqueueOrder.Ranked });
        var fields = text.Split('\n').Single(l => l.TrimStart().StartsWith("128 ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(predicted.TimedPhaseSumUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[2]);
        Assert.Equal(predicted.HostUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[7]);
        Assert.True(predicted.HostUs > 0);

        // A run that names its order is validated in it: interleaved starts both ranks' experts together, so the timer's wait shrinks.
        File.WriteAllText(bench, File.ReadAllText(bench).Replace("\"ranks\":2,", "\"ranks\":2,\"enqueue\":\"interleaved\","));
        output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Params = saved, Validate = bench }, output, new StringWriter()));
        text = output.ToString();
        Assert.Contains("experts interleaved", text);
        var interleaved = ScaleModel.Predict(p, MoeRuntime.Runtime.Models.LayerPresets.Get("qwen3-30b-a3b"), LinkPreset.H200Nvlink, [64, 64], [512, 512], [64, 64],
            schedule: HostSchedule.InProcessBench with { Order = EpEnqueueOrder.Interleaved });
        fields = text.Split('\n').Single(l => l.TrimStart().StartsWith("128 ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(interleaved.TimedPhaseSumUs.ToString("F1", System.Globalization.CultureInfo.InvariantCulture), fields[2]);
        Assert.True(interleaved.ExpertSkewUs < predicted.ExpertSkewUs, $"wait interleaved {interleaved.ExpertSkewUs}, ranked {predicted.ExpertSkewUs}");
    }

    /// <summary>Validation prints each row's experts per rank, measured and predicted, when the run recorded per-rank marks.</summary>
    [Fact]
    public void ValidationPrintsTheExpertsStartOfEveryRank()
    {
        using var folder = new TempFolder();
        string bench = folder.File("ep.json");
        File.WriteAllText(bench, """
            {"kind":"ep_layer","preset":"qwen3-30b-a3b","device":"test GPU","ranks":2,"enqueue":"interleaved","rows":[
              {"Tokens":128,"PhaseUs":{"RouteAndPermute":85,"Dispatch":73,"Experts":244,"Combine":128,"SharedAndUnpermute":10},
               "TokensPerRank":[64,64],"RowsPerRank":[512,512],"ActiveExpertsPerRank":[64,64],
               "PerRank":[{"Phase":"Experts","Rank":0,"DeviceBeginUs":917,"DeviceEndUs":1210,"HostBeginUs":908,"HostEndUs":1062},
                          {"Phase":"Experts","Rank":1,"DeviceBeginUs":1059,"DeviceEndUs":1301,"HostBeginUs":1063,"HostEndUs":1159}]}]}
            """);
        var output = new StringWriter();
        Assert.Equal(0, SimulateCommand.Run(new SimulateCommand.Settings { Validate = bench }, output, new StringWriter()));
        string line = output.ToString().Split('\n').Single(l => l.Contains("experts per rank", StringComparison.Ordinal));
        Assert.Contains("measured 917-1210 1059-1301 (last rank starts +142), predicted ", line);
    }

    [Fact]
    public void ValidationRejectsAnUnknownEnqueueOrder()
    {
        using var folder = new TempFolder();
        string bench = folder.File("ep.json");
        File.WriteAllText(bench, """
            {"kind":"ep_layer","preset":"qwen3-30b-a3b","device":"test GPU","ranks":2,"enqueue":"sideways","rows":[]}
            """);
        var errors = new StringWriter();
        Assert.NotEqual(0, SimulateCommand.Run(new SimulateCommand.Settings { Validate = bench }, new StringWriter(), errors));
        Assert.Contains("sideways", errors.ToString());
    }
}
