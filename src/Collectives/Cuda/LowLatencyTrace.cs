namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// The stamps an LL_TRACE build of ll_allreduce.cu leaves for the last call on a rank (block 0's thread 0,
/// %globaltimer ns; <see cref="LowLatencyKernelOptions.Trace"/>): where a call's time goes between the kernel's
/// start, its wait for the prior grid, the stores to the peers, the peer's lines arriving, the push and the end.
/// </summary>
internal sealed record LowLatencyTrace(int Rank, ulong[] Words)
{
    /// <summary>LlTraceStamp in ll_allreduce.cu, in its order.</summary>
    public enum Stamp
    {
        Entry,
        Waited,
        Stored,
        Received,
        Pushed,
        Gathered,
        End,
        PreviousEnd,
        Polls0,
        Polls1,
    }

    public ulong this[Stamp stamp] => Words[(int)stamp];

    /// <summary>Microseconds from the kernel's start to <paramref name="stamp"/> (null when the call did not record it).</summary>
    public double? SinceEntryUs(Stamp stamp) => this[stamp] == 0 || this[Stamp.Entry] == 0 ? null : ((long)this[stamp] - (long)this[Stamp.Entry]) / 1e3;

    /// <summary>One line: each time stamp in us from the entry, the gap from the previous call's end, the polls of each wait.</summary>
    public string Describe()
    {
        string Us(Stamp s) => SinceEntryUs(s) is { } us ? us.ToString("F2", System.Globalization.CultureInfo.InvariantCulture) : "-";
        string gap = this[Stamp.PreviousEnd] != 0 && this[Stamp.Entry] != 0
            ? (((long)this[Stamp.Entry] - (long)this[Stamp.PreviousEnd]) / 1e3).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)
            : "-";
        return $"rank {Rank}: previous end -> entry {gap} us; from entry: waited {Us(Stamp.Waited)}, stored {Us(Stamp.Stored)}, received {Us(Stamp.Received)}, "
            + $"pushed {Us(Stamp.Pushed)}, gathered {Us(Stamp.Gathered)}, end {Us(Stamp.End)} us; polls step 0 {this[Stamp.Polls0]}, step 1 {this[Stamp.Polls1]}";
    }

    /// <summary>The stamps from a rank's control words (<see cref="LowLatencyLayout.TraceWord"/> on).</summary>
    public static LowLatencyTrace FromControl(int rank, ReadOnlySpan<uint> control)
    {
        var words = new ulong[LowLatencyLayout.TraceStamps];
        for (int i = 0; i < words.Length; i++)
            words[i] = control[LowLatencyLayout.TraceWord + 2 * i] | ((ulong)control[LowLatencyLayout.TraceWord + 2 * i + 1] << 32);
        return new LowLatencyTrace(rank, words);
    }
}
