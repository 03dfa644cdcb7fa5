using System.Diagnostics;
using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Collectives.Schedule;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The low-latency (LL) AllReduce transport (ll_allreduce.cu): its host arithmetic without a GPU, and on CUDA groups
/// every dtype and awkward size through it (checked to have run on LL), misaligned operands, many calls in a row
/// (parity and epoch reuse), CUDA-graph replays, bit-identity across ranks and the timeout. Their communicators raise
/// the two-shot threshold to 1 MB (<see cref="CommunicatorOptions.TwoShotLowLatencyMaxBytes"/>), so large multi-block
/// two-shot calls stay on LL; the default threshold's routing is checked on its own, by <see cref="LowLatencyLayout.Takes"/>.
/// </summary>
public class LowLatencyAllReduceTests
{
    private static readonly AllReduceAlgorithm[] LowLatencyAlgorithms = [AllReduceAlgorithm.OneShot, AllReduceAlgorithm.TwoShot];

    // ---- host arithmetic (no GPU) ----

    private const long Default = LowLatencyLayout.DefaultTwoShotMaxBytes;
    /// <summary>The two-shot threshold of the LL tests' communicators: every size they use runs on LL (multi-block two-shot included; the default since the lazy fence).</summary>
    private const long LargeTwoShot = 1L << 20;

    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot, 2, 4, 1L << 18, Default, true)]          // 1 MB of f32: the one-shot limit
    [InlineData(AllReduceAlgorithm.OneShot, 2, 4, (1L << 18) + 1, Default, false)]
    [InlineData(AllReduceAlgorithm.OneShot, 8, 2, 1L << 19, 0, true)]                // the two-shot threshold leaves one-shot alone
    [InlineData(AllReduceAlgorithm.TwoShot, 4, 4, 1L << 18, Default, true)]           // 1 MB of f32: the default two-shot limit
    [InlineData(AllReduceAlgorithm.TwoShot, 4, 4, (1L << 18) + 1, Default, false)]   // the schedule path
    [InlineData(AllReduceAlgorithm.TwoShot, 2, 2, 1L << 14, 32L << 10, true)]        // the old 32 KB threshold, as an option
    [InlineData(AllReduceAlgorithm.TwoShot, 2, 2, (1L << 14) + 1, 32L << 10, false)]
    [InlineData(AllReduceAlgorithm.TwoShot, 2, 2, 1L << 19, LargeTwoShot, true)]     // 1 MB of bf16 under a raised threshold
    [InlineData(AllReduceAlgorithm.TwoShot, 2, 2, (1L << 19) + 1, LargeTwoShot, false)]
    [InlineData(AllReduceAlgorithm.TwoShot, 8, 4, 1L << 18, LargeTwoShot, true)]
    [InlineData(AllReduceAlgorithm.TwoShot, 8, 4, 1L << 20, LargeTwoShot, false)]   // 4 MB: the schedule path (LL lost at 2-4 MB)
    [InlineData(AllReduceAlgorithm.TwoShot, 2, 2, 1, 0, false)]                      // threshold 0: two-shot never on LL
    [InlineData(AllReduceAlgorithm.OneShot, 4, 2, 1, Default, true)]
    [InlineData(AllReduceAlgorithm.TwoShot, 3, 2, 7, Default, true)]
    [InlineData(AllReduceAlgorithm.OneShot, 2, 2, 0, Default, true)]                 // empty calls: LL launches nothing
    [InlineData(AllReduceAlgorithm.TwoShot, 4, 4, 0, Default, true)]
    [InlineData(AllReduceAlgorithm.Ring, 2, 2, 1024, Default, false)]
    [InlineData(AllReduceAlgorithm.Nccl, 2, 2, 1024, Default, false)]
    public void TakesOneShotAndTwoShotBelowTheirThresholds(AllReduceAlgorithm algorithm, int ranks, int elementSize, long count, long twoShotMaxBytes, bool expected) =>
        Assert.Equal(expected, LowLatencyLayout.Takes(algorithm, ranks, count, elementSize, LowLatencyLayout.SlotUnits(ranks, 64L << 20, twoShotMaxBytes), twoShotMaxBytes));

    /// <summary>Every call below the thresholds fits the slots sized at creation, for every rank count, dtype and two-shot threshold.</summary>
    [Theory]
    [InlineData(32L << 10)]
    [InlineData(Default)]
    [InlineData(4L << 20)]
    public void TheSlotsHoldEveryTensorBelowTheThresholds(long twoShotMaxBytes)
    {
        var random = TestData.NewRandom(out int seed);
        for (int ranks = 1; ranks <= LowLatencyLayout.MaxRanks; ranks++)
        {
            long slot = LowLatencyLayout.SlotUnits(ranks, 64L << 20, twoShotMaxBytes);
            Assert.Equal(0, slot % 2);
            foreach (int elementSize in new[] { 2, 4 })
            {
                var counts = new List<long> { 1, 7, 8, 9, ranks - 1, ranks * 8L + 3 };
                foreach (long limit in new[] { LowLatencyLayout.OneShotMaxBytes, twoShotMaxBytes })
                    for (long k = 0; k < 40; k++)
                        counts.Add(limit / elementSize - k);
                for (int i = 0; i < 200; i++)
                    counts.Add(1 + random.NextInt64(Math.Max(LowLatencyLayout.OneShotMaxBytes, twoShotMaxBytes) / elementSize));
                foreach (long count in counts.Where(c => c > 0))
                {
                    long bytes = count * elementSize;
                    if (bytes <= LowLatencyLayout.OneShotMaxBytes)
                        Assert.True(LowLatencyLayout.Takes(AllReduceAlgorithm.OneShot, ranks, count, elementSize, slot, twoShotMaxBytes), $"one-shot x{count}, {ranks} ranks, {elementSize} B (seed {seed})");
                    Assert.Equal(bytes <= twoShotMaxBytes, LowLatencyLayout.Takes(AllReduceAlgorithm.TwoShot, ranks, count, elementSize, slot, twoShotMaxBytes));
                }
            }
        }
    }

    /// <summary>
    /// A small communicator's capacity shrinks the region, and then larger calls go to the schedule. One-shot's 1 MB
    /// sizes the region for two-shot thresholds up to 1 MB (the default's regions are no smaller); a larger one grows it.
    /// </summary>
    [Fact]
    public void TheRegionFollowsTheCapacity()
    {
        long small = LowLatencyLayout.SlotUnits(2, 4096);
        Assert.True(small * LowLatencyLayout.UnitPayloadBytes < 16384);
        Assert.True(LowLatencyLayout.Takes(AllReduceAlgorithm.TwoShot, 2, 2048, 2, small));
        Assert.False(LowLatencyLayout.Takes(AllReduceAlgorithm.OneShot, 2, 1L << 16, 2, small));
        Assert.Equal(2L * 4 * LowLatencyLayout.SlotUnits(4, 1L << 30) * 16, LowLatencyLayout.ReceiveBytes(4, 1L << 30));
        // The defaults (64 MB capacity): two parities of N slots of 1 MB / 8 units (one-shot's tensor), 16 bytes each, from
        // 3 ranks; on 2 the default two-shot threshold (1 MB: two chunks of 512 KB and a grain) adds a few units a slot.
        for (int ranks = 3; ranks <= LowLatencyLayout.MaxRanks; ranks++)
            Assert.Equal(2L * ranks * (LowLatencyLayout.OneShotMaxBytes / 8) * 16, LowLatencyLayout.ReceiveBytes(ranks, 64L << 20));
        Assert.InRange(LowLatencyLayout.ReceiveBytes(2, 64L << 20), 8L << 20, (8L << 20) + 4096);
        Assert.InRange(LowLatencyLayout.ReceiveBytes(2, 64L << 20, LargeTwoShot), 8L << 20, (8L << 20) + 4096);
        Assert.InRange(LowLatencyLayout.ReceiveBytes(2, 64L << 20, 4L << 20), 32L << 20, (32L << 20) + 4096);
    }

    /// <summary>MOE_LL_TWOSHOT_MAX_BYTES: bytes with an optional K or M, 0 to 16 MB; unset: 1 MB; anything else is refused by name.</summary>
    [Theory]
    [InlineData(null, Default)]
    [InlineData("", Default)]
    [InlineData("0", 0)]
    [InlineData("65536", 65536)]
    [InlineData("32K", 32768)]
    [InlineData("64k", 65536)]
    [InlineData(" 1M ", 1L << 20)]
    [InlineData("16M", 16L << 20)]
    public void TheTwoShotThresholdParses(string? value, long expected) =>
        Assert.Equal(expected, LowLatencyLayout.ParseTwoShotMaxBytes(value));

    [Theory]
    [InlineData("-1")]
    [InlineData("+5")]
    [InlineData("1.5M")]
    [InlineData("1G")]
    [InlineData("17M")]
    [InlineData("16777217")]
    [InlineData("K")]
    [InlineData("lots")]
    public void ABadTwoShotThresholdIsRefusedByName(string value)
    {
        var error = Assert.Throws<ArgumentException>(() => LowLatencyLayout.ParseTwoShotMaxBytes(value));
        Assert.Contains($"MOE_LL_TWOSHOT_MAX_BYTES='{value}'", error.Message);
    }

    /// <summary>MOE_LL_FENCE: lazy (the default), system, acqrel, warp, none, sleep or step0, any case; the kernel's LL_FENCE is the enum's value.</summary>
    [Theory]
    [InlineData(null, 4)]
    [InlineData("system", 0)]
    [InlineData("AcqRel", 1)]
    [InlineData("warp", 2)]
    [InlineData("none", 3)]
    [InlineData("Lazy", 4)]
    [InlineData("sleep", 5)]
    [InlineData("step0", 6)]
    public void TheFenceParses(string? value, int llFence) => Assert.Equal(llFence, (int)LowLatencyLayout.ParseFence(value));

    [Fact]
    public void ABadFenceIsRefusedByName() =>
        Assert.Contains("MOE_LL_FENCE='sys'", Assert.Throws<ArgumentException>(() => LowLatencyLayout.ParseFence("sys")).Message);

    /// <summary>A communicator's threshold out of range is refused when it is created.</summary>
    [Theory]
    [InlineData(-1L)]
    [InlineData((16L << 20) + 1)]
    public void ABadTwoShotOptionIsRefused(long twoShotMaxBytes)
    {
        var group = TestDevices.GetGroup("cpu", 2);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Communicator.Create(group, new CommunicatorOptions { TwoShotLowLatencyMaxBytes = twoShotMaxBytes }));
        Assert.Contains("TwoShotLowLatencyMaxBytes", error.Message);
    }

    /// <summary>
    /// Each LL_FENCE builds (NVRTC, no GPU) and puts its fence where the two-shot thread turns to polling: the PTX of
    /// every variant but none carries more system-scope fences than none's (whose only one guards the error record).
    /// </summary>
    [Theory]
    [InlineData("system", "membar.sys")]
    [InlineData("acqrel", "fence.acq_rel.sys")]
    [InlineData("warp", "bar.warp.sync")]
    [InlineData("lazy", "%clock64")]
    public void EveryFenceBuilds(string name, string instruction)
    {
        var fence = LowLatencyLayout.ParseFence(name);
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(Communicator).Assembly, "ll_allreduce.cu");
        string Ptx(LowLatencyFence f) => NvrtcCompiler.CompileToPtx(source, NvrtcCompiler.DefaultOptions("sm_90", [$"-DLL_FENCE={(int)f}"]));
        static int SystemFences(string ptx) => Regex.Matches(ptx, @"membar\.sys|fence\.(sc|acq_rel)\.sys").Count;
        string ptx = Ptx(fence), none = Ptx(LowLatencyFence.None);
        Assert.Contains(instruction, ptx);
        Assert.True(SystemFences(ptx) > SystemFences(none), $"{fence}: {SystemFences(ptx)} system-scope fences, none: {SystemFences(none)}");
        Assert.DoesNotContain("fence.acq_rel.sys", none);
        Assert.DoesNotContain("bar.warp.sync", none);
    }

    /// <summary>The two-shot chunks (the schedule's, grain 8) tile the tensor's units with no gap and no overlap.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void ChunkUnitsTileTheTensor(int ranks)
    {
        foreach (int elementSize in new[] { 2, 4 })
            foreach (long count in new long[] { 1, 7, 8, 15, 16, 17, 63, 64, 65, 1000, 4099, 1_000_003 })
            {
                int perUnit = LowLatencyLayout.UnitPayloadBytes / elementSize;
                long next = 0, longest = 0;
                for (int c = 0; c < ranks; c++)
                {
                    long start = Chunks.Start(count, ranks, c, Chunks.AllReduceGrain);
                    long end = Chunks.Start(count, ranks, c + 1, Chunks.AllReduceGrain);
                    Assert.Equal(0, start % perUnit);   // a unit never straddles two chunks
                    if (end == start)
                        continue;
                    Assert.Equal(next, start / perUnit);
                    next = (end + perUnit - 1) / perUnit;
                    longest = Math.Max(longest, next - start / perUnit);
                }
                Assert.Equal(LowLatencyLayout.Units(count, elementSize), next);
                Assert.Equal(longest, LowLatencyLayout.MaxChunkUnits(count, ranks, elementSize));
            }
    }

    [Theory]
    [InlineData(false, 2, 2, 1, 264, 1, 1, 32)]              // one unit: one warp
    [InlineData(false, 2, 2, 512, 264, 1, 1, 128)]           // 1 KB: 128 units, a thread each
    [InlineData(false, 2, 2, 4096, 264, 1, 4, 256)]          // 1024 units: four blocks of 256
    [InlineData(false, 2, 2, 4096, 264, 2, 2, 256)]          // 2 a thread: two blocks, still a thread a unit of the share up to 256
    [InlineData(false, 2, 2, 4100, 264, 1, 5, 224)]          // 1025 units over 5 blocks: 205 each, whole warps
    [InlineData(true, 2, 2, 2L << 20, 264, 1, 64, 512)]      // 4 MB: past the cap in blocks of 256, so blocks of 512, capped
    [InlineData(true, 2, 2, 2L << 20, 20, 1, 20, 512)]       // capped by residency
    [InlineData(true, 8, 4, 8192, 264, 1, 2, 256)]           // f32 over 8 ranks: 512-unit chunks
    public void TheGridGrowsWithTheWorkAndIsCapped(bool twoShot, int ranks, int elementSize, long count, int resident, int unitsPerThread,
                                                   int blocks, int threads) =>
        Assert.Equal(new LowLatencyGrid(blocks, threads), LowLatencyLayout.Grid(twoShot, ranks, count, elementSize, resident,
            LowLatencyLayout.DefaultMaxBlocks, unitsPerThread, LowLatencyKernelOptions.DefaultBlockThreads));

    /// <summary>
    /// Blocks of at most the configured threads while the grid stays under its cap (8 KB of bf16 two-shot: one block of 512
    /// before, two of 256 now, four of 128), every thread of the grid with work but for the last warp's spare lanes.
    /// </summary>
    [Theory]
    [InlineData(4096, 512, 1, 512)]
    [InlineData(4096, 256, 2, 256)]
    [InlineData(4096, 128, 4, 128)]
    [InlineData(4096, 32, 16, 32)]
    [InlineData(64 << 10, 256, 32, 256)]        // 128 KB: 8192 units a chunk, 32 blocks of 256
    [InlineData(128 << 10, 256, 64, 256)]       // 256 KB: 16384 units a chunk, 64 blocks of 256: the cap, reached exactly
    [InlineData((128 << 10) + 8, 256, 33, 512)] // chunks of 65536 and 65544 elements: 16386 units, past it: blocks of 512
    [InlineData(1000, 256, 1, 128)]             // chunks of 496 and 504 elements: 126 units, one block of 4 warps
    public void TheGridSpreadsOverSmallBlocksUnderItsCap(long count, int blockThreads, int blocks, int threads)
    {
        var grid = LowLatencyLayout.Grid(true, 2, count, 2, 264, LowLatencyLayout.DefaultMaxBlocks, 1, blockThreads);
        Assert.Equal(new LowLatencyGrid(blocks, threads), grid);
        Assert.True((long)grid.Blocks * grid.Threads >= LowLatencyLayout.MaxChunkUnits(count, 2, 2), "every unit has a thread");
    }

    /// <summary>The host's constants are the kernel's (read from the source: they cannot drift apart).</summary>
    [Fact]
    public void ConstantsMatchTheKernel()
    {
        string source = KernelSource.FromResource(typeof(Communicator).Assembly, "ll_allreduce.cu").Text;
        int Define(string name)
        {
            var match = Regex.Match(source, $@"^#define {name} (\d+)\s*$", RegexOptions.Multiline);
            Assert.True(match.Success, $"ll_allreduce.cu has no '#define {name} <number>'");
            return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        }
        Assert.Equal(LowLatencyLayout.BlockThreads, Define("LL_BLOCK_THREADS"));
        Assert.Equal(LowLatencyLayout.Unroll, Define("LL_UNROLL"));
        Assert.Equal(LowLatencyLayout.ControlWords, Define("LL_CONTROL_WORDS"));
        Assert.Equal(LowLatencyLayout.BlockEpochsWord, Define("LL_BLOCK_EPOCHS"));
        Assert.Equal(LowLatencyLayout.EpochWordsForBlocks, Define("LL_MAX_BLOCKS"));
        Assert.Equal(CudaCollectiveBackend.MaxBlocks, LowLatencyLayout.EpochWordsForBlocks);   // the largest LL grid has a word per block
        Assert.True(LowLatencyLayout.MaxBlocks <= LowLatencyLayout.EpochWordsForBlocks);
        Assert.Equal(LowLatencyLayout.TraceWord, Define("LL_TRACE_WORD"));
        Assert.Equal(LowLatencyLayout.TraceStamps, Define("LL_TRACE_STAMPS"));
        Assert.Equal(LowLatencyLayout.TraceWord, LowLatencyLayout.BlockEpochsWord + LowLatencyLayout.EpochWordsForBlocks);
        Assert.Equal(LowLatencyLayout.ControlWords, LowLatencyLayout.TraceWord + 2 * LowLatencyLayout.TraceStamps);
        Assert.Equal(Enum.GetValues<LowLatencyTrace.Stamp>().Length, Regex.Matches(source[source.IndexOf("enum LlTraceStamp", StringComparison.Ordinal)..source.IndexOf("};", source.IndexOf("enum LlTraceStamp", StringComparison.Ordinal), StringComparison.Ordinal)], @"\bLL_T_[A-Z0-9_]+,").Count);
        Assert.Equal(LowLatencyLayout.EpochWord, Define("LL_EPOCH"));
        Assert.Equal(LowLatencyLayout.FailedStepWord, Define("LL_FAILED_STEP"));
        Assert.Equal(LowLatencyLayout.ReportWord, Define("LL_REPORT"));
        Assert.Equal(LowLatencyLayout.ReportWords, Define("LL_REPORT_WORDS"));
        Assert.True(LowLatencyLayout.ReportWord + LowLatencyLayout.ReportWords <= LowLatencyLayout.ControlWords);
        Assert.Equal(LowLatencyLayout.MaxRanks, Define("LL_MAX_RANKS"));
        Assert.Equal(Communicator.MaxRanks, LowLatencyLayout.MaxRanks);
        Assert.Matches(@"__global__ void __launch_bounds__\(LL_BLOCK_THREADS\)", source);
    }

    /// <summary>A timed-out wait's report reads back as text naming the unit, its slot and the flags; none without a claim.</summary>
    [Fact]
    public void ATimedOutWaitsReportDescribesWhatItSaw()
    {
        var words = LowLatencyLayout.InitialControl();
        Assert.Equal(LowLatencyLayout.ControlWords, words.Length);
        Assert.Equal((uint)int.MaxValue, words[LowLatencyLayout.FailedStepWord]);
        Assert.Null(LowLatencyLayout.DescribeReport(0, words, null));
        // claimed, step 1, block 3, thread 17, sender 1, unit 4242, parity 0, flag 6 expected, flags 4/4 found.
        uint[] report = [1, 1, 3, 17, 1, 4242, 0, 6, 4, 4];
        report.CopyTo(words, LowLatencyLayout.ReportWord);
        string text = LowLatencyLayout.DescribeReport(1, words, (6u, 6u))!;
        Assert.Equal("rank 1 block 3 thread 17 timed out at step 1 waiting for unit 4242 of slot [1] (parity 0) to carry flag 6; "
            + "its two lines held flags 4/4 at the deadline, and 6/6 after the kernels ended", text);
        // The kernel's slot_unit: [parity][sender][slotUnits] units of 16 bytes.
        Assert.Equal(((1L * 4 + 2) * 100 + 7) * 16, LowLatencyLayout.UnitOffsetBytes(4, 100, 1, 2, 7));
        Assert.Equal(0, LowLatencyLayout.UnitOffsetBytes(2, 100, 0, 0, 0));
    }

    /// <summary>
    /// The ranges a timed-out call's scan reads: two-shot's step 0 holds the receiver's chunk at 0, step 1 the sender's
    /// chunk from the slot's middle; one-shot the whole tensor. And the scan's summary counts each kind of line.
    /// </summary>
    [Fact]
    public void AFailedCallsScanReadsTheLinesTheCallFills()
    {
        // 1000 f32 over 2 ranks, grain 8: chunk 0 = [0, 496) = units [0, 248), chunk 1 = [496, 1000) = units [248, 500).
        var twoShot = LowLatencyLayout.FilledRanges(true, 2, receiver: 1, sender: 0, 1000, 4, slotUnits: 100).ToList();
        Assert.Equal([(0, 0L, 252L), (1, 50L, 50L + 248)], twoShot);
        Assert.Equal([(0, 0L, 500L)], LowLatencyLayout.FilledRanges(false, 2, 1, 0, 1000, 4, 100).ToList());
        uint[] flags = [3, 3, 0, 0, 3, 3, 1, 1, 0, 0];   // units 10..14: fresh, never written, fresh, old epoch, never written
        Assert.Equal("rank 1 slot [0] step 1: 2 of 5 units fresh, 2 never written (first 11), 1 holding other flags (first 13)",
            LowLatencyLayout.DescribeRange(1, 0, 1, 10, flags, 3));
    }

    /// <summary>The CPU backend keeps the schedule path (LL is CUDA-only) and says so.</summary>
    [Fact]
    public void CpuCallsRunTheSchedule()
    {
        var group = TestDevices.GetGroup("cpu", 2);
        using var communicator = Communicator.Create(group, FailFast());
        var buffers = group.Select(a => (MemoryBuffer)a.Upload<float>([1f, 2f, 3f])).ToList();
        try
        {
            communicator.AllReduce(buffers, buffers, AllReduceAlgorithm.TwoShot);
            Assert.False(communicator.LastAllReduceLowLatency);
            Assert.Equal(new[] { 2f, 4f, 6f }, Download(buffers[1]));
        }
        finally
        {
            DisposeAll(buffers);
        }
    }

    // ---- CUDA ----

    public static TheoryData<int, AllReduceAlgorithm, DType, string, bool> CudaCases()
    {
        var data = new TheoryData<int, AllReduceAlgorithm, DType, string, bool>();
        foreach (int ranks in new[] { 2, 4 })
            foreach (var algorithm in LowLatencyAlgorithms)
                foreach (var dtype in AllDTypes)
                    foreach (var size in new[] { "0", "1", "7", "N-1", "1000", "4099", "65537", "200003" })
                        foreach (bool inPlace in new[] { false, true })
                            data.Add(ranks, algorithm, dtype, size, inPlace);
        return data;
    }

    [Theory, MemberData(nameof(CudaCases))]
    public void SumsExactlyThroughTheLowLatencyPath(int ranks, AllReduceAlgorithm algorithm, DType dtype, string sizeName, bool inPlace)
    {
        RequireLowLatency(algorithm);
        var group = TestDevices.GetGroup("cuda", ranks);
        long count = Size(sizeName, ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        var expected = SumOf(inputs, count);
        using var communicator = Communicator.Create(group, FailFast());
        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
        var output = inPlace ? input : Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
        try
        {
            communicator.AllReduce(input, output, algorithm);
            Assert.True(communicator.LastAllReduceLowLatency, $"{algorithm} x{count} {DTypes.Name(dtype)} did not take the LL path");
            for (int r = 0; r < ranks; r++)
                Compare.Exact<float>(expected, Download(output[r]), $"LL {algorithm} {DTypes.Name(dtype)} x{count} rank {r} of {ranks} (seed {seed}, in place {inPlace})");
        }
        finally
        {
            DisposeAll(input.Concat(output));
        }
    }

    /// <summary>
    /// The default threshold (32 KB, or MOE_LL_TWOSHOT_MAX_BYTES): two-shot calls at and just past it take LL or the
    /// schedule as <see cref="LowLatencyLayout.Takes"/> says, one-shot ones LL; every call exact.
    /// </summary>
    [Theory]
    [InlineData(2, DType.BF16, 1L << 14)]         // 32 KB
    [InlineData(2, DType.BF16, (1L << 14) + 1)]
    [InlineData(2, DType.F32, 1L << 13)]
    [InlineData(2, DType.F32, (1L << 13) + 5)]
    [InlineData(4, DType.F16, 1L << 14)]
    [InlineData(4, DType.F16, 100_003)]
    public void TheDefaultThresholdRoutesTwoShotBySize(int ranks, DType dtype, long count)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        var expected = SumOf(inputs, count);
        var options = FailFastDefault();
        using var communicator = Communicator.Create(group, options);
        foreach (var algorithm in LowLatencyAlgorithms)
        {
            var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
            var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
            try
            {
                communicator.AllReduce(input, output, algorithm);
                Assert.Equal(ExpectLowLatency(options, ranks, algorithm, count, dtype), communicator.LastAllReduceLowLatency);
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(output[r]), $"{algorithm} {DTypes.Name(dtype)} x{count} rank {r} of {ranks} (seed {seed}, LL {communicator.LastAllReduceLowLatency})");
            }
            finally
            {
                DisposeAll(input.Concat(output));
            }
        }
    }

    /// <summary>
    /// Operands that start 1-3 elements into an allocation (not 8-byte aligned; output and input differently), the
    /// output followed by a guard: exact sums, and not one element written outside the output.
    /// </summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot, DType.BF16, 1, 3)]
    [InlineData(AllReduceAlgorithm.TwoShot, DType.BF16, 3, 0)]
    [InlineData(AllReduceAlgorithm.OneShot, DType.F32, 1, 0)]
    [InlineData(AllReduceAlgorithm.TwoShot, DType.F16, 2, 1)]
    [InlineData(AllReduceAlgorithm.TwoShot, DType.F32, 0, 1)]
    public void MisalignedOperands(AllReduceAlgorithm algorithm, DType dtype, int inputShift, int outputShift)
    {
        RequireLowLatency(algorithm);
        AssertMisalignedOperandsSumExactly(FailFast(), algorithm, dtype, inputShift, outputShift, c => c.LastAllReduceLowLatency);
    }

    /// <summary>
    /// 60 calls in a row (both parities many times over, the epoch well past its first values), one-shot and two-shot
    /// mixed, sizes shrinking and growing so that stale lines of an earlier, longer call lie beyond a later short one,
    /// with a schedule-path call in between: every call exact.
    /// </summary>
    [Theory]
    [InlineData(2, true)]
    [InlineData(4, true)]
    [InlineData(2, false)]   // the default threshold: the larger two-shot calls take the schedule in between
    public void ManyCallsReuseTheBuffers(int ranks, bool largeTwoShot)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        var options = largeTwoShot ? FailFast() : FailFastDefault();
        using var communicator = Communicator.Create(group, options);
        TestData.NewRandom(out int seed);
        long[] counts = [5000, 3, 70001, 1, 999, 4096, 131_075, 17];
        for (int call = 0; call < 60; call++)
        {
            long count = counts[call % counts.Length];
            var algorithm = call % 13 == 12 ? AllReduceAlgorithm.Ring : LowLatencyAlgorithms[(call / 3) % 2];
            var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + call, r, count)).ToArray();
            var expected = SumOf(inputs, count);
            var buffers = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.BF16, inputs[r])).ToList();
            try
            {
                communicator.AllReduce(buffers, buffers, algorithm);
                Assert.Equal(ExpectLowLatency(options, ranks, algorithm, count, DType.BF16), communicator.LastAllReduceLowLatency);
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(buffers[r]), $"call {call} ({algorithm}, x{count}) rank {r} (seed {seed})");
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }

    /// <summary>
    /// The first call of a fresh communicator, 40 times over (the case where two-shot over LL lost lines on 2 x H200:
    /// the first call after the receive regions were zeroed), at the f32 sizes that failed: every call exact.
    /// </summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot)]
    [InlineData(AllReduceAlgorithm.TwoShot)]
    public void FirstCallsOfFreshCommunicatorsAreExact(AllReduceAlgorithm algorithm)
    {
        RequireLowLatency(algorithm);
        const int ranks = 2;
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        for (int round = 0; round < 40; round++)
        {
            long count = round % 2 == 0 ? 1000 : 4099;
            var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + round, r, count)).ToArray();
            var expected = SumOf(inputs, count);
            using var communicator = Communicator.Create(group, FailFast());
            var buffers = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.F32, inputs[r])).ToList();
            try
            {
                communicator.AllReduce(buffers, buffers, algorithm);
                Assert.True(communicator.LastAllReduceLowLatency);
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(buffers[r]), $"round {round} ({algorithm}, x{count}) rank {r} (seed {seed})");
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }

    /// <summary>
    /// Calls enqueued on explicit streams without waiting in between (a rank may run a call ahead of its peers):
    /// 50 calls of alternating algorithms on one pair of buffers, each output feeding the next call's input.
    /// </summary>
    [Fact]
    public void BackToBackCallsOnStreams()
    {
        const int ranks = 2;
        const long count = 4099;
        var group = TestDevices.GetGroup("cuda", ranks);
        using var communicator = Communicator.Create(group, FailFast());
        TestData.NewRandom(out int seed);
        // Inputs of 1 and 0: after k calls every element is 2^k times rank 0's; f32 stays exact to 2^50.
        var start = Enumerable.Range(0, ranks).Select(r => Enumerable.Range(0, (int)count).Select(i => r == 0 ? (float)(((i + seed) % 3 + 3) % 3 - 1) : 0f).ToArray()).ToArray();
        var buffers = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.F32, start[r])).ToList();
        var streams = group.Select(a => a.CreateStream()).ToList();
        try
        {
            const int calls = 50;
            for (int call = 0; call < calls; call++)
                communicator.AllReduce(buffers, buffers, LowLatencyAlgorithms[call % 2], streams);
            communicator.Synchronize();
            streams.ForEach(s => s.Synchronize());
            // First call: rank 0's values + 0; each later call doubles them.
            var expected = start[0].Select(v => v * MathF.Pow(2, calls - 1)).ToArray();
            for (int r = 0; r < ranks; r++)
                Compare.Exact<float>(expected, Download(buffers[r]), $"after {calls} stream-ordered calls, rank {r} (seed {seed})");
        }
        finally
        {
            streams.ForEach(s => s.Dispose());
            DisposeAll(buffers);
        }
    }

    /// <summary>Random non-integer data: every rank gets the same bits, equal to the host's rank-order F32 sum rounded once.</summary>
    [Theory]
    [InlineData(2, AllReduceAlgorithm.OneShot)]
    [InlineData(2, AllReduceAlgorithm.TwoShot)]
    [InlineData(4, AllReduceAlgorithm.OneShot)]
    [InlineData(4, AllReduceAlgorithm.TwoShot)]
    public void EveryRankGetsTheSameBits(int ranks, AllReduceAlgorithm algorithm)
    {
        RequireLowLatency(algorithm);
        var group = TestDevices.GetGroup("cuda", ranks);
        const int count = 40_009;
        var random = TestData.NewRandom(out int seed);
        using var communicator = Communicator.Create(group, FailFast());
        foreach (var dtype in AllDTypes)
        {
            var inputs = Enumerable.Range(0, ranks).Select(_ => Rounded(dtype, TestData.Uniform(random, count))).ToArray();
            var rankOrderSum = new float[count];
            for (int i = 0; i < count; i++)
            {
                float sum = inputs[0][i];
                for (int r = 1; r < ranks; r++)
                    sum += inputs[r][i];
                rankOrderSum[i] = Round(dtype, sum);
            }
            var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
            var output = Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
            try
            {
                communicator.AllReduce(input, output, algorithm);
                Assert.True(communicator.LastAllReduceLowLatency);
                var first = Bits(output[0]);
                for (int r = 1; r < ranks; r++)
                    Assert.True(first.AsSpan().SequenceEqual(Bits(output[r])), $"{DTypes.Name(dtype)}: rank {r} differs from rank 0 (seed {seed})");
                Compare.Exact<float>(rankOrderSum, Download(output[0]), $"LL {algorithm} {DTypes.Name(dtype)} against the rank-order F32 sum (seed {seed})");
            }
            finally
            {
                DisposeAll(input.Concat(output));
            }
        }
    }

    /// <summary>
    /// Four LL calls (one-shot and two-shot, two sizes) captured on each rank's stream, replayed five times with fresh
    /// inputs: the epoch advances on the device, so every replay sums the current inputs exactly.
    /// </summary>
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public void GraphReplaysSumTheCurrentInputs(int ranks)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        using var communicator = Communicator.Create(group, FailFast());
        TestData.NewRandom(out int seed);
        long[] counts = [100_003, 777];
        var inputs = counts.Select(c => Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.BF16, Verifiable(seed, r, c))).ToList()).ToArray();
        var outputs = counts.Select(c => Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], DType.BF16, c)).ToList()).ToArray();
        var streams = group.Select(a => (CudaStream)a.CreateStream()).ToList();
        var graphs = new List<CudaGraph>();
        try
        {
            communicator.AllReduce(inputs[0], outputs[0], AllReduceAlgorithm.OneShot, streams);   // warm-up: kernels loaded
            communicator.Synchronize();
            foreach (var stream in streams)
                stream.BeginCapture();
            foreach (var algorithm in LowLatencyAlgorithms)
                for (int s = 0; s < counts.Length; s++)
                {
                    communicator.AllReduce(inputs[s], outputs[s], algorithm, streams);
                    Assert.Equal(ExpectLowLatency(FailFast(), ranks, algorithm, counts[s], DType.BF16), communicator.LastAllReduceLowLatency);
                }
            foreach (var stream in streams)
                graphs.Add(stream.EndCapture());
            ReplayWithFreshInputs(communicator, group, graphs, streams, inputs, outputs, counts, seed, replays: 5, "graph");
        }
        finally
        {
            graphs.ForEach(g => g.Dispose());
            streams.ForEach(s => s.Dispose());
            DisposeAll(inputs.SelectMany(b => b).Concat(outputs.SelectMany(b => b)));
        }
    }

    /// <summary>A rank that never launches: the others give up at the device deadline, step 0 named, no hang; the communicator is then refused.</summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot)]
    [InlineData(AllReduceAlgorithm.TwoShot)]
    public void APeerThatNeverArrivesTimesOut(AllReduceAlgorithm algorithm)
    {
        RequireLowLatency(algorithm);
        var group = TestDevices.GetGroup("cuda", 2);
        var timeout = TimeSpan.FromMilliseconds(400);
        // 400 KB: the 8-byte-line build's report and scan (128-byte lines from 256 KB have their own test, LowLatencyLine128Tests).
        using var communicator = Communicator.Create(group, Options(timeout) with
        {
            TwoShotLowLatencyMaxBytes = LargeTwoShot,
            LowLatencyKernel = LowLatencyKernelOptions.Default with { Line128MinBytes = 0 },
        });
        var buffers = group.Select(a => (MemoryBuffer)a.Allocate<float>(100_000)).ToList();
        try
        {
            foreach (var b in buffers)
                ((MemoryBuffer<float>)b).Fill(1f);
            communicator.RankThatNeverArrives = 1;
            var clock = Stopwatch.StartNew();
            var error = Assert.Throws<CollectiveTimeoutException>(() => communicator.AllReduce(buffers, buffers, algorithm));
            clock.Stop();
            Assert.Equal(CollectiveKind.AllReduce, error.Collective);
            Assert.Equal(0, error.Rank);
            Assert.Equal(0, error.Step);
            Assert.Contains("rank 0", error.Message);
            // The LL report: rank 1 never wrote, so the unit rank 0 waited for (sent by rank 1) held flags 0/0.
            Assert.Contains("slot [1]", error.Message);
            Assert.Contains("held flags 0/0 at the deadline, and 0/0 after the kernels ended", error.Message);
            Assert.Contains("published epochs by rank: 1, 0", error.Message);
            Assert.InRange(clock.Elapsed, timeout * 0.9, timeout * 2 + TimeSpan.FromSeconds(3));
            Assert.Throws<CommunicatorFailedException>(() => communicator.AllReduce(buffers, buffers, algorithm));
        }
        finally
        {
            DisposeAll(buffers);
        }
    }

    /// <summary>Two-shot over LL can be turned off (MOE_LL_TWOSHOT=0, <see cref="LowLatencyLayout.TwoShotEnabled"/>): its cases skip then.</summary>
    private static void RequireLowLatency(AllReduceAlgorithm algorithm)
    {
        if (algorithm == AllReduceAlgorithm.TwoShot && !LowLatencyLayout.TwoShotEnabled)
            Assert.Skip("two-shot over LL is turned off (MOE_LL_TWOSHOT=0)");
    }

    /// <summary>
    /// Whether a CUDA call takes LL on a communicator made with <paramref name="options"/>: its two-shot threshold (or
    /// the process's: MOE_LL_TWOSHOT_MAX_BYTES, else 32 KB), its slots, and the LL switches.
    /// </summary>
    private static bool ExpectLowLatency(CommunicatorOptions options, int ranks, AllReduceAlgorithm algorithm, long count, DType dtype)
    {
        long twoShotMaxBytes = options.TwoShotLowLatencyMaxBytes ?? LowLatencyLayout.TwoShotMaxBytesFromEnvironment();
        return LowLatencyLayout.Enabled && (algorithm != AllReduceAlgorithm.TwoShot || LowLatencyLayout.TwoShotEnabled)
            && LowLatencyLayout.Takes(algorithm, ranks, count, DTypes.SizeOf(dtype), LowLatencyLayout.SlotUnits(ranks, options.CapacityBytes, twoShotMaxBytes), twoShotMaxBytes);
    }

    /// <summary>
    /// The LL tests' options: a 5 s timeout, so one lost line fails its case fast instead of eating the run's budget, and
    /// two-shot on LL up to 1 MB, so every size here (multi-block grids included) runs on LL whatever the default.
    /// </summary>
    private static CommunicatorOptions FailFast() => FailFastDefault() with { TwoShotLowLatencyMaxBytes = LargeTwoShot };

    /// <summary>The 5 s timeout with the process's two-shot threshold (32 KB unless MOE_LL_TWOSHOT_MAX_BYTES says otherwise).</summary>
    private static CommunicatorOptions FailFastDefault() => Options(TimeSpan.FromSeconds(5));



    private static float[] Rounded(DType dtype, float[] values) => values.Select(v => Round(dtype, v)).ToArray();

    private static float Round(DType dtype, float value) => dtype switch
    {
        DType.BF16 => (float)(BFloat16)value,
        DType.F16 => (float)(Half)value,
        _ => value,
    };
}
