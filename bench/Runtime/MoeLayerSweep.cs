using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
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
/// On the CPU: the tiny preset at T = 1, 16. On a GPU, MOE_SWEEP_MODELS narrows the rows and MOE_SWEEP_TOKENS lists the token counts
/// (any, e.g. 1,2,4,8 for decode batches; <see cref="SweepFilter"/>).
/// </summary>
internal static class MoeLayerSweep
{
    private static readonly string[] GpuPresets = ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3"];
    private static readonly int[] GpuTokens = [1, 16, 128, 1024, 8192];
    private static readonly int[] CpuTokens = [1, 16];
    private const double DenseBf16Flops = 799e12;

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        var rows = new List<SweepRow>();
        foreach (var preset in cpu ? ["tiny"] : SweepFilter.Models(GpuPresets, p => p))
        {
            var config = LayerPresets.Get(preset);
            using var weights = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2026);
            var layer = new MoeLayer(weights);
            foreach (int tokens in cpu ? CpuTokens : SweepFilter.TokensAsListed(GpuTokens))
            {
                int h = config.HiddenSize;
                using var workspace = new MoeWorkspace(weights, tokens);
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
                void Forward(AcceleratorStream stream) => layer.Forward(hidden, output, workspace, stream);
                double ms = DeviceTimer.MedianMs(accelerator, Forward, warmup: 3, samples: cpu ? 5 : 20, inner: both ? 10 : 1, useGraph: both);
                string timing = both ? "cuda graph" : "eager";
                if (both)
                {
                    double eagerMs = DeviceTimer.MedianMs(accelerator, Forward, warmup: 3, samples: 20, inner: 1);
                    timing = eagerMs < ms ? $"eager (graph {ms:F3} ms)" : $"cuda graph (eager {eagerMs:F3} ms)";
                    ms = Math.Min(ms, eagerMs);
                }
                // The floor counts the experts this routing really hit (random routers are not uniform).
                int active = workspace.RoutedCounts.ToArray().Count(c => c > 0);
                long bytes = LayerPresets.ActiveWeightBytes(config, (double)active, DType.BF16);
                double flops = 2.0 * 3 * h * ((double)tokens * config.TopK * config.MoeIntermediateSize + (double)tokens * config.SharedIntermediateSize);
                double floorMs = Math.Max(bytes / bandwidth, flops / DenseBf16Flops) * 1e3;
                if (layer.RunsFusedDecode(workspace))
                    DecodeTrace.Print(accelerator, $"{preset} T={tokens}", Forward); // MOE_DECODE_TRACE=1 only
                rows.Add(new SweepRow($"{preset} layer", $"T={tokens} H={h} I={config.MoeIntermediateSize} E={config.NumExperts} k={config.TopK} active={active}",
                    ms, bytes, flops, floorMs, timing));
            }
        }
        return rows;
    }
}
