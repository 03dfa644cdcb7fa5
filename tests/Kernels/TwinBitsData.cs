using MoeRuntime.Accelerators;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// Inputs and outputs as raw bits, for the tests that hold a fast CPU twin to the plain one bit for bit:
/// random values of the dtype with, on request, its special values sprinkled in (signed zeros, subnormals,
/// the largest finite values, infinities, quiet and signalling NaNs).
/// </summary>
internal static class TwinBitsData
{
    private static readonly uint[] F32Specials =
        [0x0000_0000, 0x8000_0000, 0x0000_0001, 0x807F_FFFF, 0x7F7F_FFFF, 0xFF7F_FFFF, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001, 0xFFC1_2345];
    private static readonly ushort[] Bf16Specials = [0x0000, 0x8000, 0x0001, 0x807F, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1];
    private static readonly ushort[] F16Specials = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE12];

    /// <summary>A buffer of <paramref name="length"/> values uniform in [low, high) rounded to the dtype; with specials, one in 40 is special.</summary>
    public static MemoryBuffer Upload(Accelerator accelerator, Random random, DType dtype, int length, bool specials, float low = -4f, float high = 4f)
    {
        bool Special() => specials && random.Next(40) == 0;
        var values = new float[length];
        for (int i = 0; i < length; i++)
            values[i] = low + (high - low) * random.NextSingle();
        switch (dtype)
        {
            case DType.F32:
                for (int i = 0; i < length; i++)
                    if (Special())
                        values[i] = BitConverter.UInt32BitsToSingle(F32Specials[random.Next(F32Specials.Length)]);
                return accelerator.Upload<float>(values);
            case DType.BF16:
                var bf16 = values.Select(v => (BFloat16)v).ToArray();
                for (int i = 0; i < length; i++)
                    if (Special())
                        bf16[i] = BFloat16.FromBits(Bf16Specials[random.Next(Bf16Specials.Length)]);
                return accelerator.Upload<BFloat16>(bf16);
            case DType.F16:
                var f16 = values.Select(v => (Half)v).ToArray();
                for (int i = 0; i < length; i++)
                    if (Special())
                        f16[i] = BitConverter.UInt16BitsToHalf(F16Specials[random.Next(F16Specials.Length)]);
                return accelerator.Upload<Half>(f16);
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype));
        }
    }

    /// <summary>
    /// The buffer's elements as raw bits, widened to uint; every NaN as one value (<see cref="AnyNaN"/>). Which NaN's sign
    /// and payload survive where two NaNs meet depends on the operand order the JIT picks, which differs between its tiers
    /// in the plain twin itself (CI, thirtieth session: 0x7FC1 against 0x7FC0, 0xFFC0 against 0x7FC0). Every other value,
    /// infinities and signed zeros included, stays exact.
    /// </summary>
    public static uint[] Bits(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray().Select(v => float.IsNaN(v) ? AnyNaN : BitConverter.SingleToUInt32Bits(v)).ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(v => float.IsNaN((float)v) ? AnyNaN : v.Bits).ToArray(),
        MemoryBuffer<Half> h => h.ToArray().Select(v => Half.IsNaN(v) ? AnyNaN : BitConverter.HalfToUInt16Bits(v)).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(buffer)),
    };

    /// <summary>What <see cref="Bits"/> gives for any NaN (of F32 a NaN's own bits; above the 16 bits of BF16 and F16).</summary>
    public const uint AnyNaN = 0xFFFF_FFFFu;
}
