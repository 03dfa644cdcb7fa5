namespace MoeRuntime.Kernels.Eplb;

/// <summary>The CPU twin of replica_routing.cu: the plain loop with one running counter per expert.</summary>
internal static class ReplicaRoutingCpu
{
    public static void Run(ReadOnlySpan<int> logicalIds, ReadOnlySpan<int> replicaOffsets, ReadOnlySpan<int> replicaSlots, Span<int> physicalIds)
    {
        int experts = replicaOffsets.Length - 1;
        var seen = new int[experts];  // pairs of each expert so far, in flattened order
        for (int i = 0; i < logicalIds.Length; i++)
        {
            int expert = logicalIds[i];
            if ((uint)expert >= (uint)experts)
            {
                physicalIds[i] = -1;
                continue;
            }
            int first = replicaOffsets[expert];
            int count = replicaOffsets[expert + 1] - first;
            physicalIds[i] = replicaSlots[first + seen[expert]++ % count];
        }
    }
}
