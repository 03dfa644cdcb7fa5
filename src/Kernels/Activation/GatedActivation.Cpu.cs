using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Activation;

/// <summary>
/// The CPU twins of gated_activation.cu: the same F32 formulas, rows in parallel. <see cref="RunCpuPlain"/> is the plain
/// loop (SiLU vectorised); <see cref="RunSiluFused{TElements}"/> gives its SiLU results bit for bit, faster, and runs
/// BF16 and F32 SiLU wherever 512-bit vectors are native. F16 (the library's span conversions) and the GELUs (held by their
/// scalar transcendentals, not by memory) keep the plain loop.
/// </summary>
public static partial class GatedActivation
{
    private static void RunCpu(GatedActivationKind kind, MemoryBuffer gateUp, int rows, int intermediate, MemoryBuffer output)
    {
        if (rows == 0)
            return;
        if (kind != GatedActivationKind.Silu || !Vector512.IsHardwareAccelerated || gateUp.DType == DType.F16)
            RunCpuPlain(kind, gateUp, rows, intermediate, output);
        else if (gateUp.DType == DType.BF16)
            RunSiluFused<Bf16Elements>(gateUp, rows, intermediate, output);
        else
            RunSiluFused<F32Elements>(gateUp, rows, intermediate, output);
    }

    /// <summary>The plain twin: a row read into F32 scratch, the formula over the whole row, the result written.</summary>
    internal static void RunCpuPlain(GatedActivationKind kind, MemoryBuffer gateUp, int rows, int intermediate, MemoryBuffer output)
    {
        Parallel.For(0, rows, () => (new float[2 * intermediate], new float[intermediate]), (row, _, scratch) =>
        {
            var (input, result) = scratch;
            HostRows.Read(gateUp, (long)row * 2 * intermediate, input);
            var gate = input.AsSpan(0, intermediate);
            var up = input.AsSpan(intermediate, intermediate);
            if (kind == GatedActivationKind.Silu)
            {
                // silu(g) * u = sigmoid(g) * g * u, vectorised (the scalar form is Activate below).
                TensorPrimitives.Sigmoid(gate, result);
                TensorPrimitives.Multiply(result, gate, result);
                TensorPrimitives.Multiply(result, up, result);
            }
            else
            {
                for (int i = 0; i < intermediate; i++)
                    result[i] = Activate(kind, gate[i]) * up[i];
            }
            HostRows.Write(result, output, (long)row * intermediate);
            return scratch;
        }, _ => { });
    }

    /// <summary>
    /// SiLU-and-mul, fused: ranges of rows in parallel; per row the gate half as F32, the library's sigmoid over it, then one
    /// pass that reads up in its dtype, forms (sigmoid(g) * g) * u and stores it rounded. The sigmoid stays the library's,
    /// over the same whole-row span as the plain twin: its vector and scalar forms differ in the last bit, and it picks
    /// between them by span length.
    /// </summary>
    private static unsafe void RunSiluFused<TElements>(MemoryBuffer gateUp, int rows, int intermediate, MemoryBuffer output)
        where TElements : IRowElements
    {
        nint inputs = gateUp.Pointer, outputs = output.Pointer;
        long rowBytes = (long)intermediate * TElements.Size; // one half of an input row, one output row
        Parallel.ForEach(HostRows.Ranges(rows), range =>
        {
            var gate = new float[intermediate];
            var sigmoid = new float[intermediate];
            for (int row = range.Item1; row < range.Item2; row++)
            {
                byte* gateRow = (byte*)(inputs + 2 * row * rowBytes);
                TElements.Read(gateRow, gate);
                TensorPrimitives.Sigmoid(gate, sigmoid);
                SiluAndMulRow<TElements>(sigmoid, gate, gateRow + rowBytes, (byte*)(outputs + row * rowBytes));
            }
        });
    }

    /// <summary>output = (sigmoid * gate) * up, the plain twin's two products in its order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void SiluAndMulRow<TElements>(ReadOnlySpan<float> sigmoid, ReadOnlySpan<float> gate, byte* up, byte* output)
        where TElements : IRowElements
    {
        const int L = 16; // Vector512<float>.Count
        int n = gate.Length, i = 0;
        for (; i + L <= n; i += L)
        {
            var product = Vector512.Create(sigmoid.Slice(i, L)) * Vector512.Create(gate.Slice(i, L));
            TElements.Store(product * TElements.Load(up, i), output, i);
        }
        for (; i < n; i++)
            TElements.StoreOne(sigmoid[i] * gate[i] * TElements.LoadOne(up, i), output, i);
    }

    internal static float Activate(GatedActivationKind kind, float x) => kind switch
    {
        GatedActivationKind.Silu => x / (1f + MathF.Exp(-x)),
        GatedActivationKind.GeluTanh => 0.5f * x * (1f + MathF.Tanh(0.7978845608028654f * (x + 0.044715f * x * x * x))),
        _ => (float)(0.5 * x * (1 + Erf(x * 0.7071067811865476))),
    };

    /// <summary>
    /// erf in double (.NET has none): erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1 * 3 * ... * (2n+1)),
    /// a series of positive terms (no cancellation); |erf(x)| rounds to 1 in double beyond |x| = 6.
    /// </summary>
    internal static double Erf(double x)
    {
        double a = Math.Abs(x);
        if (double.IsNaN(x))
            return double.NaN;
        if (a >= 6)
            return Math.Sign(x);
        double term = a, sum = a;
        for (int n = 1; n < 500 && term > sum * 1e-17; n++)
        {
            term *= 2 * a * a / (2 * n + 1);
            sum += term;
        }
        return Math.Sign(x) * 2 / Math.Sqrt(Math.PI) * Math.Exp(-a * a) * sum;
    }
}
