using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Eplb;

/// <summary>
/// The logical -> physical map that <see cref="ReplicaRouting"/> reads, on one accelerator: expert e's physical slots
/// are <c>replicaSlots[replicaOffsets[e] .. replicaOffsets[e+1])</c>, plus the list of experts with more than one
/// replica. Its shape (E experts, P physical slots) is fixed; <see cref="Update"/> rewrites the contents in place, so
/// kernels and CUDA graphs that hold its buffers stay valid across a rebalance.
/// </summary>
public sealed class ReplicaTable : IDisposable
{
    private readonly MemoryBuffer<int> _offsets;      // [E + 1]
    private readonly MemoryBuffer<int> _slots;        // [P]
    private readonly MemoryBuffer<int> _replicated;   // [1 + P - E]: count, then the ids of replicated experts

    public ReplicaTable(Accelerator accelerator, ReadOnlySpan<int> replicaOffsets, ReadOnlySpan<int> replicaSlots)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        Validate(replicaOffsets, replicaSlots, replicaOffsets.Length - 1, replicaSlots.Length);
        Accelerator = accelerator;
        Experts = replicaOffsets.Length - 1;
        PhysicalSlots = replicaSlots.Length;
        _offsets = accelerator.Allocate<int>(Experts + 1);
        try
        {
            _slots = accelerator.Allocate<int>(PhysicalSlots);
            try
            {
                _replicated = accelerator.Allocate<int>(1 + RankedBlocks);
            }
            catch
            {
                _slots.Dispose();
                throw;
            }
        }
        catch
        {
            _offsets.Dispose();
            throw;
        }
        Write(replicaOffsets, replicaSlots, null);
    }

    public Accelerator Accelerator { get; }
    public int Experts { get; }
    public int PhysicalSlots { get; }

    /// <summary>P - E: the most experts that can have a second replica.</summary>
    public int RankedBlocks => PhysicalSlots - Experts;

    internal MemoryBuffer<int> Offsets => _offsets;
    internal MemoryBuffer<int> Slots => _slots;
    internal MemoryBuffer<int> Replicated => _replicated;

    /// <summary>
    /// Rewrites the table (same E and P), ordered on <paramref name="stream"/>; the caller makes sure no routing
    /// launch that reads the old table is still running (the slot table switches at a forward boundary).
    /// </summary>
    public void Update(ReadOnlySpan<int> replicaOffsets, ReadOnlySpan<int> replicaSlots, AcceleratorStream? stream = null)
    {
        Validate(replicaOffsets, replicaSlots, Experts, PhysicalSlots);
        Write(replicaOffsets, replicaSlots, stream);
    }

    private void Write(ReadOnlySpan<int> replicaOffsets, ReadOnlySpan<int> replicaSlots, AcceleratorStream? stream)
    {
        var replicated = new int[1 + RankedBlocks];
        for (int e = 0; e < Experts; e++)
            if (replicaOffsets[e + 1] - replicaOffsets[e] > 1)
                replicated[1 + replicated[0]++] = e;
        _offsets.CopyFrom(replicaOffsets, 0, stream);
        _slots.CopyFrom(replicaSlots, 0, stream);
        _replicated.CopyFrom(replicated, 0, stream);
    }

    private static void Validate(ReadOnlySpan<int> replicaOffsets, ReadOnlySpan<int> replicaSlots, int experts, int physicalSlots)
    {
        if (replicaOffsets.Length < 2)
            throw new ArgumentException("replicaOffsets needs E + 1 >= 2 entries", nameof(replicaOffsets));
        if (replicaOffsets.Length != experts + 1)
            throw new ArgumentException($"replicaOffsets has {replicaOffsets.Length} entries; this table has {experts} experts (E + 1 = {experts + 1})", nameof(replicaOffsets));
        if (replicaSlots.Length != physicalSlots)
            throw new ArgumentException($"replicaSlots has {replicaSlots.Length} entries; this table has {physicalSlots} physical slots", nameof(replicaSlots));
        if (replicaOffsets[0] != 0)
            throw new ArgumentException($"replicaOffsets[0] is {replicaOffsets[0]}; it must be 0", nameof(replicaOffsets));
        for (int e = 0; e < experts; e++)
            if (replicaOffsets[e + 1] - replicaOffsets[e] < 1)
                throw new ArgumentException($"expert {e} has {replicaOffsets[e + 1] - replicaOffsets[e]} replicas; every expert needs at least one", nameof(replicaOffsets));
        if (replicaOffsets[experts] != physicalSlots)
            throw new ArgumentException($"replicaOffsets[E] is {replicaOffsets[experts]}; it must equal the {physicalSlots} physical slots", nameof(replicaOffsets));
        for (int i = 0; i < physicalSlots; i++)
            if ((uint)replicaSlots[i] >= (uint)physicalSlots)
                throw new ArgumentException($"replicaSlots[{i}] is {replicaSlots[i]}, outside [0, {physicalSlots})", nameof(replicaSlots));
    }

    public void Dispose()
    {
        _replicated.Dispose();
        _slots.Dispose();
        _offsets.Dispose();
    }
}
