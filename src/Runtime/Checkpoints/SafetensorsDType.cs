namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>Element types a safetensors header may name (the spelling on disk is the enum name).</summary>
public enum SafetensorsDType
{
    F64,
    F32,
    F16,
    BF16,
    F8_E4M3,
    F8_E5M2,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    BOOL,
}

public static class SafetensorsDTypes
{
    public static int SizeOf(SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F64 or SafetensorsDType.I64 or SafetensorsDType.U64 => 8,
        SafetensorsDType.F32 or SafetensorsDType.I32 or SafetensorsDType.U32 => 4,
        SafetensorsDType.F16 or SafetensorsDType.BF16 or SafetensorsDType.I16 or SafetensorsDType.U16 => 2,
        SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2 or SafetensorsDType.I8 or SafetensorsDType.U8 or SafetensorsDType.BOOL => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown safetensors dtype"),
    };

    /// <summary>Parses the on-disk spelling exactly (case-sensitive, as the format specifies); null when unknown.</summary>
    public static SafetensorsDType? TryParse(string text) =>
        Enum.TryParse<SafetensorsDType>(text, ignoreCase: false, out var dtype) && Enum.IsDefined(dtype) && !char.IsDigit(text[0])
            ? dtype
            : null;

    public static string Name(SafetensorsDType dtype) => dtype.ToString();
}
