using System.Diagnostics;
using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The LL transport's 128-byte-line build (LL_LINE128, <see cref="LowLatencyKernelOptions.Line128MinBytes"/>): its switch,
/// its line layout and grid, its build without a GPU; on CUDA its sums against the host's, misaligned operands with guards,
/// and a peer that never arrives. Its runs of the variant matrix (every dtype and size, graphs, fresh communicators) are
/// <see cref="LowLatencyVariantTests"/>' "ll128" variant.
/// </summary>
public class LowLatencyLine128Tests
{
    // ---- without a GPU ----

    [Fact]
    public void TheSwitchPicksTheBuildBySize()
    {
        Assert.Equal(256L << 10, LowLatencyKernelOptions.Default.Line128MinBytes);
        Assert.False(LowLatencyKernelOptions.Parse(null, null, null, null, line128MinBytes: "0").BuildFor(64L << 20, twoShot: true).Lines128);   // 0: never
        var options = LowLatencyKernelOptions.Parse(null, null, null, null, line128MinBytes: "262144");
        Assert.Equal(LowLatencyBuild.Line128, options.BuildFor(256L << 10, twoShot: false));
        Assert.Equal(new LowLatencyBuild(1, false), options.BuildFor((256L << 10) - 2, twoShot: true));      // unroll 1 below 512 KB
        Assert.Equal(new LowLatencyBuild(LowLatencyKernelOptions.DefaultUnroll, false), (options with { Line128MinBytes = 0 }).BuildFor(1L << 20, twoShot: true));
        Assert.Contains("-DLL_LINE128=1", options.CompileOptions(LowLatencyBuild.Line128));
        Assert.DoesNotContain("-DLL_LINE128=1", options.CompileOptions(new LowLatencyBuild(1, false)));
        Assert.Equal(LowLatencyKernelOptions.Default.CompileOptions(), LowLatencyKernelOptions.Default.CompileOptions(new LowLatencyBuild(LowLatencyKernelOptions.DefaultUnroll, false)));
        Assert.Equal(LowLatencyKernelOptions.Default, options);
        Assert.EndsWith(" ll128-from=1024", (options with { Line128MinBytes = 1024 }).ToString());
        var error = Assert.Throws<ArgumentException>(() => LowLatencyKernelOptions.Parse(null, null, null, null, line128MinBytes: "1M"));
        Assert.Contains("MOE_LL128_MIN_BYTES='1M'", error.Message);
    }

    /// <summary>15 payload units a line; two-shot counts the longest chunk's lines; the grid is a thread per 16 bytes of line.</summary>
    [Theory]
    [InlineData(false, 2, 2, 512L, 9, 1, 96)]                  // 1 KB of bf16: 128 units, 9 lines, 72 threads: 3 warps
    [InlineData(true, 2, 2, 4096L, 35, 2, 160)]                 // 8 KB: chunks of 512 units, 35 lines, 280 threads over 2 blocks
    [InlineData(false, 2, 2, 512L << 10, 8739, 64, 512)]        // 1 MB: 131072 units; past the cap, blocks of 512
    [InlineData(true, 2, 2, 512L << 10, 4370, 64, 512)]
    [InlineData(false, 2, 4, 15L * 2, 1, 1, 32)]                // f32: exactly one line
    [InlineData(false, 2, 4, 15L * 2 + 1, 2, 1, 32)]            // one unit more: a second line
    public void LinesHoldFifteenUnits(bool twoShot, int ranks, int elementSize, long count, long lines, int blocks, int threads)
    {
        Assert.Equal(lines, LowLatencyLayout.MaxLines128(twoShot, ranks, count, elementSize));
        Assert.Equal(new LowLatencyGrid(blocks, threads), LowLatencyLayout.Line128Grid(twoShot, ranks, count, elementSize, 264,
            LowLatencyLayout.DefaultMaxBlocks, LowLatencyKernelOptions.DefaultBlockThreads));
    }

