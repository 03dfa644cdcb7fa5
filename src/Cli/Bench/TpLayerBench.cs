using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Bench;

/// <summary>One row of <c>moe bench layer --parallel tp</c>: the whole tensor-parallel forward (every rank's layer and the AllReduce).</summary>
internal sealed record TpLayerRow(
    string Preset, string Device, int Ranks, string DType, int Tokens, double EagerMs, double? GraphMs, string Timing,
    string AllReduce, long AllReduceBytes, long RankWeightBytes, double RankFloorMs, double FloorRatio);

/// <summary>
/// <c>moe bench layer --parallel tp</c>: the tensor-parallel layer of <see cref="Runtime.Parallel.TensorParallelMoe"/>
/// at a real model's shapes, timed on the devices. Each rank holds random weights at the shapes of its slice (I / N of
/// every routed and shared expert, the whole router, the same router on every rank so every rank routes alike); a
/// forward is every rank's <see cref="MoeLayer.Forward"/> on its own stream, then the AllReduce of the [T, H] F32
/// partials on the same streams, all enqueued without a host wait. Times: eager, and for T &lt;= 128 one CUDA graph per
/// rank replayed (<see cref="MultiRankTimer"/>). The floor is one rank's share of the active weights over the copy
/// bandwidth (the ranks stream theirs in parallel); the AllReduce is not in it.
/// </summary>
internal sealed class TpLayerBench(IReadOnlyList<Accelerator> ranks, Communicator communicator, AllReduceAlgorithm algorithm, int warmup, int samples, Action<string> log)
{
    /// <summary>The config of one rank's slice: routed and shared intermediate sizes over the rank count.</summary>
    public static ModelConfig Slice(ModelConfig config, int tpRanks)
    {
        if (config.MoeIntermediateSize % tpRanks != 0 || config.SharedIntermediateSize % tpRanks != 0)
            throw new ArgumentException($"intermediate sizes {config.MoeIntermediateSize} (routed) and {config.SharedIntermediateSize} (shared) must split evenly over {tpRanks} ranks");
        return config with
        {
            MoeIntermediateSize = config.MoeIntermediateSize / tpRanks,
            SharedIntermediateSize = config.SharedIntermediateSize / tpRanks,
        };
    }

    public IEnumerable<TpLayerRow> Run(string preset, IReadOnlyList<DeviceMoeWeights> weights, IEnumerable<int> tokenCounts)
    {
        var layers = weights.Select(w => new MoeLayer(w)).ToList();
        var config = weights[0].Config;
        var dtype = weights[0].DType;
        int n = ranks.Count;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (int tokens in tokenCounts)
        {
            var workspaces = new List<MoeWorkspace>();
            var hidden = new List<MemoryBuffer>();
            var partials = new List<MemoryBuffer>();
            var streams = new List<CudaStream>();
            bool cuda = ranks[0] is CudaAccelerator;
            try
            {
                for (int r = 0; r < n; r++)
                {
                    workspaces.Add(new MoeWorkspace(weights[r], tokens, fusedDecodeMaxTokens: MoeWorkspace.TensorParallelFusedDecodeMaxTokens));
                    hidden.Add(ranks[r].Allocate(dtype, (long)tokens * config.HiddenSize));
                    partials.Add(ranks[r].Allocate<float>((long)tokens * config.HiddenSize));
                    LayerBench.FillRandom(ranks[r], dtype, hidden[r], tokens);   // the same tokens on every rank
                    if (cuda)
                        streams.Add((CudaStream)ranks[r].CreateStream());
                }
                void Forward()
                {
                    for (int r = 0; r < n; r++)
                        layers[r].Forward(hidden[r], (MemoryBuffer<float>)partials[r], workspaces[r], cuda ? streams[r] : null);
                    if (n > 1)
                        communicator.AllReduce(partials, partials, algorithm, cuda ? streams : null);
                }
                void WaitForRanks()
                {
                    communicator.Synchronize();
                    foreach (var rank in ranks)
                        rank.Synchronize();
                }
                var timer = new MultiRankTimer(streams, log);
                // Progress on stderr: a forward that never ends (a kernel or a peer) shows where it stopped.
                log($"T={tokens}: eager forwards ({clock.Elapsed.TotalSeconds:F1} s)");
                double eager = cuda ? timer.Median(Forward, communicator.Synchronize, graph: false, warmup, samples, inner: 1).Ms : MultiRankTimer.HostMedian(Forward, WaitForRanks, warmup, samples, inner: 1);
                double? graph = null;
                string timing = cuda ? "eager" : "stopwatch";
                if (cuda && tokens <= 128)
                {
                    log($"T={tokens}: graph replays ({clock.Elapsed.TotalSeconds:F1} s)");
                    (double ms, timing) = timer.Median(Forward, communicator.Synchronize, graph: true, warmup, samples, inner: 1);
                    graph = timing == "cuda-graph" ? ms : null;
                }
                string picked = n > 1 ? communicator.LastAllReduceAlgorithm + (communicator.LastAllReduceLowLatency ? "(ll)" : "") : "-";
                int active = workspaces[0].RoutedCounts.ToArray().Count(c => c > 0);
                long rankBytes = LayerPresets.ActiveWeightBytes(config, (double)active, dtype);
                double floorMs = rankBytes / LayerBench.CopyBandwidth(ranks[0]) * 1e3;
                double best = Math.Min(eager, graph ?? double.MaxValue);
                yield return new TpLayerRow(preset, ranks[0].Info.Name, n, DTypes.Name(dtype), tokens, eager, graph, timing, picked,
                    (long)tokens * config.HiddenSize * sizeof(float), rankBytes, floorMs, best / floorMs);
            }
            finally
            {
                streams.ForEach(s => s.Dispose());
                workspaces.ForEach(w => w.Dispose());
                hidden.ForEach(b => b.Dispose());
                partials.ForEach(b => b.Dispose());
            }
        }
    }
}
