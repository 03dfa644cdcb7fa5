using System.Text.RegularExpressions;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.Cuda;

namespace MoeRuntime.Tests.Collectives;

/// <summary>
/// The host's mirror of collective_ops.cu's control-word layout (flags [MAX_BLOCKS][MAX_RANKS], epochs [MAX_BLOCKS],
/// the call's two addresses): read from the kernel source itself, so the C# and CUDA sides cannot drift apart. Runs
/// without a GPU.
/// </summary>
public class CollectiveKernelLayoutTests
{
    private static readonly string Source = KernelSource.FromResource(typeof(Communicator).Assembly, "collective_ops.cu").Text;

    private static int Define(string name)
    {
        var match = Regex.Match(Source, $@"^#define {name} (\d+)\s*$", RegexOptions.Multiline);
        Assert.True(match.Success, $"collective_ops.cu has no '#define {name} <number>'");
        return int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void ControlWordsMatchTheKernel()
    {
        int maxRanks = Define("MAX_RANKS"), maxBlocks = Define("MAX_BLOCKS");
        Assert.Matches(@"#define POINTER_WORDS \(4 \* MAX_RANKS\)", Source);   // {input, output} u64 per rank
        int pointerWords = 4 * maxRanks;
        Assert.Equal(CudaCollectiveBackend.MaxRanks, maxRanks);
        Assert.Equal(CudaCollectiveBackend.MaxBlocks, maxBlocks);
        Assert.Equal(CudaCollectiveBackend.PointerWords, pointerWords);
        Assert.Equal(CudaCollectiveBackend.ControlWords, maxBlocks * maxRanks + maxBlocks + pointerWords);
        Assert.Matches(@"#define CONTROL_WORDS \(MAX_BLOCKS \* MAX_RANKS \+ MAX_BLOCKS \+ POINTER_WORDS\)", Source);
        // The two u64 addresses follow the u32 flags and epochs: 8-byte aligned.
        Assert.Equal(0, (maxBlocks * maxRanks + maxBlocks) % 2);
        Assert.Equal(Communicator.MaxRanks, maxRanks);
    }

    [Fact]
    public void BlockSizeIsTheKernelsLaunchBound()
    {
        Assert.Equal(CudaCollectiveBackend.BlockSize, Define("BLOCK_THREADS"));
        Assert.Matches(@"__global__ void __launch_bounds__\(BLOCK_THREADS\)", Source);
    }

    [Fact]
    public void OpKindsAndBufferCodesMatchTheKernel()
    {
        var ops = Regex.Match(Source, @"enum \{ (OP_[^}]*)\}").Groups[1].Value;
        foreach (var kind in Enum.GetValues<MoeRuntime.Collectives.Schedule.OpKind>())
        {
            string name = "OP_" + Regex.Replace(kind.ToString(), "(?<=[a-z])(?=[A-Z])", "_").ToUpperInvariant();
            Assert.Contains($"{name} = {(int)kind}", ops);
        }
        var buffers = Regex.Match(Source, @"enum \{ (BUF_[^}]*)\}").Groups[1].Value;
        Assert.Contains($"BUF_INPUT = {MoeRuntime.Collectives.Schedule.OpBuffer.Input}", buffers);
        Assert.Contains($"BUF_OUTPUT = {MoeRuntime.Collectives.Schedule.OpBuffer.Output}", buffers);
        Assert.Contains($"BUF_STAGING = {MoeRuntime.Collectives.Schedule.OpBuffer.Staging}", buffers);
        Assert.Contains($"BUF_BASE_ZERO = {MoeRuntime.Collectives.Schedule.OpBuffer.BaseZero}", buffers);
    }
}
