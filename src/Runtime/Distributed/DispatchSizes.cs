namespace MoeRuntime.Runtime.Distributed;

/// <summary>
/// The sizes of one expert-parallel dispatch, from every rank's rows per global expert (exchanged first: each rank
/// knows only its own until then). Experts sit in contiguous blocks: rank d holds experts [d*Eh, (d+1)*Eh), Eh = E / N.
/// A rank's rows sorted by global expert are therefore sorted by owning rank, so its send segments are contiguous.
/// <para>Worked example, N = 2 ranks, E = 4 experts (Eh = 2), rowsPerExpert = [[1, 0, 2, 1], [0, 3, 1, 0]]:</para>
/// <code>
/// SendRows      [[1, 3], [3, 1]]     rank 0 sends 1 row to itself (expert 0), 3 to rank 1 (experts 2, 3)
/// ReceiveCounts(0) = [1, 3]          rank 0 gets 1 row from itself, 3 from rank 1 (expert 1)
/// ReceivedRows  [4, 4]
/// LocalExpertIds(0) = [0, 1, 1, 1]   received rows in order: source 0's expert 0, source 1's expert 1 x3
/// LocalExpertIds(1) = [0, 0, 1, 0]   source 0's expert 2 x2, expert 3 x1; source 1's expert 2 x1
/// </code>
/// Combine sends everything back: rank d returns ReceiveCounts(d)[r] rows to rank r, which receives SendCounts(r)[d].
/// </summary>
public sealed class DispatchSizes
{
    private readonly long[,] _rowsPerExpert;

    private DispatchSizes(long[,] rowsPerExpert, int ranks, int expertsPerRank, long[,] sendRows)
    {
        _rowsPerExpert = rowsPerExpert;
        Ranks = ranks;
        ExpertsPerRank = expertsPerRank;
        SendRows = sendRows;
    }

    public int Ranks { get; }
    public int ExpertsPerRank { get; }

    /// <summary>[source rank, destination rank]: rows the source sends to the destination.</summary>
    public long[,] SendRows { get; }

    /// <summary>
    /// From <paramref name="rowsPerExpert"/> [ranks, experts] (rows of each rank's tokens routed to each global expert).
    /// </summary>
    public static DispatchSizes From(long[,] rowsPerExpert)
    {
        ArgumentNullException.ThrowIfNull(rowsPerExpert);
        int n = rowsPerExpert.GetLength(0), e = rowsPerExpert.GetLength(1);
        if (n < 1)
            throw new ArgumentException("at least one rank", nameof(rowsPerExpert));
        if (e < n || e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} ranks", nameof(rowsPerExpert));
        int eh = e / n;
        var send = new long[n, n];
        for (int r = 0; r < n; r++)
            for (int g = 0; g < e; g++)
            {
                if (rowsPerExpert[r, g] < 0)
                    throw new ArgumentOutOfRangeException(nameof(rowsPerExpert), $"rank {r} has {rowsPerExpert[r, g]} rows for expert {g}");
                send[r, g / eh] += rowsPerExpert[r, g];
            }
        return new DispatchSizes((long[,])rowsPerExpert.Clone(), n, eh, send);
    }

    /// <summary>Rows per global expert from a rank's expert offsets [E + 1] (what Permute writes).</summary>
    public static long[] RowsFromOffsets(ReadOnlySpan<int> expertOffsets)
    {
        if (expertOffsets.Length < 1)
            throw new ArgumentException("expert offsets hold E + 1 values", nameof(expertOffsets));
        var rows = new long[expertOffsets.Length - 1];
        for (int g = 0; g < rows.Length; g++)
        {
            rows[g] = expertOffsets[g + 1] - expertOffsets[g];
            if (rows[g] < 0)
                throw new ArgumentException($"expert offsets decrease at expert {g}: {expertOffsets[g]} then {expertOffsets[g + 1]}", nameof(expertOffsets));
        }
        return rows;
    }

    /// <summary>Stacks each rank's rows per expert (rank-major, as an AllGather returns them) into [ranks, experts].</summary>
    public static long[,] Stack(ReadOnlySpan<long> gathered, int ranks)
    {
        if (ranks < 1 || gathered.Length % ranks != 0)
            throw new ArgumentException($"{gathered.Length} counts do not split over {ranks} ranks", nameof(gathered));
        int e = gathered.Length / ranks;
        var result = new long[ranks, e];
        for (int r = 0; r < ranks; r++)
            for (int g = 0; g < e; g++)
                result[r, g] = gathered[r * e + g];
        return result;
    }

    /// <summary>Rows <paramref name="rank"/> sends to ranks 0..N-1.</summary>
    public long[] SendCounts(int rank) => Enumerable.Range(0, Ranks).Select(d => SendRows[CheckRank(rank), d]).ToArray();

    /// <summary>Rows <paramref name="rank"/> receives from ranks 0..N-1.</summary>
    public long[] ReceiveCounts(int rank) => Enumerable.Range(0, Ranks).Select(r => SendRows[r, CheckRank(rank)]).ToArray();

    /// <summary>Rows <paramref name="rank"/> runs through its experts.</summary>
    public long ReceivedRows(int rank) => ReceiveCounts(rank).Sum();

    /// <summary>Where each destination's segment starts in <paramref name="rank"/>'s send rows (exclusive prefix sum).</summary>
    public long[] SendOffsets(int rank)
    {
        var counts = SendCounts(rank);
        var offsets = new long[Ranks + 1];
        for (int d = 0; d < Ranks; d++)
            offsets[d + 1] = offsets[d] + counts[d];
        return offsets;
    }

    /// <summary>
    /// The local expert (0..Eh-1) of each row <paramref name="rank"/> receives, in received order: source ranks in
    /// order, and within a source its rows sorted by expert.
    /// </summary>
    public int[] LocalExpertIds(int rank)
    {
        CheckRank(rank);
        var ids = new int[checked((int)ReceivedRows(rank))];
        int at = 0;
        for (int r = 0; r < Ranks; r++)
            for (int local = 0; local < ExpertsPerRank; local++)
                for (long c = _rowsPerExpert[r, rank * ExpertsPerRank + local]; c > 0; c--)
                    ids[at++] = local;
        return ids;
    }

    /// <summary>Counts in elements of rows of <paramref name="hidden"/> values.</summary>
    public static long[] Elements(long[] rows, int hidden) => rows.Select(r => r * hidden).ToArray();

    /// <summary>First token of rank r's share: tokens are split as evenly as possible, in order (as in ExpertParallelMoe).</summary>
    public static int TokenStart(int tokens, int ranks, int rank) => (int)((long)tokens * rank / ranks);

    /// <summary>Tokens in rank r's share.</summary>
    public static int TokenShare(int tokens, int ranks, int rank) => TokenStart(tokens, ranks, rank + 1) - TokenStart(tokens, ranks, rank);

    private int CheckRank(int rank) => rank >= 0 && rank < Ranks ? rank : throw new ArgumentOutOfRangeException(nameof(rank), rank, $"ranks are 0..{Ranks - 1}");
}
