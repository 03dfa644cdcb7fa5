using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The op's CPU path: blocked, vectorised and parallel over (expert, row block, column group) work items, in the
/// outer-product form of BLAS kernels. For each block of K, an item converts its X rows to F32 (F32 data is used in
/// place) and packs its W rows into panels of 32 or 16 output columns (<see cref="PanelColsFor"/>) laid out K-major, so one step of K
/// is two vector loads of W against one broadcast X value a row. A micro-kernel keeps a tile of
/// MR x NR sums in registers across the whole K block (8 x 32 with Vector512,
/// 6 x 16 with Vector256: 16 of the 32 vector registers, or 12 of the 16), and each FMA costs 0.6 loads, so the loop
/// is held by the FMA units, not by its loads; the item's F32 sums collect in a tile written once at the end. Each sum adds its
/// products in K order, the same order on every machine with the same vector width. Tested against
/// <see cref="GroupedGemmCpu"/>. Fused SiLU-and-mul interleaves gate and up rows (logical row 2j = gate j, 2j+1 = up j),
/// as the CUDA kernel does.
/// The loops are compiled fully optimised from their first call (AggressiveOptimization): a layer's first forwards
/// would otherwise run them as tier-0 code, several times slower, until tiering replaces them.
/// </summary>
internal static unsafe class GroupedGemmCpuFast
{
    private const int RowBlock = 256; // X rows an item: each packed W element serves them all, so packing stays a few per cent
    private const int ColGroup = 256; // logical W rows (output columns) an item
    private const int KBlock = 128;   // K a packed block: one panel of 32 columns is 16 KB, in L1 while X rows stream past

    // X rows of a K block are copied with this stride: 576 bytes apart, a micro-kernel's 8 rows fall in different L1 sets.
    // In place, K = 1024 would put them 4 KB apart, all in one set of an 8-way L1 beside the W panel.
    private const int XStride = KBlock + 16;
    private static readonly bool HardwareWide = Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Tests: run the 256-bit form on a machine with AVX-512, so that CI, whose machines have it, covers the form that
    /// machines without it run. Read once per work item; both forms give the reference's result.
    /// </summary>
    internal static bool ForceNarrow { get; set; }

    /// <summary>The 512-bit form: 8 x 32 tiles; else 6 x 16 in 256-bit vectors.</summary>
    private static bool Wide => HardwareWide && !ForceNarrow;

    /// <summary>NR: output columns a panel, two vectors.</summary>
    private static int PanelColsFor(bool wide) => wide ? 2 * Vector512<float>.Count : 2 * Vector256<float>.Count;

    /// <summary>MR: X rows a micro-kernel call.</summary>
    private static int MicroRowsFor(bool wide) => wide ? 8 : 6;

    private readonly record struct WorkItem(int Expert, int RowBegin, int RowEnd, int ColBegin, int ColEnd);

    private sealed class Scratch
    {
        public readonly float[] X = new float[RowBlock * XStride];         // the item's X rows of one K block, as F32
        public readonly float[] Panels = new float[ColGroup * KBlock];     // panel p at p * NR * KBlock: [k][column]
        public readonly float[] Row = new float[KBlock];                   // one W row of the K block, converted
        public readonly float[] Tile = new float[RowBlock * ColGroup];     // the item's F32 sums, stride ColGroup
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(GroupedGemm.Plan plan)
    {
        var offsets = plan.ExpertOffsets.AsSpan();
        var items = new List<WorkItem>();
        for (int e = 0; e < plan.Experts; e++)
            for (int r = offsets[e]; r < offsets[e + 1]; r += RowBlock)
                for (int c = 0; c < plan.N; c += ColGroup)
                    items.Add(new WorkItem(e, r, Math.Min(r + RowBlock, offsets[e + 1]), c, Math.Min(c + ColGroup, plan.N)));
        // One worker a core, each taking the next item as it finishes one (balanced when a core is slowed). A worker
        // borrows its scratch (about 0.5 MB, on the large-object heap) from a pool kept from call to call, so a call
        // allocates none.
        int workers = Math.Min(Environment.ProcessorCount, items.Count);
        int next = -1;
        Parallel.For(0, workers, new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
        {
            var scratch = s_scratches.TryTake(out var pooled) ? pooled : new Scratch();
            try
            {
                for (int i = Interlocked.Increment(ref next); i < items.Count; i = Interlocked.Increment(ref next))
                    RunItem(plan, items[i], scratch);
            }
            finally
            {
                s_scratches.Add(scratch);
            }
        });
    }

