using System.Diagnostics;
using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.Cuda;

/// <summary>
/// Runs the step schedules on CUDA GPUs of one process: collective_ops.cu, one launch per rank per call on
/// that rank's stream, every rank launched before any wait; peers' buffers are read (and, for two-shot, written)
/// directly over peer access: the registered staging and partials, and the call's own inputs and outputs, whose
/// addresses each rank hands its peers with its first barrier's flag. Registered once per communicator, per rank:
/// staging (the call's dtype), F32 partials, flags, epochs and address slots, the table of every rank's registered
/// addresses, the fixed schedules, and a mapped error record. A call allocates nothing and passes nothing from the
/// host that changes from call to call (barrier epochs live on the device), so captured calls replay correctly.
/// Small one-shot and two-shot AllReduces take the low-latency transport instead (<see cref="LowLatencyTransport"/>).
/// </summary>
internal sealed class CudaCollectiveBackend : CollectiveBackend
{
    public const int MaxRanks = 8;
    /// <summary>MAX_BLOCKS in collective_ops.cu: the largest grid (2 x 132 SMs of an H100/H200); flags are per block.</summary>
    internal const int MaxBlocks = 264;
    internal const int BlockSize = 512;   // BLOCK_THREADS in collective_ops.cu (its launch bound)
    private const int GroupElements = 8; // GROUP in collective_ops.cu: elements one thread moves at a time
    /// <summary>u32 words after the flags and epochs: every rank's input and output addresses of the call, u64 each (POINTER_WORDS).</summary>
    internal const int PointerWords = 4 * MaxRanks;
    /// <summary>CONTROL_WORDS in collective_ops.cu: flags [MaxBlocks][MaxRanks], epochs [MaxBlocks], then the addresses.</summary>
    internal const int ControlWords = MaxBlocks * MaxRanks + MaxBlocks + PointerWords;
    private const int DynamicOpCapacity = 64;
    private static readonly int OpBytes = Marshal.SizeOf<CollectiveOp>();

    private readonly CudaAccelerator[] _ranks;
    private readonly TimeSpan _timeout;
    private readonly List<IDisposable> _owned = new();
    private readonly MemoryBuffer<byte>[] _staging;
    private readonly MemoryBuffer<float>[] _partial;
    private readonly MemoryBuffer<uint>[] _control;
    private readonly MemoryBuffer<long>[] _peerTable;
    private readonly MemoryBuffer<byte>[] _ops;
    private readonly OpTableUploads?[] _opUploads;
    private readonly MappedErrorRecord[] _errors;
    private readonly Dictionary<string, (long OffsetBytes, int[] Counts)> _schedules = new();
    private readonly long _dynamicOffsetBytes;
    private readonly Dictionary<(int Rank, string Entry), CudaKernel> _kernels = new();
    private readonly Dictionary<string, int> _residentBlocks = new();
    private readonly LowLatencyTransport _lowLatency;
    private KernelSource? _source;

