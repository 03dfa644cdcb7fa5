using System.Buffers.Binary;
using System.Text;
using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>The safetensors reader against well-formed files from our writer and hand-made broken ones.</summary>
public sealed class SafetensorsTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    /// <summary>Writes 8-byte length + header text + data bytes, exactly as given (no checks).</summary>
    private string RawFile(string header, int dataBytes, long? claimedHeaderLength = null)
    {
        string path = _folder.File(Guid.NewGuid().ToString("N") + ".safetensors");
        var headerBytes = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + headerBytes.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)(claimedHeaderLength ?? headerBytes.Length));
        headerBytes.CopyTo(bytes, 8);
        for (int i = 0; i < dataBytes; i++)
            bytes[8 + headerBytes.Length + i] = (byte)(i * 7 + 1);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static CheckpointFormatException Rejects(string path, string? tensor, string fragment)
    {
        var error = Assert.Throws<CheckpointFormatException>(() => SafetensorsFile.Open(path).Dispose());
        Assert.Equal(path, error.FilePath);
        Assert.Contains(path, error.Message);
        Assert.Equal(tensor, error.TensorName);
        Assert.Contains(fragment, error.Message);
        return error;
    }

    public static TheoryData<SafetensorsDType> AllDTypes => [.. Enum.GetValues<SafetensorsDType>()];

    [Theory]
    [MemberData(nameof(AllDTypes))]
    public void RoundTripKeepsBytesShapeAndDType(SafetensorsDType dtype)
    {
        var random = TestData.NewRandom(out int seed);
        long[] shape = [3, 5];
        var data = new byte[15 * SafetensorsDTypes.SizeOf(dtype)];
        random.NextBytes(data);
        var scalar = new byte[SafetensorsDTypes.SizeOf(dtype)];
        random.NextBytes(scalar);
        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = "pt";
        writer.Add("a.weight", dtype, shape, data);
        writer.Add("scalar", dtype, [], scalar);
        writer.Add("empty", dtype, [0, 4], []);
        string path = _folder.File($"{dtype}.safetensors");
        writer.Write(path);

        using var file = SafetensorsFile.Open(path);
        var info = file.GetInfo("a.weight");
        Assert.Equal(dtype, info.DType);
        Assert.Equal(shape, info.Shape);
        Assert.Equal(data, file.ReadBytes("a.weight"));
        Assert.Equal(scalar, file.ReadBytes("scalar"));
        Assert.Empty(file.ReadBytes("empty"));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(3, file.Tensors.Count);
        _ = seed;
    }

    [Fact]
    public void TypedRoundTripDecodesToTheSameFloats()
    {
        var random = TestData.NewRandom(out int seed);
        var values = TestData.Uniform(random, 24);
        var bf16 = TestData.ToBf16(values);
        var f16 = values.Select(v => (Half)v).ToArray();
        string path = _folder.File("typed.safetensors");
        new SafetensorsWriter().Add("f32", values, 4, 6).Add("bf16", bf16, 4, 6).Add("f16", f16, 24).Write(path);

        using var file = SafetensorsFile.Open(path);
        var decoded = new float[24];
        TensorDecoding.ToFloat(SafetensorsDType.F32, file.ReadBytes("f32"), decoded);
        Compare.Exact<float>(values, decoded, $"f32 (seed {seed})");
        TensorDecoding.ToFloat(SafetensorsDType.BF16, file.ReadBytes("bf16"), decoded);
        Compare.Exact<float>(bf16.Select(b => (float)b).ToArray(), decoded, $"bf16 (seed {seed})");
        TensorDecoding.ToFloat(SafetensorsDType.F16, file.ReadBytes("f16"), decoded);
        Compare.Exact<float>(f16.Select(h => (float)h).ToArray(), decoded, $"f16 (seed {seed})");
    }

    [Fact]
    public void SliceReadsReturnTheRequestedBytes()
    {
        var data = Enumerable.Range(0, 64).Select(i => (byte)i).ToArray();
        string path = _folder.File("slice.safetensors");
        new SafetensorsWriter().Add("x", SafetensorsDType.U8, [64], data).Write(path);
        using var file = SafetensorsFile.Open(path);
        var slice = new byte[10];
        file.ReadBytes("x", 20, slice);
        Assert.Equal(data[20..30], slice);
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadBytes("x", 60, new byte[10]));
    }

    [Fact]
    public void TruncatedFileIsRejected()
    {
        string path = _folder.File("whole.safetensors");
        new SafetensorsWriter().Add("w", new float[100], 10, 10).Write(path);
        var bytes = File.ReadAllBytes(path);
        string truncated = _folder.File("truncated.safetensors");
        File.WriteAllBytes(truncated, bytes[..^17]);
        Rejects(truncated, "w", "run past the end of the data section");
    }

    [Fact]
    public void FileShorterThanTheLengthFieldIsRejected()
    {
        string path = _folder.File("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Rejects(path, null, "shorter than the 8-byte header length");
    }

    [Fact]
    public void HeaderLengthPastTheEndIsRejected() =>
        Rejects(RawFile("{}", 0, claimedHeaderLength: 1000), null, "runs past the end of the file");

    [Fact]
    public void HeaderLengthAboveTheCapIsRejected() =>
        Rejects(RawFile("{}", 0, claimedHeaderLength: SafetensorsFile.MaxHeaderBytes + 1), null, "exceeds the cap");

    [Fact]
    public void OffsetsPastTheEndAreRejected() =>
        Rejects(RawFile("""{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}""", 8), "w", "run past the end");

    [Fact]
    public void OverlappingEntriesAreRejected()
    {
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""";
        Rejects(RawFile(header, 12), "b", "overlap tensor 'a'");
    }

    [Fact]
    public void GapsBetweenEntriesAreRejected()
    {
        string header = """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""";
        Rejects(RawFile(header, 12), "b", "leaves a gap");
    }

    [Fact]
    public void TrailingUndescribedBytesAreRejected() =>
        Rejects(RawFile("""{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}""", 9), null, "trailing bytes");

    [Fact]
    public void ShapeAndSizeMismatchIsRejected() =>
        Rejects(RawFile("""{"w":{"dtype":"BF16","shape":[3,2],"data_offsets":[0,8]}}""", 8), "w", "= 12 bytes, but data_offsets span 8");

    [Fact]
    public void UnknownDTypeIsRejected() =>
        Rejects(RawFile("""{"w":{"dtype":"F12","shape":[2],"data_offsets":[0,4]}}""", 4), "w", "unknown dtype 'F12'");

    [Fact]
    public void NegativeDimensionIsRejected() =>
        Rejects(RawFile("""{"w":{"dtype":"U8","shape":[-4],"data_offsets":[0,4]}}""", 4), "w", "shape[0]");

    [Fact]
    public void InvalidJsonIsRejected() =>
        Rejects(RawFile("""{"w":{"dtype":""", 0), null, "not valid JSON");

    [Fact]
    public void DuplicateTensorNamesAreRejected()
    {
        string header = """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}""";
        Rejects(RawFile(header, 2), "a", "twice");
    }

    [Fact]
    public void MetadataMustHoldStrings() =>
        Rejects(RawFile("""{"__metadata__":{"format":3}}""", 0), null, "is not a string");

    [Fact]
    public void PaddedHeaderAndMetadataAreAccepted()
    {
        using var file = SafetensorsFile.Open(RawFile("""{"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}    """, 2));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal([1, 8], file.ReadBytes("a"));
    }

    [Fact]
    public void MissingTensorNamesFileAndTensor()
    {
        string path = _folder.File("one.safetensors");
        new SafetensorsWriter().Add("present", new float[2], 2).Write(path);
        using var file = SafetensorsFile.Open(path);
        var error = Assert.Throws<CheckpointFormatException>(() => file.GetInfo("absent"));
        Assert.Equal("absent", error.TensorName);
        Assert.Contains(path, error.Message);
    }

    [Fact]
    public void WriterRejectsWrongByteCounts() =>
        Assert.Throws<ArgumentException>(() => new SafetensorsWriter().Add("w", SafetensorsDType.F32, [3], new byte[8]));

    [Fact]
    public void HostTensorRoundsToTheTargetDType()
    {
        var tensor = HostTensor.FromFloats([1.00390625f, -2.5f], [2], DType.BF16);
        Assert.Equal([1.0f, -2.5f], tensor.ToFloats()); // 1 + 2^-8 is a tie in bf16: rounds to even (1.0)
    }
}
