using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The op's CPU path: blocked, vectorised (Vector256 FMA), parallel over (expert, row block, column block) work
/// items. Each item converts its block of X rows to F32 once (F32 data is used in place) and each 16-row block of
/// W once, then walks K in chunks that keep the W block in L1, with a register block of dot products (4x4 with
/// Vector512, 2x4 with Vector256) whose vector accumulators live across K chunks; horizontal sums only at the end. Tested against <see cref="GroupedGemmCpu"/>.
/// Fused SiLU-and-mul interleaves gate and up rows (logical row 2j = gate j, 2j+1 = up j), as the CUDA kernel does.
/// </summary>
internal static unsafe class GroupedGemmCpuFast
{
    private const int RowBlock = 64;
    private const int ColGroup = 256;  // logical W rows per work item (X rows are converted once per item)
    private const int ColBlock = 16;   // logical W rows per inner block: 16 rows x KChunk floats = 16 KB of L1
    private const int KChunk = 256;
    private static readonly bool Wide = Vector512.IsHardwareAccelerated;
    private static readonly int Lanes = Wide ? Vector512<float>.Count : Vector256<float>.Count;

    private readonly record struct WorkItem(int Expert, int RowBegin, int RowEnd, int ColBegin, int ColEnd);

    private sealed class Scratch(int k)
    {
        public readonly float[] X = new float[RowBlock * k];
        public readonly float[] W = new float[ColBlock * k];
        public readonly float[] Acc = new float[RowBlock * ColBlock * Vector512<float>.Count];
        public readonly float[] Tile = new float[RowBlock * ColBlock];
    }

    public static void Run(GroupedGemm.Plan plan)
    {
        var offsets = plan.ExpertOffsets.AsSpan();
        var items = new List<WorkItem>();
        for (int e = 0; e < plan.Experts; e++)
            for (int r = offsets[e]; r < offsets[e + 1]; r += RowBlock)
                for (int c = 0; c < plan.N; c += ColGroup)
                    items.Add(new WorkItem(e, r, Math.Min(r + RowBlock, offsets[e + 1]), c, Math.Min(c + ColGroup, plan.N)));
        Parallel.For(0, items.Count, () => new Scratch(plan.K), (i, _, scratch) =>
        {
            RunItem(plan, items[i], scratch);
            return scratch;
        }, _ => { });
    }

    private static void RunItem(GroupedGemm.Plan plan, WorkItem item, Scratch scratch)
    {
        int k = plan.K;
        int rowCount = item.RowEnd - item.RowBegin;
        int outCols = plan.OutCols;
        // An expert's rows are contiguous, and so are W's rows unless gate and up are interleaved: F32 data is used in place.
        bool xInPlace = plan.X.DType == DType.F32;
        bool wInPlace = plan.W.DType == DType.F32 && !plan.Fused;
        if (!xInPlace)
            for (int r = 0; r < rowCount; r++)
                ConvertRow(plan.X, (long)(item.RowBegin + r) * k, k, scratch.X.AsSpan(r * k, k));
        fixed (float* xScratch = scratch.X, wScratch = scratch.W, accs = scratch.Acc)
        {
            float* xs = xInPlace ? (float*)plan.X.Pointer + (long)item.RowBegin * k : xScratch;
            for (int colBegin = item.ColBegin; colBegin < item.ColEnd; colBegin += ColBlock)
            {
                int colCount = Math.Min(ColBlock, item.ColEnd - colBegin);
                float* ws = wInPlace ? (float*)plan.W.Pointer + ((long)item.Expert * plan.N + colBegin) * k : wScratch;
                if (!wInPlace)
                    for (int c = 0; c < colCount; c++)
                    {
                        int logical = colBegin + c;
                        int wRow = !plan.Fused ? logical : (logical & 1) == 0 ? logical >> 1 : outCols + (logical >> 1);
                        ConvertRow(plan.W, ((long)item.Expert * plan.N + wRow) * k, k, scratch.W.AsSpan(c * k, k));
                    }
                MultiplyBlock(xs, ws, k, rowCount, colCount, accs, scratch.Tile);
                WriteTile(plan, item.RowBegin, colBegin, scratch.Tile, rowCount, colCount);
            }
        }
    }

