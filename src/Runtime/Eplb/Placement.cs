namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// Where the replicas of E logical experts live: G GPUs with S slots each, every slot holding the weights of
/// one logical expert. Physical slot ids are global: slot s of GPU g is <c>g * S + s</c>.
/// Every expert has at least one replica; an expert's tokens are split evenly over its replicas, so a GPU's
/// load is the sum over its slots of <c>load[expert] / replicaCount[expert]</c>.
/// <para>Example: E=3, G=2, S=2, slots [[0, 2], [1, 0]]: expert 0 has replicas in physical slots 0 and 3,
/// replica counts [2, 1, 1], logical->physical offsets [0, 2, 3, 4] into physical ids [0, 3, 2, 1].</para>
/// </summary>
public sealed class Placement
{
    private readonly int[] _slotExperts;        // [G * S]: physical slot -> logical expert
    private readonly int[] _replicaCounts;      // [E]
    private readonly int[] _replicaOffsets;     // [E + 1]: expert e's replicas are _replicaSlots[offsets[e] .. offsets[e+1])
    private readonly int[] _replicaSlots;       // [G * S]: physical slot ids grouped by expert, ascending within an expert

    /// <summary>A placement from its slot table <paramref name="slots"/>[gpu][slot] = logical expert id.</summary>
    public Placement(int experts, IReadOnlyList<IReadOnlyList<int>> slots)
        : this(experts, slots.Count, Validate(experts, slots)) { }

    private static (int, int[]) Validate(int experts, IReadOnlyList<IReadOnlyList<int>> slots)
    {
        ArgumentNullException.ThrowIfNull(slots);
        if (slots.Count == 0)
            throw new ArgumentException("a placement needs at least one GPU", nameof(slots));
        int perGpu = slots[0].Count;
        var flat = new int[checked(slots.Count * perGpu)];
        for (int g = 0; g < slots.Count; g++)
        {
            if (slots[g].Count != perGpu)
                throw new ArgumentException($"GPU {g} has {slots[g].Count} slots; GPU 0 has {perGpu} (every GPU must have the same number)", nameof(slots));
            for (int s = 0; s < perGpu; s++)
                flat[g * perGpu + s] = slots[g][s];
        }
        return (perGpu, flat);
    }

    private Placement(int experts, int gpus, (int PerGpu, int[] Flat) table)
        : this(experts, gpus, table.PerGpu, table.Flat) { }

