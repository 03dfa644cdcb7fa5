using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// Host arithmetic of the low-latency (LL) AllReduce transport (ll_allreduce.cu): which calls take it, how big each
/// rank's receive region is, and the grid. Pure, so it is tested without a GPU.
/// <para>A unit is 8 payload bytes (2 f32 or 4 bf16/f16 elements) carried as two 8-byte {payload, flag} lines, so LL
/// moves twice the bytes of the tensor: it pays below the thresholds, where latency decides.</para>
/// <para>Receive region per rank: [parity 2][sender ranks][SlotUnits] x 16 bytes. One-shot uses a slot's first
/// units-of-the-tensor; two-shot its first half for step 0 (this rank's chunk from each peer) and its second half
/// (from SlotUnits / 2) for step 1 (the peer's reduced chunk).</para>
/// </summary>
internal static class LowLatencyLayout
{
    /// <summary>One-shot AllReduces of at most this many bytes run on LL (2 x H200: to be re-tuned from the bench).</summary>
    public const long OneShotMaxBytes = 1L << 20;
    /// <summary>Two-shot AllReduces of at most this many bytes run on LL.</summary>
    public const long TwoShotMaxBytes = 4L << 20;

    public const int UnitPayloadBytes = 8;
    public const int UnitLineBytes = 16;
    /// <summary>LL_BLOCK_THREADS, LL_UNROLL, LL_CONTROL_WORDS and LL_MAX_RANKS in ll_allreduce.cu.</summary>
    public const int BlockThreads = 512;
    public const int Unroll = 4;
    public const int ControlWords = 4;
    public const int MaxRanks = 8;
    /// <summary>The largest grid by default: enough blocks to keep the LL writes and polls in flight.</summary>
    public const int DefaultMaxBlocks = 32;

    /// <summary>The largest grid: <see cref="DefaultMaxBlocks"/>, or MOE_LL_MAX_BLOCKS (1-264) for tuning runs.</summary>
    public static int MaxBlocks { get; } = int.TryParse(Environment.GetEnvironmentVariable("MOE_LL_MAX_BLOCKS"), out int blocks)
        ? Math.Clamp(blocks, 1, CudaCollectiveBackend.MaxBlocks) : DefaultMaxBlocks;

    /// <summary>Whether CUDA calls take LL at all: MOE_LL=0 turns it off (the schedule path, for A/B timing).</summary>
    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("MOE_LL") != "0";
    /// <summary>Units per thread the grid aims at before it adds blocks (small: latency, not bandwidth, decides here).</summary>
    private const int UnitsPerThread = 2;

    /// <summary>Units of a tensor of <paramref name="count"/> elements of <paramref name="elementSize"/> bytes.</summary>
    public static long Units(long count, int elementSize)
    {
        int perUnit = UnitPayloadBytes / elementSize;
        return (count + perUnit - 1) / perUnit;
    }

    /// <summary>Units of the longest two-shot chunk (the kernel's chunk_units: [start / E, ceil(end / E))).</summary>
    public static long MaxChunkUnits(long count, int ranks, int elementSize)
    {
        int perUnit = UnitPayloadBytes / elementSize;
        long longest = 0;
        for (int c = 0; c < ranks; c++)
        {
            long start = Chunks.Start(count, ranks, c, Chunks.AllReduceGrain);
            long end = Chunks.Start(count, ranks, c + 1, Chunks.AllReduceGrain);
            longest = Math.Max(longest, (end + perUnit - 1) / perUnit - start / perUnit);
        }
        return longest;
    }

    /// <summary>
    /// Units of one sender's slot: a whole one-shot tensor, or two two-shot chunks (a chunk is shorter than
    /// bytes / N + one grain of f32, 32 bytes, so bytes / 8N + 5 units bound it), for tensors up to the thresholds and
    /// to <paramref name="capacityBytes"/> (the largest tensor the communicator takes). Even, so a half is whole units.
    /// </summary>
    public static long SlotUnits(int ranks, long capacityBytes)
    {
        long oneShot = (Math.Min(OneShotMaxBytes, capacityBytes) + UnitPayloadBytes - 1) / UnitPayloadBytes;
        long twoShotChunk = Math.Min(TwoShotMaxBytes, capacityBytes) / ((long)UnitPayloadBytes * ranks) + 6;
        long units = Math.Max(oneShot, 2 * twoShotChunk);
        return (units + 1) / 2 * 2;
    }

    /// <summary>Bytes of one rank's receive region: two parities x one slot per sender.</summary>
    public static long ReceiveBytes(int ranks, long capacityBytes) => 2L * ranks * SlotUnits(ranks, capacityBytes) * UnitLineBytes;

    /// <summary>
    /// Whether an AllReduce by <paramref name="algorithm"/> of <paramref name="count"/> elements runs on LL: one-shot and
    /// two-shot below their thresholds, when the tensor (or the longest chunk) fits the slots. Empty calls too: LL
    /// launches nothing for them (the schedule path would run its barriers).
    /// </summary>
    public static bool Takes(AllReduceAlgorithm algorithm, int ranks, long count, int elementSize, long slotUnits)
    {
        if (count < 0 || ranks > MaxRanks || elementSize is not (2 or 4))
            return false;
        long bytes = count * elementSize;
        return algorithm switch
        {
            AllReduceAlgorithm.OneShot => bytes <= OneShotMaxBytes && Units(count, elementSize) <= slotUnits,
            AllReduceAlgorithm.TwoShot => bytes <= TwoShotMaxBytes && MaxChunkUnits(count, ranks, elementSize) <= slotUnits / 2,
            _ => false,
        };
    }

    /// <summary>
    /// Blocks for a call: one thread per <see cref="UnitsPerThread"/> units of the longest range a thread walks (the
    /// tensor for one-shot, the longest chunk for two-shot), 1 to <see cref="MaxBlocks"/>, at most <paramref name="resident"/>
    /// (every block must be resident: block b waits for block b of every peer). The same on every rank.
    /// </summary>
    public static int Grid(bool twoShot, int ranks, long count, int elementSize, int resident) =>
        Grid(twoShot, ranks, count, elementSize, resident, MaxBlocks);

    public static int Grid(bool twoShot, int ranks, long count, int elementSize, int resident, int maxBlocks)
    {
        long work = twoShot ? MaxChunkUnits(count, ranks, elementSize) : Units(count, elementSize);
        long blocks = (work + (long)BlockThreads * UnitsPerThread - 1) / ((long)BlockThreads * UnitsPerThread);
        return (int)Math.Clamp(blocks, 1, Math.Max(1, Math.Min(maxBlocks, resident)));
    }
}
