using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// Uploads host F32 values into a device buffer of the compute dtype: converted on the host (rounding as
/// <see cref="DeviceMoeWeights.UploadFloats"/> does, in parallel for large inputs) into a <see cref="HostStage{T}"/>,
/// then copied (asynchronously on CUDA). One stage per dtype, kept across calls.
/// </summary>
public sealed class HostInputStage(Accelerator accelerator) : IDisposable
{
    private const int ParallelChunk = 1 << 16;
    private HostStage<float>? _f32;
    private HostStage<BFloat16>? _bf16;
    private HostStage<Half>? _f16;

    /// <summary>Enqueues <paramref name="values"/> into <paramref name="destination"/> (same length; F32, BF16 or F16).</summary>
    public void Upload(ReadOnlySpan<float> values, MemoryBuffer destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (values.Length != destination.Length)
            throw new ArgumentException($"{values.Length} values for {destination.Describe()}", nameof(values));
        if (destination.Accelerator.Kind == AcceleratorKind.Cpu)
        {
            ConvertInPlace(values, destination); // CPU memory is host memory: no stage
            return;
        }
        switch (destination)
        {
            case MemoryBuffer<float> f32:
                _f32 ??= new HostStage<float>(accelerator);
                values.CopyTo(_f32.Reserve(values.Length));
                _f32.Upload(f32);
                break;
            case MemoryBuffer<BFloat16> bf16:
                _bf16 ??= new HostStage<BFloat16>(accelerator);
                ToBFloat16(values, _bf16.Reserve(values.Length));
                _bf16.Upload(bf16);
                break;
            case MemoryBuffer<Half> f16:
                _f16 ??= new HostStage<Half>(accelerator);
                Convert(values, _f16.Reserve(values.Length), static v => (Half)v);
                _f16.Upload(f16);
                break;
            default:
                throw new ArgumentException($"compute dtype {DTypes.Name(destination.DType)} is not f32, bf16 or f16", nameof(destination));
        }
    }

    private static void ConvertInPlace(ReadOnlySpan<float> values, MemoryBuffer destination)
    {
        switch (destination)
        {
            case MemoryBuffer<float> f32:
                HostCopy.Parallel(values, f32.AsSpan());
                break;
            case MemoryBuffer<BFloat16> bf16:
                ToBFloat16(values, bf16.AsSpan());
                break;
            case MemoryBuffer<Half> f16:
                Convert(values, f16.AsSpan(), static v => (Half)v);
                break;
            default:
                throw new ArgumentException($"compute dtype {DTypes.Name(destination.DType)} is not f32, bf16 or f16", nameof(destination));
        }
    }

    /// <summary>
    /// bf16 rounding (<see cref="BFloat16.FloatToBits"/>) without a call per element: the hot path of a bf16 layer's input.
    /// One chunk (up to 64K values: a decode batch) converts on the calling thread, as Convert does: a parallel loop of one
    /// iteration only adds its scheduling to the forward's host path.
    /// </summary>
    private static unsafe void ToBFloat16(ReadOnlySpan<float> source, Span<BFloat16> destination)
    {
        int length = source.Length;
        if (length <= ParallelChunk)
        {
            var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<BFloat16, ushort>(destination);
            for (int i = 0; i < length; i++)
                bits[i] = BFloat16.FloatToBits(source[i]);
            return;
        }
        fixed (float* s = source)
        fixed (BFloat16* d = destination)
        {
            nint sp = (nint)s, dp = (nint)d;
            System.Threading.Tasks.Parallel.For(0, (length + ParallelChunk - 1) / ParallelChunk, chunk =>
            {
                float* from = (float*)sp;
                ushort* to = (ushort*)dp;
                int end = Math.Min(length, (chunk + 1) * ParallelChunk);
                for (int i = chunk * ParallelChunk; i < end; i++)
                    to[i] = BFloat16.FloatToBits(from[i]);
            });
        }
    }

    /// <summary>destination[i] = convert(source[i]); chunks of 64K elements in parallel when there are several.</summary>
    private static unsafe void Convert<T>(ReadOnlySpan<float> source, Span<T> destination, Func<float, T> convert) where T : unmanaged
    {
        int length = source.Length;
        if (length <= ParallelChunk)
        {
            for (int i = 0; i < length; i++)
                destination[i] = convert(source[i]);
            return;
        }
        fixed (float* s = source)
        fixed (T* d = destination)
        {
            nint sp = (nint)s, dp = (nint)d;
            System.Threading.Tasks.Parallel.For(0, (length + ParallelChunk - 1) / ParallelChunk, chunk =>
            {
                float* from = (float*)sp;
                T* to = (T*)dp;
                int end = Math.Min(length, (chunk + 1) * ParallelChunk);
                for (int i = chunk * ParallelChunk; i < end; i++)
                    to[i] = convert(from[i]);
            });
        }
    }

    public void Dispose()
    {
        _f32?.Dispose();
        _bf16?.Dispose();
        _f16?.Dispose();
    }
}
