using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;
using MoeRuntime.Tests.Runtime;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe run</c> in-process: round trips against the F64 oracle, and every user error as exit code 2 with one line.</summary>
public sealed class RunCommandTests
{
    private static (int Code, string Output, string Errors) Run(RunArguments arguments)
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = RunCommand.Run(arguments, output, errors);
        return (code, output.ToString(), errors.ToString());
    }

    public static TheoryData<string, string?, string?> Modes => new()
    {
        { "cpu", null, null },
        { "cuda:0", null, null },
        { "cpu", "cpu:0,cpu:1", "tp" },
        { "cpu", "cpu:0,cpu:1,cpu:2,cpu:3", "ep" },
        { "cpu", "cuda:0,cuda:1", "tp" },
        { "cpu", "cuda:0,cuda:1", "ep" },
    };

    /// <summary>hidden_states in a BF16 file -> moe run (F32 compute) -> output file equals the oracle on the same values.</summary>
    [Theory]
    [MemberData(nameof(Modes))]
    public void RunRoundTripMatchesReference(string device, string? devices, string? parallel)
    {
        TestDevices.Get(device);
        if (devices is not null)
            TestDevices.GetGroup(devices.Split(',')[0].Split(':')[0], devices.Split(',').Length);
        var random = TestData.NewRandom(out int seed);
        using var folder = new TempFolder();
        var (config, layer) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 16, seed);
        int tokens = 7, h = config.HiddenSize;
        var hidden = TestData.Uniform(random, tokens * h);
        var writer = new SafetensorsWriter();
        writer.Add(HiddenStatesFile.TensorName, SafetensorsDType.BF16, [tokens, h], TestData.ToBf16(hidden).SelectMany(b => BitConverter.GetBytes(b.Bits)).ToArray());
        writer.Write(folder.File("in.safetensors"));

        var (code, output, errors) = Run(new RunArguments
        {
            Model = folder.Path, Layer = layer, Input = folder.File("in.safetensors"), Output = folder.File("out.safetensors"),
            Device = device, Devices = devices, Parallel = parallel, Repeats = 2, ShowProgress = false,
        });
        Assert.True(code == 0, $"exit code {code}: {errors}");
        Assert.Contains("time:", output);
        if (parallel == "ep")   // tokens per device, last device named
            Assert.Contains(devices!.Split(',')[^1] + ":", output);

        var (values, outTokens, outHidden) = HiddenStatesFile.Read(folder.File("out.safetensors"));
        Assert.Equal((tokens, h), (outTokens, outHidden));
        var rounded = MoeLayerFixtures.RoundTo(hidden, DType.BF16);
        var expected = new MoeBlockReference(MoeLayerWeights.Load(folder.Path, layer, DType.F32)).Forward(rounded);
        Compare.Close(expected, Compare.ToDouble(values), Compare.F32Tolerance, $"moe run {parallel ?? device}, seed {seed}");
    }

    [Fact]
    public void RandomTokensAreReproducibleFromTheSeed()
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "mixtral", 8, 3);
        RunArguments Arguments(string file) => new() { Model = folder.Path, Layer = layer, Tokens = 5, Seed = 11, Output = folder.File(file), Repeats = 1, ShowProgress = false };
        Assert.Equal(0, Run(Arguments("a.safetensors")).Code);
        Assert.Equal(0, Run(Arguments("b.safetensors")).Code);
        var a = HiddenStatesFile.Read(folder.File("a.safetensors"));
        var b = HiddenStatesFile.Read(folder.File("b.safetensors"));
        Assert.Equal(5, a.Tokens);
        Assert.Equal(a.Values, b.Values);
        Assert.DoesNotContain(a.Values, float.IsNaN);
    }

    /// <summary>The option names of the interface, parsed by System.CommandLine as a user types them.</summary>
    [Fact]
    public void CommandLineOptionsParseAsDocumented()
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "qwen2_moe", 8, 4);
        string[] args =
        [
            "--model", folder.Path, "--layer", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), "--tokens", "0", "--seed", "3",
            "--output", folder.File("out.safetensors"), "--devices", "cpu:0,cpu:1", "--parallel", "tp", "--dtype", "bf16",
            "--allreduce", "ring", "--repeats", "1",
        ];
        int code = RunCommand.Create().Parse(args).Invoke();
        Assert.Equal(0, code);
        var (values, tokens, hidden) = HiddenStatesFile.Read(folder.File("out.safetensors"));
        Assert.Equal((0, 64), (tokens, hidden));
        Assert.Empty(values);
    }

    public static TheoryData<string, string> ErrorCases => new()
    {
        { "missing-model", "no such folder" },
        { "missing-input", "no such file" },
        { "unknown-family", "model_type" },
        { "dense-layer", "not an MoE layer" },
        { "layer-out-of-range", "out of range" },
        { "bad-device", "unknown accelerator 'gpu7'" },
        { "absent-cuda", "cuda:9" },
        { "both-inputs", "either --input" },
        { "parallel-without-devices", "needs --devices" },
        { "bad-dtype", "--dtype f64" },
        { "hidden-mismatch", "hidden size 32" },
    };

    [Theory]
    [MemberData(nameof(ErrorCases))]
    public void UserErrorsExitWithCode2AndOneLine(string scenario, string message)
    {
        using var folder = new TempFolder();
        var (_, layer) = MoeLayerFixtures.Write(folder.Path, "deepseek_v3", 8, 9);
        var arguments = new RunArguments { Model = folder.Path, Layer = layer, Tokens = 2, Output = folder.File("out.safetensors"), Repeats = 1, ShowProgress = false };
        switch (scenario)
        {
            case "missing-model": arguments = arguments with { Model = folder.File("nothing-here") }; break;
            case "missing-input": arguments = arguments with { Tokens = null, Input = folder.File("absent.safetensors") }; break;
            case "unknown-family":
                File.WriteAllText(folder.File("config.json"), """{"model_type":"llama","hidden_size":64,"num_hidden_layers":2}""");
                break;
            case "dense-layer": arguments = arguments with { Layer = 0 }; break;
            case "layer-out-of-range": arguments = arguments with { Layer = 5 }; break;
            case "bad-device": arguments = arguments with { Device = "gpu7" }; break;
            case "absent-cuda": arguments = arguments with { Device = "cuda:9" }; break;
            case "both-inputs": arguments = arguments with { Input = folder.File("x.safetensors") }; break;
            case "parallel-without-devices": arguments = arguments with { Parallel = "tp" }; break;
            case "bad-dtype": arguments = arguments with { DType = "f64" }; break;
            case "hidden-mismatch":
                HiddenStatesFile.Write(folder.File("narrow.safetensors"), new float[3 * 32], 3, 32);
                arguments = arguments with { Tokens = null, Input = folder.File("narrow.safetensors") };
                break;
        }
        var (code, _, errors) = Run(arguments);
        Assert.Equal(2, code);
        Assert.StartsWith("moe run: ", errors);
        Assert.Contains(message, errors);
        Assert.Single(errors.TrimEnd().Split('\n'));
        Assert.False(File.Exists(folder.File("out.safetensors")));
    }
}