    /// <summary>tile[r, c] = x[r, :] . w[c, :] for rowCount rows of x and colCount (at most ColBlock) rows of w.</summary>
    private static void MultiplyBlock(float* xs, float* ws, int k, int rowCount, int colCount, float* accs, float[] tile)
    {
        int lanes = Lanes;
        int kVector = k - k % lanes;
        new Span<float>(accs, rowCount * colCount * lanes).Clear();
        for (int kBegin = 0; kBegin < kVector; kBegin += KChunk)
        {
            int kEnd = Math.Min(kBegin + KChunk, kVector);
            int r = 0;
            int rowStep = Wide ? 4 : 2;
            for (; r + rowStep <= rowCount; r += rowStep)
            {
                int c = 0;
                for (; c + 4 <= colCount; c += 4)
                {
                    if (Wide)
                        Block4x4(xs + (long)r * k, ws + (long)c * k, k, kBegin, kEnd, accs + (r * colCount + c) * lanes, colCount * lanes);
                    else
                        Block2x4(xs + (long)r * k, ws + (long)c * k, k, kBegin, kEnd, accs + (r * colCount + c) * lanes, colCount * lanes);
                }
                for (; c < colCount; c++)
                    for (int rr = r; rr < r + rowStep; rr++)
                        Block1x1(xs + (long)rr * k, ws + (long)c * k, kBegin, kEnd, accs + (rr * colCount + c) * lanes);
            }
            for (; r < rowCount; r++)
                for (int c = 0; c < colCount; c++)
                    Block1x1(xs + (long)r * k, ws + (long)c * k, kBegin, kEnd, accs + (r * colCount + c) * lanes);
        }
        for (int r = 0; r < rowCount; r++)
            for (int c = 0; c < colCount; c++)
            {
                float* acc = accs + (r * colCount + c) * lanes;
                float sum = Wide ? Vector512.Sum(Vector512.Load(acc)) : Vector256.Sum(Vector256.Load(acc));
                for (int kk = kVector; kk < k; kk++)
                    sum += xs[(long)r * k + kk] * ws[(long)c * k + kk];
                tile[r * colCount + c] = sum;
            }
    }

    /// <summary>acc[i, j] += x[i, kBegin..kEnd) . w[j, kBegin..kEnd) for 4 rows of x and 4 of w, 512-bit (8 loads per 16 FMAs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block4x4(float* x, float* w, int k, int kBegin, int kEnd, float* acc, int accStride)
    {
        float* acc1 = acc + accStride, acc2 = acc1 + accStride, acc3 = acc2 + accStride;
        const int L = 16;
        Vector512<float> a00 = Vector512.Load(acc), a01 = Vector512.Load(acc + L), a02 = Vector512.Load(acc + 2 * L), a03 = Vector512.Load(acc + 3 * L);
        Vector512<float> a10 = Vector512.Load(acc1), a11 = Vector512.Load(acc1 + L), a12 = Vector512.Load(acc1 + 2 * L), a13 = Vector512.Load(acc1 + 3 * L);
        Vector512<float> a20 = Vector512.Load(acc2), a21 = Vector512.Load(acc2 + L), a22 = Vector512.Load(acc2 + 2 * L), a23 = Vector512.Load(acc2 + 3 * L);
        Vector512<float> a30 = Vector512.Load(acc3), a31 = Vector512.Load(acc3 + L), a32 = Vector512.Load(acc3 + 2 * L), a33 = Vector512.Load(acc3 + 3 * L);
        float* x0 = x, x1 = x + k, x2 = x + 2 * k, x3 = x + 3 * k;
        float* w0 = w, w1 = w + k, w2 = w + 2 * k, w3 = w + 3 * k;
        for (int kk = kBegin; kk < kEnd; kk += L)
        {
            var v0 = Vector512.Load(w0 + kk);
            var v1 = Vector512.Load(w1 + kk);
            var v2 = Vector512.Load(w2 + kk);
            var v3 = Vector512.Load(w3 + kk);
            var u = Vector512.Load(x0 + kk);
            a00 = Vector512.FusedMultiplyAdd(u, v0, a00); a01 = Vector512.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector512.FusedMultiplyAdd(u, v2, a02); a03 = Vector512.FusedMultiplyAdd(u, v3, a03);
            u = Vector512.Load(x1 + kk);
            a10 = Vector512.FusedMultiplyAdd(u, v0, a10); a11 = Vector512.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector512.FusedMultiplyAdd(u, v2, a12); a13 = Vector512.FusedMultiplyAdd(u, v3, a13);
            u = Vector512.Load(x2 + kk);
            a20 = Vector512.FusedMultiplyAdd(u, v0, a20); a21 = Vector512.FusedMultiplyAdd(u, v1, a21);
            a22 = Vector512.FusedMultiplyAdd(u, v2, a22); a23 = Vector512.FusedMultiplyAdd(u, v3, a23);
            u = Vector512.Load(x3 + kk);
            a30 = Vector512.FusedMultiplyAdd(u, v0, a30); a31 = Vector512.FusedMultiplyAdd(u, v1, a31);
            a32 = Vector512.FusedMultiplyAdd(u, v2, a32); a33 = Vector512.FusedMultiplyAdd(u, v3, a33);
        }
        a00.Store(acc); a01.Store(acc + L); a02.Store(acc + 2 * L); a03.Store(acc + 3 * L);
        a10.Store(acc1); a11.Store(acc1 + L); a12.Store(acc1 + 2 * L); a13.Store(acc1 + 3 * L);
        a20.Store(acc2); a21.Store(acc2 + L); a22.Store(acc2 + 2 * L); a23.Store(acc2 + 3 * L);
        a30.Store(acc3); a31.Store(acc3 + L); a32.Store(acc3 + 2 * L); a33.Store(acc3 + 3 * L);
    }

