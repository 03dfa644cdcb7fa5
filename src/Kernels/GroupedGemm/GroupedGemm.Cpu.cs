using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The CPU twin, plain and obviously right: for each expert, each of its rows, each output column, a dot
/// product in F64 over K, then the epilogue. Tests use it as the oracle; the op's CPU path is
/// <see cref="GroupedGemmCpuFast"/>, which is tested against this.
/// </summary>
public static class GroupedGemmCpu
{
    /// <summary>
    /// The exact result (F64) for float-valued operands: x [rows, K], w [E, N, K], expertOffsets [E + 1],
    /// rowScale [rows] or null. Returns [rows, N] (fused: [rows, N/2]); rows outside every expert stay NaN.
    /// </summary>
    public static double[] Reference(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<int> expertOffsets,
                                     ReadOnlySpan<float> rowScale, int n, int k, bool fusedSiluAndMul)
    {
        int rows = x.Length / k;
        int experts = expertOffsets.Length - 1;
        int outCols = fusedSiluAndMul ? n / 2 : n;
        var y = new double[(long)rows * outCols];
        Array.Fill(y, double.NaN);
        for (int e = 0; e < experts; e++)
        {
            for (int row = expertOffsets[e]; row < expertOffsets[e + 1]; row++)
            {
                double scale = rowScale.IsEmpty ? 1.0 : rowScale[row];
                for (int col = 0; col < outCols; col++)
                {
                    double value;
                    if (fusedSiluAndMul)
                    {
                        double gate = Dot(x, w, row, e, col, n, k);
                        double up = Dot(x, w, row, e, outCols + col, n, k);
                        value = gate / (1.0 + Math.Exp(-gate)) * up;
                    }
                    else
                    {
                        value = Dot(x, w, row, e, col, n, k);
                    }
                    y[(long)row * outCols + col] = value * scale;
                }
            }
        }
        return y;
    }

    private static double Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> w, int row, int expert, int wRow, int n, int k)
    {
        double sum = 0;
        long xBase = (long)row * k;
        long wBase = ((long)expert * n + wRow) * k;
        for (int i = 0; i < k; i++)
            sum += (double)x[(int)(xBase + i)] * w[(int)(wBase + i)];
        return sum;
    }
}
