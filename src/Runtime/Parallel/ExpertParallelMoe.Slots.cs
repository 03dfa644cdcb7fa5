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
        return ForwardOverSlots(hidden, tokens, (ids, routingWeights));
    }

    private float[] ForwardOverSlots(ReadOnlySpan<float> hidden, int tokens, (int[] Ids, float[] Weights)? given)
    {
        var slots = _slots!;
        int n = Ranks, h = Config.HiddenSize, k = Config.TopK, e = Config.NumExperts, s = ExpertsPerRank, p = n * s;
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        slots.BeginForward();
        var result = new float[(long)tokens * h];
        var owned = new List<IDisposable>();
        T Own<T>(T d) where T : IDisposable
        {
            owned.Add(d);
            return d;
        }
        try
        {
            var share = Enumerable.Range(0, n).Select(r => TokenStart(tokens, n, r + 1) - TokenStart(tokens, n, r)).ToArray();
            var workspaces = new MoeWorkspace[n];
            var inputs = new MemoryBuffer[n];
            var host = hidden.ToArray();
            var rowsPerSlot = new long[n, p];
            // 1. Each rank: route its own tokens, record the load, map logical ids to physical slots, permute by slot.
            for (int r = 0; r < n; r++)
            {
                var a = _weights[r].Accelerator;
                int start = TokenStart(tokens, n, r), t = share[r];
                inputs[r] = Own(DeviceMoeWeights.UploadFloats(a, host[(start * h)..((start + t) * h)], _weights[r].DType));
                var ws = workspaces[r] = Own(new MoeWorkspace(_weights[r], t));
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
                    _layers[r].Route(inputs[r], ws, null);
                slots.Load(r).Record(ws.RoutedCounts);
                var physical = Own(a.Allocate<int>((long)t * k));
                ReplicaRouting.Run(ws.Ids, slots.Table(r), physical);
                var slotCounts = Own(a.Allocate<int>(p));
                var slotOffsets = Own(a.Allocate<int>(p + 1));
                var permuteWorkspace = Own(a.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(t, k, p))));
                Permute.Run(physical, t, k, p, 1, slotCounts, slotOffsets, ws.RowOfSlot, ws.TokenOfRow, inputs[r], h, ws.Gathered, permuteWorkspace);
                var offsets = slotOffsets.ToArray();
                for (int slot = 0; slot < p; slot++)
                    rowsPerSlot[r, slot] = offsets[slot + 1] - offsets[slot];
            }
            // 2. Dispatch sizes: rows of rank r for rank d, from r's slot offsets.
            var sendRows = new long[n, n];
            for (int r = 0; r < n; r++)
                for (int slot = 0; slot < p; slot++)
                    sendRows[r, slot / s] += rowsPerSlot[r, slot];
            var received = Enumerable.Range(0, n).Select(d => Enumerable.Range(0, n).Sum(r => sendRows[r, d])).ToArray();
            LastTokensPerRank = share;
            LastRowsPerRank = received;
            var dtype = _weights[0].DType;
            var receiveRows = new MemoryBuffer[n];
            var gatheredViews = new MemoryBuffer[n];
            for (int d = 0; d < n; d++)
            {
                receiveRows[d] = Own(_weights[d].Accelerator.Allocate(dtype, Math.Max(1, received[d]) * h));
                gatheredViews[d] = workspaces[d].Gathered;
            }
            // 3. Dispatch: rank d receives [source rank][its slot] rows.
            _communicator.AllToAllV(gatheredViews, Scale(sendRows, h), receiveRows);
            // 4. Each rank: sort received rows by local slot, run the slot weights, put rows back in received order.
            var returned = new MemoryBuffer<float>[n];
            for (int d = 0; d < n; d++)
            {
                var a = _weights[d].Accelerator;
                int rows = checked((int)received[d]);
                returned[d] = Own(a.Allocate<float>(Math.Max(1, rows) * (long)h));
                if (rows == 0)
                    continue;
                var store = slots.Store(d);
                RunReceivedRows(d, rows, receiveRows[d], rowsPerSlot, s, store.GateUp, store.Down, returned[d], owned);
            }
            // 5. Combine back: rank r gets its rows in its own slot order (the order of its gathered rows).
            var expertOutputs = new MemoryBuffer[n];
            for (int r = 0; r < n; r++)
                expertOutputs[r] = workspaces[r].ExpertOutput;
            _communicator.AllToAllV(returned, Scale(Transpose(sendRows), h), expertOutputs);
            // 6. Each rank: weighted sum over its tokens' k choices, plus its shared experts.
            for (int r = 0; r < n; r++)
            {
                if (share[r] == 0)
                    continue;
                var ws = workspaces[r];
                var output = Own(_weights[r].Accelerator.Allocate<float>((long)share[r] * h));
                var residual = _layers[r].RunSharedExperts(inputs[r], ws, null);
                Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, share[r], k, h, output, residual);
                output.CopyTo(result.AsSpan(TokenStart(tokens, n, r) * h, share[r] * h));
            }
        }
        finally
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
        }
        slots.EndForward();
        return result;
    }
}
