using System.Runtime.InteropServices;

namespace MoeRuntime.Collectives.Schedule;

/// <summary>What one op of a rank's schedule does to every element of its range.</summary>
internal enum OpKind
{
    /// <summary>dst = src0 (converted through F32, exact for F32/BF16/F16 values).</summary>
    Copy = 1,
    /// <summary>dst = src0 + src1, in F32 (a ring step: the neighbour's partial plus this rank's data).</summary>
    Add = 2,
    /// <summary>dst = src0(rank 0) + src0(rank 1) + ... + src0(rank N-1), in F32, always in this order.</summary>
    ReduceAll = 3,
    /// <summary>Every rank waits until every rank has finished the ops before this one.</summary>
    Barrier = 4,
    /// <summary>dst(rank q) = the <see cref="ReduceAll"/> sum, for every rank q: a reduce-scatter that writes its chunk straight into every rank's output.</summary>
    ReduceAllPush = 5,
}

/// <summary>
/// The buffers an op names. Input and Output are the call's buffers: this rank's own for rank -1 (or its own rank),
/// rank q's for another rank q (read or written over peer access; only after the call's first barrier, once every
/// rank has arrived with its buffers). Staging and Partial are registered per rank and readable by every peer.
/// </summary>
internal static class OpBuffer
{
    public const int Input = 0;
    public const int Output = 1;
    /// <summary>Registered scratch of the collective's dtype: what peers read (inputs are copied here first, so in place is safe).</summary>
    public const int Staging = 2;
    /// <summary>Registered F32 scratch: the ring's running sums.</summary>
    public const int Partial = 3;
    public const int KindMask = 15;
    /// <summary>Flag: this buffer holds only the op's chunk, starting at element 0 (ReduceScatter's output, AllGather's input).</summary>
    public const int BaseZero = 16;

    public static int KindOf(int code) => code & KindMask;

    public static string Name(int code) => KindOf(code) switch
    {
        Input => "input",
        Output => "output",
        Staging => "staging",
        Partial => "partial",
        _ => $"buffer {code}",
    };
}

/// <summary>
/// One op of one rank's step schedule; the same bytes run on the CPU backend and in collective_ops.cu
/// (64 bytes, layout mirrored by <c>struct CollectiveOp</c> there).
/// <para>Its range: for <see cref="Chunk"/> &gt;= 0, chunk c of the collective's element count split into N
/// near-equal chunks (<see cref="Chunks"/>), at that offset in each buffer (0 for a buffer flagged
/// <see cref="OpBuffer.BaseZero"/>); for <see cref="Chunk"/> = -1, <see cref="Length"/> elements from
/// <see cref="SourceOffset"/> in the sources and <see cref="DestinationOffset"/> in the destination.</para>
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct CollectiveOp
{
    public int Kind;
    public int Chunk;
    public int Source0;
    public int Source0Rank;
    public int Source1;
    public int Source1Rank;
    public int Destination;
    /// <summary>The schedule step this op belongs to (what a timeout reports).</summary>
    public int Step;
    public long SourceOffset;
    public long DestinationOffset;
    public long Length;
    public long Reserved;

    public const int ExplicitRange = -1;

    public static CollectiveOp Barrier(int step) => new() { Kind = (int)OpKind.Barrier, Step = step };

    public static CollectiveOp Copy(int step, int chunk, int source, int sourceRank, int destination) => new()
    {
        Kind = (int)OpKind.Copy, Step = step, Chunk = chunk,
        Source0 = source, Source0Rank = sourceRank, Source1 = -1, Source1Rank = -1, Destination = destination,
    };

    public static CollectiveOp CopyRange(int step, int source, int sourceRank, long sourceOffset, int destination, long destinationOffset, long length) => new()
    {
        Kind = (int)OpKind.Copy, Step = step, Chunk = ExplicitRange,
        Source0 = source, Source0Rank = sourceRank, Source1 = -1, Source1Rank = -1, Destination = destination,
        SourceOffset = sourceOffset, DestinationOffset = destinationOffset, Length = length,
    };

    public static CollectiveOp Add(int step, int chunk, int source0, int source0Rank, int source1, int source1Rank, int destination) => new()
    {
        Kind = (int)OpKind.Add, Step = step, Chunk = chunk,
        Source0 = source0, Source0Rank = source0Rank, Source1 = source1, Source1Rank = source1Rank, Destination = destination,
    };

    public static CollectiveOp ReduceAll(int step, int chunk, int source, int destination) => new()
    {
        Kind = (int)OpKind.ReduceAll, Step = step, Chunk = chunk,
        Source0 = source, Source0Rank = -1, Source1 = -1, Source1Rank = -1, Destination = destination,
    };

    public static CollectiveOp ReduceAllPush(int step, int chunk, int source, int destination) => new()
    {
        Kind = (int)OpKind.ReduceAllPush, Step = step, Chunk = chunk,
        Source0 = source, Source0Rank = -1, Source1 = -1, Source1Rank = -1, Destination = destination,
    };

    /// <summary>The op's element range: where it starts in source 0, source 1 and the destination, and how long it is.</summary>
    public readonly (long Source0, long Source1, long Destination, long Length) Range(long count, int ranks, int grain)
    {
        if (Chunk == ExplicitRange)
            return (SourceOffset, SourceOffset, DestinationOffset, Length);
        long start = Chunks.Start(count, ranks, Chunk, grain);
        long length = Chunks.Start(count, ranks, Chunk + 1, grain) - start;
        long At(int code) => (code & OpBuffer.BaseZero) != 0 ? 0 : start;
        return (At(Source0), At(Source1), At(Destination), length);
    }

    public override readonly string ToString() => (OpKind)Kind switch
    {
        OpKind.Barrier => $"step {Step}: barrier",
        OpKind.ReduceAll => $"step {Step}: {OpBuffer.Name(Destination)}[chunk {Chunk}] = sum over ranks of {OpBuffer.Name(Source0)}",
        OpKind.ReduceAllPush => $"step {Step}: every rank's {OpBuffer.Name(Destination)}[chunk {Chunk}] = sum over ranks of {OpBuffer.Name(Source0)}",
        OpKind.Add => $"step {Step}: {OpBuffer.Name(Destination)}[chunk {Chunk}] = {OpBuffer.Name(Source0)}@{Source0Rank} + {OpBuffer.Name(Source1)}@{Source1Rank}",
        _ => $"step {Step}: {OpBuffer.Name(Destination)}[{(Chunk >= 0 ? $"chunk {Chunk}" : $"{DestinationOffset}+{Length}")}] = {OpBuffer.Name(Source0)}@{Source0Rank}",
    };
}

/// <summary>
/// Chunk c of <c>count</c> elements split into N near-equal chunks whose starts are multiples of <c>grain</c>:
/// start(c) = floor(count*c/N / grain) * grain for c &lt; N, start(N) = count. Grain 1 is the plain split
/// [count*c/N, count*(c+1)/N) (ReduceScatter's and AllGather's chunks); AllReduce, whose chunks are internal,
/// uses <see cref="AllReduceGrain"/> so that every chunk starts 16-byte aligned for the kernel's vector loads.
/// Example: count 7, N 4, grain 8 -> chunks 0..2 empty, chunk 3 = [0, 7).
/// </summary>
internal static class Chunks
{
    public const int AllReduceGrain = 8;

    public static long Start(long count, int ranks, int chunk, int grain = 1) =>
        chunk >= ranks ? count : count * chunk / ranks / grain * grain;

    public static long Length(long count, int ranks, int chunk, int grain = 1) =>
        Start(count, ranks, chunk + 1, grain) - Start(count, ranks, chunk, grain);
}
