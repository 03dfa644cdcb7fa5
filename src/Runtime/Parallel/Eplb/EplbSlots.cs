using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Eplb;
using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Parallel.Eplb;

/// <summary>
/// The EPLB state of an expert-parallel layer: the placement, each device's slot weights and replica table, each
/// device's load window and, online, the migrations. Double-buffered when online:
/// <code>
/// front: stores[f][d], tables[f][d]    read by forwards (routing and experts)
/// back:  stores[b][d], tables[b][d]    written by a migration, read by nobody
///
/// forward n     BeginForward  (a finished migration swaps front and back here, at the boundary)
///               ... route (ReplicaRouting on the front table), Record(counts), dispatch, experts (front stores), combine
///               EndForward    every K forwards: plan from the summed windows; if the plan is better, write the back
///                             tables and enqueue slot copies (front -> back, peer copies across GPUs) on each
///                             device's copy stream
/// forward n+1   runs on the front while the copies run (they touch only back slots)
///               EndForward    waits for the copy streams, marks the migration complete
/// forward n+2   BeginForward  swaps: the new placement is used from here on
/// </code>
/// So no forward reads a slot being written, and a forward's routing table and weights always match.
/// The policy (<see cref="OnlineEplb"/>) returns a <see cref="MigrationPlan"/> from the current placement; its ordered,
/// staged moves are what an in-place (single-buffered) update would need. Here every copy goes from a front slot into
/// a back slot that no forward reads, so the copies need no order: each back slot whose expert differs from the new
/// placement's gets it from a front slot holding it (same device first, else a peer copy). The back store holds the
/// placement before the current one, so a migration copies at most the plan's moves plus the previous migration's.
/// </summary>
public sealed class EplbSlots : IDisposable
{
    private readonly IReadOnlyList<Accelerator> _devices;
    private readonly SlotWeightStore[][] _stores;     // [1 or 2][G]
    private readonly ReplicaTable[][] _tables;        // [1 or 2][G]
    private readonly ExpertLoad[] _loads;             // [G]
    private readonly AcceleratorStream[] _copyStreams = [];
    private readonly OnlineEplb? _online;
    private int _front;
    private bool _copiesEnqueued;
    private (AcceleratorEvent Start, AcceleratorEvent End)[] _copyEvents = [];

