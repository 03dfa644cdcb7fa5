using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// One rank's asynchronous uploads of a call's op table (the all-to-allv's per-call schedule) through a ring of page-locked
/// slots: the host writes a slot and enqueues its copy on the rank's stream, so it need not wait for that stream. The
/// synchronous upload waits for everything the stream holds, which in an expert-parallel forward's combine is the rank's
/// whole experts phase, and one host thread then issues rank r + 1's share only once rank r's experts have finished.
/// A slot is written again only after the copy that read it last has run (an event per slot; with <see cref="Slots"/>
/// slots that wait is reached only when that many calls are queued on the stream). The copy is stream-ordered like the
/// synchronous one, so the kernel reads the same ops: results are the same bits.
/// </summary>
internal sealed class OpTableUploads : IDisposable
{
    public const int Slots = 4;
    private readonly PinnedHostBuffer<byte>[] _slots = new PinnedHostBuffer<byte>[Slots];
    private readonly AcceleratorEvent?[] _copied = new AcceleratorEvent?[Slots];
    private readonly CudaAccelerator _rank;
    private int _next;

    public OpTableUploads(CudaAccelerator rank, int slotBytes)
    {
        _rank = rank;
        try
        {
            for (int i = 0; i < Slots; i++)
                _slots[i] = rank.AllocatePinned<byte>(slotBytes);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// MOE_COLLECTIVE_OPS_UPLOAD=async: op tables go up through these slots; unset or "sync": the synchronous copy (the
    /// default until measured in the EP layer, tools/gpu/ephost-check.sh).
    /// </summary>
    public static bool Enabled
    {
        // Read on first use (a communicator's creation), not in the type's initializer: a bad value is then the
        // ArgumentException that names it, not a TypeInitializationException.
        get => s_enabled ??= Parse(Environment.GetEnvironmentVariable("MOE_COLLECTIVE_OPS_UPLOAD"));
        set => s_enabled = value;
    }

    private static bool? s_enabled;

    internal static bool Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "async" => true,
        null or "" or "sync" => false,
        _ => throw new ArgumentException($"MOE_COLLECTIVE_OPS_UPLOAD='{value}': expected async or sync"),
    };

    /// <summary>Enqueues a copy of <paramref name="ops"/> into <paramref name="destination"/> (its whole length) on <paramref name="stream"/>.</summary>
    public void Upload(ReadOnlySpan<byte> ops, MemoryBuffer<byte> destination, CudaStream stream)
    {
        if (ops.Length != destination.Length)
            throw new ArgumentException($"{ops.Length} op bytes for {destination.Describe()}", nameof(ops));
        if (ops.Length > _slots[0].Length)
            throw new ArgumentException($"{ops.Length} op bytes; a slot holds {_slots[0].Length}", nameof(ops));
        if (ops.IsEmpty)
            return; // as the synchronous copy: nothing to move
        int slot = _next;
        _next = (_next + 1) % Slots;
        _copied[slot]?.Synchronize(); // the copy that last read this slot has run (normally long since)
        ops.CopyTo(_slots[slot].AsSpan());
        _slots[slot].CopyToAsync(destination, stream);
        (_copied[slot] ??= _rank.CreateEvent()).Record(stream);
    }

    /// <summary>Waits for the slots' last copies (pinned memory must not be freed under a copy), then frees; never throws.</summary>
    public void Dispose()
    {
        foreach (var e in _copied)
        {
            try
            {
                e?.Synchronize();
            }
            catch (Exception) // a failed device: nothing left to wait for
            {
            }
            e?.Dispose();
        }
        foreach (var s in _slots)
            s?.Dispose();
    }
}
