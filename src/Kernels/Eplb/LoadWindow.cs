using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Eplb;

/// <summary>
/// Pushes one forward's tokens per expert into a sliding window on the device: a ring buffer window [W, E] I32,
/// its running per-expert sums [E] I64 and the number of forwards recorded, state [1] I64. Row
/// <c>state mod W</c> is replaced; sums stay equal to the sum of the rows. Ordered on the stream, no host sync.
/// </summary>
public static class LoadWindow
{
    private const int Threads = 256;
    private static readonly KernelSource Source = KernelSource.FromResource(typeof(LoadWindow).Assembly, "load_window.cu");

    public static void Push(MemoryBuffer<int> counts, MemoryBuffer<int> window, MemoryBuffer<long> sums, MemoryBuffer<long> state, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(counts);
        ArgumentNullException.ThrowIfNull(window);
        ArgumentNullException.ThrowIfNull(sums);
        ArgumentNullException.ThrowIfNull(state);
        var accelerator = window.Accelerator;
        foreach (var (buffer, name) in new (MemoryBuffer, string)[] { (counts, nameof(counts)), (window, nameof(window)), (sums, nameof(sums)), (state, nameof(state)) })
        {
            buffer.ThrowIfDisposed();
            if (!ReferenceEquals(buffer.Accelerator, accelerator))
                throw new ArgumentException($"{name} is on {buffer.Accelerator.Name}; the window is on {accelerator.Name}", name);
        }
        if (stream is not null && !ReferenceEquals(stream.Accelerator, accelerator))
            throw new ArgumentException($"stream of {stream.Accelerator.Name} used with buffers of {accelerator.Name}", nameof(stream));
        long experts = counts.Length;
        if (experts == 0 || experts > int.MaxValue)
            throw new ArgumentException($"counts has {experts} elements; need 1 .. 2^31 - 1 experts", nameof(counts));
        if (sums.Length != experts)
            throw new ArgumentException($"sums has {sums.Length} elements; counts has {experts}", nameof(sums));
        if (window.Length == 0 || window.Length % experts != 0 || window.Length / experts > int.MaxValue)
            throw new ArgumentException($"window has {window.Length} elements; it must be [W, {experts}] with W >= 1", nameof(window));
        if (state.Length != 1)
            throw new ArgumentException($"state has {state.Length} elements; it must have exactly one", nameof(state));
        int windowForwards = (int)(window.Length / experts);
        switch (accelerator)
        {
            case CudaAccelerator gpu:
                gpu.LoadKernel(Source, "load_window_push").Launch((CudaStream)(stream ?? gpu.DefaultStream), 1, Threads, 0,
                    counts, window, sums, state, (int)experts, windowForwards);
                break;
            default:
                (stream ?? accelerator.DefaultStream).Synchronize();
                LoadWindowCpu.Push(counts.AsSpan(), window.AsSpan(), sums.AsSpan(), state.AsSpan(), windowForwards);
                break;
        }
    }
}
