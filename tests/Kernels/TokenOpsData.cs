using MoeRuntime.Accelerators;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>Data helpers for the token-op tests: F32/BF16/F16 buffers from float values, and back.</summary>
internal static class TokenOpsData
{
    /// <summary>The value as the dtype stores it (round to nearest even), back in F32.</summary>
    public static float[] RoundTo(DType dtype, float[] values) => dtype switch
    {
        DType.F32 => values.ToArray(),
        DType.BF16 => values.Select(v => (float)(BFloat16)v).ToArray(),
        DType.F16 => values.Select(v => (float)(Half)v).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static MemoryBuffer Upload(Accelerator accelerator, DType dtype, float[] values) => dtype switch
    {
        DType.F32 => accelerator.Upload<float>(values),
        DType.BF16 => accelerator.Upload<BFloat16>(TestData.ToBf16(values)),
        DType.F16 => accelerator.Upload<Half>(TestData.ToF16(values)),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static float[] Download(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(v => (float)v).ToArray(),
        MemoryBuffer<Half> h => h.ToArray().Select(v => (float)v).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(buffer)),
    };

    /// <summary>An allocated and NaN-poisoned buffer.</summary>
    public static MemoryBuffer Poisoned(Accelerator accelerator, DType dtype, long length)
    {
        var buffer = accelerator.Allocate(dtype, length);
        TestData.Poison(buffer);
        return buffer;
    }

    public static MemoryBuffer<T> Poisoned<T>(Accelerator accelerator, long length) where T : unmanaged
    {
        var buffer = accelerator.Allocate<T>(length);
        TestData.Poison(buffer);
        return buffer;
    }

    /// <summary>
    /// Routing ids [tokens, k] with distinct experts per token, drawn from a skewed distribution:
    /// "uniform", "one" (every token's first choice is expert 0: the rest of the experts see few tokens),
    /// "half" (only the lower half of the experts is ever chosen: the upper half gets none).
    /// </summary>
    public static int[] RandomIds(Random random, int tokens, int k, int experts, string skew)
    {
        var ids = new int[tokens * k];
        int pool = skew == "half" ? Math.Max(k, experts / 2) : experts;
        for (int t = 0; t < tokens; t++)
        {
            var chosen = new HashSet<int>();
            if (skew == "one")
                chosen.Add(0);
            while (chosen.Count < k)
                chosen.Add(random.Next(pool));
            var list = chosen.ToList();
            for (int j = 0; j < k; j++)
                ids[t * k + j] = list[j];
        }
        return ids;
    }
}
