using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel;
using MoeRuntime.Runtime.Parallel.Eplb;

namespace MoeRuntime.Cli.Layers;

/// <summary>How a layer is spread over accelerators.</summary>
internal enum LayerMode
{
    Single,
    TensorParallel,
    ExpertParallel,
}

/// <summary>
/// One MoE layer made ready on one accelerator (<see cref="MoeLayer"/>) or several (<see cref="TensorParallelMoe"/>,
/// <see cref="ExpertParallelMoe"/>), behind one host-to-host forward and one timer, for <c>moe run</c> and <c>moe demo</c>.
/// Single-accelerator timings cover the device forward only (inputs already uploaded, synchronised after);
/// parallel timings cover the whole host-to-host forward, as the parallel layers take host arrays.
/// </summary>
internal sealed class LayerRunner : IDisposable
{
    private readonly DeviceMoeWeights? _single;
    private readonly TensorParallelMoe? _tensorParallel;
    private readonly ExpertParallelMoe? _expertParallel;
    private readonly Communicator? _communicator;

    private LayerRunner(LayerMode mode, IReadOnlyList<Accelerator> ranks, DeviceMoeWeights? single, TensorParallelMoe? tp, ExpertParallelMoe? ep, Communicator? communicator)
    {
        Mode = mode;
        Ranks = ranks;
        _single = single;
        _tensorParallel = tp;
        _expertParallel = ep;
        _communicator = communicator;
    }

    public LayerMode Mode { get; }
    public IReadOnlyList<Accelerator> Ranks { get; }

    /// <summary>What the timing covers, for the printed line.</summary>
    public string TimingScope => Mode == LayerMode.Single ? "device forward" : "host-to-host forward";

    /// <summary>
    /// Uploads <paramref name="weights"/> for <paramref name="mode"/>; <paramref name="maxTokens"/> sizes the
    /// tensor-parallel AllReduce buffers.
    /// </summary>
    public static LayerRunner Create(LayerMode mode, IReadOnlyList<Accelerator> ranks, MoeLayerWeights weights, AllReduceAlgorithm algorithm, int maxTokens,
        EplbOptions? eplb = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(weights);
        if (ranks.Count == 0)
            throw new ArgumentException("no accelerators given", nameof(ranks));
        if (mode == LayerMode.Single)
        {
            if (ranks.Count != 1)
                throw new ArgumentException($"a single-accelerator run takes one accelerator, not {ranks.Count}", nameof(ranks));
            return new LayerRunner(mode, ranks, DeviceMoeWeights.Upload(ranks[0], weights), null, null, null);
        }
        if (ranks.Select(r => r.Kind).Distinct().Count() != 1)
            throw new ArgumentException("parallel ranks must all be CPU or all be CUDA accelerators", nameof(ranks));
        if (eplb is not null && mode != LayerMode.ExpertParallel)
            throw new ArgumentException("EPLB needs expert parallelism (--parallel ep)", nameof(eplb));
        if (mode == LayerMode.ExpertParallel)
        {
            // Dispatch and combine stage up to every (token, slot) row: size the communicator for maxTokens.
            var epCommunicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = ExpertParallelMoe.CommunicatorCapacity(weights.Config, maxTokens) });
            try
            {
                return new LayerRunner(mode, ranks, null, null,
                    eplb is null ? new ExpertParallelMoe(ranks, weights, epCommunicator) : ExpertParallelMoe.WithEplb(ranks, weights, eplb, epCommunicator), epCommunicator);
            }
            catch
            {
                epCommunicator.Dispose();
                throw;
            }
        }

        // The AllReduce runs in place on [T, H] F32 partials: size the communicator for them.
        long bytes = Math.Max(16, ((long)maxTokens * weights.Config.HiddenSize * sizeof(float) + 15) / 16 * 16);
        var communicator = Communicator.Create(ranks, new CommunicatorOptions { CapacityBytes = Math.Max(bytes, new CommunicatorOptions().CapacityBytes) });
        try
        {
            return new LayerRunner(mode, ranks, null, new TensorParallelMoe(ranks, weights, algorithm, communicator), null, communicator);
        }
        catch
        {
            communicator.Dispose();
            throw;
        }
    }

    /// <summary>Tokens and expert rows per rank of the last expert-parallel forward, or null.</summary>
    public (int[] Tokens, long[] Rows)? ExpertParallelLoad =>
        _expertParallel is { } ep ? (ep.LastTokensPerRank, ep.LastRowsPerRank) : null;

    /// <summary>The EPLB state of an expert-parallel layer with --eplb, or null.</summary>
    public EplbSlots? EplbState => _expertParallel?.Eplb;

    /// <summary>The AllReduce the last tensor-parallel forward ran, or null.</summary>
    public AllReduceAlgorithm? LastAllReduce => _tensorParallel?.LastAlgorithm;

    /// <summary>hidden [T, H] F32 on the host -> output [T, H] F32 on the host.</summary>
    public float[] Forward(float[] hidden, int tokens)
    {
        if (_tensorParallel is { } tp)
            return tp.Forward(hidden, tokens);
        if (_expertParallel is { } ep)
            return ep.Forward(hidden, tokens);
        using var state = new SingleForward(_single!, hidden, tokens);
        state.Run();
        return state.Output.ToArray();
    }

    /// <summary>Median milliseconds of <paramref name="repeats"/> forwards after one warm-up.</summary>
    public double MedianMs(float[] hidden, int tokens, int repeats)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        var times = new double[repeats];
        if (_single is not null)
        {
            using var state = new SingleForward(_single, hidden, tokens);
            state.Run();
            for (int i = 0; i < repeats; i++)
            {
                long start = Stopwatch.GetTimestamp();
                state.Run();
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        else
        {
            Forward(hidden, tokens);
            for (int i = 0; i < repeats; i++)
            {
                long start = Stopwatch.GetTimestamp();
                Forward(hidden, tokens);
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }
        Array.Sort(times);
        return times[repeats / 2];
    }

    public void Dispose()
    {
        _single?.Dispose();
        _tensorParallel?.Dispose();
        _expertParallel?.Dispose();
        _communicator?.Dispose();
    }

    /// <summary>Input, output and workspace of single-accelerator forwards, allocated once.</summary>
    private sealed class SingleForward : IDisposable
    {
        private readonly MoeLayer _layer;
        private readonly MoeWorkspace _workspace;
        private readonly MemoryBuffer _input;

        public SingleForward(DeviceMoeWeights weights, float[] hidden, int tokens)
        {
            _layer = new MoeLayer(weights);
            var a = weights.Accelerator;
            _workspace = new MoeWorkspace(weights, tokens);
            try
            {
                _input = DeviceMoeWeights.UploadFloats(a, hidden, weights.DType);
                Output = a.Allocate<float>((long)tokens * weights.Config.HiddenSize);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public MemoryBuffer<float> Output { get; } = null!;

        public void Run()
        {
            _layer.Forward(_input, Output, _workspace);
            _layer.Weights.Accelerator.Synchronize();
        }

        public void Dispose()
        {
            _workspace.Dispose();
            _input?.Dispose();
            Output?.Dispose();
        }
    }
}
