using System.CommandLine;
using System.Globalization;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Distributed;
using MoeRuntime.Cli.Layers;
using MoeRuntime.Cli.Progress;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Commands;

/// <summary>What <c>moe run</c> was asked to do.</summary>
internal sealed record RunArguments
{
    public required string Model { get; init; }
    public required int Layer { get; init; }
    public string? Input { get; init; }
    public int? Tokens { get; init; }
    public int Seed { get; init; }
    public required string Output { get; init; }
    public string Device { get; init; } = "cpu";
    public string? Devices { get; init; }
    public string? Parallel { get; init; }
    public string DType { get; init; } = "f32";
    public string AllReduce { get; init; } = "auto";
    public int Repeats { get; init; } = 5;
    public string? Eplb { get; init; }
    public int? Redundant { get; init; }
    public int? RebalanceEvery { get; init; }

    /// <summary>Load progress on stderr (the tests turn it off).</summary>
    public bool ShowProgress { get; init; } = true;

    /// <summary>This process's place in a multi-process run; null: read it from the environment (RANK, WORLD_SIZE, ...).</summary>
    public LaunchEnvironment? Launch { get; init; }
}

/// <summary>
/// <c>moe run --model DIR --layer N (--input IN.safetensors | --tokens T --seed S) --output OUT.safetensors
/// [--device cpu|cuda:0] [--devices a,b,... --parallel tp|ep] [--dtype f32|bf16|f16] [--allreduce ring|twoshot|oneshot|nccl|auto]
/// [--eplb static:loads.json|online [--redundant R] [--rebalance-every K]]</c>:
/// one MoE layer of a Hugging Face checkpoint on hidden_states [T, H]; writes hidden_states [T, H] F32.
/// With --eplb the expert-parallel ranks hold (E + R) / G slots of a balanced placement (outputs unchanged).
/// Bad arguments, files or devices: one line on stderr and exit code 2.
/// Under a launcher (WORLD_SIZE > 1: <c>moe launch</c>, torchrun, mpirun) the process is one rank of
/// <c>--parallel tp|ep</c> on cuda:LOCAL_RANK through NCCL (<see cref="RankRun"/>); rank 0 writes --output.
/// </summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "checkpoint folder (config.json + safetensors)", Required = true };
        var layer = new Option<int>("--layer") { Description = "decoder layer index (an MoE layer)", Required = true };
        var input = new Option<string?>("--input") { Description = "safetensors file holding hidden_states [T, H] (F32, BF16 or F16)" };
        var tokens = new Option<int?>("--tokens") { Description = "random hidden states of T tokens instead of --input" };
        var seed = new Option<int>("--seed") { Description = "seed of the random hidden states", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--output") { Description = "safetensors file to write hidden_states [T, H] F32 to", Required = true };
        var device = new Option<string>("--device") { Description = "cpu or cuda:N", DefaultValueFactory = _ => "cpu" };
        var devices = new Option<string?>("--devices") { Description = "accelerators for --parallel, e.g. cuda:0,cuda:1" };
        var parallel = new Option<string?>("--parallel") { Description = "tp (tensor parallel) or ep (expert parallel) over --devices" };
        var dtype = new Option<string>("--dtype") { Description = "compute dtype: f32, bf16 or f16", DefaultValueFactory = _ => "f32" };
        var allReduce = new Option<string>("--allreduce") { Description = "tp's AllReduce: ring, twoshot, oneshot, nccl or auto", DefaultValueFactory = _ => "auto" };
        var repeats = new Option<int>("--repeats") { Description = "timed forwards after the warm-up (the median is printed)", DefaultValueFactory = _ => 5 };
        var eplb = new Option<string?>("--eplb") { Description = "with --parallel ep: static:LOADS.json (placement planned from a saved load profile) or online" };
        var redundant = new Option<int?>("--redundant") { Description = "R redundant expert slots for replicas of hot experts (E + R divisible by the devices)" };
        var rebalanceEvery = new Option<int?>("--rebalance-every") { Description = "online EPLB: re-plan every K forwards (default 8)" };
        var command = new Command("run", "run one MoE layer of a checkpoint on hidden states")
        {
            model, layer, input, tokens, seed, output, device, devices, parallel, dtype, allReduce, repeats, eplb, redundant, rebalanceEvery,
        };
        command.SetAction(parse => Run(new RunArguments
        {
            Model = parse.GetValue(model)!,
            Layer = parse.GetValue(layer),
            Input = parse.GetValue(input),
            Tokens = parse.GetValue(tokens),
            Seed = parse.GetValue(seed),
            Output = parse.GetValue(output)!,
            Device = parse.GetValue(device)!,
            Devices = parse.GetValue(devices),
            Parallel = parse.GetValue(parallel),
            DType = parse.GetValue(dtype)!,
            AllReduce = parse.GetValue(allReduce)!,
            Repeats = parse.GetValue(repeats),
            Eplb = parse.GetValue(eplb),
            Redundant = parse.GetValue(redundant),
            RebalanceEvery = parse.GetValue(rebalanceEvery),
        }, Console.Out, Console.Error));
        return command;
    }

    /// <summary>The command's work with its streams given (tests call it in-process). Returns the exit code.</summary>
    internal static int Run(RunArguments arguments, TextWriter output, TextWriter errors)
    {
        try
        {
            return Execute(arguments, output, errors);
        }
        catch (Exception e) when (IsUserError(e))
        {
            errors.WriteLine($"moe run: {Describe(e)}");
            return 2;
        }
    }

    private static int Execute(RunArguments a, TextWriter output, TextWriter errors)
    {
        // Everything about the arguments is checked before anything is loaded.
        var launch = a.Launch ?? LaunchEnvironment.FromProcess();
        var (mode, algorithm) = ParseMode(a, launch);
        var eplb = EplbArguments.Parse(a.Eplb, a.Redundant, a.RebalanceEvery, a.Parallel);
        var dtype = ParseComputeDType(a.DType);
        if (a.Input is null == a.Tokens is null)
            throw new ArgumentException("give either --input IN.safetensors or --tokens T (with --seed S)");
        if (a.Tokens is < 0)
            throw new ArgumentException($"--tokens is {a.Tokens}; it must be >= 0");
        if (a.Repeats < 1)
            throw new ArgumentException($"--repeats is {a.Repeats}; it must be >= 1");
        if (a.Input is not null && !File.Exists(a.Input))
            throw new FileNotFoundException($"--input {a.Input}: no such file");
        if (!Directory.Exists(a.Model))
            throw new DirectoryNotFoundException($"--model {a.Model}: no such folder");
        string? outputFolder = Path.GetDirectoryName(Path.GetFullPath(a.Output));
        if (outputFolder is not null && !Directory.Exists(outputFolder))
            throw new DirectoryNotFoundException($"--output {a.Output}: folder {outputFolder} does not exist");

        var config = ModelConfig.Load(a.Model);
        config.EnsureMoeLayer(a.Layer);
        int h = config.HiddenSize;
        float[] hidden;
        int tokens;
        if (a.Input is not null)
        {
            (hidden, tokens, int fileHidden) = HiddenStatesFile.Read(a.Input);
            if (fileHidden != h)
                throw new ArgumentException($"--input {a.Input}: hidden_states has hidden size {fileHidden}; the model's is {h}");
        }
        else
        {
            tokens = a.Tokens!.Value;
            var random = new Random(a.Seed);
            hidden = new float[(long)tokens * h];
            for (long i = 0; i < hidden.Length; i++)
                hidden[i] = 2 * random.NextSingle() - 1;
        }

        if (launch.IsDistributed && eplb is not null)
            throw new ArgumentException("--eplb runs in one process over --devices; under a launcher (WORLD_SIZE > 1) leave it out");
        if (launch.IsDistributed)
            return RankRun.Execute(a, launch, mode, dtype, config, hidden, tokens, output, errors);

        using var context = new AcceleratorContext();
        IReadOnlyList<Accelerator> ranks = mode == LayerMode.Single ? [context.Get(a.Device)] : context.GetList(a.Devices!);
        var weights = a.ShowProgress
            ? LoadProgressDisplay.Run($"layer {a.Layer}", progress => MoeLayerWeights.Load(a.Model, a.Layer, dtype, progress))
            : MoeLayerWeights.Load(a.Model, a.Layer, dtype);
        if (eplb is not null)
        {
            eplb.SlotsPerDevice(config.NumExperts, ranks.Count);   // (E + R) / G must divide before anything is uploaded
            if (eplb.Loads is { } loads && loads.Length != config.NumExperts)
                throw new ArgumentException($"--eplb {a.Eplb}: the profile has {loads.Length} per-expert counts; the layer has {config.NumExperts} experts");
        }
        using var runner = LayerRunner.Create(mode, ranks, weights, algorithm, tokens, eplb);
        var result = runner.Forward(hidden, tokens);
        double ms = runner.MedianMs(hidden, tokens, a.Repeats);
        HiddenStatesFile.Write(a.Output, result, tokens, h);

        string where = string.Join(",", ranks.Select(r => r.Name));
        string modeText = mode switch { LayerMode.TensorParallel => "tp", LayerMode.ExpertParallel => "ep", _ => "single" };
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{ModelFamilies.ModelType(config.Family)} layer {a.Layer}: T={tokens} H={h} E={config.NumExperts} k={config.TopK}, {DTypes.Name(dtype)}, {modeText} on {where}"));
        double tokensPerSecond = ms > 0 ? tokens / (ms / 1e3) : 0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"time: {ms:F3} ms ({runner.TimingScope}, median of {a.Repeats} after a warm-up), {tokensPerSecond:F0} tokens/s"));
        if (runner.LastAllReduce is { } picked && ranks.Count > 1 && tokens > 0)
            output.WriteLine($"allreduce: {picked}");
        if (runner.ExpertParallelLoad is { } load)
            for (int r = 0; r < ranks.Count; r++)
                output.WriteLine($"  {ranks[r].Name}: {load.Tokens[r]} tokens, {load.Rows[r]} expert rows");
        if (runner.EplbState is { } slots)
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"eplb: {slots.Options.Mode.ToString().ToLowerInvariant()}, {slots.SlotsPerDevice} slots per device (R={slots.Options.Redundant}), {slots.Migrations} migrations, placement {slots.Current}"));
        output.WriteLine($"wrote {a.Output}");
        return 0;
    }

    private static (LayerMode Mode, AllReduceAlgorithm Algorithm) ParseMode(RunArguments a, LaunchEnvironment launch)
    {
        AllReduceAlgorithm[] algorithms = [BenchCommand.ParseOneAlgorithm(a.AllReduce, "--allreduce")];
        if (launch.IsDistributed)
            return ParseRankMode(a, launch, algorithms[0]);
        if (a.Parallel is null)
        {
            if (a.Devices is not null)
                throw new ArgumentException("--devices needs --parallel tp or --parallel ep");
            return (LayerMode.Single, algorithms[0]);
        }
        var mode = a.Parallel.Trim().ToLowerInvariant() switch
        {
            "tp" => LayerMode.TensorParallel,
            "ep" => LayerMode.ExpertParallel,
            _ => throw new ArgumentException($"--parallel {a.Parallel}: tp or ep"),
        };
        if (a.Devices is null)
            throw new ArgumentException($"--parallel {a.Parallel} needs --devices, e.g. cuda:0,cuda:1");
        return (mode, algorithms[0]);
    }

    /// <summary>One rank of a multi-process run: --parallel tp|ep, no --devices (the rank takes cuda:LOCAL_RANK), NCCL sums.</summary>
    private static (LayerMode Mode, AllReduceAlgorithm Algorithm) ParseRankMode(RunArguments a, LaunchEnvironment launch, AllReduceAlgorithm algorithm)
    {
        if (a.Devices is not null)
            throw new ArgumentException($"--devices {a.Devices}: {launch} takes {launch.DeviceName} (LOCAL_RANK); drop --devices");
        if (algorithm is not (AllReduceAlgorithm.Nccl or AllReduceAlgorithm.Auto))
            throw new ArgumentException($"--allreduce {a.AllReduce}: our ring, two-shot and one-shot algorithms work within one process; ranks of several processes sum through NCCL (--allreduce nccl or auto)");
        var mode = a.Parallel?.Trim().ToLowerInvariant() switch
        {
            "tp" => LayerMode.TensorParallel,
            "ep" => LayerMode.ExpertParallel,
            null => throw new ArgumentException($"{launch}: give --parallel tp or --parallel ep"),
            _ => throw new ArgumentException($"--parallel {a.Parallel}: tp or ep"),
        };
        return (mode, AllReduceAlgorithm.Nccl);
    }

    internal static DType ParseComputeDType(string text)
    {
        var dtype = text.Trim().ToLowerInvariant() switch
        {
            "f32" or "float32" => DType.F32,
            "bf16" or "bfloat16" => DType.BF16,
            "f16" or "float16" => DType.F16,
            _ => throw new ArgumentException($"--dtype {text}: f32, bf16 or f16"),
        };
        return dtype;
    }

    /// <summary>Errors that come from what the user gave (arguments, files, devices), printed as one line.</summary>
    internal static bool IsUserError(Exception e) => e is ArgumentException or IOException or UnauthorizedAccessException
        or ModelConfigException or CheckpointFormatException or NotSupportedException or AcceleratorOutOfMemoryException;

    internal static string Describe(Exception e) => e is ArgumentException a && a.ParamName is { } name
        ? $"{a.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)} [{name}]"
        : e.Message;
}
