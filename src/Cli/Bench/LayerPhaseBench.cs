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
/// <see cref="PhaseSumUs"/> is the median of each forward's sum of phases (not the sum of the medians): a forward's
/// phases lie inside its total, so this median is never above <see cref="TotalUs"/>.
/// </remarks>
internal sealed record LayerPhaseRow(string Preset, int Tokens, double TotalUs, double PhaseSumUs, Dictionary<string, double> PhaseUs, int ActiveExperts, double FloorUs);

/// <summary>
/// <c>moe bench layer --phases</c>: eager forwards of one <see cref="MoeLayer"/> with a device event at each phase
/// boundary (<see cref="LayerPhaseTimer"/>), median per phase over the samples. Eager, not a graph: a phase's time
/// includes launch gaps the host leaves inside it, and total minus the phases' sum is the gaps between them.
/// </summary>
internal sealed class LayerPhaseBench(Accelerator accelerator, DType dtype, int warmup, int samples)
{
    public IEnumerable<LayerPhaseRow> Run(string preset, DeviceMoeWeights weights, IEnumerable<int> tokenCounts)
    {
        var layer = new MoeLayer(weights);
        var config = weights.Config;
        using var timer = new LayerPhaseTimer(accelerator);
        using var start = accelerator.CreateEvent();
        using var end = accelerator.CreateEvent();
        var stream = accelerator is CudaAccelerator ? accelerator.CreateStream() : accelerator.DefaultStream;
        try
        {
            foreach (int tokens in tokenCounts)
            {
                using var workspace = new MoeWorkspace(weights, tokens);
                using var hidden = accelerator.Allocate(dtype, (long)tokens * config.HiddenSize);
                using var output = accelerator.Allocate<float>((long)tokens * config.HiddenSize);
                LayerBench.FillRandom(accelerator, dtype, hidden, tokens);
                layer.PhaseTimer = null;
                for (int i = 0; i < warmup; i++)
                    layer.Forward(hidden, output, workspace, stream);
                stream.Synchronize();
                layer.PhaseTimer = timer;
                var phases = Enum.GetValues<MoeLayerPhase>().ToDictionary(p => p, _ => new List<double>());
                var totals = new List<double>();
                var sums = new List<double>();
                try
                {
                    for (int s = 0; s < samples; s++)
                    {
                        timer.Reset();
                        start.Record(stream);
                        layer.Forward(hidden, output, workspace, stream);
                        end.Record(stream);
                        end.Synchronize();
                        totals.Add(end.ElapsedMillisecondsSince(start) * 1e3);
                        var read = timer.Read();
                        foreach (var (phase, us) in read)
                            phases[phase].Add(us);
                        sums.Add(read.Values.Sum());
                    }
                }
                finally
                {
                    layer.PhaseTimer = null;
                }
                int active = workspace.RoutedCounts.ToArray().Count(c => c > 0);
                double floorUs = LayerPresets.ActiveWeightBytes(config, (double)active, dtype) / LayerBench.CopyBandwidth(accelerator) * 1e6;
                yield return new LayerPhaseRow(preset, tokens, BenchMedian.Of(totals), BenchMedian.Of(sums), phases.ToDictionary(p => p.Key.ToString(), p => BenchMedian.Of(p.Value)), active, floorUs);
            }
        }
        finally
        {
            if (!ReferenceEquals(stream, accelerator.DefaultStream))
                stream.Dispose();
        }
    }
}
