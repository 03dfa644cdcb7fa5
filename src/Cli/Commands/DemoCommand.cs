using System.CommandLine;
using System.Globalization;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Layers;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe demo</c>: needs nothing downloaded. Writes a small random Mixtral-style and DeepSeek-V3-style checkpoint
/// (Hugging Face layout) to a temp folder, runs one MoE layer of each on every accelerator present, tensor and
/// expert parallel over cpu:0,cpu:1 and over all GPUs when there are two or more, checks every result against
/// the F64 CPU oracle (<see cref="MoeBlockReference"/>) and prints one table. Exit code 1 if any check fails.
/// </summary>
internal static class DemoCommand
{
    /// <summary>Relative error bound of an F32 layer against the F64 oracle: the same products, summed in another order.</summary>
    internal const double Tolerance = 1e-5;

    public static Command Create()
    {
        var tokens = new Option<int>("--tokens") { Description = "tokens per forward", DefaultValueFactory = _ => 64 };
        var repeats = new Option<int>("--repeats") { Description = "timed forwards per row (the median is shown)", DefaultValueFactory = _ => 5 };
        var command = new Command("demo", "run small random Mixtral and DeepSeek-V3 layers on every accelerator and check them") { tokens, repeats };
        command.SetAction(parse => Run(parse.GetValue(tokens), parse.GetValue(repeats), Console.Out, Console.Error));
        return command;
    }

    /// <summary>The demo with its streams given (tests call it in-process). Returns the exit code.</summary>
    internal static int Run(int tokens, int repeats, TextWriter output, TextWriter errors)
    {
        if (tokens < 1 || repeats < 1)
        {
            errors.WriteLine($"moe demo: --tokens {tokens} and --repeats {repeats} must be >= 1");
            return 2;
        }
        string folder = Path.Combine(Path.GetTempPath(), "moe-demo-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var context = new AcceleratorContext();
            var gpus = context.CudaAccelerators.Cast<Accelerator>().ToList();
            IReadOnlyList<Accelerator> cpus = [context.Get("cpu:0"), context.Get("cpu:1")];
            var rows = new List<string[]>();
            bool allPass = true;
            foreach (var (name, family, options) in Models())
            {
                string directory = Path.Combine(folder, name);
                var config = RandomCheckpoint.Write(directory, family, options, seed: 1234);
                int layer = Enumerable.Range(0, config.NumHiddenLayers).First(config.IsMoeLayer);
                var weights = MoeLayerWeights.Load(directory, layer, DType.F32);
                var random = new Random(42);
                var hidden = new float[tokens * config.HiddenSize];
                for (int i = 0; i < hidden.Length; i++)
                    hidden[i] = 2 * random.NextSingle() - 1;
                var expected = new MoeBlockReference(weights).Forward(hidden);

                var runs = new List<(LayerMode Mode, IReadOnlyList<Accelerator> Ranks)>();
                foreach (var accelerator in context.Accelerators.Where(a => a.Kind == AcceleratorKind.Cpu).Take(1).Concat(gpus))
                    runs.Add((LayerMode.Single, [accelerator]));
                foreach (var group in gpus.Count >= 2 ? [cpus, gpus] : new[] { cpus })
                {
                    runs.Add((LayerMode.TensorParallel, group));
                    if (config.NumExperts % group.Count == 0)
                        runs.Add((LayerMode.ExpertParallel, group));
                }
                foreach (var (mode, ranks) in runs)
                {
                    // stderr, so a first run's kernel compiles show which row they belong to; the table is stdout.
                    errors.WriteLine($"moe demo: {name}, {ModeName(mode)} on {RankNames(ranks)}");
                    using var runner = LayerRunner.Create(mode, ranks, weights, AllReduceAlgorithm.Auto, tokens);
                    var actual = runner.Forward(hidden, tokens);
                    double error = RelativeError(expected, actual);
                    bool pass = error <= Tolerance;
                    allPass &= pass;
                    double ms = runner.MedianMs(hidden, tokens, repeats);
                    rows.Add([
                        RankNames(ranks),
                        ModeName(mode),
                        name,
                        tokens.ToString(CultureInfo.InvariantCulture),
                        ms.ToString("F3", CultureInfo.InvariantCulture),
                        (ms > 0 ? tokens / (ms / 1e3) : 0).ToString("F0", CultureInfo.InvariantCulture),
                        error.ToString("E2", CultureInfo.InvariantCulture),
                        pass ? "pass" : "FAIL",
                    ]);
                }
            }
            output.WriteLine($"# moe demo: random checkpoints in {folder}, F32, checked against the F64 CPU oracle (bound {Tolerance.ToString("G", CultureInfo.InvariantCulture)})");
            WriteTable(output, ["accelerator", "mode", "family", "tokens", "time(ms)", "tokens/s", "rel.error", "check"], rows);
            output.WriteLine(allPass ? "all checks passed" : "SOME CHECKS FAILED");
            return allPass ? 0 : 1;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe demo: {RunCommand.Describe(e)}");
            return 2;
        }
        finally
        {
            try
            {
                if (Directory.Exists(folder))
                    Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
                // A file still mapped; the temp folder is cleaned eventually.
            }
        }
    }

    /// <summary>
    /// The two demo models: H 64, I 96 (divisible by 2, 3, 4 and 8 ranks), 16 experts. Mixtral: top-2 softmax.
    /// DeepSeek-V3: sigmoid + bias, top-4 of 2 of 4 groups, scaling 2.5, one shared expert.
    /// </summary>
    private static IEnumerable<(string Name, ModelFamily Family, RandomCheckpointOptions Options)> Models()
    {
        var common = new RandomCheckpointOptions { HiddenSize = 64, IntermediateSize = 96, NumExperts = 16, NumLayers = 2 };
        yield return ("mixtral", ModelFamily.Mixtral, common with { TopK = 2 });
        yield return ("deepseek_v3", ModelFamily.DeepseekV3, common with { TopK = 4, NumGroups = 4, TopKGroups = 2, NumSharedExperts = 1, RoutedScalingFactor = 2.5 });
    }

    private static string ModeName(LayerMode mode) => mode switch { LayerMode.TensorParallel => "tp", LayerMode.ExpertParallel => "ep", _ => "single" };

    private static string RankNames(IReadOnlyList<Accelerator> ranks) => string.Join(",", ranks.Select(r => r.Name));

    internal static double RelativeError(double[] expected, float[] actual)
    {
        double difference = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double d = actual[i] - expected[i];
            difference += d * d;
            norm += expected[i] * expected[i];
        }
        // NaN anywhere makes the error NaN, which fails the check.
        return norm == 0 ? Math.Sqrt(difference) : Math.Sqrt(difference / norm);
    }

    private static void WriteTable(TextWriter output, string[] header, List<string[]> rows)
    {
        var widths = header.Select((h, c) => Math.Max(h.Length, rows.Count == 0 ? 0 : rows.Max(r => r[c].Length))).ToArray();
        output.WriteLine(string.Join("  ", header.Select((h, c) => h.PadRight(widths[c]))));
        foreach (var row in rows)
            output.WriteLine(string.Join("  ", row.Select((v, c) => c is 0 or 1 or 2 or 7 ? v.PadRight(widths[c]) : v.PadLeft(widths[c]))));
    }
}
