using MoeRuntime.Collectives.Distributed;

namespace MoeRuntime.Tests.Collectives;

/// <summary>The launch conventions: torchrun-style and Open MPI variables, the rendezvous port, and the clear errors for partial or bad settings.</summary>
public class LaunchEnvironmentTests
{
    private static LaunchEnvironment Parse(params (string Name, string Value)[] variables) =>
        LaunchEnvironment.Parse(variables.ToDictionary(v => v.Name, v => (string?)v.Value));

    private static string Error(params (string Name, string Value)[] variables) =>
        Assert.Throws<LaunchEnvironmentException>(() => Parse(variables)).Message;

    [Fact]
    public void NoLauncherIsOneProcess()
    {
        var single = Parse();
        Assert.False(single.IsDistributed);
        Assert.Equal(LaunchSource.None, single.Source);
        Assert.False(Parse(("MASTER_ADDR", "10.0.0.1"), ("MASTER_PORT", "1234")).IsDistributed);
        Assert.False(Parse(("RANK", "  ")).IsDistributed); // empty counts as unset
    }

    [Fact]
    public void ReadsTorchrunVariables()
    {
        var e = Parse(("RANK", "3"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "1"), ("MASTER_ADDR", "node0"), ("MASTER_PORT", "29400"));
        Assert.Equal(LaunchSource.Torchrun, e.Source);
        Assert.Equal((3, 4, 1), (e.Rank, e.WorldSize, e.LocalRank));
        Assert.Equal(("node0", 29400, 29400), (e.MasterAddress, e.MasterPort, e.RendezvousPort));
        Assert.Equal("cuda:1", e.DeviceName);
        Assert.True(e.IsDistributed);
        Assert.Equal(TimeSpan.FromSeconds(120), e.RendezvousTimeout);
    }

    [Fact]
    public void TorchrunAgentStoreMovesTheRendezvousToTheNextPort()
    {
        (string, string)[] torchrun = [("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")];
        Assert.Equal(29501, Parse([.. torchrun, ("TORCHELASTIC_USE_AGENT_STORE", "True")]).RendezvousPort);
        Assert.Equal(29500, Parse([.. torchrun, ("TORCHELASTIC_USE_AGENT_STORE", "False")]).RendezvousPort);
        Assert.Equal(31000, Parse([.. torchrun, ("TORCHELASTIC_USE_AGENT_STORE", "True"), ("MOE_RENDEZVOUS_PORT", "31000")]).RendezvousPort);
        Assert.Equal(29500, Parse([.. torchrun, ("TORCHELASTIC_USE_AGENT_STORE", "True"), ("MOE_RENDEZVOUS_PORT", "31000")]).MasterPort);
        Assert.Contains("MOE_RENDEZVOUS_PORT='x'", Error([.. torchrun, ("MOE_RENDEZVOUS_PORT", "x")]));
        Assert.Equal(TimeSpan.FromSeconds(2.5), Parse([.. torchrun, ("MOE_RENDEZVOUS_TIMEOUT", "2.5")]).RendezvousTimeout);
        Assert.Contains("MOE_RENDEZVOUS_TIMEOUT='-1'", Error([.. torchrun, ("MOE_RENDEZVOUS_TIMEOUT", "-1")]));
    }

