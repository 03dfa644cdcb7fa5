using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.GroupedGemm;

/// <summary>
/// The op's CPU path: blocked, vectorised (Vector256 FMA), parallel over (expert, row block, column block) work
/// items. Each item converts its block of X rows and W rows to F32 once, then walks K in chunks that keep
/// the W block in L1, with a 2x4 register block of dot products (6 loads per 8 FMAs) whose vector
/// accumulators live across K chunks; horizontal sums only at the end. Tested against <see cref="GroupedGemmCpu"/>.
/// Fused SiLU-and-mul interleaves gate and up rows (logical row 2j = gate j, 2j+1 = up j), as the CUDA kernel does.
/// </summary>
internal static unsafe class GroupedGemmCpuFast
{
    private const int RowBlock = 64;
    private const int ColBlock = 16;   // logical W rows per item: 16 rows x KChunk floats = 16 KB of L1
    private const int KChunk = 256;

    private readonly record struct WorkItem(int Expert, int RowBegin, int RowEnd, int ColBegin, int ColEnd);

    private sealed class Scratch(int k)
    {
        public readonly float[] X = new float[RowBlock * k];
        public readonly float[] W = new float[ColBlock * k];
        public readonly Vector256<float>[] Acc = new Vector256<float>[RowBlock * ColBlock];
        public readonly float[] Tile = new float[RowBlock * ColBlock];
    }

    public static void Run(GroupedGemm.Plan plan)
    {
        var offsets = plan.ExpertOffsets.AsSpan();
        var items = new List<WorkItem>();
        for (int e = 0; e < plan.Experts; e++)
            for (int r = offsets[e]; r < offsets[e + 1]; r += RowBlock)
                for (int c = 0; c < plan.N; c += ColBlock)
                    items.Add(new WorkItem(e, r, Math.Min(r + RowBlock, offsets[e + 1]), c, Math.Min(c + ColBlock, plan.N)));
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
        int colCount = item.ColEnd - item.ColBegin;
        int outCols = plan.OutCols;
        for (int r = 0; r < rowCount; r++)
            ConvertRow(plan.X, (long)(item.RowBegin + r) * k, k, scratch.X.AsSpan(r * k, k));
        for (int c = 0; c < colCount; c++)
        {
            int logical = item.ColBegin + c;
            int wRow = !plan.Fused ? logical : (logical & 1) == 0 ? logical >> 1 : outCols + (logical >> 1);
            ConvertRow(plan.W, ((long)item.Expert * plan.N + wRow) * k, k, scratch.W.AsSpan(c * k, k));
        }

        var acc = scratch.Acc;
        Array.Clear(acc, 0, rowCount * colCount);
        int kVector = k - k % Vector256<float>.Count;
        fixed (float* xs = scratch.X, ws = scratch.W)
        fixed (Vector256<float>* accs = acc)
        {
            for (int kBegin = 0; kBegin < kVector; kBegin += KChunk)
            {
                int kEnd = Math.Min(kBegin + KChunk, kVector);
                int r = 0;
                for (; r + 2 <= rowCount; r += 2)
                {
                    int c = 0;
                    for (; c + 4 <= colCount; c += 4)
                        Block2x4(xs + r * k, ws + c * k, k, kBegin, kEnd, accs + r * colCount + c, colCount);
                    for (; c < colCount; c++)
                    {
                        Block1x1(xs + r * k, ws + c * k, kBegin, kEnd, accs + r * colCount + c);
                        Block1x1(xs + (r + 1) * k, ws + c * k, kBegin, kEnd, accs + (r + 1) * colCount + c);
                    }
                }
                for (; r < rowCount; r++)
                    for (int c = 0; c < colCount; c++)
                        Block1x1(xs + r * k, ws + c * k, kBegin, kEnd, accs + r * colCount + c);
            }
            var tile = scratch.Tile;
            for (int r = 0; r < rowCount; r++)
                for (int c = 0; c < colCount; c++)
                {
                    float sum = Vector256.Sum(accs[r * colCount + c]);
                    for (int kk = kVector; kk < k; kk++)
                        sum += xs[r * k + kk] * ws[c * k + kk];
                    tile[r * colCount + c] = sum;
                }
        }
        WriteTile(plan, item, scratch.Tile, rowCount, colCount);
    }

