using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// Expert parallelism: rank r holds experts [r*E/N, (r+1)*E/N) and a 1/N share of the tokens.
/// <code>
/// rank r: route + permute its tokens by global expert -> rows sorted by expert are sorted by owning rank
///   --all-to-allv dispatch--> rank d receives [source rank][its local expert] rows
///   --permute by local expert--> grouped GEMMs --un-permute--> rows back in received order
///   --all-to-allv combine--> rank r gets its rows back in its own expert order
///   --Combine with the routing weights (+ shared experts, computed for its own tokens)--> output rows of rank r
/// </code>
/// The dispatch sizes go through the host (each rank's expert offsets are read back, once, after every rank's
/// routing is enqueued), as they must for all-to-allv; everything else stays on the devices. Device buffers and
/// page-locked host stages are kept per rank across forwards (ExpertParallelRankBuffers), so a forward of at most as
/// many tokens as an earlier one allocates nothing; hence one forward at a time per layer.
/// With EPLB (<see cref="WithEplb"/>, ExpertParallelMoe.Slots.cs) ranks hold slots of a placement instead of a block.
/// </summary>
public sealed partial class ExpertParallelMoe : IDisposable
{
    private readonly DeviceMoeWeights[] _weights;
    private readonly MoeLayer[] _layers;
    private readonly Communicator _communicator;
    private readonly bool _ownsCommunicator;

    /// <summary>
    /// Staging a communicator needs for this layer's all-to-all at up to <paramref name="maxTokens"/> tokens: the most a
    /// rank can send or receive is every (token, slot) row of the batch, as F32 [T*k, H] (the combine's payload).
    /// Pass a communicator of this capacity when T*k*H*4 exceeds the default (64 MB).
    /// </summary>
    public static long CommunicatorCapacity(ModelConfig config, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        long bytes = (long)Math.Max(1, maxTokens) * config.TopK * config.HiddenSize * sizeof(float);
        return Math.Max(new CommunicatorOptions().CapacityBytes, (bytes + 15) / 16 * 16);
    }

