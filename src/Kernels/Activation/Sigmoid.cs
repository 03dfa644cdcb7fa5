using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Activation;

/// <summary>In place x = 1 / (1 + exp(-x)) over an F32 buffer (qwen2_moe's shared-expert gate).</summary>
public static partial class Sigmoid
{
    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(Sigmoid).Assembly, "sigmoid.cu"));

    public static void Run(MemoryBuffer<float> values, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        values.ThrowIfDisposed();
        var accelerator = values.Accelerator;
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with {values.Describe()}", nameof(stream));
        if (values.Length == 0)
            return;
        if (accelerator is CudaAccelerator cuda)
        {
            int blocks = (int)Math.Min((values.Length + 255) / 256, 4096);
            cuda.LoadKernel(Source.Value, "sigmoid_f32").Launch((CudaStream)s, blocks, 256, 0, values, values.Length);
        }
        else
        {
            RunCpu(values.AsSpan());
        }
    }
}
