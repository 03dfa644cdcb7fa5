using System.Text.RegularExpressions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Tests.Infrastructure;
using static MoeRuntime.Tests.Collectives.CollectiveTestData;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The LL kernel's A/B variants (<see cref="LowLatencyKernelOptions"/>: MOE_LL_FENCE, MOE_LL_LAZY_CYCLES,
/// MOE_LL_TAIL, MOE_LL_UNITS_PER_THREAD): their parsing and builds without a GPU, and on CUDA each variant
/// through the LL matrix (every dtype, awkward and multi-block sizes, in and out of place, poisoned outputs, two rounds
/// so both parities and many epochs), CUDA-graph replays and first calls of fresh communicators, every result exact.
/// The variants are set per communicator (<see cref="CommunicatorOptions.LowLatencyKernel"/>), so one run covers them all.
/// </summary>
public class LowLatencyVariantTests
{
    /// <summary>
    /// The variants the GPU runs: the kernel before this change (system fence, counter tail), each tail, the default
    /// (system fence, per-block epochs), the other fences, lazy with a zero budget (a fence at the first stale poll), and
    /// two-shot grids of 1 and 8 units a thread.
    /// </summary>
    private static readonly string[] VariantNames =
    [
        "fence=system tail=counter", "fence=system tail=single", "fence=system", "fence=acqrel", "fence=warp", "fence=lazy",
        "fence=lazy cycles=0", "fence=lazy upt=1 tail=counter", "fence=sleep", "fence=system upt=8", "fence=step0",
        "fence=step0 cycles=0", "fence=lazy trace=1", "fence=lazy small=0", "fence=lazy unroll=1", "fence=lazy unroll=2 nc=1", "fence=lazy split=0", "fence=lazy split=0 small=0",
        "fence=lazy bt=512", "fence=lazy bt=32", "fence=lazy bt=128 unroll=1", "fence=lazy oupt=2", "fence=lazy ll128=1",
    ];

    public static TheoryData<string> Variants => new(VariantNames);

    /// <summary>A variant's name as the options it stands for: "fence=lazy cycles=0 tail=counter upt=1", each part optional.</summary>
    internal static LowLatencyKernelOptions Variant(string name)
    {
        var parts = name.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=')).ToDictionary(p => p[0], p => p[1]);
        string? Part(string key) => parts.TryGetValue(key, out var v) ? v : null;
        Assert.All(parts.Keys, k => Assert.Contains(k, new[] { "fence", "cycles", "tail", "upt", "trace", "unroll", "nc", "small", "split", "bt", "oupt", "ll128" }));
        return LowLatencyKernelOptions.Parse(Part("fence"), Part("cycles"), Part("tail"), Part("upt"), Part("trace"), Part("unroll"), Part("nc"), Part("small"), Part("split"),
            blockThreads: Part("bt"), oneShotUnitsPerThread: Part("oupt"), line128MinBytes: Part("ll128"));
    }

    // ---- without a GPU ----

    [Fact]
    public void TheDefaultsAreTheLazyFenceOneUnitAThreadAndPerBlockEpochs()
    {
        var options = LowLatencyKernelOptions.Parse(null, null, " ", null);
        Assert.Equal(LowLatencyKernelOptions.Default, options);
        Assert.Equal(LowLatencyFence.Lazy, options.Fence);
        Assert.Equal(LowLatencyKernelOptions.DefaultLazyCycles, options.LazyCycles);
        Assert.Equal(LowLatencyTail.Blocks, options.Tail);
        Assert.Equal(1, options.TwoShotUnitsPerThread);
        Assert.Equal(["-DLL_FENCE=4", "-DLL_LAZY_CYCLES=4096", "-DLL_TAIL=2"], options.CompileOptions());
        Assert.Equal(LowLatencyFence.System, LowLatencyKernelOptions.Parse("system", null, null, null).Fence);
    }

