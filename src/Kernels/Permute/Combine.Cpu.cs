using System.Numerics.Tensors;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Permute;

/// <summary>The CPU twin of combine.cu: per token (tokens in parallel), F32 accumulation in slot order.</summary>
public static partial class Combine
{
    private static unsafe void RunCpu(MemoryBuffer expertOutput, long expertRows, MemoryBuffer<int> rowOfSlot, MemoryBuffer<float> weights,
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
}
