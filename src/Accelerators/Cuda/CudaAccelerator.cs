using System.Collections.Concurrent;
using System.Text;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// One CUDA device through the driver API, on its primary context. Every entry point binds the
/// context to the calling thread first, so any thread may use any accelerator. Kernels are CUDA C
/// compiled by NVRTC for this device's architecture and cached per (source, options, architecture).
/// </summary>
public sealed class CudaAccelerator : Accelerator
{
    [ThreadStatic] private static nint t_currentContext;

    private readonly ConcurrentDictionary<string, CudaModule> _modules = new();
    private readonly ConcurrentDictionary<LoadedKernelKey, CudaKernel> _loadedKernels = new();
    private readonly CudaStream _defaultStream;
    private readonly ConcurrentDictionary<int, bool> _peerEnabled = new();
    private nint _context;

    private CudaAccelerator(int ordinal, int device, nint context, DeviceInfo info)
        : base(new AcceleratorId(AcceleratorKind.Cuda, ordinal), info)
    {
        Device = device;
        _context = context;
        Bind();
        _defaultStream = new CudaStream(this);
    }

    /// <summary>The driver's device handle (CUdevice).</summary>
    public int Device { get; }
    internal nint Context => _context;

    public override AcceleratorStream DefaultStream => _defaultStream;

