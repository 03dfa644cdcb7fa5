namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// The online EPLB policy for one layer (the layer owns the weights and performs the copies):
/// <code>
/// each forward:  placement = BeginForward()      // the slot table to route with; switches only here
///                ... routing, ExpertLoad.Record(counts), experts ...
///                rebalance = EndForward(window)   // every K forwards: a new plan from the window, or null
/// a rebalance:   copy rebalance.Plan.Moves wave by wave (side stream, P2P) into the physical slots,
///                then CompleteMigration() once every copy has finished (e.g. after the copy stream's event).
/// </code>
/// The new placement becomes current at the first <see cref="BeginForward"/> after <see cref="CompleteMigration"/>, so
/// no forward routes to a slot whose copy is unfinished. While a migration is in flight no other is started.
/// The layer must not run a forward that reads the slots a plan writes while its copies run (copies go between
/// forwards, or into slots no forward of the old table reads).
/// </summary>
public sealed class OnlineEplb
{
    private Placement? _next;
    private bool _copiesDone;
    private long _forwards;

    public OnlineEplb(Placement initial, int rebalanceEvery, int groups = 1, double minImprovement = 0.0)
    {
        ArgumentNullException.ThrowIfNull(initial);
        if (rebalanceEvery <= 0)
            throw new ArgumentOutOfRangeException(nameof(rebalanceEvery), rebalanceEvery, "rebalance every K >= 1 forwards");
        if (groups <= 0 || initial.Gpus % groups != 0 || initial.Experts % groups != 0)
            throw new ArgumentException($"{groups} groups must divide both {initial.Gpus} GPUs and {initial.Experts} experts", nameof(groups));
        if (!(minImprovement >= 0))
            throw new ArgumentOutOfRangeException(nameof(minImprovement), minImprovement, "the minimum balance improvement must be >= 0");
        Current = initial;
        RebalanceEvery = rebalanceEvery;
        Groups = groups;
        MinImprovement = minImprovement;
    }

    public Placement Current { get; private set; }
    public int RebalanceEvery { get; }
    public int Groups { get; }

    /// <summary>A new plan is kept only if it lowers the balance on the window by more than this (e.g. 0.02).</summary>
    public double MinImprovement { get; }

    public bool MigrationInFlight => _next is not null;
    public int Migrations { get; private set; }

    /// <summary>The placement this forward routes with; a finished migration takes effect here, at the boundary.</summary>
    public Placement BeginForward()
    {
        if (_next is not null && _copiesDone)
        {
            Current = _next;
            _next = null;
            _copiesDone = false;
            Migrations++;
        }
        return Current;
    }

    /// <summary>
    /// Ends a forward. Every <see cref="RebalanceEvery"/> forwards (when no migration is in flight) plans from
    /// <paramref name="windowLoads"/> (tokens per expert over the window, e.g. <see cref="ExpertLoad.ReadWindow"/>) and
    /// returns the moves to make, or null when nothing is due or the plan would not improve the balance enough.
    /// </summary>
    public MigrationPlan? EndForward(Func<ReadOnlySpan<long>> windowLoads)
    {
        ArgumentNullException.ThrowIfNull(windowLoads);
        _forwards++;
        if (_forwards % RebalanceEvery != 0 || _next is not null)
            return null;
        var loads = windowLoads();
        if (loads.Length != Current.Experts)
            throw new ArgumentException($"window has {loads.Length} expert loads; the layer has {Current.Experts} experts", nameof(windowLoads));
        var asDouble = new double[loads.Length];
        for (int e = 0; e < loads.Length; e++)
            asDouble[e] = loads[e];
        var planned = MigrationPlan.AlignSlots(Current, EplbPlanner.Plan(asDouble, Current.Gpus, Current.SlotsPerGpu, Groups));
        if (planned.SameSlotsAs(Current) || planned.Balance(asDouble) > Current.Balance(asDouble) - MinImprovement - 1e-12)
            return null;
        var plan = MigrationPlan.Create(Current, planned);
        _next = planned;
        _copiesDone = false;
        return plan;
    }

    /// <summary>Says that every copy of the plan in flight has finished; the switch happens at the next forward boundary.</summary>
    public void CompleteMigration()
    {
        if (_next is null)
            throw new InvalidOperationException("no migration is in flight");
        _copiesDone = true;
    }
}
