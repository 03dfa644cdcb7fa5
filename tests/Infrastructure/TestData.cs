using MoeRuntime.Accelerators;

namespace MoeRuntime.Tests.Infrastructure;

/// <summary>Fresh random inputs (never zeros) and NaN poison for outputs.</summary>
public static class TestData
{
    private static int s_seed = Environment.TickCount;

    /// <summary>A new generator per call; the seed goes into failure messages through <see cref="Random"/>'s caller.</summary>
    public static Random NewRandom(out int seed)
    {
        seed = Interlocked.Increment(ref s_seed);
        return new Random(seed);
    }

    public static float[] Uniform(Random random, int length, float low = -1f, float high = 1f)
    {
        var data = new float[length];
        for (int i = 0; i < length; i++)
            data[i] = low + (high - low) * random.NextSingle();
        return data;
    }

    public static BFloat16[] ToBf16(ReadOnlySpan<float> values)
    {
        var result = new BFloat16[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = (BFloat16)values[i];
        return result;
    }

    public static Half[] ToF16(ReadOnlySpan<float> values)
    {
        var result = new Half[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = (Half)values[i];
        return result;
    }

    /// <summary>Fills a float-like buffer with NaN so that any element a kernel fails to write shows up.</summary>
    public static void Poison(MemoryBuffer buffer)
    {
        switch (buffer)
        {
            case MemoryBuffer<float> f: f.Fill(float.NaN); break;
            case MemoryBuffer<BFloat16> b: b.Fill(BFloat16.FromBits(0x7FC0)); break;
            case MemoryBuffer<Half> h: h.Fill(Half.NaN); break;
            case MemoryBuffer<int> i: i.Fill(int.MinValue); break;
            default: buffer.FillBytes(0xFF); break;
        }
    }
}
