using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>One grouped GEMM call a workspace is sized for: rows (an upper bound), N, K, experts, fused SiLU-and-mul.</summary>
public readonly record struct GroupedGemmShape(int Rows, int N, int K, int Experts, bool Fused = false);

/// <summary>
/// Device scratch for split-K (<see cref="GroupedGemmOptions.SplitKWorkspace"/>): F32 partial tiles and one arrival
/// counter per output tile (the skinny kernel, <see cref="GroupedGemmSkinny"/>: its partials, and for its folded reduction
/// a counter per column block), and on a GPU the wgmma kernel's tile tickets (<see cref="Tickets"/>). The counters and
/// tickets start at zero and every launch leaves them at zero, so one workspace serves any number of calls, also inside a CUDA
/// graph, as long as no two calls that use it run at the same time (calls on one stream never do). Without a workspace, or with one too small for a call, the call does not split
/// (or splits less). On the CPU a workspace holds nothing. Create it outside a CUDA graph capture (it synchronises).
/// </summary>
public sealed class GroupedGemmWorkspace : IDisposable
{
    private GroupedGemmWorkspace(Accelerator accelerator, long partialFloats, long counters)
    {
        Accelerator = accelerator;
        if (accelerator.Kind == AcceleratorKind.Cpu)
            return;
        // Either part may be empty: the skinny kernel (GroupedGemmSkinny) with MOE_SKINNY_REDUCE=kernel needs partials only.
        if (partialFloats > 0)
            Partials = accelerator.Allocate<float>(partialFloats);
        try
        {
            if (counters > 0)
            {
                Counters = accelerator.Allocate<int>(counters);
                Counters.Clear();
            }
            Tickets = accelerator.Allocate<int>(TicketInts);
            Tickets.Clear();
            accelerator.Synchronize(); // streams are non-blocking: the zeroes must land before a launch on any stream
        }
        catch
        {
            Partials?.Dispose();
            Counters?.Dispose();
            throw;
        }
    }

    /// <summary>Ints of <see cref="Tickets"/>: the next work item (or, bounded, the items started), and the blocks done asking.</summary>
    internal const int TicketInts = 2;

    public Accelerator Accelerator { get; }

    /// <summary>[capacity] F32 partial tiles; null when the workspace is empty.</summary>
    internal MemoryBuffer<float>? Partials { get; }

    /// <summary>[capacity] I32 arrival counters, zero between launches; null when the workspace is empty.</summary>
    internal MemoryBuffer<int>? Counters { get; }

    /// <summary>
    /// [<see cref="TicketInts"/>] I32 on a GPU, null on the CPU: the wgmma kernel's work-order state (wgmma_order.cuh), zero
    /// between launches.
    /// </summary>
    internal MemoryBuffer<int>? Tickets { get; }

    /// <summary>
    /// Whether calls on this workspace may run beside kernels of another stream (an MoE layer's shared experts): then their
    /// blocks may start late, and the wgmma kernel's auto order claims its items dynamically instead of bounding its blocks'
    /// drift, which would make the early blocks wait (GroupedGemmWgmma.ScheduleFor). Set by the workspace's owner.
    /// </summary>
    public bool SharesDevice { get; set; }

    public long PartialCapacity => Partials?.Length ?? 0;
    public long CounterCapacity => Counters?.Length ?? 0;

    /// <summary>Bytes of device memory the workspace holds.</summary>
    public long Bytes => (Partials?.LengthBytes ?? 0) + (Counters?.LengthBytes ?? 0) + (Tickets?.LengthBytes ?? 0);

    /// <summary>
    /// A workspace big enough for each of <paramref name="shapes"/> with the split count the op would choose on this
    /// accelerator (bf16/f16 operands; MOE_GROUPED_GEMM_SPLITK=N sizes for N splits). Empty on the CPU.
    /// </summary>
    public static GroupedGemmWorkspace For(Accelerator accelerator, params GroupedGemmShape[] shapes)
    {
        var (partials, counters) = Required(accelerator, shapes);
        return new GroupedGemmWorkspace(accelerator, partials, counters);
    }

