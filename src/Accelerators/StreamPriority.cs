namespace MoeRuntime.Accelerators;

/// <summary>
/// Which of two streams' pending blocks the GPU's scheduler starts first when both wait for room on an SM. CUDA: High is
/// the device's greatest stream priority, Normal the default (its least). The CPU accelerator runs a stream's work in
/// order whatever its priority. A CUDA graph captured from a stream keeps its kernels' priorities (CudaGraph).
/// </summary>
public enum StreamPriority
{
    Normal,
    High,
}
