using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Fits <see cref="ScaleParams"/> from benchmark JSON files, whatever mix of them is given:
/// <list type="bullet">
/// <item>sweep JSON (<c>bench -- sweep grouped_gemm|grouped_gemm_ep|token_ops --json</c>): rows {Name, Shape, Ms, GBps}.
///   grouped_gemm: "&lt;preset&gt; gate_up+silu" and "&lt;preset&gt; down*w" of one shape "T=.. rows=.. active=.." are summed
///   into one expert-GEMM point; grouped_gemm_ep: "&lt;preset&gt; ep experts" rows "E=.. m=.. rows=.. active=..".
///   token_ops: routing rows fit <see cref="ScaleParams.Routing"/> (DeepSeek grouped ones when present), permute and combine
///   rows fit <see cref="ScaleParams.Movement"/>; bytes = GB/s * time.</item>
/// <item><c>moe bench alltoall --json</c> (kind "alltoall"): rows {Algorithm, PeerBytesPerRank, TimeUs}: the link, from the
///   algorithm with the highest fitted bandwidth.</item>
/// <item><c>moe bench allreduce --json</c> on 2 ranks: a stand-in for the link when no all-to-all run exists (each rank sends
///   its whole message to its peer: 2(N-1)/N * bytes); NCCL rows when present.</item>
/// <item>sweep JSON of <c>bench -- sweep host_launch --json</c>: rows named "host ..." whose shape counts what one call issues
///   ("launches=3", "copies=1", "events=1", or "ranks=2" for an all-to-allv) and whose time is host microseconds per call:
///   <see cref="ScaleParams.Host"/>, each part a per-unit cost through the origin; rows "T=t phase=route" / "R=r phase=experts"
///   (whole phases, with "after=upload" / "after=kernel" when issued behind the input upload / a running kernel) fit fixed + per
///   token (row) each. Without such rows the fallback's host part is kept (none in files older than it: no host term).</item>
/// <item><c>moe bench layer --parallel ep --json</c> (kind "ep_layer") with per-rank host marks: the route after upload and the
///   busy experts phase from the layer's own enqueue (<see cref="LayerHostMarks"/>), in place of the sweep's rows for those
///   two; the other host parts still come from the sweep (or the fallback), and <c>Sources["host by parameter"]</c> says which
///   source gave each. A run without host marks is refused.</item>
/// </list>
/// Expert-GEMM rows of several model shapes also give one fit per shape (<see cref="ScaleParams.GemmByShape"/>).
/// Parts no file measures are taken from <paramref name="fallback"/> and say so in <see cref="ScaleParams.Sources"/>.
/// </summary>
public static partial class Calibration
{
    [GeneratedRegex(@"T=(\d+) rows=(\d+) active=(\d+)")]
    private static partial Regex GemmShape();

    [GeneratedRegex(@"E=(\d+) m=(\d+) rows=(\d+) active=(\d+)")]
    private static partial Regex EpShape();

    /// <summary>A dense_gemm sweep row's shape: "T=128 N=256 K=7168".</summary>
    [GeneratedRegex(@"^T=(\d+) N=(\d+) K=(\d+)$")]
    private static partial Regex DenseShape();

    /// <summary>A host_launch sweep row's count of one kind of host operation per call: "launches=3", "copies=1", "events=1", "ranks=2".</summary>
    [GeneratedRegex(@"(launches|copies|events|ranks)=(\d+)")]
    private static partial Regex HostCount();

    /// <summary>
    /// A host_launch sweep row timing a whole phase of one rank: "T=64 phase=route" (tokens), "R=512 phase=experts" (rows), on
    /// an idle stream or right after what "after=" names ("after=upload": the rank's input upload; "after=kernel": a running kernel).
    /// </summary>
    [GeneratedRegex(@"^(?:T|R)=(\d+) phase=(route|experts)(?: after=(\w+))?$")]
    private static partial Regex HostPhaseShape();

