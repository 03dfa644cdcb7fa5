using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// The low-latency AllReduce transport of <see cref="CudaCollectiveBackend"/> (ll_allreduce.cu): registered once per
/// communicator, per rank, a zeroed receive region (<see cref="LowLatencyLayout.ReceiveBytes"/>), four control words
/// (epoch, finished blocks, failed step) and the table of every rank's receive region. A call launches one kernel
/// per rank and passes nothing that changes from call to call except the call's own buffers: the epoch lives on
/// the device, so captured calls replay correctly.
/// </summary>
internal sealed class LowLatencyTransport : IDisposable
{
    private readonly CudaAccelerator[] _ranks;
    private readonly MemoryBuffer<byte>[] _receive;
    private readonly MemoryBuffer<uint>[] _control;
    private readonly MemoryBuffer<long>[] _peers;
    // The 128-byte-line build's own receive regions and table (allocated only when that build is on): no call of one build
    // reads lines the other wrote.
    private readonly MemoryBuffer<byte>[]? _receive128;
    private readonly MemoryBuffer<long>[]? _peers128;
    private readonly List<IDisposable> _owned = new();
    private readonly Dictionary<(int Rank, string Entry, LowLatencyBuild Build), CudaKernel> _kernels = new();
    private readonly Dictionary<(string Entry, LowLatencyBuild Build), int> _residentBlocks = new();
    private readonly Dictionary<(DType DType, bool TwoShot), string> _entries = new();
    private readonly LowLatencyKernelOptions _options;
    private KernelSource? _source;
    private (bool TwoShot, long Count, int ElementSize)? _lastCall;

