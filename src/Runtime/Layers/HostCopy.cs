namespace MoeRuntime.Runtime.Layers;

/// <summary>Host-to-host copies of large spans, split over the cores (one core copies ~10 GB/s; a 100 MB output would take 10 ms).</summary>
public static class HostCopy
{
    private const int Chunk = 1 << 18;

    public static unsafe void Parallel<T>(ReadOnlySpan<T> source, Span<T> destination) where T : unmanaged
    {
        if (source.Length != destination.Length)
            throw new ArgumentException($"copy of {source.Length} elements into {destination.Length}", nameof(destination));
        if (source.Length <= Chunk)
        {
            source.CopyTo(destination);
            return;
        }
        fixed (T* s = source)
        fixed (T* d = destination)
        {
            nint sp = (nint)s, dp = (nint)d;
            int length = source.Length;
            System.Threading.Tasks.Parallel.For(0, (length + Chunk - 1) / Chunk, chunk =>
            {
                int first = chunk * Chunk, count = Math.Min(Chunk, length - first);
                new ReadOnlySpan<T>((T*)sp + first, count).CopyTo(new Span<T>((T*)dp + first, count));
            });
        }
    }
}
