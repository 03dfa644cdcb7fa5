using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// Host memory for the copies of one accelerator, kept across calls and grown on demand: page-locked on CUDA, so
/// uploads and downloads run asynchronously on the accelerator's default stream (the host reads a download only
/// after synchronising that stream); a plain array on the CPU, where copies run when they are enqueued.
/// </summary>
public sealed class HostStage<T> : IDisposable where T : unmanaged
{
    private readonly Accelerator _accelerator;
    private PinnedHostBuffer<T>? _pinned;
    private T[] _array = [];

    public HostStage(Accelerator accelerator) => _accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));

    /// <summary>Elements held now.</summary>
    public long Capacity => _pinned?.Length ?? _array.Length;

    /// <summary>
    /// The first <paramref name="length"/> elements, growing the stage if need be (growth frees the old memory: call it
    /// only when no copy of this stage is in flight).
    /// </summary>
    public Span<T> Reserve(long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (length > Capacity)
        {
            if (_accelerator is CudaAccelerator cuda)
            {
                _pinned?.Dispose();
                _pinned = null;
                _pinned = cuda.AllocatePinned<T>(length);
            }
            else
                _array = new T[length];
        }
        return _pinned is { } p ? p.AsSpan()[..checked((int)length)] : _array.AsSpan(0, checked((int)length));
    }

    /// <summary>Enqueues a copy of the stage's first destination.Length elements into <paramref name="destination"/>.</summary>
    public void Upload(MemoryBuffer<T> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (destination.Length == 0)
            return;
        if (_pinned is { } pinned)
            pinned.CopyToAsync(destination, (CudaStream)_accelerator.DefaultStream);
        else
            destination.CopyFrom(_array.AsSpan(0, checked((int)destination.Length)));
    }

    /// <summary>Enqueues a copy of <paramref name="source"/> into the stage's first source.Length elements (read them after the stream is synchronised).</summary>
    public void Download(MemoryBuffer<T> source)
    {
        ArgumentNullException.ThrowIfNull(source);
        Reserve(source.Length);
        if (source.Length == 0)
            return;
        if (_pinned is { } pinned)
            pinned.CopyFromAsync(source, (CudaStream)_accelerator.DefaultStream);
        else
            source.CopyTo(_array.AsSpan(0, checked((int)source.Length)));
    }

    public void Dispose()
    {
        _pinned?.Dispose();
        _pinned = null;
        _array = [];
    }
}
