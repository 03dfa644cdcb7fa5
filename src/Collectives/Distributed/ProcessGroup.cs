using MoeRuntime.Accelerators;

namespace MoeRuntime.Collectives.Distributed;

/// <summary>
/// This rank's view of a group of ranks, one accelerator each, usually one process per GPU
/// (<see cref="NcclProcessGroup"/>, ncclCommInitRank); <see cref="ThreadProcessGroup"/> plays the same part with one
/// thread per rank in one process, so the per-rank layers run and are tested on CPU accelerators. Every call is
/// collective (every rank makes it, in the same order) and returns when this rank's part is done.
/// Public calls validate, then call the backend's core.
/// </summary>
public abstract class ProcessGroup : IDisposable
{
    protected ProcessGroup(int rank, int size, Accelerator accelerator)
    {
        if (size < 1)
            throw new ArgumentOutOfRangeException(nameof(size), size, "at least one rank");
        if (rank < 0 || rank >= size)
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be in [0, {size})");
        Rank = rank;
        Size = size;
        Accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));
    }

    public int Rank { get; }
    public int Size { get; }

    /// <summary>The accelerator this rank runs on; every buffer passed in must live there.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>What carries the data ("nccl", "threads").</summary>
    public abstract string Backend { get; }

    /// <summary>output = the sum over ranks of input (F32, BF16 or F16; same length everywhere; output may be input).</summary>
    public void AllReduce(MemoryBuffer input, MemoryBuffer output)
    {
        Check(input, nameof(input));
        Check(output, nameof(output));
        if (input.DType is not (DType.F32 or DType.BF16 or DType.F16) || input.DType != output.DType)
            throw new ArgumentException($"AllReduce on rank {Rank}: {input.Describe()} -> {output.Describe()}; sums take f32, bf16 or f16 of one dtype");
        if (input.Length != output.Length)
            throw new ArgumentException($"AllReduce on rank {Rank}: input {input.Describe()} and output {output.Describe()} differ in length");
        if (input.Length > 0)
            AllReduceCore(input, output);
    }

    /// <summary>output (Size x m elements) = every rank's input (m elements each), in rank order. Any dtype.</summary>
    public void AllGather(MemoryBuffer input, MemoryBuffer output)
    {
        Check(input, nameof(input));
        Check(output, nameof(output));
        if (input.DType != output.DType || output.Length != input.Length * Size)
            throw new ArgumentException($"AllGather on rank {Rank}: output {output.Describe()} must be {Size} x input {input.Describe()}");
        if (input.Length > 0)
            AllGatherCore(input, output);
    }

    /// <summary>
    /// All-to-allv, this rank's part: <paramref name="sendCounts"/>[p] elements of <paramref name="send"/> (segments for
    /// ranks 0..N-1 back to back) go to rank p; <paramref name="receiveCounts"/>[p] elements from rank p land in
    /// <paramref name="receive"/>, segments of ranks 0..N-1 back to back. Buffers may be longer than needed.
    /// Every rank's receive count from p must equal p's send count to it (exchange the counts first).
    /// </summary>
    public void AllToAllV(MemoryBuffer send, IReadOnlyList<long> sendCounts, MemoryBuffer receive, IReadOnlyList<long> receiveCounts)
    {
        Check(send, nameof(send));
        Check(receive, nameof(receive));
        ArgumentNullException.ThrowIfNull(sendCounts);
        ArgumentNullException.ThrowIfNull(receiveCounts);
        if (send.DType != receive.DType)
            throw new ArgumentException($"AllToAllV on rank {Rank}: {send.Describe()} and {receive.Describe()} differ in dtype");
        if (sendCounts.Count != Size || receiveCounts.Count != Size)
            throw new ArgumentException($"AllToAllV on rank {Rank}: one send and one receive count per rank ({Size}); got {sendCounts.Count} and {receiveCounts.Count}");
        if (sendCounts.Any(c => c < 0) || receiveCounts.Any(c => c < 0))
            throw new ArgumentOutOfRangeException(nameof(sendCounts), $"AllToAllV on rank {Rank}: negative count in [{string.Join(", ", sendCounts)}] / [{string.Join(", ", receiveCounts)}]");
        if (sendCounts.Sum() > send.Length)
            throw new ArgumentException($"AllToAllV on rank {Rank}: sends {sendCounts.Sum()} elements; {send.Describe()} holds fewer");
        if (receiveCounts.Sum() > receive.Length)
            throw new ArgumentException($"AllToAllV on rank {Rank}: receives {receiveCounts.Sum()} elements; {receive.Describe()} holds fewer");
        AllToAllVCore(send, sendCounts, receive, receiveCounts);
    }

    protected abstract void AllReduceCore(MemoryBuffer input, MemoryBuffer output);
    protected abstract void AllGatherCore(MemoryBuffer input, MemoryBuffer output);
    protected abstract void AllToAllVCore(MemoryBuffer send, IReadOnlyList<long> sendCounts, MemoryBuffer receive, IReadOnlyList<long> receiveCounts);

    private void Check(MemoryBuffer buffer, string name)
    {
        ArgumentNullException.ThrowIfNull(buffer, name);
        buffer.ThrowIfDisposed();
        if (!ReferenceEquals(buffer.Accelerator, Accelerator))
            throw new ArgumentException($"rank {Rank} runs on {Accelerator.Name}; {name} {buffer.Describe()} lives elsewhere", name);
    }

    public abstract void Dispose();
}
