using MoeRuntime.Accelerators;

namespace MoeRuntime.Collectives.Distributed;

/// <summary>
/// A <see cref="ProcessGroup"/> whose ranks are threads of this process, each on its own accelerator: the
/// per-rank layers run on CPU accelerators exactly as they would with one process per GPU, which is how the tests
/// check them. Each call posts this rank's buffers, meets the others at a barrier, copies what it needs from their
/// buffers, and meets them again. Sums (F32 only) add ranks in order 0..N-1, like NCCL's two-rank sum.
/// A rank that does not arrive within the timeout fails the others with <see cref="CollectiveTimeoutException"/>.
/// </summary>
public sealed class ThreadProcessGroup : ProcessGroup
{
    private readonly World _world;

    private ThreadProcessGroup(World world, int rank) : base(rank, world.Accelerators.Count, world.Accelerators[rank]) => _world = world;

    public override string Backend => "threads";

    /// <summary>One group per accelerator (rank r on <paramref name="accelerators"/>[r]); give each to its own thread.</summary>
    public static IReadOnlyList<ThreadProcessGroup> CreateWorld(IReadOnlyList<Accelerator> accelerators, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(accelerators);
        if (accelerators.Count < 1)
            throw new ArgumentException("at least one rank", nameof(accelerators));
        var world = new World(accelerators, timeout ?? TimeSpan.FromSeconds(60));
        return Enumerable.Range(0, accelerators.Count).Select(r => new ThreadProcessGroup(world, r)).ToList();
    }

    protected override void AllReduceCore(MemoryBuffer input, MemoryBuffer output)
    {
        if (input is not MemoryBuffer<float>)
            throw new NotSupportedException($"the thread group sums f32; got {input.Describe()}");
        Post(CollectiveKind.AllReduce, input, null);
        var sum = new float[input.Length];
        for (int r = 0; r < Size; r++)
        {
            var peer = (MemoryBuffer<float>)_world.Slots[r].Buffer!;
            if (peer.Length != input.Length)
                Throw($"AllReduce: rank {r} gave {peer.Length} elements, rank {Rank} {input.Length}");
            var part = peer.ToArray();
            for (long i = 0; i < sum.Length; i++)
                sum[i] += part[i];
        }
        Meet(CollectiveKind.AllReduce); // every rank has read every input before any output (maybe an input) is written
        ((MemoryBuffer<float>)output).CopyFrom(sum);
        Meet(CollectiveKind.AllReduce);
    }

    protected override void AllGatherCore(MemoryBuffer input, MemoryBuffer output)
    {
        Post(CollectiveKind.AllGather, input, null);
        long bytes = input.LengthBytes;
        for (int r = 0; r < Size; r++)
        {
            var peer = _world.Slots[r].Buffer!;
            if (peer.LengthBytes != bytes)
                Throw($"AllGather: rank {r} gave {peer.Describe()}, rank {Rank} {input.Describe()}");
            MemoryBuffer.CopyBytes(peer, 0, output, r * bytes, bytes);
        }
        Meet(CollectiveKind.AllGather);
    }

    protected override void AllToAllVCore(MemoryBuffer send, IReadOnlyList<long> sendCounts, MemoryBuffer receive, IReadOnlyList<long> receiveCounts)
    {
        Post(CollectiveKind.AllToAllV, send, sendCounts.ToArray());
        int element = send.ElementSize;
        long receiveAt = 0;
        for (int p = 0; p < Size; p++)
        {
            var (peerSend, peerCounts) = (_world.Slots[p].Buffer!, _world.Slots[p].Counts!);
            if (peerCounts[Rank] != receiveCounts[p])
                Throw($"AllToAllV: rank {p} sends {peerCounts[Rank]} elements to rank {Rank}, which expects {receiveCounts[p]}");
            long sendAt = peerCounts.Take(Rank).Sum();
            MemoryBuffer.CopyBytes(peerSend, sendAt * element, receive, receiveAt * element, receiveCounts[p] * element);
            receiveAt += receiveCounts[p];
        }
        Meet(CollectiveKind.AllToAllV);
    }

    private void Post(CollectiveKind kind, MemoryBuffer buffer, long[]? counts)
    {
        _world.Slots[Rank] = (buffer, counts);
        Meet(kind);
    }

    private void Meet(CollectiveKind kind)
    {
        if (_world.Failure is { } failure)
            throw new CommunicatorFailedException($"rank {Rank}: the group failed earlier: {failure}");
        long meeting = Interlocked.Increment(ref _world.Meetings[Rank]);
        bool met;
        try
        {
            met = _world.Barrier.SignalAndWait(_world.Timeout);
        }
        catch (BarrierPostPhaseException e)
        {
            throw new CommunicatorFailedException($"rank {Rank}: {e.Message}");
        }
        if (!met)
        {
            var missing = Enumerable.Range(0, Size).Where(q => Interlocked.Read(ref _world.Meetings[q]) < meeting).ToList();
            _world.Failure ??= $"{kind} timed out on rank {Rank}";
            throw new CollectiveTimeoutException(kind, Rank, -1, _world.Timeout, $"rank(s) {string.Join(", ", missing)} of {Size} did not arrive");
        }
    }

    private void Throw(string message)
    {
        _world.Failure ??= message;
        throw new InvalidOperationException(message);
    }

    public override void Dispose()
    {
    }

    private sealed class World(IReadOnlyList<Accelerator> accelerators, TimeSpan timeout)
    {
        public IReadOnlyList<Accelerator> Accelerators { get; } = accelerators;
        public TimeSpan Timeout { get; } = timeout;
        public Barrier Barrier { get; } = new(accelerators.Count);
        public (MemoryBuffer? Buffer, long[]? Counts)[] Slots { get; } = new (MemoryBuffer?, long[]?)[accelerators.Count];
        public long[] Meetings { get; } = new long[accelerators.Count];
        public volatile string? Failure;
    }
}
