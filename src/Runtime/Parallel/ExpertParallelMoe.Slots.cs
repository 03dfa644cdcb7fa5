using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Kernels.Eplb;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Parallel.Eplb;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// Expert parallelism over EPLB slots: G ranks with S slots each, physical slot p = rank * S + slot holding one
/// logical expert (hot experts in several slots).
/// <code>
/// BeginForward (a finished migration switches the placement here)
/// rank r: route its tokens -> logical ids [t, k], counts [E] -> load window
///   --ReplicaRouting (front replica table)--> physical slot ids [t, k] (a replicated expert's pairs spread evenly)
///   --permute by physical slot--> rows sorted by slot, hence by owning rank
///   --all-to-allv dispatch--> rank d receives [source rank][its slot] rows
///   --permute by local slot--> grouped GEMMs on the rank's slot weights --un-permute--> received order
///   --all-to-allv combine--> rank r gets its rows back --Combine with the routing weights (+ shared experts)
/// EndForward (online: wait for copies that overlapped this forward; every K forwards plan and start a migration)
/// </code>
/// Each row is computed by the same expert weights whatever slot holds them, and the weighted sum runs over the k
/// choices in the same order, so outputs equal the layer without replicas (bit for bit on CPU accelerators).
/// </summary>
public sealed partial class ExpertParallelMoe
{
    private readonly EplbSlots? _slots;

