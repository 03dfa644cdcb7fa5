using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Benchmarks.Infrastructure;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// The time of a kernel node that does nothing (<c>graph_node_floor.cu</c>), replayed like the routing rows: the floor a
/// one-kernel op cannot go under at small T, launched the same way (programmatic dependent launch on sm_90+).
/// </summary>
internal static class GraphNodeFloor
{
    private static readonly KernelSource Source = KernelSource.FromResource(typeof(GraphNodeFloor).Assembly, "graph_node_floor.cu");

    /// <summary>The row, or null off CUDA.</summary>
    public static SweepRow? Measure(Accelerator accelerator, int threads)
    {
        if (accelerator is not CudaAccelerator cuda)
            return null;
        using var word = accelerator.Upload<int>([1]);
        var kernel = cuda.LoadKernel(Source, "graph_node_floor");
        double ms = DeviceTimer.MedianMs(accelerator, s => kernel.Launch((CudaStream)s, new Dim3(1, 1, 1), new Dim3((uint)threads, 1, 1), 0, word),
            useGraph: true);
        return new SweepRow("graph node floor (empty kernel)", $"1 block x {threads}", ms, 0, 0, 0,
            kernel.LaunchesDependent ? "graph, dependent launch" : "graph");
    }
}
