namespace MoeRuntime.Accelerators;

/// <summary>
/// A run of elements of one dtype in an accelerator's memory. An owning buffer releases its memory on
/// Dispose; a slice is a view into its parent's memory and owns nothing. Copies to and from the host are
/// synchronous unless a stream is given.
/// </summary>
public abstract class MemoryBuffer : IDisposable
{
    private readonly DeviceMemory? _memory;     // null for a view
    private readonly MemoryBuffer? _root;       // the owning buffer, for a view
    private bool _disposed;

    private protected MemoryBuffer(Accelerator accelerator, DeviceMemory memory, DType dtype, long length)
    {
        Accelerator = accelerator;
        _memory = memory;
        DType = dtype;
        Length = length;
        Pointer = memory.Address;
        accelerator.OnAllocated(memory.Bytes);
    }

    private protected MemoryBuffer(MemoryBuffer parent, long offset, long length)
    {
        Accelerator = parent.Accelerator;
        _root = parent._root ?? parent;
        DType = parent.DType;
        Length = length;
        Pointer = parent.Pointer + checked((nint)(offset * DTypes.SizeOf(parent.DType)));
    }

    public Accelerator Accelerator { get; }
    public DType DType { get; }
    public long Length { get; }
    public int ElementSize => DTypes.SizeOf(DType);
    public long LengthBytes => Length * ElementSize;
    public bool IsView => _root is not null;
    public bool IsDisposed => _disposed || (_root?.IsDisposed ?? false);

    /// <summary>The address of the first element: a device address (CUDA, unified addressing) or a host address (CPU).</summary>
    public nint Pointer { get; }

    public void ThrowIfDisposed()
    {
        if (IsDisposed)
            throw new ObjectDisposedException(Describe(), "the buffer (or the buffer it is a view of) was disposed");
        if (Accelerator.IsDisposed)
            throw new ObjectDisposedException(Accelerator.Name, "the accelerator that owns this buffer was disposed");
    }

    /// <summary>Copies all of <paramref name="source"/> into this buffer (same length and dtype), across accelerators if need be.</summary>
    public void CopyFrom(MemoryBuffer source, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.DType != DType || source.Length != Length)
            throw new ArgumentException($"copy from {source.Describe()} into {Describe()}: dtype and length must match", nameof(source));
        CopyBytes(source, 0, this, 0, LengthBytes, stream);
    }

    /// <summary>Sets every byte of the buffer to <paramref name="value"/>.</summary>
    public void FillBytes(byte value, AcceleratorStream? stream = null)
    {
        ThrowIfDisposed();
        var s = ResolveStream(stream);
        if (LengthBytes > 0)
            Accelerator.FillBytesCore(this, 0, LengthBytes, value, s);
    }

    /// <summary>Zeroes the buffer.</summary>
    public void Clear(AcceleratorStream? stream = null) => FillBytes(0, stream);

    /// <summary>Copies <paramref name="bytes"/> bytes between buffers of any accelerators; synchronous across kinds.</summary>
    public static void CopyBytes(MemoryBuffer source, long sourceOffsetBytes, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(destination);
        source.ThrowIfDisposed();
        destination.ThrowIfDisposed();
        if (sourceOffsetBytes < 0 || destinationOffsetBytes < 0 || bytes < 0 ||
            sourceOffsetBytes + bytes > source.LengthBytes || destinationOffsetBytes + bytes > destination.LengthBytes)
            throw new ArgumentOutOfRangeException(nameof(bytes),
                $"copy of {bytes} bytes from offset {sourceOffsetBytes} of {source.Describe()} to offset {destinationOffsetBytes} of {destination.Describe()} is out of bounds");
        if (bytes == 0)
            return;
        var dst = destination.Accelerator;
        var src = source.Accelerator;
        if (dst.Kind == src.Kind)
        {
            // Same backend: the destination's accelerator orders the copy (peer copies included).
            dst.CopyCore(source, sourceOffsetBytes, destination, destinationOffsetBytes, bytes, destination.ResolveStream(stream));
            return;
        }
        unsafe
        {
            // CPU memory is host memory: a CPU <-> CUDA copy is a host <-> device copy.
            if (src.Kind == AcceleratorKind.Cpu)
                dst.CopyFromHostCore((byte*)source.Pointer + sourceOffsetBytes, destination, destinationOffsetBytes, bytes, destination.ResolveStream(stream), synchronous: true);
            else
                src.CopyToHostCore(source, sourceOffsetBytes, (byte*)destination.Pointer + destinationOffsetBytes, bytes, source.ResolveStream(stream), synchronous: true);
        }
    }

    internal AcceleratorStream ResolveStream(AcceleratorStream? stream)
    {
        if (stream is null)
            return Accelerator.DefaultStream;
        if (!ReferenceEquals(stream.Accelerator, Accelerator))
            throw new ArgumentException($"stream of {stream.Accelerator.Name} used with a buffer of {Accelerator.Name}", nameof(stream));
        return stream;
    }

    public string Describe() => $"{DTypes.Name(DType)}[{Length}] on {Accelerator.Name}";

    public override string ToString() => Describe();

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        if (_memory is not null)
        {
            Accelerator.Untrack(this);
            Accelerator.OnFreed(_memory.Bytes);
            _memory.Dispose();
        }
        GC.SuppressFinalize(this);
    }
}

