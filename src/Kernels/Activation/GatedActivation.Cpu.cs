using System.Numerics.Tensors;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Activation;

/// <summary>The CPU twin of gated_activation.cu: the same F32 formulas, rows in parallel (SiLU vectorised).</summary>
public static partial class GatedActivation
{
    private static void RunCpu(GatedActivationKind kind, MemoryBuffer gateUp, int rows, int intermediate, MemoryBuffer output)
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
