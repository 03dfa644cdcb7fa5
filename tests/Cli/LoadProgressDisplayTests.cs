using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Progress;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

public sealed class LoadProgressDisplayTests
{
    [Fact]
    public void RedirectedOutputGetsAFewPlainLinesPerStage()
    {
        using var folder = new TempFolder();
        RandomCheckpoint.Write(folder.Path, ModelFamily.DeepseekV3, new RandomCheckpointOptions { NumExperts = 32, TopK = 4 }, seed: 3);
        var writer = new StringWriter();
        MoeLayerWeights.Load(folder.Path, 1, DType.BF16, new LoadProgressDisplay.PlainLines("layer 1", writer));
        var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var expertLines = lines.Where(l => l.Contains("experts")).ToArray();
        Assert.InRange(expertLines.Length, 10, 11); // one per decile, not one per expert
        Assert.StartsWith("layer 1: experts 32/32", expertLines[^1]);
        Assert.Contains(lines, l => l.StartsWith("layer 1: shared expert 1/1", StringComparison.Ordinal));
    }
}
