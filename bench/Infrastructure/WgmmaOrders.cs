using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// MOE_SWEEP_SCHEDULES=ORDER,ORDER,... (each as MOE_GROUPED_GEMM_WGMMA_SCHEDULE takes it: static, dynamic, bounded:D, auto):
/// `sweep grouped_gemm` measures every wgmma row and `sweep moe_layer` every layer row under each order, named
/// "row [order]", for A/B runs in one process on the same weights.
/// </summary>
internal static class WgmmaOrders
{
    /// <summary>The orders listed, or null when unset (a bad one is the ArgumentException naming the variable).</summary>
    public static GroupedGemmWgmma.Schedule[]? FromEnvironment { get; } =
        Environment.GetEnvironmentVariable("MOE_SWEEP_SCHEDULES") is { Length: > 0 } list
            ? [.. list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(order => GroupedGemmWgmma.ParseSchedule(order) ?? throw new ArgumentException($"MOE_SWEEP_SCHEDULES='{list}': an empty order"))]
            : null;

    /// <summary>Each order's row, the orders alternating over two passes (so that a drifting clock or heat lands on all).</summary>
    public static List<T> MeasureEach<T>(GroupedGemmWgmma.Schedule[] orders, Func<string, T> measure, string name)
    {
        var rows = new List<T>();
        for (int pass = 0; pass < 2; pass++)
            foreach (var order in orders)
            {
                GroupedGemmWgmma.ScheduleOverride = order;
                try
                {
                    rows.Add(measure($"{name} [{order}]"));
                }
                finally
                {
                    GroupedGemmWgmma.ScheduleOverride = null;
                }
            }
        return rows;
    }
}
