using System.Collections.Concurrent;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels;

/// <summary>
/// CPU twins' access to F32/BF16/F16 buffers in CPU memory as rows of floats: read converts to F32
/// exactly, write rounds to nearest even (the same rounding the CUDA kernels use).
/// </summary>
internal static class HostRows
{
    public static bool IsDataType(DType dtype) => dtype is DType.F32 or DType.BF16 or DType.F16;

    /// <summary>Reads <paramref name="destination"/>.Length elements from element <paramref name="offset"/> of <paramref name="buffer"/>.</summary>
    public static unsafe void Read(MemoryBuffer buffer, long offset, Span<float> destination)
    {
        int n = destination.Length;
        switch (buffer.DType)
        {
            case DType.F32:
                new ReadOnlySpan<float>((float*)buffer.Pointer + offset, n).CopyTo(destination);
                break;
            case DType.F16:
                TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>((Half*)buffer.Pointer + offset, n), destination);
                break;
            case DType.BF16:
                Bf16ToSingle(new ReadOnlySpan<ushort>((ushort*)buffer.Pointer + offset, n), destination);
                break;
            default:
                throw new ArgumentException($"{buffer.Describe()} is not F32, BF16 or F16 data", nameof(buffer));
        }
    }

    /// <summary>Writes <paramref name="source"/> to element <paramref name="offset"/> of <paramref name="buffer"/>, rounding to its dtype.</summary>
    public static unsafe void Write(ReadOnlySpan<float> source, MemoryBuffer buffer, long offset)
    {
        int n = source.Length;
        switch (buffer.DType)
        {
            case DType.F32:
                source.CopyTo(new Span<float>((float*)buffer.Pointer + offset, n));
                break;
            case DType.F16:
                TensorPrimitives.ConvertToHalf(source, new Span<Half>((Half*)buffer.Pointer + offset, n));
                break;
            case DType.BF16:
                SingleToBf16(source, new Span<ushort>((ushort*)buffer.Pointer + offset, n));
                break;
            default:
                throw new ArgumentException($"{buffer.Describe()} is not F32, BF16 or F16 data", nameof(buffer));
        }
    }

    /// <summary>bf16 -> f32, exact (the bf16 bits are the upper half of the float); 8 at a time where the CPU has 256-bit vectors.</summary>
    internal static void Bf16ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + Vector128<ushort>.Count <= source.Length; i += Vector128<ushort>.Count)
            {
                var (lower, upper) = Vector128.Widen(Vector128.Create(source.Slice(i, Vector128<ushort>.Count)));
                (Vector256.Create(lower, upper) << 16).CopyTo(bits[i..]);
            }
        }
        for (; i < source.Length; i++)
            bits[i] = (uint)source[i] << 16;
    }

    /// <summary>f32 -> bf16, round to nearest even, NaN kept a (quiet) NaN: <see cref="BFloat16.FloatToBits"/>, vectorised.</summary>
    internal static void SingleToBf16(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        var bits = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var one = Vector256.Create(1u);
            var bias = Vector256.Create(0x7FFFu);
            var absMask = Vector256.Create(0x7FFF_FFFFu);
            var infinity = Vector256.Create(0x7F80_0000u);
            var quiet = Vector256.Create(0x0040u);
            for (; i + 2 * Vector256<uint>.Count <= source.Length; i += 2 * Vector256<uint>.Count)
            {
                var a = Round(Vector256.Create(bits.Slice(i, Vector256<uint>.Count)));
                var b = Round(Vector256.Create(bits.Slice(i + Vector256<uint>.Count, Vector256<uint>.Count)));
                Vector256.Narrow(a, b).CopyTo(destination[i..]);
            }

            Vector256<uint> Round(Vector256<uint> x)
            {
                var rounded = (x + bias + ((x >> 16) & one)) >> 16;
                var nan = Vector256.GreaterThan(x & absMask, infinity);
                return Vector256.ConditionalSelect(nan, (x >> 16) | quiet, rounded);
            }
        }
        for (; i < source.Length; i++)
            destination[i] = BFloat16.FloatToBits(source[i]);
    }

    /// <summary>
    /// [0, <paramref name="count"/>) (count &gt; 0) in about sixteen ranges a core, for Parallel.ForEach over rows or tokens.
    /// Ranges, not single rows: a range pays for its scratch and scheduling once. Sixteen a core: cores take ranges as they
    /// finish, so one slowed by other work on the machine holds the rest up by a sixteenth of its share at most.
    /// </summary>
    public static OrderablePartitioner<Tuple<int, int>> Ranges(int count) =>
        Partitioner.Create(0, count, Math.Max(1, count / (16 * Environment.ProcessorCount)));

    /// <summary>The CUDA kernels' name suffix for a data dtype: f32, bf16, f16.</summary>
    public static string Suffix(DType dtype) => dtype switch
    {
        DType.F32 => "f32",
        DType.BF16 => "bf16",
        DType.F16 => "f16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a data dtype"),
    };

    /// <summary>Throws unless <paramref name="buffer"/> is live, on <paramref name="accelerator"/>, and holds at least <paramref name="length"/> elements.</summary>
    public static void Check(MemoryBuffer? buffer, Accelerator accelerator, long length, string name)
    {
        if (buffer is null)
            throw new ArgumentNullException(name);
        buffer.ThrowIfDisposed();
        if (!ReferenceEquals(buffer.Accelerator, accelerator))
            throw new ArgumentException($"{name} ({buffer.Describe()}) must live on {accelerator.Name}", name);
        if (buffer.Length < length)
            throw new ArgumentException($"{name} ({buffer.Describe()}) holds {buffer.Length} elements; {length} are needed", name);
    }

    public static void CheckDType(MemoryBuffer buffer, DType expected, string name)
    {
        if (buffer.DType != expected)
            throw new ArgumentException($"{name} must be {DTypes.Name(expected)}, not {DTypes.Name(buffer.DType)}", name);
    }

    public static void CheckDataType(MemoryBuffer buffer, string name)
    {
        if (!IsDataType(buffer.DType))
            throw new ArgumentException($"{name} must be f32, bf16 or f16, not {DTypes.Name(buffer.DType)}", name);
    }
}
