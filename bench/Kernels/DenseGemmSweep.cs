using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// Sweep <c>dense_gemm</c>: the MoE layer's dense calls, one matrix (E = 1) and a few to a thousand rows, bf16 operands:
///   router:         [T, H] x [E_routed, H]^T -> F32 logits
///   shared gate_up: [T, H] x [2 I_shared, H]^T with the fused SiLU-and-mul -> [T, I_shared] bf16
///   shared down:    [T, I_shared] x [H, I_shared]^T -> F32
/// at DeepSeek-V3 (router and shared expert), Qwen3-30B-A3B and Mixtral-8x7B (router) shapes. Each call runs the way the
/// layer runs it (path "auto": with a split-K workspace, the defaults and environment switches), then on each path that
/// could take it ("gemv": the decode GEMV's small-call rule, GroupedGemmDenseGemv, forced on where it can take the call:
/// 1..16 rows, W up to 8 MiB, i.e. the routers, which run at 1, 2, 4, 8, 16, 128, 1024 tokens; "skinny": GroupedGemmSkinny
/// forced on; "skinny-wide" / "skinny-narrow": every row tile with 128 / 64 of K per stage; and at T = 16 and 128 "skinny-kN" with N = 1, 2, 4, 8 k-tiles of 64 per split
/// instead of its heuristic's; "few-tiles": the split-K mma.sync rule of GroupedGemmFewTiles; "decode64"/"medium64": those
/// tiles forced, heuristic split; MOE_DENSE_GEMM_PATHS narrows the paths). The skinny rows note whether the reduction
/// was folded into the kernel or ran as a second one (MOE_SKINNY_REDUCE). Floor: weight bytes /
/// copy bandwidth or flops / 799 TFLOP/s. bench/reference/dense_gemm.py times torch's F.linear at the same shapes.
/// </summary>
internal static class DenseGemmSweep
{
    private sealed record Call(string Name, int N, int K, bool Fused, bool F32Out);

    private static readonly Call[] GpuCalls =
    [
        new("deepseek-v3 router", 256, 7168, false, true),
        new("deepseek-v3 shared gate_up+silu", 4096, 7168, true, false),
        new("deepseek-v3 shared down", 7168, 2048, false, true),
        new("qwen3-30b-a3b router", 128, 2048, false, true),
        new("mixtral-8x7b router", 8, 4096, false, true),
    ];

    private static readonly int[] GpuTokens = [1, 16, 128, 1024];

    /// <summary>The routers also at 2, 4 and 8 tokens: the GEMV's small-call rule changes tile (4 / 8 rows) and passes there.</summary>
    private static readonly int[] RouterTokens = [1, 2, 4, 8, 16, 128, 1024];

    private static readonly string[] Paths = ["auto", "gemv", "skinny", "skinny-wide", "skinny-narrow", "few-tiles", "decode64", "medium64"];

