using MoeRuntime.Accelerators;
using MoeRuntime.Kernels;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>The CPU twins' vectorised bf16 conversions against the scalar <see cref="BFloat16"/> ones, bit for bit.</summary>
public class HostRowsTests
{
    [Fact]
    public void VectorisedBf16ConversionsMatchTheScalarOnes()
    {
        var random = TestData.NewRandom(out int seed);
        var values = new List<float> { 0f, -0f, 1f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, float.Epsilon,
            BitConverter.UInt32BitsToSingle(0x3F80_8000), BitConverter.UInt32BitsToSingle(0x3F81_8000), BitConverter.UInt32BitsToSingle(0x7F7F_FFFF),
            BitConverter.UInt32BitsToSingle(0x7F80_0001), BitConverter.UInt32BitsToSingle(0xFFC0_0001) };
        for (int i = 0; i < 1000; i++)
            values.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        var source = values.ToArray(); // 1014 values: vector body and scalar tail

        var narrowed = new ushort[source.Length];
        HostRows.SingleToBf16(source, narrowed);
        Compare.Exact<ushort>(source.Select(BFloat16.FloatToBits).ToArray(), narrowed, $"f32 -> bf16, seed {seed}");

        var widened = new float[source.Length];
        HostRows.Bf16ToSingle(narrowed, widened);
        Compare.Exact<uint>(narrowed.Select(b => (uint)b << 16).ToArray(), widened.Select(BitConverter.SingleToUInt32Bits).ToArray(), $"bf16 -> f32, seed {seed}");
    }
}
