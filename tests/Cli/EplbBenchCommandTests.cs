using System.Text.Json;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe bench eplb</c> on CPU accelerators: the options as a user types them, the table, the files, and user errors.</summary>
public sealed class EplbBenchCommandTests
{
    private static (int Code, string Output, string Errors) Run(EplbBenchArguments arguments)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = EplbBenchCommand.Run(arguments, output, errors);
        return (code, output.ToString(), errors.ToString());
    }

    [Fact]
    public void CommandLineOptionsParseAsDocumentedAndWriteJsonAndLoads()
    {
        using var folder = new TempFolder();
        string json = folder.File("eplb.json"), loads = folder.File("loads.json");
        string[] args =
        [
            "--devices", "cpu:0,cpu:1", "--skew", "zipf:1.2", "--drift", "--preset", "tiny", "--dtype", "f32", "--tokens", "64",
            "--steps", "6", "--redundant", "2", "--rebalance-every", "2", "--json", json, "--save-loads", loads,
        ];
        int code = EplbBenchCommand.Create().Parse(args).Invoke();
        Assert.Equal(0, code);
        using var document = JsonDocument.Parse(File.ReadAllText(json));
        var root = document.RootElement;
        Assert.Equal("tiny", root.GetProperty("preset").GetString());
        Assert.Equal(9, root.GetProperty("slotsPerDevice").GetInt32());
        Assert.Equal(4, root.GetProperty("driftPeriod").GetInt32());
        var modes = root.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("Mode").GetString()!).ToArray();
        Assert.Equal(new[] { "none", "static", "online" }, modes);
        foreach (var row in root.GetProperty("rows").EnumerateArray())
            Assert.InRange(row.GetProperty("Balance").GetDouble(), 1.0, 2.0);
        var profile = PlacementFile.ReadLoads(loads);
        Assert.Equal(16, profile.Length);
        Assert.Equal(64L * 4 * 6, profile.Sum());   // T * k * steps
    }

    [Fact]
    public void PrintsOneRowPerModeWithBalanceTimeAndMigrations()
    {
        var (code, output, errors) = Run(new EplbBenchArguments
        {
            Devices = "cpu:0,cpu:1,cpu:2,cpu:3", Preset = "tiny", DType = "f32", Tokens = 256, Steps = 12, Redundant = 4, RebalanceEvery = 2,
        });
        Assert.True(code == 0, errors);
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var header = lines.Single(l => l.StartsWith("mode", StringComparison.Ordinal));
        foreach (var column in new[] { "balance", "step(ms)", "tokens/s", "speedup", "migr", "migr(ms)" })
            Assert.Contains(column, header);
        double Balance(string mode) => lines.Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f[0] == mode && double.TryParse(f[1], System.Globalization.CultureInfo.InvariantCulture, out _))
            .Select(f => double.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture)).Single();
        // tiny: 16 experts over 4 devices, Zipf 1.2: contiguous experts are far from even; a placement with replicas is close.
        Assert.True(Balance("none") > 1.3, output);
        Assert.True(Balance("static") < Balance("none"), output);
        Assert.True(Balance("online") < Balance("none"), output);
        Assert.Contains("online balance", output);
        Assert.Contains("target <= 1.10", output);
    }

    public static TheoryData<string, string> ErrorCases => new()
    {
        { "bad-skew", "zipf:S" },
        { "redundant-does-not-divide", "multiple of the 2 devices" },
        { "bad-mode", "'greedy'" },
        { "drift-period-without-drift", "--drift-period needs --drift" },
        { "bad-preset", "preset 'gpt'" },
        { "no-tokens", "--tokens is 0" },
        { "mixed-devices", "unknown accelerator" },
        { "missing-loads", "no such file" },
    };

    [Theory, MemberData(nameof(ErrorCases))]
    public void UserErrorsExitWithCode2AndOneLine(string scenario, string message)
    {
        var arguments = new EplbBenchArguments { Preset = "tiny", DType = "f32", Tokens = 16, Steps = 1 };
        arguments = scenario switch
        {
            "bad-skew" => arguments with { Skew = "pareto:2" },
            "redundant-does-not-divide" => arguments with { Redundant = 3 },
            "bad-mode" => arguments with { Modes = "none,greedy" },
            "drift-period-without-drift" => arguments with { DriftPeriod = 4 },
            "bad-preset" => arguments with { Preset = "gpt" },
            "no-tokens" => arguments with { Tokens = 0 },
            "mixed-devices" => arguments with { Devices = "cpu:0,tpu:1" },
            "missing-loads" => arguments with { Loads = "/nonexistent/loads.json" },
            _ => arguments,
        };
        var (code, _, errors) = Run(arguments);
        Assert.Equal(2, code);
        Assert.StartsWith("moe bench eplb: ", errors.TrimStart());
        Assert.Contains(message, errors);
        Assert.Single(errors.Trim().Split('\n'), l => !l.StartsWith("moe bench eplb: none", StringComparison.Ordinal));
    }
}