    /// <summary>The skinny kernel's K share per split (k-tiles of 64) tried beside its heuristic, at these token counts.</summary>
    private static readonly int[] SkinnyShares = [1, 2, 4, 8];
    private static readonly int[] SkinnyShareTokens = [16, 128];
    private const double DenseBf16Flops = 799e12;

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        if (accelerator.Kind == AcceleratorKind.Cpu)
            return [];
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        var rows = new List<SweepRow>();
        foreach (var call in SweepFilter.Models(GpuCalls, c => c.Name))
            foreach (int tokens in SweepFilter.Tokens(call.Name.EndsWith("router", StringComparison.Ordinal) ? RouterTokens : GpuTokens))
            {
                var paths = Paths.Concat(SkinnyShareTokens.Contains(tokens) ? SkinnyShares.Select(share => $"skinny-k{share}") : [])
                    .Where(path => path != "gemv" || GroupedGemmDenseGemv.Takes(DType.BF16, tokens, 1, call.N, call.K, forced: true));
                foreach (string path in PathFilter(paths.ToArray(), Environment.GetEnvironmentVariable("MOE_DENSE_GEMM_PATHS")))
                    rows.Add(Measure(accelerator, call, tokens, path, bandwidth));
            }
        return rows;
    }

    private static SweepRow Measure(Accelerator accelerator, Call call, int tokens, string path, double bandwidth)
    {
        var random = new Random(tokens * 31 + call.N);
        using var x = accelerator.Upload<BFloat16>(Enumerable.Range(0, tokens * call.K).Select(_ => (BFloat16)(random.NextSingle() * 2 - 1)).ToArray());
        using var w = accelerator.Allocate<BFloat16>((long)call.N * call.K);
        w.Fill((BFloat16)0.01f);
        using var offsets = accelerator.Upload<int>(new[] { 0, tokens });
        int outCols = call.Fused ? call.N / 2 : call.N;
        using MemoryBuffer y = call.F32Out ? accelerator.Allocate<float>((long)tokens * outCols) : accelerator.Allocate<BFloat16>((long)tokens * outCols);
        using var splitK = GroupedGemmWorkspace.WithCapacities(accelerator, 64L << 20, 1 << 16);
        var options = new GroupedGemmOptions
        {
            ValidateOffsets = false,
            FusedSiluAndMul = call.Fused,
            SplitKWorkspace = splitK,
            FewTilesOverride = path == "few-tiles" ? true : path == "auto" ? null : false,
            DenseGemvOverride = path == "gemv" ? true : path == "auto" ? null : false,
            VariantOverride = path is "decode64" or "medium64" ? path : null,
            SkinnyOverride = path == "auto" ? null : path.StartsWith("skinny", StringComparison.Ordinal),
            SkinnyKTilesPerSplitOverride = SkinnyShare(path),
            SkinnyWideOverride = WideChoice(path),
        };
        bool graph = tokens <= 128;
        double ms = DeviceTimer.MedianMs(accelerator, s => GroupedGemm.Run(accelerator, x, w, offsets, y, call.N, call.K, options, s),
            warmup: 3, samples: 20, inner: graph ? 20 : 3, useGraph: graph);
        double weightBytes = (double)call.N * call.K * 2;
        double bytes = weightBytes + (double)tokens * call.K * 2 + (double)tokens * outCols * (call.F32Out ? 4 : 2);
        double flops = 2.0 * tokens * call.N * call.K;
        double floorMs = Math.Max(weightBytes / bandwidth, flops / DenseBf16Flops) * 1e3;
        string note = $"{path}: {PathNote(accelerator, call, tokens, path, splitK)}" + (graph ? ", graph" : "");
        return new SweepRow(call.Name, $"T={tokens} N={call.N} K={call.K}", ms, bytes, flops, floorMs, note);
    }

    /// <summary>What the op ran for a path: the tile and its split count (the planning GroupedGemm.Run does).</summary>
    private static string PathNote(Accelerator accelerator, Call call, int tokens, string path, GroupedGemmWorkspace splitK)
    {
        if (path == "gemv" || (path == "auto" && GroupedGemmDenseGemv.Takes(DType.BF16, tokens, 1, call.N, call.K)))
            return GroupedGemmDenseGemv.PlanFor(tokens, call.Fused ? call.N / 2 : call.N, call.K, call.Fused).ToString();
        bool skinnyPath = path.StartsWith("skinny", StringComparison.Ordinal);
        bool heuristic = path is "auto" or "few-tiles" || skinnyPath;
        if (heuristic && GroupedGemmGemv.ChosenFor(DType.BF16, tokens, 1))
            return "gemv";
        if ((path == "auto" || skinnyPath) && GroupedGemmSkinny.Takes(DType.BF16, tokens, 1, hasWorkspace: true, forced: skinnyPath ? true : null)
            && (skinnyPath || !GroupedGemmSkinny.HopperKeeps(accelerator, DType.BF16, tokens, call.N, call.Fused))
            && GroupedGemmSkinny.PlanFor(accelerator, tokens, call.N, call.K, splitK.PartialCapacity, SkinnyShare(path),
                WideChoice(path)) is { } skinny)
            return $"skinny{skinny.Tile.Rows}{(skinny.Tile.KSub == 2 ? "w" : "")} {skinny.NTiles} tiles x split {skinny.Splits} "
                + $"({skinny.KTilesPerSplit * skinny.Tile.KPerStage} of K each, "
                + $"{(GroupedGemmSkinny.Folds(GroupedGemmSkinny.ReduceFromEnvironment, skinny, splitK.CounterCapacity) ? "folded" : "reduce kernel")})";
        bool fewTiles = heuristic && GroupedGemmFewTiles.Applies(accelerator, DType.BF16, tokens, call.N, 1, call.Fused, hasWorkspace: true,
            forced: path == "few-tiles" ? true : null);
        if (heuristic && !fewTiles && GroupedGemmWgmma.ChosenFor(accelerator, DType.BF16, tokens, 1))
            return "wgmma";
        var variant = path is "decode64" or "medium64" ? GroupedGemm.Variants.Single(v => v.Name == path)
            : fewTiles ? GroupedGemmFewTiles.VariantFor(tokens, 1) : GroupedGemm.ChooseVariant(DType.BF16, tokens, 1);
        var launch = GroupedGemmLaunch.Plan(variant, tokens, call.N, call.K, 1, call.Fused, GroupedGemm.Slots(accelerator, variant),
            GroupedGemmLaunch.SplitsFromEnvironment(), splitK.PartialCapacity, splitK.CounterCapacity, autoSplit: fewTiles);
        return $"{variant.Name} {launch.Tiles} tiles x split {launch.Splits}";
    }

    /// <summary>MOE_DENSE_GEMM_PATHS="auto,gemv,skinny" keeps those paths (A/B runs that need only the default's row); unset: all.</summary>
    private static string[] PathFilter(string[] all, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return all;
        var wanted = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        foreach (string path in wanted)
            if (!Paths.Contains(path) && SkinnyShare(path) is null)
                throw new ArgumentException($"MOE_DENSE_GEMM_PATHS='{value}': unknown path '{path}' (known: {string.Join(", ", Paths)}, skinny-kN)");
        return all.Where(wanted.Contains).ToArray();
    }

    /// <summary>"skinny-wide" / "skinny-narrow": those tiles; "skinny-kN": narrow (so N counts 64 of K); others: the default rule.</summary>
    private static bool? WideChoice(string path) =>
        path == "skinny-wide" ? true : path == "skinny-narrow" || SkinnyShare(path) is not null ? false : null;

    /// <summary>"skinny-kN": N k-tiles per split; other paths: the heuristic's.</summary>
    private static int? SkinnyShare(string path) =>
        path.StartsWith("skinny-k", StringComparison.Ordinal) && int.TryParse(path["skinny-k".Length..], out int share) && share > 0 ? share : null;
}
