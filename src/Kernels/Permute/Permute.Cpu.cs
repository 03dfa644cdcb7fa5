using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels.Permute;

/// <summary>The CPU twin of permute.cu: a counting sort over slots in order, then a parallel row copy.</summary>
public static partial class Permute
{
    private static void RunCpu(ReadOnlySpan<int> ids, int topK, int experts, int blockSize, int capacity,
        Span<int> expertCounts, Span<int> expertOffsets, Span<int> rowOfSlot, Span<int> tokenOfRow)
    {
        expertCounts[..experts].Clear();
        foreach (int id in ids)
            if (id >= 0 && id < experts)
                expertCounts[id]++;

        int row = 0;
        for (int e = 0; e < experts; e++)
        {
            expertOffsets[e] = row;
            row += (expertCounts[e] + blockSize - 1) / blockSize * blockSize;
        }
        expertOffsets[experts] = row;

        tokenOfRow[..capacity].Fill(-1);
        var cursor = expertOffsets[..experts].ToArray();
        for (int slot = 0; slot < ids.Length; slot++)
        {
            int id = ids[slot];
            if (id < 0 || id >= experts)
            {
                rowOfSlot[slot] = -1;
                continue;
            }
            int r = cursor[id]++;
            rowOfSlot[slot] = r;
            tokenOfRow[r] = slot / topK;
        }
    }

    private static unsafe void GatherCpu(MemoryBuffer hidden, int hiddenSize, MemoryBuffer<int> tokenOfRow, int rowsInUse, MemoryBuffer gathered)
    {
        long rowBytes = (long)hiddenSize * hidden.ElementSize;
        nint source = hidden.Pointer, destination = gathered.Pointer, tokens = tokenOfRow.Pointer;
        Parallel.For(0, rowsInUse, row =>
        {
            int token = ((int*)tokens)[row];
            byte* to = (byte*)destination + row * rowBytes;
            if (token < 0)
                new Span<byte>(to, (int)rowBytes).Clear();
            else
                Buffer.MemoryCopy((byte*)source + token * rowBytes, to, rowBytes, rowBytes);
        });
    }
}
