using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// A dense row-major tensor in host memory, held as a typed array: float[] (F32), BFloat16[] (BF16)
/// or Half[] (F16). Weights loaded from checkpoints arrive in this form, converted to the dtype asked for.
/// </summary>
public sealed class HostTensor
{
    private HostTensor(DType dtype, long[] shape, Array data)
    {
        DType = dtype;
        Shape = shape;
        Data = data;
    }

    public DType DType { get; }

    public long[] Shape { get; }

    /// <summary>The elements: a float[], BFloat16[] or Half[] according to <see cref="DType"/>.</summary>
    public Array Data { get; }

    public long ElementCount => Data.LongLength;

    public string ShapeText => "[" + string.Join(", ", Shape) + "]";

    public static bool IsSupported(DType dtype) => dtype is DType.F32 or DType.BF16 or DType.F16;

    /// <summary>Rounds <paramref name="values"/> to <paramref name="dtype"/> (round to nearest even).</summary>
    public static HostTensor FromFloats(ReadOnlySpan<float> values, long[] shape, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (long dim in shape)
            count = checked(count * dim);
        if (count != values.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] holds {count} elements, got {values.Length}", nameof(shape));
        Array data = dtype switch
        {
            DType.F32 => values.ToArray(),
            DType.BF16 => Convert(values, v => (BFloat16)v),
            DType.F16 => Convert(values, v => (Half)v),
            _ => throw new ArgumentException($"host tensors hold f32, bf16 or f16, not {DTypes.Name(dtype)}", nameof(dtype)),
        };
        return new HostTensor(dtype, (long[])shape.Clone(), data);
    }

    /// <summary>The typed element array; <typeparamref name="T"/> must match <see cref="DType"/>.</summary>
    public T[] As<T>() where T : unmanaged =>
        Data as T[] ?? throw new InvalidOperationException($"tensor holds {DTypes.Name(DType)}, not {typeof(T).Name}");

    public float[] ToFloats()
    {
        var result = new float[ElementCount];
        switch (Data)
        {
            case float[] f32: f32.CopyTo(result, 0); break;
            case BFloat16[] bf16: for (long i = 0; i < result.LongLength; i++) result[i] = bf16[i]; break;
            case Half[] f16: for (long i = 0; i < result.LongLength; i++) result[i] = (float)f16[i]; break;
        }
        return result;
    }

    public double[] ToDoubles()
    {
        var floats = ToFloats();
        var result = new double[floats.LongLength];
        for (long i = 0; i < result.LongLength; i++)
            result[i] = floats[i];
        return result;
    }

    private static T[] Convert<T>(ReadOnlySpan<float> values, Func<float, T> convert)
    {
        var result = new T[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = convert(values[i]);
        return result;
    }
}
