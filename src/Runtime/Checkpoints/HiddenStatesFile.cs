namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// The input/output files of <c>moe run</c> and the transformers fixtures: a safetensors file with one
/// tensor <c>hidden_states</c> [T, H] (read as F32, BF16, F16 or F64; written as F32).
/// </summary>
public static class HiddenStatesFile
{
    public const string TensorName = "hidden_states";

    /// <summary>Reads hidden_states [T, H] as floats (a [1, T, H] batch of one is accepted too).</summary>
    public static (float[] Values, int Tokens, int Hidden) Read(string path)
    {
        using var file = SafetensorsFile.Open(path);
        var info = file.GetInfo(TensorName);
        long[] shape = info.Shape is [1, _, _] ? info.Shape[1..] : info.Shape;
        if (shape.Length != 2)
            throw new CheckpointFormatException(path, TensorName, $"shape {info.ShapeText} is not [tokens, hidden]");
        if (!TensorDecoding.IsFloatingPoint(info.DType) || info.DType is SafetensorsDType.F8_E4M3 or SafetensorsDType.F8_E5M2)
            throw new CheckpointFormatException(path, TensorName, $"dtype {info.DType} is not F32, BF16, F16 or F64");
        if (info.ElementCount > Array.MaxLength)
            throw new CheckpointFormatException(path, TensorName, $"{info.ElementCount} elements do not fit one array");
        var values = new float[info.ElementCount];
        TensorDecoding.ToFloat(info.DType, file.ReadBytes(TensorName), values);
        return (values, (int)shape[0], (int)shape[1]);
    }

    public static void Write(string path, ReadOnlySpan<float> values, int tokens, int hidden)
    {
        if ((long)tokens * hidden != values.Length)
            throw new ArgumentException($"{values.Length} values are not [{tokens}, {hidden}]", nameof(values));
        new SafetensorsWriter().Add(TensorName, values, tokens, hidden).Write(path);
    }
}
