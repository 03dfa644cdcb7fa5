using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Cli.Bench;

/// <summary>
/// Device events at each phase boundary of a <see cref="MoeLayer"/> forward, on the stream the forward enqueues on
/// (the pattern of <see cref="EventPhaseTimer"/>, for one accelerator). A phase the forward skips reads 0.
/// </summary>
internal sealed class LayerPhaseTimer(Accelerator accelerator) : IMoeLayerPhaseTimer, IDisposable
{
    private readonly Dictionary<MoeLayerPhase, (AcceleratorEvent Start, AcceleratorEvent End, bool Recorded)> _events = new();

    public void Begin(MoeLayerPhase phase, AcceleratorStream stream)
    {
        if (!_events.TryGetValue(phase, out var pair))
            pair = (accelerator.CreateEvent(), accelerator.CreateEvent(), false);
        pair.Start.Record(stream);
        _events[phase] = pair with { Recorded = false };
    }

    public void End(MoeLayerPhase phase, AcceleratorStream stream)
    {
        var pair = _events[phase];
        pair.End.Record(stream);
        _events[phase] = pair with { Recorded = true };
    }

    /// <summary>Forgets the last forward's marks (call before each forward).</summary>
    public void Reset()
    {
        foreach (var phase in _events.Keys.ToList())
            _events[phase] = _events[phase] with { Recorded = false };
    }

    /// <summary>Microseconds of each phase in the last forward (0 for a phase it did not mark).</summary>
    public Dictionary<MoeLayerPhase, double> Read()
    {
        var result = Enum.GetValues<MoeLayerPhase>().ToDictionary(p => p, _ => 0.0);
        foreach (var (phase, pair) in _events)
        {
            if (!pair.Recorded)
                continue;
            pair.End.Synchronize();
            result[phase] = pair.End.ElapsedMillisecondsSince(pair.Start) * 1e3;
        }
        return result;
    }

    public void Dispose()
    {
        foreach (var pair in _events.Values)
        {
            pair.Start.Dispose();
            pair.End.Dispose();
        }
        _events.Clear();
    }
}