    private static readonly System.Collections.Concurrent.ConcurrentBag<Scratch> s_scratches = [];

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunItem(GroupedGemm.Plan plan, WorkItem item, Scratch scratch)
    {
        int k = plan.K;
        int rowCount = item.RowEnd - item.RowBegin;
        int colCount = item.ColEnd - item.ColBegin;
        bool wide = Wide;
        int nr = PanelColsFor(wide), mr = MicroRowsFor(wide);
        int panels = (colCount + nr - 1) / nr;
        Array.Clear(scratch.Tile, 0, rowCount * ColGroup);
        fixed (float* xScratch = scratch.X, packed = scratch.Panels, tile = scratch.Tile)
        {
            for (int kBegin = 0; kBegin < k; kBegin += KBlock)
            {
                int kc = Math.Min(KBlock, k - kBegin);
                for (int r = 0; r < rowCount; r++)
                    ConvertRow(plan.X, (long)(item.RowBegin + r) * k + kBegin, kc, scratch.X.AsSpan(r * XStride, kc));
                PackPanels(plan, item, kBegin, kc, nr, panels, packed, scratch.Row);
                for (int p = 0; p < panels; p++)
                {
                    float* panel = packed + (long)p * nr * KBlock;
                    float* c = tile + p * nr;
                    int r = 0;
                    for (; r + mr <= rowCount; r += mr)
                    {
                        if (wide)
                            Micro8x32(xScratch + (long)r * XStride, XStride, panel, kc, c + r * ColGroup, ColGroup);
                        else
                            Micro6x16(xScratch + (long)r * XStride, XStride, panel, kc, c + r * ColGroup, ColGroup);
                    }
                    for (; r < rowCount; r++)
                        MicroRow(wide, xScratch + (long)r * XStride, panel, kc, c + r * ColGroup);
                }
            }
            WriteTile(plan, item.RowBegin, item.ColBegin, tile, rowCount, colCount);
        }
    }

    /// <summary>
    /// Packs the item's logical W rows (output columns) for K [kBegin, kBegin + kc) into panels of <paramref name="nr"/>
    /// columns, each K-major (panel[kk * nr + j] = W[column j, kBegin + kk]); columns past the item's end are zeros.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanels(GroupedGemm.Plan plan, WorkItem item, int kBegin, int kc, int nr, int panels, float* packed, float[] row)
    {
        int k = plan.K, outCols = plan.OutCols;
        int colCount = item.ColEnd - item.ColBegin;
        bool wInPlace = plan.W.DType == DType.F32;
        fixed (float* rowBuffer = row)
        {
            for (int c = 0; c < panels * nr; c++)
            {
                float* panel = packed + (long)(c / nr) * nr * KBlock + c % nr;
                if (c >= colCount)
                {
                    for (int kk = 0; kk < kc; kk++)
                        panel[kk * nr] = 0f;
                    continue;
                }
                int logical = item.ColBegin + c;
                int wRow = !plan.Fused ? logical : (logical & 1) == 0 ? logical >> 1 : outCols + (logical >> 1);
                long offset = ((long)item.Expert * plan.N + wRow) * k + kBegin;
                float* source = rowBuffer;
                if (wInPlace)
                    source = (float*)plan.W.Pointer + offset;
                else
                    ConvertRow(plan.W, offset, kc, row.AsSpan(0, kc));
                for (int kk = 0; kk < kc; kk++)
                    panel[kk * nr] = source[kk];
            }
        }
    }

