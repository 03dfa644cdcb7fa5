namespace MoeRuntime.Collectives.AllReduce;

/// <summary>
/// The table <see cref="AllReduceAlgorithm.Auto"/> picks from, by rank count and tensor bytes. Starting point
/// (vLLM's custom all-reduce): one-shot always on 2 ranks (both algorithms read the same bytes there), one-shot
/// below 512 KB on 4 ranks and below 256 KB on 8, two-shot above; NCCL from <see cref="NcclFromBytes"/> up when
/// NCCL is present. The crossovers are to be replaced by the ones measured with <c>moe bench allreduce</c>.
/// </summary>
public static class AllReduceSelector
{
    /// <summary>Above this size NCCL's ring is expected to win over our kernels (to be measured).</summary>
    public static long NcclFromBytes { get; set; } = 64L << 20;

    public static AllReduceAlgorithm Choose(int ranks, long bytes, bool ncclAvailable)
    {
        if (ncclAvailable && bytes >= NcclFromBytes)
            return AllReduceAlgorithm.Nccl;
        if (ranks <= 2)
            return AllReduceAlgorithm.OneShot;
        long oneShotBelow = ranks <= 4 ? 512L << 10 : 256L << 10;
        return bytes < oneShotBelow ? AllReduceAlgorithm.OneShot : AllReduceAlgorithm.TwoShot;
    }
}
