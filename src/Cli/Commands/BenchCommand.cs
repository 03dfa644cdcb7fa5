using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Cli.Distributed;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe bench allreduce --devices cuda:0,cuda:1 --algo ring|twoshot|oneshot|nccl|auto|all --dtype bf16 --min 1K --max 256M
/// [--timing graph|eager] [--csv f] [--json f] [--svg f]</c>: an nccl-tests-like table per algorithm and a latency chart.
/// Under a launcher (WORLD_SIZE > 1) each process is one rank on cuda:LOCAL_RANK and rank 0 prints NCCL's table
/// (<see cref="RankAllReduceBench"/>).
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "benchmarks of MoeRuntime's kernels and collectives");
        bench.Subcommands.Add(CreateAllReduce());
        bench.Subcommands.Add(LayerBenchCommand.Create());
        bench.Subcommands.Add(EplbBenchCommand.Create());
        bench.Subcommands.Add(AllToAllBenchCommand.Create());
        bench.Subcommands.Add(LinkBenchCommand.Create());
        return bench;
    }

    private static Command CreateAllReduce()
    {
        var devices = new Option<string>("--devices") { Description = "ranks, e.g. cuda:0,cuda:1 or cpu:0,cpu:1,cpu:2", DefaultValueFactory = _ => "cpu:0,cpu:1" };
        var algo = new Option<string>("--algo") { Description = "ring, twoshot, oneshot, nccl, auto or all", DefaultValueFactory = _ => "all" };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var min = new Option<string>("--min") { Description = "smallest message (bytes; K, M, G suffixes)", DefaultValueFactory = _ => "1K" };
        var max = new Option<string>("--max") { Description = "largest message", DefaultValueFactory = _ => "256M" };
        var factor = new Option<int>("--factor") { Description = "size multiplier between rows", DefaultValueFactory = _ => 2 };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 5 };
        var samples = new Option<int>("--samples") { Description = "timed samples per row (the median is reported)", DefaultValueFactory = _ => 20 };
        var inner = new Option<int>("--inner") { Description = "AllReduces per sample (per graph)", DefaultValueFactory = _ => 20 };
        var timing = new Option<string>("--timing") { Description = "CUDA: graph (replay --inner captured calls) or eager launches", DefaultValueFactory = _ => "graph" };
        var csv = new Option<string?>("--csv") { Description = "write the rows as CSV" };
        var json = new Option<string?>("--json") { Description = "write the rows as JSON" };
        var svg = new Option<string?>("--svg") { Description = "write a latency-vs-size chart (SVG)" };
        var command = new Command("allreduce", "AllReduce latency and bandwidth of our algorithms and NCCL, nccl-tests style")
        {
            devices, algo, dtype, min, max, factor, warmup, samples, inner, timing, csv, json, svg,
        };
        command.SetAction(parse =>
        {
            using var loggers = CliOptions.CreateLoggerFactory(parse);
            var logger = loggers.CreateLogger("bench");
            var type = DTypes.Parse(parse.GetValue(dtype)!);
            if (type is not (DType.F32 or DType.BF16 or DType.F16))
                throw new ArgumentException($"--dtype {DTypes.Name(type)}: f32, bf16 or f16");
            long minBytes = ParseSize(parse.GetValue(min)!, "--min"), maxBytes = ParseSize(parse.GetValue(max)!, "--max");
            int step = parse.GetValue(factor);
            if (minBytes < 1 || maxBytes < minBytes || step < 2)
                throw new ArgumentException($"--min {minBytes} .. --max {maxBytes} by --factor {step}: need 1 <= min <= max and factor >= 2");
            var sizes = new List<long>();
            for (long s = minBytes; s <= maxBytes; s *= step)
                sizes.Add(s);
            var algorithms = ParseAlgorithms(parse.GetValue(algo)!);
            var timingMode = ParseTiming(parse.GetValue(timing)!);
            var launch = LaunchEnvironment.FromProcess();
            if (launch.IsDistributed)
            {
                // One rank of several processes (moe launch, torchrun, mpirun): NCCL only, on cuda:LOCAL_RANK.
                if (!algorithms.Contains(AllReduceAlgorithm.Nccl) && !algorithms.Contains(AllReduceAlgorithm.Auto))
                    throw new ArgumentException($"--algo {parse.GetValue(algo)}: across processes only NCCL runs (--algo nccl)");
                return RankAllReduceBench.Execute(launch, type, sizes, parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(inner),
                    parse.GetValue(csv), parse.GetValue(json), parse.GetValue(svg), Console.Out, Console.Error, m => logger.LogWarning("{Message}", m));
            }

            using var context = new AcceleratorContext(logger);
            var ranks = parse.GetValue(devices)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(context.Get).ToList();
            if (ranks[0].Kind != AcceleratorKind.Cuda)
                algorithms.Remove(AllReduceAlgorithm.Nccl);
            else if (!NcclLibrary.IsAvailable && algorithms.Remove(AllReduceAlgorithm.Nccl))
                logger.LogWarning("skipping NCCL: {Reason}", NcclLibrary.UnavailableReason);
            long capacity = (maxBytes + 15) / 16 * 16;
            using var communicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = capacity }, logger);
            var harness = new AllReduceBench(ranks, type, parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(inner), m => logger.LogWarning("{Message}", m), timingMode);

            Console.Out.WriteLine($"# AllReduce on {string.Join(", ", ranks.Select(r => $"{r.Name} ({r.Info.Name})"))}, {DTypes.Name(type)}; busbw = algbw * 2(N-1)/N");
            var rows = new List<AllReduceRow>();
            foreach (var algorithm in algorithms)
            {
                Console.Out.WriteLine();
                Console.Out.WriteLine($"# {algorithm}");
                Console.Out.WriteLine($"{"size",10} {"count",12} {"type",5} {"time(us)",10} {"algbw(GB/s)",12} {"busbw(GB/s)",12} {"#wrong",8} {"picked",12} {"timing",10}");
                foreach (var row in harness.Run(algorithm, sizes, communicator))
                {
                    rows.Add(row);
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{row.Bytes,10} {row.Count,12} {row.DType,5} {row.TimeUs,10:F2} {row.AlgorithmGBs,12:F2} {row.BusGBs,12:F2} {row.WrongElements,8} {row.Picked,12} {row.Timing,10}"));
                    if (row.Picked.EndsWith("(ll)", StringComparison.Ordinal))
                        foreach (var line in communicator.DescribeLowLatencyTrace())
                            Console.Out.WriteLine($"#   ll trace, last call: {line}");
                }
            }
            if (parse.GetValue(csv) is { } csvPath)
                File.WriteAllText(csvPath, ToCsv(rows));
            if (parse.GetValue(json) is { } jsonPath)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { device = ranks[0].Info.Name, ranks = ranks.Count, rows }, new JsonSerializerOptions { WriteIndented = true }));
            if (parse.GetValue(svg) is { } svgPath)
            {
                var series = rows.GroupBy(r => r.Algorithm).ToDictionary(g => g.Key, g => (IReadOnlyList<(long, double)>)g.Select(r => (r.Bytes, r.TimeUs)).ToList());
                File.WriteAllText(svgPath, LatencyChart.Render($"AllReduce {DTypes.Name(type)}, {ranks.Count} x {ranks[0].Info.Name}", series));
            }
            return rows.Any(r => r.WrongElements > 0) ? 1 : 0;
        });
        return command;
    }

    internal static string ToCsv(IEnumerable<AllReduceRow> rows)
    {
        var text = new StringBuilder("algorithm,ranks,dtype,bytes,count,time_us,algbw_gbs,busbw_gbs,wrong,picked,timing\n");
        foreach (var r in rows)
            text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{r.Algorithm},{r.Ranks},{r.DType},{r.Bytes},{r.Count},{r.TimeUs:F3},{r.AlgorithmGBs:F3},{r.BusGBs:F3},{r.WrongElements},{r.Picked},{r.Timing}"));
        return text.ToString();
    }

    internal static List<AllReduceAlgorithm> ParseAlgorithms(string text) => text.Trim().ToLowerInvariant() switch
    {
        "all" => [AllReduceAlgorithm.Ring, AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.OneShot, AllReduceAlgorithm.Nccl, AllReduceAlgorithm.Auto],
        _ => text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(a => ParseAlgorithm(a, "--algo")).ToList(),
    };

    /// <summary>Exactly one algorithm (not a list, not "all"), as <c>--allreduce</c> takes it; <paramref name="option"/> names the option in errors.</summary>
    internal static AllReduceAlgorithm ParseOneAlgorithm(string text, string option) =>
        text.Contains(',') || text.Trim().Equals("all", StringComparison.OrdinalIgnoreCase)
            ? throw new ArgumentException($"{option} {text}: name one of ring, twoshot, oneshot, nccl, auto")
            : ParseAlgorithm(text, option);

    /// <summary>One algorithm by name; <paramref name="option"/> names the option in the error.</summary>
    internal static AllReduceAlgorithm ParseAlgorithm(string name, string option) => name.Trim().ToLowerInvariant() switch
    {
        "ring" => AllReduceAlgorithm.Ring,
        "twoshot" => AllReduceAlgorithm.TwoShot,
        "oneshot" => AllReduceAlgorithm.OneShot,
        "nccl" => AllReduceAlgorithm.Nccl,
        "auto" => AllReduceAlgorithm.Auto,
        _ => throw new ArgumentException($"{option} {name}: ring, twoshot, oneshot, nccl, auto{(option == "--algo" ? " or all" : "")}"),
    };

    internal static AllReduceTiming ParseTiming(string text) => text.Trim().ToLowerInvariant() switch
    {
        "graph" => AllReduceTiming.Graph,
        "eager" => AllReduceTiming.Eager,
        _ => throw new ArgumentException($"--timing {text}: graph or eager"),
    };

    /// <summary>Bytes from "4096", "1K", "256M", "1G" (powers of 1024).</summary>
    internal static long ParseSize(string text, string option)
    {
        text = text.Trim().ToUpperInvariant().TrimEnd('B');
        long multiplier = 1;
        if (text.Length > 0 && "KMG".Contains(text[^1]))
        {
            multiplier = text[^1] switch { 'K' => 1L << 10, 'M' => 1L << 20, _ => 1L << 30 };
            text = text[..^1];
        }
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            throw new ArgumentException($"{option}: '{text}' is not a size (e.g. 4096, 1K, 256M, 1G)");
        return checked(value * multiplier);
    }
}
