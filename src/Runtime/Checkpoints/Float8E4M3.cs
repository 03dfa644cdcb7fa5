namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// FP8 E4M3 (the "fn" variant DeepSeek-V3 stores): 1 sign bit, 4 exponent bits with bias 7, 3 mantissa
/// bits; no infinities; S.1111.111 (0x7F, 0xFF) is NaN, so the largest value is 0x7E = 1.75 x 2^8 = 448.
/// Exponent field 0 is subnormal: m/8 x 2^-6 (0x01 = 2^-9). Every code decodes exactly to float.
/// </summary>
public static class Float8E4M3
{
    private static readonly float[] s_table = BuildTable();

    public static float ToFloat(byte bits) => s_table[bits];

    public static void ToFloat(ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements, source {source.Length}", nameof(destination));
        for (int i = 0; i < source.Length; i++)
            destination[i] = s_table[source[i]];
    }

    private static float Decode(byte bits)
    {
        int sign = bits >> 7;
        int exponent = (bits >> 3) & 0xF;
        int mantissa = bits & 0x7;
        if (exponent == 0xF && mantissa == 0x7)
            return float.NaN;
        float magnitude = exponent == 0
            ? mantissa / 8f * MathF.Pow(2, -6)
            : (1 + mantissa / 8f) * MathF.Pow(2, exponent - 7);
        return sign == 1 ? -magnitude : magnitude;
    }

    private static float[] BuildTable()
    {
        var table = new float[256];
        for (int i = 0; i < 256; i++)
            table[i] = Decode((byte)i);
        return table;
    }
}

/// <summary>
/// FP8 E5M2: 1 sign bit, 5 exponent bits with bias 15, 2 mantissa bits, IEEE-like (infinities and NaN
/// at exponent 31). Decoded exactly: it is the upper byte of an IEEE half.
/// </summary>
public static class Float8E5M2
{
    public static float ToFloat(byte bits) => (float)BitConverter.UInt16BitsToHalf((ushort)(bits << 8));
}