    /// <summary>The line region has the bytes of the unit region, so every call LL takes fits its lines (two-shot: a chunk a half).</summary>
    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void EveryCallLowLatencyTakesFitsTheLines(int ranks)
    {
        long twoShotMaxBytes = LowLatencyLayout.DefaultTwoShotMaxBytes;
        long slotUnits = LowLatencyLayout.SlotUnits(ranks, 64L << 20, twoShotMaxBytes), slotLines = LowLatencyLayout.SlotLines128(slotUnits);
        Assert.Equal(0, slotLines % 2);
        Assert.True(slotLines * LowLatencyLayout.Line128Bytes <= slotUnits * LowLatencyLayout.UnitLineBytes);
        foreach (int elementSize in new[] { 2, 4 })
            foreach (var algorithm in new[] { AllReduceAlgorithm.OneShot, AllReduceAlgorithm.TwoShot })
                for (long count = 1; count * elementSize <= 2L << 20; count = count * 3 + 1)
                    if (LowLatencyLayout.Takes(algorithm, ranks, count, elementSize, slotUnits, twoShotMaxBytes))
                        Assert.True(LowLatencyLayout.FitsLines128(algorithm == AllReduceAlgorithm.TwoShot, ranks, count, elementSize, slotLines),
                            $"{algorithm} x{count} of {elementSize}-byte elements over {ranks} ranks");
        Assert.False(LowLatencyLayout.FitsLines128(false, ranks, (slotLines + 1) * 15 * 2, 4, slotLines));
    }