    /// <summary>c[i, 0..32) += x[i, 0..kc) * panel for 8 rows of x (row stride xStride): 16 accumulators, 2 loads and 8 broadcasts per 16 FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro8x32(float* x, int xStride, float* panel, int kc, float* c, int cStride)
    {
        const int L = 16;
        float* x0 = x, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride, x4 = x3 + xStride, x5 = x4 + xStride, x6 = x5 + xStride, x7 = x6 + xStride;
        float* c0 = c, c1 = c0 + cStride, c2 = c1 + cStride, c3 = c2 + cStride, c4 = c3 + cStride, c5 = c4 + cStride, c6 = c5 + cStride, c7 = c6 + cStride;
        Vector512<float> a00 = Vector512.Load(c0), a01 = Vector512.Load(c0 + L), a10 = Vector512.Load(c1), a11 = Vector512.Load(c1 + L);
        Vector512<float> a20 = Vector512.Load(c2), a21 = Vector512.Load(c2 + L), a30 = Vector512.Load(c3), a31 = Vector512.Load(c3 + L);
        Vector512<float> a40 = Vector512.Load(c4), a41 = Vector512.Load(c4 + L), a50 = Vector512.Load(c5), a51 = Vector512.Load(c5 + L);
        Vector512<float> a60 = Vector512.Load(c6), a61 = Vector512.Load(c6 + L), a70 = Vector512.Load(c7), a71 = Vector512.Load(c7 + L);
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector512.Load(panel + kk * 2 * L);
            var b1 = Vector512.Load(panel + kk * 2 * L + L);
            var u = Vector512.Create(x0[kk]);
            a00 = Vector512.FusedMultiplyAdd(u, b0, a00); a01 = Vector512.FusedMultiplyAdd(u, b1, a01);
            u = Vector512.Create(x1[kk]);
            a10 = Vector512.FusedMultiplyAdd(u, b0, a10); a11 = Vector512.FusedMultiplyAdd(u, b1, a11);
            u = Vector512.Create(x2[kk]);
            a20 = Vector512.FusedMultiplyAdd(u, b0, a20); a21 = Vector512.FusedMultiplyAdd(u, b1, a21);
            u = Vector512.Create(x3[kk]);
            a30 = Vector512.FusedMultiplyAdd(u, b0, a30); a31 = Vector512.FusedMultiplyAdd(u, b1, a31);
            u = Vector512.Create(x4[kk]);
            a40 = Vector512.FusedMultiplyAdd(u, b0, a40); a41 = Vector512.FusedMultiplyAdd(u, b1, a41);
            u = Vector512.Create(x5[kk]);
            a50 = Vector512.FusedMultiplyAdd(u, b0, a50); a51 = Vector512.FusedMultiplyAdd(u, b1, a51);
            u = Vector512.Create(x6[kk]);
            a60 = Vector512.FusedMultiplyAdd(u, b0, a60); a61 = Vector512.FusedMultiplyAdd(u, b1, a61);
            u = Vector512.Create(x7[kk]);
            a70 = Vector512.FusedMultiplyAdd(u, b0, a70); a71 = Vector512.FusedMultiplyAdd(u, b1, a71);
        }
        a00.Store(c0); a01.Store(c0 + L); a10.Store(c1); a11.Store(c1 + L);
        a20.Store(c2); a21.Store(c2 + L); a30.Store(c3); a31.Store(c3 + L);
        a40.Store(c4); a41.Store(c4 + L); a50.Store(c5); a51.Store(c5 + L);
        a60.Store(c6); a61.Store(c6 + L); a70.Store(c7); a71.Store(c7 + L);
    }

    /// <summary>The 256-bit form for machines without AVX-512: 6 rows x 16 columns, 12 accumulators of the 16 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro6x16(float* x, int xStride, float* panel, int kc, float* c, int cStride)
    {
        const int L = 8;
        float* x0 = x, x1 = x0 + xStride, x2 = x1 + xStride, x3 = x2 + xStride, x4 = x3 + xStride, x5 = x4 + xStride;
        float* c0 = c, c1 = c0 + cStride, c2 = c1 + cStride, c3 = c2 + cStride, c4 = c3 + cStride, c5 = c4 + cStride;
        Vector256<float> a00 = Vector256.Load(c0), a01 = Vector256.Load(c0 + L), a10 = Vector256.Load(c1), a11 = Vector256.Load(c1 + L);
        Vector256<float> a20 = Vector256.Load(c2), a21 = Vector256.Load(c2 + L), a30 = Vector256.Load(c3), a31 = Vector256.Load(c3 + L);
        Vector256<float> a40 = Vector256.Load(c4), a41 = Vector256.Load(c4 + L), a50 = Vector256.Load(c5), a51 = Vector256.Load(c5 + L);
        for (int kk = 0; kk < kc; kk++)
        {
            var b0 = Vector256.Load(panel + kk * 2 * L);
            var b1 = Vector256.Load(panel + kk * 2 * L + L);
            var u = Vector256.Create(x0[kk]);
            a00 = Vector256.FusedMultiplyAdd(u, b0, a00); a01 = Vector256.FusedMultiplyAdd(u, b1, a01);
            u = Vector256.Create(x1[kk]);
            a10 = Vector256.FusedMultiplyAdd(u, b0, a10); a11 = Vector256.FusedMultiplyAdd(u, b1, a11);
            u = Vector256.Create(x2[kk]);
            a20 = Vector256.FusedMultiplyAdd(u, b0, a20); a21 = Vector256.FusedMultiplyAdd(u, b1, a21);
            u = Vector256.Create(x3[kk]);
            a30 = Vector256.FusedMultiplyAdd(u, b0, a30); a31 = Vector256.FusedMultiplyAdd(u, b1, a31);
            u = Vector256.Create(x4[kk]);
            a40 = Vector256.FusedMultiplyAdd(u, b0, a40); a41 = Vector256.FusedMultiplyAdd(u, b1, a41);
            u = Vector256.Create(x5[kk]);
            a50 = Vector256.FusedMultiplyAdd(u, b0, a50); a51 = Vector256.FusedMultiplyAdd(u, b1, a51);
        }
        a00.Store(c0); a01.Store(c0 + L); a10.Store(c1); a11.Store(c1 + L);
        a20.Store(c2); a21.Store(c2 + L); a30.Store(c3); a31.Store(c3 + L);
        a40.Store(c4); a41.Store(c4 + L); a50.Store(c5); a51.Store(c5 + L);
    }

