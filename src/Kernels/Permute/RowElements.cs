using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels;

/// <summary>
/// A row dtype as the fused CPU loops (combine, SiLU-and-mul) see it: 16 elements at a time converted to and from F32
/// in registers, one element at a time for a row's tail. The values are <see cref="HostRows.Read"/>'s and
/// <see cref="HostRows.Write"/>'s, bit for bit. Used as a type argument, so each dtype's loop compiles on its own.
/// </summary>
internal unsafe interface IRowElements
{
    /// <summary>Bytes an element.</summary>
    static abstract int Size { get; }

    /// <summary>Elements [index, index + 16) of <paramref name="row"/> as floats.</summary>
    static abstract Vector512<float> Load(byte* row, nint index);

    /// <summary>Rounds <paramref name="value"/> to the dtype into elements [index, index + 16) of <paramref name="row"/>.</summary>
    static abstract void Store(Vector512<float> value, byte* row, nint index);

    static abstract float LoadOne(byte* row, nint index);

    static abstract void StoreOne(float value, byte* row, nint index);

    /// <summary>destination.Length elements of <paramref name="row"/> as floats.</summary>
    static abstract void Read(byte* row, Span<float> destination);
}

internal unsafe struct F32Elements : IRowElements
{
    public static int Size => sizeof(float);

    public static Vector512<float> Load(byte* row, nint index) => Vector512.Load((float*)row + index);

    public static void Store(Vector512<float> value, byte* row, nint index) => value.Store((float*)row + index);

    public static float LoadOne(byte* row, nint index) => ((float*)row)[index];

    public static void StoreOne(float value, byte* row, nint index) => ((float*)row)[index] = value;

    public static void Read(byte* row, Span<float> destination) => new ReadOnlySpan<float>(row, destination.Length).CopyTo(destination);
}

internal unsafe struct Bf16Elements : IRowElements
{
    public static int Size => sizeof(ushort);

    /// <summary>Exact: the bf16 bits are the upper half of the float.</summary>
    public static Vector512<float> Load(byte* row, nint index) =>
        (Vector512.WidenLower(Vector256.Load((ushort*)row + index).ToVector512Unsafe()) << 16).AsSingle();

    /// <summary>Round to nearest even, NaN kept a quiet NaN: <see cref="BFloat16.FloatToBits"/> (and <see cref="HostRows.SingleToBf16"/>) on 16 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(Vector512<float> value, byte* row, nint index)
    {
        var bits = value.AsUInt32();
        var rounded = (bits + Vector512.Create(0x7FFFu) + ((bits >> 16) & Vector512<uint>.One)) >> 16;
        var nan = Vector512.GreaterThan(bits & Vector512.Create(0x7FFF_FFFFu), Vector512.Create(0x7F80_0000u));
        var result = Vector512.ConditionalSelect(nan, (bits >> 16) | Vector512.Create(0x0040u), rounded);
        // One vpmovdw where AVX-512 is there; the portable narrow elsewhere.
        var narrowed = Avx512F.IsSupported ? Avx512F.ConvertToVector256UInt16(result) : Vector256.Narrow(result.GetLower(), result.GetUpper());
        narrowed.Store((ushort*)row + index);
    }

    public static float LoadOne(byte* row, nint index) => BitConverter.UInt32BitsToSingle((uint)((ushort*)row)[index] << 16);

    public static void StoreOne(float value, byte* row, nint index) => ((ushort*)row)[index] = BFloat16.FloatToBits(value);

    public static void Read(byte* row, Span<float> destination) =>
        HostRows.Bf16ToSingle(new ReadOnlySpan<ushort>(row, destination.Length), destination);
}
