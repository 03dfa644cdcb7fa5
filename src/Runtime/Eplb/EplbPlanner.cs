namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// Chooses a <see cref="Placement"/> for per-expert loads: G GPUs, S slots each (S*G >= E).
/// <list type="number">
/// <item>Replica counts: every expert starts with one replica; each spare slot goes, one at a time, to the expert
/// with the highest load per replica (ties: lowest id).</item>
/// <item>Packing: replicas heaviest first (weight load/replicas), each to the least-loaded GPU that has a free
/// slot and does not yet hold that expert (if every GPU with room holds it, the least-loaded GPU with room).</item>
/// <item>Refinement: while a swap of two replicas between the most loaded GPU and another GPU lowers the
/// larger of the two loads, make the best such swap (greedy packing alone is not optimal: {3,3,2,2,2} on two GPUs
/// packs to 7/5 where 6/6 exists).</item>
/// <item>Never worse than no balancer: when E is a multiple of G the contiguous layout, its spare slots padded with
/// second replicas of experts already on that GPU (which leaves every GPU's load unchanged), is refined the
/// same way, and the better of the two plans is kept.</item>
/// </list>
/// Hierarchical variant (<c>groups</c> = nodes of G/groups GPUs): experts are first packed onto nodes (heaviest
/// first, to the lightest node with room for E/groups experts), then each node is planned as above with its own
/// GPUs and slots, so hot experts are replicated only inside their node (copies and tokens stay on the node).
/// <para>
/// Compared with DeepSeek's EPLB (eplb.py): the replication rule is the same; DeepSeek packs with a balanced
/// packing that fixes the number of items per GPU and does not avoid two replicas of one expert on a GPU, and it
/// has no refinement or baseline guard. Here the slot count is the only capacity, duplicates on a GPU are avoided
/// when possible, and pairwise swaps repair the greedy packing.
/// </para>
/// </summary>
public static class EplbPlanner
{
    /// <summary>Plans <paramref name="gpus"/> x <paramref name="slotsPerGpu"/> slots for <paramref name="expertLoads"/> (tokens per expert, >= 0).</summary>
    public static Placement Plan(ReadOnlySpan<double> expertLoads, int gpus, int slotsPerGpu, int groups = 1)
    {
        Validate(expertLoads, gpus, slotsPerGpu, groups);
        var loads = expertLoads.ToArray();
        int experts = loads.Length;
        int[] slots = groups == 1
            ? PlanFlat(loads, Enumerable.Range(0, experts).ToArray(), gpus, slotsPerGpu)
            : PlanHierarchical(loads, gpus, slotsPerGpu, groups);
        if (experts % gpus == 0)
        {
            // Guard: when the plan is worse than the contiguous baseline, keep the better of the plan and the
            // refined baseline (padding leaves the baseline's GPU loads as they are, so it starts at "none").
            var baseline = PaddedContiguous(experts, gpus, slotsPerGpu, groups);
            double planMax = MaxLoad(loads, slots, gpus, slotsPerGpu);
            if (MaxLoad(loads, baseline, gpus, slotsPerGpu) < planMax)
            {
                Refine(loads, baseline, gpus, slotsPerGpu, groups);
                if (MaxLoad(loads, baseline, gpus, slotsPerGpu) < planMax * (1 - 1e-12))
                    slots = baseline;
            }
        }
        return new Placement(experts, gpus, slotsPerGpu, slots);
    }

    public static Placement Plan(ReadOnlySpan<long> expertLoads, int gpus, int slotsPerGpu, int groups = 1)
    {
        var loads = new double[expertLoads.Length];
        for (int e = 0; e < loads.Length; e++)
            loads[e] = expertLoads[e];
        return Plan(loads, gpus, slotsPerGpu, groups);
    }

