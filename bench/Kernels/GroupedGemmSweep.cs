using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// Sweep <c>grouped_gemm</c>: the expert GEMMs of an MoE layer at real model shapes, bf16.
///   gate_up: [T*k, H] x [E, 2I, H] -> [T*k, 2I]; gate_up+silu: the same with the fused SiLU-and-mul epilogue -> [T*k, I]
///   down:    [T*k, I] x [E, H, I] -> [T*k, H], rows scaled by routing weights in the epilogue
/// Routing: each token picks k distinct experts uniformly at random (fixed seed), rows sorted by expert.
/// MOE_SWEEP_ROUTING=balanced instead gives every expert T*k / E rows, the first (T*k) % E experts one more: A/B runs that
/// need known tile shapes (256 rows an expert, whole 128-row tiles, at Mixtral-8x7B T = 1024 and DeepSeek-V3 T = 8192).
/// Floor: the larger of active-expert weight bytes / copy bandwidth and 2*rows*N*K / 799 TFLOP/s.
/// Weights are allocated once per model and reused across T (DeepSeek-V3 gate_up alone is 15 GB).
/// On the CPU: smaller shapes, and an F32 row to compare with OpenBLAS sgemm.
/// MOE_GROUPED_GEMM_VARIANT=decode|medium|prefill|decode64|medium64|large|wgmma|gemv|gemv4|gemv8 forces one kernel on every row (to compare
/// variants; the note names the tile used; wgmma is the sm_90a TMA + wgmma kernel, compute capability 9.0 only).
/// Split-K: every call gets a workspace (GroupedGemmWorkspace.For the three calls), so the op splits K where it
/// would in a layer; the note gives the splits ("split N"). MOE_GROUPED_GEMM_SPLITK=1 turns split-K off, =N forces N
/// splits, for A/B runs. MOE_SWEEP_TOKENS / MOE_SWEEP_MODELS / MOE_SWEEP_CALLS narrow the rows (<see cref="SweepFilter"/>).
/// Rows marked "(cold)": where one call's active weights are near the L2's size (Qwen3 at T=1), the graph's calls cycle
/// over expert sets (<see cref="ColdExpertSets"/>) so each reads its weights from DRAM.
/// Rows "read floor": the same active experts' gate_up and down weights read with plain 16-byte loads, replayed the same
/// way (<see cref="ReadFloor"/>), hot and, beside the cold rows, cold: the practical floor of a read of that size.
/// MOE_SWEEP_CLOCKS=1: each row's note also gives the SM clock and the power NVML read through its timing
/// (<see cref="ClockSampling"/>), for the compute-bound rows that the power limit slows.
/// </summary>
internal static class GroupedGemmSweep
{
    private sealed record Model(string Name, int Hidden, int Intermediate, int Experts, int TopK);

    private static readonly Model[] GpuModels =
    [
        new("mixtral-8x7b", 4096, 14336, 8, 2),
        new("qwen3-30b-a3b", 2048, 768, 128, 8),
        new("deepseek-v3", 7168, 2048, 256, 8),
    ];

