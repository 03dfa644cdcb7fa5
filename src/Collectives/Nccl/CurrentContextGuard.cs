using MoeRuntime.Accelerators.Cuda;

namespace MoeRuntime.Collectives.Nccl;

/// <summary>
/// Puts back the calling thread's current CUDA context after NCCL calls: NCCL switches devices through the CUDA
/// runtime, behind the accelerators' own record of which context is current on this thread.
/// </summary>
internal readonly struct CurrentContextGuard : IDisposable
{
    private readonly nint _context;

    private CurrentContextGuard(nint context) => _context = context;

    public static CurrentContextGuard Save()
    {
        CudaCheck.ThrowIfFailed(CudaDriver.cuCtxGetCurrent(out nint context));
        return new CurrentContextGuard(context);
    }

    public void Dispose() => CudaAccelerator.SetCurrent(_context);
}