    /// <summary>Throws with the argument's name when the shape cannot be planned.</summary>
    public static void Validate(ReadOnlySpan<double> expertLoads, int gpus, int slotsPerGpu, int groups)
    {
        if (expertLoads.Length == 0)
            throw new ArgumentException("no expert loads: need at least one expert", nameof(expertLoads));
        for (int e = 0; e < expertLoads.Length; e++)
            if (!(expertLoads[e] >= 0) || double.IsInfinity(expertLoads[e]))
                throw new ArgumentException($"load of expert {e} is {expertLoads[e]}; loads must be finite and >= 0", nameof(expertLoads));
        if (gpus <= 0)
            throw new ArgumentOutOfRangeException(nameof(gpus), gpus, "the number of GPUs must be positive");
        if (slotsPerGpu <= 0)
            throw new ArgumentOutOfRangeException(nameof(slotsPerGpu), slotsPerGpu, "the number of slots per GPU must be positive");
        if ((long)gpus * slotsPerGpu < expertLoads.Length)
            throw new ArgumentException($"{gpus} GPUs x {slotsPerGpu} slots = {(long)gpus * slotsPerGpu} slots cannot hold {expertLoads.Length} experts (need S*G >= E)", nameof(slotsPerGpu));
        if (groups <= 0)
            throw new ArgumentOutOfRangeException(nameof(groups), groups, "the number of groups (nodes) must be positive");
        if (gpus % groups != 0)
            throw new ArgumentException($"{gpus} GPUs do not split into {groups} equal groups (G must be a multiple of the group count)", nameof(groups));
        if (expertLoads.Length % groups != 0)
            throw new ArgumentException($"{expertLoads.Length} experts do not split into {groups} equal groups (E must be a multiple of the group count)", nameof(groups));
    }

