using System.Text;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Tests.Infrastructure;

/// <summary>
/// Result checks: relative error ||out - ref|| / ||ref|| against a bound chosen for the dtype, and exact
/// equality; on failure the message lists the first mismatches with index, expected and actual.
/// NaN anywhere in the output fails (outputs are poisoned with NaN before a run).
/// </summary>
public static class Compare
{
    /// <summary>Bounds by operand precision: F32 arithmetic, TF32, BF16/F16 operands (F32 accumulation).</summary>
    public const double F32Tolerance = 1e-5;
    public const double Tf32Tolerance = 1e-3;
    public const double Bf16Tolerance = 1e-2;
    public const double F16Tolerance = 2e-3;

    /// <summary>
    /// The bound for a result computed from <paramref name="operands"/> and stored as <paramref name="output"/>: the
    /// looser of the two, since rounding to a 16-bit output (bf16: 2^-9 relative per element) can exceed the operands'
    /// bound (f16 operands with bf16 output).
    /// </summary>
    public static double ToleranceFor(DType operands, DType output) =>
        Math.Max(ToleranceFor(operands), output == DType.F32 ? 0 : ToleranceFor(output));

    public static double ToleranceFor(DType dtype) => dtype switch
    {
        DType.F32 => F32Tolerance,
        DType.BF16 => Bf16Tolerance,
        DType.F16 => F16Tolerance,
        _ => 0,
    };

    public static double RelativeError(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            if (double.IsNaN(actual[i]))
                return double.NaN;
            double d = actual[i] - expected[i];
            diff += d * d;
            norm += expected[i] * expected[i];
        }
        return norm == 0 ? Math.Sqrt(diff) : Math.Sqrt(diff / norm);
    }

    /// <summary>Asserts ||actual - expected|| / ||expected|| &lt;= <paramref name="tolerance"/> and no NaN.</summary>
    public static void Close(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tolerance, string what)
    {
        double error = RelativeError(expected, actual);
        if (!(error <= tolerance))
            Assert.Fail($"{what}: relative error {error:E3} exceeds {tolerance:E1}\n{FirstMismatches(expected, actual, tolerance)}");
    }

    public static void Close(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double tolerance, string what) =>
        Close(ToDouble(expected), ToDouble(actual), tolerance, what);

    /// <summary>Asserts every element equal; lists the first mismatches and how many there are.</summary>
    public static void Exact<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, string what) where T : IEquatable<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        int wrong = 0;
        var sb = new StringBuilder();
        for (int i = 0; i < expected.Length; i++)
        {
            if (expected[i].Equals(actual[i]))
                continue;
            if (wrong++ < 10)
                sb.AppendLine($"  [{i}] expected {expected[i]}, actual {actual[i]}");
        }
        if (wrong > 0)
            Assert.Fail($"{what}: {wrong} of {expected.Length} elements wrong\n{sb}");
    }

    public static double[] ToDouble(ReadOnlySpan<float> values)
    {
        var result = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = values[i];
        return result;
    }

    private static string FirstMismatches(ReadOnlySpan<double> expected, ReadOnlySpan<double> actual, double tolerance)
    {
        double scale = 0;
        foreach (var e in expected)
            scale = Math.Max(scale, Math.Abs(e));
        var sb = new StringBuilder();
        int shown = 0;
        for (int i = 0; i < expected.Length && shown < 10; i++)
        {
            if (double.IsNaN(actual[i]) || Math.Abs(actual[i] - expected[i]) > tolerance * Math.Max(scale, 1e-30) * 10)
            {
                sb.AppendLine($"  [{i}] expected {expected[i]:G9}, actual {actual[i]:G9}");
                shown++;
            }
        }
        return sb.ToString();
    }
}
