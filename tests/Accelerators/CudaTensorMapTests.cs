using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Accelerators;

/// <summary>
/// <see cref="CudaTensorMap"/>'s argument checks, which run on the host before cuTensorMapEncodeTiled (no device needed),
/// and, on a compute capability 9.0 device, that a valid map encodes.
/// </summary>
public class CudaTensorMapTests
{
    private const ulong Aligned = 0x7f00_0000_1000;

    // A bf16 [rows = 300, K = 200] matrix in 64 x 128 boxes with the 128-byte swizzle: what the wgmma kernel asks for.
    private static void Matrix(DType dtype = DType.BF16, ulong address = Aligned, long k = 200, long rows = 300, long? stride = null,
                               int boxK = 64, int boxRows = 128, TensorMapSwizzle swizzle = TensorMapSwizzle.Bytes128) =>
        CudaTensorMap.Validate(dtype, address, [k, rows], [stride ?? k * DTypes.SizeOf(dtype)], [boxK, boxRows], swizzle);

    [Fact]
    public void AcceptsTheKernelsMaps()
    {
        Matrix();
        CudaTensorMap.Validate(DType.BF16, Aligned, [200, 520, 8], [400, 400 * 520], [64, 128, 1], TensorMapSwizzle.Bytes128);
        Matrix(DType.F16, k: 8, rows: 1);                 // box larger than the tensor: the rest is zero-filled
        Matrix(DType.F32, boxK: 32);                      // 128 bytes of f32
        Matrix(swizzle: TensorMapSwizzle.None, boxK: 256);
    }

    [Fact]
    public void RejectsAMisalignedAddress()
    {
        var error = Assert.Throws<ArgumentException>(() => Matrix(address: Aligned + 8));
        Assert.Equal("address", error.ParamName);
        Assert.Contains("16-byte aligned", error.Message);
    }

    [Theory]
    [InlineData(12L, "multiple of 16")]      // K = 6 bf16 elements per row: 12-byte rows
    [InlineData(100L, "multiple of 16")]
    [InlineData(384L, "smaller than the 400 bytes")]
    public void RejectsBadStrides(long stride, string fragment)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => Matrix(stride: stride));
        Assert.Equal("strideBytes", error.ParamName);
        Assert.Contains(fragment, error.Message);
    }

    [Fact]
    public void TheStrideErrorSaysKMustBeAMultipleOf8ForTwoByteElements()
    {
        var error = Assert.Throws<ArgumentException>(() => Matrix(k: 12, stride: 24));
        Assert.Contains("multiple of 8 elements", error.Message);
    }

    [Theory]
    [InlineData(0, 128, "box dimension 0")]
    [InlineData(64, 257, "box dimension 1")]
    [InlineData(4, 128, "multiple of 16")]          // 8 bytes
    [InlineData(128, 128, "at most 128")]           // 256 bytes under a 128-byte swizzle
    public void RejectsBadBoxes(int boxK, int boxRows, string fragment)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => Matrix(boxK: boxK, boxRows: boxRows));
        Assert.Equal("box", error.ParamName);
        Assert.Contains(fragment, error.Message);
    }

    [Fact]
    public void RejectsBadRanksAndCounts()
    {
        Assert.Contains("1 to 5 dimensions", Assert.Throws<ArgumentException>(() =>
            CudaTensorMap.Validate(DType.BF16, Aligned, [8, 2, 2, 2, 2, 2], [16, 32, 64, 128, 256], [8, 1, 1, 1, 1, 1], TensorMapSwizzle.None)).Message);
        Assert.Contains("need 1 strides", Assert.Throws<ArgumentException>(() =>
            CudaTensorMap.Validate(DType.BF16, Aligned, [8, 2], [], [8, 1], TensorMapSwizzle.None)).Message);
        Assert.Contains("need 2 box sizes", Assert.Throws<ArgumentException>(() =>
            CudaTensorMap.Validate(DType.BF16, Aligned, [8, 2], [16], [8], TensorMapSwizzle.None)).Message);
        Assert.Equal("dims", Assert.ThrowsAny<ArgumentException>(() => Matrix(rows: 0)).ParamName);
        Assert.Equal("dims", Assert.ThrowsAny<ArgumentException>(() => Matrix(rows: (1L << 32) + 1)).ParamName);
    }

    [Fact]
    public void RejectsDtypesWithoutATensorMapType() =>
        Assert.Contains("no tensor map data type", Assert.Throws<ArgumentException>(() => Matrix(dtype: DType.I64)).Message);

    [Fact]
    public void RefusesHostMemory()
    {
        using var buffer = TestDevices.Get("cpu").Allocate<BFloat16>(300 * 200);
        var error = Assert.Throws<ArgumentException>(() =>
            CudaTensorMap.EncodeTiled(buffer, [200, 300], [400], [64, 128], TensorMapSwizzle.Bytes128));
        Assert.Contains("CUDA device memory", error.Message);
    }

    [Fact]
    public void EncodesOnAHopperDevice()
    {
        var gpu = TestDevices.Get("cuda:0");
        if (gpu.Info.ComputeMajor < 9)
            Assert.Skip($"{gpu.Name} is compute capability {gpu.Info.ComputeCapability}; tensor maps need 9.0+");
        using var buffer = gpu.Allocate<BFloat16>(300 * 200);
        var map = CudaTensorMap.EncodeTiled(buffer, [200, 300], [400], [64, 128], TensorMapSwizzle.Bytes128);
        Assert.Equal(CudaTensorMap.Size, map.ToArray().Length);
        Assert.Contains(map.ToArray(), b => b != 0);
        var error = Assert.Throws<ArgumentException>(() => CudaTensorMap.EncodeTiled(buffer, [200, 301], [400], [64, 128], TensorMapSwizzle.Bytes128));
        Assert.Contains("reaches byte", error.Message);
    }
}