    public LowLatencyTransport(CudaAccelerator[] ranks, long capacityBytes, long twoShotMaxBytes, LowLatencyKernelOptions options)
    {
        _ranks = ranks;
        int n = ranks.Length;
        TwoShotMaxBytes = twoShotMaxBytes;
        _options = options;
        SlotUnits = LowLatencyLayout.SlotUnits(n, capacityBytes, twoShotMaxBytes);
        _receive = new MemoryBuffer<byte>[n];
        _control = new MemoryBuffer<uint>[n];
        _peers = new MemoryBuffer<long>[n];
        if (options.Line128MinBytes > 0)
        {
            _receive128 = new MemoryBuffer<byte>[n];
            _peers128 = new MemoryBuffer<long>[n];
        }
        try
        {
            for (int r = 0; r < n; r++)
            {
                _receive[r] = Own(ranks[r].Allocate<byte>(LowLatencyLayout.ReceiveBytes(n, capacityBytes, twoShotMaxBytes)));
                _receive[r].Clear();   // flag 0 is never an epoch: nothing here looks fresh
                _control[r] = Own(ranks[r].Allocate<uint>(LowLatencyLayout.ControlWords));
                _control[r].CopyFrom(LowLatencyLayout.InitialControl());
                _peers[r] = Own(ranks[r].Allocate<long>(LowLatencyLayout.MaxRanks));
                if (_receive128 is not null && _peers128 is not null)
                {
                    _receive128[r] = Own(ranks[r].Allocate<byte>(LowLatencyLayout.ReceiveBytes(n, capacityBytes, twoShotMaxBytes)));
                    _receive128[r].Clear();
                    _peers128[r] = Own(ranks[r].Allocate<long>(LowLatencyLayout.MaxRanks));
                }
            }
            PublishTable(_receive, _peers);
            if (_receive128 is not null && _peers128 is not null)
                PublishTable(_receive128, _peers128);
            for (int r = 0; r < n; r++)
                ranks[r].Synchronize();   // zeroed regions in place before any rank's stream launches a call
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Every rank's copy of the table of every rank's region.</summary>
    private static void PublishTable(MemoryBuffer<byte>[] regions, MemoryBuffer<long>[] tables)
    {
        var table = new long[LowLatencyLayout.MaxRanks];
        for (int r = 0; r < regions.Length; r++)
            table[r] = (long)regions[r].Pointer;
        foreach (var t in tables)
            t.CopyFrom(table);
    }

    /// <summary>Units of one sender's slot in every rank's receive region.</summary>
    public long SlotUnits { get; }

    /// <summary>Lines of one sender's slot in the 128-byte-line regions (same bytes as the 8-byte-line ones).</summary>
    private long SlotLines128 => LowLatencyLayout.SlotLines128(SlotUnits);

    /// <summary>The kernel's A/B switches this transport was built with.</summary>
    public LowLatencyKernelOptions Options => _options;

    /// <summary>The largest two-shot call this transport takes (the communicator's threshold; the slots are sized for it).</summary>
    public long TwoShotMaxBytes { get; }

    private T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    /// <summary>Launches every rank's kernel (the rank that never arrives, a test hook, launches nothing); empty calls launch nothing.</summary>
    public void Launch(CollectiveCall call, bool twoShot, MappedErrorRecord[] errors, long timeoutNs)
    {
        if (call.Count == 0)
            return;
        if (!_entries.TryGetValue((call.DType, twoShot), out var entry))
        {
            entry = _options.EntryFor(call.DType switch
            {
                DType.F32 => "ll_allreduce_f32",
                DType.BF16 => "ll_allreduce_bf16",
                DType.F16 => "ll_allreduce_f16",
                _ => throw new NotSupportedException($"{call.Kind} of {call.DType}"),
            }, twoShot);
            _entries[(call.DType, twoShot)] = entry;   // named once: no string built on a call's path
        }
        int n = _ranks.Length, size = DTypes.SizeOf(call.DType);
        long bytes = call.Count * size;
        var build = _options.BuildFor(bytes, twoShot);
        if (build.Lines128 && (_peers128 is null || !LowLatencyLayout.FitsLines128(twoShot, n, call.Count, size, SlotLines128)))
            build = new(_options.UnrollFor(bytes, twoShot), false);
        _lastCall = (twoShot, call.Count, size);
        LastBuild = build;
        int maxBlocks = twoShot ? LowLatencyLayout.MaxBlocks : _options.OneShotMaxBlocks;
        var grid = build.Lines128
            ? LowLatencyLayout.Line128Grid(twoShot, n, call.Count, size, ResidentBlocks(entry, build), maxBlocks, _options.BlockThreads)
            : LowLatencyLayout.Grid(twoShot, n, call.Count, size, ResidentBlocks(entry, build), maxBlocks,
                twoShot ? _options.TwoShotUnitsPerThread : _options.OneShotUnitsPerThread, _options.BlockThreads);
        LastGrid = grid;
        var peers = build.Lines128 ? _peers128! : _peers;
        long slot = build.Lines128 ? SlotLines128 : SlotUnits;
        for (int r = 0; r < n; r++)
        {
            if (call.RankThatNeverArrives == r)
                continue;
            KernelFor(r, entry, build).Launch((CudaStream)call.Streams[r], new Dim3((uint)grid.Blocks), new Dim3((uint)grid.Threads), 0,
                call.Inputs[r].Pointer, call.Outputs[r].Pointer, call.Count, call.Grain, r, n, peers[r], slot, _control[r],
                errors[r].DevicePointer, timeoutNs, (int)call.Kind, twoShot ? 1 : 0);
        }
    }

    /// <summary>
    /// After a timed-out call whose kernels have ended: every rank's report of what its first timed-out wait saw,
    /// and every rank's published epoch (ranks out of step would show here); null when no LL wait timed out.
    /// </summary>
    public string? DescribeFailure()
    {
        int n = _ranks.Length;
        var reports = new List<string>();
        var epochs = new uint[n];
        for (int r = 0; r < n; r++)
        {
            var words = _control[r].ToArray();
            epochs[r] = words[LowLatencyLayout.EpochWord];
            (uint, uint)? now = null;
            bool lines128 = LastBuild.Lines128;
            if (words[LowLatencyLayout.ReportWord] == 1 && !lines128)   // a 128-byte-line report already holds the line's flag
            {
                var report = words.AsSpan(LowLatencyLayout.ReportWord, LowLatencyLayout.ReportWords);
                long offset = LowLatencyLayout.UnitOffsetBytes(n, SlotUnits, (int)report[6], (int)report[4], report[5]);
                var line = new byte[LowLatencyLayout.UnitLineBytes];
                if (offset >= 0 && offset + line.Length <= _receive[r].Length)
                {
                    _receive[r].CopyTo(line, offset);
                    now = (BitConverter.ToUInt32(line, 4), BitConverter.ToUInt32(line, 12));
                }
            }
            if (LowLatencyLayout.DescribeReport(r, words, now) is { } text)
            {
                reports.Add(text);
                // The report's parity and expected flag (words 6 and 7) name the call's lines.
                if (!lines128)
                    reports.AddRange(DescribeFilledLines(r, (int)words[LowLatencyLayout.ReportWord + 6], words[LowLatencyLayout.ReportWord + 7]));
            }
        }
        return reports.Count == 0 ? null : $"LL: {string.Join("; ", reports)}; published epochs by rank: {string.Join(", ", epochs)}";
    }

    /// <summary>
    /// After a timed-out call: for every sender's slot of <paramref name="rank"/>, how many of the lines the call
    /// should have filled carry its flag, were never written, or hold another epoch (whether lines went missing one
    /// by one or a whole range never came).
    /// </summary>
    private IEnumerable<string> DescribeFilledLines(int rank, int parity, uint flag)
    {
        if (_lastCall is not { } call)
            yield break;
        int n = _ranks.Length;
        for (int sender = 0; sender < n; sender++)
        {
            if (sender == rank)
                continue;
            foreach (var (step, first, end) in LowLatencyLayout.FilledRanges(call.TwoShot, n, rank, sender, call.Count, call.ElementSize, SlotUnits))
            {
                if (end <= first)
                    continue;
                var lines = new uint[(end - first) * LowLatencyLayout.UnitLineBytes / sizeof(uint)];
                _receive[rank].CopyTo(MemoryMarshal.AsBytes(lines.AsSpan()), LowLatencyLayout.UnitOffsetBytes(n, SlotUnits, parity, sender, first));
                // Each 16-byte unit is two {payload, flag} lines: words 1 and 3 are its flags.
                var flags = new uint[(end - first) * 2];
                for (long u = 0; u < end - first; u++)
                {
                    flags[2 * u] = lines[4 * u + 1];
                    flags[2 * u + 1] = lines[4 * u + 3];
                }
                yield return LowLatencyLayout.DescribeRange(rank, sender, step, first, flags, flag);
            }
        }
    }

    /// <summary>The stamps the last call left on every rank (an LL_TRACE build's; all zero otherwise). Waits for the ranks' work first.</summary>
    public IReadOnlyList<LowLatencyTrace> ReadTrace()
    {
        var traces = new List<LowLatencyTrace>();
        for (int r = 0; r < _ranks.Length; r++)
        {
            _ranks[r].Synchronize();
            traces.Add(LowLatencyTrace.FromControl(r, _control[r].ToArray()));
        }
        return traces;
    }

    /// <summary>The build the last call ran (<see cref="LowLatencyKernelOptions.BuildFor"/>).</summary>
    public LowLatencyBuild LastBuild { get; private set; }

    /// <summary>The last call's launch shape (blocks per rank, threads a block).</summary>
    public LowLatencyGrid LastGrid { get; private set; }

    /// <summary>The kernel of <paramref name="entry"/> in <paramref name="build"/> (the options' switches otherwise), loaded once per rank.</summary>
    private CudaKernel KernelFor(int rank, string entry, LowLatencyBuild build)
    {
        if (!_kernels.TryGetValue((rank, entry, build), out var kernel))
        {
            _source ??= KernelSource.FromResource(typeof(LowLatencyTransport).Assembly, "ll_allreduce.cu");
            kernel = _ranks[rank].LoadKernel(_source, entry, _options.CompileOptions(build));
            _kernels[(rank, entry, build)] = kernel;
        }
        return kernel;
    }

    /// <summary>The most blocks of <paramref name="entry"/>'s <paramref name="build"/> every rank keeps resident at once (SMs x occupancy).</summary>
    private int ResidentBlocks(string entry, LowLatencyBuild build)
    {
        if (!_residentBlocks.TryGetValue((entry, build), out int blocks))
        {
            // From the kernel's own limit (a per-block epoch word each), not a grid cap: one-shot and two-shot cap their grids apart.
            blocks = LowLatencyLayout.EpochWordsForBlocks;
            for (int r = 0; r < _ranks.Length; r++)
                blocks = Math.Min(blocks, _ranks[r].Info.MultiprocessorCount * Math.Max(1, KernelFor(r, entry, build).MaxActiveBlocksPerSm(LowLatencyLayout.BlockThreads)));
            _residentBlocks[(entry, build)] = blocks;
        }
        return blocks;
    }

    public void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }
}
