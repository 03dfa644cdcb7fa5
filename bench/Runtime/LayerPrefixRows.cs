using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Benchmarks.Kernels;
using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// MOE_SWEEP_PREFIXES=1 in <c>sweep moe_layer</c>: what each phase costs inside a graph replay, where the phase timer's
/// device events (eager, one kernel at a time) cannot say. The forward's main-stream phases are cut after each one
/// (router GEMM and routing, + permute, + gate_up, + down, + combine), each prefix replayed from a CUDA graph cycling the
/// sweep's layers; the difference between two rows is what the later phase adds to a replay. The last row is the whole
/// forward (its shared experts on their own stream), so it minus the combine row is what the shared experts add.
/// With the wgmma trace on (MOE_GROUPED_GEMM_WGMMA_TRACE=1), gate_up and down on this routing are traced too (WgmmaTrace).
/// </summary>
internal static class LayerPrefixRows
{
    /// <summary>MOE_SWEEP_PREFIXES: 1 adds the rows, unset or 0 does not.</summary>
    public static bool Requested => Environment.GetEnvironmentVariable("MOE_SWEEP_PREFIXES")?.Trim() switch
    {
        null or "" or "0" => false,
        "1" => true,
        var value => throw new ArgumentException($"MOE_SWEEP_PREFIXES='{value}': expected 1 (graph-replayed prefixes of the forward) or 0"),
    };

    private static readonly (string Name, MoeLayerPhase Last)[] Prefixes =
    [
        ("router GEMM + routing", MoeLayerPhase.TopKRouting),
        ("+ permute", MoeLayerPhase.Permute),
        ("+ gate_up", MoeLayerPhase.ExpertsGateUp),
        ("+ down", MoeLayerPhase.ExpertsDown),
        ("+ combine (no shared experts)", MoeLayerPhase.Combine),
    ];

    /// <summary>
    /// The prefix rows of one preset and token count (<paramref name="layers"/> cycled with their <paramref name="workspaces"/>),
    /// graph-replayed on a GPU (10 forwards a replay), eager on the CPU; the whole forward last, timed the same way.
    /// </summary>
    public static IEnumerable<SweepRow> Measure(Accelerator accelerator, string preset, string shape, MoeLayer[] layers, MoeWorkspace[] workspaces,
                                                MemoryBuffer hidden, MemoryBuffer<float> output)
    {
        var rows = new List<SweepRow>();
        string timing = accelerator.Kind == AcceleratorKind.Cuda ? "cuda graph" : "eager";
        double? previous = null;
        foreach (var (name, last) in Prefixes)
        {
            double ms = Time(accelerator, layers, (l, s) => layers[l].ForwardThrough(last, hidden, output, workspaces[l], null, s));
            rows.Add(new SweepRow($"{preset} prefix: {name}", shape, ms, 0, 0, 0,
                previous is { } p ? $"{timing}, adds {(ms - p) * 1e3:F1} us" : timing));
            previous = ms;
        }
        double whole = Time(accelerator, layers, (l, s) => layers[l].Forward(hidden, output, workspaces[l], s));
        rows.Add(new SweepRow($"{preset} prefix: whole forward", shape, whole, 0, 0, 0,
            $"{timing}, shared experts on their stream add {(whole - previous!.Value) * 1e3:F1} us"));
        // The expert GEMMs alone on each layer's routing: replayed cycling the layers, then on the first layer only (what
        // the GEMMs cost outside the forward's graph; the first layer's row reads only its own router's experts).
        for (int l = 0; l < layers.Length; l++)
            layers[l].RouteAndPermute(hidden, workspaces[l], accelerator.DefaultStream);
        // Each layer's router hits its own experts, so the cycled rows and the first layer's read different bytes.
        string perLayer = string.Join(", ", workspaces.Select(w => w.RoutedCounts.ToArray().Count(c => c > 0)));
        foreach (var (call, run) in new (string, Action<MoeLayer, MoeWorkspace, AcceleratorStream>)[]
                 { ("gate_up", (l, w, s) => l.RunRoutedGateUp(w, s)), ("down", (l, w, s) => l.RunRoutedDown(w, s)) })
        {
            double cycled = Time(accelerator, layers, (l, s) => run(layers[l], workspaces[l], s));
            rows.Add(new SweepRow($"{preset} {call} alone", shape, cycled, 0, 0, 0, $"{timing}, {layers.Length} layers cycled (experts hit: {perLayer})"));
            if (layers.Length > 1)
                rows.Add(new SweepRow($"{preset} {call} alone", shape, Time(accelerator, layers[..1], (_, s) => run(layers[0], workspaces[0], s)), 0, 0, 0,
                    $"{timing}, the first layer only"));
        }
        // The traced build on these expert GEMMs (the layer's own expert set, not the grouped GEMM sweep's uniform one).
        WgmmaTrace.Write(accelerator, $"{preset} layer gate_up {shape}", s => layers[0].RunRoutedGateUp(workspaces[0], s));
        WgmmaTrace.Write(accelerator, $"{preset} layer down {shape}", s => layers[0].RunRoutedDown(workspaces[0], s));
        return rows;
    }

    private static double Time(Accelerator accelerator, MoeLayer[] layers, Action<int, AcceleratorStream> forward)
    {
        int next = 0;
        return DeviceTimer.MedianMs(accelerator, s =>
        {
            int l = next;
            next = (next + 1) % layers.Length;
            forward(l, s);
        }, warmup: 3, samples: 20, inner: 10, useGraph: true);
    }
}
