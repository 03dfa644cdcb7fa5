using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Activation;

/// <summary>The activation applied to the gate half.</summary>
public enum GatedActivationKind
{
    /// <summary>silu(x) = x / (1 + exp(-x)) (SwiGLU: Mixtral, Qwen3-MoE, DeepSeek).</summary>
    Silu,

    /// <summary>GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    GeluTanh,

    /// <summary>GELU, exact: 0.5 x (1 + erf(x / sqrt(2))).</summary>
    GeluErf,
}

/// <summary>
/// Gated activation: gateUp [rows, 2I] (gate | up) -> output [rows, I], output[r, i] = act(gate[r, i]) * up[r, i],
/// computed in F32 and rounded once to the data dtype (F32, BF16, F16; input and output share it).
/// Example (SiLU, I = 1): [[2, 3]] -> [[3 * 2 / (1 + e^-2)]] = [[5.2848]].
/// </summary>
public static partial class GatedActivation
{
    private const int Threads = 256; // ACT_THREADS in gated_activation.cu

    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(GatedActivation).Assembly, "gated_activation.cu"));

    public static void Run(GatedActivationKind kind, MemoryBuffer gateUp, int rows, int intermediate, MemoryBuffer output, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(gateUp);
        var accelerator = gateUp.Accelerator;
        gateUp.ThrowIfDisposed();
        if (!Enum.IsDefined(kind))
            throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown activation");
        HostRows.CheckDataType(gateUp, nameof(gateUp));
        if (rows < 0)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, "rows must be >= 0");
        if (intermediate < 1 || intermediate > int.MaxValue / 2)
            throw new ArgumentOutOfRangeException(nameof(intermediate), intermediate, "intermediate must be >= 1 (and 2 * intermediate an int)");
        HostRows.Check(gateUp, accelerator, (long)rows * 2 * intermediate, nameof(gateUp));
        HostRows.Check(output, accelerator, (long)rows * intermediate, nameof(output));
        HostRows.CheckDType(output, gateUp.DType, nameof(output));
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with gateUp on {accelerator.Name}", nameof(stream));

        if (accelerator is CudaAccelerator cuda)
        {
            int vector = 16 / gateUp.ElementSize;
            bool vectorised = intermediate % vector == 0 && gateUp.Pointer % 16 == 0 && output.Pointer % 16 == 0;
            string name = kind switch { GatedActivationKind.Silu => "silu", GatedActivationKind.GeluTanh => "gelu_tanh", _ => "gelu_erf" };
            string entry = $"{name}_mul_{HostRows.Suffix(gateUp.DType)}_{(vectorised ? "vec" : "scalar")}";
            cuda.LoadKernel(Source.Value, entry).Launch((CudaStream)s, rows, Threads, 0, gateUp, intermediate, output);
        }
        else
        {
            RunCpu(kind, gateUp, rows, intermediate, output);
        }
    }
}