    private ExpertParallelMoe(IReadOnlyList<Accelerator> ranks, ModelConfig config, EplbOptions eplb,
        Func<Accelerator, DeviceMoeWeights> rankWeights, Func<Accelerator, int[], SlotWeightStore> createStore, Communicator? communicator)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(eplb);
        int n = ranks.Count;
        if (n < 1)
            throw new ArgumentException("expert parallelism needs at least one accelerator", nameof(ranks));
        ExpertsPerRank = eplb.SlotsPerDevice(config.NumExperts, n);
        _weights = new DeviceMoeWeights[n];
        try
        {
            for (int r = 0; r < n; r++)
                _weights[r] = rankWeights(ranks[r]);
            _layers = _weights.Select(w => new MoeLayer(w)).ToArray();
            _slots = new EplbSlots(ranks, config, eplb, createStore);
            _ownsCommunicator = communicator is null;
            _communicator = communicator ?? Communicator.Create(ranks);
        }
        catch
        {
            _slots?.Dispose();
            foreach (var w in _weights)
                w?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The layer with EPLB: each rank holds S = (E + R) / G slots of <paramref name="weights"/>' experts, placed by
    /// <paramref name="eplb"/> (none: contiguous; static: from the load profile; online: re-planned as it runs).
    /// Router and shared experts are replicated on every rank as without EPLB.
    /// </summary>
    public static ExpertParallelMoe WithEplb(IReadOnlyList<Accelerator> ranks, MoeLayerWeights weights, EplbOptions eplb, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        return new ExpertParallelMoe(ranks, weights.Config, eplb,
            a => DeviceMoeWeights.Upload(a, weights, firstExpert: 0, expertCount: 1),
            (a, experts) => SlotWeightStore.Upload(a, weights, experts), communicator);
    }

    /// <summary>
    /// As <see cref="WithEplb"/> with the random weights of <see cref="DeviceMoeWeights.CreateRandom(Accelerator, ModelConfig, DType, int)"/>
    /// generated straight into each rank's slots (benchmarks at real shapes, no host copy of the layer).
    /// </summary>
    public static ExpertParallelMoe CreateRandom(IReadOnlyList<Accelerator> ranks, ModelConfig config, DType dtype, int seed, EplbOptions eplb, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new ExpertParallelMoe(ranks, config, eplb,
            a => DeviceMoeWeights.CreateRandom(a, config, dtype, seed, [0]),
            (a, experts) => SlotWeightStore.CreateRandom(a, config, dtype, seed, experts), communicator);
    }

    /// <summary>The EPLB state (placement, slots, windows, migrations), or null without EPLB.</summary>
    public EplbSlots? Eplb => _slots;

    /// <summary>
    /// A forward with the routing given instead of computed (synthetic routing for benchmarks): logical expert
    /// <paramref name="ids"/> [T, k] and their <paramref name="routingWeights"/> [T, k]. EPLB layers only.
    /// </summary>
    public float[] Forward(ReadOnlySpan<float> hidden, int tokens, int[] ids, float[] routingWeights)
    {
        var result = new float[(long)Math.Max(0, tokens) * Config.HiddenSize];
        Forward(hidden, tokens, ids, routingWeights, result);
        return result;
    }

    /// <summary>As above, into <paramref name="output"/> [T, H] F32 (a host array the caller keeps across forwards).</summary>
    public void Forward(ReadOnlySpan<float> hidden, int tokens, int[] ids, float[] routingWeights, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(routingWeights);
        if (_slots is null)
            throw new InvalidOperationException("given routing needs the slot path: create the layer with WithEplb or CreateRandom");
        long pairs = (long)tokens * Config.TopK;
        if (ids.Length != pairs || routingWeights.Length != pairs)
            throw new ArgumentException($"ids has {ids.Length} and weights {routingWeights.Length} entries; [T={tokens}, k={Config.TopK}] needs {pairs}");
        foreach (int id in ids)
            if ((uint)id >= (uint)Config.NumExperts)
                throw new ArgumentException($"expert id {id} is outside [0, {Config.NumExperts})", nameof(ids));
        ForwardOverSlots(hidden, tokens, (ids, routingWeights), output);
    }

    private void ForwardOverSlots(ReadOnlySpan<float> hidden, int tokens, (int[] Ids, float[] Weights)? given, Span<float> output)
    {
        var slots = _slots!;
        int n = Ranks, h = Config.HiddenSize, k = Config.TopK, e = Config.NumExperts, s = ExpertsPerRank, p = n * s;
        CheckShapes(hidden, tokens, output);
        slots.BeginForward();
        var share = Enumerable.Range(0, n).Select(r => TokenStart(tokens, n, r + 1) - TokenStart(tokens, n, r)).ToArray();
        var views = new (MoeWorkspace Workspace, MemoryBuffer Input, MemoryBuffer<float> Output)[n];
        // 1. Each rank: route its own tokens, record the load, map logical ids to physical slots, permute by slot,
        //    read its slot offsets back (all ranks enqueued before the host waits).
        for (int r = 0; r < n; r++)
        {
            var buffers = Buffers(r);
            int start = TokenStart(tokens, n, r), t = share[r];
            views[r] = buffers.ForTokens(t);
            var (ws, input, _) = views[r];
            buffers.Input.Upload(hidden.Slice(start * h, t * h), input);
            if (t == 0)
                continue;
            if (given is var (ids, weights))
            {
                ws.Ids.CopyFrom(ids.AsSpan(start * k, t * k));
                ws.RoutingWeights.CopyFrom(weights.AsSpan(start * k, t * k));
                var counts = new int[e];
                foreach (int id in ids.AsSpan(start * k, t * k))
                    counts[id]++;
                ws.RoutedCounts.CopyFrom(counts);
            }
            else
                _layers[r].Route(input, ws, null);
            slots.Load(r).Record(ws.RoutedCounts);
            var (physical, permuteWorkspace) = buffers.SlotViews(t);
            ReplicaRouting.Run(ws.Ids, slots.Table(r), physical);
            Permute.Run(physical, t, k, p, 1, buffers.SlotCounts!, buffers.SlotOffsets!, ws.RowOfSlot, ws.TokenOfRow, input, h, ws.Gathered, permuteWorkspace);
            buffers.Offsets.Download(buffers.SlotOffsets!);
        }
        WaitForRanks();
        // 2. Dispatch sizes: rows of rank r for rank d, from r's slot offsets (rank d holds slots [d*s, (d+1)*s)).
        var rowsPerSlot = RowsPerGroup(share, p);
        var (sendRows, received) = SendAndReceivedRows(rowsPerSlot);
        LastTokensPerRank = share;
        LastRowsPerRank = received;
        LastRowsPerHeldExpert = HeldRows(rowsPerSlot, s);
        var receiveRows = new MemoryBuffer[n];
        var gatheredViews = new MemoryBuffer[n];
        for (int d = 0; d < n; d++)
        {
            var rows = Buffers(d).Received;
            rows.Reserve(checked((int)received[d]), checked(tokens * k));
            receiveRows[d] = rows.Received(checked((int)received[d]));
            gatheredViews[d] = views[d].Workspace.Gathered;
        }
        // 3. Dispatch: rank d receives [source rank][its slot] rows.
        _communicator.AllToAllV(gatheredViews, Scale(sendRows, h), receiveRows, Streams);
        // 4. Each rank: sort received rows by local slot, run the slot weights, put rows back in received order.
        RunExpertsOnRanks(received, rowsPerSlot, s, d => (slots.Store(d).GateUp, slots.Store(d).Down), timed: false);
        var returned = Enumerable.Range(0, n).Select(d => (MemoryBuffer)Buffers(d).Received.Returned(checked((int)received[d]))).ToArray();
        // 5. Combine back: rank r gets its rows in its own slot order (the order of its gathered rows).
        _communicator.AllToAllV(returned, Scale(Transpose(sendRows), h), views.Select(v => (MemoryBuffer)v.Workspace.ExpertOutput).ToArray(), Streams);
        // 6. Each rank: weighted sum over its tokens' k choices, plus its shared experts; then the rows back to the host.
        for (int r = 0; r < n; r++)
        {
            if (share[r] == 0)
                continue;
            var ws = views[r].Workspace;
            var residual = _layers[r].RunSharedExperts(views[r].Input, ws, null);
            Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, share[r], k, h, views[r].Output, residual);
            Buffers(r).Output.Download(views[r].Output);
        }
        CopyOutputs(tokens, share, output);
        slots.EndForward();
    }
}
