using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.Nccl;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe bench alltoall --devices cuda:0,cuda:1 --algo ours|nccl|all --dtype bf16 --min 16K --max 256M [--factor 4] [--json F]</c>:
/// all-to-allv with dispatch-like traffic (every rank sends S/N to every rank); time and bytes per rank. The JSON feeds
/// <c>moe simulate --calibrate</c> (the link's latency and bandwidth).
/// </summary>
internal static class AllToAllBenchCommand
{
    public static Command Create()
    {
        var devices = new Option<string>("--devices") { Description = "ranks, e.g. cuda:0,cuda:1 or cpu:0,cpu:1", DefaultValueFactory = _ => "cpu:0,cpu:1" };
        var algo = new Option<string>("--algo") { Description = "ours, nccl or all", DefaultValueFactory = _ => "all" };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var min = new Option<string>("--min") { Description = "smallest bytes sent per rank (K, M, G suffixes)", DefaultValueFactory = _ => "16K" };
        var max = new Option<string>("--max") { Description = "largest bytes sent per rank", DefaultValueFactory = _ => "256M" };
        var factor = new Option<int>("--factor") { Description = "size multiplier between rows", DefaultValueFactory = _ => 4 };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 3 };
        var samples = new Option<int>("--samples") { Description = "timed samples per row (the median is reported)", DefaultValueFactory = _ => 15 };
        var inner = new Option<int>("--inner") { Description = "all-to-allvs per sample", DefaultValueFactory = _ => 10 };
        var json = new Option<string?>("--json") { Description = "write the rows as JSON (input of moe simulate --calibrate)" };
        var command = new Command("alltoall", "all-to-allv (MoE dispatch-like traffic): our kernels and NCCL grouped send/recv")
        {
            devices, algo, dtype, min, max, factor, warmup, samples, inner, json,
        };
        command.SetAction(parse => Run(parse.GetValue(devices)!, parse.GetValue(algo)!, parse.GetValue(dtype)!, parse.GetValue(min)!, parse.GetValue(max)!,
            parse.GetValue(factor), parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(inner), parse.GetValue(json), Console.Out, Console.Error));
        return command;
    }

    internal static int Run(string deviceList, string algoName, string dtypeName, string min, string max, int factor, int warmup, int samples, int inner,
                            string? jsonPath, TextWriter output, TextWriter errors)
    {
        try
        {
            var type = DTypes.Parse(dtypeName);
            if (type is not (DType.F32 or DType.BF16 or DType.F16))
                throw new ArgumentException($"--dtype {DTypes.Name(type)}: f32, bf16 or f16");
            long minBytes = BenchCommand.ParseSize(min, "--min"), maxBytes = BenchCommand.ParseSize(max, "--max");
            if (minBytes < 1 || maxBytes < minBytes || factor < 2)
                throw new ArgumentException($"--min {minBytes} .. --max {maxBytes} by --factor {factor}: need 1 <= min <= max and factor >= 2");
            if (warmup < 0 || samples < 1 || inner < 1)
                throw new ArgumentException($"--warmup {warmup} >= 0, --samples {samples} >= 1, --inner {inner} >= 1");
            var algorithms = algoName.Trim().ToLowerInvariant() switch
            {
                "all" => new List<string> { AllToAllBench.Ours, AllToAllBench.Nccl },
                "ours" => [AllToAllBench.Ours],
                "nccl" => [AllToAllBench.Nccl],
                _ => throw new ArgumentException($"--algo {algoName}: ours, nccl or all"),
            };
            var sizes = new List<long>();
            for (long s = minBytes; s <= maxBytes; s *= factor)
                sizes.Add(s);
            using var context = new AcceleratorContext();
            var ranks = deviceList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(context.Get).ToList();
            if (ranks.Count < 2)
                throw new ArgumentException($"--devices {deviceList}: an all-to-all needs at least 2 ranks");
            if (ranks[0].Kind != AcceleratorKind.Cuda && algorithms.Remove(AllToAllBench.Nccl) && algoName.Trim().ToLowerInvariant() == "nccl")
                throw new ArgumentException("--algo nccl runs on CUDA devices only");
            if (ranks[0].Kind == AcceleratorKind.Cuda && !NcclLibrary.IsAvailable && algorithms.Remove(AllToAllBench.Nccl))
                errors.WriteLine($"moe bench alltoall: skipping NCCL: {NcclLibrary.UnavailableReason}");
            // Our all-to-allv stages each rank's whole send buffer: room for the largest size.
            using var communicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = Math.Max(64L << 20, (maxBytes + 15) / 16 * 16) });
            using var nccl = algorithms.Contains(AllToAllBench.Nccl) ? NcclGroup.Create(ranks.Cast<CudaAccelerator>().ToList()) : null;
            var bench = new AllToAllBench(ranks, type, warmup, samples, inner);
            output.WriteLine($"# all-to-allv on {string.Join(", ", ranks.Select(r => $"{r.Name} ({r.Info.Name})"))}, {DTypes.Name(type)}; each rank sends bytes/N to every rank; peer GB/s = bytes to other ranks / time");
            var rows = new List<AllToAllRow>();
            foreach (var algorithm in algorithms)
            {
                output.WriteLine();
                output.WriteLine($"# {algorithm}");
                output.WriteLine($"{"bytes/rank",12} {"peer bytes",12} {"time(us)",10} {"peer GB/s",10} {"#wrong",8}");
                foreach (var row in bench.Run(algorithm, sizes, communicator, nccl))
                {
                    rows.Add(row);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{row.BytesPerRank,12} {row.PeerBytesPerRank,12} {row.TimeUs,10:F2} {row.PeerGBs,10:F2} {row.WrongElements,8}"));
                }
            }
            if (jsonPath is not null)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { kind = "alltoall", device = ranks[0].Info.Name, ranks = ranks.Count, date = DateTime.UtcNow.ToString("yyyy-MM-dd"), rows },
                    new JsonSerializerOptions { WriteIndented = true }));
            return rows.Any(r => r.WrongElements > 0) ? 1 : 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench alltoall: {RunCommand.Describe(e)}");
            return 2;
        }
    }
}
