using MoeRuntime.Accelerators;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// A traced kernel build's buffer for the length of a sweep: allocated and handed to the kernel's launcher (its static
/// TraceBuffer), then taken back and freed when disposed.
/// </summary>
internal sealed class TraceBufferLease : IDisposable
{
    private readonly MemoryBuffer<long> _buffer;
    private readonly Action<MemoryBuffer<long>?> _hand;

    private TraceBufferLease(Accelerator accelerator, long values, Action<MemoryBuffer<long>?> hand)
    {
        _buffer = accelerator.Allocate<long>(values);
        _hand = hand;
        hand(_buffer);
    }

    /// <summary>A lease when the trace is requested on a CUDA device, else null (nothing to trace).</summary>
    public static TraceBufferLease? When(bool requested, Accelerator accelerator, long values, Action<MemoryBuffer<long>?> hand) =>
        requested && accelerator.Kind == AcceleratorKind.Cuda ? new TraceBufferLease(accelerator, values, hand) : null;

    public void Dispose()
    {
        _hand(null);
        _buffer.Dispose();
    }
}
