using MoeRuntime.Accelerators;

namespace MoeRuntime.Tests.Accelerators;

public class AcceleratorIdTests
{
    [Theory]
    [InlineData("cpu", AcceleratorKind.Cpu, 0, "cpu:0")]
    [InlineData("cpu:3", AcceleratorKind.Cpu, 3, "cpu:3")]
    [InlineData(" CUDA:1 ", AcceleratorKind.Cuda, 1, "cuda:1")]
    [InlineData("cuda", AcceleratorKind.Cuda, 0, "cuda:0")]
    public void ParsesNames(string text, AcceleratorKind kind, int index, string canonical)
    {
        var id = AcceleratorId.Parse(text);
        Assert.Equal(kind, id.Kind);
        Assert.Equal(index, id.Index);
        Assert.Equal(canonical, id.ToString());
    }

    [Theory]
    [InlineData("tpu:0", "unknown accelerator")]
    [InlineData("cuda:x", "bad accelerator index")]
    [InlineData("cpu:-1", "bad accelerator index")]
    public void RejectsBadNames(string text, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => AcceleratorId.Parse(text));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void ParsesListsAndRejectsDuplicates()
    {
        Assert.Equal(new[] { "cpu:0", "cpu:1", "cpu:2" }, AcceleratorId.ParseList("cpu:0,cpu:1, cpu:2").Select(i => i.ToString()));
        Assert.Contains("named twice", Assert.Throws<ArgumentException>(() => AcceleratorId.ParseList("cpu,cpu:0")).Message);
        Assert.Throws<ArgumentException>(() => AcceleratorId.ParseList(" , "));
    }

    [Fact]
    public void TheContextAlwaysHasTheCpuAndNamesMissingGpus()
    {
        using var context = new AcceleratorContext();
        Assert.Equal("cpu:0", context.Accelerators[0].Name);
        var error = Assert.Throws<ArgumentException>(() => context.Get("cuda:64"));
        Assert.Contains("cuda:64", error.Message);
        var cpus = context.GetList("cpu:0,cpu:1,cpu:2");
        Assert.Equal(3, cpus.Select(c => c.Name).Distinct().Count());
    }
}
