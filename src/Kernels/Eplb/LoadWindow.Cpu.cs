namespace MoeRuntime.Kernels.Eplb;

/// <summary>The CPU twin of load_window.cu.</summary>
internal static class LoadWindowCpu
{
    public static void Push(ReadOnlySpan<int> counts, Span<int> window, Span<long> sums, Span<long> state, int windowForwards)
    {
        int experts = counts.Length;
        int row = (int)(state[0] % windowForwards);
        var slot = window.Slice(row * experts, experts);
        for (int e = 0; e < experts; e++)
        {
            sums[e] += (long)counts[e] - slot[e];
            slot[e] = counts[e];
        }
        state[0]++;
    }
}
