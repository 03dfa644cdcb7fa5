using MoeRuntime.Runtime.Eplb;
using MoeRuntime.Runtime.Parallel.Eplb;

namespace MoeRuntime.Cli.Commands;

/// <summary>The EPLB options of <c>moe run --parallel ep</c>: <c>--eplb static:loads.json|online [--redundant R] [--rebalance-every K]</c>.</summary>
internal static class EplbArguments
{
    /// <summary>The layer's EPLB options, or null without <c>--eplb</c>; throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public static EplbOptions? Parse(string? eplb, int? redundant, int? rebalanceEvery, string? parallel)
    {
        if (eplb is null)
        {
            if (redundant is not null)
                throw new ArgumentException("--redundant needs --eplb static:loads.json or --eplb online");
            if (rebalanceEvery is not null)
                throw new ArgumentException("--rebalance-every needs --eplb online");
            return null;
        }
        if (parallel?.Trim().ToLowerInvariant() != "ep")
            throw new ArgumentException($"--eplb {eplb} needs --parallel ep");
        if (redundant is < 0)
            throw new ArgumentException($"--redundant is {redundant}; it must be >= 0");
        if (rebalanceEvery is < 1)
            throw new ArgumentException($"--rebalance-every is {rebalanceEvery}; it must be >= 1");
        string spec = eplb.Trim();
        if (spec.Equals("online", StringComparison.OrdinalIgnoreCase))
            return new EplbOptions { Mode = EplbMode.Online, Redundant = redundant ?? 0, RebalanceEvery = rebalanceEvery ?? 8 };
        if (spec.StartsWith("static:", StringComparison.OrdinalIgnoreCase) && spec.Length > "static:".Length)
        {
            if (rebalanceEvery is not null)
                throw new ArgumentException("--rebalance-every is for --eplb online; a static placement never changes");
            string path = spec["static:".Length..];
            if (!File.Exists(path))
                throw new FileNotFoundException($"--eplb {eplb}: load profile {path} does not exist");
            long[] loads;
            try
            {
                loads = PlacementFile.ReadLoads(path);
            }
            catch (FormatException e)
            {
                throw new ArgumentException($"--eplb {eplb}: {e.Message}");
            }
            return new EplbOptions { Mode = EplbMode.Static, Redundant = redundant ?? 0, Loads = loads };
        }
        throw new ArgumentException($"--eplb {eplb}: static:LOADS.json or online");
    }
}
