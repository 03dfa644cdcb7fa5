using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Collectives;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// nccl-tests-style verifiable data: small integers per (rank, index), so every partial sum of up to 8 ranks is
/// exact in F32, BF16 and F16 and a collective's answer can be checked with zero tolerance in any order.
/// </summary>
internal static class CollectiveTestData
{
    /// <summary>Element i of rank r's input: an integer in [-8, 8], shifted by a fresh per-test seed.</summary>
    public static float[] Verifiable(int seed, int rank, long length)
    {
        var data = new float[length];
        for (long i = 0; i < length; i++)
            data[i] = (float)(((seed + rank * 7919L + i * 131L) % 17 + 17) % 17 - 8);
        return data;
    }

    public static MemoryBuffer Upload(Accelerator accelerator, DType dtype, float[] values) => dtype switch
    {
        DType.F32 => accelerator.Upload<float>(values),
        DType.BF16 => accelerator.Upload<BFloat16>(TestData.ToBf16(values)),
        DType.F16 => accelerator.Upload<Half>(TestData.ToF16(values)),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static MemoryBuffer Poisoned(Accelerator accelerator, DType dtype, long length)
    {
        var buffer = accelerator.Allocate(dtype, length);
        TestData.Poison(buffer);
        return buffer;
    }

    public static float[] Download(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(x => (float)x).ToArray(),
        MemoryBuffer<Half> h => h.ToArray().Select(x => (float)x).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(buffer)),
    };