    [Fact]
    public void EverySwitchParses()
    {
        var options = LowLatencyKernelOptions.Parse("lazy", "100", "Counter", "8");
        Assert.Equal(new LowLatencyKernelOptions(LowLatencyFence.Lazy, 100, LowLatencyTail.Counter, 8), options);
        Assert.Equal(["-DLL_FENCE=4", "-DLL_LAZY_CYCLES=100", "-DLL_TAIL=0"], options.CompileOptions());
        Assert.Equal("fence=lazy lazy=100 tail=counter upt=8", options.ToString());
        Assert.Equal(LowLatencyTail.Single, Variant("tail=single").Tail);
        Assert.Equal(LowLatencyFence.Sleep, Variant("fence=sleep").Fence);
        var traced = LowLatencyKernelOptions.Parse(null, null, null, null, "1");
        Assert.True(traced.Trace);
        Assert.Equal(["-DLL_FENCE=4", "-DLL_LAZY_CYCLES=4096", "-DLL_TAIL=2", "-DLL_TRACE=1"], traced.CompileOptions());
        Assert.EndsWith(" trace", traced.ToString());
        Assert.False(LowLatencyKernelOptions.Parse(null, null, null, null, "0").Trace);
        var small = LowLatencyKernelOptions.Parse(null, null, null, null, null, "1", "1");
        Assert.Equal((1, true), (small.Unroll, small.NcPeers));
        Assert.Equal(["-DLL_FENCE=4", "-DLL_LAZY_CYCLES=4096", "-DLL_TAIL=2", "-DLL_UNROLL=1", "-DLL_NC_PEERS=1"], small.CompileOptions());
        Assert.Equal(4, LowLatencyKernelOptions.Parse(null, null, null, null, null, "4", "0").Unroll);
        Assert.Equal(0, LowLatencyKernelOptions.Parse(null, null, null, null, null, null, null, "0").SmallCallMaxBytes);
        Assert.Equal(1L << 20, LowLatencyKernelOptions.Parse(null, null, null, null, null, null, null, " 1048576 ").SmallCallMaxBytes);
    }

    [Fact]
    public void SplitEntriesNameThePathsKernel()
    {
        var split = LowLatencyKernelOptions.Default;
        Assert.True(split.SplitEntries);
        Assert.Equal("ll_allreduce_bf16_two", split.EntryFor("ll_allreduce_bf16", twoShot: true));
        Assert.Equal("ll_allreduce_f32_one", split.EntryFor("ll_allreduce_f32", twoShot: false));
        var combined = LowLatencyKernelOptions.Parse(null, null, null, null, split: "0");
        Assert.Equal("ll_allreduce_f16", combined.EntryFor("ll_allreduce_f16", twoShot: true));
        Assert.EndsWith(" combined", combined.ToString());
        string source = KernelSource.FromResource(typeof(Communicator).Assembly, "ll_allreduce.cu").Text;
        foreach (var dtype in new[] { "f32", "bf16", "f16" })
            foreach (var suffix in new[] { "", "_one", "_two" })
                Assert.Matches($@"LL_ENTRY\(ll_allreduce_{dtype}{suffix}, ", source);
    }

    /// <summary>
    /// Two-shot calls up to 512 KB and one-shot ones up to 1 MB (its whole LL range) run the unroll-1 build, larger ones the
    /// configured unroll; 0 keeps every call of that kind on it.
    /// </summary>
    [Theory]
    [InlineData(true, 1, LowLatencyKernelOptions.DefaultSmallCallMaxBytes, 1)]
    [InlineData(true, 512L << 10, LowLatencyKernelOptions.DefaultSmallCallMaxBytes, 1)]
    [InlineData(true, (512L << 10) + 2, LowLatencyKernelOptions.DefaultSmallCallMaxBytes, 4)]
    [InlineData(true, 1L << 20, LowLatencyKernelOptions.DefaultSmallCallMaxBytes, 4)]
    [InlineData(true, 1024, 0, 4)]
    [InlineData(false, 1L << 20, LowLatencyKernelOptions.DefaultOneShotSmallCallMaxBytes, 1)]
    [InlineData(false, (1L << 20) + 4, LowLatencyKernelOptions.DefaultOneShotSmallCallMaxBytes, 4)]
    [InlineData(false, 1024, 0, 4)]
    public void SmallCallsRunTheUnrollOneBuild(bool twoShot, long bytes, long smallMaxBytes, int expected)
    {
        var options = twoShot ? LowLatencyKernelOptions.Default with { SmallCallMaxBytes = smallMaxBytes }
                              : LowLatencyKernelOptions.Default with { OneShotSmallCallMaxBytes = smallMaxBytes };
        Assert.Equal(expected, options.UnrollFor(bytes, twoShot));
    }