    private static readonly int[] GpuTokens = [1, 16, 128, 1024, 8192];
    private static readonly Model[] CpuModels = [new("mini (cpu)", 512, 768, 8, 2)];
    private static readonly int[] CpuTokens = [1, 16, 128];
    private const double DenseBf16Flops = 799e12;

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        var rows = new List<SweepRow>();
        var tokens = SweepFilter.Tokens(cpu ? CpuTokens : GpuTokens);
        using var trace = GemvTrace.Attach(accelerator);
        using var wgmmaTrace = WgmmaTrace.Attach(accelerator);
        foreach (var model in SweepFilter.Models(cpu ? CpuModels : GpuModels, m => m.Name))
            RunModel(accelerator, model, tokens, bandwidth, rows, SweepFilter.Calls(["gate_up", "gate_up+silu", "down"]));
        if (cpu)
            rows.Add(CpuF32Dense(accelerator));
        return rows;
    }

    private static void RunModel(Accelerator accelerator, Model model, int[] tokenCounts, double bandwidth, List<SweepRow> rows,
                                 Func<string, bool> wantsCall)
    {
        int h = model.Hidden, i = model.Intermediate, e = model.Experts;
        var (gateUp, down) = RandomWeights ? RandomExpertWeights(accelerator, model) : ConstantWeights(accelerator, model);
        using var releaseGateUp = gateUp;
        using var releaseDown = down;
        foreach (int tokens in tokenCounts)
        {
            int rowCount = tokens * model.TopK;
            var fromFile = CountsFromFile(tokens * model.TopK, e);
            var offsets = fromFile ?? (Balanced ? BalancedOffsets(tokens * model.TopK, e) : RoutingOffsets(tokens, model.TopK, e, seed: 1234 + tokens));
            int active = 0;
            for (int x = 0; x < e; x++)
                active += offsets[x + 1] > offsets[x] ? 1 : 0;
            var random = new Random(tokens);
            using var offsetsBuffer = accelerator.Upload<int>(offsets);
            using var hidden = accelerator.Upload<BFloat16>(RandomBf16(random, (long)rowCount * h));
            using var inner = accelerator.Upload<BFloat16>(RandomBf16(random, (long)rowCount * i));
            using var scales = accelerator.Upload<float>(Enumerable.Range(0, rowCount).Select(_ => random.NextSingle()).ToArray());
            using var gateUpOut = accelerator.Allocate<BFloat16>((long)rowCount * 2 * i);
            using var fusedOut = accelerator.Allocate<BFloat16>((long)rowCount * i);
            using var downOut = accelerator.Allocate<BFloat16>((long)rowCount * h);
            bool graph = tokens <= 128;
            string shape = $"T={tokens} rows={rowCount} active={active}" + (fromFile is null ? "" : " (counts file)");
            string? forced = Environment.GetEnvironmentVariable("MOE_GROUPED_GEMM_VARIANT") is { Length: > 0 } name ? name : null;
            using var splitK = GroupedGemmWorkspace.For(accelerator, new GroupedGemmShape(rowCount, 2 * i, h, e, Fused: false),
                new GroupedGemmShape(rowCount, 2 * i, h, e, Fused: true), new GroupedGemmShape(rowCount, h, i, e));
            // A token's experts are distinct, so no expert has more rows than tokens (the layer passes the same bound).
            var plain = new GroupedGemmOptions { ValidateOffsets = false, VariantOverride = forced, SplitKWorkspace = splitK, MaxRowsPerExpert = tokens };
            var fused = plain with { FusedSiluAndMul = true };
            var scaled = plain with { RowScale = scales };
            string tile = "tile " + (forced ?? GroupedGemmWgmma.ChoiceName(accelerator, DType.BF16, rowCount, e));
            // The wgmma kernel does not split K; the mma.sync tiles do where the plan says so.
            // The GEMV's note says its X rows per W pass (1, 4 or 8: MaxRowsPerExpert, MOE_GROUPED_GEMM_GEMV_MAX_ROWS).
            int gemvRows = GroupedGemmGemv.TileRowsFor(rowCount, e, GroupedGemmGemv.MaxRowsFromEnvironment(), forced, tokens);
            if (accelerator.Kind == AcceleratorKind.Cuda && GroupedGemmGemv.IsVariantName(tile["tile ".Length..]))
                tile = $"tile gemv x{gemvRows}";
            // MOE_GEMV_TILE_MAP=on: the 4-row GEMV of these offsets reads its m-tiles from their map (as the layer's would);
            // the cold rows below, on other offsets, search.
            using var tileMap = accelerator.Kind == AcceleratorKind.Cuda && tile.StartsWith("tile gemv", StringComparison.Ordinal)
                && GroupedGemmGemv.GridTileRows(gemvRows) == GroupedGemmGemv.TileRows && GemvTileMapSwitch.EnabledByDefault
                ? UploadTileMap(accelerator, offsets, rowCount) : null;
            if (tileMap is not null)
                tile += ", tile map";
            var hotPlain = plain with { TileMap = tileMap };
            var hotFused = fused with { TileMap = tileMap };
            var hotScaled = scaled with { TileMap = tileMap };
            string Note(int n, int k, bool isFused) =>
                forced is null && tile.StartsWith("tile gemv", StringComparison.Ordinal) && GroupedGemmGemv.LeavesShortK(rowCount, k, GroupedGemmGemv.ExpertsRuleMinK)
                ? $"tile {GroupedGemmWgmma.VariantName} (K under MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K)"
                : forced is null && tile.StartsWith("tile gemv", StringComparison.Ordinal) && GroupedGemmGemv.LeavesManyWaves(accelerator, DType.BF16, rowCount, e, n)
                ? $"tile {GroupedGemmWgmma.VariantName} (MOE_GROUPED_GEMM_GEMV_EXPERTS_MAX_WAVES or more waves)"
                : accelerator.Kind == AcceleratorKind.Cuda && tile == "tile " + GroupedGemmWgmma.VariantName
                ? tile + (GroupedGemmWgmma.ClusterSize is > 1 and int pair ? $", cluster {pair}" : "")
                : accelerator.Kind == AcceleratorKind.Cpu || tile.StartsWith("tile gemv", StringComparison.Ordinal)
                ? tile : $"{tile}, split {SplitsOf(accelerator, forced, rowCount, n, k, e, isFused, splitK)}";

            // MOE_SWEEP_SCHEDULES: each wgmma row once per work order, the orders alternating over two passes.
            bool wgmmaRows = tile == "tile " + GroupedGemmWgmma.VariantName;
            List<SweepRow> EachOrder(Func<string, SweepRow> measure, string name) =>
                WgmmaOrders.FromEnvironment is { } orders && wgmmaRows && accelerator.Kind == AcceleratorKind.Cuda ? WgmmaOrders.MeasureEach(orders, measure, name) : [measure(name)];
            List<SweepRow> PlainGateUp() => EachOrder(name => Measure(accelerator, name, shape, rowCount, 2 * i, h, active, bandwidth, graph, Note(2 * i, h, false),
                s => GroupedGemm.Run(accelerator, hidden, gateUp, offsetsBuffer, gateUpOut, 2 * i, h, hotPlain, s)), $"{model.Name} gate_up");
            List<SweepRow> FusedGateUp() => EachOrder(name => Measure(accelerator, name, shape, rowCount, 2 * i, h, active, bandwidth, graph, Note(2 * i, h, true),
                s => GroupedGemm.Run(accelerator, hidden, gateUp, offsetsBuffer, fusedOut, 2 * i, h, hotFused, s)), $"{model.Name} gate_up+silu");
            // MOE_SWEEP_FUSED_FIRST=1 measures the fused gate_up before the plain one (does the order move the numbers?).
            bool gemv = tile.StartsWith("tile gemv", StringComparison.Ordinal);
            // MOE_GROUPED_GEMM_GEMV_TRACE=1 / MOE_GROUPED_GEMM_WGMMA_TRACE=1: each GEMV or wgmma row's call once more, traced
            // (GemvTrace, WgmmaTrace).
            void Trace(string call, Action<AcceleratorStream> enqueue)
            {
                if (gemv)
                    GemvTrace.Print(accelerator, $"{model.Name} {call} {shape}", enqueue);
                else if (forced is null && wgmmaRows)
                    WgmmaTrace.Write(accelerator, $"{model.Name} {call} T={tokens}", enqueue);
            }
            if (Environment.GetEnvironmentVariable("MOE_SWEEP_FUSED_FIRST") == "1")
            {
                var fusedRows = wantsCall("gate_up+silu") ? FusedGateUp() : [];
                rows.AddRange(wantsCall("gate_up") ? PlainGateUp() : []);
                rows.AddRange(fusedRows);
            }
            else
            {
                rows.AddRange(wantsCall("gate_up") ? PlainGateUp() : []);
                rows.AddRange(wantsCall("gate_up+silu") ? FusedGateUp() : []);
            }
            if (wantsCall("down"))
                rows.AddRange(EachOrder(name => Measure(accelerator, name, shape, rowCount, h, i, active, bandwidth, graph, Note(h, i, false),
                    s => GroupedGemm.Run(accelerator, inner, down, offsetsBuffer, downOut, h, i, hotScaled, s)), $"{model.Name} down*w"));
            // As the layer calls down where the GEMV reads the map (MoeLayer.RunExpertsDown): its blocks read their tiles and
            // ask L2 for their first W segments before waiting for the kernel before (here the previous call; in the layer,
            // gate_up), which the map allows because it was written before that kernel began.
            if (graph && tileMap is not null && !Note(h, i, false).StartsWith("tile " + GroupedGemmWgmma.VariantName, StringComparison.Ordinal))
                rows.Add(Measure(accelerator, $"{model.Name} down*w prefetched", shape, rowCount, h, i, active, bandwidth, graph,
                    Note(h, i, false) + ", prefetch before wait",
                    s => GroupedGemm.Run(accelerator, inner, down, offsetsBuffer, downOut, h, i, hotScaled with { PrefetchBeforeWait = true }, s)));
            Trace("gate_up", s => GroupedGemm.Run(accelerator, hidden, gateUp, offsetsBuffer, gateUpOut, 2 * i, h, hotPlain, s));
            Trace("gate_up+silu", s => GroupedGemm.Run(accelerator, hidden, gateUp, offsetsBuffer, fusedOut, 2 * i, h, hotFused, s));
            Trace("down*w", s => GroupedGemm.Run(accelerator, inner, down, offsetsBuffer, downOut, h, i, hotScaled, s));
            // The read floor of each weight tensor's active experts (ReadFloor), for the graph-replayed rows.
            if (graph)
            {
                AddIfAny(ReadFloor.Measure(accelerator, $"{model.Name} gate_up read floor", shape, gateUp, [offsets], 2L * i * h, bandwidth, "16-byte loads"));
                AddIfAny(ReadFloor.Measure(accelerator, $"{model.Name} down read floor", shape, down, [offsets], (long)h * i, bandwidth, "16-byte loads"));
            }

            // Cold rows where the active weights are near the L2's size: each call of the replay on other experts.
            if (graph && accelerator.Kind == AcceleratorKind.Cuda)
            {
                void Cold(string call, int n, int k, bool isFused, Func<MemoryBuffer<int>, Action<AcceleratorStream>> enqueueWith, MemoryBuffer<BFloat16>? readFloorOf = null)
                {
                    var sets = ColdExpertSets.For(offsets, e, (double)active * n * k * 2);
                    if (sets.Count < 2)
                        return;
                    var buffers = sets.Select(o => accelerator.Upload<int>(o)).ToList();
                    try
                    {
                        var enqueues = buffers.Select(enqueueWith).ToList();
                        int next = 0;
                        string note = $"{Note(n, k, isFused)}, cold: {sets.Count} expert sets, {ColdExpertSets.DistinctActive(sets, e)} experts";
                        rows.Add(Measure(accelerator, $"{model.Name} {call} (cold)", shape, rowCount, n, k, active, bandwidth, graph, note,
                            s => enqueues[next++ % enqueues.Count](s)));
                        if (readFloorOf is not null)
                            AddIfAny(ReadFloor.Measure(accelerator, $"{model.Name} {call} read floor (cold)", shape, readFloorOf, sets, (long)n * k, bandwidth,
                                $"16-byte loads, cold: {sets.Count} expert sets"));
                    }
                    finally
                    {
                        foreach (var buffer in buffers)
                            buffer.Dispose();
                    }
                }
                Cold("gate_up", 2 * i, h, false, o => s => GroupedGemm.Run(accelerator, hidden, gateUp, o, gateUpOut, 2 * i, h, plain, s), gateUp);
                Cold("gate_up+silu", 2 * i, h, true, o => s => GroupedGemm.Run(accelerator, hidden, gateUp, o, fusedOut, 2 * i, h, fused, s));
                Cold("down*w", h, i, false, o => s => GroupedGemm.Run(accelerator, inner, down, o, downOut, h, i, scaled, s), down);
            }
        }
        void AddIfAny(SweepRow? row)
        {
            if (row is not null)
                rows.Add(row);
        }
    }

    /// <summary>
    /// MOE_SWEEP_WEIGHTS=constant|random (default constant, as bench/reference/grouped_gemm.py's default): random gives the
    /// experts the layer bench's random values (DeviceMoeWeights, made on the host: slow for DeepSeek-V3). The values do not
    /// change a memory-bound call, but a compute-bound one draws more power on random operands.
    /// </summary>
    private static readonly bool RandomWeights = Environment.GetEnvironmentVariable("MOE_SWEEP_WEIGHTS")?.Trim() switch
    {
        null or "" or "constant" => false,
        "random" => true,
        var value => throw new ArgumentException($"MOE_SWEEP_WEIGHTS='{value}': expected constant (0.01 and -0.02 everywhere) or random"),
    };

    /// <summary>gate_up 0.01 and down -0.02 everywhere: a device fill, no 15 GB from the host.</summary>
    private static (MemoryBuffer<BFloat16> GateUp, MemoryBuffer<BFloat16> Down) ConstantWeights(Accelerator accelerator, Model model)
    {
        var gateUp = accelerator.Allocate<BFloat16>((long)model.Experts * 2 * model.Intermediate * model.Hidden);
        var down = accelerator.Allocate<BFloat16>((long)model.Experts * model.Hidden * model.Intermediate);
        gateUp.Fill((BFloat16)0.01f);
        down.Fill((BFloat16)(-0.02f));
        return (gateUp, down);
    }

    /// <summary>The layer preset's random experts (seed 2026), as <c>moe bench layer</c> makes them.</summary>
    private static (MemoryBuffer<BFloat16> GateUp, MemoryBuffer<BFloat16> Down) RandomExpertWeights(Accelerator accelerator, Model model)
    {
        var config = MoeRuntime.Runtime.Models.LayerPresets.Get(model.Name);
        var (gateUp, down) = MoeRuntime.Runtime.Layers.DeviceMoeWeights.RandomExperts(accelerator, config, DType.BF16, 2026, [.. Enumerable.Range(0, model.Experts)]);
        return ((MemoryBuffer<BFloat16>)gateUp, (MemoryBuffer<BFloat16>)down);
    }

    /// <summary>The m-tile map of <paramref name="offsets"/> (Permute's CPU twin writes it), on the device.</summary>
    private static MemoryBuffer<int> UploadTileMap(Accelerator accelerator, int[] offsets, int rowCount)
    {
        var map = new int[Permute.TileMapElements(rowCount, offsets.Length - 1)];
        Permute.WriteTileMapCpu(offsets, Permute.DefaultTileRows, map);
        return accelerator.Upload<int>(map);
    }

    /// <summary>The split count the op picks for a call (the same planning as GroupedGemm.Run).</summary>
    private static int SplitsOf(Accelerator accelerator, string? forcedVariant, int rowCount, int n, int k, int experts, bool fused, GroupedGemmWorkspace splitK)
    {
        var variant = forcedVariant is { } name ? GroupedGemm.Variants.Single(v => v.Name == name) : GroupedGemm.ChooseVariant(DType.BF16, rowCount, experts);
        return GroupedGemmLaunch.Plan(variant, rowCount, n, k, experts, fused, GroupedGemm.Slots(accelerator, variant),
            GroupedGemmLaunch.SplitsFromEnvironment(), splitK.PartialCapacity, splitK.CounterCapacity).Splits;
    }

    private static SweepRow Measure(Accelerator accelerator, string name, string shape, int rowCount, int n, int k, int active,
                                    double bandwidth, bool graph, string note, Action<AcceleratorStream> enqueue)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        if (!cpu)
            Sustain(accelerator, enqueue);
        using var clocks = ClockSampling.Start(accelerator);
        double ms = cpu
            ? DeviceTimer.MedianMs(accelerator, enqueue, warmup: 1, samples: 5, inner: 1)
            : DeviceTimer.MedianMs(accelerator, enqueue, warmup: 3, samples: 20, inner: graph ? 20 : 3, useGraph: graph);
        note += clocks.Stop();
        double weightBytes = (double)active * n * k * 2;
        double bytes = weightBytes + (double)rowCount * k * 2 + (double)rowCount * n * 2;
        double flops = 2.0 * rowCount * n * k;
        double floorMs = Math.Max(weightBytes / bandwidth, flops / DenseBf16Flops) * 1e3;
        return new SweepRow(name, shape, ms, bytes, flops, cpu ? 0 : floorMs, cpu ? "cpu" : note + (graph ? ", graph" : ""));
    }

    /// <summary>
    /// MOE_SWEEP_SUSTAIN_MS=N: before a row is timed, its call runs back to back for N ms, so that the row is timed where a
    /// long prefill runs, at the clock the board's power limit allows under that call (it takes about a second to settle),
    /// whatever ran before it in the process. bench/reference/grouped_gemm.py reads the same variable.
    /// </summary>
    private static void Sustain(Accelerator accelerator, Action<AcceleratorStream> enqueue)
    {
        int ms = SustainMs.Value;
        if (ms <= 0)
            return;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < ms)
        {
            for (int i = 0; i < 10; i++)
                enqueue(accelerator.DefaultStream);
            accelerator.Synchronize();
        }
    }

    private static readonly EnvironmentSetting<int> SustainMs = new("MOE_SWEEP_SUSTAIN_MS", value =>
        string.IsNullOrWhiteSpace(value) ? 0
        : int.TryParse(value, out int ms) && ms is >= 0 and <= 60_000 ? ms
        : throw new ArgumentException($"MOE_SWEEP_SUSTAIN_MS='{value}': expected 0 to 60000 ms of back-to-back calls before each row is timed"));

    /// <summary>F32, one expert, 1024 x 1024 x 1024: the CPU path against OpenBLAS sgemm (about 37 GFLOP/s on 2 cores).</summary>
    private static SweepRow CpuF32Dense(Accelerator accelerator)
    {
        const int n = 1024, k = 1024, rowCount = 1024;
        var random = new Random(7);
        using var x = accelerator.Upload<float>(Enumerable.Range(0, rowCount * k).Select(_ => random.NextSingle()).ToArray());
        using var w = accelerator.Upload<float>(Enumerable.Range(0, n * k).Select(_ => random.NextSingle()).ToArray());
        using var offsets = accelerator.Upload<int>(new[] { 0, rowCount });
        using var y = accelerator.Allocate<float>((long)rowCount * n);
        double ms = DeviceTimer.MedianMs(accelerator, s => GroupedGemm.Run(accelerator, x, w, offsets, y, n, k, null, s), warmup: 1, samples: 5, inner: 1);
        return new SweepRow("f32 dense (cpu)", $"{rowCount}x{n}x{k} E=1", ms, 4.0 * (rowCount * k + n * k + rowCount * n), 2.0 * rowCount * n * k, 0, "vs OpenBLAS sgemm");
    }

    /// <summary>MOE_SWEEP_ROUTING: uniform (default) or balanced; another value is the ArgumentException naming it.</summary>
    private static bool Balanced => Environment.GetEnvironmentVariable("MOE_SWEEP_ROUTING")?.Trim() switch
    {
        null or "" or "uniform" => false,
        "balanced" => true,
        var value => throw new ArgumentException($"MOE_SWEEP_ROUTING='{value}': expected uniform (each token draws its experts) or balanced (rows / E an expert)"),
    };

    /// <summary>
    /// MOE_SWEEP_COUNTS=FILE (written by <c>moe bench layer</c> with MOE_BENCH_LAYER_COUNTS): rows an expert as a real router
    /// gave them. Used for the calls whose experts and rows it matches (null for the others); a file that cannot be read or
    /// holds a non-count is the ArgumentException naming the variable.
    /// </summary>
    internal static int[]? CountsFromFile(int rows, int experts)
    {
        if (Environment.GetEnvironmentVariable("MOE_SWEEP_COUNTS") is not { Length: > 0 } path)
            return null;
        int[] counts;
        try
        {
            counts = File.ReadAllText(path).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or FormatException or OverflowException)
        {
            throw new ArgumentException($"MOE_SWEEP_COUNTS='{path}': {error.Message}");
        }
        if (counts.Any(c => c < 0))
            throw new ArgumentException($"MOE_SWEEP_COUNTS='{path}': a negative count");
        return counts.Length == experts && counts.Sum(c => (long)c) == rows ? OffsetsOf(counts) : null;
    }

    /// <summary>The [E + 1] offsets of rows sorted by expert, from the rows of each.</summary>
    private static int[] OffsetsOf(int[] counts)
    {
        var offsets = new int[counts.Length + 1];
        for (int x = 0; x < counts.Length; x++)
            offsets[x + 1] = offsets[x] + counts[x];
        return offsets;
    }

    /// <summary>The [E + 1] offsets of <paramref name="rows"/> rows dealt evenly: rows / E an expert, the first rows % E one more.</summary>
    internal static int[] BalancedOffsets(int rows, int experts)
    {
        var offsets = new int[experts + 1];
        for (int x = 0; x < experts; x++)
            offsets[x + 1] = offsets[x] + rows / experts + (x < rows % experts ? 1 : 0);
        return offsets;
    }

    /// <summary>Each token draws k distinct experts uniformly; returns the [E + 1] offsets of rows sorted by expert.</summary>
    internal static int[] RoutingOffsets(int tokens, int topK, int experts, int seed)
    {
        var random = new Random(seed);
        var counts = new int[experts];
        var picked = new HashSet<int>();
        for (int t = 0; t < tokens; t++)
        {
            picked.Clear();
            while (picked.Count < topK)
                picked.Add(random.Next(experts));
            foreach (int expert in picked)
                counts[expert]++;
        }
        return OffsetsOf(counts);
    }

    /// <summary>Activations in [-1, 1): a random block of 64 Ki values repeated (drawing a billion values would take seconds).</summary>
    private static BFloat16[] RandomBf16(Random random, long length)
    {
        var block = new BFloat16[Math.Min(length, 1 << 16)];
        for (int x = 0; x < block.Length; x++)
            block[x] = (BFloat16)(random.NextSingle() * 2f - 1f);
        var values = new BFloat16[length];
        for (long x = 0; x < length; x += block.Length)
            block.AsSpan(0, (int)Math.Min(block.Length, length - x)).CopyTo(values.AsSpan((int)x));
        return values;
    }
}