    /// <summary>The 256-bit form for machines without AVX-512: 2 rows of x, 4 of w (6 loads per 8 FMAs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block2x4(float* x, float* w, int k, int kBegin, int kEnd, float* acc, int accStride)
    {
        float* acc1 = acc + accStride;
        const int L = 8;
        Vector256<float> a00 = Vector256.Load(acc), a01 = Vector256.Load(acc + L), a02 = Vector256.Load(acc + 2 * L), a03 = Vector256.Load(acc + 3 * L);
        Vector256<float> a10 = Vector256.Load(acc1), a11 = Vector256.Load(acc1 + L), a12 = Vector256.Load(acc1 + 2 * L), a13 = Vector256.Load(acc1 + 3 * L);
        float* x0 = x, x1 = x + k;
        float* w0 = w, w1 = w + k, w2 = w + 2 * k, w3 = w + 3 * k;
        for (int kk = kBegin; kk < kEnd; kk += L)
        {
            var v0 = Vector256.Load(w0 + kk);
            var v1 = Vector256.Load(w1 + kk);
            var v2 = Vector256.Load(w2 + kk);
            var v3 = Vector256.Load(w3 + kk);
            var u = Vector256.Load(x0 + kk);
            a00 = Vector256.FusedMultiplyAdd(u, v0, a00); a01 = Vector256.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector256.FusedMultiplyAdd(u, v2, a02); a03 = Vector256.FusedMultiplyAdd(u, v3, a03);
            u = Vector256.Load(x1 + kk);
            a10 = Vector256.FusedMultiplyAdd(u, v0, a10); a11 = Vector256.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector256.FusedMultiplyAdd(u, v2, a12); a13 = Vector256.FusedMultiplyAdd(u, v3, a13);
        }
        a00.Store(acc); a01.Store(acc + L); a02.Store(acc + 2 * L); a03.Store(acc + 3 * L);
        a10.Store(acc1); a11.Store(acc1 + L); a12.Store(acc1 + 2 * L); a13.Store(acc1 + 3 * L);
    }

    private static void Block1x1(float* x, float* w, int kBegin, int kEnd, float* acc)
    {
        if (Wide)
        {
            var a = Vector512.Load(acc);
            for (int kk = kBegin; kk < kEnd; kk += Vector512<float>.Count)
                a = Vector512.FusedMultiplyAdd(Vector512.Load(x + kk), Vector512.Load(w + kk), a);
            a.Store(acc);
        }
        else
        {
            var a = Vector256.Load(acc);
            for (int kk = kBegin; kk < kEnd; kk += Vector256<float>.Count)
                a = Vector256.FusedMultiplyAdd(Vector256.Load(x + kk), Vector256.Load(w + kk), a);
            a.Store(acc);
        }
    }

    private static void WriteTile(GroupedGemm.Plan plan, int rowBegin, int colBegin, float[] tile, int rowCount, int colCount)
    {
        int outCols = plan.OutCols;
        float* scales = plan.RowScale is null ? null : (float*)plan.RowScale.Pointer;
        for (int r = 0; r < rowCount; r++)
        {
            int row = rowBegin + r;
            float scale = scales is null ? 1f : scales[row];
            if (plan.Fused)
            {
                // Logical columns come in (gate, up) pairs; ColBegin and ColBlock are even.
                for (int c = 0; c + 1 < colCount; c += 2)
                {
                    float gate = tile[r * colCount + c], up = tile[r * colCount + c + 1];
                    Store(plan.Y, (long)row * outCols + ((colBegin + c) >> 1), gate / (1f + MathF.Exp(-gate)) * up * scale);
                }
            }
            else
            {
                for (int c = 0; c < colCount; c++)
                    Store(plan.Y, (long)row * outCols + colBegin + c, tile[r * colCount + c] * scale);
            }
        }
    }

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
