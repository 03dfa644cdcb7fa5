namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// One row of <see cref="AllReduceSelector.Crossovers"/>: for communicators of up to <paramref name="Ranks"/> ranks,
/// one-shot below <paramref name="OneShotBelowBytes"/>, two-shot from there, NCCL (when present) from
/// <paramref name="NcclFromBytes"/> and below <paramref name="NcclBelowBytes"/> (where its latency beats ours).
/// </summary>
public sealed record AllReduceCrossover(int Ranks, long OneShotBelowBytes, long NcclFromBytes, long NcclBelowBytes = 0);

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
/// <item>2 ranks (measured, 2 x H200 over NVLink, bf16, CUDA-graph timed, 2026-11-30; docs/PERFORMANCE.md): below
/// 1 MB and at 1 MB one-shot on the low-latency (LL) transport, 64 blocks: 4.6 us at 1 KB, 5.4 at 64 KB, 7.9 at 512 KB,
/// 11.5 at 1 MB, against NCCL's 8.3, 9.7, 12.3 and 15.9 (0.55-0.72x its time). Above 1 MB two-shot on the schedule
/// path (16.9 us at 2 MB, 21.9 at 4 MB against NCCL's 29.6 and 35.1; 0.57-0.91x NCCL's time up to 256 MB). Two-shot
/// over LL, fenced (8.5 us at 1 KB to 15.4 at 1 MB, third session), loses to one-shot below 1 MB. So NCCL is never picked on
/// 2 GPUs of one process. Without LL (MOE_LL=0) the schedule path's two-shot beat its one-shot at every size (10.0 against 12.6 us
/// at 1 KB): there the 1 MB one-shot row costs 2-3 us below 1 MB.</item>
/// <item>Two-shot runs on LL only up to 32 KB (the default of CommunicatorOptions.TwoShotLowLatencyMaxBytes, its
/// measured crossover against the schedule path), below every row's one-shot crossover: so every two-shot this table
/// picks runs on the schedule path, and where it picks one-shot (LL up to 1 MB) one-shot over LL beat two-shot over LL
/// at every size measured (4.4 against 8.5 us at 1 KB, 2 x H200).</item>
/// <item>NCCL from 64 MB on 4 and 8 ranks: not measured here (4- and 8-GPU machines were not lent); a guess that
/// NCCL's ring wins at large sizes there.</item>
/// </list>
/// </summary>
public static class AllReduceSelector
{
    public static IReadOnlyList<AllReduceCrossover> Crossovers { get; set; } =
    [
        new(Ranks: 2, OneShotBelowBytes: (1L << 20) + 1, NcclFromBytes: long.MaxValue),
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
        if (ncclAvailable && (bytes >= row.NcclFromBytes || bytes < row.NcclBelowBytes))
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
