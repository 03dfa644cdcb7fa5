namespace MoeRuntime.Accelerators.Cuda;

/// <summary>Shared-memory swizzle of a TMA box (CUtensorMapSwizzle): the span in bytes whose 16-byte chunks are XOR-permuted.</summary>
public enum TensorMapSwizzle
{
    None = 0,
    Bytes32 = 1,
    Bytes64 = 2,
    Bytes128 = 3,
}

/// <summary>L2 promotion of TMA loads (CUtensorMapL2promotion).</summary>
public enum TensorMapL2Promotion
{
    None = 0,
    Bytes64 = 1,
    Bytes128 = 2,
    Bytes256 = 3,
}

/// <summary>
/// A TMA descriptor (CUtensorMap, 128 opaque bytes) for a tiled view of device memory, built on the host by
/// cuTensorMapEncodeTiled and passed to a kernel by value (a <c>const __grid_constant__</c> parameter of a
/// 64-byte-aligned 128-byte struct; <see cref="KernelArg"/> carries it). Dimensions are listed innermost first,
/// as the driver takes them: a row-major [rows, cols] matrix is dims {cols, rows}, strides {cols * elementSize}.
/// Out-of-bounds box elements load as zero. The arguments are checked here, with messages that name what is wrong,
/// before the driver sees them (the driver answers only CUDA_ERROR_INVALID_VALUE).
/// </summary>
public sealed class CudaTensorMap
{
    /// <summary>Bytes of a CUtensorMap.</summary>
    public const int Size = 128;

    private readonly byte[] _bytes;

    private CudaTensorMap(byte[] bytes, DType dtype, long[] dims, int[] box)
    {
        _bytes = bytes;
        DType = dtype;
        Dims = dims;
        Box = box;
    }

    public DType DType { get; }
    public IReadOnlyList<long> Dims { get; }
    public IReadOnlyList<int> Box { get; }

    /// <summary>The encoded descriptor (a copy).</summary>
    public byte[] ToArray() => (byte[])_bytes.Clone();

