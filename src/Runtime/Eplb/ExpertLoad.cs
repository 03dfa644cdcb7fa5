using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Eplb;

namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// One layer's load statistics on its accelerator: tokens per expert of each of the last W forwards
/// (ring buffer [W, E] I32) and their running sums [E] I64, updated by a one-block kernel per forward
/// (<see cref="Record"/>, no host sync, CUDA-graph safe), read from the host by <see cref="ReadWindow"/>.
/// </summary>
public sealed class ExpertLoad : IDisposable
{
    private readonly MemoryBuffer<int> _window;   // [W, E]
    private readonly MemoryBuffer<long> _sums;    // [E]
    private readonly MemoryBuffer<long> _state;   // [1]: forwards recorded

    public ExpertLoad(Accelerator accelerator, int experts, int windowForwards)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        if (experts <= 0)
            throw new ArgumentOutOfRangeException(nameof(experts), experts, "the number of experts must be positive");
        if (windowForwards <= 0)
            throw new ArgumentOutOfRangeException(nameof(windowForwards), windowForwards, "the window must hold at least one forward");
        Accelerator = accelerator;
        Experts = experts;
        WindowForwards = windowForwards;
        var owned = new List<MemoryBuffer>();
        try
        {
            _window = accelerator.Allocate<int>(checked((long)experts * windowForwards));
            owned.Add(_window);
            _sums = accelerator.Allocate<long>(experts);
            owned.Add(_sums);
            _state = accelerator.Allocate<long>(1);
            owned.Add(_state);
            Reset();
        }
        catch
        {
            foreach (var buffer in owned)
                buffer.Dispose();
            throw;
        }
    }

    public Accelerator Accelerator { get; }
    public int Experts { get; }
    public int WindowForwards { get; }

    /// <summary>Adds one forward's tokens per expert (<paramref name="counts"/> [E] I32 on this accelerator), dropping the oldest when the window is full.</summary>
    public void Record(MemoryBuffer<int> counts, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Length != Experts)
            throw new ArgumentException($"counts has {counts.Length} elements; this layer has {Experts} experts", nameof(counts));
        LoadWindow.Push(counts, _window, _sums, _state, stream);
    }

    /// <summary>Tokens per expert summed over the window, and how many forwards the window holds (at most W). Waits for the stream.</summary>
    public (long[] Sums, int Forwards) ReadWindow(AcceleratorStream? stream = null)
    {
        var sums = _sums.ToArray(stream);
        long recorded = _state.ToArray(stream)[0];
        return (sums, (int)Math.Min(recorded, WindowForwards));
    }

    /// <summary>Forwards recorded since creation or the last <see cref="Reset"/>.</summary>
    public long ForwardsRecorded(AcceleratorStream? stream = null) => _state.ToArray(stream)[0];

    /// <summary>Empties the window.</summary>
    public void Reset(AcceleratorStream? stream = null)
    {
        _window.Clear(stream);
        _sums.Clear(stream);
        _state.Clear(stream);
    }

    public void Dispose()
    {
        _state.Dispose();
        _sums.Dispose();
        _window.Dispose();
    }
}