    /// <summary>Flat plan of <paramref name="members"/> (global expert ids) onto <paramref name="gpus"/> x S slots; returns global expert ids per local slot.</summary>
    private static int[] PlanFlat(double[] loads, int[] members, int gpus, int slotsPerGpu)
    {
        int n = members.Length;
        int totalSlots = gpus * slotsPerGpu;
        // 1. Replica counts: spare slots to the expert with the highest load per replica.
        var replicas = new int[n];
        Array.Fill(replicas, 1);
        var queue = new PriorityQueue<int, (double NegPerReplica, int Member)>();
        for (int i = 0; i < n; i++)
            queue.Enqueue(i, (-loads[members[i]], i));
        for (int spare = totalSlots - n; spare > 0; spare--)
        {
            int i = queue.Dequeue();
            replicas[i]++;
            queue.Enqueue(i, (-loads[members[i]] / replicas[i], i));
        }
        // 2. Pack replicas heaviest first onto the least-loaded GPU with room, avoiding duplicates.
        var items = new List<(double Weight, int Member)>(totalSlots);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < replicas[i]; r++)
                items.Add((loads[members[i]] / replicas[i], i));
        items.Sort((a, b) => a.Weight != b.Weight ? b.Weight.CompareTo(a.Weight) : a.Member.CompareTo(b.Member));
        var gpuLoad = new double[gpus];
        var used = new int[gpus];
        var holds = new HashSet<(int Gpu, int Member)>();
        var slots = new int[totalSlots];
        foreach (var (weight, member) in items)
        {
            int best = -1;
            for (int pass = 0; pass < 2 && best < 0; pass++)
                for (int g = 0; g < gpus; g++)
                {
                    if (used[g] == slotsPerGpu || (pass == 0 && holds.Contains((g, member))))
                        continue;
                    if (best < 0 || gpuLoad[g] < gpuLoad[best])
                        best = g;
                }
            slots[best * slotsPerGpu + used[best]++] = members[member];
            gpuLoad[best] += weight;
            holds.Add((best, member));
        }
        Refine(loads, slots, gpus, slotsPerGpu, 1);
        return slots;
    }

    private static int[] PlanHierarchical(double[] loads, int gpus, int slotsPerGpu, int groups)
    {
        int experts = loads.Length;
        int perNode = experts / groups;
        int gpusPerNode = gpus / groups;
        // Experts heaviest first to the lightest node that still has room for E/groups experts.
        var order = Enumerable.Range(0, experts).OrderByDescending(e => loads[e]).ThenBy(e => e).ToArray();
        var nodeLoad = new double[groups];
        var nodeMembers = Enumerable.Range(0, groups).Select(_ => new List<int>()).ToArray();
        foreach (int e in order)
        {
            int best = -1;
            for (int node = 0; node < groups; node++)
                if (nodeMembers[node].Count < perNode && (best < 0 || nodeLoad[node] < nodeLoad[best]))
                    best = node;
            nodeMembers[best].Add(e);
            nodeLoad[best] += loads[e];
        }
        var slots = new int[gpus * slotsPerGpu];
        for (int node = 0; node < groups; node++)
        {
            var members = nodeMembers[node].Order().ToArray();
            var nodeSlots = PlanFlat(loads, members, gpusPerNode, slotsPerGpu);
            nodeSlots.CopyTo(slots, node * gpusPerNode * slotsPerGpu);
        }
        return slots;
    }

    /// <summary>Contiguous experts (E/G per GPU), each GPU's spare slots filled with second replicas of its own experts.</summary>
    private static int[] PaddedContiguous(int experts, int gpus, int slotsPerGpu, int groups)
    {
        int perGpu = experts / gpus;
        var slots = new int[gpus * slotsPerGpu];
        for (int g = 0; g < gpus; g++)
            for (int s = 0; s < slotsPerGpu; s++)
                slots[g * slotsPerGpu + s] = g * perGpu + s % perGpu;
        _ = groups; // contiguous experts of a GPU stay on that GPU's node, so the layout respects any grouping
        return slots;
    }

    /// <summary>
    /// Pairwise swaps between the most loaded GPU and any other GPU of the same group, while one lowers the larger
    /// of the two loads; swaps that would put a second replica of an expert on a GPU are not made.
    /// </summary>
    private static void Refine(double[] loads, int[] slots, int gpus, int slotsPerGpu, int groups)
    {
        int experts = loads.Length;
        var replicas = new int[experts];
        foreach (int e in slots)
            replicas[e]++;
        double Weight(int e) => loads[e] / replicas[e];
        var gpuLoad = new double[gpus];
        var copiesOn = new Dictionary<(int Gpu, int Expert), int>();
        for (int p = 0; p < slots.Length; p++)
        {
            gpuLoad[p / slotsPerGpu] += Weight(slots[p]);
            copiesOn[(p / slotsPerGpu, slots[p])] = copiesOn.GetValueOrDefault((p / slotsPerGpu, slots[p])) + 1;
        }
        double total = gpuLoad.Sum();
        double epsilon = 1e-12 * Math.Max(total, 1e-300);
        int gpusPerGroup = gpus / groups;
        for (int iteration = 0; iteration < 4 * slots.Length; iteration++)
        {
            int hot = 0;
            for (int g = 1; g < gpus; g++)
                if (gpuLoad[g] > gpuLoad[hot])
                    hot = g;
            double bestPeak = gpuLoad[hot] - epsilon;
            int bestA = -1, bestB = -1;
            int groupStart = hot / gpusPerGroup * gpusPerGroup;
            for (int other = groupStart; other < groupStart + gpusPerGroup; other++)
            {
                if (other == hot)
                    continue;
                for (int i = hot * slotsPerGpu; i < (hot + 1) * slotsPerGpu; i++)
                    for (int j = other * slotsPerGpu; j < (other + 1) * slotsPerGpu; j++)
                    {
                        int x = slots[i], y = slots[j];
                        double delta = Weight(x) - Weight(y);
                        if (x == y || delta <= 0 || copiesOn.ContainsKey((other, x)) || copiesOn.ContainsKey((hot, y)))
                            continue;
                        double peak = Math.Max(gpuLoad[hot] - delta, gpuLoad[other] + delta);
                        if (peak < bestPeak)
                        {
                            bestPeak = peak;
                            bestA = i;
                            bestB = j;
                        }
                    }
            }
            if (bestA < 0)
                return;
            int a = slots[bestA], b = slots[bestB], otherGpu = bestB / slotsPerGpu;
            double d = Weight(a) - Weight(b);
            gpuLoad[hot] -= d;
            gpuLoad[otherGpu] += d;
            Decrement(copiesOn, (hot, a));
            Decrement(copiesOn, (otherGpu, b));
            copiesOn[(otherGpu, a)] = copiesOn.GetValueOrDefault((otherGpu, a)) + 1;
            copiesOn[(hot, b)] = copiesOn.GetValueOrDefault((hot, b)) + 1;
            (slots[bestA], slots[bestB]) = (b, a);
        }
    }

    private static void Decrement(Dictionary<(int, int), int> counts, (int, int) key)
    {
        if (--counts[key] == 0)
            counts.Remove(key);
    }

    private static double MaxLoad(double[] loads, int[] slots, int gpus, int slotsPerGpu)
    {
        var replicas = new int[loads.Length];
        foreach (int e in slots)
            replicas[e]++;
        var gpuLoad = new double[gpus];
        for (int p = 0; p < slots.Length; p++)
            gpuLoad[p / slotsPerGpu] += loads[slots[p]] / replicas[slots[p]];
        return gpuLoad.Max();
    }
}
