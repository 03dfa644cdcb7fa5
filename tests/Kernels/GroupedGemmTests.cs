using FsCheck;
using FsCheck.Fluent;
using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Tests.Infrastructure;
using TestData = MoeRuntime.Tests.Infrastructure.TestData;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Grouped GEMM on every accelerator against the F64 reference (<see cref="GroupedGemmCpu.Reference"/>) computed
/// from the operands as rounded to their dtype, so the bound covers accumulation and output rounding only:
/// BF16 operands 1e-2 (bf16 output rounding is 2^-9), F16 2e-3 (bf16 output: 1e-2), F32 1e-5. Outputs start poisoned (NaN);
/// rows outside every expert must stay poisoned.
/// </summary>
public class GroupedGemmTests
{
    /// <summary>One case: rows per expert, N, K, leading and trailing rows outside every expert.</summary>
    public sealed record Case(string Name, int[] Counts, int N, int K, int LeadingRows = 0, int TrailingRows = 0)
    {
        public override string ToString() => Name;
    }

    private static readonly Case[] Shapes =
    [
        new("one expert, one row", [1], 8, 8),
        new("awkward N and K, empty and 1-row experts", [3, 0, 17, 1], 72, 40),
        new("rows outside the experts", [5, 9], 24, 16, LeadingRows: 3, TrailingRows: 4),
        new("decode-shaped, many experts", [2, 1, 0, 0, 3, 1, 0, 2], 200, 136),
        new("medium tiles", [40, 50], 130, 64),
        new("prefill tiles, tails", [130, 1, 260], 136, 96),
        new("several K chunks and column groups", [70, 5], 300, 520),
    ];

