using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// Tensor parallelism: every rank holds I / N of every expert's intermediate dimension (and of the
/// shared experts), routes all tokens itself (routing is deterministic, so every rank picks the same
/// experts), and computes a partial output; an AllReduce sums the partials.
/// <code>
/// hidden [T, H] on every rank -> MoeLayer with sliced weights -> partial [T, H] F32 -> AllReduce(sum) -> output
/// </code>
/// </summary>
public sealed class TensorParallelMoe : IDisposable
{
    private readonly DeviceMoeWeights[] _weights;
    private readonly MoeLayer[] _layers;
    private readonly Communicator _communicator;
    private readonly bool _ownsCommunicator;
    private readonly int? _fusedDecodeMaxTokens;

    /// <param name="fusedDecodeMaxTokens">Forwards of at most this many tokens run each rank's slice as the one-launch decode
    /// kernel before the AllReduce: null = the default (MOE_DECODE_FUSED_TP on CUDA, never on CPU accelerators), 0 = never.</param>
    public TensorParallelMoe(IReadOnlyList<Accelerator> ranks, MoeLayerWeights weights, AllReduceAlgorithm algorithm = AllReduceAlgorithm.Auto,
                             Communicator? communicator = null, int? fusedDecodeMaxTokens = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(weights);
        if (ranks.Count < 1)
            throw new ArgumentException("tensor parallelism needs at least one accelerator", nameof(ranks));
        MoeWorkspace.CheckFusedDecodeMaxTokens(fusedDecodeMaxTokens);   // before any weight reaches a device
        Algorithm = algorithm;
        _fusedDecodeMaxTokens = fusedDecodeMaxTokens;
        _weights = new DeviceMoeWeights[ranks.Count];
        try
        {
            for (int r = 0; r < ranks.Count; r++)
                _weights[r] = DeviceMoeWeights.Upload(ranks[r], weights, tpRank: r, tpRanks: ranks.Count);
            _layers = _weights.Select(w => new MoeLayer(w)).ToArray();
            _ownsCommunicator = communicator is null;
            _communicator = communicator ?? Communicator.Create(ranks);
        }
        catch
        {
            foreach (var w in _weights)
                w?.Dispose();
            throw;
        }
    }

    public AllReduceAlgorithm Algorithm { get; }
    public int Ranks => _layers.Length;
    public ModelConfig Config => _weights[0].Config;

    /// <summary>The algorithm the last forward's AllReduce ran (what auto picked).</summary>
    public AllReduceAlgorithm LastAlgorithm => _communicator.LastAllReduceAlgorithm;

    /// <summary>Whether the last forward ran the ranks' slices as the one-launch decode kernel (else the six-kernel chain).</summary>
    public bool LastForwardFused { get; private set; }

    /// <summary>Runs the block on host hidden states [T, H]; returns [T, H] F32 (identical on every rank; rank 0's copy).</summary>
    public float[] Forward(ReadOnlySpan<float> hidden, int tokens)
    {
        int h = Config.HiddenSize;
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        var result = new float[(long)tokens * h];
        if (tokens == 0)
            return result;
        var inputs = new MemoryBuffer[Ranks];
        var outputs = new MemoryBuffer<float>[Ranks];
        var workspaces = new MoeWorkspace[Ranks];
        try
        {
            var host = hidden.ToArray();
            for (int r = 0; r < Ranks; r++)
            {
                var a = _weights[r].Accelerator;
                inputs[r] = DeviceMoeWeights.UploadFloats(a, host, _weights[r].DType);
                outputs[r] = a.Allocate<float>(result.Length);
                workspaces[r] = new MoeWorkspace(_weights[r], tokens, fusedDecodeMaxTokens: _fusedDecodeMaxTokens, tensorParallelRank: true);
            }
            LastForwardFused = _layers[0].RunsFusedDecode(workspaces[0]);
            for (int r = 0; r < Ranks; r++)
                _layers[r].Forward(inputs[r], outputs[r], workspaces[r]);
            if (Ranks > 1)
                _communicator.AllReduce(outputs, outputs, Algorithm);
            outputs[0].CopyTo(result);
            return result;
        }
        finally
        {
            foreach (var b in inputs)
                b?.Dispose();
            foreach (var b in outputs)
                b?.Dispose();
            foreach (var w in workspaces)
                w?.Dispose();
        }
    }

    public void Dispose()
    {
        if (_ownsCommunicator)
            _communicator.Dispose();
        foreach (var w in _weights)
            w.Dispose();
    }
}
