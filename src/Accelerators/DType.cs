namespace MoeRuntime.Accelerators;

/// <summary>Element types of device buffers. Data in F32/BF16/F16, indices in I32/I64, raw bytes in U8.</summary>
public enum DType
{
    F32,
    F16,
    BF16,
    I32,
    I64,
    U8,
    F64,
    U32,
}

public static class DTypes
{
    public static int SizeOf(DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 or DType.U32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.I64 or DType.F64 => 8,
        DType.U8 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>The dtype a C# element type stands for; throws for types with no dtype.</summary>
    public static DType Of<T>() where T : unmanaged => Cache<T>.Value
        ?? throw new NotSupportedException($"{typeof(T).Name} has no dtype (use float, Half, BFloat16, int, long, byte, double or uint)");

    public static DType? TryOf(Type type) =>
        type == typeof(float) ? DType.F32 :
        type == typeof(Half) ? DType.F16 :
        type == typeof(BFloat16) ? DType.BF16 :
        type == typeof(int) ? DType.I32 :
        type == typeof(long) ? DType.I64 :
        type == typeof(byte) ? DType.U8 :
        type == typeof(double) ? DType.F64 :
        type == typeof(uint) ? DType.U32 :
        null;

    public static bool IsFloatingPoint(DType dtype) => dtype is DType.F32 or DType.F16 or DType.BF16 or DType.F64;

    /// <summary>Lower-case name used in the CLI and file formats: f32, bf16, f16, i32, ...</summary>
    public static string Name(DType dtype) => dtype.ToString().ToLowerInvariant();

    public static DType Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "f32" or "float32" or "float" => DType.F32,
        "f16" or "float16" or "half" => DType.F16,
        "bf16" or "bfloat16" => DType.BF16,
        "i32" or "int32" => DType.I32,
        "i64" or "int64" => DType.I64,
        "u8" or "uint8" => DType.U8,
        "f64" or "float64" => DType.F64,
        "u32" or "uint32" => DType.U32,
        _ => throw new ArgumentException($"unknown dtype '{text}' (expected f32, bf16, f16, i32, i64, u8, f64 or u32)", nameof(text)),
    };

    private static class Cache<T> where T : unmanaged
    {
        public static readonly DType? Value = TryOf(typeof(T));
    }
}
