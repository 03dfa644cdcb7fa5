using System.Runtime.Intrinsics;
using MoeRuntime.Accelerators;
using MoeRuntime.Kernels;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>The fused loops' in-register bf16 conversions against <see cref="BFloat16"/>'s scalar ones, bit for bit.</summary>
public class RowElementsTests
{
    [Fact]
    public unsafe void Bf16LoadAndStoreMatchTheScalarConversions()
    {
        var random = TestData.NewRandom(out int seed);
        var values = new List<float> { 0f, -0f, 1f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, float.Epsilon,
            BitConverter.UInt32BitsToSingle(0x3F80_8000), BitConverter.UInt32BitsToSingle(0x3F81_8000), BitConverter.UInt32BitsToSingle(0x7F7F_FFFF),
            BitConverter.UInt32BitsToSingle(0x7F80_0001), BitConverter.UInt32BitsToSingle(0xFFC0_0001), BitConverter.UInt32BitsToSingle(0x0000_8000) };
        while (values.Count < 16 * 64 + 9) // the vector body and a scalar tail
            values.Add(BitConverter.UInt32BitsToSingle((uint)random.NextInt64(0, 1L << 32)));
        var source = values.ToArray();

        var narrowed = new ushort[source.Length];
        fixed (ushort* row = narrowed)
        {
            int i = 0;
            for (; i + 16 <= source.Length; i += 16)
                Bf16Elements.Store(Vector512.Create(source, i), (byte*)row, i);
            for (; i < source.Length; i++)
                Bf16Elements.StoreOne(source[i], (byte*)row, i);
        }
        Compare.Exact<ushort>(source.Select(BFloat16.FloatToBits).ToArray(), narrowed, $"f32 -> bf16, seed {seed}");

        var widened = new uint[source.Length];
        fixed (ushort* row = narrowed)
        {
            int i = 0;
            for (; i + 16 <= source.Length; i += 16)
                Bf16Elements.Load((byte*)row, i).AsUInt32().CopyTo(widened, i);
            for (; i < source.Length; i++)
                widened[i] = BitConverter.SingleToUInt32Bits(Bf16Elements.LoadOne((byte*)row, i));
        }
        Compare.Exact<uint>(narrowed.Select(b => (uint)b << 16).ToArray(), widened, $"bf16 -> f32, seed {seed}");
    }
}
