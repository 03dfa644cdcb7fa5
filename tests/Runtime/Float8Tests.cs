using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Tests.Runtime;

/// <summary>FP8 E4M3 decoding against hand-worked codes, and 128 x 128 block-scale dequantisation.</summary>
public sealed class Float8Tests
{
    [Theory]
    [InlineData(0x00, 0.0)]
    [InlineData(0x38, 1.0)]                 // exponent 7 (bias 7), mantissa 0
    [InlineData(0x40, 2.0)]                 // exponent 8
    [InlineData(0x3C, 1.5)]                 // exponent 7, mantissa 4/8
    [InlineData(0x7E, 448.0)]               // exponent 15, mantissa 6: 1.75 x 2^8, the largest finite
    [InlineData(0x01, 0.001953125)]         // subnormal 1/8 x 2^-6 = 2^-9
    [InlineData(0x07, 0.013671875)]         // subnormal 7/8 x 2^-6
    [InlineData(0x08, 0.015625)]            // smallest normal 2^-6
    [InlineData(0xB8, -1.0)]
    [InlineData(0xFE, -448.0)]
    [InlineData(0x78, 256.0)]               // exponent 15 is finite in E4M3 (no infinities)
    public void E4M3DecodesHandWorkedValues(int code, double expected) =>
        Assert.Equal((float)expected, Float8E4M3.ToFloat((byte)code));

    [Fact]
    public void E4M3NaNCodesAreNaNAndNothingElseIs()
    {
        Assert.True(float.IsNaN(Float8E4M3.ToFloat(0x7F)));
        Assert.True(float.IsNaN(Float8E4M3.ToFloat(0xFF)));
        for (int code = 0; code < 256; code++)
        {
            float value = Float8E4M3.ToFloat((byte)code);
            if (code is 0x7F or 0xFF)
                continue;
            Assert.True(float.IsFinite(value), $"code 0x{code:X2} decoded to {value}");
            Assert.True(Math.Abs(value) <= 448, $"code 0x{code:X2} decoded to {value}");
        }
    }

    [Fact]
    public void E4M3IsMonotoneOverPositiveCodes()
    {
        for (int code = 1; code < 0x7F; code++)
            Assert.True(Float8E4M3.ToFloat((byte)code) > Float8E4M3.ToFloat((byte)(code - 1)), $"0x{code:X2}");
    }

    [Fact]
    public void BlockScalesCoverPartialEdgeBlocks()
    {
        // [130, 200]: scale grid [2, 2]; the last block row has 2 rows and the last block column 72 columns.
        const int rows = 130, cols = 200;
        var weights = new float[rows * cols];
        for (int i = 0; i < weights.Length; i++)
            weights[i] = 1 + i % 3;
        float[] scaleInv = [0.5f, 2f, 4f, 8f];
        var dequantised = (float[])weights.Clone();
        TensorDecoding.ApplyBlockScales(dequantised, rows, cols, scaleInv);
        (int r, int c, float scale)[] probes = [(0, 0, 0.5f), (127, 127, 0.5f), (0, 128, 2f), (127, 199, 2f), (128, 0, 4f), (129, 127, 4f), (128, 128, 8f), (129, 199, 8f)];
        foreach (var (r, c, scale) in probes)
            Assert.Equal(weights[r * cols + c] * scale, dequantised[r * cols + c]);
        Assert.Throws<ArgumentException>(() => TensorDecoding.ApplyBlockScales(dequantised, rows, cols, new float[2]));
    }
}
