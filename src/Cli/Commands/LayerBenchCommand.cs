using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Collectives;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe bench layer --preset mixtral-8x7b|qwen3-30b-a3b|deepseek-v3 --tokens 1,16,128,1024,8192 [--device cuda:0]
/// [--dtype bf16] [--json F]</c>: one MoE layer at a real model's shapes with random weights, nothing downloaded.
/// </summary>
internal static class LayerBenchCommand
{
    public static Command Create()
    {
        var preset = new Option<string>("--preset") { Description = "mixtral-8x7b, qwen3-30b-a3b, deepseek-v3, or tiny (a CPU smoke test)", DefaultValueFactory = _ => "mixtral-8x7b" };
        var tokens = new Option<string>("--tokens") { Description = "token counts, comma-separated", DefaultValueFactory = _ => "1,16,128,1024,8192" };
        var device = new Option<string>("--device") { Description = "cpu or cuda:N", DefaultValueFactory = _ => "cuda:0" };
        var dtype = new Option<string>("--dtype") { Description = "f32, bf16 or f16", DefaultValueFactory = _ => "bf16" };
        var warmup = new Option<int>("--warmup") { DefaultValueFactory = _ => 3 };
        var samples = new Option<int>("--samples") { Description = "timed forwards per row (the median is reported)", DefaultValueFactory = _ => 20 };
        var json = new Option<string?>("--json") { Description = "write the rows as JSON" };
        var parallel = new Option<string>("--parallel")
        {
            Description = "none (one device), tp (tensor parallel over --devices: each rank a 1/N slice of every expert, then an AllReduce) or ep (expert parallel over --devices, per-phase timing)",
            DefaultValueFactory = _ => "none",
        };
        var devices = new Option<string?>("--devices") { Description = "with --parallel tp or ep: the ranks, e.g. cuda:0,cuda:1 or cpu:0,cpu:1" };
        var allreduce = new Option<string>("--allreduce") { Description = "with --parallel tp: ring, twoshot, oneshot, nccl or auto", DefaultValueFactory = _ => "auto" };
        var phases = new Option<bool>("--phases") { Description = "one device: device time of each phase of eager forwards (events between phases, median)" };
        var enqueue = new Option<string?>("--enqueue")
        {
            Description = "with --parallel ep: how the experts phase is enqueued, interleaved or ranked, or both (interleaved,ranked: one run on the same weights; "
                + "--json F.json is the first order's, F-<order>.json each other's); default MOE_EP_ENQUEUE",
        };
        var layers = new Option<int>("--layers")
        {
            Description = "one device or --parallel tp: layers of different random weights the forwards cycle through, so none is still in L2 from its last forward (a model's decode)",
            DefaultValueFactory = _ => 1,
        };
        var command = new Command("layer", "one MoE layer at Mixtral, Qwen3 or DeepSeek-V3 shapes with random weights") { preset, tokens, device, dtype, warmup, samples, json, parallel, devices, phases, enqueue, allreduce, layers };
        command.SetAction(parse => parse.GetValue(parallel)!.Trim().ToLowerInvariant() switch
        {
            "none" when parse.GetValue(phases) => RunPhases(parse.GetValue(preset)!, parse.GetValue(tokens)!, parse.GetValue(device)!, parse.GetValue(dtype)!,
                parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(json), Console.Out, Console.Error, parse.GetValue(layers)),
            "none" => Run(parse.GetValue(preset)!, parse.GetValue(tokens)!, parse.GetValue(device)!, parse.GetValue(dtype)!,
                parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(json), Console.Out, Console.Error, parse.GetValue(layers)),
            "ep" => RunExpertParallel(parse.GetValue(preset)!, parse.GetValue(tokens)!, parse.GetValue(devices) ?? "cuda:0,cuda:1", parse.GetValue(dtype)!,
                parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(json), Console.Out, Console.Error, parse.GetValue(enqueue)),
            "tp" => RunTensorParallel(parse.GetValue(preset)!, parse.GetValue(tokens)!, parse.GetValue(devices) ?? "cuda:0,cuda:1", parse.GetValue(dtype)!,
                parse.GetValue(allreduce)!, parse.GetValue(warmup), parse.GetValue(samples), parse.GetValue(json), Console.Out, Console.Error, parse.GetValue(layers)),
            var other => Fail($"--parallel {other}: none, tp or ep"),
        });
        return command;
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"moe bench layer: {message}");
        return 2;
    }

    /// <summary>
    /// <c>--parallel ep</c>: the layer split over the ranks of <paramref name="deviceList"/> (rank r builds only its block of
    /// E/N random experts), per-phase times per token count; the JSON (kind "ep_layer") is what <c>moe simulate --validate</c> reads.
    /// </summary>
    internal static int RunExpertParallel(string presetName, string tokenList, string deviceList, string dtypeName, int warmup, int samples, string? jsonPath,
                                          TextWriter output, TextWriter errors, string? enqueueList = null)
    {
        try
        {
            var (config, dtype, tokenCounts) = ParseArguments(presetName, dtypeName, tokenList, warmup, samples);
            var orders = ParseOrders(enqueueList);
            using var context = new AcceleratorContext();
            var ranks = deviceList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(context.Get).ToList();
            int n = ranks.Count;
            if (n < 1 || config.NumExperts % n != 0)
                throw new ArgumentException($"--devices {deviceList}: {config.NumExperts} experts must split evenly over the ranks");
            errors.WriteLine($"moe bench layer: generating {presetName} random weights ({DTypes.Name(dtype)}), {config.NumExperts / n} experts on each of {string.Join(", ", ranks.Select(r => r.Name))}...");
            // All-to-allv stages each rank's whole send buffer: room for the combine (F32) of every row of the largest T.
            long capacity = ((long)tokenCounts.Max() * config.TopK * config.HiddenSize * 4 + 15) / 16 * 16;
            using var communicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = Math.Max(capacity, 64L << 20) });
            var weights = new List<DeviceMoeWeights>();
            ExpertParallelMoe layer;
            try
            {
                int block = config.NumExperts / n;
                for (int r = 0; r < n; r++)
                    weights.Add(DeviceMoeWeights.CreateRandom(ranks[r], config, dtype, seed: 2026, firstExpert: r * block, expertCount: block));
                layer = new ExpertParallelMoe(weights, communicator);
            }
            catch
            {
                weights.ForEach(w => w.Dispose());
                throw;
            }
            using var disposeLayer = layer;
            if (orders.Count > 1) // an A/B of orders: both timed after the same warm-up of the host code
                foreach (var order in orders)
                {
                    layer.EnqueueOrder = order;
                    new EpLayerBench(ranks, warmup, samples).Warm(layer, tokenCounts);
                }
            foreach (var (order, index) in orders.Select((o, i) => (o, i)))
            {
                layer.EnqueueOrder = order;
                var bench = new EpLayerBench(ranks, warmup, samples);
                output.WriteLine($"# EP MoE layer {presetName} over {n} x {ranks[0].Info.Name}, {DTypes.Name(dtype)}, experts enqueued {EpEnqueue.Name(layer.EnqueueOrder)} (MOE_EP_ENQUEUE); phases: device events, slowest rank, median; wall: host clock of the forward");
                output.WriteLine($"{"T",6} {"wall(us)",10} {"phases(us)",11} {"route",9} {"dispatch",9} {"experts",9} {"combine",9} {"output",9} {"rows/rank",20}");
                var rows = new List<EpLayerRow>();
                foreach (var row in bench.Run(presetName, layer, tokenCounts))
                {
                    rows.Add(row);
                    var p = row.PhaseUs;
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{row.Tokens,6} {row.TotalUs,10:F1} {row.PhaseSumUs,11:F1} {p["RouteAndPermute"],9:F1} {p["Dispatch"],9:F1} {p["Experts"],9:F1} {p["Combine"],9:F1} {p["SharedAndUnpermute"],9:F1} {string.Join("/", row.RowsPerRank),20}"));
                    foreach (var line in PerRankLines(row))
                        output.WriteLine(line);
                }
                if (jsonPath is not null)
                    File.WriteAllText(index == 0 ? jsonPath : OrderPath(jsonPath, order), JsonSerializer.Serialize(new { kind = "ep_layer", preset = presetName, device = ranks[0].Info.Name, ranks = n, dtype = DTypes.Name(dtype), enqueue = EpEnqueue.Name(layer.EnqueueOrder), date = DateTime.UtcNow.ToString("yyyy-MM-dd"), rows },
                        new JsonSerializerOptions { WriteIndented = true }));
            }
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench layer: {RunCommand.Describe(e)}");
            return 2;
        }
    }

    /// <summary>
    /// <c>--parallel tp</c>: the tensor-parallel layer over the ranks of <paramref name="deviceList"/> (<see cref="TpLayerBench"/>),
    /// the whole forward timed per token count: every rank's slice and the AllReduce (JSON kind "tp_layer").
    /// </summary>
    /// <param name="layerCount">Layers of different random weights the forwards cycle through (<c>--layers</c>, 1..16).</param>
    internal static int RunTensorParallel(string presetName, string tokenList, string deviceList, string dtypeName, string allReduceName, int warmup, int samples,
                                          string? jsonPath, TextWriter output, TextWriter errors, int layerCount = 1)
    {
        try
        {
            var (config, dtype, tokenCounts) = ParseArguments(presetName, dtypeName, tokenList, warmup, samples);
            CheckLayerCount(layerCount);
            var algorithm = BenchCommand.ParseOneAlgorithm(allReduceName, "--allreduce");
            using var context = new AcceleratorContext();
            var ranks = deviceList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(context.Get).ToList();
            int n = ranks.Count;
            var slice = TpLayerBench.Slice(config, n);
            errors.WriteLine($"moe bench layer: generating {presetName} random weights ({DTypes.Name(dtype)}) of {layerCount} layer(s), a 1/{n} slice (I {slice.MoeIntermediateSize}) on each of {string.Join(", ", ranks.Select(r => r.Name))}...");
            // The AllReduce of the largest T's [T, H] F32 partials.
            long capacity = ((long)tokenCounts.Max() * config.HiddenSize * sizeof(float) + 15) / 16 * 16;
            using var communicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = Math.Max(capacity, 1L << 20) });
            var weights = new List<List<DeviceMoeWeights>>();
            try
            {
                for (int l = 0; l < layerCount; l++)
                {
                    weights.Add([]);
                    foreach (var rank in ranks)
                        weights[l].Add(DeviceMoeWeights.CreateRandom(rank, slice, dtype, seed: 2026 + l));
                }
                var bench = new TpLayerBench(ranks, communicator, algorithm, warmup, samples, m => errors.WriteLine($"moe bench layer: {m}"));
                output.WriteLine($"# TP MoE layer {presetName} over {n} x {ranks[0].Info.Name}, {DTypes.Name(dtype)}, AllReduce {allReduceName} of [T, H] F32; "
                    + $"time: the whole forward, every rank{(layerCount > 1 ? $", {layerCount} layers cycled" : "")}; floor = one rank's active-weight bytes / {LayerBench.CopyBandwidth(ranks[0]) / 1e12:F1} TB/s");
                output.WriteLine($"{"preset",-14} {"T",6} {"decode",6} {"eager(ms)",10} {"graph(ms)",10} {"allreduce",14} {"AR bytes",10} {"rank(MB)",9} {"floor(ms)",10} {"ratio",7}");
                var rows = new List<TpLayerRow>();
                foreach (var row in bench.Run(presetName, weights, tokenCounts))
                {
                    rows.Add(row);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{row.Preset,-14} {row.Tokens,6} {row.Decode,6} {row.EagerMs,10:F4} {(row.GraphMs is { } g ? g.ToString("F4", CultureInfo.InvariantCulture) : "-"),10} {row.AllReduce,14} {row.AllReduceBytes,10} {row.RankWeightBytes / 1e6,9:F1} {row.RankFloorMs,10:F4} {row.FloorRatio,7:F2}"));
                }
                if (jsonPath is not null)
                    File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { kind = "tp_layer", preset = presetName, device = ranks[0].Info.Name, ranks = n, dtype = DTypes.Name(dtype), allreduce = allReduceName, layers = layerCount, date = DateTime.UtcNow.ToString("yyyy-MM-dd"), rows },
                        new JsonSerializerOptions { WriteIndented = true }));
            }
            finally
            {
                weights.ForEach(l => l.ForEach(w => w.Dispose()));
            }
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench layer: {RunCommand.Describe(e)}");
            return 2;
        }
    }

    /// <summary>The most layers <c>--layers</c> cycles through.</summary>
    internal const int MaxLayers = 16;

    /// <summary>--enqueue: one order or several, comma-separated, each once (null or empty: the process default).</summary>
    internal static IReadOnlyList<EpEnqueueOrder> ParseOrders(string? list)
    {
        if (string.IsNullOrWhiteSpace(list))
            return [EpEnqueue.Default];
        var names = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (names.Any(name => name.ToLowerInvariant() is not ("interleaved" or "ranked")))
            throw new ArgumentException($"--enqueue {list}: interleaved, ranked, or both comma-separated");
        var orders = names.Select(EpEnqueue.Parse).ToList();
        return orders.Distinct().Count() == orders.Count ? orders : throw new ArgumentException($"--enqueue {list}: an order named twice");
    }

    /// <summary>The JSON of a further order: "F.json" -> "F-ranked.json".</summary>
    internal static string OrderPath(string jsonPath, EpEnqueueOrder order) =>
        Path.Combine(Path.GetDirectoryName(jsonPath) ?? "", $"{Path.GetFileNameWithoutExtension(jsonPath)}-{EpEnqueue.Name(order)}{Path.GetExtension(jsonPath)}");

    /// <summary>
    /// "  rank 0 device: route 2-58 dispatch ... | host: route 1-40 ..." per rank: each phase's marks in us from the forward's
    /// start, on the device (one clock for all ranks, from an origin event on each idle stream) and on the host thread.
    /// </summary>
    internal static IEnumerable<string> PerRankLines(EpLayerRow row)
    {
        string Short(string phase) => phase switch { "RouteAndPermute" => "route", "SharedAndUnpermute" => "output", _ => phase.ToLowerInvariant() };
        foreach (var rank in row.PerRank.GroupBy(x => x.Rank).OrderBy(g => g.Key))
            yield return string.Create(CultureInfo.InvariantCulture,
                $"  rank {rank.Key} device: {string.Join(" ", rank.Select(x => $"{Short(x.Phase)} {x.DeviceBeginUs:F0}-{x.DeviceEndUs:F0}"))}"
                + $" | host: {string.Join(" ", rank.Select(x => $"{Short(x.Phase)} {x.HostBeginUs:F0}-{x.HostEndUs:F0}"))}");
    }

    private static readonly string LayerRowHeader =
        $"{"preset",-14} {"T",6} {"eager(ms)",10} {"graph(ms)",10} {"tokens/s",12} {"active(MB)",11} {"floor(ms)",10} {"ratio",7}  note";

    private static string FormatLayerRow(LayerBenchRow row) => string.Create(CultureInfo.InvariantCulture,
        $"{row.Preset,-14} {row.Tokens,6} {row.EagerMs,10:F4} {(row.GraphMs is { } g ? g.ToString("F4", CultureInfo.InvariantCulture) : "-"),10} {row.TokensPerSecond,12:F0} {row.ActiveWeightBytes / 1e6,11:F1} {row.FloorMs,10:F4} {row.FloorRatio,7:F2}  {row.Note}");

    /// <summary>
    /// <c>--phases</c>: eager forwards on one device with an event at each phase boundary; per token count, the median
    /// of each phase, of the whole forward, and the gap (whole minus the phases: launch gaps between them); then the
    /// plain rows (eager and CUDA graph, no timer) on the same weights, so one run shows both.
    /// </summary>
    /// <param name="layerCount">Layers of different random weights the forwards cycle through (<c>--layers</c>, 1..16).</param>
    internal static int RunPhases(string presetName, string tokenList, string deviceName, string dtypeName, int warmup, int samples, string? jsonPath,
                                  TextWriter output, TextWriter errors, int layerCount = 1)
    {
        try
        {
            var (config, dtype, tokenCounts) = ParseArguments(presetName, dtypeName, tokenList, warmup, samples);
            CheckLayerCount(layerCount);
            using var context = new AcceleratorContext();
            var accelerator = context.Get(deviceName);
            using var weights = CreateLayers(accelerator, presetName, config, dtype, layerCount, errors);
            var bench = new LayerPhaseBench(accelerator, dtype, warmup, samples);
            var names = Enum.GetNames<MoeLayerPhase>();
            output.WriteLine($"# MoE layer phases {presetName} on {accelerator.Name} ({accelerator.Info.Name}), {DTypes.Name(dtype)}; eager behind a {LayerPhaseBench.DelayUs:F0} us device spin, device events, median of {samples} (us; enqueue: the host's time to enqueue a forward)"
                + (layerCount > 1 ? $"; {layerCount} layers cycled, a sample a forward of the next" : ""));
            output.WriteLine($"{"preset",-14} {"T",5} {"active",6} {"floor",8} {"total",8} {"sum",8} {"gaps",7} {"enqueue",8} " + string.Join(" ", names.Select(n => $"{n,13}")));
            var rows = new List<LayerPhaseRow>();
            foreach (var row in bench.Run(presetName, weights.Items, tokenCounts))
            {
                rows.Add(row);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{row.Preset,-14} {row.Tokens,5} {row.ActiveExperts,6} {row.FloorUs,8:F1} {row.TotalUs,8:F1} {row.PhaseSumUs,8:F1} {row.TotalUs - row.PhaseSumUs,7:F1} {row.EnqueueUs,8:F1} ")
                    + string.Join(" ", names.Select(n => row.PhaseUs[n].ToString("F1", CultureInfo.InvariantCulture).PadLeft(13))));
            }
            output.WriteLine(LayerRowHeader);
            var plain = new List<LayerBenchRow>();
            foreach (var row in new LayerBench(accelerator, dtype, warmup, samples).Run(presetName, weights.Items, tokenCounts))
            {
                plain.Add(row);
                output.WriteLine(FormatLayerRow(row));
            }
            if (jsonPath is not null)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { kind = "layer_phases", preset = presetName, device = accelerator.Info.Name, dtype = DTypes.Name(dtype), layers = layerCount, rows, layer = plain },
                    new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench layer: {RunCommand.Describe(e)}");
            return 2;
        }
    }

    private static void CheckLayerCount(int layerCount)
    {
        if (layerCount is < 1 or > MaxLayers)
            throw new ArgumentException($"--layers {layerCount}: 1 to {MaxLayers} layers");
    }

    /// <summary>Disposes the layers' weights together (one using for a list).</summary>
    private sealed class LayerWeights(List<DeviceMoeWeights> items) : IDisposable
    {
        public List<DeviceMoeWeights> Items { get; } = items;

        public void Dispose() => Items.ForEach(w => w.Dispose());
    }

    /// <summary><paramref name="count"/> layers of random weights on one device, seeds 2026, 2027, ... (the first is the one-layer bench's).</summary>
    private static LayerWeights CreateLayers(Accelerator accelerator, string presetName, ModelConfig config, DType dtype, int count, TextWriter errors)
    {
        errors.WriteLine($"moe bench layer: generating {presetName} random weights ({DTypes.Name(dtype)}){(count > 1 ? $" of {count} layers" : "")} on {accelerator.Name}...");
        var items = new List<DeviceMoeWeights>();
        try
        {
            for (int l = 0; l < count; l++)
                items.Add(DeviceMoeWeights.CreateRandom(accelerator, config, dtype, seed: 2026 + l));
            return new LayerWeights(items);
        }
        catch
        {
            items.ForEach(w => w.Dispose());
            throw;
        }
    }

    /// <summary>The preset, compute dtype and token counts every layer bench takes, checked (--warmup >= 0, --samples >= 1).</summary>
    private static (ModelConfig Config, DType DType, List<int> TokenCounts) ParseArguments(string presetName, string dtypeName, string tokenList, int warmup, int samples)
    {
        var config = LayerBench.Preset(presetName);
        var dtype = RunCommand.ParseComputeDType(dtypeName);
        var tokenCounts = ParseTokenCounts(tokenList);
        if (warmup < 0 || samples < 1)
            throw new ArgumentException($"--warmup {warmup} must be >= 0 and --samples {samples} >= 1");
        return (config, dtype, tokenCounts);
    }

    private static List<int> ParseTokenCounts(string tokenList)
    {
        var tokenCounts = tokenList.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t =>
            int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= 1 ? v
                : throw new ArgumentException($"--tokens: '{t}' is not a token count >= 1")).ToList();
        return tokenCounts.Count > 0 ? tokenCounts : throw new ArgumentException("--tokens names no token counts");
    }

    /// <param name="layerCount">Layers of different random weights the forwards cycle through (<c>--layers</c>, 1..16).</param>
    internal static int Run(string presetName, string tokenList, string deviceName, string dtypeName, int warmup, int samples, string? jsonPath, TextWriter output, TextWriter errors,
                            int layerCount = 1)
    {
        try
        {
            var (config, dtype, tokenCounts) = ParseArguments(presetName, dtypeName, tokenList, warmup, samples);
            CheckLayerCount(layerCount);
            using var context = new AcceleratorContext();
            var accelerator = context.Get(deviceName);
            using var weights = CreateLayers(accelerator, presetName, config, dtype, layerCount, errors);
            var bench = new LayerBench(accelerator, dtype, warmup, samples);
            output.WriteLine($"# MoE layer {presetName} on {accelerator.Name} ({accelerator.Info.Name}), {DTypes.Name(dtype)}, weights {weights.Items[0].Bytes / 1e9:F2} GB"
                + (layerCount > 1 ? $" a layer, {layerCount} layers cycled (a step a forward of each, its time / {layerCount})" : "")
                + $"; floor = active-weight bytes / {LayerBench.CopyBandwidth(accelerator) / 1e12:F1} TB/s");
            output.WriteLine(LayerRowHeader);
            var rows = new List<LayerBenchRow>();
            foreach (var row in bench.Run(presetName, weights.Items, tokenCounts))
            {
                rows.Add(row);
                output.WriteLine(FormatLayerRow(row));
            }
            if (jsonPath is not null)
                File.WriteAllText(jsonPath, JsonSerializer.Serialize(new { preset = presetName, device = accelerator.Info.Name, dtype = DTypes.Name(dtype), layers = layerCount, rows },
                    new JsonSerializerOptions { WriteIndented = true }));
            return 0;
        }
        catch (Exception e) when (RunCommand.IsUserError(e))
        {
            errors.WriteLine($"moe bench layer: {RunCommand.Describe(e)}");
            return 2;
        }
    }
}
