using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>GB/s (bytes / median time) or TFLOP/s (flops / median time) for benchmarks that implement <see cref="IWorkload"/>.</summary>
public sealed class ThroughputColumn(ThroughputColumn.Kind kind) : IColumn
{
    public enum Kind { Bandwidth, Compute }

    public string Id => $"Throughput.{kind}";
    public string ColumnName => kind == Kind.Bandwidth ? "GB/s" : "TFLOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => (int)kind;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => kind == Kind.Bandwidth ? "bytes moved / median time, in 1e9 B/s" : "floating-point operations / median time, in 1e12 /s";

    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var median = report?.ResultStatistics?.Median;
        if (median is null or <= 0 || Workload(benchmarkCase) is not { } work)
            return "-";
        double seconds = median.Value * 1e-9;
        double value = kind == Kind.Bandwidth ? work.Bytes / seconds / 1e9 : work.Flops / seconds / 1e12;
        return value <= 0 ? "-" : value.ToString(value >= 100 ? "F0" : value >= 1 ? "F2" : "F4", System.Globalization.CultureInfo.InvariantCulture);
    }

    private static IWorkload? Workload(BenchmarkCase benchmarkCase)
    {
        var type = benchmarkCase.Descriptor.Type;
        if (!typeof(IWorkload).IsAssignableFrom(type) || Activator.CreateInstance(type) is not IWorkload instance)
            return null;
        foreach (var parameter in benchmarkCase.Parameters.Items)
        {
            var property = type.GetProperty(parameter.Name);
            if (property is not null && property.CanWrite)
                property.SetValue(instance, parameter.Value);
            else
                type.GetField(parameter.Name)?.SetValue(instance, parameter.Value);
        }
        return instance;
    }
}