    /// <summary>One-shot grids have a cap of their own (64 by default, as two-shot's; 1 MB of bf16, a unit a thread, would fill 256 blocks of 512).</summary>
    [Fact]
    public void OneShotGridsHaveTheirOwnCap()
    {
        Assert.Equal(64, LowLatencyLayout.Grid(false, 2, 512L << 10, 2, 264, LowLatencyKernelOptions.DefaultOneShotMaxBlocks, LowLatencyKernelOptions.DefaultOneShotUnitsPerThread, 256).Blocks);
        Assert.Equal(128, LowLatencyLayout.Grid(false, 2, 512L << 10, 2, 264, 128, LowLatencyKernelOptions.DefaultOneShotUnitsPerThread, 256).Blocks);
        Assert.Equal(64, LowLatencyLayout.Grid(true, 2, 512L << 10, 2, 264, LowLatencyLayout.DefaultMaxBlocks, 1, 256).Blocks);
        Assert.Equal(40, LowLatencyKernelOptions.Parse(null, null, null, null, oneShotMaxBlocks: "40").OneShotMaxBlocks);
        Assert.Equal(LowLatencyKernelOptions.DefaultBlockThreads, LowLatencyKernelOptions.Default.BlockThreads);
        var wide = LowLatencyKernelOptions.Parse(null, null, null, null, blockThreads: "512");
        Assert.Equal(512, wide.BlockThreads);
        Assert.EndsWith(" block-threads=512", wide.ToString());
        Assert.Equal(LowLatencyKernelOptions.Default.CompileOptions(), wide.CompileOptions());   // a launch shape, not a build
        var twoUnits = LowLatencyKernelOptions.Parse(null, null, null, null, oneShotUnitsPerThread: "2");
        Assert.Equal((1, 2), (LowLatencyKernelOptions.Default.OneShotUnitsPerThread, twoUnits.OneShotUnitsPerThread));
        Assert.EndsWith(" one-shot-upt=2", twoUnits.ToString());
    }

