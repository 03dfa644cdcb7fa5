using System.Text.Json.Nodes;
using MoeRuntime.Cli.Commands;

namespace MoeRuntime.Tests.Cli;

public class EplbCommandTests
{
    private static (int Code, string Output, string Errors) Run(string loadsJson, int gpus, int slots, int groups = 1, bool json = true)
    {
        string path = Path.Combine(Path.GetTempPath(), $"eplb-cli-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, loadsJson);
        try
        {
            var output = new StringWriter();
            var errors = new StringWriter();
            int code = EplbCommand.Run(path, gpus, slots, groups, json, output, errors);
            return (code, output.ToString(), errors.ToString());
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void JsonOutputIsOneObjectWithSlotsAndBalances()
    {
        var (code, output, errors) = Run("[60, 20, 20, 20]", gpus: 4, slots: 2);
        Assert.Equal(0, code);
        Assert.Equal("", errors);
        var report = JsonNode.Parse(output)!.AsObject();
        Assert.Equal(new[] { "slots", "balance" }, report.Select(p => p.Key));
        var slots = report["slots"]!.AsArray();
        Assert.Equal(4, slots.Count);
        Assert.All(slots, g => Assert.Equal(2, g!.AsArray().Count));
        var ids = slots.SelectMany(g => g!.AsArray().Select(e => e!.GetValue<int>())).ToList();
        Assert.Equal(new[] { 0, 1, 2, 3 }, ids.Distinct().Order());
        // none: one expert per GPU, loads 60/20/20/20 over mean 30 = 2; planned: 35/30 (see EplbPlannerTests).
        Assert.Equal(2.0, report["balance"]!["none"]!.GetValue<double>(), 12);
        Assert.Equal(35.0 / 30.0, report["balance"]!["planned"]!.GetValue<double>(), 12);
        Assert.Equal(2, report["balance"]!.AsObject().Count);
    }

    [Fact]
    public void TheTableShowsBalanceBeforeAndAfter()
    {
        var (code, output, _) = Run("[60, 20, 20, 20]", gpus: 4, slots: 2, json: false);
        Assert.Equal(0, code);
        Assert.Contains("balance (max/mean GPU load): none 2.000, planned 1.167", output);
    }

    [Theory]
    [InlineData("[1, 2, 3, 4]", 2, 1, 1, "cannot hold 4 experts")]
    [InlineData("[1, 2, 3, 4]", 3, 2, 1, "do not split evenly over --gpus 3")]
    [InlineData("[1, 2, 3, 4]", 2, 2, 4, "equal groups")]
    [InlineData("[1, -2]", 2, 2, 1, "cannot be negative")]
    [InlineData("{}", 2, 2, 1, "expected a JSON array")]
    [InlineData("[1, 2]", 0, 2, 1, "--gpus is 0")]
    public void BadArgumentsExitWithCodeTwoAndSayWhy(string loads, int gpus, int slots, int groups, string message)
    {
        var (code, output, errors) = Run(loads, gpus, slots, groups);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains(message, errors);
    }
}
