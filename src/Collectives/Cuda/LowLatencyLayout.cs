using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>The fence of a two-shot thread between its stores to peers and its polling (MOE_LL_FENCE; ll_allreduce.cu's LL_FENCE).</summary>
internal enum LowLatencyFence
{
    /// <summary>LL_FENCE 0: every thread issues fence.sc.sys (__threadfence_system), the default since it fixed the lost lines.</summary>
    System = 0,
    /// <summary>LL_FENCE 1: every thread issues fence.acq_rel.sys: orders its stores before its later loads, without the SC total order.</summary>
    AcqRel = 1,
    /// <summary>LL_FENCE 2: the warp's lanes meet at __syncwarp (which orders their memory accesses), then one lane issues fence.sc.sys.</summary>
    Warp = 2,
    /// <summary>LL_FENCE 3: no fence (the build that lost lines on 2 x H200), for A/B.</summary>
    None = 3,
    /// <summary>LL_FENCE 4: no fence at the turn; a two-shot wait that polled in vain for a while (LL_LAZY_CYCLES) fences once.</summary>
    Lazy = 4,
    /// <summary>LL_FENCE 5: no fence; two-shot waits sleep (__nanosleep) between polls so the stores get out.</summary>
    Sleep = 5,
    /// <summary>LL_FENCE 6: system's fence after the step-0 stores only; step-1 waits fence lazily (as <see cref="Lazy"/>).</summary>
    Step0 = 6,
}

/// <summary>Where the LL kernel keeps its epoch and how a call publishes the next one (MOE_LL_TAIL; ll_allreduce.cu's LL_TAIL).</summary>
internal enum LowLatencyTail
{
    /// <summary>LL_TAIL 0: one epoch word; the last block to finish (fence, atomic counter) stores the new epoch. The kernel before 2026-11-30's fifth session.</summary>
    Counter = 0,
    /// <summary>LL_TAIL 1: the counter, except that a one-block grid stores the epoch straight away.</summary>
    Single = 1,
    /// <summary>LL_TAIL 2 (default): a word per block; block b reads word b and stores the new epoch to the words b mod grid: no fence, no atomic.</summary>
    Blocks = 2,
}

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
    /// Two-shot AllReduces of at most this many bytes run on LL by default (a communicator's
    /// <see cref="CommunicatorOptions.TwoShotLowLatencyMaxBytes"/>, else MOE_LL_TWOSHOT_MAX_BYTES, else this). 2 x H200,
    /// bf16, graph-timed, one run (third session, 2026-11-30): two-shot over LL, fenced, 8.44 us at 1 KB, 10.45 at 32 KB,
    /// 10.74 at 64 KB, 12.86 at 512 KB, 15.60 at 1 MB; the schedule path 9.87, 10.44, 10.41, 12.39, 13.75. LL wins
    /// below 32 KB and loses from 64 KB (the fence costs about 2.5 us), so the crossover was 32 KB. With the lazy fence
    /// and one unit a thread (fifth session, same setup, NCCL in the same run: tools/gpu/twoshot6-check.sh) LL two-shot is
    /// 6.53 us at 1 KB, 7.66 at 32 KB, 12.20 at 1 MB against the schedule path's 13.87 at 1 MB: LL up to 1 MB again.
    /// </summary>
    public const long DefaultTwoShotMaxBytes = 1L << 20;
    /// <summary>The largest threshold MOE_LL_TWOSHOT_MAX_BYTES takes (the receive regions grow with it past 1 MB).</summary>
    public const long TwoShotMaxBytesLimit = 16L << 20;

    /// <summary>
    /// MOE_LL_TWOSHOT_MAX_BYTES, for A/B sweeps: the largest two-shot AllReduce that runs on LL, in bytes with an
    /// optional K or M (1024-based) suffix, 0 to <see cref="TwoShotMaxBytesLimit"/> (0: never); unset:
    /// <see cref="DefaultTwoShotMaxBytes"/>.
    /// </summary>
    public static long TwoShotMaxBytesFromEnvironment() => ParseTwoShotMaxBytes(Environment.GetEnvironmentVariable("MOE_LL_TWOSHOT_MAX_BYTES"));

    internal static long ParseTwoShotMaxBytes(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return DefaultTwoShotMaxBytes;
        string text = value.Trim();
        long scale = char.ToUpperInvariant(text[^1]) switch { 'K' => 1L << 10, 'M' => 1L << 20, _ => 1 };
        if (scale != 1)
            text = text[..^1];
        if (long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long number)
            && number <= TwoShotMaxBytesLimit / scale)
            return number * scale;
        throw new ArgumentException($"MOE_LL_TWOSHOT_MAX_BYTES='{value}': expected bytes from 0 to {TwoShotMaxBytesLimit >> 20}M, "
            + "with an optional K or M suffix (e.g. 32K, 1M; 0: two-shot never runs on LL)");
    }

    /// <summary>
    /// MOE_LL_FENCE's text as the fence a two-shot thread issues where it turns from storing to peers to polling
    /// (ll_allreduce.cu's LL_FENCE): system (default), acqrel, warp, none, lazy, sleep or step0, for A/B runs
    /// (<see cref="LowLatencyKernelOptions.FromEnvironment"/> reads it when a communicator is created).
    /// </summary>
    internal static LowLatencyFence ParseFence(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" => LowLatencyKernelOptions.DefaultFence,
        "system" => LowLatencyFence.System,
        "acqrel" => LowLatencyFence.AcqRel,
        "warp" => LowLatencyFence.Warp,
        "none" => LowLatencyFence.None,
        "lazy" => LowLatencyFence.Lazy,
        "sleep" => LowLatencyFence.Sleep,
        "step0" => LowLatencyFence.Step0,
        _ => throw new ArgumentException($"MOE_LL_FENCE='{value}': expected lazy (the default: a fence only in a two-shot wait that polled in vain for MOE_LL_LAZY_CYCLES), system (fence.sc.sys per thread), "
            + "acqrel (fence.acq_rel.sys per thread), warp (__syncwarp, then one lane's fence.sc.sys), none (no fence: lost lines, for A/B), "
            + "sleep (no fence, __nanosleep between polls) "
            + "or step0 (system's fence after the step-0 stores only, lazy after the pushes)"),
    };

    public const int UnitPayloadBytes = 8;
    public const int UnitLineBytes = 16;
    /// <summary>LL128_UNITS: payload units of a 128-byte line (the 16th u64 is its flag); a line is LinePieces lanes' 16 bytes.</summary>
    public const int Line128Units = 15;
    public const int Line128Bytes = 128;
    public const int LinePieces = 8;
    /// <summary>LL_BLOCK_THREADS, LL_UNROLL, LL_CONTROL_WORDS and LL_MAX_RANKS in ll_allreduce.cu.</summary>
    public const int BlockThreads = 512;
    public const int Unroll = 4;
    public const int ControlWords = 312;
    /// <summary>LL_BLOCK_EPOCHS and LL_MAX_BLOCKS: the per-block epoch words of LL_TAIL 2, one per block of the largest grid.</summary>
    public const int BlockEpochsWord = 16;
    public const int EpochWordsForBlocks = 264;
    /// <summary>LL_TRACE_WORD and LL_TRACE_STAMPS: the trace of an LL_TRACE build, u64 stamps after the epoch words (<see cref="LowLatencyTrace"/>).</summary>
    public const int TraceWord = 280;
    public const int TraceStamps = 16;
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
    /// <summary>Units of a tensor of <paramref name="count"/> elements of <paramref name="elementSize"/> bytes.</summary>
    public static long Units(long count, int elementSize)
    {
        int perUnit = UnitPayloadBytes / elementSize;
        return (count + perUnit - 1) / perUnit;
    }

    /// <summary>Units of two-shot chunk <paramref name="chunk"/> (the kernel's chunk_units: [start / E, ceil(end / E))).</summary>
    public static long ChunkUnits(long count, int ranks, int chunk, int elementSize)
    {
        int perUnit = UnitPayloadBytes / elementSize;
        long start = Chunks.Start(count, ranks, chunk, Chunks.AllReduceGrain);
        long end = Chunks.Start(count, ranks, chunk + 1, Chunks.AllReduceGrain);
        return (end + perUnit - 1) / perUnit - start / perUnit;
    }

    /// <summary>Units of the longest two-shot chunk (a loop, not LINQ: every LL call's grid asks).</summary>
    public static long MaxChunkUnits(long count, int ranks, int elementSize)
    {
        long longest = 0;
        for (int c = 0; c < ranks; c++)
            longest = Math.Max(longest, ChunkUnits(count, ranks, c, elementSize));
        return longest;
    }

    /// <summary>
    /// Units of one sender's slot: a whole one-shot tensor, or two two-shot chunks (a chunk is shorter than
    /// bytes / N + one grain of f32, 32 bytes, so bytes / 8N + 5 units bound it), for tensors up to the thresholds and
    /// to <paramref name="capacityBytes"/> (the largest tensor the communicator takes). Even, so a half is whole units.
    /// One-shot's 1 MB sets the size for every two-shot threshold up to about 1 MB (2 chunks of 1 MB / N fit in 1 MB),
    /// so the 1 MB default grows the regions by a few units only; a larger threshold (A/B runs) grows them more.
    /// </summary>
    public static long SlotUnits(int ranks, long capacityBytes, long twoShotMaxBytes = DefaultTwoShotMaxBytes)
    {
        long oneShot = (Math.Min(OneShotMaxBytes, capacityBytes) + UnitPayloadBytes - 1) / UnitPayloadBytes;
        long twoShotChunk = Math.Min(twoShotMaxBytes, capacityBytes) / ((long)UnitPayloadBytes * ranks) + 6;
        long units = Math.Max(oneShot, 2 * twoShotChunk);
        return (units + 1) / 2 * 2;
    }

    /// <summary>
    /// Lines of one sender's slot in the 128-byte-line region, which has the bytes of the 8-byte-line one
    /// (<see cref="ReceiveBytes"/>): even, so a two-shot half is whole lines.
    /// </summary>
    public static long SlotLines128(long slotUnits) => slotUnits * UnitLineBytes / Line128Bytes / 2 * 2;

    /// <summary>Lines of the longest range a 128-byte-line call moves: the tensor (one-shot) or the longest chunk (two-shot).</summary>
    public static long MaxLines128(bool twoShot, int ranks, long count, int elementSize)
    {
        long units = twoShot ? MaxChunkUnits(count, ranks, elementSize) : Units(count, elementSize);
        return (units + Line128Units - 1) / Line128Units;
    }

    /// <summary>Whether a call fits the 128-byte-line slots of <paramref name="slotLines"/> (two-shot: a chunk in each half).</summary>
    public static bool FitsLines128(bool twoShot, int ranks, long count, int elementSize, long slotLines) =>
        MaxLines128(twoShot, ranks, count, elementSize) <= (twoShot ? slotLines / 2 : slotLines);

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
        yield return (0, 0, ChunkUnits(count, ranks, receiver, elementSize));
        yield return (1, slotUnits / 2, slotUnits / 2 + ChunkUnits(count, ranks, sender, elementSize));
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
    public static long ReceiveBytes(int ranks, long capacityBytes, long twoShotMaxBytes = DefaultTwoShotMaxBytes) =>
        2L * ranks * SlotUnits(ranks, capacityBytes, twoShotMaxBytes) * UnitLineBytes;

    /// <summary>
    /// Whether an AllReduce by <paramref name="algorithm"/> of <paramref name="count"/> elements runs on LL: one-shot
    /// up to <see cref="OneShotMaxBytes"/>, two-shot up to <paramref name="twoShotMaxBytes"/> (the communicator's
    /// threshold), when the tensor (or the longest chunk) fits the slots. Empty calls too: LL launches nothing for them
    /// (the schedule path would run its barriers).
    /// </summary>
    public static bool Takes(AllReduceAlgorithm algorithm, int ranks, long count, int elementSize, long slotUnits,
                             long twoShotMaxBytes = DefaultTwoShotMaxBytes)
    {
        if (count < 0 || ranks > MaxRanks || elementSize is not (2 or 4))
            return false;
        long bytes = count * elementSize;
        return algorithm switch
        {
            AllReduceAlgorithm.OneShot => bytes <= OneShotMaxBytes && Units(count, elementSize) <= slotUnits,
            AllReduceAlgorithm.TwoShot => bytes <= twoShotMaxBytes && MaxChunkUnits(count, ranks, elementSize) <= slotUnits / 2,
            _ => false,
        };
    }

    /// <summary>
    /// The launch shape of a call: blocks of <paramref name="smallBlockThreads"/> threads (a multiple of 32, at most
    /// <see cref="BlockThreads"/>), one thread per <paramref name="unitsPerThread"/> units (LowLatencyKernelOptions: MOE_LL_UNITS_PER_THREAD
    /// for two-shot, MOE_LL_ONESHOT_UNITS_PER_THREAD for one-shot, 1 each by default) of the longest range a thread walks (the tensor for one-shot, the longest
    /// chunk for two-shot), the units spread evenly over the blocks and each block trimmed to the warps that give its
    /// share one unit a thread (the units a thread decide the blocks, not the threads of a block: a thread's second unit
    /// waits after its first, one-shot at 1 KB 3.1 us with a thread a unit against 3.6 with two);
    /// where that would pass the cap (<paramref name="maxBlocks"/>, at most <paramref name="resident"/>: every block must
    /// be resident, block b waits for block b of every peer), blocks of <see cref="BlockThreads"/>, capped. The same on every rank.
    /// </summary>
    public static LowLatencyGrid Grid(bool twoShot, int ranks, long count, int elementSize, int resident, int maxBlocks, int unitsPerThread,
                                      int smallBlockThreads) =>
        GridFor(twoShot ? MaxChunkUnits(count, ranks, elementSize) : Units(count, elementSize), resident, maxBlocks, unitsPerThread, smallBlockThreads);

    /// <summary>
    /// The launch shape of a 128-byte-line call: a thread per 16 bytes of the longest range's lines (8 a line), spread as
    /// <see cref="Grid"/> spreads units.
    /// </summary>
    public static LowLatencyGrid Line128Grid(bool twoShot, int ranks, long count, int elementSize, int resident, int maxBlocks, int smallBlockThreads) =>
        GridFor(LinePieces * MaxLines128(twoShot, ranks, count, elementSize), resident, maxBlocks, 1, smallBlockThreads);

    private static LowLatencyGrid GridFor(long work, int resident, int maxBlocks, int unitsPerThread, int smallBlockThreads)
    {
        long threadsNeeded = Math.Max(1, (work + unitsPerThread - 1) / unitsPerThread);
        int cap = Math.Max(1, Math.Min(maxBlocks, resident));
        long blocks = (threadsNeeded + smallBlockThreads - 1) / smallBlockThreads;
        if (blocks <= cap)
        {
            long share = (work + blocks - 1) / blocks;
            return new((int)blocks, (int)Math.Min(smallBlockThreads, (share + 31) / 32 * 32));
        }
        blocks = (threadsNeeded + BlockThreads - 1) / BlockThreads;
        return new((int)Math.Clamp(blocks, 1, cap), BlockThreads);
    }
}

/// <summary>A call's launch shape: blocks per rank, threads a block.</summary>
internal readonly record struct LowLatencyGrid(int Blocks, int Threads);