    /// <summary>
    /// The capacities <see cref="For"/> would allocate for <paramref name="shapes"/>, without allocating: a caller that keeps
    /// one workspace across calls checks it against these (a larger workspace leads to the same split choice).
    /// </summary>
    public static (long PartialFloats, long Counters) Required(Accelerator accelerator, params GroupedGemmShape[] shapes)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(shapes);
        if (accelerator.Kind == AcceleratorKind.Cpu)
            return (0, 0);
        int? forced = GroupedGemmLaunch.SplitsFromEnvironment();
        long partials = 0, counters = 0;
        foreach (var shape in shapes)
        {
            if (shape.Rows <= 0 || shape.N <= 0 || shape.K <= 0 || shape.Experts <= 0)
                continue;
            // A single-matrix call of few rows runs on the skinny kernel (GroupedGemmSkinny): its partials, and a counter per
            // column block for its folded reduction (sized whichever MOE_SKINNY_REDUCE says: a few ints).
            if (GroupedGemmSkinny.Takes(DType.BF16, shape.Rows, shape.Experts, hasWorkspace: true)
                && !GroupedGemmSkinny.HopperKeeps(accelerator, DType.BF16, shape.Rows, shape.N, shape.Fused)
                && GroupedGemmSkinny.PlanFor(accelerator, shape.Rows, shape.N, shape.K) is { } skinny)
            {
                partials = Math.Max(partials, GroupedGemmSkinny.Launch.PartialFloatsFor(skinny.Splits, shape.Rows, shape.N));
                counters = Math.Max(counters, skinny.Counters);
                continue;
            }
            // A few-tile call (GroupedGemmFewTiles) splits the mma.sync tile that replaces the Hopper kernel.
            bool fewTiles = GroupedGemmFewTiles.Applies(accelerator, DType.BF16, shape.Rows, shape.N, shape.Experts, shape.Fused, hasWorkspace: true);
            var variant = fewTiles ? GroupedGemmFewTiles.VariantFor(shape.Rows, shape.Experts) : GroupedGemm.ChooseVariant(DType.BF16, shape.Rows, shape.Experts);
            var launch = GroupedGemmLaunch.Plan(variant, shape.Rows, shape.N, shape.K, shape.Experts, shape.Fused,
                GroupedGemm.Slots(accelerator, variant), forced, long.MaxValue, long.MaxValue, autoSplit: fewTiles);
            partials = Math.Max(partials, launch.PartialFloats);
            counters = Math.Max(counters, launch.Counters);
        }
        return (partials, counters);
    }

    /// <summary>Whether this workspace holds at least <paramref name="required"/> (from <see cref="Required"/>).</summary>
    public bool Holds((long PartialFloats, long Counters) required) =>
        Accelerator.Kind == AcceleratorKind.Cpu || (PartialCapacity >= required.PartialFloats && CounterCapacity >= required.Counters);

    /// <summary>A workspace of the given capacities (from <see cref="Required"/>, possibly the larger of two).</summary>
    public static GroupedGemmWorkspace WithCapacities(Accelerator accelerator, long partialFloats, long counters)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        return new GroupedGemmWorkspace(accelerator, partialFloats, counters);
    }

    /// <summary>Tests: a workspace of a given capacity (F32 partials, counters).</summary>
    internal static GroupedGemmWorkspace WithCapacity(Accelerator accelerator, long partialFloats, long counters) =>
        new(accelerator, partialFloats, counters);

    internal void ThrowIfDisposed()
    {
        Partials?.ThrowIfDisposed();
        Counters?.ThrowIfDisposed();
        Tickets?.ThrowIfDisposed();
    }

    public void Dispose()
    {
        Partials?.Dispose();
        Counters?.Dispose();
        Tickets?.Dispose();
    }
}
