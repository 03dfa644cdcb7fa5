namespace MoeRuntime.Cli.Bench;

/// <summary>The median the benchmarks report: the middle sample, or the mean of the two middle ones; 0 for no samples.</summary>
internal static class BenchMedian
{
    public static double Of(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
