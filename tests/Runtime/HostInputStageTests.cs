using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>The input upload's bf16 conversion, on the calling thread (one chunk) and in parallel (several), element by element.</summary>
public sealed class HostInputStageTests
{
    [Theory]
    [InlineData("cpu", 1)]
    [InlineData("cpu", 33)]
    [InlineData("cpu", 65536)]
    [InlineData("cpu", 65537)]
    [InlineData("cpu", 3 * 65536 + 5)]
    [InlineData("cuda:0", 33)]
    [InlineData("cuda:0", 3 * 65536 + 5)]
    public void Bf16UploadRoundsEveryValueAsTheCast(string device, int length)
    {
        var accelerator = TestDevices.Get(device);
        var random = TestData.NewRandom(out int seed);
        var values = Enumerable.Range(0, length).Select(_ => (random.NextSingle() - 0.5f) * 1e3f).ToArray();
        values[0] = float.NaN; // the special values round as the cast does too
        if (length > 2)
            (values[1], values[2]) = (float.PositiveInfinity, -0f);
        using var stage = new HostInputStage(accelerator);
        using var destination = accelerator.Upload<BFloat16>(Enumerable.Repeat(BFloat16.FromBits(0x7fc1), length).ToArray());
        stage.Upload(values, destination);
        var actual = destination.ToArray();
        for (int i = 0; i < length; i++)
            Assert.True(actual[i].Bits == ((BFloat16)values[i]).Bits, $"element {i} of {length}: {values[i]} gave 0x{actual[i].Bits:x4}, the cast 0x{((BFloat16)values[i]).Bits:x4} (seed {seed})");
    }
}
