using System.Text.Json.Nodes;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Cli;

public class DevicesCommandTests
{
    [Fact]
    public void ReportsEveryAcceleratorAndThePeerMatrix()
    {
        JsonObject report = DevicesCommand.Describe(TestDevices.Context);
        var ids = report["accelerators"]!.AsArray().Select(a => a!["id"]!.GetValue<string>()).ToList();
        Assert.Contains("cpu:0", ids);
        int gpus = ids.Count(i => i.StartsWith("cuda:", StringComparison.Ordinal));
        var peers = report["cuda"]!["peer_access"]!.AsArray();
        Assert.Equal(gpus, peers.Count);
        Assert.All(peers, row => Assert.Equal(gpus, row!.AsArray().Count));
        Assert.Equal(gpus > 0, report["cuda"]!["available"]!.GetValue<bool>());
    }
}
