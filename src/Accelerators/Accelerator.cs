using System.Collections.Concurrent;

namespace MoeRuntime.Accelerators;

/// <summary>
/// One device that holds memory and runs work: the CPU (<see cref="Cpu.CpuAccelerator"/>) or a CUDA GPU
/// (<see cref="Cuda.CudaAccelerator"/>). Public methods validate, then call a protected core.
/// Buffers, streams and events it creates are disposed with it if their owner has not done so.
/// </summary>
public abstract class Accelerator : IDisposable
{
    private readonly ConcurrentDictionary<IDisposable, byte> _children = new(ReferenceEqualityComparer.Instance);
    private long _allocatedBytes;
    private long _allocationCount;
    private bool _disposed;

    protected Accelerator(AcceleratorId id, DeviceInfo info)
    {
        Id = id;
        Info = info;
    }

    public AcceleratorId Id { get; }
    public AcceleratorKind Kind => Id.Kind;
    public string Name => Id.ToString();
    public DeviceInfo Info { get; }
    public bool IsDisposed => _disposed;

    /// <summary>Bytes of device memory this accelerator's live buffers hold (leak checks use it).</summary>
    public long AllocatedBytes => Interlocked.Read(ref _allocatedBytes);

    /// <summary>Owning buffers allocated so far (never decreases): tests check that a steady-state loop allocates nothing.</summary>
    public long AllocationCount => Interlocked.Read(ref _allocationCount);

    /// <summary>The stream work goes to when no stream is given.</summary>
    public abstract AcceleratorStream DefaultStream { get; }

    public MemoryBuffer<T> Allocate<T>(long length) where T : unmanaged
    {
        ThrowIfDisposed();
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var dtype = DTypes.Of<T>();
        long bytes = checked(length * DTypes.SizeOf(dtype));
        var memory = AllocateCore(bytes);
        return Track(new MemoryBuffer<T>(this, memory, length));
    }

    /// <summary>Allocates a buffer whose element type is chosen at run time.</summary>
    public MemoryBuffer Allocate(DType dtype, long length) => dtype switch
    {
        DType.F32 => Allocate<float>(length),
        DType.F16 => Allocate<Half>(length),
        DType.BF16 => Allocate<BFloat16>(length),
        DType.I32 => Allocate<int>(length),
        DType.I64 => Allocate<long>(length),
        DType.U8 => Allocate<byte>(length),
        DType.F64 => Allocate<double>(length),
        DType.U32 => Allocate<uint>(length),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Allocates and fills from host data.</summary>
    public MemoryBuffer<T> Upload<T>(ReadOnlySpan<T> data) where T : unmanaged
    {
        var buffer = Allocate<T>(data.Length);
        try
        {
            buffer.CopyFrom(data);
            return buffer;
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
    }

    public AcceleratorStream CreateStream()
    {
        ThrowIfDisposed();
        return Track(CreateStreamCore());
    }

    public AcceleratorEvent CreateEvent()
    {
        ThrowIfDisposed();
        return Track(CreateEventCore());
    }

    /// <summary>Waits until all work on every stream of this accelerator has finished.</summary>
    public void Synchronize()
    {
        ThrowIfDisposed();
        SynchronizeCore();
    }

    /// <summary>Free and total device memory, in bytes.</summary>
    public abstract (long Free, long Total) MemoryInfo();

    protected abstract DeviceMemory AllocateCore(long bytes);
    protected abstract AcceleratorStream CreateStreamCore();
    protected abstract AcceleratorEvent CreateEventCore();
    protected abstract void SynchronizeCore();

    /// <summary>Copies bytes between two buffers of this accelerator (or, for <paramref name="source"/>, a peer), ordered on <paramref name="stream"/>.</summary>
    protected internal abstract void CopyCore(MemoryBuffer source, long sourceOffsetBytes, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream);
    protected internal abstract unsafe void CopyFromHostCore(void* source, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream, bool synchronous);
    protected internal abstract unsafe void CopyToHostCore(MemoryBuffer source, long sourceOffsetBytes, void* destination, long bytes, AcceleratorStream stream, bool synchronous);
    protected internal abstract void FillBytesCore(MemoryBuffer destination, long offsetBytes, long bytes, byte value, AcceleratorStream stream);
    protected internal abstract void Fill32Core(MemoryBuffer destination, long offsetBytes, long count, uint value, AcceleratorStream stream);

    internal void OnAllocated(long bytes)
    {
        Interlocked.Add(ref _allocatedBytes, bytes);
        Interlocked.Increment(ref _allocationCount);
    }
    internal void OnFreed(long bytes) => Interlocked.Add(ref _allocatedBytes, -bytes);

    protected internal T Track<T>(T child) where T : IDisposable
    {
        _children.TryAdd(child, 0);
        return child;
    }

    internal void Untrack(IDisposable child) => _children.TryRemove(child, out _);

    /// <summary>The live streams this accelerator created (<see cref="CreateStream"/>), at the moment of the call.</summary>
    protected IEnumerable<AcceleratorStream> TrackedStreams() =>
        _children.Keys.OfType<AcceleratorStream>().Where(stream => !stream.IsDisposed);

    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public override string ToString() => $"{Name} ({Info.Name})";

    public void Dispose()
    {
        if (_disposed)
            return;
        try
        {
            SynchronizeCore();
        }
        catch (AcceleratorException)
        {
            // A sticky device error must not stop the release of what we own.
        }
        foreach (var child in _children.Keys.ToArray())
            child.Dispose();
        _children.Clear();
        _disposed = true;
        DisposeCore();
        GC.SuppressFinalize(this);
    }

    protected abstract void DisposeCore();
}

/// <summary>A backend's raw allocation: an address (device or host) and the release of it.</summary>
public abstract class DeviceMemory : IDisposable
{
    protected DeviceMemory(nint address, long bytes)
    {
        Address = address;
        Bytes = bytes;
    }

    public nint Address { get; }
    public long Bytes { get; }
    public abstract void Dispose();
}
