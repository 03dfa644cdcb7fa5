using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Distributed;

/// <summary>
/// Expert parallelism, one rank of a <see cref="ProcessGroup"/> (one process per GPU): rank r holds experts
/// [r*E/N, (r+1)*E/N) and computes tokens [TokenStart(r), TokenStart(r+1)) of the input. The same steps, in the
/// same order, as the in-process <see cref="Parallel.ExpertParallelMoe"/>, with the group's collectives between them:
/// <code>
/// route + permute own tokens by global expert  -> rows per expert [E] --AllGather--> [N, E]: DispatchSizes
///   --all-to-allv dispatch (grouped Send/Recv)--> [source rank][local expert] rows
///   --permute by local expert--> grouped GEMMs --un-permute--> rows back in received order
///   --all-to-allv combine--> own rows back in own expert order
///   --Combine with the routing weights (+ shared experts)--> own output rows --AllGather (padded)--> output [T, H] on every rank
/// </code>
/// </summary>
public sealed class RankExpertParallelMoe : IDisposable
{
    private readonly ProcessGroup _group;
    private readonly DeviceMoeWeights _weights;
    private readonly MoeLayer _layer;
    private readonly Parallel.ExpertParallelRankBuffers _buffers;
    // The count exchange's buffers (this rank's rows per expert, every rank's), and the output gather's (this rank's
    // rows padded to the largest share, every rank's), kept so a forward no larger than an earlier one allocates nothing.
    private readonly MemoryBuffer<long> _myRows, _everyonesRows;
    private MemoryBuffer<float>? _paddedRows, _gatheredRows;

    public RankExpertParallelMoe(ProcessGroup group, MoeLayerWeights weights)
    {
        ArgumentNullException.ThrowIfNull(group);
        ArgumentNullException.ThrowIfNull(weights);
        int n = group.Size, e = weights.Config.NumExperts;
        if (e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} ranks", nameof(group));
        _group = group;
        ExpertsPerRank = e / n;
        _weights = DeviceMoeWeights.Upload(group.Accelerator, weights, firstExpert: group.Rank * ExpertsPerRank, expertCount: ExpertsPerRank);
        _layer = new MoeLayer(_weights);
        _buffers = new Parallel.ExpertParallelRankBuffers(_weights, ExpertsPerRank, 0);
        _myRows = group.Accelerator.Allocate<long>(e);
        _everyonesRows = group.Accelerator.Allocate<long>((long)n * e);
    }

    public ModelConfig Config => _weights.Config;
    public int ExpertsPerRank { get; }
    public ProcessGroup Group => _group;

    /// <summary>Tokens each rank processed in the last forward.</summary>
    public int[] LastTokensPerRank { get; private set; } = [];

    /// <summary>Expert rows each rank computed in the last forward.</summary>
    public long[] LastRowsPerRank { get; private set; } = [];

    /// <summary>Runs the block on host hidden states [T, H] (the same on every rank); returns [T, H] F32 on every rank.</summary>
    public float[] Forward(float[] hidden, int tokens)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        int n = _group.Size, rank = _group.Rank, h = Config.HiddenSize, k = Config.TopK, e = Config.NumExperts;
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        var result = new float[(long)tokens * h];
        var shares = Enumerable.Range(0, n).Select(r => DispatchSizes.TokenShare(tokens, n, r)).ToArray();
        LastTokensPerRank = shares;
        if (tokens == 0)
        {
            LastRowsPerRank = new long[n];
            return result;
        }
        int share = shares[rank], start = DispatchSizes.TokenStart(tokens, n, rank);
        // 1. Route and permute this rank's tokens by global expert (layer workspace, input and received rows are
        //    kept across forwards, as in the in-process layer).
        var (ws, input, output) = _buffers.ForTokens(share);
        _buffers.Input.Upload(hidden.AsSpan(start * h, share * h), input);
        var myRows = new long[e];
        if (share > 0)
        {
            _layer.RouteAndPermute(input, ws, null);
            myRows = DispatchSizes.RowsFromOffsets(ws.ExpertOffsets.ToArray());
        }
        // 2. Exchange the counts: every rank learns every rank's rows per expert.
        _myRows.CopyFrom(myRows);
        _group.AllGather(_myRows, _everyonesRows);
        var sizes = DispatchSizes.From(DispatchSizes.Stack(_everyonesRows.ToArray(), n));
        LastRowsPerRank = Enumerable.Range(0, n).Select(sizes.ReceivedRows).ToArray();
        long[] sendCounts = sizes.SendCounts(rank), receiveCounts = sizes.ReceiveCounts(rank);
        int rows = checked((int)sizes.ReceivedRows(rank));

        // 3. Dispatch: this rank receives [source rank][local expert] rows.
        var receivedRows = _buffers.Received;
        receivedRows.Reserve(rows, checked(tokens * k));
        var received = receivedRows.Received(rows);
        _group.AllToAllV(ws.Gathered, DispatchSizes.Elements(sendCounts, h), received, DispatchSizes.Elements(receiveCounts, h));

        // 4. Sort the received rows by local expert, run the experts, put the rows back in received order.
        var returned = receivedRows.Returned(rows);
        if (rows > 0)
        {
            sizes.LocalExpertIds(rank).CopyTo(receivedRows.LocalIds(rows));
            receivedRows.Run(_layer, _weights.GateUp, _weights.Down, rows);
        }

        // 5. Combine back: each source gets its rows back, in its own expert order.
        _group.AllToAllV(returned, DispatchSizes.Elements(receiveCounts, h), ws.ExpertOutput, DispatchSizes.Elements(sendCounts, h));

        // 6. Weighted sum over the k choices plus the shared experts, for this rank's tokens.
        int maxShare = shares.Max();
        var (padded, all) = GatherBuffers((long)maxShare * h);
        if (share > 0)
        {
            var residual = _layer.RunSharedExperts(input, ws, null);
            Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, share, k, h, output, residual);
            MemoryBuffer.CopyBytes(output, 0, padded, 0, output.LengthBytes);
        }

        // 7. Every rank gets every rank's rows (shares padded to the largest).
        _group.AllGather(padded, all);
        var host = all.ToArray();
        for (int r = 0; r < n; r++)
            Array.Copy(host, (long)r * maxShare * h, result, (long)DispatchSizes.TokenStart(tokens, n, r) * h, (long)shares[r] * h);
        return result;
    }

    /// <summary>Views of <paramref name="cells"/> padded output cells and N times that gathered, grown when a forward needs more.</summary>
    private (MemoryBuffer<float> Padded, MemoryBuffer<float> All) GatherBuffers(long cells)
    {
        if (_paddedRows is null || _paddedRows.Length < cells)
        {
            _paddedRows?.Dispose();
            _gatheredRows?.Dispose();
            (_paddedRows, _gatheredRows) = (null, null);
            _paddedRows = _weights.Accelerator.Allocate<float>(cells);
            _gatheredRows = _weights.Accelerator.Allocate<float>(_group.Size * cells);
        }
        return (_paddedRows.Slice(0, cells), _gatheredRows!.Slice(0, _group.Size * cells));
    }

    public void Dispose()
    {
        _paddedRows?.Dispose();
        _gatheredRows?.Dispose();
        _myRows.Dispose();
        _everyonesRows.Dispose();
        _buffers.Dispose();
        _weights.Dispose();
    }
}