    public static TheoryData<string, string, string, int> Cases()
    {
        var data = new TheoryData<string, string, string, int>();
        foreach (var device in new[] { "cpu", "cuda:0" })
            for (int shape = 0; shape < Shapes.Length; shape++)
                foreach (var (operands, output) in new[] { ("bf16", "bf16"), ("bf16", "f32"), ("f16", "f16"), ("f16", "f32"), ("f32", "f32") })
                    data.Add(device, operands, output, shape);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void MatchesTheReference(string device, string operands, string output, int shape)
    {
        var accelerator = TestDevices.Get(device);
        RunCase(accelerator, Shapes[shape], DTypes.Parse(operands), DTypes.Parse(output), fused: false, rowScale: false, variant: null);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void FusedSiluAndMulMatchesTheReference(string device)
    {
        var accelerator = TestDevices.Get(device);
        RunCase(accelerator, new Case("fused decode", [5, 0, 20], 80, 64), DType.BF16, DType.BF16, fused: true, rowScale: false, variant: null);
        RunCase(accelerator, new Case("fused prefill", [200, 150], 144, 32), DType.BF16, DType.BF16, fused: true, rowScale: false, variant: null);
        RunCase(accelerator, new Case("fused f16, odd I", [7, 33], 2 * 37, 48), DType.F16, DType.F32, fused: true, rowScale: true, variant: null);
        RunCase(accelerator, new Case("fused f32", [7, 0, 33], 2 * 37, 20), DType.F32, DType.F32, fused: true, rowScale: false, variant: null);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void RowScaleMultipliesEachRow(string device)
    {
        var accelerator = TestDevices.Get(device);
        RunCase(accelerator, new Case("scaled down", [12, 0, 3, 31], 96, 72), DType.BF16, DType.BF16, fused: false, rowScale: true, variant: null);
        RunCase(accelerator, new Case("scaled f32", [12, 3], 33, 17), DType.F32, DType.F32, fused: false, rowScale: true, variant: null);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void FiveHundredTwelveExperts(string device)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out _);
        var counts = Enumerable.Range(0, 512).Select(_ => random.Next(4) == 0 ? random.Next(1, 4) : 0).ToArray();
        RunCase(accelerator, new Case("512 experts", counts, 40, 32), DType.BF16, DType.BF16, fused: false, rowScale: false, variant: null);
    }

    /// <summary>Every tile shape on the same awkward cases (on the CPU the variant does not apply; the case still runs).</summary>
    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void EveryTileShapeMatchesTheReference(string device)
    {
        var accelerator = TestDevices.Get(device);
        foreach (var variant in GroupedGemm.Variants.Select(v => v.Name))
        {
            RunCase(accelerator, new Case($"{variant}: tails", [3, 0, 70, 1, 140], 136, 104, TrailingRows: 2), DType.BF16, DType.BF16, fused: false, rowScale: true, variant);
            RunCase(accelerator, new Case($"{variant}: fused", [19, 0, 130], 2 * 68, 40), DType.F16, DType.F16, fused: true, rowScale: false, variant);
            // Odd N: rows start at odd and even elements, so the paired epilogue store takes both its aligned and
            // its split path; several column tiles of every width with a tail; K over several BK = 64 steps with a tail.
            RunCase(accelerator, new Case($"{variant}: odd N, f32 out", [1, 260, 0, 5], 519, 136, LeadingRows: 1), DType.BF16, DType.F32, fused: false, rowScale: false, variant);
        }
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void ZeroRowsIsANoOp(string device)
    {
        var accelerator = TestDevices.Get(device);
        using var x = accelerator.Allocate<BFloat16>(0);
        using var w = accelerator.Upload<BFloat16>(TestData.ToBf16(TestData.Uniform(TestData.NewRandom(out _), 3 * 8 * 16)));
        using var offsets = accelerator.Upload<int>(new[] { 0, 0, 0, 0 });
        using var y = accelerator.Allocate<BFloat16>(0);
        GroupedGemm.Run(accelerator, x, w, offsets, y, 8, 16);
        accelerator.Synchronize();
        Assert.Equal(0, y.Length);
    }

    [Theory, MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void RejectsBadInputBeforeAnyLaunch(string device)
    {
        var accelerator = TestDevices.Get(device);
        const int n = 16, k = 24, experts = 2, rows = 6;
        using var x = accelerator.Allocate<BFloat16>(rows * k);
        using var w = accelerator.Allocate<BFloat16>(experts * n * k);
        using var wF16 = accelerator.Allocate<Half>(experts * n * k);
        using var y = accelerator.Allocate<BFloat16>(rows * n);
        using var good = accelerator.Upload<int>(new[] { 0, 2, 6 });
        using var notMonotone = accelerator.Upload<int>(new[] { 0, 4, 3 });
        using var pastRows = accelerator.Upload<int>(new[] { 0, 2, 7 });
        using var negative = accelerator.Upload<int>(new[] { -1, 2, 6 });
        using var xK12 = accelerator.Allocate<BFloat16>(rows * 12);
        using var wK12 = accelerator.Allocate<BFloat16>(experts * n * 12);
        using var shortScale = accelerator.Allocate<float>(rows - 1);
        using var yFused = accelerator.Allocate<BFloat16>(rows * n / 2);
        using var wOddN = accelerator.Allocate<BFloat16>(experts * 15 * k);
        TestData.Poison(y);

        void Rejected(string argument, string fragment, Action call)
        {
            var error = Assert.ThrowsAny<ArgumentException>(call);
            Assert.Equal(argument, error.ParamName);
            Assert.Contains(fragment, error.Message);
        }

        Rejected("expertOffsets", "not monotone", () => GroupedGemm.Run(accelerator, x, w, notMonotone, y, n, k));
        Rejected("expertOffsets", "past the 6 rows", () => GroupedGemm.Run(accelerator, x, w, pastRows, y, n, k));
        Rejected("expertOffsets", "negative", () => GroupedGemm.Run(accelerator, x, w, negative, y, n, k));
        Rejected("weights", "[E=2, N=8, K=24]", () => GroupedGemm.Run(accelerator, x, w, good, y, 8, k));
        Rejected("weights", "share one dtype", () => GroupedGemm.Run(accelerator, x, wF16, good, y, n, k));
        Rejected("inFeatures", "multiple of 8", () => GroupedGemm.Run(accelerator, xK12, wK12, good, y, n, 12));
        Rejected("y", "needs 48", () => GroupedGemm.Run(accelerator, x, w, good, y, n, k, new GroupedGemmOptions { FusedSiluAndMul = true }));
        Rejected("options.RowScale", "one per row", () => GroupedGemm.Run(accelerator, x, w, good, y, n, k, new GroupedGemmOptions { RowScale = shortScale }));
        Rejected("outFeatures", "even N", () => GroupedGemm.Run(accelerator, x, wOddN, good, yFused, 15, k, new GroupedGemmOptions { FusedSiluAndMul = true }));
        Rejected("x", "whole number of rows", () => GroupedGemm.Run(accelerator, x, w, good, y, n, 40));
        // Nothing was written by the rejected calls (y is still poisoned), and the good call goes through.
        Assert.All(ToDoubles(y), v => Assert.True(double.IsNaN(v)));
        GroupedGemm.Run(accelerator, x, w, good, y, n, k);
    }

    /// <summary>
    /// CUDA: the op captured once in a graph (offsets not read by the host) stays right when the offsets in device
    /// memory change between replays, including to fewer rows and to empty experts.
    /// </summary>
    [Fact]
    public void CapturedInACudaGraphFollowsTheOffsetsOnTheDevice()
    {
        var gpu = TestDevices.Get("cuda:0");
        var random = TestData.NewRandom(out int seed);
        const int n = 72, k = 64, experts = 4, rows = 40;
        var xValues = Rounded(TestData.Uniform(random, rows * k), DType.BF16);
        var wValues = Rounded(TestData.Uniform(random, experts * n * k), DType.BF16);
        using var x = Upload(gpu, xValues, DType.BF16);
        using var w = Upload(gpu, wValues, DType.BF16);
        using var offsets = gpu.Upload<int>(new[] { 0, 10, 10, 25, 40 });
        using var y = gpu.Allocate<float>(rows * n);
        using var stream = (MoeRuntime.Accelerators.Cuda.CudaStream)gpu.CreateStream();
        var options = new GroupedGemmOptions { ValidateOffsets = false };
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream); // loads the kernel outside the capture
        stream.BeginCapture();
        GroupedGemm.Run(gpu, x, w, offsets, y, n, k, options, stream);
        using var graph = stream.EndCapture();
        foreach (var layout in new[] { new[] { 0, 10, 10, 25, 40 }, new[] { 0, 0, 3, 3, 7 }, new[] { 0, 40, 40, 40, 40 } })
        {
            offsets.CopyFrom(layout, 0, stream);
            TestData.Poison(y);          // on the default stream: wait for it before the replay
            gpu.Synchronize();
            graph.Launch(stream);
            stream.Synchronize();
            var expected = GroupedGemmCpu.Reference(xValues, wValues, layout, [], n, k, fusedSiluAndMul: false);
            int covered = layout[^1] * n;
            Compare.Close(expected.AsSpan(0, covered), ToDoubles(y).AsSpan(0, covered), Compare.Bf16Tolerance,
                $"graph replay with offsets [{string.Join(", ", layout)}] seed={seed}");
        }
    }

    /// <summary>The decode tile: decode128 unless MOE_GROUPED_GEMM_DECODE_BK names another; a bad value names the variable.</summary>
    [Fact]
    public void DecodeTileFollowsItsSwitch()
    {
        Assert.Equal(GroupedGemm.Decode128, GroupedGemm.ParseDecodeBk(null));
        Assert.Equal(GroupedGemm.Decode64, GroupedGemm.ParseDecodeBk("64"));
        Assert.Equal(GroupedGemm.Decode256, GroupedGemm.ParseDecodeBk(" 256 "));
        Assert.Contains("MOE_GROUPED_GEMM_DECODE_BK", Assert.Throws<ArgumentException>(() => GroupedGemm.ParseDecodeBk("96")).Message);
        // 32 rows over 8 experts: the decode tile; 1024 rows over 8: not.
        Assert.True(GroupedGemm.IsDecodeTile(GroupedGemm.ChooseVariant(DType.BF16, 32, 8)));
        Assert.False(GroupedGemm.IsDecodeTile(GroupedGemm.ChooseVariant(DType.BF16, 1024, 8)));
    }

    /// <summary>The host's launch shapes (tile, threads, shared bytes) agree with the kernel instantiations in grouped_gemm.cu.</summary>
    [Fact]
    public void HostVariantsMatchTheKernelInstantiations()
    {
        var assembly = typeof(GroupedGemm).Assembly;
        using var stream = assembly.GetManifestResourceStream("grouped_gemm.cu")!;
        string source = new StreamReader(stream).ReadToEnd();
        foreach (var variant in GroupedGemm.Variants)
        {
            var match = System.Text.RegularExpressions.Regex.Match(source,
                $@"GG_ENTRY\(grouped_gemm_{variant.Name}_##SUFFIX, TIN, TOUT, (\d+), (\d+), (\d+), (\d+), (\d+), (\d+)\)");
            Assert.True(match.Success, $"no GG_ENTRY for {variant.Name}");
            int[] p = Enumerable.Range(1, 6).Select(g => int.Parse(match.Groups[g].Value)).ToArray();
            // (BM, BN, warps m, warps n, stages, BK): shared bytes = stages * (BM + BN) * BK * 2
            Assert.Equal((variant.TileRows, variant.TileCols, variant.Threads, variant.SharedBytes),
                (p[0], p[1], p[2] * p[3] * 32, p[4] * (p[0] + p[1]) * p[5] * 2));
        }
    }

    /// <summary>
    /// The CPU path's 256-bit form (6 x 16 register tiles), which machines without AVX-512 run, forced on this one
    /// (<see cref="GroupedGemmCpuFast.ForceNarrow"/>): on every shape of <see cref="Shapes"/> and a fused, scaled one, it
    /// gives the 512-bit form's bits (each sum adds its products in K order in both) and the reference's result. Other CPU
    /// tests running meanwhile may take the narrow form; with the same bits, none can tell.
    /// </summary>
    [Fact]
    public void TheCpuPathsTwoFormsGiveTheSameBits()
    {
        var accelerator = TestDevices.Get("cpu");
        var cases = Shapes.SelectMany(shape => new[] { (shape, DType.F32, false, false), (shape, DType.BF16, false, false) })
            .Append((new Case("fused and scaled", [130, 0, 261], 2 * 150, 200), DType.BF16, true, true));
        foreach (var (shape, operands, fused, rowScale) in cases)
        {
            var (seed, rows, outCols, offsets, xValues, wValues, scales) = Inputs.Draw(shape, operands, fused, rowScale);
            using var x = Upload(accelerator, xValues, operands);
            using var w = Upload(accelerator, wValues, operands);
            using var offsetsBuffer = accelerator.Upload<int>(offsets);
            using var scaleBuffer = rowScale ? accelerator.Upload<float>(scales) : null;
            var options = new GroupedGemmOptions { FusedSiluAndMul = fused, RowScale = scaleBuffer };
            float[] RunForm(bool narrow)
            {
                using var y = accelerator.Allocate<float>((long)rows * outCols);
                GroupedGemmCpuFast.ForceNarrow = narrow;
                try
                {
                    GroupedGemm.Run(accelerator, x, w, offsetsBuffer, y, shape.N, shape.K, options);
                }
                finally
                {
                    GroupedGemmCpuFast.ForceNarrow = false;
                }
                return y.AsSpan().ToArray();
            }
            var wide = RunForm(narrow: false);
            var narrow = RunForm(narrow: true);
            string what = $"{shape.Name} {DTypes.Name(operands)} fused={fused} scaled={rowScale} seed={seed}";
            int begin = shape.LeadingRows * outCols, end = (rows - shape.TrailingRows) * outCols;
            for (int i = begin; i < end; i++)
                Assert.True(BitConverter.SingleToInt32Bits(wide[i]) == BitConverter.SingleToInt32Bits(narrow[i]),
                    $"{what}: element {i}, 512-bit {wide[i]:R} against 256-bit {narrow[i]:R}");
            var expected = GroupedGemmCpu.Reference(xValues, wValues, offsets, scales, shape.N, shape.K, fused);
            Compare.Close(expected.AsSpan(begin, end - begin), narrow.Select(v => (double)v).ToArray().AsSpan(begin, end - begin),
                Compare.ToleranceFor(operands, DType.F32), what);
        }
    }

    /// <summary>Property: the fast CPU path equals the plain twin on random F32 shapes (counts, N, K, fused, scale).</summary>
    [Fact]
    public void CpuFastPathMatchesThePlainTwinOnRandomShapes()
    {
        var accelerator = TestDevices.Get("cpu");
        var shapes = from experts in Gen.Choose(1, 6)
                     from counts in Gen.ArrayOf(Gen.Choose(0, 70), experts)
                     from halfN in Gen.Choose(1, 40)
                     from k in Gen.Choose(1, 90)
                     from fused in Gen.Elements(false, true)
                     from scaled in Gen.Elements(false, true)
                     select (counts, halfN, k, fused, scaled);
        Prop.ForAll(shapes.ToArbitrary(), shape =>
        {
            var (counts, halfN, k, fused, scaled) = shape;
            int n = fused ? 2 * halfN : halfN + 1;
            RunCase(accelerator, new Case($"random {string.Join(',', counts)} n={n} k={k}", counts, n, k), DType.F32, DType.F32, fused, scaled, variant: null);
        }).QuickCheckThrowOnFailure();
    }

    /// <summary>Hand-worked: 2 experts, offsets [0, 1, 3], K = 8, one-hot rows pick columns of W.</summary>
    [Fact]
    public void TwinMatchesAHandWorkedCase()
    {
        const int n = 2, k = 8;
        var x = new float[3 * k];
        x[0 * k + 0] = 1;          // row 0 (expert 0) = e0
        x[1 * k + 1] = 2;          // row 1 (expert 1) = 2 e1
        x[2 * k + 7] = -1;         // row 2 (expert 1) = -e7
        var w = new float[2 * n * k];
        for (int i = 0; i < w.Length; i++)
            w[i] = i;              // W[e, j, kk] = (e * n + j) * k + kk
        var y = GroupedGemmCpu.Reference(x, w, [0, 1, 3], [], n, k, fusedSiluAndMul: false);
        // row 0: W[0, j, 0] = 0, 8; row 1: 2 * W[1, j, 1] = 2 * 17, 2 * 25; row 2: -W[1, j, 7] = -23, -31
        Assert.Equal(new double[] { 0, 8, 34, 50, -23, -31 }, y);
        var fused = GroupedGemmCpu.Reference(x, w, [0, 1, 3], [0.5f, 1f, 2f], n, k, fusedSiluAndMul: true);
        // row 1: gate = 34, up = 50 -> silu(34) * 50 (silu(34) = 34 / (1 + e^-34))
        Assert.Equal(34 / (1 + Math.Exp(-34)) * 50, fused[1], 1e-9);
        Assert.Equal(0.0, fused[0]);   // gate 0 -> silu 0
    }

    /// <summary>A case's random inputs, rounded to the operands' dtype: offsets start after the leading rows; scales only when asked.</summary>
    internal sealed record Inputs(int Seed, int Rows, int OutCols, int[] Offsets, float[] X, float[] W, float[] Scales)
    {
        public static Inputs Draw(Case shape, DType operands, bool fused, bool rowScale)
        {
            var random = TestData.NewRandom(out int seed);
            int experts = shape.Counts.Length;
            int rows = shape.LeadingRows + shape.Counts.Sum() + shape.TrailingRows;
            var offsets = new int[experts + 1];
            offsets[0] = shape.LeadingRows;
            for (int e = 0; e < experts; e++)
                offsets[e + 1] = offsets[e] + shape.Counts[e];
            var x = Rounded(TestData.Uniform(random, rows * shape.K), operands);
            var w = Rounded(TestData.Uniform(random, experts * shape.N * shape.K), operands);
            var scales = rowScale ? TestData.Uniform(random, rows, 0.1f, 1.5f) : [];
            return new Inputs(seed, rows, fused ? shape.N / 2 : shape.N, offsets, x, w, scales);
        }
    }

    internal static void RunCase(Accelerator accelerator, Case shape, DType operands, DType output, bool fused, bool rowScale, string? variant,
                                 int? gemvTileSlots = null)
    {
        var (seed, rows, outCols, offsets, xValues, wValues, scales) = Inputs.Draw(shape, operands, fused, rowScale);
        int covered = shape.Counts.Sum();

        using var x = Upload(accelerator, xValues, operands);
        using var w = Upload(accelerator, wValues, operands);
        using var offsetsBuffer = accelerator.Upload<int>(offsets);
        using var scaleBuffer = rowScale ? accelerator.Upload<float>(scales) : null;
        using var y = accelerator.Allocate(output, (long)rows * outCols);
        TestData.Poison(y);
        GroupedGemm.Run(accelerator, x, w, offsetsBuffer, y, shape.N, shape.K,
            new GroupedGemmOptions { FusedSiluAndMul = fused, RowScale = scaleBuffer, VariantOverride = variant, GemvTileSlotsOverride = gemvTileSlots });
        var actual = ToDoubles(y);
        var expected = GroupedGemmCpu.Reference(xValues, wValues, offsets, scales, shape.N, shape.K, fused);

        string what = $"{shape.Name} {DTypes.Name(operands)}->{DTypes.Name(output)} fused={fused} scaled={rowScale} variant={variant ?? "auto"}{(gemvTileSlots is { } slots ? $" slots={slots}" : "")} on {accelerator.Name} seed={seed}";
        int begin = shape.LeadingRows * outCols, end = (shape.LeadingRows + covered) * outCols;
        Compare.Close(expected.AsSpan(begin, end - begin), actual.AsSpan(begin, end - begin), Compare.ToleranceFor(operands, output), what);
        for (int i = 0; i < actual.Length; i++)
            if (i < begin || i >= end)
                Assert.True(double.IsNaN(actual[i]), $"{what}: element {i} outside every expert was written ({actual[i]})");
    }

    /// <summary>The CPU twin (parallel over experts and tiles) gives the same bits run after run, as the CUDA kernels must.</summary>
    [Fact]
    public void TheCpuGivesTheSameBitsRunAfterRun() =>
        AssertRepeatsGiveTheSameBits(TestDevices.Get("cpu"), [0, 3, 3, 70, 71], 40, 136, new GroupedGemmOptions(), repeats: 2);

    /// <summary>
    /// One bf16 call on random data over <paramref name="offsets"/> (rows = offsets[E]), then <paramref name="repeats"/>
    /// more on the same inputs, each bit for bit the first's output: a race (a buffer reused too early) shows as a difference.
    /// </summary>
    internal static void AssertRepeatsGiveTheSameBits(Accelerator gpu, int[] offsets, int n, int k, GroupedGemmOptions options, int repeats = 5)
    {
        var random = TestData.NewRandom(out int seed);
        int rows = offsets[^1], experts = offsets.Length - 1;
        using var x = gpu.Upload<BFloat16>(TestData.ToBf16(TestData.Uniform(random, rows * k)));
        using var w = gpu.Upload<BFloat16>(TestData.ToBf16(TestData.Uniform(random, experts * n * k)));
        using var o = gpu.Upload<int>(offsets);
        using var y = gpu.Allocate<float>(rows * n);
        GroupedGemm.Run(gpu, x, w, o, y, n, k, options);
        var first = y.ToArray();
        Assert.Contains(first, v => v != 0);
        for (int run = 0; run < repeats; run++)
        {
            TestData.Poison(y);
            GroupedGemm.Run(gpu, x, w, o, y, n, k, options);
            Compare.Exact<float>(first, y.ToArray(), $"{options.VariantOverride ?? "auto"}: run {run + 1} against the first, seed={seed}");
        }
    }

    internal static float[] Rounded(float[] values, DType dtype) => dtype switch
    {
        DType.BF16 => values.Select(v => (float)(BFloat16)v).ToArray(),
        DType.F16 => values.Select(v => (float)(Half)v).ToArray(),
        _ => values,
    };

    internal static MemoryBuffer Upload(Accelerator accelerator, float[] values, DType dtype) => dtype switch
    {
        DType.BF16 => accelerator.Upload<BFloat16>(TestData.ToBf16(values)),
        DType.F16 => accelerator.Upload<Half>(TestData.ToF16(values)),
        _ => accelerator.Upload<float>(values),
    };

    internal static double[] ToDoubles(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray().Select(v => (double)v).ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(v => (double)(float)v).ToArray(),
        MemoryBuffer<Half> h => h.ToArray().Select(v => (double)v).ToArray(),
        _ => throw new ArgumentException($"unexpected output {buffer.Describe()}"),
    };
}
