namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// The same routing with its expert ids shifted, so that the calls of one graph replay cycle over other experts' weights
/// and read them from DRAM, not from the L2 the call before filled. Needed where a call's active weights are near the
/// L2's size (an H200 has 50 MB of L2; Qwen3-30B-A3B at T=1 reads 25 MB in down and 50 MB in gate_up), where replaying one
/// call could time part of the weights out of L2.
/// </summary>
internal static class ColdExpertSets
{
    /// <summary>Weight bytes one cycle of the sets should read: four times an H200's L2.</summary>
    public const double CycleBytes = 200e6;

    /// <summary>
    /// Offsets for each set (the first is <paramref name="offsets"/> itself), as many as reach <see cref="CycleBytes"/> of
    /// weights and at most one per expert; a single set means the call is cold already. Set s moves expert x's rows to
    /// expert (x + s * experts / sets) mod experts: the same counts, so the same floor.
    /// </summary>
    public static List<int[]> For(int[] offsets, int experts, double activeWeightBytes)
    {
        int sets = (int)Math.Clamp(Math.Ceiling(CycleBytes / Math.Max(activeWeightBytes, 1)), 1, experts);
        var result = new List<int[]> { offsets };
        for (int s = 1; s < sets; s++)
        {
            int shift = (int)((long)s * experts / sets);
            var counts = new int[experts];
            for (int x = 0; x < experts; x++)
                counts[(x + shift) % experts] = offsets[x + 1] - offsets[x];
            var shifted = new int[experts + 1];
            for (int x = 0; x < experts; x++)
                shifted[x + 1] = shifted[x] + counts[x];
            result.Add(shifted);
        }
        return result;
    }

    /// <summary>Experts with rows in at least one of the sets (how much of the cycle is distinct weights).</summary>
    public static int DistinctActive(IReadOnlyList<int[]> sets, int experts) =>
        Enumerable.Range(0, experts).Count(x => sets.Any(o => o[x + 1] > o[x]));
}
