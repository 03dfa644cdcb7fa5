using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Bench;

/// <summary>
/// One row of <c>moe bench layer --phases</c>: the median device time of each phase of an eager forward, the median
/// of the whole forward (events around it), and the experts the routing hit.
/// </summary>
/// <remarks>
/// <see cref="EnqueueUs"/>: the host's median time to enqueue a forward. Below <see cref="LayerPhaseBench.DelayUs"/> the
/// phases are device time only.
/// <see cref="PhaseSumUs"/> is the median of each forward's sum of phases (not the sum of the medians): a forward's
/// phases lie inside its total, so this median is never above <see cref="TotalUs"/>. With several layers cycled,
/// <see cref="ActiveExperts"/> and <see cref="FloorUs"/> are their mean; <see cref="ActivePerLayer"/> has each.
/// </remarks>
internal sealed record LayerPhaseRow(string Preset, int Tokens, double TotalUs, double PhaseSumUs, Dictionary<string, double> PhaseUs, int ActiveExperts, double FloorUs,
    int[] ActivePerLayer, double EnqueueUs);

/// <summary>
/// <c>moe bench layer --phases</c>: eager forwards of one <see cref="MoeLayer"/> with a device event at each phase
/// boundary (<see cref="LayerPhaseTimer"/>), median per phase over the samples. Eager, not a graph. Each sampled forward
/// is enqueued behind a <see cref="DelayUs"/> spin (<see cref="DeviceDelay"/>), so the GPU finds the whole forward queued:
/// without it, the sample's synchronisation left the GPU idle, and the first phases timed the host's launches (DeepSeek-V3's
/// router GEMM at T = 128 read 30-60 us, twentieth session). Total minus the phases' sum is the gaps between them.
/// </summary>
internal sealed class LayerPhaseBench(Accelerator accelerator, DType dtype, int warmup, int samples)
{
    /// <summary>The spin before each sampled forward: well above an eager forward's enqueue time (<see cref="LayerPhaseRow.EnqueueUs"/>).</summary>
    internal const double DelayUs = 2000;

    public IEnumerable<LayerPhaseRow> Run(string preset, DeviceMoeWeights weights, IEnumerable<int> tokenCounts) =>
        Run(preset, [weights], tokenCounts);

    /// <summary>
    /// As above with several layers of the same shapes (<c>--layers</c>): sample s is a forward of layer s mod their count,
    /// so each layer's weights come back to L2 from DRAM as in a model's decode. The row's active experts and floor are the
    /// layers' mean.
    /// </summary>
    public IEnumerable<LayerPhaseRow> Run(string preset, IReadOnlyList<DeviceMoeWeights> layerWeights, IEnumerable<int> tokenCounts)
    {
        var layers = layerWeights.Select(w => new MoeLayer(w)).ToArray();
        var config = layerWeights[0].Config;
        using var timer = new LayerPhaseTimer(accelerator);
        using var start = accelerator.CreateEvent();
        using var end = accelerator.CreateEvent();
        var stream = accelerator is CudaAccelerator ? accelerator.CreateStream() : accelerator.DefaultStream;
        try
        {
            foreach (int tokens in tokenCounts)
            {
                var workspaces = layerWeights.Select(w => new MoeWorkspace(w, tokens)).ToArray();
                try
                {
                    using var hidden = accelerator.Allocate(dtype, (long)tokens * config.HiddenSize);
                    using var output = accelerator.Allocate<float>((long)tokens * config.HiddenSize);
                    LayerBench.FillRandom(accelerator, dtype, hidden, tokens);
                    for (int i = 0; i < warmup; i++)
                        for (int l = 0; l < layers.Length; l++)
                            layers[l].Forward(hidden, output, workspaces[l], stream);
                    stream.Synchronize();
                    var phases = Enum.GetValues<MoeLayerPhase>().ToDictionary(p => p, _ => new List<double>());
                    var totals = new List<double>();
                    var sums = new List<double>();
                    var enqueues = new List<double>();
                    for (int s = 0; s < samples; s++)
                    {
                        var layer = layers[s % layers.Length];
                        layer.PhaseTimer = timer;
                        try
                        {
                            timer.Reset();
                            DeviceDelay.Enqueue(accelerator, stream, DelayUs);
                            long enqueueStart = Stopwatch.GetTimestamp();
                            start.Record(stream);
                            layer.Forward(hidden, output, workspaces[s % layers.Length], stream);
                            end.Record(stream);
                            enqueues.Add(Stopwatch.GetElapsedTime(enqueueStart).TotalMicroseconds);
                            end.Synchronize();
                        }
                        finally
                        {
                            layer.PhaseTimer = null;
                        }
                        totals.Add(end.ElapsedMillisecondsSince(start) * 1e3);
                        var read = timer.Read();
                        foreach (var (phase, us) in read)
                            phases[phase].Add(us);
                        sums.Add(read.Values.Sum());
                    }
                    var active = workspaces.Select(w => w.RoutedCounts.ToArray().Count(c => c > 0)).ToArray();
                    double floorUs = active.Average(a => LayerPresets.ActiveWeightBytes(config, (double)a, dtype)) / LayerBench.CopyBandwidth(accelerator) * 1e6;
                    yield return new LayerPhaseRow(preset, tokens, BenchMedian.Of(totals), BenchMedian.Of(sums),
                        phases.ToDictionary(p => p.Key.ToString(), p => BenchMedian.Of(p.Value)), (int)Math.Round(active.Average()), floorUs, active,
                        BenchMedian.Of(enqueues));
                }
                finally
                {
                    foreach (var workspace in workspaces)
                        workspace.Dispose();
                }
            }
        }
        finally
        {
            if (!ReferenceEquals(stream, accelerator.DefaultStream))
                stream.Dispose();
        }
    }
}
