using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// Four ints of pinned host memory mapped into one device's address space (cuMemHostAlloc with DEVICEMAP):
/// a kernel whose wait timed out writes {1, step, rank, collective} here, and the host reads it without
/// a copy, even while the device is busy. Owned by one rank of a communicator.
/// </summary>
internal sealed unsafe class MappedErrorRecord : IDisposable
{
    private readonly CudaAccelerator _accelerator;
    private nint _host;

    public MappedErrorRecord(CudaAccelerator accelerator)
    {
        _accelerator = accelerator;
        accelerator.Bind();
        CudaCheck.ThrowIfFailed(CudaDriver.cuMemHostAlloc(out _host, 4 * sizeof(int), CudaDriver.MemHostAllocDeviceMap), $"cuMemHostAlloc(16 bytes, DEVICEMAP) on {accelerator.Name}");
        try
        {
            CudaCheck.ThrowIfFailed(CudaDriver.cuMemHostGetDevicePointer(out ulong device, _host, 0), $"cuMemHostGetDevicePointer on {accelerator.Name}");
            DevicePointer = (nint)device;
        }
        catch
        {
            CudaDriver.cuMemFreeHost(_host);
            _host = 0;
            throw;
        }
        Clear();
    }

    /// <summary>The address kernels write through.</summary>
    public nint DevicePointer { get; }

    public bool IsSet => Volatile.Read(ref ((int*)_host)[0]) != 0;
    public int Step => Volatile.Read(ref ((int*)_host)[1]);
    public int Rank => Volatile.Read(ref ((int*)_host)[2]);
    public CollectiveKind Collective => (CollectiveKind)Volatile.Read(ref ((int*)_host)[3]);

    public void Clear()
    {
        for (int i = 0; i < 4; i++)
            Volatile.Write(ref ((int*)_host)[i], 0);
    }

    public void Dispose()
    {
        if (_host == 0)
            return;
        if (!_accelerator.IsDisposed)
        {
            CudaAccelerator.SetCurrent(_accelerator.Context);
            CudaDriver.cuMemFreeHost(_host);
        }
        _host = 0;
    }
}
