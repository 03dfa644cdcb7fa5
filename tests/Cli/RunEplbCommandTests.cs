using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe run --parallel ep --eplb static:F|online [--redundant R] [--rebalance-every K]</c>: the same output as without EPLB.</summary>
public sealed class RunEplbCommandTests
{
    private static (int Code, string Output, string Errors) Run(RunArguments arguments)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = RunCommand.Run(arguments, output, errors);
        return (code, output.ToString(), errors.ToString());
    }

    [Theory]
    [InlineData("online", 2, 1)]
    [InlineData("online", null, null)]
    [InlineData("static", 2, null)]
    public void EplbRunsWriteTheSameOutputAsPlainExpertParallelism(string mode, int? redundant, int? rebalanceEvery)
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, 5);
        File.WriteAllText(folder.File("loads.json"), "[900, 10, 10, 10, 400, 10, 10, 10, 10, 10, 10, 10, 10, 10, 200, 10]");
        var plain = new RunArguments
        {
            Model = folder.Path, Layer = layer, Tokens = 40, Seed = 2, Output = folder.File("plain.safetensors"),
            Devices = "cpu:0,cpu:1", Parallel = "ep", Repeats = 3, ShowProgress = false,
        };
        Assert.Equal(0, Run(plain).Code);
        var (code, output, errors) = Run(plain with
        {
            Output = folder.File("eplb.safetensors"), Eplb = mode == "static" ? "static:" + folder.File("loads.json") : "online",
            Redundant = redundant, RebalanceEvery = rebalanceEvery,
        });
        Assert.True(code == 0, errors);
        Assert.Contains($"eplb: {mode}", output);
        Assert.Contains($"{(16 + (redundant ?? 0)) / 2} slots per device", output);
        var expected = HiddenStatesFile.Read(folder.File("plain.safetensors"));
        var actual = HiddenStatesFile.Read(folder.File("eplb.safetensors"));
        Compare.Exact<float>(expected.Values, actual.Values, $"moe run --eplb {mode}");
    }

    [Fact]
    public void EplbOptionsParseAsDocumented()
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 16, 4);
        string[] args =
        [
            "--model", folder.Path, "--layer", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), "--tokens", "9",
            "--output", folder.File("out.safetensors"), "--devices", "cpu:0,cpu:1,cpu:2", "--parallel", "ep",
            "--eplb", "online", "--redundant", "2", "--rebalance-every", "1", "--repeats", "2",
        ];
        Assert.Equal(0, RunCommand.Create().Parse(args).Invoke());
        Assert.Equal(9, HiddenStatesFile.Read(folder.File("out.safetensors")).Tokens);
    }

    public static TheoryData<string, string> ErrorCases => new()
    {
        { "eplb-without-ep", "needs --parallel ep" },
        { "redundant-without-eplb", "--redundant needs --eplb" },
        { "rebalance-without-eplb", "--rebalance-every needs --eplb online" },
        { "rebalance-with-static", "a static placement never changes" },
        { "bad-spec", "static:LOADS.json or online" },
        { "missing-profile", "does not exist" },
        { "profile-size", "has 3 per-expert counts" },
        { "slots-do-not-divide", "do not split evenly over 2 devices" },
        { "negative-redundant", "--redundant is -1" },
    };

    [Theory, MemberData(nameof(ErrorCases))]
    public void UserErrorsExitWithCode2AndOneLine(string scenario, string message)
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 16, 9);
        File.WriteAllText(folder.File("short.json"), "[1, 2, 3]");
        var arguments = new RunArguments
        {
            Model = folder.Path, Layer = layer, Tokens = 2, Output = folder.File("out.safetensors"), Repeats = 1, ShowProgress = false,
            Devices = "cpu:0,cpu:1", Parallel = "ep", Eplb = "online",
        };
        arguments = scenario switch
        {
            "eplb-without-ep" => arguments with { Parallel = "tp" },
            "redundant-without-eplb" => arguments with { Eplb = null, Redundant = 2 },
            "rebalance-without-eplb" => arguments with { Eplb = null, RebalanceEvery = 2 },
            "rebalance-with-static" => arguments with { Eplb = "static:" + folder.File("short.json"), RebalanceEvery = 2 },
            "bad-spec" => arguments with { Eplb = "dynamic" },
            "missing-profile" => arguments with { Eplb = "static:" + folder.File("absent.json") },
            "profile-size" => arguments with { Eplb = "static:" + folder.File("short.json") },
            "slots-do-not-divide" => arguments with { Redundant = 1 },
            "negative-redundant" => arguments with { Redundant = -1 },
            _ => arguments,
        };
        var (code, _, errors) = Run(arguments);
        Assert.Equal(2, code);
        Assert.StartsWith("moe run: ", errors);
        Assert.Contains(message, errors);
        Assert.Single(errors.TrimEnd().Split('\n'));
        Assert.False(File.Exists(folder.File("out.safetensors")));
    }
}
