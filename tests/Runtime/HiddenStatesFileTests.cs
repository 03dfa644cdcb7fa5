using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

public sealed class HiddenStatesFileTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void RoundTripsF32AndReadsBf16AndBatchOfOne()
    {
        var random = TestData.NewRandom(out int seed);
        var values = TestData.Uniform(random, 3 * 8);
        string path = _folder.File("h.safetensors");
        HiddenStatesFile.Write(path, values, 3, 8);
        var (read, tokens, hidden) = HiddenStatesFile.Read(path);
        Assert.Equal((3, 8), (tokens, hidden));
        Compare.Exact<float>(values, read, $"f32 round trip (seed {seed})");

        var bf16 = TestData.ToBf16(values);
        string batched = _folder.File("b.safetensors");
        new SafetensorsWriter().Add(HiddenStatesFile.TensorName, bf16, 1, 3, 8).Write(batched);
        var (readBf16, t2, h2) = HiddenStatesFile.Read(batched);
        Assert.Equal((3, 8), (t2, h2));
        Compare.Exact<float>(bf16.Select(b => (float)b).ToArray(), readBf16, "bf16 [1, T, H]");
    }

    [Fact]
    public void WrongShapeOrDTypeOrNameIsRefused()
    {
        string vector = _folder.File("v.safetensors");
        new SafetensorsWriter().Add(HiddenStatesFile.TensorName, new float[4], 4).Write(vector);
        Assert.Contains("not [tokens, hidden]", Assert.Throws<CheckpointFormatException>(() => HiddenStatesFile.Read(vector)).Message);

        string ints = _folder.File("i.safetensors");
        new SafetensorsWriter().Add(HiddenStatesFile.TensorName, new int[4], 2, 2).Write(ints);
        Assert.Contains("not F32", Assert.Throws<CheckpointFormatException>(() => HiddenStatesFile.Read(ints)).Message);

        string other = _folder.File("o.safetensors");
        new SafetensorsWriter().Add("x", new float[4], 2, 2).Write(other);
        Assert.Equal(HiddenStatesFile.TensorName, Assert.Throws<CheckpointFormatException>(() => HiddenStatesFile.Read(other)).TensorName);
    }
}
