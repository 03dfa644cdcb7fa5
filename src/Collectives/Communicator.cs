using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Collectives.Cpu;
using MoeRuntime.Collectives.Cuda;
using MoeRuntime.Collectives.Nccl;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives;

/// <summary>
/// Collectives over a group of accelerators of one process: N CUDA GPUs (kernels reading peers' memory),
/// or N CPU accelerators standing in for them (tasks walking the same step schedules). Rank r is
/// <c>Accelerators[r]</c>. Created once: it enables peer access between every pair of GPUs and registers
/// each rank's staging, partial-sum, flag and schedule buffers, so a call allocates no device memory.
/// <para>Sums are F32, BF16 or F16 data accumulated in F32 in a fixed order (rank 0 + rank 1 + ... for
/// one-shot, two-shot and ReduceScatter; a fixed order per chunk for ring), so every rank gets
/// bit-identical results, run after run. Any element count, including 0, 1 and counts not divisible by N.</para>
/// <para>Without streams a call runs on each rank's default stream and returns when done; with streams it is
/// only enqueued (stream-ordered, capturable into CUDA graphs) and <see cref="Synchronize"/> waits for it.
/// A peer that does not arrive within <see cref="CommunicatorOptions.Timeout"/> fails the call with a
/// <see cref="CollectiveTimeoutException"/>; the communicator then refuses further calls.</para>
/// </summary>
public sealed class Communicator : IDisposable
{
    /// <summary>The most ranks a communicator spans (the kernel's flag layout).</summary>
    public const int MaxRanks = CudaCollectiveBackend.MaxRanks;

    private readonly CollectiveBackend _backend;
    private readonly ILogger _logger;
    private readonly Dictionary<AllReduceAlgorithm, IAllReduceAlgorithm> _algorithms;
    private NcclGroup? _nccl;
    private string? _failure;
    private bool _disposed;
    private CollectiveKind _lastKind;
    private IReadOnlyList<AcceleratorStream>? _lastStreams;

    private Communicator(IReadOnlyList<Accelerator> accelerators, CommunicatorOptions options, ILogger logger)
    {
        Accelerators = accelerators;
        Options = options;
        _logger = logger;
        _algorithms = new IAllReduceAlgorithm[] { new RingAllReduce(), new TwoShotAllReduce(), new OneShotAllReduce(), new NcclAllReduce() }
            .ToDictionary(a => a.Kind);
        int n = accelerators.Count;
        int fixedOps = 0;
        var schedules = new List<(string Key, CollectiveOp[][] Ops)>();
        foreach (var algorithm in _algorithms.Values.OfType<ScheduledAllReduce>())
            foreach (bool inPlace in new[] { false, true })
                schedules.Add((Key(algorithm.Kind, inPlace), Enumerable.Range(0, n).Select(r => algorithm.BuildSchedule(r, n, inPlace)).ToArray()));
        schedules.Add((nameof(CollectiveKind.ReduceScatter), Enumerable.Range(0, n).Select(r => CollectiveSchedules.ReduceScatter(r, n)).ToArray()));
        schedules.Add((nameof(CollectiveKind.AllGather), Enumerable.Range(0, n).Select(r => CollectiveSchedules.AllGather(r, n)).ToArray()));
        foreach (var (_, ops) in schedules)
            fixedOps += ops.Max(o => o.Length);
        _backend = accelerators[0].Kind == AcceleratorKind.Cuda
            ? new CudaCollectiveBackend(accelerators.Cast<CudaAccelerator>().ToList(), options.CapacityBytes, options.Timeout, fixedOps,
                options.TwoShotLowLatencyMaxBytes ?? LowLatencyLayout.TwoShotMaxBytesFromEnvironment(),
                options.LowLatencyKernel ?? LowLatencyKernelOptions.FromEnvironment())
            : new CpuCollectiveBackend(accelerators, options.CapacityBytes, options.Timeout);
        try
        {
            foreach (var (key, ops) in schedules)
            {
                _backend.RegisterSchedule(key, ops);
                _schedules[key] = ops;
            }
        }
        catch
        {
            _backend.Dispose();
            throw;
        }
    }