    /// <summary>A placement from the flat slot table [G * S] (physical slot -> logical expert); the array is copied.</summary>
    public Placement(int experts, int gpus, int slotsPerGpu, ReadOnlySpan<int> slotExperts)
    {
        if (experts <= 0)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, "the number of experts must be positive");
        if (gpus <= 0)
            throw new ArgumentOutOfRangeException(nameof(gpus), gpus, "the number of GPUs must be positive");
        if (slotsPerGpu <= 0)
            throw new ArgumentOutOfRangeException(nameof(slotsPerGpu), slotsPerGpu, "the number of slots per GPU must be positive");
        if (slotExperts.Length != (long)gpus * slotsPerGpu)
            throw new ArgumentException($"slot table has {slotExperts.Length} entries; {gpus} GPUs x {slotsPerGpu} slots need {(long)gpus * slotsPerGpu}", nameof(slotExperts));
        Experts = experts;
        Gpus = gpus;
        SlotsPerGpu = slotsPerGpu;
        _slotExperts = slotExperts.ToArray();
        _replicaCounts = new int[experts];
        for (int p = 0; p < _slotExperts.Length; p++)
        {
            int e = _slotExperts[p];
            if ((uint)e >= (uint)experts)
                throw new ArgumentException($"slot {p % slotsPerGpu} of GPU {p / slotsPerGpu} holds expert {e}, outside [0, {experts})", nameof(slotExperts));
            _replicaCounts[e]++;
        }
        for (int e = 0; e < experts; e++)
            if (_replicaCounts[e] == 0)
                throw new ArgumentException($"expert {e} has no slot: every expert needs at least one replica", nameof(slotExperts));
        _replicaOffsets = new int[experts + 1];
        for (int e = 0; e < experts; e++)
            _replicaOffsets[e + 1] = _replicaOffsets[e] + _replicaCounts[e];
        _replicaSlots = new int[_slotExperts.Length];
        var next = _replicaOffsets[..experts];
        for (int p = 0; p < _slotExperts.Length; p++)
            _replicaSlots[next[_slotExperts[p]]++] = p;
    }

    public int Experts { get; }
    public int Gpus { get; }
    public int SlotsPerGpu { get; }
    public int PhysicalSlots => _slotExperts.Length;

    /// <summary>Physical slot -> logical expert, [G * S].</summary>
    public ReadOnlySpan<int> SlotExperts => _slotExperts;

    /// <summary>Replicas per logical expert, [E].</summary>
    public ReadOnlySpan<int> ReplicaCounts => _replicaCounts;

    /// <summary>Logical -> physical map in CSR form: expert e's physical slots are <see cref="ReplicaSlots"/>[offsets[e] .. offsets[e+1]).</summary>
    public ReadOnlySpan<int> ReplicaOffsets => _replicaOffsets;

    /// <summary>Physical slot ids grouped by logical expert, ascending within each expert, [G * S].</summary>
    public ReadOnlySpan<int> ReplicaSlots => _replicaSlots;

    public int ExpertAt(int gpu, int slot)
    {
        if ((uint)gpu >= (uint)Gpus)
            throw new ArgumentOutOfRangeException(nameof(gpu), gpu, $"GPU index outside [0, {Gpus})");
        if ((uint)slot >= (uint)SlotsPerGpu)
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slot index outside [0, {SlotsPerGpu})");
        return _slotExperts[gpu * SlotsPerGpu + slot];
    }

    /// <summary>The physical slots of expert <paramref name="expert"/>.</summary>
    public ReadOnlySpan<int> PhysicalSlotsOf(int expert)
    {
        if ((uint)expert >= (uint)Experts)
            throw new ArgumentOutOfRangeException(nameof(expert), expert, $"expert id outside [0, {Experts})");
        return _replicaSlots.AsSpan(_replicaOffsets[expert], _replicaCounts[expert]);
    }

    /// <summary>The slot table as [gpu][slot] -> expert.</summary>
    public int[][] ToSlotTable() =>
        Enumerable.Range(0, Gpus).Select(g => _slotExperts.AsSpan(g * SlotsPerGpu, SlotsPerGpu).ToArray()).ToArray();

    /// <summary>Load of each GPU, [G]: each replica carries <c>load[e] / replicaCount[e]</c>.</summary>
    public double[] GpuLoads(ReadOnlySpan<double> expertLoads)
    {
        if (expertLoads.Length != Experts)
            throw new ArgumentException($"{expertLoads.Length} expert loads for a placement of {Experts} experts", nameof(expertLoads));
        var loads = new double[Gpus];
        for (int p = 0; p < _slotExperts.Length; p++)
        {
            int e = _slotExperts[p];
            loads[p / SlotsPerGpu] += expertLoads[e] / _replicaCounts[e];
        }
        return loads;
    }

    /// <summary>Max GPU load / mean GPU load (1 is perfect; 1 also when there is no load at all).</summary>
    public double Balance(ReadOnlySpan<double> expertLoads) => BalanceOf(GpuLoads(expertLoads));

    internal static double BalanceOf(ReadOnlySpan<double> gpuLoads)
    {
        double max = 0, sum = 0;
        foreach (var l in gpuLoads)
        {
            max = Math.Max(max, l);
            sum += l;
        }
        return sum <= 0 ? 1.0 : max / (sum / gpuLoads.Length);
    }

    /// <summary>
    /// The no-balancer baseline: E/G contiguous experts per GPU (GPU g holds experts g*E/G .. (g+1)*E/G - 1), no replicas.
    /// </summary>
    public static Placement Contiguous(int experts, int gpus)
    {
        if (experts <= 0)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, "the number of experts must be positive");
        if (gpus <= 0)
            throw new ArgumentOutOfRangeException(nameof(gpus), gpus, "the number of GPUs must be positive");
        if (experts % gpus != 0)
            throw new ArgumentException($"{experts} experts do not split evenly over {gpus} GPUs (E must be a multiple of G)", nameof(gpus));
        var slots = new int[experts];
        for (int e = 0; e < experts; e++)
            slots[e] = e;
        return new Placement(experts, gpus, experts / gpus, slots);
    }

    /// <summary>The logical -> physical map on <paramref name="accelerator"/>, for <see cref="Kernels.Eplb.ReplicaRouting"/>.</summary>
    public Kernels.Eplb.ReplicaTable CreateReplicaTable(Accelerators.Accelerator accelerator) =>
        new(accelerator, _replicaOffsets, _replicaSlots);

    public bool SameSlotsAs(Placement other) =>
        other.Experts == Experts && other.Gpus == Gpus && other.SlotsPerGpu == SlotsPerGpu && _slotExperts.AsSpan().SequenceEqual(other._slotExperts);

    public override string ToString() =>
        string.Join(" | ", ToSlotTable().Select((slots, g) => $"gpu{g}: {string.Join(' ', slots)}"));
}
