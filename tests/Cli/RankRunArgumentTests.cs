using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe run</c> as one rank (WORLD_SIZE > 1): the arguments a rank refuses, each one line and exit code 2, before any rendezvous.</summary>
public class RankRunArgumentTests
{
    private static readonly LaunchEnvironment Rank1Of2 = LaunchEnvironment.Parse(
        LaunchEnvironment.ForLocalRank(1, 2, "127.0.0.1", 1).ToDictionary(p => p.Key, p => (string?)p.Value));

    public static TheoryData<string, string> Cases => new()
    {
        { "devices", "drop --devices" },
        { "ring", "ranks of several processes sum through NCCL" },
        { "no-parallel", "give --parallel tp or --parallel ep" },
        { "bad-parallel", "--parallel dp: tp or ep" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void RefusedArgumentsExitWithCode2(string scenario, string message)
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 8, 1);
        var arguments = new RunArguments
        {
            Model = folder.Path, Layer = layer, Tokens = 2, Output = folder.File("out.safetensors"), Parallel = "tp",
            Repeats = 1, ShowProgress = false, Launch = Rank1Of2,
        };
        arguments = scenario switch
        {
            "devices" => arguments with { Devices = "cuda:0,cuda:1" },
            "ring" => arguments with { AllReduce = "ring" },
            "no-parallel" => arguments with { Parallel = null },
            _ => arguments with { Parallel = "dp" },
        };
        var errors = new StringWriter();
        Assert.Equal(2, RunCommand.Run(arguments, new StringWriter(), errors));
        Assert.StartsWith("moe run: ", errors.ToString());
        Assert.Contains(message, errors.ToString());
        Assert.Single(errors.ToString().TrimEnd().Split('\n'));
    }

    [Fact]
    public void WithoutCudaARankSaysSo()
    {
        if (CudaRuntimeInfo.IsAvailable)
            Assert.Skip("CUDA is present; this test is for machines without it");
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 8, 1);
        var errors = new StringWriter();
        int code = RunCommand.Run(new RunArguments
        {
            Model = folder.Path, Layer = layer, Tokens = 2, Output = folder.File("out.safetensors"), Parallel = "ep",
            Repeats = 1, ShowProgress = false, Launch = Rank1Of2,
        }, new StringWriter(), errors);
        Assert.Equal(2, code);
        Assert.Contains("rank 1 of 2", errors.ToString());
        Assert.Contains("ranks run on CUDA GPUs through NCCL", errors.ToString());
        Assert.False(File.Exists(folder.File("out.safetensors")));
    }
}