    private readonly Dictionary<string, CollectiveOp[][]> _schedules = new();

    /// <summary>Creates a communicator over <paramref name="accelerators"/> (rank order), all of one kind, 1 to <see cref="MaxRanks"/>.</summary>
    public static Communicator Create(IReadOnlyList<Accelerator> accelerators, CommunicatorOptions? options = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(accelerators);
        options ??= new CommunicatorOptions();
        if (accelerators.Count is < 1 or > MaxRanks)
            throw new ArgumentException($"a communicator spans 1 to {MaxRanks} accelerators; got {accelerators.Count}", nameof(accelerators));
        for (int r = 0; r < accelerators.Count; r++)
        {
            var a = accelerators[r] ?? throw new ArgumentException($"accelerator of rank {r} is null", nameof(accelerators));
            if (a.IsDisposed)
                throw new ArgumentException($"accelerator of rank {r} ({a.Name}) is disposed", nameof(accelerators));
            if (a.Kind != accelerators[0].Kind)
                throw new ArgumentException($"all ranks must be of one kind: rank 0 is {accelerators[0].Name}, rank {r} is {a.Name}", nameof(accelerators));
            for (int q = 0; q < r; q++)
                if (ReferenceEquals(accelerators[q], a))
                    throw new ArgumentException($"{a.Name} appears as rank {q} and rank {r}", nameof(accelerators));
        }
        if (options.CapacityBytes < 0 || options.CapacityBytes % 16 != 0)
            throw new ArgumentOutOfRangeException(nameof(options), $"CapacityBytes {options.CapacityBytes}: must be a non-negative multiple of 16");
        if (options.Timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), $"Timeout {options.Timeout}: must be positive");
        if (options.TwoShotLowLatencyMaxBytes is < 0 or > LowLatencyLayout.TwoShotMaxBytesLimit)
            throw new ArgumentOutOfRangeException(nameof(options),
                $"TwoShotLowLatencyMaxBytes {options.TwoShotLowLatencyMaxBytes}: must be 0 to {LowLatencyLayout.TwoShotMaxBytesLimit}");
        return new Communicator(accelerators.ToList(), options, logger ?? NullLogger.Instance);
    }

    public IReadOnlyList<Accelerator> Accelerators { get; }
    public int Size => Accelerators.Count;
    public CommunicatorOptions Options { get; }

    /// <summary>The algorithm the last AllReduce ran (what <see cref="AllReduceAlgorithm.Auto"/> picked).</summary>
    public AllReduceAlgorithm LastAllReduceAlgorithm { get; private set; } = AllReduceAlgorithm.Auto;

    /// <summary>
    /// Whether the last AllReduce ran on the low-latency transport (CUDA one-shot and two-shot below
    /// LowLatencyLayout's thresholds) rather than the step schedule or NCCL.
    /// </summary>
    public bool LastAllReduceLowLatency { get; private set; }

    /// <summary>Why the communicator refuses calls (after a timeout), or null while it is usable.</summary>
    public string? FailureReason => _failure;

    /// <summary>Test hook: the rank that never arrives at any call (it launches nothing), to exercise the timeout.</summary>
    internal int? RankThatNeverArrives { get; set; }

    internal NcclGroup Nccl
    {
        get
        {
            if (_nccl is null)
            {
                if (Accelerators[0] is not CudaAccelerator)
                    throw new NotSupportedException($"NCCL runs on CUDA devices; this communicator spans {string.Join(", ", Accelerators.Select(a => a.Name))}");
                _nccl = NcclGroup.Create(Accelerators.Cast<CudaAccelerator>().ToList());
            }
            return _nccl;
        }
    }

    /// <summary>Every rank's output = the sum of every rank's input (same dtype and length everywhere; output may be the input).</summary>
    public void AllReduce(IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput,
                          AllReduceAlgorithm algorithm = AllReduceAlgorithm.Auto, IReadOnlyList<AcceleratorStream>? streams = null)
    {
        ThrowIfUnusable();
        var dtype = ValidateBuffers(CollectiveKind.AllReduce, perRankInput, perRankOutput, nameof(perRankInput), nameof(perRankOutput));
        long count = perRankInput[0].Length;
        for (int r = 0; r < Size; r++)
        {
            if (perRankInput[r].Length != count || perRankOutput[r].Length != count)
                throw new ArgumentException($"AllReduce: every input and output must hold {count} elements (rank 0's input); rank {r} has input {perRankInput[r].Length}, output {perRankOutput[r].Length}", nameof(perRankInput));
        }
        if (!Enum.IsDefined(algorithm))
            throw new ArgumentOutOfRangeException(nameof(algorithm), algorithm, "unknown AllReduce algorithm");
        var resolved = ResolveStreams(streams);
        if (algorithm == AllReduceAlgorithm.Auto)
        {
            bool nccl = Accelerators[0].Kind == AcceleratorKind.Cuda && NcclLibrary.IsAvailable;
            algorithm = AllReduceSelector.Choose(Size, count * DTypes.SizeOf(dtype), nccl);
            _logger.LogDebug("AllReduce auto: {Algorithm} for {Ranks} ranks, {Bytes} bytes", algorithm, Size, count * DTypes.SizeOf(dtype));
        }
        try
        {
            // NCCL runs outside our schedules: remember its streams too, so Synchronize waits on this call's.
        _lastKind = CollectiveKind.AllReduce;
        _lastStreams = CallWaits(resolved) ? null : resolved;
        LastAllReduceLowLatency = false;
        _algorithms[algorithm].Run(this, perRankInput, perRankOutput, resolved);
        }
        catch (CollectiveTimeoutException e) when (_failure is null)
        {
            Fail(e);
            throw;
        }
        LastAllReduceAlgorithm = algorithm;
    }

    /// <summary>Rank r's output (chunk r's length: count*(r+1)/N - count*r/N elements) = chunk r of the sum of every rank's input.</summary>
    public void ReduceScatter(IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput, IReadOnlyList<AcceleratorStream>? streams = null)
    {
        ThrowIfUnusable();
        ValidateBuffers(CollectiveKind.ReduceScatter, perRankInput, perRankOutput, nameof(perRankInput), nameof(perRankOutput));
        long count = perRankInput[0].Length;
        for (int r = 0; r < Size; r++)
        {
            long chunk = Chunks.Length(count, Size, r);
            if (perRankInput[r].Length != count || perRankOutput[r].Length != chunk)
                throw new ArgumentException($"ReduceScatter: rank {r} needs an input of {count} elements and an output of {chunk} (its chunk); got {perRankInput[r].Length} and {perRankOutput[r].Length}", nameof(perRankOutput));
        }
        RunSchedule(CollectiveKind.ReduceScatter, nameof(CollectiveKind.ReduceScatter), perRankInput, perRankOutput, count, ResolveStreams(streams));
    }

    /// <summary>Every rank's output (N*m elements) = rank 0's input, rank 1's input, ... (m elements each).</summary>
    public void AllGather(IReadOnlyList<MemoryBuffer> perRankInput, IReadOnlyList<MemoryBuffer> perRankOutput, IReadOnlyList<AcceleratorStream>? streams = null)
    {
        ThrowIfUnusable();
        ValidateBuffers(CollectiveKind.AllGather, perRankInput, perRankOutput, nameof(perRankInput), nameof(perRankOutput));
        long m = perRankInput[0].Length;
        for (int r = 0; r < Size; r++)
        {
            if (perRankInput[r].Length != m || perRankOutput[r].Length != m * Size)
                throw new ArgumentException($"AllGather: rank {r} needs an input of {m} elements and an output of {m * Size}; got {perRankInput[r].Length} and {perRankOutput[r].Length}", nameof(perRankOutput));
        }
        RunSchedule(CollectiveKind.AllGather, nameof(CollectiveKind.AllGather), perRankInput, perRankOutput, m * Size, ResolveStreams(streams));
    }

    /// <summary>
    /// All-to-allv: <paramref name="sendCounts"/>[i, j] elements go from rank i to rank j (rows of a hidden size
    /// count as rows * hidden elements). Rank i's send buffer holds its segments for ranks 0..N-1 back to back;
    /// rank j's receive buffer gets the segments of ranks 0..N-1 back to back. Buffers may be longer than needed.
    /// The counts are host data uploaded with the call, so this call is not for graph capture.
    /// </summary>
    public void AllToAllV(IReadOnlyList<MemoryBuffer> perRankSend, long[,] sendCounts, IReadOnlyList<MemoryBuffer> perRankReceive, IReadOnlyList<AcceleratorStream>? streams = null)
    {
        ThrowIfUnusable();
        ArgumentNullException.ThrowIfNull(sendCounts);
        ValidateBuffers(CollectiveKind.AllToAllV, perRankSend, perRankReceive, nameof(perRankSend), nameof(perRankReceive));
        if (sendCounts.GetLength(0) != Size || sendCounts.GetLength(1) != Size)
            throw new ArgumentException($"AllToAllV: sendCounts must be [{Size}, {Size}]; got [{sendCounts.GetLength(0)}, {sendCounts.GetLength(1)}]", nameof(sendCounts));
        for (int r = 0; r < Size; r++)
        {
            long sent = 0, received = 0;
            for (int j = 0; j < Size; j++)
            {
                if (sendCounts[r, j] < 0)
                    throw new ArgumentOutOfRangeException(nameof(sendCounts), $"AllToAllV: sendCounts[{r}, {j}] = {sendCounts[r, j]} is negative");
                sent += sendCounts[r, j];
                received += sendCounts[j, r];
            }
            if (perRankSend[r].Length < sent)
                throw new ArgumentException($"AllToAllV: rank {r} sends {sent} elements; its send buffer holds {perRankSend[r].Length}", nameof(perRankSend));
            if (perRankReceive[r].Length < received)
                throw new ArgumentException($"AllToAllV: rank {r} receives {received} elements; its receive buffer holds {perRankReceive[r].Length}", nameof(perRankReceive));
        }
        var ops = Enumerable.Range(0, Size).Select(r => CollectiveSchedules.AllToAllV(r, sendCounts)).ToArray();
        RunSchedule(CollectiveKind.AllToAllV, null, perRankSend, perRankReceive, 0, ResolveStreams(streams), ops);
    }

    /// <summary>
    /// Diagnostics: with MOE_LL_TRACE=1 (a traced build of the low-latency AllReduce), where the last low-latency call's
    /// time went on each rank, a line per rank (stamps from the kernel's start, the gap from the call before, polls per
    /// wait); empty otherwise. Waits for the ranks' work.
    /// </summary>
    public IReadOnlyList<string> DescribeLowLatencyTrace() => _backend.DescribeLowLatencyTrace();

    /// <summary>The unroll of the low-latency build the last low-latency AllReduce ran (1 for small calls; 0 when none ran).</summary>
    internal int LastLowLatencyUnroll => _backend.LastLowLatencyUnroll;

    /// <summary>Whether the last low-latency AllReduce ran the 128-byte-line build (<see cref="Cuda.LowLatencyKernelOptions.Line128MinBytes"/>).</summary>
    internal bool LastLowLatencyLines128 => _backend.LastLowLatencyLines128;

    /// <summary>The grid (blocks per rank) of the last low-latency AllReduce (0 when none ran).</summary>
    internal int LastLowLatencyBlocks => _backend.LastLowLatencyBlocks;

    /// <summary>Threads a block of the last low-latency AllReduce (0 when none ran).</summary>
    internal int LastLowLatencyThreads => _backend.LastLowLatencyThreads;

    /// <summary>Waits for the calls enqueued on explicit streams; throws <see cref="CollectiveTimeoutException"/> if a rank gave up.</summary>
    public void Synchronize()
    {
        ThrowIfUnusable();
        if (_lastStreams is null)
            return;
        try
        {
            _backend.Synchronize(_lastKind, _lastStreams);
        }
        catch (CollectiveTimeoutException e)
        {
            Fail(e);
            throw;
        }
    }

    /// <summary>
    /// A scheduled AllReduce: on the backend's low-latency transport when it takes the call (outputs either
    /// separate from the inputs or exactly them: LL keeps each element in one thread, not a shifted overlap),
    /// else the algorithm's schedule.
    /// </summary>
    internal void RunSchedule(CollectiveKind kind, AllReduceAlgorithm algorithm, IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, long count, IReadOnlyList<AcceleratorStream> streams)
    {
        bool overlaps = Overlaps(inputs, outputs);
        string key = Key(algorithm, overlaps);
        if (kind == CollectiveKind.AllReduce && (!overlaps || SameStarts(inputs, outputs))
            && _backend.TakesLowLatency(algorithm, count, inputs[0].ElementSize))
        {
            RunSchedule(kind, key, inputs, outputs, count, streams, lowLatency: algorithm);
            LastAllReduceLowLatency = true;
            return;
        }
        RunSchedule(kind, key, inputs, outputs, count, streams);
    }

    private static bool SameStarts(IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs)
    {
        for (int r = 0; r < inputs.Count; r++)
            if (inputs[r].Pointer != outputs[r].Pointer && Overlaps([inputs[r]], [outputs[r]]))
                return false;
        return true;
    }

    /// <summary>Whether some rank's output shares memory with its input (an in-place call).</summary>
    private static bool Overlaps(IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs)
    {
        for (int r = 0; r < inputs.Count; r++)
        {
            long inputStart = inputs[r].Pointer, outputStart = outputs[r].Pointer;
            long inputBytes = inputs[r].Length * inputs[r].ElementSize, outputBytes = outputs[r].Length * outputs[r].ElementSize;
            if (ReferenceEquals(inputs[r], outputs[r]) || (inputStart < outputStart + outputBytes && outputStart < inputStart + inputBytes))
                return true;
        }
        return false;
    }

    private void RunSchedule(CollectiveKind kind, string? key, IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, long count,
                             IReadOnlyList<AcceleratorStream> streams, CollectiveOp[][]? dynamicOps = null, AllReduceAlgorithm? lowLatency = null)
    {
        var ops = dynamicOps ?? _schedules[key!];
        // AllReduce's chunks are internal: aligned starts let the kernel move 16 bytes at a time.
        int grain = kind == CollectiveKind.AllReduce ? Chunks.AllReduceGrain : 1;
        if (lowLatency is null)
            CheckRanges(kind, ops, inputs, outputs, count, grain);   // LL touches only the buffers and its own regions
        bool wait = streams is WaitingStreams;
        var call = new CollectiveCall(kind, key, ops, inputs, outputs, count, grain, inputs[0].DType, streams, wait, RankThatNeverArrives);
        _lastKind = kind;
        _lastStreams = wait ? null : streams;
        try
        {
            if (lowLatency is { } algorithm)
                _backend.RunLowLatency(call, twoShot: algorithm == AllReduceAlgorithm.TwoShot);
            else
                _backend.Run(call);
        }
        catch (CollectiveTimeoutException e)
        {
            Fail(e);
            throw;
        }
    }

    /// <summary>Every op's range fits the buffers it touches (so no kernel ever reads or writes out of bounds).</summary>
    private void CheckRanges(CollectiveKind kind, CollectiveOp[][] opsPerRank, IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, long count, int grain)
    {
        int elementSize = inputs[0].ElementSize;
        long stagingElements = _backend.StagingBytes / elementSize;
        for (int r = 0; r < Size; r++)
        {
            foreach (var op in opsPerRank[r])
            {
                if (op.Kind == (int)OpKind.Barrier)
                    continue;
                var (source0, source1, destination, length) = op.Range(count, Size, grain);
                void Check(int code, long start)
                {
                    if (code < 0)
                        return;
                    long limit = OpBuffer.KindOf(code) switch
                    {
                        OpBuffer.Input => inputs[r].Length,
                        OpBuffer.Output => outputs[r].Length,
                        OpBuffer.Staging => stagingElements,
                        _ => _backend.PartialElements,
                    };
                    if (start < 0 || start + length > limit)
                    {
                        string what = OpBuffer.KindOf(code) is OpBuffer.Staging or OpBuffer.Partial
                            ? $"the communicator's registered {OpBuffer.Name(code)} ({Options.CapacityBytes} bytes of CapacityBytes per rank); create it with a larger CapacityBytes"
                            : $"rank {r}'s {OpBuffer.Name(code)} buffer";
                        throw new ArgumentException($"{kind}: {length} elements at {start} do not fit {what} ({limit} elements)");
                    }
                }
                Check(op.Source0, source0);
                Check(op.Source1, source1);
                Check(op.Destination, destination);
            }
        }
    }

    private DType ValidateBuffers(CollectiveKind kind, IReadOnlyList<MemoryBuffer> inputs, IReadOnlyList<MemoryBuffer> outputs, string inputName, string outputName)
    {
        ArgumentNullException.ThrowIfNull(inputs, inputName);
        ArgumentNullException.ThrowIfNull(outputs, outputName);
        if (inputs.Count != Size)
            throw new ArgumentException($"{kind}: one buffer per rank ({Size}); got {inputs.Count}", inputName);
        if (outputs.Count != Size)
            throw new ArgumentException($"{kind}: one buffer per rank ({Size}); got {outputs.Count}", outputName);
        var dtype = inputs[0]?.DType ?? throw new ArgumentException($"{kind}: rank 0's buffer is null", inputName);
        if (dtype is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"{kind}: dtype {DTypes.Name(dtype)} is not supported (f32, bf16, f16)", inputName);
        for (int r = 0; r < Size; r++)
        {
            foreach (var (buffer, name) in new[] { (inputs[r], inputName), (outputs[r], outputName) })
            {
                if (buffer is null)
                    throw new ArgumentException($"{kind}: rank {r}'s buffer is null", name);
                buffer.ThrowIfDisposed();
                if (!ReferenceEquals(buffer.Accelerator, Accelerators[r]))
                    throw new ArgumentException($"{kind}: rank {r}'s buffer {buffer.Describe()} must live on {Accelerators[r].Name}", name);
                if (buffer.DType != dtype)
                    throw new ArgumentException($"{kind}: rank {r}'s buffer {buffer.Describe()} is {DTypes.Name(buffer.DType)}; rank 0's input is {DTypes.Name(dtype)} (every buffer must match)", name);
            }
        }
        return dtype;
    }

    /// <summary>The default streams, marked so that the call waits; or the caller's streams, checked.</summary>
    private IReadOnlyList<AcceleratorStream> ResolveStreams(IReadOnlyList<AcceleratorStream>? streams)
    {
        if (streams is null)
            return new WaitingStreams(Accelerators.Select(a => a.DefaultStream).ToList());
        if (streams.Count != Size)
            throw new ArgumentException($"one stream per rank ({Size}); got {streams.Count}", nameof(streams));
        for (int r = 0; r < Size; r++)
        {
            if (streams[r] is null || !ReferenceEquals(streams[r].Accelerator, Accelerators[r]))
                throw new ArgumentException($"stream of rank {r} must belong to {Accelerators[r].Name}", nameof(streams));
            streams[r].ThrowIfDisposed();
        }
        return streams;
    }

    /// <summary>Whether a call given <paramref name="streams"/> (from <see cref="ResolveStreams"/>) returns only when done.</summary>
    internal bool CallWaits(IReadOnlyList<AcceleratorStream> streams) => streams is WaitingStreams;

    private sealed class WaitingStreams(IReadOnlyList<AcceleratorStream> streams) : List<AcceleratorStream>(streams);

    private void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_failure is not null)
            throw new CommunicatorFailedException($"this communicator is unusable: {_failure}. Dispose it and create a new one (the devices remain usable).");
    }

    private void Fail(Exception e)
    {
        _failure = e.Message;
        _logger.LogError("communicator over {Ranks} failed: {Reason}", string.Join(", ", Accelerators.Select(a => a.Name)), e.Message);
        _nccl?.Abort();
    }

    private static string Key(AllReduceAlgorithm algorithm, bool inPlace) => inPlace ? $"AllReduce/{algorithm}/in-place" : $"AllReduce/{algorithm}";

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _nccl?.Dispose();
        _backend.Dispose();
    }
}