    [Fact]
    public void ReadsOpenMpiVariablesWithTheSingleHostDefault()
    {
        var e = Parse(("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"));
        Assert.Equal(LaunchSource.OpenMpi, e.Source);
        Assert.Equal((1, 2, 1), (e.Rank, e.WorldSize, e.LocalRank));
        Assert.Equal((LaunchEnvironment.DefaultMasterAddress, LaunchEnvironment.DefaultMasterPort), (e.MasterAddress, e.RendezvousPort));

        var given = Parse(("OMPI_COMM_WORLD_RANK", "5"), ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "4"),
            ("MASTER_ADDR", "10.1.2.3"), ("MASTER_PORT", "4000"));
        Assert.Equal((5, 8, 1, "10.1.2.3", 4000), (given.Rank, given.WorldSize, given.LocalRank, given.MasterAddress, given.RendezvousPort));
    }

    [Fact]
    public void OpenMpiAcrossHostsNeedsTheMasterAddress()
    {
        string message = Error(("OMPI_COMM_WORLD_RANK", "5"), ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_LOCAL_RANK", "1"), ("OMPI_COMM_WORLD_LOCAL_SIZE", "4"));
        Assert.Contains("MASTER_ADDR and MASTER_PORT", message);
        Assert.Contains("several hosts", message);
        Assert.Contains("MASTER_PORT", Error(("OMPI_COMM_WORLD_RANK", "0"), ("OMPI_COMM_WORLD_SIZE", "8"), ("OMPI_COMM_WORLD_LOCAL_RANK", "0"), ("MASTER_ADDR", "h")));
    }

    public static TheoryData<string[], string> PartialOrInvalid => new()
    {
        { ["RANK=1", "WORLD_SIZE=2"], "LOCAL_RANK missing" },
        { ["WORLD_SIZE=2"], "RANK, LOCAL_RANK missing" },
        { ["RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0"], "needs MASTER_ADDR and MASTER_PORT" },
        { ["RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h"], "needs MASTER_PORT" },
        { ["RANK=two", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=1"], "RANK='two' is not an integer" },
        { ["RANK=2", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=1"], "RANK=2: must be in [0, 2)" },
        { ["RANK=-1", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=1"], "RANK=-1" },
        { ["RANK=0", "WORLD_SIZE=0", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=1"], "WORLD_SIZE=0: must be at least 1" },
        { ["RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=-1", "MASTER_ADDR=h", "MASTER_PORT=1"], "LOCAL_RANK=-1" },
        { ["RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=70000"], "MASTER_PORT='70000' is not a TCP port" },
        { ["RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=http"], "MASTER_PORT='http'" },
        { ["OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2"], "OMPI_COMM_WORLD_LOCAL_RANK missing" },
        { ["OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=x"], "OMPI_COMM_WORLD_LOCAL_RANK='x'" },
        { ["OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=0", "OMPI_COMM_WORLD_LOCAL_SIZE=2"], "OMPI_COMM_WORLD_RANK=3: must be in [0, 2)" },
        {
            ["RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=h", "MASTER_PORT=1", "OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2", "OMPI_COMM_WORLD_LOCAL_RANK=1"],
            "disagree with OMPI_COMM_WORLD_RANK=1"
        },
    };

    [Theory]
    [MemberData(nameof(PartialOrInvalid))]
    public void PartialOrInvalidSettingsNameTheVariables(string[] variables, string message)
    {
        var pairs = variables.Select(v => (v.Split('=')[0], v.Split('=')[1])).ToArray();
        Assert.Contains(message, Error(pairs));
    }

    [Fact]
    public void OneTorchrunRankNeedsNoMasterAddress()
    {
        var e = Parse(("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"));
        Assert.False(e.IsDistributed);
        Assert.Equal(LaunchSource.Torchrun, e.Source);
    }

    [Fact]
    public void LocalRankVariablesRoundTrip()
    {
        var variables = LaunchEnvironment.ForLocalRank(1, 4, "127.0.0.1", 4321).ToDictionary(p => p.Key, p => (string?)p.Value);
        var e = LaunchEnvironment.Parse(variables);
        Assert.Equal((1, 4, 1, 4321), (e.Rank, e.WorldSize, e.LocalRank, e.RendezvousPort));
        Assert.Equal("4", variables["LOCAL_WORLD_SIZE"]);
    }

    [Fact]
    public void ResolvesTheRendezvousAddress()
    {
        var e = Parse(("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0"), ("MASTER_ADDR", "localhost"), ("MASTER_PORT", "29500"));
        var endpoint = e.ResolveRendezvous();
        Assert.True(System.Net.IPAddress.IsLoopback(endpoint.Address));
        Assert.Equal(29500, endpoint.Port);
        var bad = e with { MasterAddress = "no-such-host.invalid" };
        Assert.Contains("no-such-host.invalid", Assert.Throws<LaunchEnvironmentException>(() => bad.ResolveRendezvous()).Message);
    }
}
