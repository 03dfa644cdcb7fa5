using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Benchmarks.Kernels;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Benchmarks.Runtime;

/// <summary>
/// Sweep <c>moe_layer</c>: the whole single-accelerator MoE layer (router GEMM, routing, permute, grouped GEMMs with
/// fused SiLU-and-mul, combine, shared experts) at the <see cref="LayerPresets"/> shapes, bf16, random weights made
/// on the device. T = 1, 16, 128 replayed from a CUDA graph and eagerly (the faster counts), larger T eager.
/// Floor: active-weight bytes (router + distinct experts the routing hit + shared) / copy bandwidth, or the expert
/// FLOPs (2 * 3 * H * I per token and choice, + shared) / 799 TFLOP/s, whichever is larger.
/// Compare with bench/reference/moe_layer.py (the PyTorch composite, same presets and T).
/// MOE_SWEEP_LAYERS=N (1..16) times forwards that cycle through N layers of different weights (a model's decode: each
/// layer's weights come from DRAM, not from the L2 the previous forward of the same layer left them in).
/// MOE_SWEEP_SLICE=N (1..8) runs one tensor-parallel rank's slice of N (I / N of every routed and shared expert, its
/// workspace a TP rank's: MOE_DECODE_FUSED_TP): the rank's kernels, and their trace, without the AllReduce.
/// On the CPU: the tiny preset at T = 1, 16. On a GPU, MOE_SWEEP_MODELS narrows the rows and MOE_SWEEP_TOKENS lists the token counts
/// (any, e.g. 1,2,4,8 for decode batches; <see cref="SweepFilter"/>).
/// MOE_SWEEP_PREFIXES=1 adds, at the graph-replayed token counts, the forward cut after each phase (<see cref="LayerPrefixRows"/>).
/// </summary>
internal static class MoeLayerSweep
{
    private static readonly string[] GpuPresets = ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3"];
    private static readonly int[] GpuTokens = [1, 16, 128, 1024, 8192];
    private static readonly int[] CpuTokens = [1, 16];
    private const double DenseBf16Flops = 799e12;

    /// <summary>MOE_SWEEP_LAYERS: layers of different weights the forwards cycle through (1 when unset).</summary>
    private static int LayerCount => CountFromEnvironment("MOE_SWEEP_LAYERS", 16, "layers");

    /// <summary>MOE_SWEEP_SLICE: the tensor-parallel ranks whose one slice the sweep runs (1 when unset: the whole layer).</summary>
    private static int SliceCount => CountFromEnvironment("MOE_SWEEP_SLICE", 8, "ranks");

    /// <summary>A count 1..<paramref name="max"/> from the variable <paramref name="name"/>; 1 when unset; else the error naming it.</summary>
    private static int CountFromEnvironment(string name, int max, string what)
    {
        string? value = Environment.GetEnvironmentVariable(name);
        return string.IsNullOrWhiteSpace(value) ? 1
            : int.TryParse(value, out int n) && n >= 1 && n <= max ? n
            : throw new ArgumentException($"{name}='{value}': expected 1 to {max} {what}");
    }

