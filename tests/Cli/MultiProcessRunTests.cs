using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Cli.Launch;
using MoeRuntime.Collectives.Nccl;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary>
/// One process per GPU through NCCL, for real: <c>moe launch --nproc 2 -- run ... --parallel tp|ep</c> writes the same
/// output, bit for bit, as one process over cuda:0,cuda:1; <c>moe launch --nproc 2 -- bench allreduce</c> prints NCCL's
/// table from rank 0 with no wrong elements. Skipped without two GPUs and libnccl.
/// </summary>
public class MultiProcessRunTests
{
    private static void RequireTwoGpus()
    {
        if (!CudaRuntimeInfo.IsAvailable)
            Assert.Skip($"needs 2 CUDA GPUs: {CudaRuntimeInfo.UnavailableReason}");
        if (CudaRuntimeInfo.DeviceCount < 2)
            Assert.Skip($"needs 2 CUDA GPUs; this machine has {CudaRuntimeInfo.DeviceCount}");
        if (!NcclLibrary.IsAvailable)
            Assert.Skip(NcclLibrary.UnavailableReason!);
    }

    private static async Task<(int Code, string Output, string Errors)> Launch(string[] arguments)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = await LocalLauncher.RunAsync(LaunchCommandTests.Moe(), arguments, 2, "127.0.0.1", null, output, errors, TestContext.Current.CancellationToken);
        return (code, output.ToString(), errors.ToString());
    }

    [Theory]
    [InlineData("tp", "deepseek_v3", "f32", 33)]
    [InlineData("ep", "deepseek_v3", "f32", 33)]
    [InlineData("tp", "qwen2_moe", "bf16", 7)]
    [InlineData("ep", "mixtral", "bf16", 1)]
    public async Task RanksMatchOneProcessOverTheSameGpus(string parallel, string family, string dtype, int tokens)
    {
        RequireTwoGpus();
        TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, family, 16, seed);
        string layerText = layer.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string tokensText = tokens.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var (code, output, errors) = await Launch(["run", "--model", folder.Path, "--layer", layerText, "--tokens", tokensText, "--seed", "5",
            "--output", folder.File("ranks.safetensors"), "--parallel", parallel, "--dtype", dtype, "--repeats", "2"]);
        Assert.True(code == 0, $"moe launch exited {code}\n{output}\n{errors}");
        Assert.Contains("[rank 0] wrote", output);
        Assert.Contains("over 2 processes", output);

        var single = new StringWriter();
        var singleErrors = new StringWriter();
        int singleCode = RunCommand.Run(new RunArguments
        {
            Model = folder.Path, Layer = layer, Tokens = tokens, Seed = 5, Output = folder.File("one.safetensors"),
            Devices = "cuda:0,cuda:1", Parallel = parallel, DType = dtype, AllReduce = "nccl", Repeats = 1, ShowProgress = false,
            Launch = MoeRuntime.Collectives.Distributed.LaunchEnvironment.Single,
        }, single, singleErrors);
        Assert.True(singleCode == 0, singleErrors.ToString());

        var ranks = HiddenStatesFile.Read(folder.File("ranks.safetensors"));
        var one = HiddenStatesFile.Read(folder.File("one.safetensors"));
        Assert.Equal((one.Tokens, one.Hidden), (ranks.Tokens, ranks.Hidden));
        Compare.Exact<float>(one.Values, ranks.Values, $"moe launch --nproc 2 -- run --parallel {parallel} vs one process ({family} {dtype}, T={tokens}, seed {seed})");
    }

    [Fact]
    public async Task AllReduceBenchAcrossProcesses()
    {
        RequireTwoGpus();
        var (code, output, errors) = await Launch(["bench", "allreduce", "--algo", "nccl", "--dtype", "bf16", "--min", "1K", "--max", "1M", "--factor", "4", "--samples", "5", "--inner", "5"]);
        Assert.True(code == 0, $"moe launch exited {code}\n{output}\n{errors}");
        Assert.Contains("[rank 0] # AllReduce over 2 processes", output);
        Assert.DoesNotContain("[rank 1] #", output);
        var rows = output.Split('\n').Where(l => l.StartsWith("[rank 0] ", StringComparison.Ordinal) && l.Contains(" bf16 ", StringComparison.Ordinal)).ToList();
        Assert.Equal(6, rows.Count); // 1K, 4K, ..., 1M
        Assert.All(rows, row => Assert.Equal("0", row.Split(' ', StringSplitOptions.RemoveEmptyEntries)[8])); // #wrong
    }
}
