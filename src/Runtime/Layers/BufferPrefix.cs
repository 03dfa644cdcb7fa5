using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Layers;

/// <summary>Views of the first elements of a buffer whose element type is known only at run time (owns nothing).</summary>
public static class BufferPrefix
{
    public static MemoryBuffer Of(MemoryBuffer buffer, long length) => buffer switch
    {
        MemoryBuffer<float> b => b.Slice(0, length),
        MemoryBuffer<BFloat16> b => b.Slice(0, length),
        MemoryBuffer<Half> b => b.Slice(0, length),
        MemoryBuffer<int> b => b.Slice(0, length),
        MemoryBuffer<long> b => b.Slice(0, length),
        MemoryBuffer<byte> b => b.Slice(0, length),
        MemoryBuffer<uint> b => b.Slice(0, length),
        MemoryBuffer<double> b => b.Slice(0, length),
        null => throw new ArgumentNullException(nameof(buffer)),
        _ => throw new ArgumentException($"no view for {buffer.Describe()}", nameof(buffer)),
    };

    public static MemoryBuffer<T> Of<T>(MemoryBuffer<T> buffer, long length) where T : unmanaged => buffer.Slice(0, length);
}