    public EplbSlots(IReadOnlyList<Accelerator> devices, ModelConfig config, EplbOptions options, Func<Accelerator, int[], SlotWeightStore> createStore)
    {
        ArgumentNullException.ThrowIfNull(devices);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(createStore);
        int g = devices.Count, e = config.NumExperts;
        _devices = devices;
        Options = options;
        int s = options.SlotsPerDevice(e, g);
        Current = InitialPlacement(options, e, g, s);
        int buffers = options.Mode == EplbMode.Online ? 2 : 1;
        _stores = new SlotWeightStore[buffers][];
        _tables = new ReplicaTable[buffers][];
        _loads = new ExpertLoad[g];
        try
        {
            for (int b = 0; b < buffers; b++)
            {
                _stores[b] = new SlotWeightStore[g];
                _tables[b] = new ReplicaTable[g];
            }
            for (int d = 0; d < g; d++)
            {
                var experts = Current.SlotExperts.Slice(d * s, s).ToArray();
                _stores[0][d] = createStore(devices[d], experts);
                _tables[0][d] = Current.CreateReplicaTable(devices[d]);
                if (buffers == 2)
                {
                    _stores[1][d] = _stores[0][d].Clone();
                    _tables[1][d] = Current.CreateReplicaTable(devices[d]);
                }
                _loads[d] = new ExpertLoad(devices[d], e, options.WindowForwards);
                devices[d].Synchronize();   // the back store's clone is complete before any copy stream writes it
            }
            if (options.Mode == EplbMode.Online)
            {
                _online = new OnlineEplb(Current, options.RebalanceEvery, options.Groups, options.MinImprovement);
                _copyStreams = devices.Select(a => a.CreateStream()).ToArray();
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public EplbOptions Options { get; }
    public int Devices => _devices.Count;
    public int SlotsPerDevice => Current.SlotsPerGpu;

    /// <summary>The placement forwards route with now (switches only in <see cref="BeginForward"/>).</summary>
    public Placement Current { get; private set; }

    /// <summary>Migrations that took effect (online).</summary>
    public int Migrations => _online?.Migrations ?? 0;

    /// <summary>Slot copies enqueued by all migrations so far (one expert's weights each).</summary>
    public long SlotCopies { get; private set; }

    /// <summary>Copy time of each finished migration in ms (the slowest device's copy stream, device-timed).</summary>
    public List<double> MigrationMilliseconds { get; } = [];

    /// <summary>The last migration planned (its moves and waves, for reports), or null.</summary>
    public MigrationPlan? LastPlan { get; private set; }

    /// <summary>True between enqueuing a migration's copies and waiting for them: the forward now running overlaps them.</summary>
    public bool CopiesInFlight => _copiesEnqueued;

    public SlotWeightStore Store(int device) => _stores[_front][device];
    public ReplicaTable Table(int device) => _tables[_front][device];
    public ExpertLoad Load(int device) => _loads[device];

    /// <summary>Tokens per expert over the window, summed over the devices (each records the routing of its own tokens).</summary>
    public long[] WindowLoads()
    {
        var sums = new long[Current.Experts];
        foreach (var load in _loads)
        {
            var (window, _) = load.ReadWindow();
            for (int e = 0; e < sums.Length; e++)
                sums[e] += window[e];
        }
        return sums;
    }

    /// <summary>The forward boundary: a migration whose copies have finished takes effect here.</summary>
    public void BeginForward()
    {
        if (_online is null)
            return;
        var before = _online.Current;
        Current = _online.BeginForward();
        if (!ReferenceEquals(before, Current))
            _front = 1 - _front;
    }

    /// <summary>Ends a forward: finishes a migration whose copies overlapped it, and every K forwards plans the next.</summary>
    public void EndForward()
    {
        if (_online is null)
            return;
        if (_copiesEnqueued)
            FinishCopies();
        var plan = _online.EndForward(() => WindowLoads());
        if (plan is not null)
        {
            LastPlan = plan;
            StartMigration(plan.To);
        }
    }

    private void StartMigration(Placement target)
    {
        int back = 1 - _front, s = target.SlotsPerGpu;
        var front = _stores[_front];
        _copyEvents = new (AcceleratorEvent, AcceleratorEvent)[Devices];
        for (int d = 0; d < Devices; d++)
        {
            _tables[back][d].Update(target.ReplicaOffsets, target.ReplicaSlots);
            var stream = _copyStreams[d];
            var start = _devices[d].CreateEvent();
            var end = _devices[d].CreateEvent();
            _copyEvents[d] = (start, end);
            start.Record(stream);
            var store = _stores[back][d];
            for (int slot = 0; slot < s; slot++)
            {
                int expert = target.SlotExperts[d * s + slot];
                if (store.Experts[slot] == expert)
                    continue;
                var (sourceDevice, sourceSlot) = FindSource(front, expert, d);
                store.CopySlot(slot, front[sourceDevice], sourceSlot, stream);
                SlotCopies++;
            }
            end.Record(stream);
        }
        _copiesEnqueued = true;
    }

    /// <summary>A front slot holding <paramref name="expert"/>, on <paramref name="preferred"/> if it has one.</summary>
    private static (int Device, int Slot) FindSource(SlotWeightStore[] front, int expert, int preferred)
    {
        for (int i = 0; i < front.Length; i++)
        {
            int d = (preferred + i) % front.Length;
            int slot = front[d].Experts.IndexOf(expert);
            if (slot >= 0)
                return (d, slot);
        }
        throw new InvalidOperationException($"expert {expert} is in no slot of the current placement");
    }

    private void FinishCopies()
    {
        double slowest = 0;
        foreach (var (start, end) in _copyEvents)
        {
            end.Synchronize();
            slowest = Math.Max(slowest, end.ElapsedMillisecondsSince(start));
            start.Dispose();
            end.Dispose();
        }
        _copyEvents = [];
        MigrationMilliseconds.Add(slowest);
        _copiesEnqueued = false;
        _online!.CompleteMigration();
    }

    private static Placement InitialPlacement(EplbOptions options, int experts, int devices, int slotsPerDevice)
    {
        if (options.Loads is { } loads)
        {
            if (loads.Length != experts)
                throw new ArgumentException($"the load profile has {loads.Length} per-expert counts; the layer has {experts} experts");
            return EplbPlanner.Plan(loads, devices, slotsPerDevice, options.Groups);
        }
        if (options.Mode == EplbMode.Static)
            throw new ArgumentException("static EPLB needs a load profile (EplbOptions.Loads)");
        if (options.Redundant == 0 && experts % devices == 0)
            return Placement.Contiguous(experts, devices);
        // Online with no profile: plan for uniform load (replicas spread, the window corrects it).
        return EplbPlanner.Plan(Enumerable.Repeat(1L, experts).ToArray(), devices, slotsPerDevice, options.Groups);
    }

    public void Dispose()
    {
        if (_copiesEnqueued)
        {
            foreach (var (start, end) in _copyEvents)
            {
                end.Synchronize();
                start.Dispose();
                end.Dispose();
            }
        }
        foreach (var stream in _copyStreams)
            stream?.Dispose();
        foreach (var set in _stores)
            foreach (var store in set ?? [])
                store?.Dispose();
        foreach (var set in _tables)
            foreach (var table in set ?? [])
                table?.Dispose();
        foreach (var load in _loads)
            load?.Dispose();
    }
}