    internal ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>
    /// Encodes a tiled tensor map over <paramref name="buffer"/> (from its start). <paramref name="dims"/>: elements per
    /// dimension, innermost first; <paramref name="strideBytes"/>: bytes between consecutive indices of dimensions 1..rank-1;
    /// <paramref name="box"/>: elements per dimension that one copy moves into shared memory.
    /// </summary>
    public static CudaTensorMap EncodeTiled(MemoryBuffer buffer, ReadOnlySpan<long> dims, ReadOnlySpan<long> strideBytes, ReadOnlySpan<int> box,
                                            TensorMapSwizzle swizzle, TensorMapL2Promotion l2Promotion = TensorMapL2Promotion.Bytes256)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        buffer.ThrowIfDisposed();
        if (buffer.Accelerator is not CudaAccelerator cuda)
            throw new ArgumentException($"{buffer.Describe()}: tensor maps describe CUDA device memory", nameof(buffer));
        Validate(buffer.DType, (ulong)buffer.Pointer, dims, strideBytes, box, swizzle);
        long last = 0;
        for (int i = 0; i < dims.Length; i++)
            last += (dims[i] - 1) * (i == 0 ? DTypes.SizeOf(buffer.DType) : strideBytes[i - 1]);
        if (last + DTypes.SizeOf(buffer.DType) > buffer.LengthBytes)
            throw new ArgumentException($"the tensor map reaches byte {last + DTypes.SizeOf(buffer.DType)} but {buffer.Describe()} has {buffer.LengthBytes}", nameof(dims));
        cuda.Bind();
        return Encode(buffer.DType, (ulong)buffer.Pointer, dims, strideBytes, box, swizzle, l2Promotion);
    }

    /// <summary>
    /// The checks of <see cref="EncodeTiled"/> (no device needed): dtype bf16, f16, f32, i32, u8 or f64; rank 1..5;
    /// address 16-byte aligned; dims 1..2^32; strides multiples of 16 below 2^40 and not overlapping the dimension
    /// below; box 1..256 per dimension with an innermost extent that is a multiple of 16 bytes and, swizzled, at most the
    /// swizzle span.
    /// </summary>
    public static void Validate(DType dtype, ulong address, ReadOnlySpan<long> dims, ReadOnlySpan<long> strideBytes, ReadOnlySpan<int> box, TensorMapSwizzle swizzle)
    {
        _ = DataType(dtype);
        int rank = dims.Length;
        if (rank is < 1 or > 5)
            throw new ArgumentException($"a tensor map has 1 to 5 dimensions; {rank} given", nameof(dims));
        if (strideBytes.Length != rank - 1)
            throw new ArgumentException($"{rank} dimensions need {rank - 1} strides (dimensions 1..{rank - 1}, in bytes); {strideBytes.Length} given", nameof(strideBytes));
        if (box.Length != rank)
            throw new ArgumentException($"{rank} dimensions need {rank} box sizes; {box.Length} given", nameof(box));
        if (address % 16 != 0)
            throw new ArgumentException($"the global address 0x{address:x} is not 16-byte aligned", nameof(address));
        int size = DTypes.SizeOf(dtype);
        for (int i = 0; i < rank; i++)
        {
            if (dims[i] < 1 || dims[i] > 1L << 32)
                throw new ArgumentOutOfRangeException(nameof(dims), dims[i], $"dimension {i} must be 1..2^32 elements");
            if (box[i] is < 1 or > 256)
                throw new ArgumentOutOfRangeException(nameof(box), box[i], $"box dimension {i} must be 1..256 elements");
        }
        long below = dims[0] * size;
        for (int i = 0; i < rank - 1; i++)
        {
            long stride = strideBytes[i];
            if (stride % 16 != 0)
                throw new ArgumentException($"stride {i + 1} = {stride} bytes is not a multiple of 16 (TMA needs 16-byte strides: for a row-major matrix, a row length that is a multiple of {16 / size} elements)", nameof(strideBytes));
            if (stride <= 0 || stride >= 1L << 40)
                throw new ArgumentOutOfRangeException(nameof(strideBytes), stride, $"stride {i + 1} must be positive and below 2^40 bytes");
            if (stride < below)
                throw new ArgumentException($"stride {i + 1} = {stride} bytes is smaller than the {below} bytes of the dimensions below it", nameof(strideBytes));
            below = stride * dims[i + 1];
        }
        long innerBytes = (long)box[0] * size;
        if (innerBytes % 16 != 0)
            throw new ArgumentException($"the box's innermost extent is {innerBytes} bytes; it must be a multiple of 16", nameof(box));
        int span = swizzle switch
        {
            TensorMapSwizzle.None => int.MaxValue,
            TensorMapSwizzle.Bytes32 => 32,
            TensorMapSwizzle.Bytes64 => 64,
            TensorMapSwizzle.Bytes128 => 128,
            _ => throw new ArgumentOutOfRangeException(nameof(swizzle), swizzle, "unknown swizzle"),
        };
        if (innerBytes > span)
            throw new ArgumentException($"the box's innermost extent is {innerBytes} bytes; with the {span}-byte swizzle it must be at most {span}", nameof(box));
    }

    private static int DataType(DType dtype) => dtype switch
    {
        DType.U8 => 0,
        DType.I32 => 3,
        DType.F16 => 6,
        DType.F32 => 7,
        DType.F64 => 8,
        DType.BF16 => 9,
        _ => throw new ArgumentException($"{DTypes.Name(dtype)} has no tensor map data type (bf16, f16, f32, f64, i32 and u8 do)", nameof(dtype)),
    };

    private static unsafe CudaTensorMap Encode(DType dtype, ulong address, ReadOnlySpan<long> dims, ReadOnlySpan<long> strideBytes, ReadOnlySpan<int> box,
                                               TensorMapSwizzle swizzle, TensorMapL2Promotion l2Promotion)
    {
        int rank = dims.Length;
        ulong* globalDim = stackalloc ulong[5];
        ulong* globalStrides = stackalloc ulong[5];
        uint* boxDim = stackalloc uint[5];
        uint* elementStrides = stackalloc uint[5];
        for (int i = 0; i < rank; i++)
        {
            globalDim[i] = (ulong)dims[i];
            boxDim[i] = (uint)box[i];
            elementStrides[i] = 1;
            if (i < rank - 1)
                globalStrides[i] = (ulong)strideBytes[i];
        }
        // CUtensorMap is 64-byte aligned; encode into an aligned scratch area, then keep the bytes.
        byte* scratch = stackalloc byte[Size + 64];
        byte* map = (byte*)(((nint)scratch + 63) & ~(nint)63);
        var result = CudaDriver.cuTensorMapEncodeTiled(map, DataType(dtype), (uint)rank, address, globalDim, globalStrides, boxDim, elementStrides,
            0, (int)swizzle, (int)l2Promotion, 0);
        CudaCheck.ThrowIfFailed(result, $"cuTensorMapEncodeTiled({DTypes.Name(dtype)}, dims [{string.Join(", ", dims.ToArray())}], " +
            $"strides [{string.Join(", ", strideBytes.ToArray())}], box [{string.Join(", ", box.ToArray())}], swizzle {swizzle})");
        return new CudaTensorMap(new ReadOnlySpan<byte>(map, Size).ToArray(), dtype, dims.ToArray(), box.ToArray());
    }
}
