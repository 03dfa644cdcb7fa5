namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// One copy of expert weights: <see cref="Expert"/>'s weights from <see cref="SourceSlot"/> into <see cref="DestinationSlot"/>.
/// Slots are physical slot ids (<c>gpu * S + slot</c>); ids from <c>G * S</c> up are staging slots, one per GPU
/// (<c>G * S + gpu</c>). Moves of one <see cref="Wave"/> are independent (no move reads a slot another writes in
/// the same wave, no two write one slot) and may run concurrently; waves run in order.
/// </summary>
public readonly record struct SlotMove(int DestinationSlot, int Expert, int SourceSlot, int Wave);

/// <summary>
/// The weight moves that turn one placement into another, in an order that never reads a slot after it has been
/// overwritten: every destination d with old[d] != new[d] gets new[d]'s weights from a slot that holds them,
/// preferring a slot that keeps its expert (on d's GPU if there is one). A slot that other moves read is written
/// only after they ran; a cycle of such slots (A needs B's expert while B needs A's) is broken by first copying
/// one of them into its GPU's staging slot. The new slot table may be used only after every move finished, at a
/// forward boundary (<see cref="OnlineEplb"/> enforces that).
/// <para>Also <see cref="AlignSlots"/>: the planner numbers slots freely, so before diffing, each GPU's new slots
/// are reordered to keep experts where they already are, which removes copies that only shuffle slots.</para>
/// </summary>
public sealed class MigrationPlan
{
    private MigrationPlan(Placement from, Placement to, IReadOnlyList<SlotMove> moves)
    {
        From = from;
        To = to;
        Moves = moves;
        Waves = moves.Count == 0 ? 0 : moves.Max(m => m.Wave) + 1;
    }

    public Placement From { get; }
    public Placement To { get; }

    /// <summary>Moves in a valid sequential order (waves ascending).</summary>
    public IReadOnlyList<SlotMove> Moves { get; }
    public int Waves { get; }
    public bool IsEmpty => Moves.Count == 0;

    public static bool IsStaging(Placement placement, int slot) => slot >= placement.PhysicalSlots;

    /// <summary>The plan that turns <paramref name="from"/> into <paramref name="to"/> (same E, G and S).</summary>
    public static MigrationPlan Create(Placement from, Placement to)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        if (from.Experts != to.Experts || from.Gpus != to.Gpus || from.SlotsPerGpu != to.SlotsPerGpu)
            throw new ArgumentException($"placements differ in shape: {from.Experts} experts on {from.Gpus}x{from.SlotsPerGpu} slots vs {to.Experts} on {to.Gpus}x{to.SlotsPerGpu}", nameof(to));
        int physical = from.PhysicalSlots, perGpu = from.SlotsPerGpu;
        var old = from.SlotExperts;
        var target = to.SlotExperts;
        var changes = new bool[physical];
        for (int p = 0; p < physical; p++)
            changes[p] = old[p] != target[p];

        // Source of each destination: a slot whose expert stays (same GPU first), else a slot that will be overwritten.
        var source = new int[physical];
        Array.Fill(source, -1);
        for (int d = 0; d < physical; d++)
        {
            if (!changes[d])
                continue;
            int expert = target[d], best = -1, bestRank = int.MaxValue;
            foreach (int s in from.PhysicalSlotsOf(expert))
            {
                int rank = (changes[s] ? 2 : 0) + (s / perGpu == d / perGpu ? 0 : 1);
                if (rank < bestRank)
                {
                    best = s;
                    bestRank = rank;
                }
            }
            if (best < 0)
                throw new InvalidOperationException($"expert {expert} has no slot in the old placement");
            source[d] = best;
        }
        var readers = new int[physical + from.Gpus];   // pending moves that read each slot (staging included)
        for (int d = 0; d < physical; d++)
            if (source[d] >= 0)
                readers[source[d]]++;

        var moves = new List<SlotMove>();
        var lastWrite = new int[physical + from.Gpus];
        var lastRead = new int[physical + from.Gpus];
        Array.Fill(lastWrite, -1);
        Array.Fill(lastRead, -1);
        void Emit(int destination, int expert, int from_)
        {
            int wave = Math.Max(lastWrite[from_] + 1, Math.Max(lastRead[destination] + 1, lastWrite[destination] + 1));
            moves.Add(new SlotMove(destination, expert, from_, wave));
            lastWrite[destination] = wave;
            lastRead[from_] = Math.Max(lastRead[from_], wave);
        }

        var pending = new HashSet<int>(Enumerable.Range(0, physical).Where(d => changes[d]));
        while (pending.Count > 0)
        {
            // Every pending destination that no pending move still reads can be written now.
            var ready = pending.Where(d => readers[d] == 0).Order().ToList();
            if (ready.Count == 0)
            {
                // Only cycles remain: stage the lowest pending slot and send its readers to the staging copy.
                int cut = pending.Min();
                int staging = physical + cut / perGpu;
                Emit(staging, old[cut], cut);
                foreach (int d in pending)
                    if (source[d] == cut)
                    {
                        source[d] = staging;
                        readers[cut]--;
                        readers[staging]++;
                    }
                continue;
            }
            foreach (int d in ready)
            {
                Emit(d, target[d], source[d]);
                readers[source[d]]--;
                pending.Remove(d);
            }
        }
        moves.Sort((a, b) => a.Wave.CompareTo(b.Wave));  // stable enough: order within a wave does not matter
        return new MigrationPlan(from, to, moves);
    }

    /// <summary>
    /// <paramref name="next"/> with each GPU's slots reordered so that an expert already in some slot of that GPU in
    /// <paramref name="current"/> stays in that slot (GPU loads and replica counts are unchanged).
    /// </summary>
    public static Placement AlignSlots(Placement current, Placement next)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(next);
        if (current.Experts != next.Experts || current.Gpus != next.Gpus || current.SlotsPerGpu != next.SlotsPerGpu)
            throw new ArgumentException("placements differ in shape", nameof(next));
        int perGpu = next.SlotsPerGpu;
        var aligned = new int[next.PhysicalSlots];
        for (int g = 0; g < next.Gpus; g++)
        {
            var wanted = next.SlotExperts.Slice(g * perGpu, perGpu).ToArray().ToList();
            var result = new int[perGpu];
            var filled = new bool[perGpu];
            for (int s = 0; s < perGpu; s++)
            {
                int expert = current.SlotExperts[g * perGpu + s];
                int at = wanted.IndexOf(expert);
                if (at >= 0)
                {
                    result[s] = expert;
                    filled[s] = true;
                    wanted.RemoveAt(at);
                }
            }
            int next_ = 0;
            for (int s = 0; s < perGpu; s++)
                if (!filled[s])
                    result[s] = wanted[next_++];
            result.CopyTo(aligned, g * perGpu);
        }
        return new Placement(next.Experts, next.Gpus, perGpu, aligned);
    }
}