    /// <summary>acc[i, j] += x[i, kBegin..kEnd) . w[j, kBegin..kEnd) for 2 rows of x and 4 of w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Block2x4(float* x, float* w, int k, int kBegin, int kEnd, Vector256<float>* acc, int accStride)
    {
        Vector256<float> a00 = acc[0], a01 = acc[1], a02 = acc[2], a03 = acc[3];
        Vector256<float> a10 = acc[accStride], a11 = acc[accStride + 1], a12 = acc[accStride + 2], a13 = acc[accStride + 3];
        float* x0 = x, x1 = x + k;
        float* w0 = w, w1 = w + k, w2 = w + 2 * k, w3 = w + 3 * k;
        for (int kk = kBegin; kk < kEnd; kk += Vector256<float>.Count)
        {
            var v0 = Vector256.Load(w0 + kk);
            var v1 = Vector256.Load(w1 + kk);
            var v2 = Vector256.Load(w2 + kk);
            var v3 = Vector256.Load(w3 + kk);
            var u = Vector256.Load(x0 + kk);
            a00 = Vector256.FusedMultiplyAdd(u, v0, a00);
            a01 = Vector256.FusedMultiplyAdd(u, v1, a01);
            a02 = Vector256.FusedMultiplyAdd(u, v2, a02);
            a03 = Vector256.FusedMultiplyAdd(u, v3, a03);
            u = Vector256.Load(x1 + kk);
            a10 = Vector256.FusedMultiplyAdd(u, v0, a10);
            a11 = Vector256.FusedMultiplyAdd(u, v1, a11);
            a12 = Vector256.FusedMultiplyAdd(u, v2, a12);
            a13 = Vector256.FusedMultiplyAdd(u, v3, a13);
        }
        acc[0] = a00; acc[1] = a01; acc[2] = a02; acc[3] = a03;
        acc[accStride] = a10; acc[accStride + 1] = a11; acc[accStride + 2] = a12; acc[accStride + 3] = a13;
    }

    private static void Block1x1(float* x, float* w, int kBegin, int kEnd, Vector256<float>* acc)
    {
        var a = *acc;
        for (int kk = kBegin; kk < kEnd; kk += Vector256<float>.Count)
            a = Vector256.FusedMultiplyAdd(Vector256.Load(x + kk), Vector256.Load(w + kk), a);
        *acc = a;
    }

    private static void WriteTile(GroupedGemm.Plan plan, WorkItem item, float[] tile, int rowCount, int colCount)
    {
        int outCols = plan.OutCols;
        float* scales = plan.RowScale is null ? null : (float*)plan.RowScale.Pointer;
        for (int r = 0; r < rowCount; r++)
        {
            int row = item.RowBegin + r;
            float scale = scales is null ? 1f : scales[row];
            if (plan.Fused)
            {
                // Logical columns come in (gate, up) pairs; ColBegin and ColBlock are even.
                for (int c = 0; c + 1 < colCount; c += 2)
                {
                    float gate = tile[r * colCount + c], up = tile[r * colCount + c + 1];
                    Store(plan.Y, (long)row * outCols + ((item.ColBegin + c) >> 1), gate / (1f + MathF.Exp(-gate)) * up * scale);
                }
            }
            else
            {
                for (int c = 0; c < colCount; c++)
                    Store(plan.Y, (long)row * outCols + item.ColBegin + c, tile[r * colCount + c] * scale);
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
                var bits = new ReadOnlySpan<ushort>((ushort*)source.Pointer + offset, count);
                var words = MemoryMarshal.Cast<float, uint>(destination);
                for (int i = 0; i < count; i++)
                    words[i] = (uint)bits[i] << 16;
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