    /// <summary>The raw bits of a buffer's elements, for bit-identity checks.</summary>
    public static uint[] Bits(MemoryBuffer buffer) => buffer switch
    {
        MemoryBuffer<float> f => f.ToArray().Select(BitConverter.SingleToUInt32Bits).ToArray(),
        MemoryBuffer<BFloat16> b => b.ToArray().Select(x => (uint)x.Bits).ToArray(),
        MemoryBuffer<Half> h => h.ToArray().Select(x => (uint)BitConverter.HalfToUInt16Bits(x)).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(buffer)),
    };

    /// <summary>Element count for a named awkward size ("N-1" depends on the rank count).</summary>
    public static long Size(string name, int ranks) => name == "N-1" ? ranks - 1 : long.Parse(name);

    public static readonly string[] AwkwardSizes = ["0", "1", "7", "N-1", "1000003"];
    public static readonly DType[] AllDTypes = [DType.F32, DType.BF16, DType.F16];
    public static readonly int[] RankCounts = [2, 3, 4];

    /// <summary>Communicator options for tests: room for the largest test tensor, a short timeout.</summary>
    public static CommunicatorOptions Options(TimeSpan? timeout = null) => new()
    {
        CapacityBytes = 8L << 20,
        Timeout = timeout ?? TimeSpan.FromSeconds(20),
    };

    /// <summary>The element-wise sum of the ranks' inputs (exact in F32 for verifiable data).</summary>
    public static float[] SumOf(float[][] inputs, long count)
    {
        var sum = new float[count];
        for (long i = 0; i < count; i++)
            for (int r = 0; r < inputs.Length; r++)
                sum[i] += inputs[r][i];
        return sum;
    }

    /// <summary>
    /// Replays each rank's captured graph <paramref name="replays"/> times, every time with fresh verifiable inputs written
    /// into the captured input buffers (call s: <paramref name="inputs"/>[s][rank], <paramref name="counts"/>[s] elements,
    /// BF16) and poisoned outputs, and checks every output exactly against the sum of that replay's inputs.
    /// </summary>
    public static void ReplayWithFreshInputs(Communicator communicator, IReadOnlyList<Accelerator> group, IReadOnlyList<CudaGraph> graphs,
        IReadOnlyList<CudaStream> streams, IReadOnlyList<MemoryBuffer>[] inputs, IReadOnlyList<MemoryBuffer>[] outputs, long[] counts,
        int seed, int replays, string what)
    {
        int ranks = group.Count;
        for (int replay = 0; replay < replays; replay++)
        {
            var expected = new float[counts.Length][];
            for (int s = 0; s < counts.Length; s++)
            {
                var data = Enumerable.Range(0, ranks).Select(r => Verifiable(seed + 1 + replay * 7 + s, r, counts[s])).ToArray();
                expected[s] = SumOf(data, counts[s]);
                for (int r = 0; r < ranks; r++)
                {
                    using var fresh = Upload(group[r], DType.BF16, data[r]);
                    inputs[s][r].CopyFrom(fresh);
                    TestData.Poison(outputs[s][r]);
                    // Copy and poison ran on the default stream. Not the whole context: another test may be capturing
                    // a graph on this device, and a context synchronize (cuCtxSynchronize) would break its capture.
                    group[r].DefaultStream.Synchronize();
                }
            }
            for (int r = 0; r < ranks; r++)
                graphs[r].Launch(streams[r]);
            communicator.Synchronize();
            foreach (var stream in streams)
                stream.Synchronize();
            for (int s = 0; s < counts.Length; s++)
                for (int r = 0; r < ranks; r++)
                    Compare.Exact<float>(expected[s], Download(outputs[s][r]), $"{what}: replay {replay}, x{counts[s]}, rank {r} of {ranks} (seed {seed})");
        }
    }

    public static void DisposeAll(IEnumerable<MemoryBuffer> buffers)
    {
        foreach (var buffer in buffers.Distinct())
            buffer.Dispose();
    }

    public static MemoryBuffer Slice(MemoryBuffer buffer, long offset, long length) => buffer switch
    {
        MemoryBuffer<float> f => f.Slice(offset, length),
        MemoryBuffer<BFloat16> b => b.Slice(offset, length),
        MemoryBuffer<Half> h => h.Slice(offset, length),
        _ => throw new ArgumentOutOfRangeException(nameof(buffer)),
    };

    /// <summary>
    /// An AllReduce on 2 GPUs of operands that start 1-3 elements into an allocation (not 8-byte aligned; output and input
    /// differently), the output followed by a guard: exact sums, and not one element written outside the output.
    /// <paramref name="ranOn"/> checks the communicator took the path meant.
    /// </summary>
    public static void AssertMisalignedOperandsSumExactly(CommunicatorOptions options, MoeRuntime.Collectives.AllReduce.AllReduceAlgorithm algorithm, DType dtype,
                                                          int inputShift, int outputShift, Func<Communicator, bool> ranOn)
    {
        const int Guard = 5, ranks = 2;
        const long count = 10_007;
        var group = TestDevices.GetGroup("cuda", ranks);
        TestData.NewRandom(out int seed);
        var inputs = Enumerable.Range(0, ranks).Select(r => Verifiable(seed, r, count)).ToArray();
        var expected = SumOf(inputs, count);
        using var communicator = Communicator.Create(group, options);
        var owners = new List<MemoryBuffer>();
        try
        {
            var input = new List<MemoryBuffer>();
            var output = new List<MemoryBuffer>();
            for (int r = 0; r < ranks; r++)
            {
                var shifted = new float[count + inputShift];
                inputs[r].CopyTo(shifted, inputShift);
                owners.Add(Upload(group[r], dtype, shifted));
                owners.Add(Poisoned(group[r], dtype, count + outputShift + Guard));
                input.Add(Slice(owners[^2], inputShift, count));
                output.Add(Slice(owners[^1], outputShift, count));
            }
            var poison = Bits(owners[1])[0];
            communicator.AllReduce(input, output, algorithm);
            Assert.True(ranOn(communicator), $"misaligned {algorithm} {DTypes.Name(dtype)}: not on the path meant");
            for (int r = 0; r < ranks; r++)
            {
                Compare.Exact<float>(expected, Download(output[r]), $"misaligned {algorithm} {DTypes.Name(dtype)} rank {r} (seed {seed}, shifts {inputShift}/{outputShift})");
                // Nothing written before or after the output operand.
                var around = Bits(owners[2 * r + 1]);
                Assert.All(around[..outputShift].Concat(around[^Guard..]), bits => Assert.Equal(poison, bits));
            }
        }
        finally
        {
            DisposeAll(owners);
        }
    }
}
