using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Distributed;

/// <summary>
/// Tensor parallelism, one rank of a <see cref="ProcessGroup"/> (one process per GPU): this rank holds slice
/// <c>Rank</c> of N of every expert's intermediate dimension (and of the shared experts), routes all tokens itself,
/// computes a partial output and sums the partials with the group's AllReduce. The same math, slice for slice, as
/// the in-process <see cref="Parallel.TensorParallelMoe"/>:
/// <code>
/// hidden [T, H] on every rank -> MoeLayer with slice r of the weights -> partial [T, H] F32 -> AllReduce(sum) -> output [T, H] on every rank
/// </code>
/// </summary>
public sealed class RankTensorParallelMoe : IDisposable
{
    private readonly ProcessGroup _group;
    private readonly DeviceMoeWeights _weights;
    private readonly MoeLayer _layer;

    public RankTensorParallelMoe(ProcessGroup group, MoeLayerWeights weights)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(weights);
        _group = group;
        _weights = DeviceMoeWeights.Upload(group.Accelerator, weights, tpRank: group.Rank, tpRanks: group.Size);
        _layer = new MoeLayer(_weights);
    }

    public ModelConfig Config => _weights.Config;
    public ProcessGroup Group => _group;

    /// <summary>Runs the block on host hidden states [T, H] (the same on every rank); returns [T, H] F32 on every rank.</summary>
    public float[] Forward(float[] hidden, int tokens)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        int h = Config.HiddenSize;
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        var result = new float[(long)tokens * h];
        if (tokens == 0)
            return result;
        var a = _weights.Accelerator;
        using var input = DeviceMoeWeights.UploadFloats(a, hidden, _weights.DType);
        using var output = a.Allocate<float>(result.Length);
        using var workspace = new MoeWorkspace(_weights, tokens, tensorParallelRank: true);
        _layer.Forward(input, output, workspace);
        if (_group.Size > 1)
            _group.AllReduce(output, output);
        output.CopyTo(result);
        return result;
    }

    public void Dispose() => _weights.Dispose();
}
