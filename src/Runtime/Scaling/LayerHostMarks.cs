using System.Globalization;
using System.Text.Json.Nodes;
using MoeRuntime.Runtime.Parallel;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// The host enqueue of an EP rank's route and experts phases, read from the EP layer bench's own host marks
/// (<c>moe bench layer --parallel ep --json</c>, kind "ep_layer": rows[].PerRank[] with HostBeginUs and HostEndUs, the one host
/// thread's stopwatch at each phase's begin and end mark, per rank) and fitted fixed + per token (route) or per received row
/// (experts), as the host_launch sweep's whole-phase rows are (<see cref="HostPhaseCost"/>). They take the place of the rows
/// that price the phases as the layer issues them: <see cref="HostParams.RoutePhaseAfterUpload"/> (the layer's route follows
/// its input upload) and <see cref="HostParams.ExpertsPhaseBusy"/> (its experts follow the dispatch's kernel).
/// Why: on the twelfth session's build the sweep's stand-alone replay of a phase took 12-24 us where the layer's marks show
/// 34-83 us (docs/SCALING.md); the marks measure the enqueue where the model spends it.
/// <code>
/// span of a mark   HostEndUs - HostBeginUs = begin event record + the phase's enqueue + end event record
///                  (EventPhaseTimer stamps the host before the begin record and after the end record)
/// point            (the rank's tokens or rows, span - 2 * HostParams.EventUs): the model adds each mark's record apart
/// </code>
/// Skipped: a rank without tokens (route) or rows (experts), which the model prices 0; and the experts of a run enqueued
/// interleaved, whose per-rank spans also hold the other ranks' steps (only a ranked run's span is one rank's phase).
/// </summary>
public static class LayerHostMarks
{
    /// <summary>One file's marks: (tokens, span us) of every rank's route, (rows, span us) of every rank's experts.</summary>
    public sealed record Marks(string File, List<(double Units, double SpanUs)> Route, List<(double Units, double SpanUs)> Experts, string? Skipped);

    /// <summary>The marks of one ep_layer file; throws when it has none (runs before the per-rank marks, or a CPU run without them).</summary>
    public static Marks Read(JsonNode root, string path)
    {
        ArgumentNullException.ThrowIfNull(root);
        string file = Path.GetFileName(path);
        bool ranked = root["enqueue"]?.GetValue<string>() is not { } order || EpEnqueue.Parse(order) == EpEnqueueOrder.Ranked;
        var route = new List<(double, double)>();
        var experts = new List<(double, double)>();
        int marks = 0;
        foreach (var row in root["rows"]?.AsArray() ?? [])
        {
            double[] Values(string name) => row![name]?.AsArray().Select(v => v!.GetValue<double>()).ToArray()
                ?? throw new InvalidDataException($"{path}: a row without \"{name}\"");
            if (row!["PerRank"]?.AsArray() is not { Count: > 0 } perRank)
                continue;
            double[] tokens = Values("TokensPerRank"), rows = Values("RowsPerRank");
            foreach (var mark in perRank)
            {
                if (mark!["HostBeginUs"] is not { } begin || mark["HostEndUs"] is not { } end)
                    continue;
                marks++;
                int rank = mark["Rank"]!.GetValue<int>();
                double span = end.GetValue<double>() - begin.GetValue<double>();
                switch (mark["Phase"]!.GetValue<string>())
                {
                    case "RouteAndPermute" when tokens[rank] > 0:
                        route.Add((tokens[rank], span));
                        break;
                    case "Experts" when rows[rank] > 0 && ranked:
                        experts.Add((rows[rank], span));
                        break;
                }
            }
        }
        if (marks == 0)
            throw new InvalidDataException($"{path}: an EP layer run without per-rank host marks (rows[].PerRank[] with HostBeginUs, HostEndUs): "
                + "nothing to fit the host term from; such a run is for --validate only");
        return new Marks(file, route, experts, ranked ? null : $"{file}: experts not used (enqueued interleaved: a rank's span holds the other ranks' steps)");
    }

    /// <summary>
    /// <paramref name="host"/> with the route after upload and the busy experts phase fitted from <paramref name="files"/>' marks
    /// (each phase only when some file has a point of it; otherwise it stays as given); <paramref name="fitted"/> names the
    /// parameters replaced, <paramref name="note"/> says what was fitted from which files.
    /// </summary>
    public static HostParams Fit(IReadOnlyList<Marks> files, HostParams host, out List<string> fitted, out string note)
    {
        ArgumentNullException.ThrowIfNull(files);
        ArgumentNullException.ThrowIfNull(host);
        var notes = new List<string>();
        fitted = [];
        HostPhaseCost? Phase(string name, string unit, Func<Marks, List<(double Units, double SpanUs)>> of, List<string> names)
        {
            // Each mark's two event records are the model's to add: the phase's enqueue is what is left (kept > 0 for the fit).
            var points = files.SelectMany(of).Select(p => (p.Units, Us: Math.Max(p.SpanUs - 2 * host.EventUs, 0.01))).ToList();
            if (points.Count == 0)
            {
                notes.Add($"{name}: no marks (kept as given)");
                return null;
            }
            var cost = HostPhaseCost.Fit(points);
            double rms = CurveFit.RmsRelativeError(points.Select(p => (cost.Us(p.Units), p.Us)));
            names.Add(name);
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"{name} {cost.FixedUs:F1} us + {cost.PerUnitUs:F3} us per {unit} ({points.Count} rank marks less 2 x {host.EventUs:F2} us of event records, rms error {rms:P1})"));
            return cost;
        }
        var route = Phase(nameof(HostParams.RoutePhaseAfterUpload), "token", f => f.Route, fitted);
        var experts = Phase(nameof(HostParams.ExpertsPhaseBusy), "row", f => f.Experts, fitted);
        notes.AddRange(files.Select(f => f.Skipped).OfType<string>());
        note = $"{string.Join(", ", files.Select(f => f.File))}: {string.Join("; ", notes)}";
        return host with { RoutePhaseAfterUpload = route ?? host.RoutePhaseAfterUpload, ExpertsPhaseBusy = experts ?? host.ExpertsPhaseBusy };
    }
}
