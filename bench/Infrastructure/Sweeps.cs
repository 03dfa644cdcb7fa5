using System.Text.Json;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>One row of a sweep table: what was run, how long it took, and how that compares with the floor.</summary>
public sealed record SweepRow(string Name, string Shape, double Ms, double Bytes, double Flops, double FloorMs, string Note = "")
{
    public double GBps => Bytes > 0 ? Bytes / (Ms * 1e-3) / 1e9 : 0;
    public double Tflops => Flops > 0 ? Flops / (Ms * 1e-3) / 1e12 : 0;
    public double OfFloor => FloorMs > 0 ? FloorMs / Ms : 0;
}

/// <summary>
/// Registry of sweep tables. Each sweep takes the accelerator and returns its rows; the runner prints
/// them as one table and optionally writes JSON (for docs/PERFORMANCE.md and comparisons with PyTorch).
/// </summary>
public static class Sweeps
{
    public static readonly Dictionary<string, Func<Accelerator, IReadOnlyList<SweepRow>>> All = new()
    {
        ["copy"] = CopySweep.Run,
        ["eplb_balance"] = Eplb.EplbBalanceSweep.Run,
        ["grouped_gemm"] = Kernels.GroupedGemmSweep.Run,
        ["grouped_gemm_ep"] = Kernels.GroupedGemmEpSweep.Run,
        ["dense_gemm"] = Kernels.DenseGemmSweep.Run,
        ["token_ops"] = MoeRuntime.Benchmarks.Kernels.TokenOpsSweep.Run,
        ["routing"] = MoeRuntime.Benchmarks.Kernels.TokenOpsSweep.RunRouting,
        ["moe_layer"] = MoeRuntime.Benchmarks.Runtime.MoeLayerSweep.Run,
        ["host_launch"] = MoeRuntime.Benchmarks.Runtime.HostLaunchSweep.Run,
    };

    public static int Run(string[] args)
    {
        string? name = args.FirstOrDefault(a => !a.StartsWith("--", StringComparison.Ordinal));
        string device = Option(args, "--device") ?? "cuda:0";
        string? json = Option(args, "--json");
        string? reference = Option(args, "--reference");
        var names = name is null or "all" ? All.Keys.ToList() : name.Split(',').ToList();
        var unknown = names.Where(n => !All.ContainsKey(n)).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"unknown sweep(s): {string.Join(", ", unknown)}; known: {string.Join(", ", All.Keys)}");
            return 2;
        }
        using var context = new AcceleratorContext();
        var accelerator = context.Get(device);
        var rows = new List<SweepRow>();
        foreach (var n in names)
        {
            Console.WriteLine($"## {n} on {accelerator.Name} ({accelerator.Info.Name}), {DateTime.UtcNow:yyyy-MM-dd}");
            var table = All[n](accelerator);
            Print(table);
            rows.AddRange(table);
        }
        if (reference is not null)
            PrintSpeedups(rows, reference);
        if (json is not null)
            File.WriteAllText(json, JsonSerializer.Serialize(new { device = accelerator.Info.Name, date = DateTime.UtcNow.ToString("yyyy-MM-dd"), rows = rows.Select(r => new { r.Name, r.Shape, r.Ms, r.GBps, r.Tflops, r.FloorMs, r.OfFloor, r.Note }) }, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    public static void Print(IReadOnlyList<SweepRow> rows)
    {
        Console.WriteLine($"| {"name",-28} | {"shape",-34} | {"time (us)",10} | {"GB/s",8} | {"TFLOP/s",8} | {"floor (us)",10} | {"of floor",8} | note");
        Console.WriteLine($"|{new string('-', 30)}|{new string('-', 36)}|{new string('-', 12)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 12)}|{new string('-', 10)}|-----");
        foreach (var r in rows)
            Console.WriteLine($"| {r.Name,-28} | {r.Shape,-34} | {r.Ms * 1e3,10:F2} | {r.GBps,8:F0} | {r.Tflops,8:F1} | {r.FloorMs * 1e3,10:F2} | {r.OfFloor,8:P1} | {r.Note}");
    }

    /// <summary>
    /// Our rows against a reference run's JSON (bench/reference/token_ops.py: rows of Name, Shape, Us): rows pair
    /// by shape and the first word of the name ("routing", "permute", "combine", ...), as the two sides name
    /// their implementations differently. Speed-up = reference time / ours.
    /// </summary>
    public static void PrintSpeedups(IReadOnlyList<SweepRow> rows, string referencePath)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(referencePath));
        var root = document.RootElement;
        var reference = new Dictionary<string, (string Name, double Us)>();
        foreach (var row in root.GetProperty("rows").EnumerateArray())
            if (row.TryGetProperty("Name", out var name) && row.TryGetProperty("Shape", out var shape) && row.TryGetProperty("Us", out var us))
                reference.TryAdd(PairKey(name.GetString() ?? "", shape.GetString() ?? ""), (name.GetString() ?? "", us.GetDouble()));
        string device = root.TryGetProperty("device", out var d) ? d.GetString() ?? "?" : "?";
        Console.WriteLine();
        Console.WriteLine($"## against {Path.GetFileName(referencePath)} (measured on {device})");
        Console.WriteLine($"| {"name",-28} | {"shape",-34} | {"ours (us)",10} | {"reference",-34} | {"ref (us)",10} | {"speed-up",8}");
        Console.WriteLine($"|{new string('-', 30)}|{new string('-', 36)}|{new string('-', 12)}|{new string('-', 36)}|{new string('-', 12)}|{new string('-', 9)}");
        foreach (var r in rows)
            if (reference.TryGetValue(PairKey(r.Name, r.Shape), out var other))
                Console.WriteLine($"| {r.Name,-28} | {r.Shape,-34} | {r.Ms * 1e3,10:F2} | {other.Name,-34} | {other.Us,10:F2} | {other.Us / (r.Ms * 1e3),7:F1}x");
    }

    private static string PairKey(string name, string shape) => $"{name.Split(' ')[0]}|{shape}";

    public static string? Option(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}

/// <summary>The copy ceiling: device-to-device copies, bytes read plus written.</summary>
internal static class CopySweep
{
    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        var rows = new List<SweepRow>();
        foreach (long bytes in new long[] { 1 << 20, 64 << 20, 1L << 30 })
        {
            if (accelerator.Kind == AcceleratorKind.Cpu && bytes > 64 << 20)
                continue;
            using var a = accelerator.Allocate<byte>(bytes);
            using var b = accelerator.Allocate<byte>(bytes);
            a.FillBytes(0x5A);
            double ms = DeviceTimer.MedianMs(accelerator, s => b.CopyFrom(a, s), inner: 5);
            rows.Add(new SweepRow("d2d copy", $"{bytes >> 20} MiB", ms, 2.0 * bytes, 0, 0));
        }
        return rows;
    }
}
