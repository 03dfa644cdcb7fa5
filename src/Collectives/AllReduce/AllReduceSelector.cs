namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// One row of <see cref="AllReduceSelector.Crossovers"/>: for communicators of up to <paramref name="Ranks"/> ranks,
/// one-shot below <paramref name="OneShotBelowBytes"/>, two-shot from there, NCCL (when present) from
/// <paramref name="NcclFromBytes"/>.
/// </summary>
public sealed record AllReduceCrossover(int Ranks, long OneShotBelowBytes, long NcclFromBytes);

/// <summary>
/// The table <see cref="AllReduceAlgorithm.Auto"/> picks from, by rank count and tensor bytes: the first row whose
/// <see cref="AllReduceCrossover.Ranks"/> is at least the communicator's size (the last row beyond it).
/// <para>Where the numbers come from (replace them with <c>moe bench allreduce --algo all</c> measurements, one row
/// per GPU count; the crossover is the first size where two-shot's time drops below one-shot's, and NCCL's below
/// the better of ours):</para>
/// <list type="bullet">
/// <item>One-shot below 512 KB on 4 ranks and 256 KB on 8: vLLM's custom all-reduce table (H100, NVLink). One-shot
/// reads N-1 whole tensors over NVLink, two-shot (ours pushes its reduced chunk into every output) reads and writes
/// (N-1)/N of one: past a few hundred KB the bytes decide, below it the equal count of barriers (two each) does.</item>
/// <item>2 ranks, one-shot below 1 MB: with 2 ranks both move the same NVLink bytes (one tensor each way per
/// rank); two-shot halves each rank's HBM reads and adds, which only shows once the tensor is large.</item>
/// <item>NCCL from 64 MB: the 2-rank eager measurement of 2026-11 (one-shot 208 GB/s against NCCL's 302 at 256 MB),
/// taken before the push two-shot and the unrolled kernel; to be re-measured with CUDA-graph timing.</item>
/// </list>
/// </summary>
public static class AllReduceSelector
{
    public static IReadOnlyList<AllReduceCrossover> Crossovers { get; set; } =
    [
        new(Ranks: 2, OneShotBelowBytes: 1L << 20, NcclFromBytes: 64L << 20),
        new(Ranks: 4, OneShotBelowBytes: 512L << 10, NcclFromBytes: 64L << 20),
        new(Ranks: 8, OneShotBelowBytes: 256L << 10, NcclFromBytes: 64L << 20),
    ];

    /// <summary>NCCL's crossover of the row for <paramref name="ranks"/> ranks.</summary>
    public static long NcclFromBytesFor(int ranks) => RowFor(ranks, Crossovers).NcclFromBytes;

    public static AllReduceAlgorithm Choose(int ranks, long bytes, bool ncclAvailable) => Choose(ranks, bytes, ncclAvailable, Crossovers);

    /// <summary>The pick from a given table (measured crossovers tried before they replace <see cref="Crossovers"/>).</summary>
    public static AllReduceAlgorithm Choose(int ranks, long bytes, bool ncclAvailable, IReadOnlyList<AllReduceCrossover> table)
    {
        var row = RowFor(ranks, table);
        if (ncclAvailable && bytes >= row.NcclFromBytes)
            return AllReduceAlgorithm.Nccl;
        return bytes < row.OneShotBelowBytes ? AllReduceAlgorithm.OneShot : AllReduceAlgorithm.TwoShot;
    }

    private static AllReduceCrossover RowFor(int ranks, IReadOnlyList<AllReduceCrossover> table)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (table.Count == 0)
            throw new ArgumentException("the AllReduce crossover table is empty", nameof(table));
        foreach (var row in table)
            if (ranks <= row.Ranks)
                return row;
        return table[^1];
    }
}
