using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Scaling;

namespace MoeRuntime.Cli.Commands;

/// <summary>
/// <c>moe simulate</c>: the scale model of docs/SCALING.md.
/// <code>
/// moe simulate --model deepseek-v3 --gpus 72 --ep 8,16,32,64,72 --tokens-per-gpu 1..1024 --link nvl72 [--eplb none|static|online]
///              [--skew zipf:S] [--params F] [--user-tps 20] [--json F]     predict, print the Pareto frontier
/// moe simulate --calibrate a.json b.json ... [--save params.json]           fit the parameters from benchmark JSON
/// moe simulate --validate ep-layer.json [--params F]                        predict a measured EP layer bench, print the error
/// </code>
/// </summary>
internal static class SimulateCommand
{
    internal sealed record Settings
    {
        public string Model { get; init; } = "deepseek-v3";
        public int Gpus { get; init; } = 72;
        public string Ep { get; init; } = "8,16,32,64,72";
        public string TokensPerGpu { get; init; } = "1..1024";
        public string Link { get; init; } = "nvl72";
        public string Eplb { get; init; } = "none";
        public string Skew { get; init; } = "uniform";
        public string? Params { get; init; }
        public int? Layers { get; init; }
        public int Steps { get; init; } = 8;
        public double UserTps { get; init; } = 20;
        public string? Json { get; init; }
        public string[] Calibrate { get; init; } = [];
        public string? Save { get; init; }
        public string? Validate { get; init; }
        public string? LinkAlgo { get; init; }
    }

    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "deepseek-v3, qwen3-30b-a3b, mixtral-8x7b (layer presets)", DefaultValueFactory = _ => "deepseek-v3" };
        var gpus = new Option<int>("--gpus") { Description = "GPUs in the rack (the largest EP group)", DefaultValueFactory = _ => 72 };
        var ep = new Option<string>("--ep") { Description = "EP group sizes, comma-separated", DefaultValueFactory = _ => "8,16,32,64,72" };
        var tokens = new Option<string>("--tokens-per-gpu") { Description = "decode tokens per GPU per step: a list, or A..B for powers of two", DefaultValueFactory = _ => "1..1024" };
        var link = new Option<string>("--link") { Description = "nvl72, h200-nvlink or ib400", DefaultValueFactory = _ => "nvl72" };
        var eplb = new Option<string>("--eplb") { Description = "none, static or online", DefaultValueFactory = _ => "none" };
        var skew = new Option<string>("--skew") { Description = "uniform or zipf:S (expert popularity)", DefaultValueFactory = _ => "uniform" };
        var parameters = new Option<string?>("--params") { Description = "fitted parameters (default: the built-in file)" };
        var layers = new Option<int?>("--layers") { Description = "MoE layers per forward (default: the model's: DeepSeek-V3 58, Qwen3-30B-A3B 48, Mixtral 32)" };
        var steps = new Option<int>("--steps") { Description = "sampled routing steps per point", DefaultValueFactory = _ => 8 };
        var userTps = new Option<double>("--user-tps") { Description = "per-user tokens/s budget for the per-EP summary", DefaultValueFactory = _ => 20 };
        var json = new Option<string?>("--json") { Description = "write every point as JSON" };
        var calibrate = new Option<string[]>("--calibrate") { Description = "benchmark JSON files to fit the parameters from", AllowMultipleArgumentsPerToken = true };
        var save = new Option<string?>("--save") { Description = "with --calibrate: where to write the fitted parameters" };
        var validate = new Option<string?>("--validate") { Description = "an EP layer bench JSON (moe bench layer --parallel ep) to predict" };
        var linkAlgo = new Option<string?>("--link-algo") { Description = "with --calibrate: fit the link from this all-to-all algorithm (ours: what ExpertParallelMoe runs; nccl); default the fastest" };
        var command = new Command("simulate", "scale model: predict large expert parallelism (EP8 .. EP72) from measured costs")
        {
            model, gpus, ep, tokens, link, eplb, skew, parameters, layers, steps, userTps, json, calibrate, save, validate, linkAlgo,
        };
        command.SetAction(parse => Run(new Settings
        {
            Model = parse.GetValue(model)!, Gpus = parse.GetValue(gpus), Ep = parse.GetValue(ep)!, TokensPerGpu = parse.GetValue(tokens)!,
            Link = parse.GetValue(link)!, Eplb = parse.GetValue(eplb)!, Skew = parse.GetValue(skew)!, Params = parse.GetValue(parameters),
            Layers = parse.GetValue(layers), Steps = parse.GetValue(steps), UserTps = parse.GetValue(userTps), Json = parse.GetValue(json),
            Calibrate = parse.GetValue(calibrate) ?? [], Save = parse.GetValue(save), Validate = parse.GetValue(validate), LinkAlgo = parse.GetValue(linkAlgo),
        }, Console.Out, Console.Error));
        return command;
    }

    internal static int Run(Settings s, TextWriter output, TextWriter errors)
    {
        try
        {
            var (baseParams, baseName) = s.Params is { } path ? (ScaleParams.Load(path), path) : (DefaultScaleParams.Load(), DefaultScaleParams.Name);
            if (s.Calibrate.Length > 0)
                return Calibrate(s, baseParams, baseName, output);
            output.WriteLine($"# params: {baseName}");
            if (s.Validate is { } validatePath)
                return Validate(validatePath, baseParams, output);
            return Simulate(s, baseParams, output);
        }
        catch (Exception e) when (RunCommand.IsUserError(e) || e is FormatException or KeyNotFoundException or InvalidDataException or JsonException)
        {
            errors.WriteLine($"moe simulate: {RunCommand.Describe(e)}");
            return 2;
        }
    }

    private static int Calibrate(Settings s, ScaleParams fallback, string fallbackName, TextWriter output)
    {
        var fitted = Calibration.Fit(s.Calibrate, fallback, fallbackName, s.LinkAlgo);
        output.WriteLine($"# fitted from {string.Join(", ", s.Calibrate.Select(Path.GetFileName))}");
        output.WriteLine(Invariant($"gemm:     launch {fitted.Gemm.LaunchUs:F1} us, weights {fitted.Gemm.WeightGBs:F0} GB/s, matrix {fitted.Gemm.MatrixTflops:F0} TFLOP/s"));
        output.WriteLine(Invariant($"link:     {fitted.Link.LatencyUs:F1} us + bytes / {fitted.Link.GBs:F0} GB/s (per rank, bytes to peers)"));
        output.WriteLine(fitted.LinkF32 is { } f32
            ? Invariant($"link f32: {f32.LatencyUs:F1} us + bytes / {f32.GBs:F0} GB/s (the combine's F32 rows)")
            : "link f32: not measured (the combine's F32 rows at the link's rate)");
        output.WriteLine(Invariant($"routing:  {fitted.Routing.LatencyUs:F1} us + bytes / {fitted.Routing.GBs:F0} GB/s"));
        output.WriteLine(Invariant($"movement: {fitted.Movement.LatencyUs:F1} us + bytes / {fitted.Movement.GBs:F0} GB/s"));
        output.WriteLine(HostLine(fitted.Host));
        foreach (var (shape, g) in fitted.GemmByShape)
            output.WriteLine(Invariant($"gemm {shape}: launch {g.LaunchUs:F1} us, weights {g.WeightGBs:F0} GB/s, matrix {g.MatrixTflops:F0} TFLOP/s (this shape's experts)"));
        foreach (var (part, source) in fitted.Sources)
            output.WriteLine($"  {part}: {source}");
        if (s.Save is { } save)
        {
            File.WriteAllText(save, fitted.ToJson() + "\n");
            output.WriteLine($"# saved params: {save}");
        }
        return 0;
    }

    private static int Simulate(Settings s, ScaleParams p, TextWriter output)
    {
        var config = LayerPresets.Get(s.Model);
        var options = new SimulationOptions
        {
            Model = config, MoeLayers = s.Layers ?? DefaultMoeLayers(s.Model), Gpus = s.Gpus, EpSizes = ParseInts(s.Ep, "--ep"),
            TokensPerGpu = ParseTokens(s.TokensPerGpu), Link = LinkPreset.Get(s.Link), Eplb = ParseEplb(s.Eplb), ZipfS = ParseSkew(s.Skew), Steps = s.Steps,
        };
        var points = ScaleModel.Simulate(p, options);
        output.WriteLine(Invariant($"# {s.Model}: {options.MoeLayers} MoE layers, {s.Gpus} GPUs, link {options.Link.Name}, eplb {s.Eplb}, skew {s.Skew}; MoE layers only (attention and dense layers not modelled)"));
        output.WriteLine(p.Host is null
            ? "# host enqueue: none in these params (term = 0; each phase is its device time)"
            : "# host enqueue: one process per GPU (each rank enqueues its own work: no cross-rank serialisation; each phase at least its own launches' host time; hidden states stay on the GPU), " + HostLine(p.Host)["host:".Length..].TrimStart());
        output.WriteLine($"{"EP",4} {"tok/GPU",8} {"layer(us)",10} {"route",7} {"dispatch",8} {"experts",8} {"(weights)",9} {"combine",8} {"output",7} {"(host)",7} {"imbal",6} {"tok/s/GPU",10} {"tok/s/user",10}");
        foreach (var x in points)
            output.WriteLine(Row(x));
        output.WriteLine();
        output.WriteLine("# Pareto frontier (tokens/s per GPU against tokens/s per user), fastest per user first");
        foreach (var x in ScaleModel.Pareto(points))
            output.WriteLine(Row(x));
        output.WriteLine();
        output.WriteLine(Invariant($"# best tokens/s per GPU at >= {s.UserTps} tokens/s per user, per EP size"));
        foreach (var group in points.GroupBy(x => x.Ep))
        {
            var best = group.Where(x => x.TokensPerSecondPerUser >= s.UserTps).MaxBy(x => x.TokensPerSecondPerGpu);
            output.WriteLine(best is null
                ? $"EP{group.Key}: no point reaches it"
                : Invariant($"EP{group.Key}: {best.TokensPerGpu} tok/GPU, {best.TokensPerSecondPerGpu:F0} tok/s/GPU, {best.TokensPerSecondPerUser:F1} tok/s/user; layer {best.Layer.TotalUs:F0} us: experts {best.Layer.ExpertsUs:F0} us (weight-loading floor {best.Layer.ExpertWeightUs:F0} us), all-to-all {best.Layer.AllToAllUs:F0} us, route + output {best.Layer.RouteUs + best.Layer.OutputUs:F0} us{(p.Host is null ? "" : Invariant($" (host enqueue adds {best.Layer.HostUs:F0} us)"))}"));
        }
        if (s.Json is { } path)
            File.WriteAllText(path, JsonSerializer.Serialize(new
            {
                kind = "simulate", model = s.Model, options.MoeLayers, s.Gpus, link = options.Link.Name, eplb = s.Eplb, skew = s.Skew,
                @params = s.Params ?? DefaultScaleParams.Name, points, pareto = ScaleModel.Pareto(points),
            }, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static string Row(SimPoint x) => Invariant(
        $"{x.Ep,4} {x.TokensPerGpu,8} {x.Layer.TotalUs,10:F1} {x.Layer.RouteUs,7:F1} {x.Layer.DispatchUs,8:F1} {x.Layer.ExpertsUs,8:F1} {x.Layer.ExpertWeightUs,9:F1} {x.Layer.CombineUs,8:F1} {x.Layer.OutputUs,7:F1} {x.Layer.HostUs,7:F1} {x.Imbalance,6:F2} {x.TokensPerSecondPerGpu,10:F0} {x.TokensPerSecondPerUser,10:F1}");

    /// <summary>
    /// Predicts each row of an EP layer bench from its measured per-rank loads; prints the error per point and the mean/max.
    /// The bench reads each phase on its slowest rank and sums them, so its combine includes the wait of the rank whose experts
    /// end first for the slowest rank's: the comparison is with <see cref="LayerBreakdown.TimedPhaseSumUs"/> (the layer's
    /// critical path plus that wait), and the critical path is printed beside it.
    /// </summary>
    private static int Validate(string path, ScaleParams p, TextWriter output)
    {
        var root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path}: empty");
        if (root["kind"]?.GetValue<string>() != "ep_layer")
            throw new InvalidDataException($"{path}: not an EP layer bench (moe bench layer --parallel ep --json)");
        string preset = root["preset"]!.GetValue<string>();
        var config = LayerPresets.Get(preset);
        int ranks = root["ranks"]!.GetValue<int>();
        // Runs name the order their experts were enqueued in; runs before the switch (no "enqueue") were ranked.
        var order = root["enqueue"]?.GetValue<string>() is { } name ? EpEnqueue.Parse(name) : EpEnqueueOrder.Ranked;
        string gemm = p.GemmByShape.ContainsKey(ScaleParams.ShapeKey(config.HiddenSize, config.MoeIntermediateSize))
            ? $"expert GEMM fit of its own shape ({ScaleParams.ShapeKey(config.HiddenSize, config.MoeIntermediateSize)})" : "expert GEMM: the overall fit";
        output.WriteLine($"# validate {Path.GetFileName(path)}: {preset} over {ranks} x {root["device"]}, link h200-nvlink as fitted, {gemm}");
        output.WriteLine(p.Host is null
            ? "# host enqueue: none in these params (term = 0; each phase is its device time)"
            : $"# host enqueue: one thread for all ranks (the in-process EP layer bench: rank r's phases start after ranks 0..r-1 are enqueued, experts {EpEnqueue.Name(order)}; its event marks and host input/output copies counted), " + HostLine(p.Host)["host:".Length..].TrimStart());
        output.WriteLine($"{"T",6} {"measured(us)",13} {"predicted(us)",14} {"error",8} {"layer(us)",10} {"wait(us)",9} {"host(us)",9}   per phase measured/predicted (us): route, dispatch, experts, combine (+ wait), output");
        var errorsList = new List<double>();
        foreach (var row in root["rows"]!.AsArray())
        {
            double[] D(string name) => row![name]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
            // Runs that recorded each held expert's rows give the GEMMs' real row tiles; older ones the even-spread estimate.
            var tiled = row!["RowsPerHeldExpert"]?.AsArray() is { Count: > 0 } held
                ? held.Select(rank => rank!.AsArray().Sum(x => Calibration.TiledRows(x!.GetValue<double>(), 1))).ToArray()
                : null;
            var predicted = ScaleModel.Predict(p, config, LinkPreset.H200Nvlink, D("TokensPerRank"), D("RowsPerRank"), D("ActiveExpertsPerRank"),
                tiled, schedule: HostSchedule.InProcessBench with { Order = order });
            var m = row!["PhaseUs"]!;
            double[] measured = [m["RouteAndPermute"]!.GetValue<double>(), m["Dispatch"]!.GetValue<double>(), m["Experts"]!.GetValue<double>(), m["Combine"]!.GetValue<double>(), m["SharedAndUnpermute"]!.GetValue<double>()];
            var t = predicted.Timed!;
            double[] pred = [t.RouteUs, t.DispatchUs, t.ExpertsUs, t.CombineUs, t.OutputUs];
            double total = measured.Sum(), error = (predicted.TimedPhaseSumUs - total) / total;
            errorsList.Add(Math.Abs(error));
            output.WriteLine(Invariant($"{row["Tokens"]!.GetValue<int>(),6} {total,13:F1} {predicted.TimedPhaseSumUs,14:F1} {error,8:P1} {predicted.TotalUs,10:F1} {predicted.ExpertSkewUs,9:F1} {predicted.HostUs,9:F1}   ")
                + string.Join(", ", measured.Zip(pred, (a, b) => Invariant($"{a:F0}/{b:F0}"))));
            if (ExpertsLine(row, predicted) is { } line)
                output.WriteLine(line);
        }
        if (errorsList.Count == 0)
            throw new InvalidDataException($"{path}: no rows");
        output.WriteLine(Invariant($"# |error| mean {errorsList.Average():P1}, max {errorsList.Max():P1} over {errorsList.Count} points (measured = sum of the event-timed phases, slowest rank each; predicted = the same sum of the model's timed phases: layer + wait, with the host term when the params have one)"));
        return 0;
    }

    /// <summary>
    /// "       experts per rank, device us from the forward's start: measured 917-1210 1059-1301 (rank 1 starts +142), predicted
    /// ..." for a row with per-rank marks: whether the host timeline starts the ranks' experts as far apart as the run did.
    /// </summary>
    private static string? ExpertsLine(JsonNode row, LayerBreakdown predicted)
    {
        if (row["PerRank"]?.AsArray() is not { Count: > 0 } marks || predicted.ExpertsBeginUs is not { } begin || predicted.ExpertsEndUs is not { } end)
            return null;
        var measured = marks.Where(m => m!["Phase"]!.GetValue<string>() == "Experts")
            .ToDictionary(m => m!["Rank"]!.GetValue<int>(), m => (Begin: m!["DeviceBeginUs"]!.GetValue<double>(), End: m!["DeviceEndUs"]!.GetValue<double>()));
        if (measured.Count == 0)
            return null;
        static string Lag(IReadOnlyList<double> begins) =>
            begins.Count > 1 && begins.All(double.IsFinite) ? Invariant($" (last rank starts {begins.Max() - begins.Min():+0;-0})") : "";
        var measuredBegins = Enumerable.Range(0, begin.Count).Select(r => measured.TryGetValue(r, out var m) ? m.Begin : double.NaN).ToList();
        string Spans(Func<int, (double Begin, double End)> span) =>
            string.Join(" ", Enumerable.Range(0, begin.Count).Select(r => span(r) is var (b, e) && double.IsFinite(b) ? Invariant($"{b:F0}-{e:F0}") : "-"));
        return "       experts per rank, device us from the forward's start: measured "
            + Spans(r => measured.TryGetValue(r, out var m) ? m : (double.NaN, double.NaN)) + Lag(measuredBegins)
            + ", predicted " + Spans(r => (begin[r], end[r])) + Lag(begin);
    }

    /// <summary>"host:     launch .. us, copy .. us, event .. us, all-to-allv .. us per rank", or that there is none.</summary>
    internal static string HostLine(HostParams? h) => h is null
        ? "host:     none (no host_launch sweep in these params: term = 0)"
        : Invariant($"host:     launch {h.LaunchUs:F2} us{(h.GemmCallUs is { } g ? Invariant($", GEMM call {g:F2} us") : "")}, copy {h.CopyUs:F2} us, event {h.EventUs:F2} us, all-to-allv {h.CollectivePerRankUs:F2} us per rank{PhaseLine("route", "token", h.RoutePhase)}{PhaseLine("route after upload", "token", h.RoutePhaseAfterUpload)}{PhaseLine("experts", "row", h.ExpertsPhase)}{PhaseLine("experts busy", "row", h.ExpertsPhaseBusy)} (host enqueue)");

    /// <summary>", route phase 20.0 us + 0.100 us per token" when the params time that phase whole; "" when they price it op by op.</summary>
    private static string PhaseLine(string phase, string unit, HostPhaseCost? cost) =>
        cost is null ? "" : Invariant($", {phase} phase {cost.FixedUs:F1} us + {cost.PerUnitUs:F3} us per {unit}");

    internal static int DefaultMoeLayers(string model) => model.Trim().ToLowerInvariant() switch
    {
        "deepseek-v3" => 58,
        "qwen3-30b-a3b" => 48,
        "mixtral-8x7b" => 32,
        _ => 1,
    };

    internal static IReadOnlyList<int> ParseInts(string text, string option)
    {
        var values = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t =>
            int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v >= 1 ? v : throw new ArgumentException($"{option}: '{t}' is not a count >= 1")).ToList();
        return values.Count > 0 ? values : throw new ArgumentException($"{option} names nothing");
    }

    /// <summary>"1,16,128" as given; "A..B": A, 2A, 4A, ... up to B (B itself included).</summary>
    internal static IReadOnlyList<int> ParseTokens(string text)
    {
        int dots = text.IndexOf("..", StringComparison.Ordinal);
        if (dots < 0)
            return ParseInts(text, "--tokens-per-gpu");
        int from = ParseInts(text[..dots], "--tokens-per-gpu")[0], to = ParseInts(text[(dots + 2)..], "--tokens-per-gpu")[0];
        if (to < from)
            throw new ArgumentException($"--tokens-per-gpu {text}: the range is empty");
        var values = new List<int>();
        for (long v = from; v < to; v *= 2)
            values.Add((int)v);
        values.Add(to);
        return values;
    }

    internal static EplbMode ParseEplb(string text) => text.Trim().ToLowerInvariant() switch
    {
        "none" => EplbMode.None,
        "static" => EplbMode.Static,
        "online" => EplbMode.Online,
        _ => throw new ArgumentException($"--eplb {text}: none, static or online"),
    };

    internal static double ParseSkew(string text)
    {
        text = text.Trim().ToLowerInvariant();
        if (text == "uniform")
            return 0;
        if (text.StartsWith("zipf:", StringComparison.Ordinal) && double.TryParse(text[5..], NumberStyles.Float, CultureInfo.InvariantCulture, out double s) && s >= 0)
            return s;
        throw new ArgumentException($"--skew {text}: uniform or zipf:S with S >= 0");
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