    public ExpertParallelMoe(IReadOnlyList<Accelerator> ranks, MoeLayerWeights weights, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(weights);
        int n = ranks.Count, e = weights.Config.NumExperts;
        if (n < 1)
            throw new ArgumentException("expert parallelism needs at least one accelerator", nameof(ranks));
        if (e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} accelerators", nameof(ranks));
        ExpertsPerRank = e / n;
        _weights = new DeviceMoeWeights[n];
        try
        {
            for (int r = 0; r < n; r++)
                _weights[r] = DeviceMoeWeights.Upload(ranks[r], weights, firstExpert: r * ExpertsPerRank, expertCount: ExpertsPerRank);
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

    /// <summary>
    /// Takes per-rank weights already on the devices (rank r holds experts [r*E/N, (r+1)*E/N), e.g. from
    /// <see cref="DeviceMoeWeights.CreateRandom(Accelerator, ModelConfig, DType, int, int, int)"/>, so a layer too large
    /// for one host is never built whole); the layer owns and disposes them.
    /// </summary>
    public ExpertParallelMoe(IReadOnlyList<DeviceMoeWeights> perRankWeights, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(perRankWeights);
        int n = perRankWeights.Count;
        if (n < 1)
            throw new ArgumentException("expert parallelism needs at least one rank", nameof(perRankWeights));
        var config = perRankWeights[0].Config;
        int e = config.NumExperts;
        if (e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} ranks", nameof(perRankWeights));
        ExpertsPerRank = e / n;
        for (int r = 0; r < n; r++)
        {
            var w = perRankWeights[r];
            if (w.FirstExpert != r * ExpertsPerRank || w.ExpertCount != ExpertsPerRank || w.Intermediate != config.MoeIntermediateSize
                || w.Config.HiddenSize != config.HiddenSize || w.Config.NumExperts != e || w.DType != perRankWeights[0].DType)
                throw new ArgumentException($"rank {r} holds experts [{w.FirstExpert}, {w.FirstExpert + w.ExpertCount}) (I {w.Intermediate}, {DTypes.Name(w.DType)});"
                    + $" expert parallelism over {n} ranks needs [{r * ExpertsPerRank}, {(r + 1) * ExpertsPerRank}), no TP slice, one dtype", nameof(perRankWeights));
        }
        _weights = perRankWeights.ToArray();
        _layers = _weights.Select(w => new MoeLayer(w)).ToArray();
        _ownsCommunicator = communicator is null;
        _communicator = communicator ?? Communicator.Create(_weights.Select(w => w.Accelerator).ToList());
    }

    /// <summary>
    /// Optional: told where each phase of <see cref="Forward"/> starts and ends on each rank (benchmarks record
    /// device events there). Null (the default) costs nothing.
    /// </summary>
    public IExpertParallelPhaseTimer? PhaseTimer { get; set; }

    public int Ranks => _layers.Length;
    /// <summary>Experts (slots, with EPLB) each rank holds.</summary>
    public int ExpertsPerRank { get; }
    public ModelConfig Config => _weights[0].Config;

    /// <summary>Tokens each rank processed in the last forward (its share of the input).</summary>
    public int[] LastTokensPerRank { get; private set; } = [];

    /// <summary>Expert rows each rank computed in the last forward (what the routing sent it).</summary>
    public long[] LastRowsPerRank { get; private set; } = [];

    /// <summary>Held experts each rank ran rows through in the last forward (the experts the routing hit there).</summary>
    public int[] LastActiveExpertsPerRank { get; private set; } = [];

    /// <summary>
    /// Rows each rank's held experts (slots, with EPLB) received in the last forward, [rank][local expert]: what its grouped
    /// GEMMs tiled (a benchmark records it so a cost model can count each expert's row tiles rather than estimate them).
    /// </summary>
    public long[][] LastRowsPerHeldExpert { get; private set; } = [];

    /// <summary>
    /// [rank][local group]: rows of the groups (experts or slots) rank d holds, [d*perRank, (d+1)*perRank), from every
    /// source. Plain loops: this runs between the host's wait for the dispatch sizes and the dispatch, with the GPUs idle.
    /// </summary>
    private static long[][] HeldRows(long[,] rowsPerGroup, int perRank)
    {
        int sources = rowsPerGroup.GetLength(0), holders = rowsPerGroup.GetLength(1) / perRank;
        var held = new long[holders][];
        for (int d = 0; d < holders; d++)
        {
            held[d] = new long[perRank];
            for (int local = 0; local < perRank; local++)
                for (int r = 0; r < sources; r++)
                    held[d][local] += rowsPerGroup[r, d * perRank + local];
        }
        return held;
    }

    /// <summary>Per rank, the held groups that received any row (rows are never negative: a group with rows from any source).</summary>
    private static int[] ActiveGroups(long[][] heldRows)
    {
        var active = new int[heldRows.Length];
        for (int d = 0; d < heldRows.Length; d++)
            foreach (long rows in heldRows[d])
                if (rows > 0)
                    active[d]++;
        return active;
    }

    private ExpertParallelRankBuffers[]? _buffers;
    private AcceleratorStream[]? _streams;

    /// <summary>Rank r's buffers, kept across forwards (created on first use).</summary>
    private ExpertParallelRankBuffers Buffers(int r)
    {
        _buffers ??= _weights.Select(w => new ExpertParallelRankBuffers(w, ExpertsPerRank, _slots is null ? 0 : Ranks * ExpertsPerRank)).ToArray();
        return _buffers[r];
    }

    /// <summary>Each rank's default stream, given to the all-to-allvs so they are enqueued without a host wait.</summary>
    private IReadOnlyList<AcceleratorStream> Streams => _streams ??= _weights.Select(w => w.Accelerator.DefaultStream).ToArray();

    /// <summary>Waits for every rank's enqueued work (after all ranks' work is issued).</summary>
    private void WaitForRanks()
    {
        foreach (var w in _weights)
            w.Accelerator.DefaultStream.Synchronize();
    }

    /// <summary>
    /// Rows each rank routed to each of <paramref name="groups"/> groups (global experts, or EPLB slots), from the offsets
    /// every rank with tokens downloaded this forward ([ranks, groups]; zero for a rank without tokens).
    /// </summary>
    private long[,] RowsPerGroup(int[] share, int groups)
    {
        var rows = new long[share.Length, groups];
        for (int r = 0; r < share.Length; r++)
        {
            if (share[r] == 0)
                continue;
            var offsets = Buffers(r).Offsets.Reserve(groups + 1);
            for (int g = 0; g < groups; g++)
                rows[r, g] = offsets[g + 1] - offsets[g];
        }
        return rows;
    }

    /// <summary>The all-to-allv sizes of groups held in contiguous blocks per rank: [source, destination] rows and rows per rank.</summary>
    private static (long[,] SendRows, long[] Received) SendAndReceivedRows(long[,] rowsPerGroup)
    {
        var sizes = Distributed.DispatchSizes.From(rowsPerGroup);
        return (sizes.SendRows, Enumerable.Range(0, sizes.Ranks).Select(sizes.ReceivedRows).ToArray());
    }

    /// <summary>First token of rank r's share: tokens are split as evenly as possible, in order.</summary>
    public static int TokenStart(int tokens, int ranks, int rank) => (int)((long)tokens * rank / ranks);

    /// <summary>Runs the block on host hidden states [T, H]; returns [T, H] F32.</summary>
    public float[] Forward(ReadOnlySpan<float> hidden, int tokens)
    {
        var result = new float[(long)Math.Max(0, tokens) * Config.HiddenSize];
        Forward(hidden, tokens, result);
        return result;
    }

    /// <summary>
    /// Runs the block on host hidden states [T, H] into <paramref name="output"/> [T, H] F32. Device buffers are kept
    /// across forwards (grown to the largest batch seen); every rank's work is enqueued before the host waits on any,
    /// and the host waits twice: for the dispatch sizes and for the outputs.
    /// </summary>
    public void Forward(ReadOnlySpan<float> hidden, int tokens, Span<float> output)
    {
        if (_slots is not null)
        {
            ForwardOverSlots(hidden, tokens, null, output);
            return;
        }
        int n = Ranks, h = Config.HiddenSize, k = Config.TopK, e = Config.NumExperts, eh = ExpertsPerRank;
        CheckShapes(hidden, tokens, output);
        var share = Enumerable.Range(0, n).Select(r => TokenStart(tokens, n, r + 1) - TokenStart(tokens, n, r)).ToArray();
        var views = new (MoeWorkspace Workspace, MemoryBuffer Input, MemoryBuffer<float> Output)[n];
        // 1. Each rank: upload its tokens, route and permute them by global expert, read its expert offsets back
        //    (rank r's device work starts while the host converts rank r + 1's input).
        for (int r = 0; r < n; r++)
        {
            views[r] = Buffers(r).ForTokens(share[r]);
            Buffers(r).Input.Upload(hidden.Slice(TokenStart(tokens, n, r) * h, share[r] * h), views[r].Input);
            PhaseTimer?.Begin(ExpertParallelPhase.RouteAndPermute, r);
            if (share[r] > 0)
                _layers[r].RouteAndPermute(views[r].Input, views[r].Workspace, null);
            PhaseTimer?.End(ExpertParallelPhase.RouteAndPermute, r);
            if (share[r] > 0)
                Buffers(r).Offsets.Download(views[r].Workspace.ExpertOffsets);
        }
        WaitForRanks();
        // 2. Dispatch sizes: rows of rank r for expert g, from r's expert offsets.
        var rowsPerExpert = RowsPerGroup(share, e);
        var (sendRows, received) = SendAndReceivedRows(rowsPerExpert);
        LastTokensPerRank = share;
        LastRowsPerRank = received;
        LastRowsPerHeldExpert = HeldRows(rowsPerExpert, eh);
        LastActiveExpertsPerRank = ActiveGroups(LastRowsPerHeldExpert);
        var receiveRows = new MemoryBuffer[n];
        var gatheredViews = new MemoryBuffer[n];
        for (int d = 0; d < n; d++)
        {
            var rows = Buffers(d).Received;
            rows.Reserve(checked((int)received[d]), checked(tokens * k));
            receiveRows[d] = rows.Received(checked((int)received[d]));
            gatheredViews[d] = views[d].Workspace.Gathered;
        }
        // 3. Dispatch: rank d receives [source rank][local expert] rows.
        Mark(ExpertParallelPhase.Dispatch, begin: true);
        _communicator.AllToAllV(gatheredViews, Scale(sendRows, h), receiveRows, Streams);
        Mark(ExpertParallelPhase.Dispatch, begin: false);
        // 4. Each rank: sort the received rows by local expert, run its experts, put the rows back in received order
        //    (ExpertParallelMoe.Experts.cs: enqueued step by step across ranks, so the ranks start together).
        RunExpertsOnRanks(received, rowsPerExpert, eh, d => (_weights[d].GateUp, _weights[d].Down), timed: true);
        var returned = Enumerable.Range(0, n).Select(d => (MemoryBuffer)Buffers(d).Received.Returned(checked((int)received[d]))).ToArray();
        // 5. Combine back: rank r gets its rows in its own expert order (the order of its gathered rows).
        Mark(ExpertParallelPhase.Combine, begin: true);
        _communicator.AllToAllV(returned, Scale(Transpose(sendRows), h), views.Select(v => (MemoryBuffer)v.Workspace.ExpertOutput).ToArray(), Streams);
        Mark(ExpertParallelPhase.Combine, begin: false);
        // 6. Each rank: weighted sum over its tokens' k choices, plus its shared experts; then the rows back to the host.
        for (int r = 0; r < n; r++)
        {
            if (share[r] == 0)
                continue;
            var ws = views[r].Workspace;
            PhaseTimer?.Begin(ExpertParallelPhase.SharedAndUnpermute, r);
            var residual = _layers[r].RunSharedExperts(views[r].Input, ws, null);
            Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, share[r], k, h, views[r].Output, residual);
            PhaseTimer?.End(ExpertParallelPhase.SharedAndUnpermute, r);
            Buffers(r).Output.Download(views[r].Output);
        }
        CopyOutputs(tokens, share, output);
    }

    private void CheckShapes(ReadOnlySpan<float> hidden, int tokens, Span<float> output)
    {
        int h = Config.HiddenSize;
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        if (output.Length != (long)tokens * h)
            throw new ArgumentException($"output has {output.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(output));
    }

    /// <summary>Waits for each rank in turn and copies its downloaded rows into its share of <paramref name="output"/> (later ranks finish meanwhile).</summary>
    private void CopyOutputs(int tokens, int[] share, Span<float> output)
    {
        int h = Config.HiddenSize;
        for (int r = 0; r < Ranks; r++)
        {
            _weights[r].Accelerator.DefaultStream.Synchronize();
            if (share[r] > 0)
                HostCopy.Parallel(Buffers(r).Output.Reserve((long)share[r] * h), output.Slice(TokenStart(tokens, Ranks, r) * h, share[r] * h));
        }
        _communicator.Synchronize(); // surfaces a collective that timed out on the device
    }

    private void Mark(ExpertParallelPhase phase, bool begin)
    {
        if (PhaseTimer is not { } timer)
            return;
        for (int r = 0; r < Ranks; r++)
        {
            if (begin)
                timer.Begin(phase, r);
            else
                timer.End(phase, r);
        }
    }

    private static long[,] Scale(long[,] rows, int hidden)
    {
        int n = rows.GetLength(0);
        var result = new long[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                result[i, j] = rows[i, j] * hidden;
        return result;
    }

    private static long[,] Transpose(long[,] m)
    {
        int n = m.GetLength(0);
        var t = new long[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                t[j, i] = m[i, j];
        return t;
    }

    public void Dispose()
    {
        if (_buffers is not null)
            foreach (var b in _buffers)
                b.Dispose();
        _slots?.Dispose();
        if (_ownsCommunicator)
            _communicator.Dispose();
        foreach (var w in _weights)
            w.Dispose();
    }
}
