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
    /// <summary>
    /// One-shot AllReduces of at most this many bytes run on LL. 2 x H200, bf16, graph-timed, 64 blocks (2026-11-30):
    /// one-shot(ll) 4.2 us at 1 KB to 11.4 us at 1 MB, 0.52-0.73x NCCL's time; past 1 MB the schedule path wins.
    /// </summary>
    public const long OneShotMaxBytes = 1L << 20;
    /// <summary>
    /// Two-shot AllReduces of at most this many bytes run on LL. Same run: two-shot(ll) 5.9 us at 1 KB to 11.2 us at
    /// 1 MB against the schedule path's 10.0-13.9 us; at 2 and 4 MB LL lost (18.3 and 30.8 us against 16.9 and 21.9:
    /// LL moves twice the bytes). With the fence that made two-shot correct (third session): 8.5 us at 1 KB to 15.4 us
    /// at 1 MB, NCCL 7.9 to 15.7.
    /// </summary>
    public const long TwoShotMaxBytes = 1L << 20;

    public const int UnitPayloadBytes = 8;
    public const int UnitLineBytes = 16;
    /// <summary>LL_BLOCK_THREADS, LL_UNROLL, LL_CONTROL_WORDS and LL_MAX_RANKS in ll_allreduce.cu.</summary>
    public const int BlockThreads = 512;
    public const int Unroll = 4;
    public const int ControlWords = 16;
    /// <summary>LL_EPOCH, LL_FAILED_STEP, LL_REPORT and LL_REPORT_WORDS: control words of ll_allreduce.cu.</summary>
    public const int EpochWord = 0;
    public const int FailedStepWord = 2;
    public const int ReportWord = 4;
    public const int ReportWords = 10;
    public const int MaxRanks = 8;
    /// <summary>
    /// The largest grid by default: enough blocks to keep the LL writes and polls in flight (2 x H200: 64 beat 32 at
    /// every size from 1 KB to 4 MB, one-shot and two-shot).
    /// </summary>
    public const int DefaultMaxBlocks = 64;

    /// <summary>The largest grid: <see cref="DefaultMaxBlocks"/>, or MOE_LL_MAX_BLOCKS (1-264) for tuning runs.</summary>
    public static int MaxBlocks { get; } = int.TryParse(Environment.GetEnvironmentVariable("MOE_LL_MAX_BLOCKS"), out int blocks)
        ? Math.Clamp(blocks, 1, CudaCollectiveBackend.MaxBlocks) : DefaultMaxBlocks;

    /// <summary>
    /// Whether two-shot calls take LL (one-shot ones do whenever <see cref="Enabled"/>); MOE_LL_TWOSHOT=0 turns it off
    /// (A/B timing). It was off by default until its lost-line defect was found (a thread's stores held back behind its
    /// polling; ll_allreduce.cu's header) and fenced, 2026-11-30.
    /// </summary>
    public static bool TwoShotEnabled { get; set; } = Environment.GetEnvironmentVariable("MOE_LL_TWOSHOT") != "0";

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

    /// <summary>A rank's control words when its transport is created: epoch 0, no block done, no failed step, no report.</summary>
    public static uint[] InitialControl()
    {
        var words = new uint[ControlWords];
        words[FailedStepWord] = int.MaxValue;
        return words;
    }

    /// <summary>Byte offset in a receive region of unit <paramref name="unit"/> of slot [<paramref name="sender"/>] of <paramref name="parity"/> (the kernel's slot_unit).</summary>
    public static long UnitOffsetBytes(int ranks, long slotUnits, int parity, int sender, long unit) =>
        (((long)parity * ranks + sender) * slotUnits + unit) * UnitLineBytes;

    /// <summary>
    /// What the first timed-out wait of rank <paramref name="rank"/> saw, from its control words (ll_report), with the
    /// two flags that unit holds now (<paramref name="flagsNow"/>, read after the kernels ended); null when it left no report.
    /// Flags 0: nothing was ever written there; an older epoch of the same parity: the sender did not write this call's
    /// line there; the expected flag now: it arrived after the deadline.
    /// </summary>
    public static string? DescribeReport(int rank, ReadOnlySpan<uint> control, (uint Lo, uint Hi)? flagsNow)
    {
        if (control.Length < ReportWord + ReportWords || control[ReportWord] != 1)
            return null;
        var r = control.Slice(ReportWord, ReportWords);
        string now = flagsNow is { } f ? $", and {f.Lo}/{f.Hi} after the kernels ended" : "";
        return $"rank {rank} block {r[2]} thread {r[3]} timed out at step {r[1]} waiting for unit {r[5]} of slot [{r[4]}] (parity {r[6]}) "
            + $"to carry flag {r[7]}; its two lines held flags {r[8]}/{r[9]} at the deadline{now}";
    }

    /// <summary>
    /// Units [first, end) of a receiver's slot that sender <paramref name="sender"/> fills in one call: one-shot, the
    /// whole tensor at 0; two-shot, step 0 (the receiver's chunk from the sender) at 0 and step 1 (the sender's
    /// reduced chunk) from SlotUnits / 2. The kernel's chunk_units, as ranges of a slot.
    /// </summary>
    public static IEnumerable<(int Step, long First, long End)> FilledRanges(bool twoShot, int ranks, int receiver, int sender, long count, int elementSize, long slotUnits)
    {
        if (!twoShot)
        {
            yield return (0, 0, Units(count, elementSize));
            yield break;
        }
        long ChunkUnits(int c)
        {
            int perUnit = UnitPayloadBytes / elementSize;
            long start = Chunks.Start(count, ranks, c, Chunks.AllReduceGrain);
            long end = Chunks.Start(count, ranks, c + 1, Chunks.AllReduceGrain);
            return (end + perUnit - 1) / perUnit - start / perUnit;
        }
        yield return (0, 0, ChunkUnits(receiver));
        yield return (1, slotUnits / 2, slotUnits / 2 + ChunkUnits(sender));
    }

    /// <summary>
    /// What a range of lines held after a timed-out call: how many carried the call's flag, how many were never
    /// written (flag 0) and how many held another epoch, with the first unit of each kind that was not fresh.
    /// <paramref name="flags"/> holds each unit's two flags (lo line, hi line) in unit order.
    /// </summary>
    public static string DescribeRange(int rank, int sender, int step, long first, ReadOnlySpan<uint> flags, uint expected)
    {
        long fresh = 0, zero = 0, other = 0, firstZero = -1, firstOther = -1;
        for (int i = 0; i + 1 < flags.Length; i += 2)
        {
            long unit = first + i / 2;
            if (flags[i] == expected && flags[i + 1] == expected)
                fresh++;
            else if (flags[i] == 0 && flags[i + 1] == 0)
            {
                zero++;
                if (firstZero < 0) firstZero = unit;
            }
            else
            {
                other++;
                if (firstOther < 0) firstOther = unit;
            }
        }
        string text = $"rank {rank} slot [{sender}] step {step}: {fresh} of {flags.Length / 2} units fresh";
        if (zero > 0) text += $", {zero} never written (first {firstZero})";
        if (other > 0) text += $", {other} holding other flags (first {firstOther})";
        return text;
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