    /// <summary>Disposes a list's items at the end of a using block.</summary>
    private sealed class Releaser(IEnumerable<IDisposable> items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items)
                item.Dispose();
        }
    }

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        var rows = new List<SweepRow>();
        using var wgmmaTrace = WgmmaTrace.Attach(accelerator); // MOE_GROUPED_GEMM_WGMMA_TRACE=1: the prefix rows trace the expert GEMMs
        foreach (var preset in cpu ? ["tiny"] : SweepFilter.Models(GpuPresets, p => p))
        {
            var config = LayerPresets.Get(preset);
            int slice = cpu ? 1 : SliceCount;
            if (config.MoeIntermediateSize % slice != 0 || config.SharedIntermediateSize % slice != 0)
                throw new ArgumentException($"MOE_SWEEP_SLICE={slice}: {preset}'s intermediate sizes do not split evenly");
            config = config with { MoeIntermediateSize = config.MoeIntermediateSize / slice, SharedIntermediateSize = config.SharedIntermediateSize / slice };
            // MOE_SWEEP_LAYERS=N: N layers of different random weights, forwards cycling through them (as a model's decode
            // steps through its layers: no layer's weights are still in L2 when its turn comes again).
            int layerCount = cpu ? 1 : LayerCount;
            var allWeights = new List<DeviceMoeWeights>();
            using var release = new Releaser(allWeights);
            for (int l = 0; l < layerCount; l++)
                allWeights.Add(DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2026 + l));
            var weights = allWeights[0];
            var layers = allWeights.Select(w => new MoeLayer(w)).ToArray();
            var layer = layers[0];
            foreach (int tokens in cpu ? CpuTokens : SweepFilter.TokensAsListed(GpuTokens))
            {
                int h = config.HiddenSize;
                var workspaces = allWeights.Select(w => new MoeWorkspace(w, tokens, tensorParallelRank: slice > 1)).ToArray();
                using var releaseWorkspaces = new Releaser(workspaces);
                var workspace = workspaces[0];
                var random = new Random(tokens);
                var values = new float[tokens * h];
                for (int i = 0; i < values.Length; i++)
                    values[i] = 2 * random.NextSingle() - 1;
                using var hidden = DeviceMoeWeights.UploadFloats(accelerator, values, DType.BF16);
                using var output = accelerator.Allocate<float>((long)tokens * h);
                // T <= 128: replayed from a CUDA graph (10 forwards a replay) and eagerly (one forward a sample, as the
                // PyTorch reference times its eager forward); the faster is the row's time (which one, and the other, in the
                // note): on an H200 the graph was not always the faster (DeepSeek-V3 T=128).
                bool both = !cpu && tokens <= 128;
                int next = 0;
                void Forward(AcceleratorStream stream)
                {
                    int l = next;
                    next = (next + 1) % layers.Length;
                    layers[l].Forward(hidden, output, workspaces[l], stream);
                }
                (string Name, double Ms, string Timing) Time(string name)
                {
                    double ms = DeviceTimer.MedianMs(accelerator, Forward, warmup: 3, samples: cpu ? 5 : 20, inner: both ? 10 : 1, useGraph: both);
                    if (!both)
                        return (name, ms, "eager");
                    double eagerMs = DeviceTimer.MedianMs(accelerator, Forward, warmup: 3, samples: 20, inner: 1);
                    return (name, Math.Min(ms, eagerMs), eagerMs < ms ? $"eager (graph {ms:F3} ms)" : $"cuda graph (eager {eagerMs:F3} ms)");
                }
                // MOE_SWEEP_SCHEDULES: the layer under each wgmma work order, alternating (WgmmaOrders).
                var times = WgmmaOrders.FromEnvironment is { } orders && !cpu
                    ? WgmmaOrders.MeasureEach(orders, Time, $"{preset} layer") : [Time($"{preset} layer")];
                // The floor counts the experts the routing really hit (random routers are not uniform): each layer's router
                // hits its own, so the mean over the layers timed. Every order routes alike.
                double active = workspaces.Average(w => w.RoutedCounts.ToArray().Count(c => c > 0));
                long bytes = LayerPresets.ActiveWeightBytes(config, active, DType.BF16);
                double flops = 2.0 * 3 * h * ((double)tokens * config.TopK * config.MoeIntermediateSize + (double)tokens * config.SharedIntermediateSize);
                double floorMs = Math.Max(bytes / bandwidth, flops / DenseBf16Flops) * 1e3;
                string notes = "";
                if (layer.RunsFusedDecode(workspace))
                {
                    DecodeTrace.Print(accelerator, $"{preset} T={tokens}", Forward); // MOE_DECODE_TRACE=1 only
                    notes += ", fused decode kernel";
                }
                if (layers.Length > 1)
                    notes += $", {layers.Length} layers cycled";
                if (slice > 1)
                    notes += $", one TP rank's slice of {slice}";
                string shape = $"T={tokens} H={h} I={config.MoeIntermediateSize} E={config.NumExperts} k={config.TopK} active={active:0.##}";
                foreach (var (name, ms, timing) in times)
                    rows.Add(new SweepRow(name, shape, ms, bytes, flops, floorMs, timing + notes));
                if ((both || cpu) && LayerPrefixRows.Requested && !layer.RunsFusedDecode(workspace))
                    rows.AddRange(LayerPrefixRows.Measure(accelerator, preset, shape, layers, workspaces, hidden, output));
            }
        }
        return rows;
    }
}