    /// <summary>Opens device <paramref name="ordinal"/> (cuInit must have succeeded; see <see cref="CudaRuntimeInfo"/>).</summary>
    public static CudaAccelerator Open(int ordinal)
    {
        CudaRuntimeInfo.EnsureInitialized();
        CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceGetCount(out int count));
        if (ordinal < 0 || ordinal >= count)
            throw new ArgumentOutOfRangeException(nameof(ordinal), $"cuda:{ordinal} does not exist ({count} CUDA device(s))");
        CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceGet(out int device, ordinal));
        var info = QueryInfo(device);
        CudaCheck.ThrowIfFailed(CudaDriver.cuDevicePrimaryCtxRetain(out nint context, device));
        return new CudaAccelerator(ordinal, device, context, info);
    }

    /// <summary>Makes this device's context current on the calling thread (cheap when it already is).</summary>
    public void Bind()
    {
        ThrowIfDisposed();
        if (t_currentContext == _context)
            return;
        CudaCheck.ThrowIfFailed(SetCurrent(_context));
    }

    /// <summary>
    /// Makes <paramref name="context"/> current on the calling thread and records it. Every switch of context goes
    /// through here (disposals, NCCL's restore): one that bypassed the record would let <see cref="Bind"/> skip a
    /// switch it needs, and the next allocation, module load or synchronisation would silently go to another GPU.
    /// </summary>
    internal static CudaResult SetCurrent(nint context)
    {
        var result = CudaDriver.cuCtxSetCurrent(context);
        t_currentContext = result == CudaResult.Success ? context : 0;   // unknown after a failure: the next Bind switches
        return result;
    }

    /// <summary>The context the calling thread believes is current (for tests of the record).</summary>
    internal static nint RecordedCurrentContext => t_currentContext;

    public override (long Free, long Total) MemoryInfo()
    {
        Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemGetInfo(out nuint free, out nuint total));
        return ((long)free, (long)total);
    }

    /// <summary>Whether this device can read and write <paramref name="peer"/>'s memory directly.</summary>
    public bool CanAccessPeer(CudaAccelerator peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (peer.Device == Device)
            return true;
        CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceCanAccessPeer(out int can, Device, peer.Device));
        return can != 0;
    }

    /// <summary>Lets kernels on this device dereference <paramref name="peer"/>'s pointers (idempotent).</summary>
    public void EnablePeerAccess(CudaAccelerator peer)
    {
        ArgumentNullException.ThrowIfNull(peer);
        if (peer.Device == Device || _peerEnabled.ContainsKey(peer.Device))
            return;
        if (!CanAccessPeer(peer))
            throw new AcceleratorException($"{Name} cannot access {peer.Name}'s memory directly (cuDeviceCanAccessPeer = 0)");
        Bind();
        var result = CudaDriver.cuCtxEnablePeerAccess(peer.Context, 0);
        if (result != CudaResult.PeerAccessAlreadyEnabled)
            CudaCheck.ThrowIfFailed(result, $"cuCtxEnablePeerAccess({Name} -> {peer.Name})");
        _peerEnabled[peer.Device] = true;
    }

    /// <summary>Compiles (or finds in the cache) <paramref name="source"/> for this device and returns kernel <paramref name="entry"/>.</summary>
    public CudaKernel LoadKernel(KernelSource source, string entry, IReadOnlyList<string>? extraOptions = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(entry);
        Bind();
        var key = new LoadedKernelKey(source, entry, extraOptions);
        if (_loadedKernels.TryGetValue(key, out var loaded))
            return loaded;
        var kernel = LoadKernelUncached(source, entry, extraOptions);
        _loadedKernels.TryAdd(key.Stored(), kernel);
        return kernel;
    }

    /// <summary>The module (compiled or from the cache) and its kernel, looked up by the module key (first call per kernel).</summary>
    private CudaKernel LoadKernelUncached(KernelSource source, string entry, IReadOnlyList<string>? extraOptions)
    {
        if (source.WaitsForPriorGrid && CudaKernel.TriggerBeforeWait)
            extraOptions = [.. extraOptions ?? [], CudaKernel.EarlyTriggerOption];
        var options = NvrtcCompiler.DefaultOptions(Info.Architecture, extraOptions);
        string key = source.Name + "\n" + string.Join(' ', options) + "\n" + source.ContentHash;
        var module = _modules.GetOrAdd(key, _ =>
        {
            byte[] image = NvrtcCompiler.Shared.Compile(source, options, Info.Architecture);
            return Track(new CudaModule(this, source.Name, image, CudaKernel.MayOverlapPriorGrid(source)));
        });
        return module.GetKernel(entry);
    }

    /// <summary>Allocates pinned (page-locked) host memory, for asynchronous copies.</summary>
    public PinnedHostBuffer<T> AllocatePinned<T>(long length) where T : unmanaged
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Bind();
        return Track(new PinnedHostBuffer<T>(this, length));
    }

    protected override DeviceMemory AllocateCore(long bytes)
    {
        Bind();
        ulong pointer = 0;
        // cuMemAlloc rejects zero bytes; an empty buffer still gets a small real allocation.
        var result = CudaDriver.cuMemAlloc(out pointer, (nuint)Math.Max(bytes, 1));
        if (result == CudaResult.OutOfMemory)
        {
            var (free, total) = MemoryInfo();
            throw new AcceleratorOutOfMemoryException(Name, bytes, free, total);
        }
        CudaCheck.ThrowIfFailed(result, $"cuMemAlloc({bytes} bytes on {Name})");
        return new CudaDeviceMemory(this, pointer, bytes);
    }

    protected override AcceleratorStream CreateStreamCore() => new CudaStream(this);
    protected override AcceleratorEvent CreateEventCore() => new CudaEvent(this);

    /// <summary>Held by <see cref="SynchronizeCore"/>'s checks and waits, by <see cref="CudaStream.BeginCapture"/>, and by a stream's wait on an event (which may join a capture).</summary>
    internal object CaptureGate { get; } = new();

    /// <summary>
    /// A context synchronize, except while a stream of this accelerator is being captured into a graph (by any thread):
    /// then cuCtxSynchronize is refused and breaks that capture, so every other stream is synchronised in turn instead (a
    /// capturing stream runs nothing). Seen in the suite: one test's Synchronize during another test's capture failed both.
    /// The check and the wait hold <see cref="CaptureGate"/>, which BeginCapture takes too, so no capture can begin between
    /// them or while the wait runs. A stream that joined a capture by waiting on its event counts as capturing (thirtieth
    /// session: a layer's shared-experts stream, forked inside a benchmark's capture, was synchronised by another test).
    /// </summary>
    protected override void SynchronizeCore()
    {
        Bind();
        var streams = TrackedStreams().Cast<CudaStream>().Append(_defaultStream).ToList();
        lock (CaptureGate)
        {
            if (!streams.Any(stream => stream.IsCapturing))
            {
                CudaCheck.ThrowIfFailed(CudaDriver.cuCtxSynchronize());
                return;
            }
        }
        foreach (var stream in streams)
        {
            try
            {
                lock (CaptureGate)
                    if (!stream.IsCapturing)
                        stream.Synchronize();
            }
            catch (ObjectDisposedException)
            {
                // disposed by its owner meanwhile: nothing of it left to wait for
            }
        }
    }

    protected internal override void CopyCore(MemoryBuffer source, long sourceOffsetBytes, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream)
    {
        Bind();
        ulong src = (ulong)(source.Pointer + (nint)sourceOffsetBytes);
        ulong dst = (ulong)(destination.Pointer + (nint)destinationOffsetBytes);
        nint s = ((CudaStream)stream).Handle;
        var srcAcc = (CudaAccelerator)source.Accelerator;
        if (ReferenceEquals(srcAcc, this))
            CudaCheck.ThrowIfFailed(CudaDriver.cuMemcpyDtoDAsync(dst, src, (nuint)bytes, s));
        else
            CudaCheck.ThrowIfFailed(CudaDriver.cuMemcpyPeerAsync(dst, _context, src, srcAcc.Context, (nuint)bytes, s));
    }

    protected internal override unsafe void CopyFromHostCore(void* source, MemoryBuffer destination, long destinationOffsetBytes, long bytes, AcceleratorStream stream, bool synchronous)
    {
        Bind();
        var cudaStream = (CudaStream)stream;
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemcpyHtoDAsync((ulong)(destination.Pointer + (nint)destinationOffsetBytes), source, (nuint)bytes, cudaStream.Handle));
        if (synchronous)
            cudaStream.Synchronize();
    }

    protected internal override unsafe void CopyToHostCore(MemoryBuffer source, long sourceOffsetBytes, void* destination, long bytes, AcceleratorStream stream, bool synchronous)
    {
        Bind();
        var cudaStream = (CudaStream)stream;
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemcpyDtoHAsync(destination, (ulong)(source.Pointer + (nint)sourceOffsetBytes), (nuint)bytes, cudaStream.Handle));
        if (synchronous)
            cudaStream.Synchronize();
    }

    protected internal override void FillBytesCore(MemoryBuffer destination, long offsetBytes, long bytes, byte value, AcceleratorStream stream)
    {
        Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemsetD8Async((ulong)(destination.Pointer + (nint)offsetBytes), value, (nuint)bytes, ((CudaStream)stream).Handle));
    }

    protected internal override void Fill32Core(MemoryBuffer destination, long offsetBytes, long count, uint value, AcceleratorStream stream)
    {
        Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemsetD32Async((ulong)(destination.Pointer + (nint)offsetBytes), value, (nuint)count, ((CudaStream)stream).Handle));
    }

    protected override void DisposeCore()
    {
        _loadedKernels.Clear();
        _modules.Clear();
        if (_context != 0)
        {
            if (t_currentContext == _context)
                t_currentContext = 0;
            CudaDriver.cuDevicePrimaryCtxRelease(Device);
            _context = 0;
        }
    }

    private static unsafe DeviceInfo QueryInfo(int device)
    {
        byte* name = stackalloc byte[256];
        CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceGetName(name, 256, device));
        byte* bus = stackalloc byte[64];
        string? busId = CudaDriver.cuDeviceGetPCIBusId(bus, 64, device) == CudaResult.Success
            ? Encoding.ASCII.GetString(new ReadOnlySpan<byte>(bus, 64)).TrimEnd('\0') : null;
        CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceTotalMem(out nuint total, device));
        int Attr(CudaDeviceAttribute a)
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuDeviceGetAttribute(out int v, a, device), $"cuDeviceGetAttribute({a})");
            return v;
        }
        return new DeviceInfo(
            Encoding.UTF8.GetString(new ReadOnlySpan<byte>(name, 256)).TrimEnd('\0'),
            Attr(CudaDeviceAttribute.ComputeCapabilityMajor),
            Attr(CudaDeviceAttribute.ComputeCapabilityMinor),
            Attr(CudaDeviceAttribute.MultiprocessorCount),
            (long)total,
            Attr(CudaDeviceAttribute.L2CacheSize),
            Attr(CudaDeviceAttribute.MaxSharedMemoryPerBlockOptin),
            busId);
    }

    /// <summary>Device memory; freed with the owning context bound, and never throws from Dispose.</summary>
    private sealed class CudaDeviceMemory(CudaAccelerator owner, ulong pointer, long bytes) : DeviceMemory((nint)pointer, bytes)
    {
        private int _freed;

        public override void Dispose()
        {
            if (Interlocked.Exchange(ref _freed, 1) != 0 || owner._context == 0)
                return;
            SetCurrent(owner._context);
            CudaDriver.cuMemFree((ulong)Address);
        }
    }
}