    /// <summary>
    /// The build compiles (NVRTC, sm_90), moves lines as 16 bytes a lane and waits warp-wide (a shuffle of the flag lane's
    /// check, a vote over the warp); the 8-byte-line build has neither. Its LL128_UNITS is the host's.
    /// </summary>
    [Fact]
    public void TheBuildMovesWholeLinesWarpWide()
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var source = KernelSource.FromResource(typeof(Communicator).Assembly, "ll_allreduce.cu");
        Assert.Matches($@"#define LL128_UNITS {LowLatencyLayout.Line128Units}\s", source.Text);
        string Ptx(LowLatencyBuild build) => NvrtcCompiler.CompileToPtx(source,
            NvrtcCompiler.DefaultOptions("sm_90", LowLatencyKernelOptions.Default.CompileOptions(build)));
        string lines = Ptx(LowLatencyBuild.Line128), units = Ptx(new LowLatencyBuild(1, false));
        Assert.Contains("st.volatile.global.v2.u64", lines);
        Assert.Matches(@"shfl\.sync\.idx", lines);
        Assert.Matches(@"vote\.sync\.all\.pred", lines);
        Assert.DoesNotMatch(@"vote\.sync\.all\.pred", units);
        foreach (var entry in new[] { "ll_allreduce_bf16_one", "ll_allreduce_f32_two", "ll_allreduce_f16_two" })
            Assert.Contains($".entry {entry}(", lines);
    }

    // ---- CUDA ----

    /// <summary>Every call of at least 1 byte on lines; a 5 s timeout; two-shot on LL up to 1 MB.</summary>
    private static CommunicatorOptions LineOptions(TimeSpan? timeout = null) => Options(timeout ?? TimeSpan.FromSeconds(5)) with
    {
        TwoShotLowLatencyMaxBytes = 1L << 20,
        LowLatencyKernel = LowLatencyKernelOptions.Default with { Line128MinBytes = 1 },
    };

    /// <summary>
    /// Sizes around a line (14-16 units, one and two lines), a warp's four lines, many blocks and the 1 MB edge, every dtype,
    /// 2 and 4 ranks, in and out of place, outputs poisoned: exact against the host's sum, and on lines.
    /// </summary>
    [Theory]
    [InlineData(2, AllReduceAlgorithm.OneShot)]
    [InlineData(2, AllReduceAlgorithm.TwoShot)]
    [InlineData(4, AllReduceAlgorithm.OneShot)]
    [InlineData(4, AllReduceAlgorithm.TwoShot)]
    public void SumsExactlyOnLines(int ranks, AllReduceAlgorithm algorithm)
    {
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        using var communicator = Communicator.Create(group, LineOptions());
        int call = 0;
        foreach (var dtype in AllDTypes)
        {
            int perUnit = 8 / DTypes.SizeOf(dtype);
            foreach (long count in new long[] { 1, 14 * perUnit, 15 * perUnit, 15 * perUnit + 1, 60 * perUnit + 3, 100_003, (1L << 20) / DTypes.SizeOf(dtype) })
            {
                bool inPlace = call++ % 2 == 1;
                var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + call, r, count)).ToArray();
                var expected = SumOf(inputs, count);
                var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
                var output = inPlace ? input : Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
                try
                {
                    communicator.AllReduce(input, output, algorithm);
                    Assert.True(communicator.LastAllReduceLowLatency && communicator.LastLowLatencyLines128, $"{algorithm} x{count} {DTypes.Name(dtype)} did not run on lines");
                    for (int r = 0; r < ranks; r++)
                        Compare.Exact<float>(expected, Download(output[r]), $"lines: {algorithm} {DTypes.Name(dtype)} x{count} rank {r} of {ranks} (seed {seed}, in place {inPlace})");
                }
                finally
                {
                    DisposeAll(input.Concat(output));
                }
            }
        }
    }

    /// <summary>Operands 1-3 elements into their allocations, each output between guards: exact, and nothing written outside it.</summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot, DType.BF16, 1, 3)]
    [InlineData(AllReduceAlgorithm.TwoShot, DType.F16, 2, 1)]
    [InlineData(AllReduceAlgorithm.TwoShot, DType.F32, 0, 1)]
    public void MisalignedOperandsOnLines(AllReduceAlgorithm algorithm, DType dtype, int inputShift, int outputShift) =>
        AssertMisalignedOperandsSumExactly(LineOptions(), algorithm, dtype, inputShift, outputShift, c => c.LastLowLatencyLines128);

    /// <summary>A rank that never launches: the other gives up at the device deadline, step 0 and its line named, no hang.</summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.OneShot)]
    [InlineData(AllReduceAlgorithm.TwoShot)]
    public void APeerThatNeverArrivesTimesOutOnLines(AllReduceAlgorithm algorithm)
    {
        var group = TestDevices.GetGroup("cuda", 2);
        var timeout = TimeSpan.FromMilliseconds(400);
        using var communicator = Communicator.Create(group, LineOptions(timeout));
        var buffers = group.Select(a => (MemoryBuffer)a.Allocate<float>(100_000)).ToList();
        try
        {
            foreach (var b in buffers)
                ((MemoryBuffer<float>)b).Fill(1f);
            communicator.RankThatNeverArrives = 1;
            var clock = Stopwatch.StartNew();
            var error = Assert.Throws<CollectiveTimeoutException>(() => communicator.AllReduce(buffers, buffers, algorithm));
            clock.Stop();
            Assert.True(communicator.LastLowLatencyLines128);
            Assert.Equal((CollectiveKind.AllReduce, 0, 0), (error.Collective, error.Rank, error.Step));
            // Rank 1 never wrote: the line rank 0 waited for (from slot [1]) held flag 0.
            Assert.Contains("slot [1]", error.Message);
            Assert.Contains("held flags 0/0 at the deadline", error.Message);
            Assert.InRange(clock.Elapsed, timeout * 0.9, timeout * 2 + TimeSpan.FromSeconds(3));
            Assert.Throws<CommunicatorFailedException>(() => communicator.AllReduce(buffers, buffers, algorithm));
        }
        finally
        {
            DisposeAll(buffers);
        }
    }
}
