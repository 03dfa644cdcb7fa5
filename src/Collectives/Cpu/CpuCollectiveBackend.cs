using System.Runtime.CompilerServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Collectives.Schedule;

namespace MoeRuntime.Collectives.Cpu;

/// <summary>
/// Runs the step schedules over CPU accelerators standing in for GPUs: one task per rank walks its ops over
/// the ranks' memory (host memory), and a barrier with the communicator's timeout separates the steps, just as
/// the flags do on the GPU. CPU tests therefore check the schedules themselves.
/// </summary>
internal sealed unsafe class CpuCollectiveBackend : CollectiveBackend
{
    private readonly IReadOnlyList<Accelerator> _ranks;
    private readonly TimeSpan _timeout;
    private readonly MemoryBuffer<byte>[] _staging;
    private readonly MemoryBuffer<float>[] _partial;
    private readonly Dictionary<string, CollectiveOp[][]> _schedules = new();

    public CpuCollectiveBackend(IReadOnlyList<Accelerator> ranks, long capacityBytes, TimeSpan timeout)
    {
        _ranks = ranks;
        _timeout = timeout;
        _staging = new MemoryBuffer<byte>[ranks.Count];
        _partial = new MemoryBuffer<float>[ranks.Count];
        try
        {
            for (int r = 0; r < ranks.Count; r++)
            {
                _staging[r] = ranks[r].Allocate<byte>(capacityBytes);
                _partial[r] = ranks[r].Allocate<float>(capacityBytes / 2);
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override long StagingBytes => _staging[0].Length;
    public override long PartialElements => _partial[0].Length;

    public override void RegisterSchedule(string key, CollectiveOp[][] opsPerRank) => _schedules[key] = opsPerRank;

    public override void Run(CollectiveCall call)
    {
        int ranks = _ranks.Count;
        var ops = call.ScheduleKey is null ? call.OpsPerRank : _schedules[call.ScheduleKey];
        using var barrier = new Barrier(ranks);
        var tasks = new Task[ranks];
        for (int r = 0; r < ranks; r++)
        {
            int rank = r;
            // Dedicated threads: ranks block at barriers, and the thread pool would add threads only slowly.
            tasks[r] = Task.Factory.StartNew(() =>
            {
                if (call.RankThatNeverArrives != rank)
                    RunRank(call, rank, ops[rank], barrier);
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        try
        {
            Task.WaitAll(tasks);
        }
        catch (AggregateException e)
        {
            // A rank's own failure makes its peers time out at the next barrier: report the cause first.
            var cause = e.InnerExceptions.FirstOrDefault(x => x is not CollectiveTimeoutException);
            if (cause is not null)
                throw cause;
            throw e.InnerExceptions.OfType<CollectiveTimeoutException>().OrderBy(t => t.Rank).First();
        }
    }

    // CPU work runs as it is enqueued: every call has finished when Run returns.
    public override void Synchronize(CollectiveKind lastKind, IReadOnlyList<AcceleratorStream> streams) { }

    private void RunRank(CollectiveCall call, int rank, CollectiveOp[] ops, Barrier barrier)
    {
        foreach (var op in ops)
        {
            if (op.Kind == (int)OpKind.Barrier)
            {
                if (!barrier.SignalAndWait(_timeout))
                    throw new CollectiveTimeoutException(call.Kind, rank, op.Step, _timeout, "a peer did not reach the barrier");
                continue;
            }
            switch (call.DType)
            {
                case DType.F32: RunOp<float>(call, rank, op); break;
                case DType.BF16: RunOp<BFloat16>(call, rank, op); break;
                case DType.F16: RunOp<Half>(call, rank, op); break;
                default: throw new NotSupportedException($"{call.Kind} of {call.DType}");
            }
        }
    }

    private void RunOp<T>(CollectiveCall call, int rank, in CollectiveOp op) where T : unmanaged
    {
        var (source0At, source1At, destinationAt, length) = op.Range(call.Count, _ranks.Count, call.Grain);
        var (destination, destinationIsF32) = Resolve(call, rank, op.Destination, rank);
        switch ((OpKind)op.Kind)
        {
            case OpKind.Copy:
            {
                var (source, sourceIsF32) = Resolve(call, rank, op.Source0, op.Source0Rank);
                for (long i = 0; i < length; i++)
                    Store<T>(destination, destinationIsF32, destinationAt + i, Load<T>(source, sourceIsF32, source0At + i));
                break;
            }
            case OpKind.Add:
            {
                var (a, aIsF32) = Resolve(call, rank, op.Source0, op.Source0Rank);
                var (b, bIsF32) = Resolve(call, rank, op.Source1, op.Source1Rank);
                for (long i = 0; i < length; i++)
                    Store<T>(destination, destinationIsF32, destinationAt + i, Load<T>(a, aIsF32, source0At + i) + Load<T>(b, bIsF32, source1At + i));
                break;
            }
            case OpKind.ReduceAll:
            case OpKind.ReduceAllPush:
            {
                int ranks = _ranks.Count;
                var sources = new (nint Base, bool IsF32)[ranks];
                for (int p = 0; p < ranks; p++)
                    sources[p] = Resolve(call, rank, op.Source0, p);
                // ReduceAll writes this rank's destination; ReduceAllPush every rank's.
                var destinations = new (nint Base, bool IsF32)[op.Kind == (int)OpKind.ReduceAll ? 1 : ranks];
                destinations[0] = (destination, destinationIsF32);
                for (int q = 0; q < destinations.Length && destinations.Length > 1; q++)
                    destinations[q] = Resolve(call, rank, op.Destination, q);
                for (long i = 0; i < length; i++)
                {
                    // Rank order, F32, starting from rank 0's value: the same sum the CUDA kernel forms.
                    float sum = Load<T>(sources[0].Base, sources[0].IsF32, source0At + i);
                    for (int p = 1; p < ranks; p++)
                        sum += Load<T>(sources[p].Base, sources[p].IsF32, source0At + i);
                    foreach (var (pointer, isF32) in destinations)
                        Store<T>(pointer, isF32, destinationAt + i, sum);
                }
                break;
            }
            default:
                throw new InvalidOperationException($"unknown op {op}");
        }
    }

    private (nint Base, bool IsF32) Resolve(CollectiveCall call, int self, int code, int rank) => OpBuffer.KindOf(code) switch
    {
        OpBuffer.Input => (call.Inputs[rank < 0 ? self : rank].Pointer, false),
        OpBuffer.Output => (call.Outputs[rank < 0 ? self : rank].Pointer, false),
        OpBuffer.Staging => (_staging[rank].Pointer, false),
        OpBuffer.Partial => (_partial[rank].Pointer, true),
        _ => throw new InvalidOperationException($"unknown buffer code {code}"),
    };

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Load<T>(nint basePointer, bool isF32, long index) where T : unmanaged
    {
        if (isF32 || typeof(T) == typeof(float))
            return ((float*)basePointer)[index];
        if (typeof(T) == typeof(BFloat16))
            return ((BFloat16*)basePointer)[index];
        return (float)((Half*)basePointer)[index];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<T>(nint basePointer, bool isF32, long index, float value) where T : unmanaged
    {
        if (isF32 || typeof(T) == typeof(float))
            ((float*)basePointer)[index] = value;
        else if (typeof(T) == typeof(BFloat16))
            ((BFloat16*)basePointer)[index] = (BFloat16)value;
        else
            ((Half*)basePointer)[index] = (Half)value;
    }

    public override void Dispose()
    {
        foreach (var buffer in _staging)
            buffer?.Dispose();
        foreach (var buffer in _partial)
            buffer?.Dispose();
    }
}
