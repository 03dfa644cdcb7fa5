using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Cli.Bench;

/// <summary>
/// A kernel that keeps a CUDA stream busy for a while (<c>bench_delay.cu</c>): enqueued before a timed forward, it lets
/// the host enqueue the whole forward before the GPU reaches it, so events inside the forward time the device's work
/// and not the host's launch latency. The CPU runs each call as it is enqueued, so there it does nothing.
/// </summary>
internal static class DeviceDelay
{
    private static readonly KernelSource Source = KernelSource.FromResource(typeof(DeviceDelay).Assembly, "bench_delay.cu");

    public static void Enqueue(Accelerator accelerator, AcceleratorStream stream, double microseconds)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(microseconds);
        if (accelerator is not CudaAccelerator cuda)
            return;
        var kernel = cuda.LoadKernel(Source, "bench_delay");
        kernel.Launch((CudaStream)stream, new Dim3(1, 1, 1), new Dim3(1, 1, 1), 0, (ulong)(microseconds * 1e3));
    }
}