    /// <summary>Unroll 1 is less code than the default 4, and the nc-peers build reads the region table through the read-only cache.</summary>
    [Fact]
    public void UnrollAndNcPeersChangeTheCode()
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        string four = Ptx(LowLatencyKernelOptions.Default), one = Ptx(LowLatencyKernelOptions.Default with { Unroll = 1 });
        Assert.True(one.Length < four.Length * 3 / 4, $"unroll 1: {one.Length} PTX characters, unroll 4: {four.Length}");
        Assert.DoesNotContain("ld.global.nc.u64", four);
        Assert.Contains("ld.global.nc.u64", Ptx(LowLatencyKernelOptions.Default with { NcPeers = true }));
    }

    /// <summary>The traced build stores %globaltimer stamps and the default build has none of its code (a global timer read only in the waits' deadline).</summary>
    [Fact]
    public void OnlyTheTracedBuildStamps()
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        static int TimerReads(string ptx) => Regex.Matches(ptx, "%globaltimer").Count;
        string plain = Ptx(LowLatencyKernelOptions.Default), traced = Ptx(LowLatencyKernelOptions.Default with { Trace = true });
        Assert.True(TimerReads(traced) > TimerReads(plain) + 3 * 5, $"traced {TimerReads(traced)} timer reads, plain {TimerReads(plain)}");
    }

    [Theory]
    [InlineData("MOE_LL_LAZY_CYCLES", "-1")]
    [InlineData("MOE_LL_LAZY_CYCLES", "2us")]
    [InlineData("MOE_LL_LAZY_CYCLES", "16777217")]
    [InlineData("MOE_LL_TAIL", "1")]
    [InlineData("MOE_LL_TAIL", "block")]
    [InlineData("MOE_LL_UNITS_PER_THREAD", "0")]
    [InlineData("MOE_LL_UNITS_PER_THREAD", "65")]
    [InlineData("MOE_LL_FENCE", "lazyish")]
    [InlineData("MOE_LL_TRACE", "2")]
    [InlineData("MOE_LL_TRACE", "yes")]
    [InlineData("MOE_LL_UNROLL", "3")]
    [InlineData("MOE_LL_UNROLL", "8")]
    [InlineData("MOE_LL_NC_PEERS", "2")]
    [InlineData("MOE_LL_SMALL_MAX_BYTES", "-1")]
    [InlineData("MOE_LL_SMALL_MAX_BYTES", "256K")]
    [InlineData("MOE_LL_SPLIT", "yes")]
    [InlineData("MOE_LL_ONESHOT_SMALL_MAX_BYTES", "1M")]
    [InlineData("MOE_LL_ONESHOT_MAX_BLOCKS", "0")]
    [InlineData("MOE_LL_ONESHOT_MAX_BLOCKS", "265")]
    [InlineData("MOE_LL_BLOCK_THREADS", "0")]
    [InlineData("MOE_LL_BLOCK_THREADS", "48")]
    [InlineData("MOE_LL_BLOCK_THREADS", "1024")]
    [InlineData("MOE_LL_ONESHOT_UNITS_PER_THREAD", "0")]
    public void ABadSwitchIsRefusedByName(string name, string value)
    {
        string? For(string n) => name == n ? value : null;
        var error = Assert.Throws<ArgumentException>(() => LowLatencyKernelOptions.Parse(For("MOE_LL_FENCE"), For("MOE_LL_LAZY_CYCLES"),
            For("MOE_LL_TAIL"), For("MOE_LL_UNITS_PER_THREAD"), For("MOE_LL_TRACE"), For("MOE_LL_UNROLL"), For("MOE_LL_NC_PEERS"),
            For("MOE_LL_SMALL_MAX_BYTES"), For("MOE_LL_SPLIT"), For("MOE_LL_ONESHOT_SMALL_MAX_BYTES"), For("MOE_LL_ONESHOT_MAX_BLOCKS"),
            For("MOE_LL_BLOCK_THREADS"), For("MOE_LL_ONESHOT_UNITS_PER_THREAD")));
        Assert.Contains($"{name}='{value}'", error.Message);
    }

    /// <summary>A two-shot grid of 1 unit a thread has twice the blocks of the default's, 8 a quarter, capped as before.</summary>
    [Theory]
    [InlineData(2L << 10, 1, 1)]        // 2K bf16 elements: chunks of 256 units, one block whatever the share
    [InlineData(16L << 10, 2, 2)]       // 32 KB of bf16: 2048-unit chunks, 2 blocks at 2 units a thread
    [InlineData(16L << 10, 1, 4)]
    [InlineData(16L << 10, 8, 1)]
    [InlineData(512L << 10, 1, 128)]    // 1 MB: 64 blocks at 2 units a thread, 128 at 1 unit (past the cap of 64)
    public void UnitsPerThreadSetTheTwoShotGrid(long count, int unitsPerThread, int blocksBeforeTheCap)
    {
        int expected = Math.Min(blocksBeforeTheCap, LowLatencyLayout.DefaultMaxBlocks);
        Assert.Equal(expected, LowLatencyLayout.Grid(true, 2, count, 2, 264, LowLatencyLayout.DefaultMaxBlocks, unitsPerThread, LowLatencyLayout.BlockThreads).Blocks);
    }

    /// <summary>
    /// Every variant builds (NVRTC, no GPU, sm_90): lazy fences only inside its wait (a clock read there, and
    /// more system fences than none), sleep never (as many system fences as none) but sleeps, and each tail builds code
    /// of its own (the per-block tail has no atomic add: no finished-block counter).
    /// </summary>
    [Theory, MemberData(nameof(Variants))]
    public void EveryVariantBuilds(string variant)
    {
        MoeRuntime.Tests.Accelerators.NvrtcTests.RequireNvrtc();
        var options = Variant(variant);
        static int SystemFences(string ptx) => Regex.Matches(ptx, @"membar\.sys|fence\.(sc|acq_rel)\.sys").Count;
        string ptx = Ptx(options);
        string none = Ptx(options with { Fence = LowLatencyFence.None });
        switch (options.Fence)
        {
            case LowLatencyFence.Lazy:
                Assert.Contains("%clock64", ptx);
                Assert.True(SystemFences(ptx) > SystemFences(none), $"lazy: {SystemFences(ptx)} system fences, none: {SystemFences(none)}");
                break;
            case LowLatencyFence.Step0:
                // A fence after the step-0 stores and the lazy one in the wait, but not system's after the pushes.
                string lazy = Ptx(options with { Fence = LowLatencyFence.Lazy }), system = Ptx(options with { Fence = LowLatencyFence.System });
                Assert.Contains("%clock64", ptx);
                Assert.True(SystemFences(ptx) > SystemFences(lazy), $"step0: {SystemFences(ptx)} system fences, lazy: {SystemFences(lazy)}");
                Assert.True(SystemFences(system) > SystemFences(none), $"system: {SystemFences(system)}, none: {SystemFences(none)}");
                break;
            case LowLatencyFence.Sleep:
                Assert.Contains("nanosleep", ptx);
                Assert.Equal(SystemFences(none), SystemFences(ptx));
                break;
            case LowLatencyFence.None:
                break;
            default:
                Assert.True(SystemFences(ptx) >= SystemFences(none));
                break;
        }
        Assert.DoesNotContain("nanosleep", none);
        foreach (var tail in Enum.GetValues<LowLatencyTail>())
            if (tail != options.Tail)
                Assert.NotEqual(ptx, Ptx(options with { Tail = tail }));
        Assert.Equal(options.Tail != LowLatencyTail.Blocks, ptx.Contains("atom.global.add.u32") || ptx.Contains("atom.add.u32") || Regex.IsMatch(ptx, @"atom(\.\w+)*\.add\.u32"));
    }

    /// <summary>PTX of a variant for sm_90, compiled once per distinct defines (the variants share their "none" and tail twins).</summary>
    private static string Ptx(LowLatencyKernelOptions options) => PtxCache.GetOrAdd(string.Join(" ", options.CompileOptions()), _ =>
        NvrtcCompiler.CompileToPtx(KernelSource.FromResource(typeof(Communicator).Assembly, "ll_allreduce.cu"),
            NvrtcCompiler.DefaultOptions("sm_90", options.CompileOptions())));

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> PtxCache = new();

    // ---- CUDA ----

    private const long LargeTwoShot = 1L << 20;

    /// <summary>A 5 s timeout (a lost line fails fast) and two-shot on LL up to 1 MB (multi-block two-shot grids on LL).</summary>
    private static CommunicatorOptions OptionsFor(string variant) =>
        Options(TimeSpan.FromSeconds(5)) with { TwoShotLowLatencyMaxBytes = LargeTwoShot, LowLatencyKernel = Variant(variant) };

    private static void RequireTwoShotLowLatency()
    {
        if (!LowLatencyLayout.Enabled || !LowLatencyLayout.TwoShotEnabled)
            Assert.Skip("LL or two-shot over LL is turned off (MOE_LL=0 or MOE_LL_TWOSHOT=0)");
    }

    public static TheoryData<int, string> RanksAndVariants()
    {
        var data = new TheoryData<int, string>();
        foreach (int ranks in new[] { 2, 4 })
            foreach (var variant in VariantNames)
                data.Add(ranks, variant);
        return data;
    }

    /// <summary>
    /// One communicator per variant, two rounds of two-shot and one-shot calls over every dtype and the LL tests' sizes
    /// (1 block to 49, alternating in and out of place, outputs poisoned): each call exact against the host's sum and on LL.
    /// </summary>
    [Theory, MemberData(nameof(RanksAndVariants))]
    public void EachVariantSumsExactly(int ranks, string variant)
    {
        RequireTwoShotLowLatency();
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        using var communicator = Communicator.Create(group, OptionsFor(variant));
        string[] sizes = ["1", "7", "N-1", "1000", "4099", "65537", "200003"];
        int call = 0;
        for (int round = 0; round < 2; round++)
            foreach (var algorithm in new[] { AllReduceAlgorithm.TwoShot, AllReduceAlgorithm.OneShot })
                foreach (var dtype in AllDTypes)
                    foreach (var sizeName in sizes)
                    {
                        long count = Size(sizeName, ranks);
                        bool inPlace = call++ % 2 == 1;
                        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + call, r, count)).ToArray();
                        var expected = SumOf(inputs, count);
                        var input = Enumerable.Range(0, ranks).Select(r => Upload(group[r], dtype, inputs[r])).ToList();
                        var output = inPlace ? input : Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], dtype, count)).ToList();
                        try
                        {
                            communicator.AllReduce(input, output, algorithm);
                            Assert.True(communicator.LastAllReduceLowLatency, $"{variant}: {algorithm} x{count} {DTypes.Name(dtype)} did not take LL");
                            Assert.Equal(Variant(variant).BuildFor(count * DTypes.SizeOf(dtype), algorithm == AllReduceAlgorithm.TwoShot).Lines128,
                                communicator.LastLowLatencyLines128);
                            for (int r = 0; r < ranks; r++)
                                Compare.Exact<float>(expected, Download(output[r]),
                                    $"{variant}: round {round} {algorithm} {DTypes.Name(dtype)} x{count} rank {r} of {ranks} (seed {seed}, in place {inPlace})");
                        }
                        finally
                        {
                            DisposeAll(input.Concat(output));
                        }
                    }
    }

    /// <summary>On two GPUs each size runs the build and grid the rules give it (<see cref="LowLatencyKernelOptions.UnrollFor"/>, the grid caps), each exact.</summary>
    [Theory]
    [InlineData(AllReduceAlgorithm.TwoShot)]
    [InlineData(AllReduceAlgorithm.OneShot)]
    public void TheCallsSizePicksTheBuild(AllReduceAlgorithm algorithm)
    {
        RequireTwoShotLowLatency();
        var group = TestDevices.GetGroup("cuda", 2);
        using var communicator = Communicator.Create(group, OptionsFor("fence=lazy"));
        bool twoShot = algorithm == AllReduceAlgorithm.TwoShot;
        // 1 KB (two-shot: 64 units a chunk; one-shot: 128 units, a thread each), 2000 bytes (126 and 250 units), 8 KB (512 units
        // a chunk; 1024 units), 128 KB (8192 units a chunk: 32 blocks of 256; 16384 units: 64); from 256 KB the 128-byte lines:
        // 1 MB (two-shot 4370 lines a chunk, one-shot 8739: 8 threads a line, past the cap in blocks of 256), 512 KB (2185 and
        // 4370 lines).
        foreach (var (count, lines, blocks, threads) in new[] { (512L, false, 1, twoShot ? 64 : 128), (1000L, false, 1, twoShot ? 128 : 256),
                                                                (4096L, false, twoShot ? 2 : 4, 256), (64L << 10, false, twoShot ? 32 : 64, 256),
                                                                (512L << 10, true, 64, 512), (256L << 10, true, twoShot ? 35 : 64, 512) })
        {
            var inputs = Enumerable.Range(0, 2).Select(r => Verifiable(11, r, count)).ToArray();
            var expected = SumOf(inputs, count);
            var buffers = Enumerable.Range(0, 2).Select(r => Upload(group[r], DType.BF16, inputs[r])).ToList();
            try
            {
                communicator.AllReduce(buffers, buffers, algorithm);
                Assert.True(communicator.LastAllReduceLowLatency);
                Assert.Equal((lines, 1), (communicator.LastLowLatencyLines128, communicator.LastLowLatencyUnroll));
                Assert.Equal((blocks, threads), (communicator.LastLowLatencyBlocks, communicator.LastLowLatencyThreads));
                foreach (var b in buffers)
                    Assert.Equal(expected, Download(b));
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }

    /// <summary>
    /// Two-shot calls of a one-block and a multi-block size captured on each rank's stream and replayed four times with
    /// fresh inputs and poisoned outputs: the epoch advances on the device (under every tail), each replay exact.
    /// </summary>
    [Theory, MemberData(nameof(Variants))]
    public void EachVariantReplaysInAGraph(string variant)
    {
        RequireTwoShotLowLatency();
        const int ranks = 2;
        var group = TestDevices.GetGroup("cuda", ranks);
        using var communicator = Communicator.Create(group, OptionsFor(variant));
        TestData.NewRandom(out int seed);
        long[] counts = [777, 100_003];
        var inputs = counts.Select(c => Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.BF16, Verifiable(seed, r, c))).ToList()).ToArray();
        var outputs = counts.Select(c => Enumerable.Range(0, ranks).Select(r => Poisoned(group[r], DType.BF16, c)).ToList()).ToArray();
        var streams = group.Select(a => (CudaStream)a.CreateStream()).ToList();
        var graphs = new List<CudaGraph>();
        try
        {
            communicator.AllReduce(inputs[0], outputs[0], AllReduceAlgorithm.TwoShot, streams);   // warm-up: kernels loaded
            communicator.Synchronize();
            foreach (var stream in streams)
                stream.BeginCapture();
            for (int s = 0; s < counts.Length; s++)
            {
                communicator.AllReduce(inputs[s], outputs[s], AllReduceAlgorithm.TwoShot, streams);
                Assert.True(communicator.LastAllReduceLowLatency);
            }
            foreach (var stream in streams)
                graphs.Add(stream.EndCapture());
            ReplayWithFreshInputs(communicator, group, graphs, streams, inputs, outputs, counts, seed, replays: 4, variant);
        }
        finally
        {
            graphs.ForEach(g => g.Dispose());
            streams.ForEach(s => s.Dispose());
            DisposeAll(inputs.SelectMany(b => b).Concat(outputs.SelectMany(b => b)));
        }
    }

    /// <summary>The first two-shot call of 10 fresh communicators per variant (where the unfenced kernel lost lines), f32 1000 and 4099: exact.</summary>
    [Theory, MemberData(nameof(Variants))]
    public void EachVariantsFirstCallsAreExact(string variant)
    {
        RequireTwoShotLowLatency();
        const int ranks = 2;
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        for (int round = 0; round < 10; round++)
        {
            long count = round % 2 == 0 ? 1000 : 4099;
            var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + round, r, count)).ToArray();
            var expected = SumOf(inputs, count);
            using var communicator = Communicator.Create(group, OptionsFor(variant));
            var buffers = Enumerable.Range(0, ranks).Select(r => Upload(group[r], DType.F32, inputs[r])).ToList();
            try
            {
                communicator.AllReduce(buffers, buffers, AllReduceAlgorithm.TwoShot);
                Assert.True(communicator.LastAllReduceLowLatency);
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected, Download(buffers[r]), $"{variant}: round {round} x{count} rank {r} (seed {seed})");
            }
            finally
            {
                DisposeAll(buffers);
            }
        }
    }

}
