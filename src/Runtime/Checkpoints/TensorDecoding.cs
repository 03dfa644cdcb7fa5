using System.Buffers.Binary;

namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// Decoding of stored floating-point tensors to float, and DeepSeek-V3's FP8 block dequantisation.
/// </summary>
public static class TensorDecoding
{
    /// <summary>Block edge of DeepSeek-V3's weight_scale_inv: one scale per 128 x 128 tile.</summary>
    public const int ScaleBlock = 128;

    public static bool IsFloatingPoint(SafetensorsDType dtype) => dtype is SafetensorsDType.F64 or SafetensorsDType.F32
        or SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2;

    /// <summary>Decodes little-endian <paramref name="bytes"/> of <paramref name="dtype"/> into floats (exact except F64 -> F32 rounding).</summary>
    public static void ToFloat(SafetensorsDType dtype, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        int width = SafetensorsDTypes.SizeOf(dtype);
        if ((long)destination.Length * width != bytes.Length)
            throw new ArgumentException($"{bytes.Length} bytes of {dtype} do not make {destination.Length} elements", nameof(destination));
        switch (dtype)
        {
            case SafetensorsDType.F32:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
                break;
            case SafetensorsDType.F64:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(bytes[(8 * i)..]);
                break;
            case SafetensorsDType.F16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(2 * i)..]);
                break;
            case SafetensorsDType.BF16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(2 * i)..]) << 16);
                break;
            case SafetensorsDType.F8_E4M3:
                Float8E4M3.ToFloat(bytes, destination);
                break;
            case SafetensorsDType.F8_E5M2:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = Float8E5M2.ToFloat(bytes[i]);
                break;
            default:
                throw new NotSupportedException($"{dtype} is not a floating-point dtype");
        }
    }

    /// <summary>
    /// In place: weights[r, c] *= scaleInv[r / 128, c / 128] for a [rows, cols] matrix with a
    /// [ceil(rows/128), ceil(cols/128)] scale grid (the last block row/column may be partial).
    /// DeepSeek names the tensor scale_inv because the quantiser divided by it; dequantising multiplies.
    /// </summary>
    public static void ApplyBlockScales(Span<float> weights, int rows, int cols, ReadOnlySpan<float> scaleInv)
    {
        if ((long)rows * cols != weights.Length)
            throw new ArgumentException($"weights hold {weights.Length} elements, not {rows} x {cols}", nameof(weights));
        int scaleRows = (rows + ScaleBlock - 1) / ScaleBlock;
        int scaleCols = (cols + ScaleBlock - 1) / ScaleBlock;
        if (scaleInv.Length != scaleRows * scaleCols)
            throw new ArgumentException($"scale grid holds {scaleInv.Length} elements, a [{rows}, {cols}] matrix needs [{scaleRows}, {scaleCols}]", nameof(scaleInv));
        for (int r = 0; r < rows; r++)
        {
            var row = weights.Slice(r * cols, cols);
            var scaleRow = scaleInv.Slice(r / ScaleBlock * scaleCols, scaleCols);
            for (int c = 0; c < cols; c++)
                row[c] *= scaleRow[c / ScaleBlock];
        }
    }
}
