using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Bench;

/// <summary>One row of <c>moe bench layer --parallel tp</c>: the whole tensor-parallel forward (every rank's layer and the AllReduce).</summary>
internal sealed record TpLayerRow(
    string Preset, string Device, int Ranks, string DType, int Tokens, string Decode, int Layers, double EagerMs, double? GraphMs, string Timing,
    string AllReduce, long AllReduceBytes, long RankWeightBytes, double RankFloorMs, double FloorRatio);

/// <summary>
/// <c>moe bench layer --parallel tp</c>: the tensor-parallel layer of <see cref="Runtime.Parallel.TensorParallelMoe"/>
/// at a real model's shapes, timed on the devices. Each rank holds random weights at the shapes of its slice (I / N of
/// every routed and shared expert, the whole router, the same router on every rank so every rank routes alike); a
/// forward is every rank's <see cref="MoeLayer.Forward"/> on its own stream, then the AllReduce of the [T, H] F32
/// partials on the same streams, all enqueued without a host wait. Times: eager, and for T &lt;= 128 one CUDA graph per
/// rank replayed (<see cref="MultiRankTimer"/>). The floor is one rank's share of the active weights over the copy
/// bandwidth (the ranks stream theirs in parallel); the AllReduce is not in it. Decode: "fused" where the ranks ran the
/// one-launch decode kernel (MOE_DECODE_FUSED_TP), else "chain". One rank is the single device in the same harness (no
/// AllReduce; its layer takes MOE_DECODE_FUSED's limit).
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

    /// <param name="layerWeights">Per layer, every rank's weights: the forwards cycle through the layers (one forward of
    /// each per timed call, the time divided by their count), so with several no layer's weights are still in L2 from its
    /// last forward, as in a model's decode.</param>
    public IEnumerable<TpLayerRow> Run(string preset, IReadOnlyList<IReadOnlyList<DeviceMoeWeights>> layerWeights, IEnumerable<int> tokenCounts)
    {
        var layers = layerWeights.Select(l => l.Select(w => new MoeLayer(w)).ToArray()).ToArray();
        var config = layerWeights[0][0].Config;
        var dtype = layerWeights[0][0].DType;
        int n = ranks.Count;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        foreach (int tokens in tokenCounts)
        {
            var workspaces = new List<MoeWorkspace[]>();
            var hidden = new List<MemoryBuffer>();
            var partials = new List<MemoryBuffer>();
            var streams = new List<CudaStream>();
            bool cuda = ranks[0] is CudaAccelerator;
            try
            {
                foreach (var l in layerWeights)
                    workspaces.Add(l.Select(w => new MoeWorkspace(w, tokens, tensorParallelRank: n > 1)).ToArray());
                for (int r = 0; r < n; r++)
                {
                    hidden.Add(ranks[r].Allocate(dtype, (long)tokens * config.HiddenSize));
                    partials.Add(ranks[r].Allocate<float>((long)tokens * config.HiddenSize));
                    LayerBench.FillRandom(ranks[r], dtype, hidden[r], tokens);   // the same tokens on every rank
                    if (cuda)
                        streams.Add((CudaStream)ranks[r].CreateStream());
                }
                int next = 0;
                void ForwardOne()
                {
                    int l = next;
                    next = (next + 1) % layers.Length;
                    for (int r = 0; r < n; r++)
                        layers[l][r].Forward(hidden[r], (MemoryBuffer<float>)partials[r], workspaces[l][r], cuda ? streams[r] : null);
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
                int cycle = layers.Length;   // one forward of every layer a timed call
                // Progress on stderr: a forward that never ends (a kernel or a peer) shows where it stopped.
                log($"T={tokens}: eager forwards ({clock.Elapsed.TotalSeconds:F1} s)");
                double eager = cuda ? timer.Median(ForwardOne, communicator.Synchronize, graph: false, warmup, samples, inner: cycle).Ms
                    : MultiRankTimer.HostMedian(ForwardOne, WaitForRanks, warmup, samples, inner: cycle);
                double? graph = null;
                string timing = cuda ? "eager" : "stopwatch";
                if (cuda && tokens <= 128)
                {
                    log($"T={tokens}: graph replays ({clock.Elapsed.TotalSeconds:F1} s)");
                    (double ms, timing) = timer.Median(ForwardOne, communicator.Synchronize, graph: true, warmup, samples, inner: cycle);
                    graph = timing == "cuda-graph" ? ms : null;
                }
                string picked = n > 1 ? communicator.LastAllReduceAlgorithm + (communicator.LastAllReduceLowLatency ? "(ll)" : "") : "-";
                int active = workspaces[0][0].RoutedCounts.ToArray().Count(c => c > 0);
                long rankBytes = LayerPresets.ActiveWeightBytes(config, (double)active, dtype);
                double floorMs = rankBytes / LayerBench.CopyBandwidth(ranks[0]) * 1e3;
                double best = Math.Min(eager, graph ?? double.MaxValue);
                string decode = layers[0][0].RunsFusedDecode(workspaces[0][0]) ? "fused" : "chain";
                yield return new TpLayerRow(preset, ranks[0].Info.Name, n, DTypes.Name(dtype), tokens, decode, layers.Length, eager, graph, timing, picked,
                    (long)tokens * config.HiddenSize * sizeof(float), rankBytes, floorMs, best / floorMs);
            }
            finally
            {
                streams.ForEach(s => s.Dispose());
                workspaces.ForEach(ws => Array.ForEach(ws, w => w.Dispose()));
                hidden.ForEach(b => b.Dispose());
                partials.ForEach(b => b.Dispose());
            }
        }
    }
}