    public CudaCollectiveBackend(IReadOnlyList<CudaAccelerator> ranks, long capacityBytes, TimeSpan timeout, int fixedScheduleOps,
                                 long twoShotLowLatencyMaxBytes = LowLatencyLayout.DefaultTwoShotMaxBytes, LowLatencyKernelOptions? lowLatencyKernel = null)
    {
        _ranks = ranks.ToArray();
        _timeout = timeout;
        int n = _ranks.Length;
        _staging = new MemoryBuffer<byte>[n];
        _partial = new MemoryBuffer<float>[n];
        _control = new MemoryBuffer<uint>[n];
        _peerTable = new MemoryBuffer<long>[n];
        _ops = new MemoryBuffer<byte>[n];
        _opUploads = new OpTableUploads?[n];
        _errors = new MappedErrorRecord[n];
        _dynamicOffsetBytes = (long)fixedScheduleOps * OpBytes;
        try
        {
            foreach (var a in _ranks)
                foreach (var b in _ranks)
                    if (!ReferenceEquals(a, b))
                        a.EnablePeerAccess(b);
            for (int r = 0; r < n; r++)
            {
                _staging[r] = Own(_ranks[r].Allocate<byte>(capacityBytes));
                _partial[r] = Own(_ranks[r].Allocate<float>(capacityBytes / 2));
                _control[r] = Own(_ranks[r].Allocate<uint>(ControlWords));
                _control[r].Clear();
                _peerTable[r] = Own(_ranks[r].Allocate<long>(3 * MaxRanks));
                _ops[r] = Own(_ranks[r].Allocate<byte>(_dynamicOffsetBytes + (long)DynamicOpCapacity * OpBytes));
                if (OpTableUploads.Enabled)
                    _opUploads[r] = Own(new OpTableUploads(_ranks[r], DynamicOpCapacity * OpBytes));
                _errors[r] = Own(new MappedErrorRecord(_ranks[r]));
            }
            _lowLatency = Own(new LowLatencyTransport(_ranks, capacityBytes, twoShotLowLatencyMaxBytes, lowLatencyKernel ?? LowLatencyKernelOptions.Default));
            // Layout of struct PeerTable: staging[8], partial[8], control[8].
            var table = new long[3 * MaxRanks];
            for (int r = 0; r < n; r++)
            {
                table[r] = (long)_staging[r].Pointer;
                table[MaxRanks + r] = (long)_partial[r].Pointer;
                table[2 * MaxRanks + r] = (long)_control[r].Pointer;
            }
            for (int r = 0; r < n; r++)
            {
                _peerTable[r].CopyFrom(table);
                // The zeroed flags and the table are in place before any stream of any rank launches a call.
                _ranks[r].Synchronize();
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override int LastLowLatencyUnroll => _lowLatency.LastBuild.Unroll;

    public override bool LastLowLatencyLines128 => _lowLatency.LastBuild.Lines128;

    public override int LastLowLatencyBlocks => _lowLatency.LastGrid.Blocks;

    public override int LastLowLatencyThreads => _lowLatency.LastGrid.Threads;

    public override IReadOnlyList<string> DescribeLowLatencyTrace() =>
        _lowLatency.Options.Trace ? _lowLatency.ReadTrace().Select(t => t.Describe()).ToList() : [];

    public override long StagingBytes => _staging[0].Length;
    public override long PartialElements => _partial[0].Length;

    private T Own<T>(T resource) where T : IDisposable
    {
        _owned.Add(resource);
        return resource;
    }

    public override void RegisterSchedule(string key, CollectiveOp[][] opsPerRank)
    {
        long offset = _schedules.Count == 0 ? 0 : _schedules.Values.Max(s => s.OffsetBytes + (long)s.Counts.Max() * OpBytes);
        int longest = opsPerRank.Max(o => o.Length);
        if (offset + (long)longest * OpBytes > _dynamicOffsetBytes)
            throw new InvalidOperationException($"schedule '{key}' does not fit the registered op space");
        for (int r = 0; r < _ranks.Length; r++)
            _ops[r].CopyFrom(MemoryMarshal.AsBytes(opsPerRank[r].AsSpan()), offset);
        _schedules[key] = (offset, opsPerRank.Select(o => o.Length).ToArray());
    }

    public override void Run(CollectiveCall call)
    {
        int n = _ranks.Length;
        long[] opOffsets = new long[n];
        int[] opCounts = new int[n];
        if (call.ScheduleKey is not null)
        {
            var (offset, counts) = _schedules[call.ScheduleKey];
            Array.Fill(opOffsets, offset);
            counts.CopyTo(opCounts, 0);
        }
        else
        {
            for (int r = 0; r < n; r++)
            {
                if (call.OpsPerRank[r].Length > DynamicOpCapacity)
                    throw new ArgumentException($"{call.Kind}: rank {r} needs {call.OpsPerRank[r].Length} ops; at most {DynamicOpCapacity}");
                // Stream-ordered: an earlier call on this stream has finished reading these ops. Asynchronously when switched
                // on (OpTableUploads: the host does not wait for the stream's earlier work), except under a graph capture.
                var ops = MemoryMarshal.AsBytes(call.OpsPerRank[r].AsSpan());
                if (_opUploads[r] is { } uploads && call.Streams[r] is CudaStream { IsCapturing: false } stream)
                    uploads.Upload(ops, _ops[r].Slice(_dynamicOffsetBytes, ops.Length), stream);
                else
                    _ops[r].CopyFrom(ops, _dynamicOffsetBytes, call.Streams[r]);
                opOffsets[r] = _dynamicOffsetBytes;
                opCounts[r] = call.OpsPerRank[r].Length;
            }
        }
        string entry = call.DType switch
        {
            DType.F32 => "collective_run_f32",
            DType.BF16 => "collective_run_bf16",
            DType.F16 => "collective_run_f16",
            _ => throw new NotSupportedException($"{call.Kind} of {call.DType}"),
        };
        int blocks = Math.Min(GridFor(call), ResidentBlocks(entry));
        long timeoutNs = (long)(_timeout.TotalMilliseconds * 1e6);
        for (int r = 0; r < n; r++)
        {
            if (call.RankThatNeverArrives == r)
                continue;
            var kernel = KernelFor(r, entry);
            kernel.Launch((CudaStream)call.Streams[r], new Dim3((uint)blocks), new Dim3(BlockSize), 0,
                _ops[r].Pointer + (nint)opOffsets[r], opCounts[r], _peerTable[r],
                call.Inputs[r].Pointer, call.Outputs[r].Pointer, call.Count, call.Grain, r, n,
                _errors[r].DevicePointer, timeoutNs, (int)call.Kind);
        }
        if (call.Wait)
            Synchronize(call.Kind, call.Streams);
    }

    public override bool TakesLowLatency(AllReduce.AllReduceAlgorithm algorithm, long count, int elementSize) =>
        LowLatencyLayout.Enabled && (algorithm != AllReduce.AllReduceAlgorithm.TwoShot || LowLatencyLayout.TwoShotEnabled)
        && LowLatencyLayout.Takes(algorithm, _ranks.Length, count, elementSize, _lowLatency.SlotUnits, _lowLatency.TwoShotMaxBytes);

    public override void RunLowLatency(CollectiveCall call, bool twoShot)
    {
        _lowLatency.Launch(call, twoShot, _errors, (long)(_timeout.TotalMilliseconds * 1e6));
        if (call.Wait)
            Synchronize(call.Kind, call.Streams);
    }

    private CudaKernel KernelFor(int rank, string entry)
    {
        if (!_kernels.TryGetValue((rank, entry), out var kernel))
        {
            _source ??= KernelSource.FromResource(typeof(CudaCollectiveBackend).Assembly, "collective_ops.cu");
            kernel = _ranks[rank].LoadKernel(_source, entry);
            _kernels[(rank, entry)] = kernel;
        }
        return kernel;
    }

    /// <summary>
    /// The most blocks of <paramref name="entry"/> every rank keeps resident at once (SMs x occupancy, at most
    /// MaxBlocks): block b of one rank spins until block b of every peer arrives, so a block that waits for a free SM
    /// behind spinning ones would never come.
    /// </summary>
    private int ResidentBlocks(string entry)
    {
        if (!_residentBlocks.TryGetValue(entry, out int blocks))
        {
            blocks = MaxBlocks;
            for (int r = 0; r < _ranks.Length; r++)
                blocks = Math.Min(blocks, _ranks[r].Info.MultiprocessorCount * Math.Max(1, KernelFor(r, entry).MaxActiveBlocksPerSm(BlockSize)));
            _residentBlocks[entry] = blocks;
        }
        return blocks;
    }

    /// <summary>Blocks for the largest range any op of any rank covers (in groups of 8 elements per thread), capped: the same grid on every rank.</summary>
    private static int GridFor(CollectiveCall call)
    {
        long longest = 0;
        foreach (var ops in call.OpsPerRank)
            foreach (var op in ops)
                if (op.Kind != (int)OpKind.Barrier)
                    longest = Math.Max(longest, op.Range(call.Count, call.OpsPerRank.Length, call.Grain).Length);
        long groups = (longest + GroupElements - 1) / GroupElements;
        return (int)Math.Clamp((groups + BlockSize - 1) / BlockSize, 1, MaxBlocks);
    }

    public override void Synchronize(CollectiveKind lastKind, IReadOnlyList<AcceleratorStream> streams)
    {
        // The device gives up after the timeout; the host allows twice that (plus a second) before it gives up too.
        var deadline = Stopwatch.StartNew();
        var limit = _timeout * 2 + TimeSpan.FromSeconds(1);
        for (int r = 0; r < _ranks.Length; r++)
        {
            var stream = (CudaStream)streams[r];
            while (!stream.IsIdle())
            {
                if (deadline.Elapsed > limit)
                {
                    var reported = FirstError();
                    throw reported ?? new CollectiveTimeoutException(lastKind, r, -1, _timeout,
                        $"the stream of {_ranks[r].Name} was still busy after {limit.TotalSeconds:F1} s (host deadline)");
                }
                Thread.Yield();
            }
        }
        var error = FirstError(kernelsEnded: true);
        if (error is not null)
            throw error;
    }

    /// <summary>The first rank's device-side timeout; once the kernels have ended, with what an LL wait saw (read back from the device).</summary>
    private CollectiveTimeoutException? FirstError(bool kernelsEnded = false)
    {
        foreach (var record in _errors)
        {
            if (record.IsSet)
            {
                string? seen = kernelsEnded ? LowLatencyReport() : null;
                return new CollectiveTimeoutException(record.Collective, record.Rank, record.Step, _timeout,
                    $"{_ranks[record.Rank].Name} waited for a peer's flag until the device-side deadline" + (seen is null ? "" : $" ({seen})"));
            }
        }
        return null;
    }

    /// <summary>The LL transport's report of a timed-out wait; a failure to read it back must not hide the timeout itself.</summary>
    private string? LowLatencyReport()
    {
        try
        {
            return _lowLatency.DescribeFailure();
        }
        catch (AcceleratorException e)
        {
            return $"LL report unreadable: {e.Message}";
        }
    }

    public override void Dispose()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
            _owned[i].Dispose();
        _owned.Clear();
    }
}
