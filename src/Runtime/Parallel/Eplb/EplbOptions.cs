namespace MoeRuntime.Runtime.Parallel.Eplb;

/// <summary>How the expert-parallel layer places its experts over slots.</summary>
public enum EplbMode
{
    /// <summary>No balancer, but through the slot path: E/G contiguous experts per device, no replicas (a baseline).</summary>
    None,

    /// <summary>A placement planned once, before the run, from a saved load profile (<see cref="EplbOptions.Loads"/>).</summary>
    Static,

    /// <summary>Re-planned from the device load window every <see cref="EplbOptions.RebalanceEvery"/> forwards; weights migrate between forwards.</summary>
    Online,
}

/// <summary>
/// EPLB settings of an <see cref="ExpertParallelMoe"/>: G devices get S = (E + R) / G slots each (R redundant slots,
/// so (E + R) must be a multiple of G).
/// </summary>
public sealed record EplbOptions
{
    public EplbMode Mode { get; init; } = EplbMode.Online;

    /// <summary>R: physical slots beyond one per expert, for replicas of hot experts.</summary>
    public int Redundant { get; init; }

    /// <summary>Tokens per expert: the static profile (required for <see cref="EplbMode.Static"/>); for online, the optional first plan.</summary>
    public long[]? Loads { get; init; }

    /// <summary>K: online EPLB plans every K forwards.</summary>
    public int RebalanceEvery { get; init; } = 8;

    /// <summary>W: forwards in the device load window the online planner reads.</summary>
    public int WindowForwards { get; init; } = 16;

    /// <summary>Groups of devices (e.g. nodes) for the hierarchical planner; 1 plans flat.</summary>
    public int Groups { get; init; } = 1;

    /// <summary>A new online plan is used only if it lowers the window's balance (max / mean device load) by more than this.</summary>
    public double MinImprovement { get; init; } = 0.02;

    /// <summary>Slots per device for <paramref name="experts"/> experts on <paramref name="devices"/> devices; throws when they do not divide.</summary>
    public int SlotsPerDevice(int experts, int devices)
    {
        if (Redundant < 0)
            throw new ArgumentOutOfRangeException(nameof(Redundant), Redundant, "redundant slots must be >= 0");
        if (Mode == EplbMode.None && Redundant != 0)
            throw new ArgumentException($"{Redundant} redundant slots without a balancer: replicas need --eplb static or online");
        if ((experts + Redundant) % devices != 0)
            throw new ArgumentException($"{experts} experts + {Redundant} redundant slots = {experts + Redundant} do not split evenly over {devices} devices");
        return (experts + Redundant) / devices;
    }
}
