using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Permute;

/// <summary>
/// The CPU twins of combine.cu: per token, F32 accumulation in slot order. <see cref="RunCpuPlain"/> is the plain loop;
/// <see cref="RunCpuFused{TElements}"/> gives its results bit for bit at several times the speed, and runs BF16 and F32
/// wherever 512-bit vectors are native. F16 keeps the plain loop (.NET exposes no f16 conversion instructions, and the
/// library converts whole spans), as do machines without 512-bit vectors.
/// </summary>
public static partial class Combine
{
    private static void RunCpu(MemoryBuffer expertOutput, long expertRows, MemoryBuffer<int> rowOfSlot, MemoryBuffer<float> weights,
        int tokens, int topK, int hiddenSize, MemoryBuffer output, MemoryBuffer? residual)
    {
        if (tokens == 0)
            return;
        if (!Vector512.IsHardwareAccelerated || expertOutput.DType == DType.F16)
            RunCpuPlain(expertOutput, expertRows, rowOfSlot, weights, tokens, topK, hiddenSize, output, residual);
        else if (expertOutput.DType == DType.BF16)
            RunCpuFused<Bf16Elements>(expertOutput, expertRows, rowOfSlot, weights, tokens, topK, hiddenSize, output, residual);
        else
            RunCpuFused<F32Elements>(expertOutput, expertRows, rowOfSlot, weights, tokens, topK, hiddenSize, output, residual);
    }

    /// <summary>The plain twin: each row read into an F32 scratch row, then acc += w * row over the whole row.</summary>
    internal static unsafe void RunCpuPlain(MemoryBuffer expertOutput, long expertRows, MemoryBuffer<int> rowOfSlot, MemoryBuffer<float> weights,
        int tokens, int topK, int hiddenSize, MemoryBuffer output, MemoryBuffer? residual)
    {
        nint rowsPointer = rowOfSlot.Pointer, weightsPointer = weights.Pointer;
        Parallel.For(0, tokens, () => (new float[hiddenSize], new float[hiddenSize]), (token, _, scratch) =>
        {
            var (acc, row) = scratch;
            if (residual is not null)
                HostRows.Read(residual, (long)token * hiddenSize, acc);
            else
                Array.Clear(acc);
            for (int j = 0; j < topK; j++)
            {
                int r = ((int*)rowsPointer)[(long)token * topK + j];
                if (r < 0 || r >= expertRows)
                    continue;
                HostRows.Read(expertOutput, (long)r * hiddenSize, row);
                TensorPrimitives.MultiplyAdd(row, ((float*)weightsPointer)[(long)token * topK + j], acc, acc); // acc += w * row
            }
            HostRows.Write(acc, output, (long)token * hiddenSize);
            return scratch;
        }, _ => { });
    }

    /// <summary>
    /// The fused twin: ranges of tokens in parallel; per token, 64 columns at a time, the sums stay in registers while
    /// every kept slot's row is converted and added in slot order, then are rounded and stored once. The plain twin
    /// makes four passes a slot over F32 scratch rows (convert; read row and sums, write sums); here each input element
    /// is loaded once and converted in the register it is loaded into.
    /// </summary>
    private static unsafe void RunCpuFused<TElements>(MemoryBuffer expertOutput, long expertRows, MemoryBuffer<int> rowOfSlot, MemoryBuffer<float> weights,
        int tokens, int topK, int hiddenSize, MemoryBuffer output, MemoryBuffer? residual) where TElements : IRowElements
    {
        nint experts = expertOutput.Pointer, rowsPointer = rowOfSlot.Pointer, weightsPointer = weights.Pointer;
        nint outputs = output.Pointer, residuals = residual?.Pointer ?? 0;
        long rowBytes = (long)hiddenSize * TElements.Size;
        Parallel.ForEach(HostRows.Ranges(tokens), range =>
        {
            var keptRows = new nint[topK]; // the token's slots that combine keeps, in slot order
            var keptWeights = new float[topK];
            for (int token = range.Item1; token < range.Item2; token++)
            {
                int kept = 0;
                for (int j = 0; j < topK; j++)
                {
                    long slot = (long)token * topK + j;
                    int r = ((int*)rowsPointer)[slot];
                    if (r < 0 || r >= expertRows)
                        continue;
                    keptRows[kept] = experts + (nint)(r * rowBytes);
                    keptWeights[kept++] = ((float*)weightsPointer)[slot];
                }
                byte* residualRow = residuals == 0 ? null : (byte*)(residuals + token * rowBytes);
                CombineRow<TElements>(keptRows.AsSpan(0, kept), keptWeights, residualRow, (byte*)(outputs + token * rowBytes), hiddenSize);
            }
        });
    }

    /// <summary>
    /// One token: output[hiddenSize] = residual[hiddenSize] (or +0) + sum over its kept slots j of rows[j][:] * weights[j],
    /// each step (row * w) + acc rounded twice as TensorPrimitives.MultiplyAdd does: written out, never contracted to an FMA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void CombineRow<TElements>(ReadOnlySpan<nint> rows, ReadOnlySpan<float> weights, byte* residual, byte* output, int hiddenSize)
        where TElements : IRowElements
    {
        const int L = 16; // Vector512<float>.Count
        int c = 0;
        for (; c + 4 * L <= hiddenSize; c += 4 * L)
        {
            // Four independent sums: a slot's four loads overlap instead of waiting on one add chain.
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            if (residual != null)
            {
                a0 = TElements.Load(residual, c);
                a1 = TElements.Load(residual, c + L);
                a2 = TElements.Load(residual, c + 2 * L);
                a3 = TElements.Load(residual, c + 3 * L);
            }
            for (int j = 0; j < rows.Length; j++)
            {
                byte* row = (byte*)rows[j];
                var w = Vector512.Create(weights[j]);
                a0 = TElements.Load(row, c) * w + a0;
                a1 = TElements.Load(row, c + L) * w + a1;
                a2 = TElements.Load(row, c + 2 * L) * w + a2;
                a3 = TElements.Load(row, c + 3 * L) * w + a3;
            }
            TElements.Store(a0, output, c);
            TElements.Store(a1, output, c + L);
            TElements.Store(a2, output, c + 2 * L);
            TElements.Store(a3, output, c + 3 * L);
        }
        for (; c + L <= hiddenSize; c += L)
        {
            var acc = residual != null ? TElements.Load(residual, c) : default;
            for (int j = 0; j < rows.Length; j++)
                acc = TElements.Load((byte*)rows[j], c) * Vector512.Create(weights[j]) + acc;
            TElements.Store(acc, output, c);
        }
        for (; c < hiddenSize; c++)
        {
            float acc = residual != null ? TElements.LoadOne(residual, c) : 0f;
            for (int j = 0; j < rows.Length; j++)
                acc = TElements.LoadOne((byte*)rows[j], c) * weights[j] + acc;
            TElements.StoreOne(acc, output, c);
        }
    }
}
