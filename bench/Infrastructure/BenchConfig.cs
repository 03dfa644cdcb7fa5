using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>In-process jobs, medians, and the GB/s and TFLOP/s columns every suite reports.</summary>
public sealed class BenchConfig : ManualConfig
{
    public BenchConfig()
    {
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(10).WithId("inproc"));
        AddColumnProvider(DefaultColumnProviders.Instance);
        AddColumn(StatisticColumn.Median);
        AddColumn(new ThroughputColumn(ThroughputColumn.Kind.Bandwidth));
        AddColumn(new ThroughputColumn(ThroughputColumn.Kind.Compute));
        AddLogger(BenchmarkDotNet.Loggers.ConsoleLogger.Default);
        AddExporter(BenchmarkDotNet.Exporters.MarkdownExporter.GitHub);
        AddExporter(BenchmarkDotNet.Exporters.Csv.CsvExporter.Default);
        WithOptions(ConfigOptions.DisableOptimizationsValidator);
    }
}
