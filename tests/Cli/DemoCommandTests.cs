using MoeRuntime.Cli.Commands;

namespace MoeRuntime.Tests.Cli;

public sealed class DemoCommandTests
{
    /// <summary>The demo on this machine: every row (CPU single, tp and ep over cpu:0,cpu:1, GPUs when present) passes.</summary>
    [Fact]
    public void DemoPassesOnThisMachine()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = DemoCommand.Run(tokens: 9, repeats: 1, output, errors);
        string text = output.ToString();
        Assert.True(code == 0, $"exit code {code}\n{text}\n{errors}");
        Assert.Contains("all checks passed", text);
        foreach (var expected in new[] { "cpu:0 ", "mixtral", "deepseek_v3" })
            Assert.Contains(expected, text);
        // Column widths follow the longest device list (cuda:0,cuda:1 on a 2-GPU machine).
        Assert.Matches(@"cpu:0,cpu:1\s+tp", text);
        Assert.Matches(@"cpu:0,cpu:1\s+ep", text);
        Assert.DoesNotContain("FAIL", text);
        Assert.True(text.Split('\n').Count(l => l.TrimEnd().EndsWith("pass", StringComparison.Ordinal)) >= 6, text);
        // Each row is named on stderr as it starts, so a first run's kernel compiles are placed.
        Assert.Contains("moe demo: mixtral, tp on cpu:0,cpu:1", errors.ToString());
        Assert.Contains("moe demo: deepseek_v3, ep on cpu:0,cpu:1", errors.ToString());
    }
}
