using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Eplb;

/// <summary>
/// Routing with replicas: logical expert ids [T, k] -> physical slot ids [T, k]. The n-th (token, choice) pair,
/// in row-major order, that is routed to expert e goes to replica <c>n mod replicas(e)</c> of e. This is
/// deterministic and splits any routing exactly evenly: a replicated expert's pairs land on its replicas with
/// counts that differ by at most one. (Token index mod replica count, as vLLM does, is cheaper but only even on
/// average: a hot expert chosen by tokens of one parity would send them all to one replica.)
/// Ids outside [0, E) give -1.
/// <para>Example: table offsets [0, 2, 3], slots [0, 3, 1] (expert 0 in slots 0 and 3, expert 1 in slot 1);
/// ids [[0, 1], [0, 1], [1, 0]] -> [[0, 1], [3, 1], [1, 0]].</para>
/// </summary>
public static class ReplicaRouting
{
    private const int Threads = 512;
    private static readonly KernelSource Source = KernelSource.FromResource(typeof(ReplicaRouting).Assembly, "replica_routing.cu");

    /// <summary>Fills <paramref name="physicalIds"/> [T*k] from <paramref name="logicalIds"/> [T*k] and <paramref name="table"/>, ordered on <paramref name="stream"/>.</summary>
    public static void Run(MemoryBuffer<int> logicalIds, ReplicaTable table, MemoryBuffer<int> physicalIds, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(logicalIds);
        ArgumentNullException.ThrowIfNull(table);
        ArgumentNullException.ThrowIfNull(physicalIds);
        logicalIds.ThrowIfDisposed();
        physicalIds.ThrowIfDisposed();
        var accelerator = logicalIds.Accelerator;
        if (!ReferenceEquals(physicalIds.Accelerator, accelerator))
            throw new ArgumentException($"physicalIds is on {physicalIds.Accelerator.Name}; logicalIds is on {accelerator.Name}", nameof(physicalIds));
        if (!ReferenceEquals(table.Accelerator, accelerator))
            throw new ArgumentException($"the replica table is on {table.Accelerator.Name}; logicalIds is on {accelerator.Name}", nameof(table));
        if (physicalIds.Length != logicalIds.Length)
            throw new ArgumentException($"physicalIds has {physicalIds.Length} elements; logicalIds has {logicalIds.Length}", nameof(physicalIds));
        if (logicalIds.Length >= 1 << 30)
            throw new ArgumentOutOfRangeException(nameof(logicalIds), logicalIds.Length, "at most 2^30 - 1 (token, choice) pairs per launch");
        if (stream is not null && !ReferenceEquals(stream.Accelerator, accelerator))
            throw new ArgumentException($"stream of {stream.Accelerator.Name} used with buffers of {accelerator.Name}", nameof(stream));
        int pairs = (int)logicalIds.Length;
        if (pairs == 0)
            return;
        switch (accelerator)
        {
            case CudaAccelerator gpu:
                var kernel = gpu.LoadKernel(Source, "replica_route");
                int directBlocks = Math.Clamp((pairs + Threads - 1) / Threads, 1, 4 * Math.Max(gpu.Info.MultiprocessorCount, 1));
                kernel.Launch((CudaStream)(stream ?? gpu.DefaultStream), table.RankedBlocks + directBlocks, Threads, 0,
                    logicalIds, pairs, table.Offsets, table.Slots, table.Experts, table.Replicated, table.RankedBlocks, physicalIds);
                break;
            default:
                (stream ?? accelerator.DefaultStream).Synchronize();
                ReplicaRoutingCpu.Run(logicalIds.AsSpan(), table.Offsets.AsSpan(), table.Slots.AsSpan(), physicalIds.AsSpan());
                break;
        }
    }
}
