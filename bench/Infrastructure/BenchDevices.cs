using MoeRuntime.Accelerators;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>The accelerators benchmarks run on: every one present, or those named in MOE_BENCH_DEVICES.</summary>
public static class BenchDevices
{
    private static readonly Lazy<AcceleratorContext> LazyContext = new(() => new AcceleratorContext());

    public static AcceleratorContext Context => LazyContext.Value;

    /// <summary>Names for a <c>[ParamsSource]</c>: cpu, then cuda:0 when present.</summary>
    public static IEnumerable<string> Names()
    {
        string? selected = Environment.GetEnvironmentVariable("MOE_BENCH_DEVICES");
        if (!string.IsNullOrWhiteSpace(selected))
            return AcceleratorId.ParseList(selected).Select(i => i.ToString());
        return Context.Accelerators.Where(a => a.Kind == AcceleratorKind.Cpu || a.Id.Index == 0).Select(a => a.Name);
    }

    public static Accelerator Get(string name) => Context.Get(name);
}
