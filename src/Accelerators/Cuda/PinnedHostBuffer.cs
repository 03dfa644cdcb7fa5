namespace MoeRuntime.Accelerators.Cuda;

/// <summary>Page-locked host memory (cuMemHostAlloc): the host side of asynchronous copies.</summary>
public sealed unsafe class PinnedHostBuffer<T> : IDisposable where T : unmanaged
{
    private readonly CudaAccelerator _accelerator;
    private nint _pointer;

    internal PinnedHostBuffer(CudaAccelerator accelerator, long length)
    {
        _accelerator = accelerator;
        Length = length;
        long bytes = checked(length * sizeof(T));
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemHostAlloc(out _pointer, (nuint)Math.Max(bytes, 1), 0), $"cuMemHostAlloc({bytes} bytes)");
    }

    public long Length { get; }
    public nint Pointer => _pointer;

    public Span<T> AsSpan()
    {
        ObjectDisposedException.ThrowIf(_pointer == 0, this);
        return new Span<T>((void*)_pointer, checked((int)Length));
    }

    /// <summary>Enqueues a copy of <paramref name="source"/> into this pinned memory; the host must wait on the stream before reading.</summary>
    public void CopyFromAsync(MemoryBuffer<T> source, CudaStream stream)
    {
        ObjectDisposedException.ThrowIf(_pointer == 0, this);
        if (source.Length > Length)
            throw new ArgumentException($"{source.Describe()} does not fit {Length} pinned elements", nameof(source));
        source.ThrowIfDisposed();
        _accelerator.CopyToHostCore(source, 0, (void*)_pointer, source.LengthBytes, stream, synchronous: false);
    }

    /// <summary>Enqueues a copy of this pinned memory into <paramref name="destination"/>.</summary>
    public void CopyToAsync(MemoryBuffer<T> destination, CudaStream stream)
    {
        ObjectDisposedException.ThrowIf(_pointer == 0, this);
        if (destination.Length > Length)
            throw new ArgumentException($"{destination.Describe()} is longer than {Length} pinned elements", nameof(destination));
        destination.ThrowIfDisposed();
        _accelerator.CopyFromHostCore((void*)_pointer, destination, 0, destination.LengthBytes, stream, synchronous: false);
    }

    public void Dispose()
    {
        if (_pointer == 0)
            return;
        _accelerator.Untrack(this);
        CudaAccelerator.SetCurrent(_accelerator.Context);
        CudaDriver.cuMemFreeHost(_pointer);
        _pointer = 0;
    }
}
