using MoeRuntime.Accelerators;

namespace MoeRuntime.Tests.Accelerators;

public class BFloat16Tests
{
    [Theory]
    [InlineData(1.0f, (ushort)0x3F80)]
    [InlineData(-2.0f, (ushort)0xC000)]
    [InlineData(0.0f, (ushort)0x0000)]
    [InlineData(float.PositiveInfinity, (ushort)0x7F80)]
    // 1 + 2^-8 lies exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
    [InlineData(1.00390625f, (ushort)0x3F80)]
    // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up to even.
    [InlineData(1.01171875f, (ushort)0x3F82)]
    public void RoundsToNearestEven(float value, ushort bits) => Assert.Equal(bits, ((BFloat16)value).Bits);

    [Fact]
    public void ConvertsBackExactlyAndKeepsNaN()
    {
        for (int bits = 0; bits < 0x10000; bits += 7)
        {
            var b = BFloat16.FromBits((ushort)bits);
            float f = b;
            if (float.IsNaN(f))
                Assert.True(float.IsNaN((BFloat16)f));
            else
                Assert.Equal(b.Bits, ((BFloat16)f).Bits);
        }
        Assert.True(float.IsNaN((BFloat16)float.NaN));
    }
}