    /// <summary>One row of x against a panel (the rows past the last whole micro-kernel): c[0..NR) += x[0..kc) * panel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroRow(bool wide, float* x, float* panel, int kc, float* c)
    {
        if (wide)
        {
            const int L = 16;
            Vector512<float> a0 = Vector512.Load(c), a1 = Vector512.Load(c + L);
            for (int kk = 0; kk < kc; kk++)
            {
                var u = Vector512.Create(x[kk]);
                a0 = Vector512.FusedMultiplyAdd(u, Vector512.Load(panel + kk * 2 * L), a0);
                a1 = Vector512.FusedMultiplyAdd(u, Vector512.Load(panel + kk * 2 * L + L), a1);
            }
            a0.Store(c);
            a1.Store(c + L);
        }
        else
        {
            const int L = 8;
            Vector256<float> a0 = Vector256.Load(c), a1 = Vector256.Load(c + L);
            for (int kk = 0; kk < kc; kk++)
            {
                var u = Vector256.Create(x[kk]);
                a0 = Vector256.FusedMultiplyAdd(u, Vector256.Load(panel + kk * 2 * L), a0);
                a1 = Vector256.FusedMultiplyAdd(u, Vector256.Load(panel + kk * 2 * L + L), a1);
            }
            a0.Store(c);
            a1.Store(c + L);
        }
    }

    /// <summary>Writes the item's sums (tile[r * ColGroup + c]) to y: scaled by the row's scale, or as silu(gate) * up when fused.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WriteTile(GroupedGemm.Plan plan, int rowBegin, int colBegin, float* tile, int rowCount, int colCount)
    {
        int outCols = plan.OutCols;
        float* scales = plan.RowScale is null ? null : (float*)plan.RowScale.Pointer;
        for (int r = 0; r < rowCount; r++)
        {
            int row = rowBegin + r;
            float scale = scales is null ? 1f : scales[row];
            if (plan.Fused)
            {
                // Logical columns come in (gate, up) pairs; ColBegin and ColGroup are even.
                for (int c = 0; c + 1 < colCount; c += 2)
                {
                    float gate = tile[r * ColGroup + c], up = tile[r * ColGroup + c + 1];
                    Store(plan.Y, (long)row * outCols + ((colBegin + c) >> 1), gate / (1f + MathF.Exp(-gate)) * up * scale);
                }
            }
            else
            {
                for (int c = 0; c < colCount; c++)
                    Store(plan.Y, (long)row * outCols + colBegin + c, tile[r * ColGroup + c] * scale);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ConvertRow(MemoryBuffer source, long offset, int count, Span<float> destination)
    {
        switch (source.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)source.Pointer + offset, count).CopyTo(destination);
                break;
            case DType.BF16:
            {
                // bf16 is the high half of an f32: widen by a 16-bit shift.
                ushort* bits = (ushort*)source.Pointer + offset;
                fixed (float* target = destination)
                {
                    uint* words = (uint*)target;
                    int i = 0;
                    for (; i + Vector256<ushort>.Count <= count; i += Vector256<ushort>.Count)
                    {
                        var (lower, upper) = Vector256.Widen(Vector256.Load(bits + i));
                        Vector256.ShiftLeft(lower, 16).Store(words + i);
                        Vector256.ShiftLeft(upper, 16).Store(words + i + Vector256<uint>.Count);
                    }
                    for (; i < count; i++)
                        words[i] = (uint)bits[i] << 16;
                }
                break;
            }
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)source.Pointer + offset, count), destination);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(source), source.DType, "operand dtype");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Store(MemoryBuffer y, long index, float value)
    {
        switch (y.DType)
        {
            case DType.F32: ((float*)y.Pointer)[index] = value; break;
            case DType.BF16: ((BFloat16*)y.Pointer)[index] = (BFloat16)value; break;
            case DType.F16: ((Half*)y.Pointer)[index] = (Half)value; break;
            default: throw new ArgumentOutOfRangeException(nameof(y), y.DType, "output dtype");
        }
    }
}
