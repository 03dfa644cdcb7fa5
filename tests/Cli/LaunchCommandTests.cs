using System.Diagnostics;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Cli.Launch;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe launch</c>: the command line, the children's environment and prefixed output, and failing fast.</summary>
public class LaunchCommandTests
{
    /// <summary>The moe built beside the tests: <c>dotnet moe.dll</c> under the dotnet host, else the moe apphost.</summary>
    internal static ChildCommand Moe()
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "moe.dll");
        Assert.True(File.Exists(dll), $"{dll} is missing (the test project references the CLI)");
        string host = Environment.ProcessPath!;
        if (string.Equals(Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.OrdinalIgnoreCase))
            return new ChildCommand(host, [dll]);
        string apphost = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "moe.exe" : "moe");
        return File.Exists(apphost) ? new ChildCommand(apphost, []) : new ChildCommand("dotnet", [dll]);
    }

    private static async Task<(int Code, string Output, string Errors)> Launch(ChildCommand command, string[] arguments, int processes, int? port = null)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = await LocalLauncher.RunAsync(command, arguments, processes, "127.0.0.1", port, output, errors, TestContext.Current.CancellationToken);
        return (code, output.ToString(), errors.ToString());
    }

    [Fact]
    public void ArgumentsAfterTheSeparatorGoToTheRanks()
    {
        var parse = LaunchCommand.Create().Parse(["--nproc", "2", "--master-port", "29600", "--", "run", "--model", "m", "--parallel", "tp", "-v"]);
        Assert.Empty(parse.Errors);
        Assert.Equal(2, parse.GetValue<int>("--nproc"));
        Assert.Equal(29600, parse.GetValue<int?>("--master-port"));
        Assert.Equal(["run", "--model", "m", "--parallel", "tp", "-v"], parse.GetValue<string[]>("moe-arguments")!);
        Assert.NotEmpty(LaunchCommand.Create().Parse(["--", "devices"]).Errors); // --nproc is required
    }

    [Fact]
    public void ThisMoeRunsTheEntryAssemblyThroughTheDotnetHost()
    {
        var command = ChildCommand.ThisMoe();
        Assert.Equal(Environment.ProcessPath, command.FileName);
        if (Path.GetFileNameWithoutExtension(command.FileName) == "dotnet")
            Assert.Single(command.PrefixArguments);
    }

    [Fact]
    public async Task ChildrenGetTheTorchrunEnvironmentAndPrefixedOutput()
    {
        if (!File.Exists("/bin/sh"))
            Assert.Skip("needs /bin/sh");
        var sh = new ChildCommand("/bin/sh", ["-c", "echo \"r=$RANK w=$WORLD_SIZE l=$LOCAL_RANK a=$MASTER_ADDR p=$MASTER_PORT nvls=$NCCL_NVLS_ENABLE\"; echo oops >&2"]);
        var (code, output, errors) = await Launch(sh, [], 3, port: 29777);
        Assert.Equal(0, code);
        for (int r = 0; r < 3; r++)
        {
            Assert.Contains($"[rank {r}] r={r} w=3 l={r} a=127.0.0.1 p=29777 nvls=0", output);
            Assert.Contains($"[rank {r}] oops", errors);
        }
    }

    [Fact]
    public async Task AFailingRankStopsTheOthersAndGivesItsCode()
    {
        if (!File.Exists("/bin/sh"))
            Assert.Skip("needs /bin/sh");
        // Rank 1 fails at once; ranks 0 and 2 would sleep for a minute.
        var sh = new ChildCommand("/bin/sh", ["-c", "if [ \"$RANK\" = 1 ]; then echo dying >&2; exit 3; fi; echo waiting; exec sleep 60"]);
        var clock = Stopwatch.StartNew();
        var (code, output, errors) = await Launch(sh, [], 3);
        Assert.Equal(3, code);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}: the sleeping ranks were not stopped");
        Assert.Contains("[rank 1] dying", errors);
        Assert.Contains("rank 1 exited with code 3; stopping rank(s) 0, 2", errors);
        Assert.Contains("failed: rank 1 exited with code 3", errors);
    }

    [Fact]
    public async Task UnstartableCommandIsAClearError()
    {
        var error = await Assert.ThrowsAsync<LaunchException>(() => Launch(new ChildCommand("/no/such/moe", []), ["devices"], 2));
        Assert.Contains("cannot start rank 0: /no/such/moe", error.Message);
    }

    /// <summary>The real moe as ranks: <c>moe launch --nproc 2 -- devices</c> prints each rank's table under its prefix.</summary>
    [Fact]
    public async Task LaunchesMoeRanks()
    {
        var (code, output, errors) = await Launch(Moe(), ["devices"], 2);
        Assert.True(code == 0, $"exit {code}: {errors}");
        Assert.Contains("[rank 0] ", output);
        Assert.Contains("[rank 1] ", output);
        Assert.Contains("cpu:0", output);
    }

    /// <summary>A user error on every rank (a missing model folder) fails the launch with moe run's code 2.</summary>
    [Fact]
    public async Task RankErrorsComeBackWithTheirCode()
    {
        var (code, _, errors) = await Launch(Moe(), ["run", "--model", "/no/such/model", "--layer", "1", "--tokens", "2", "--output", "/tmp/never.safetensors", "--parallel", "tp"], 2);
        Assert.Equal(2, code);
        Assert.Contains("moe run: --model /no/such/model: no such folder", errors);
        Assert.Contains("] moe run:", errors);
    }
}

/// <summary>Which GPU a rank takes.</summary>
public class RankDeviceTests
{
    [Fact]
    public void TakesLocalRankOrTheOneVisibleGpu()
    {
        var rank3 = MoeRuntime.Collectives.Distributed.LaunchEnvironment.Parse(
            MoeRuntime.Collectives.Distributed.LaunchEnvironment.ForLocalRank(3, 4, "127.0.0.1", 1234).ToDictionary(p => p.Key, p => (string?)p.Value));
        Assert.Equal(3, MoeRuntime.Cli.Distributed.RankDevice.Ordinal(rank3, 4, null));
        Assert.Equal(0, MoeRuntime.Cli.Distributed.RankDevice.Ordinal(rank3, 1, "3"));
        var error = Assert.Throws<NotSupportedException>(() => MoeRuntime.Cli.Distributed.RankDevice.Ordinal(rank3, 2, "0,1"));
        Assert.Contains("LOCAL_RANK 3 takes cuda:3; this process sees 2 CUDA device(s) (CUDA_VISIBLE_DEVICES=0,1)", error.Message);
    }
}