    /// <param name="linkAlgorithm">Fit the link from this all-to-all algorithm's rows only ("ours", "nccl"); null: the fastest.</param>
    public static ScaleParams Fit(IEnumerable<string> paths, ScaleParams? fallback, string fallbackName = "fallback", string? linkAlgorithm = null)
    {
        var gemm = new List<(double, double, double)>();
        var gemmByShape = new Dictionary<string, List<(double, double, double)>>();
        var gemvByShape = new Dictionary<string, List<(double, double, double)>>(); // the decode GEMV's calls (TakesGemv), per shape
        static void AddByShape(Dictionary<string, List<(double, double, double)>> byShape, ModelConfig model, (double, double, double) point)
        {
            string key = ScaleParams.ShapeKey(model.HiddenSize, model.MoeIntermediateSize);
            if (!byShape.TryGetValue(key, out var list))
                byShape[key] = list = new List<(double, double, double)>();
            list.Add(point);
        }
        void AddGemm(ModelConfig model, (double WeightBytes, double Flops, double Us) point)
        {
            gemm.Add(point);
            AddByShape(gemmByShape, model, point);
        }
        var routing = new List<(double, double)>();
        var deepseekRouting = new List<(double, double)>();
        var movement = new List<(double, double)>();
        var dense = new Dictionary<string, List<(double, double)>>(); // DenseGemmCurve.Key: (rows, us) of the layer's own path
        var links = new Dictionary<string, List<(double, double)>>();
        var host = new Dictionary<string, List<(double, double)>>(); // "launch", "copy", "event", "collective": (count per call, us per call)
        var hostPhases = new Dictionary<string, List<(double, double)>>(); // "route", "experts", "route after=upload", ...: (tokens or rows, us per call)
        var layerMarks = new List<LayerHostMarks.Marks>(); // ep_layer files: the route's and experts' enqueue in the layer itself
        var linkRanks = new Dictionary<string, int>(); // link rows timed on the host around synchronous calls of our all-to-allv: their ranks
        var sources = new Dictionary<string, List<string>>();
        void Source(string part, string text)
        {
            if (!sources.TryGetValue(part, out var list))
                sources[part] = list = new List<string>();
            if (!list.Contains(text))
                list.Add(text);
        }
        foreach (var path in paths)
        {
            JsonNode root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path}: empty");
            }
            catch (System.Text.Json.JsonException e)
            {
                throw new InvalidDataException($"{path}: not JSON ({e.Message})", e);
            }
            string device = root["device"]?.GetValue<string>() ?? "?";
            string label = $"{Path.GetFileName(path)} ({device})";
            var rows = root["rows"]?.AsArray() ?? throw new InvalidDataException($"{path}: no \"rows\" array");
            string kind = root["kind"]?.GetValue<string>() ?? "";
            if (kind == "alltoall")
            {
                foreach (var r in rows)
                {
                    string algo = r!["Algorithm"]!.GetValue<string>();
                    string key = $"alltoall {algo}" + (r["DType"]?.GetValue<string>() == "f32" ? F32Suffix : "");
                    Add(links, key, (r["PeerBytesPerRank"]!.GetValue<double>(), r["TimeUs"]!.GetValue<double>()));
                    if (algo == "ours" && LinkHost.HostClocked(r["Timing"]?.GetValue<string>()))
                        linkRanks[key] = r["Ranks"]?.GetValue<int>() ?? root["ranks"]?.GetValue<int>() ?? 0;
                }
                Source("link", label);
                continue;
            }
            if (kind == "ep_layer")
            {
                layerMarks.Add(LayerHostMarks.Read(root, path));
                continue;
            }
            if (rows.Count > 0 && rows[0]?["BusGBs"] is not null)
            {
                int ranks = root["ranks"]!.GetValue<int>();
                foreach (var r in rows)
                {
                    string algo = r!["Algorithm"]!.GetValue<string>();
                    double bytes = r["Bytes"]!.GetValue<double>() * 2.0 * (ranks - 1) / ranks;
                    Add(links, $"allreduce {algo} (as peer traffic)", (bytes, r["TimeUs"]!.GetValue<double>()));
                }
                Source("link", label);
                continue;
            }
            // A sweep table.
            var pending = new Dictionary<string, (double Us, int Parts, double WeightBytes, double Flops, ModelConfig Model)>();
            foreach (var r in rows)
            {
                string name = r!["Name"]!.GetValue<string>();
                string shape = r["Shape"]!.GetValue<string>();
                double us = r["Ms"]!.GetValue<double>() * 1e3;
                double gbps = r["GBps"]?.GetValue<double>() ?? 0;
                double bytes = gbps * 1e9 * us * 1e-6;
                if (name.StartsWith("host ", StringComparison.Ordinal) && HostPhaseShape().Match(shape) is { Success: true } phaseRow && us > 0)
                {
                    // A whole phase timed as the layer issues it: its own fit per phase and what preceded it (fixed + per token or row).
                    string after = phaseRow.Groups[3].Success ? " after=" + phaseRow.Groups[3].Value : "";
                    Add(hostPhases, phaseRow.Groups[2].Value + after, (Number(phaseRow.Groups[1].Value), us));
                    Source("host", label);
                }
                else if (name.StartsWith("host ", StringComparison.Ordinal) && HostPart(shape) is { } hostPart && us > 0)
                {
                    // A grouped GEMM call (router, gate_up, down) is its own part: one call each, planning included.
                    bool gemmCall = hostPart.Part == "launch" && name.Contains("gemm", StringComparison.Ordinal);
                    Add(host, gemmCall ? "gemm" : hostPart.Part, (gemmCall ? 1 : hostPart.Count, us));
                    Source("host", label);
                }
                else if ((name.EndsWith(" router", StringComparison.Ordinal) || name.EndsWith(" shared gate_up+silu", StringComparison.Ordinal)
                          || name.EndsWith(" shared down", StringComparison.Ordinal)) && DenseShape().Match(shape) is { Success: true } d
                         && (r["Note"]?.GetValue<string>() ?? "auto").StartsWith("auto", StringComparison.Ordinal))
                {
                    // dense_gemm: only the "auto" path, the one the layer takes.
                    Add(dense, DenseGemmCurve.Key((int)Number(d.Groups[2].Value), (int)Number(d.Groups[3].Value), name.EndsWith("+silu", StringComparison.Ordinal)),
                        (Number(d.Groups[1].Value), us));
                    Source("dense", label);
                }
                else if (name.StartsWith("routing", StringComparison.Ordinal) && bytes > 0)
                {
                    (name.Contains("deepseek", StringComparison.Ordinal) ? deepseekRouting : routing).Add((bytes, us));
                    Source("routing", label);
                }
                else if ((name.StartsWith("permute", StringComparison.Ordinal) || name.StartsWith("combine", StringComparison.Ordinal)) && bytes > 0)
                {
                    movement.Add((bytes, us));
                    Source("movement", label);
                }
                else if (name.EndsWith(" ep experts", StringComparison.Ordinal) && EpShape().Match(shape) is { Success: true } ep
                         && Preset(name[..^" ep experts".Length]) is { } epModel)
                {
                    double rowsTotal = Number(ep.Groups[3].Value), active = Number(ep.Groups[4].Value);
                    var point = (active * ExpertBytes(epModel), ExpertFlops(epModel, rowsTotal, active), us);
                    AddGemm(epModel, point);
                    if (TakesGemv(rowsTotal, active))
                        AddByShape(gemvByShape, epModel, point);
                    Source("gemm", label);
                }
                else if ((name.EndsWith(" gate_up+silu", StringComparison.Ordinal) || name.EndsWith(" down*w", StringComparison.Ordinal))
                         && GemmShape().Match(shape) is { Success: true } m && Preset(name[..name.LastIndexOf(' ')]) is { } model)
                {
                    string key = name[..name.LastIndexOf(' ')] + "|" + shape;
                    double rowsTotal = Number(m.Groups[2].Value), active = Number(m.Groups[3].Value);
                    var p = pending.GetValueOrDefault(key, (0, 0, active * ExpertBytes(model), ExpertFlops(model, rowsTotal, active), model));
                    pending[key] = (p.Us + us, p.Parts + 1, p.WeightBytes, p.Flops, p.Model);
                }
            }
            foreach (var p in pending.Values.Where(p => p.Parts == 2))
            {
                AddGemm(p.Model, (p.WeightBytes, p.Flops, p.Us));
                Source("gemm", label);
            }
        }

        var result = new Dictionary<string, string>();
        GemmParams? g = null;
        var byShape = new Dictionary<string, GemmParams>();
        LinearCost? link = null, linkF32 = null, route = null, move = null;
        if (gemm.Count >= 3)
        {
            g = CurveFit.FitGemm(gemm);
            var fitted = g;
            result["gemm"] = $"{string.Join(", ", sources["gemm"])}: {gemm.Count} points{(gemmByShape.Count > 1 ? " of " + string.Join(", ", gemmByShape.Keys) : "")}, rms error {GemmRms(fitted, gemm):P1}";
            // With several model shapes, one fit per shape as well (used for that shape's experts); from these files only.
            foreach (var (key, points) in gemmByShape.Where(s => gemmByShape.Count > 1 && s.Value.Count >= 3))
            {
                byShape[key] = CurveFit.FitGemm(points);
                result[$"gemm {key}"] = $"{points.Count} points, rms error {GemmRms(byShape[key], points):P1} (overall fit on these: {GemmRms(fitted, points):P1})";
            }
        }
        var gemvFits = new Dictionary<string, GemmParams>();
        foreach (var (key, points) in gemvByShape.Where(s => s.Value.Count >= 3))
        {
            gemvFits[key] = CurveFit.FitGemm(points);
            result[$"gemv {key}"] = $"{points.Count} points (under {GemvMaxRows} rows, no more rows than experts), rms error {GemmRms(gemvFits[key], points):P1}"
                + (byShape.TryGetValue(key, out var shapeFit) ? $" (the shape's fit on these: {GemmRms(shapeFit, points):P1})" : "");
        }
        var routingPoints = deepseekRouting.Count >= 2 ? deepseekRouting : routing;
        if (routingPoints.Count >= 2)
        {
            route = CurveFit.FitLinear(routingPoints);
            result["routing"] = $"{string.Join(", ", sources["routing"])}: {routingPoints.Count} points{(routingPoints == deepseekRouting ? " (DeepSeek grouped)" : "")}, rms error {Rms(route, routingPoints):P1}";
        }
        if (movement.Count >= 2)
        {
            move = CurveFit.FitLinear(movement);
            result["movement"] = $"{string.Join(", ", sources["movement"])}: {movement.Count} points, rms error {Rms(move, movement):P1}";
        }
        HostParams? hostFit = fallback?.Host;
        var hostSource = new Dictionary<string, string>(); // each host parameter: where its value came from
        void NoteCallAndPhaseSources(string source) // the GEMM call's and the whole-phase parameters of hostFit: measured there, or not
        {
            hostSource[nameof(HostParams.GemmCallUs)] = hostFit?.GemmCallUs is null ? "not measured (a launch's cost)" : source;
            foreach (var (name, cost) in PhaseParameters(hostFit))
                hostSource[name] = cost is null ? "not measured (priced op by op)" : source;
        }
        if (host.ContainsKey("launch") || host.ContainsKey("gemm"))
        {
            string sweep = $"host_launch sweep ({string.Join(", ", sources["host"])})";
            var fitted = new Dictionary<string, double>();
            var notes = new List<string>();
            foreach (var part in HostParts)
            {
                if (host.TryGetValue(part, out var points))
                {
                    fitted[part] = CurveFit.FitPerUnit(points);
                    double cost = fitted[part];
                    notes.Add(string.Create(CultureInfo.InvariantCulture, $"{part} {cost:F2} us ({points.Count} rows, rms error {CurveFit.RmsRelativeError(points.Select(x => (cost * x.Item1, x.Item2))):P1})"));
                }
                else
                {
                    double? old = fallback?.Host is { } h ? HostPartOf(h, part) : null;
                    fitted[part] = old ?? 0;
                    notes.Add(old is null ? $"{part} not measured (0)" : $"{part} from {fallbackName}");
                }
                hostSource[HostParameter(part)] = host.ContainsKey(part) ? sweep : fallback?.Host is null ? "not measured (0)" : $"from {fallbackName}";
            }
            double? gemmCall = null;
            if (host.TryGetValue("gemm", out var gemmPoints))
            {
                double cost = CurveFit.FitPerUnit(gemmPoints);
                gemmCall = cost;
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"gemm call {cost:F2} us ({gemmPoints.Count} rows, rms error {CurveFit.RmsRelativeError(gemmPoints.Select(x => (cost * x.Item1, x.Item2))):P1})"));
            }
            var routePhase = FitPhase(hostPhases, "route", "token", notes);
            var expertsPhase = FitPhase(hostPhases, "experts", "row", notes);
            // As the EP forward issues them: the route behind the rank's input upload, the experts behind the dispatch's kernel.
            var routeAfterUpload = FitPhase(hostPhases, "route after=upload", "token", notes);
            var expertsBusy = FitPhase(hostPhases, "experts after=kernel", "row", notes);
            hostFit = new HostParams(fitted["launch"], fitted["copy"], fitted["event"], fitted["collective"])
                { GemmCallUs = gemmCall, RoutePhase = routePhase, ExpertsPhase = expertsPhase, RoutePhaseAfterUpload = routeAfterUpload, ExpertsPhaseBusy = expertsBusy };
            result["host"] = $"{string.Join(", ", sources["host"])}: {string.Join("; ", notes)}";
            NoteCallAndPhaseSources(sweep);
        }
        else
        {
            foreach (var part in HostParts)
                hostSource[HostParameter(part)] = $"from {fallbackName}";
            NoteCallAndPhaseSources($"from {fallbackName}");
            result["host"] = fallback?.Host is null
                ? "not measured (no host_launch sweep given): no host enqueue term, every phase is its device time"
                : $"from {fallbackName}: {fallback.Sources.GetValueOrDefault("host", "?")}";
        }
        if (layerMarks.Count > 0)
        {
            // The layer's own marks price the phases they cover; every other host part needs a sweep or a fallback to come from.
            if (hostFit is null)
                throw new InvalidDataException("the EP layer's host marks price the route and experts phases only: the other host parts (launch, copy, event, "
                    + "all-to-allv) need a host_launch sweep among the files or fallback params with a host part");
            hostFit = LayerHostMarks.Fit(layerMarks, hostFit, out var fromMarks, out string marksNote);
            result["host marks"] = marksNote;
            foreach (var name in fromMarks)
                hostSource[name] = $"the EP layer's host marks ({string.Join(", ", layerMarks.Select(f => f.File))})";
            // Written only with layer marks, so params fitted without them keep the Sources they had.
            result["host by parameter"] = string.Join("; ", hostSource.Select(x => $"{x.Key}: {x.Value}"));
        }
        if (links.Count > 0)
        {
            // Prefer all-to-all measurements over the AllReduce stand-in, then the fastest algorithm.
            // F32 rows fit the combine's link (LinkF32) only; the link itself comes from the other rows when there are any.
            var all = links.Where(l => l.Value.Count >= 2).ToList();
            var usable = all.Any(l => !l.Key.EndsWith(F32Suffix, StringComparison.Ordinal)) ? all.Where(l => !l.Key.EndsWith(F32Suffix, StringComparison.Ordinal)).ToList() : all;
            var candidates = usable.Any(l => l.Key.StartsWith("alltoall", StringComparison.Ordinal)) ? usable.Where(l => l.Key.StartsWith("alltoall", StringComparison.Ordinal)).ToList() : usable;
            if (linkAlgorithm is not null)
            {
                candidates = candidates.Where(l => l.Key.EndsWith(" " + linkAlgorithm, StringComparison.OrdinalIgnoreCase)).ToList();
                if (candidates.Count == 0)
                    throw new InvalidDataException($"--link-algo {linkAlgorithm}: no all-to-all rows of that algorithm in the given files (have: {string.Join(", ", usable.Select(l => l.Key))})");
            }
            var fits = new List<(string Key, LinearCost Fit, List<(double, double)> Value)>();
            List<(double, double)> DevicePart(string key, List<(double, double)> points) =>
                hostFit is { CollectivePerRankUs: > 0 } && linkRanks.TryGetValue(key, out int ranks) ? LinkHost.DeviceOnly(points, ranks, hostFit.CollectivePerRankUs) : points;
            string deviceOnly = "";
            if (hostFit is { CollectivePerRankUs: > 0 } && linkRanks.Count > 0)
            {
                // Each point of our all-to-all bench is one synchronous call: the host issues every rank's share, then the
                // device runs. With a host term the model adds the issuing itself, so the link keeps the device part only.
                candidates = candidates.Select(l => new KeyValuePair<string, List<(double, double)>>(l.Key, DevicePart(l.Key, l.Value))).ToList();
                deviceOnly = string.Create(CultureInfo.InvariantCulture,
                    $"; device part only: each host-clocked call less its ranks x {hostFit.CollectivePerRankUs:F2} us of host enqueue (the host term adds that)");
            }
            foreach (var l in candidates)
            {
                try
                {
                    fits.Add((l.Key, CurveFit.FitLinear(l.Value), l.Value));
                }
                catch (ArgumentException e)
                {
                    // e.g. a CPU run whose times do not grow with the bytes: not a link to fit.
                    result[$"link ({l.Key})"] = "not fitted: " + e.Message.Split(" (Parameter", StringSplitOptions.None)[0];
                }
            }
            if (fits.Count > 0)
            {
                var best = fits.OrderByDescending(f => f.Fit.GBs).First();
                link = best.Fit;
                result["link"] = $"{string.Join(", ", sources["link"])}: {best.Key}, {best.Value.Count} points, rms error {Rms(link, best.Value):P1}{(linkRanks.ContainsKey(best.Key) ? deviceOnly : "")}; calibration link taken as H200 NVLink ({LinkPreset.H200NvlinkGBs} GB/s per direction nominal)";
                string f32Key = best.Key + F32Suffix;
                if (!best.Key.EndsWith(F32Suffix, StringComparison.Ordinal) && links.TryGetValue(f32Key, out var f32Points) && f32Points.Count >= 2)
                {
                    var points = DevicePart(f32Key, f32Points);
                    try
                    {
                        linkF32 = CurveFit.FitLinear(points);
                        result["link f32"] = $"{f32Key}, {points.Count} points, rms error {Rms(linkF32, points):P1}{(linkRanks.ContainsKey(f32Key) ? deviceOnly : "")} (the combine's F32 rows)";
                    }
                    catch (ArgumentException e)
                    {
                        result["link f32"] = "not fitted: " + e.Message.Split(" (Parameter", StringSplitOptions.None)[0] + "; F32 rows at the link's rate";
                    }
                }
                else
                    result["link f32"] = $"not measured (no F32 rows of {best.Key}): F32 rows at the link's rate";
            }
        }
        string Missing(string part)
        {
            if (fallback is null)
                throw new InvalidDataException($"no file measures the {part} part of the model (and no fallback params were given)");
            return $"from {fallbackName}: {fallback.Sources.GetValueOrDefault(part, "?")}";
        }
        var denseCurves = dense.ToDictionary(x => x.Key, x => DenseGemmCurve.From(x.Value));
        result["dense"] = denseCurves.Count > 0
            ? $"{string.Join(", ", sources["dense"])}: {string.Join("; ", denseCurves.Select(c => $"{c.Key} at {string.Join("/", c.Value.Rows)} rows"))}"
            : fallback?.DenseGemm is { Count: > 0 } ? $"from {fallbackName}: {fallback.Sources.GetValueOrDefault("dense", "?")}"
            : "not measured (no dense_gemm sweep): router and shared-expert calls by the grouped fit";
        foreach (var part in new[] { "gemm", "link", "routing", "movement" })
            if (!result.ContainsKey(part))
                result[part] = Missing(part);
        return new ScaleParams
        {
            Gemm = g ?? fallback!.Gemm,
            GemmByShape = g is not null ? byShape : new Dictionary<string, GemmParams>(fallback!.GemmByShape),
            GemvByShape = g is not null ? gemvFits : new Dictionary<string, GemmParams>(fallback!.GemvByShape),
            Link = link ?? fallback!.Link,
            LinkF32 = link is not null ? linkF32 : fallback!.LinkF32,
            DenseGemm = denseCurves.Count > 0 ? denseCurves : new Dictionary<string, DenseGemmCurve>(fallback?.DenseGemm ?? new()),
            Routing = route ?? fallback!.Routing,
            Movement = move ?? fallback!.Movement,
            LinkNominalGBs = link is not null ? LinkPreset.H200NvlinkGBs : fallback!.LinkNominalGBs,
            Host = hostFit,
            Sources = result,
        };
    }

    /// <summary>
    /// Rows of the wgmma grouped GEMM's row tile (GroupedGemmWgmma.TileRows): every expert's last tile is computed whole,
    /// so the matrix units do the work of whole tiles. Below a tile per expert the GEMMs stream weights for longer than
    /// they compute (a tile of 128 rows is 128 flop per weight byte, under the H200's ~200), so only experts of more than
    /// 128 rows feel the padding, e.g. 164 rows cost the flops of 256.
    /// </summary>
    public const int GemmTileRows = 128;

    /// <summary>
    /// Rows the expert GEMMs compute for <paramref name="rows"/> rows over <paramref name="active"/> hit experts: each
    /// expert's rows rounded up to whole <see cref="GemmTileRows"/> tiles, the rows taken as spread evenly over the hit
    /// experts (exact for the sweeps' equal rows per expert; the EP layer bench records no per-expert counts, so its
    /// validation uses this estimate, while the simulation counts tiles from its sampled per-expert rows).
    /// </summary>
    public static double TiledRows(double rows, double active)
    {
        if (rows <= 0 || active <= 0)
            return 0;
        return active * Math.Ceiling(rows / active / GemmTileRows - 1e-9) * GemmTileRows;
    }

    /// <summary>
    /// Rows under which a grouped call with no more rows than experts goes to the decode GEMV in the runtime
    /// (GroupedGemmGemv.ChosenFor: under GroupedGemmGemv.SmallCallRows, 64, whatever K).
    /// </summary>
    public const int GemvMaxRows = 64;

    /// <summary>Whether the runtime runs an expert call of <paramref name="rows"/> rows over <paramref name="experts"/> experts on the decode GEMV.</summary>
    public static bool TakesGemv(double rows, double experts) => rows > 0 && rows < GemvMaxRows && rows <= experts;

    /// <summary>Flops of the expert GEMMs (gate_up [2I, H] and down [H, I]) on tiled rows: 2 * tiled rows * 3 * H * I.</summary>
    public static double ExpertFlops(ModelConfig c, double rows, double active) => 2 * TiledRows(rows, active) * 3.0 * c.HiddenSize * c.MoeIntermediateSize;

    /// <summary>Bytes of one expert's gate_up and down weights in bf16.</summary>
    public static double ExpertBytes(ModelConfig c) => 3.0 * c.HiddenSize * c.MoeIntermediateSize * 2;

    private static readonly string[] HostParts = ["launch", "copy", "event", "collective"];

    /// <summary>Marks the all-to-all rows of F32 payloads (the combine's) in the link keys: "alltoall ours f32".</summary>
    private const string F32Suffix = " f32";

    /// <summary>
    /// Which host part a host_launch row measures and how many of it one call issues: "ranks=R" an all-to-allv over R ranks
    /// (collective, per rank); else launches, copies or events, whichever alone is non-zero (rows mixing kinds are skipped).
    /// </summary>
    private static (string Part, double Count)? HostPart(string shape)
    {
        var counts = HostCount().Matches(shape).ToDictionary(m => m.Groups[1].Value, m => Number(m.Groups[2].Value));
        if (counts.GetValueOrDefault("ranks") > 0)
            return ("collective", counts["ranks"]);
        var nonZero = counts.Where(c => c.Key != "ranks" && c.Value > 0).ToList();
        if (nonZero.Count != 1)
            return null;
        return (nonZero[0].Key switch { "launches" => "launch", "copies" => "copy", _ => "event" }, nonZero[0].Value);
    }

    /// <summary>The phase's whole-phase host cost when the sweep timed it (null: priced op by op, as in files before it), with a note.</summary>
    private static HostPhaseCost? FitPhase(Dictionary<string, List<(double, double)>> phases, string phase, string unit, List<string> notes)
    {
        if (!phases.TryGetValue(phase, out var points))
            return null;
        var cost = HostPhaseCost.Fit(points);
        double rms = CurveFit.RmsRelativeError(points.Select(x => (cost.Us(x.Item1), x.Item2)));
        notes.Add(string.Create(CultureInfo.InvariantCulture, $"{phase} phase {cost.FixedUs:F1} us + {cost.PerUnitUs:F3} us per {unit} ({points.Count} rows, rms error {rms:P1})"));
        return cost;
    }

    /// <summary>The <see cref="HostParams"/> member a host part ("launch", "copy", "event", "collective") fits.</summary>
    private static string HostParameter(string part) => part switch
    {
        "launch" => nameof(HostParams.LaunchUs),
        "copy" => nameof(HostParams.CopyUs),
        "event" => nameof(HostParams.EventUs),
        _ => nameof(HostParams.CollectivePerRankUs),
    };

    /// <summary>The whole-phase host costs by member name (null when not measured).</summary>
    private static (string Name, HostPhaseCost? Cost)[] PhaseParameters(HostParams? h) =>
    [
        (nameof(HostParams.RoutePhase), h?.RoutePhase), (nameof(HostParams.ExpertsPhase), h?.ExpertsPhase),
        (nameof(HostParams.RoutePhaseAfterUpload), h?.RoutePhaseAfterUpload), (nameof(HostParams.ExpertsPhaseBusy), h?.ExpertsPhaseBusy),
    ];

    private static double HostPartOf(HostParams h, string part) => part switch
    {
        "launch" => h.LaunchUs,
        "copy" => h.CopyUs,
        "event" => h.EventUs,
        _ => h.CollectivePerRankUs,
    };

    private static ModelConfig? Preset(string name) => LayerPresets.Names.Contains(name) ? LayerPresets.Get(name) : null;

    private static double GemmRms(GemmParams fit, IEnumerable<(double WeightBytes, double Flops, double Us)> points) =>
        CurveFit.RmsRelativeError(points.Select(p => (fit.Us(p.WeightBytes, p.Flops), p.Us)));

    private static double Number(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    private static double Rms(LinearCost fit, List<(double Bytes, double Us)> points) => CurveFit.RmsRelativeError(points.Select(p => (fit.Us(p.Bytes), p.Us)));

    private static void Add(Dictionary<string, List<(double, double)>> map, string key, (double, double) point)
    {
        if (!map.TryGetValue(key, out var list))
            map[key] = list = new List<(double, double)>();
        list.Add(point);
    }
}