/// <summary>A buffer of <typeparamref name="T"/> elements.</summary>
public sealed class MemoryBuffer<T> : MemoryBuffer where T : unmanaged
{
    internal MemoryBuffer(Accelerator accelerator, DeviceMemory memory, long length)
        : base(accelerator, memory, DTypes.Of<T>(), length) { }

    private MemoryBuffer(MemoryBuffer<T> parent, long offset, long length) : base(parent, offset, length) { }

    /// <summary>A view of <paramref name="length"/> elements starting at <paramref name="offset"/>; it owns nothing.</summary>
    public MemoryBuffer<T> Slice(long offset, long length)
    {
        ThrowIfDisposed();
        if (offset < 0 || length < 0 || offset + length > Length)
            throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) of {Describe()} is out of bounds");
        return new MemoryBuffer<T>(this, offset, length);
    }

    public unsafe void CopyFrom(ReadOnlySpan<T> source, long destinationOffset = 0, AcceleratorStream? stream = null)
    {
        ThrowIfDisposed();
        if (destinationOffset < 0 || destinationOffset + source.Length > Length)
            throw new ArgumentOutOfRangeException(nameof(source), $"{source.Length} host elements at offset {destinationOffset} do not fit {Describe()}");
        if (source.IsEmpty)
            return;
        fixed (T* p = source)
            Accelerator.CopyFromHostCore(p, this, destinationOffset * ElementSize, (long)source.Length * ElementSize, ResolveStream(stream), synchronous: true);
    }

    public unsafe void CopyTo(Span<T> destination, long sourceOffset = 0, AcceleratorStream? stream = null)
    {
        ThrowIfDisposed();
        if (sourceOffset < 0 || sourceOffset + destination.Length > Length)
            throw new ArgumentOutOfRangeException(nameof(destination), $"{destination.Length} elements from offset {sourceOffset} exceed {Describe()}");
        if (destination.IsEmpty)
            return;
        fixed (T* p = destination)
            Accelerator.CopyToHostCore(this, sourceOffset * ElementSize, p, (long)destination.Length * ElementSize, ResolveStream(stream), synchronous: true);
    }

    /// <summary>Copies the whole buffer to a new host array (waits for the stream's earlier work).</summary>
    public T[] ToArray(AcceleratorStream? stream = null)
    {
        var result = new T[checked((int)Length)];
        CopyTo(result, 0, stream);
        return result;
    }

    /// <summary>Sets every element to <paramref name="value"/> (elements of 1, 2 or 4 bytes).</summary>
    public unsafe void Fill(T value, AcceleratorStream? stream = null)
    {
        ThrowIfDisposed();
        var s = ResolveStream(stream);
        if (Length == 0)
            return;
        switch (sizeof(T))
        {
            case 1:
                Accelerator.FillBytesCore(this, 0, Length, *(byte*)&value, s);
                break;
            case 2:
                ushort half = *(ushort*)&value;
                if ((half & 0xFF) == half >> 8)
                {
                    Accelerator.FillBytesCore(this, 0, LengthBytes, (byte)half, s);
                    break;
                }
                // Two 2-byte elements per 32-bit word, then the odd tail element from the host.
                uint pair = half | ((uint)half << 16);
                if (Length / 2 > 0)
                    Accelerator.Fill32Core(this, 0, Length / 2, pair, s);
                if (Length % 2 == 1)
                    Accelerator.CopyFromHostCore(&value, this, (Length - 1) * 2, 2, s, synchronous: true);
                break;
            case 4:
                Accelerator.Fill32Core(this, 0, Length, *(uint*)&value, s);
                break;
            default:
                throw new NotSupportedException($"Fill of {sizeof(T)}-byte elements; use CopyFrom");
        }
    }

    /// <summary>The elements as a span: CPU accelerators only (their memory is host memory).</summary>
    public unsafe Span<T> AsSpan()
    {
        ThrowIfDisposed();
        if (Accelerator.Kind != AcceleratorKind.Cpu)
            throw new InvalidOperationException($"{Describe()} is device memory; copy it to the host with CopyTo or ToArray");
        return new Span<T>((void*)Pointer, checked((int)Length));
    }
}
