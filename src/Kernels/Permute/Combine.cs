using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Kernels.Permute;

/// <summary>
/// Combine (un-permute): output[t, :] = residual[t, :] + sum over j of weights[t, j] * expertOutput[rowOfSlot[t, j], :],
/// a gather per token accumulated in F32 in slot order (no atomics: identical results run to run).
/// Slots whose row is negative (dropped by <see cref="Permute"/>) or past the end of expertOutput are skipped.
/// Example: k = 2, rowOfSlot[t] = [4, 0], weights[t] = [0.75, 0.25] -> out[t] = 0.75 * expertOutput[4] + 0.25 * expertOutput[0].
/// </summary>
public static partial class Combine
{
    private const int Threads = 128; // COMBINE_THREADS in combine.cu

    /// <summary>Tests and A/B benchmarks: one block per token whatever the token count (the launch before chunks).</summary>
    internal static bool OneBlockPerToken { get; set; } = Environment.GetEnvironmentVariable("MOE_COMBINE_CHUNKS") == "1";

    /// <summary>Blocks the launch aims for at least: 8 per SM (half of the 16 resident 128-thread blocks an SM holds).</summary>
    private const int BlocksPerSm = 8;

    /// <summary>
    /// Blocks per token: 1 when the tokens alone give every SM several blocks (prefill), else enough to reach
    /// <see cref="BlocksPerSm"/> blocks per SM, never more than leave each thread one pack of its row.
    /// </summary>
    internal static int ChunksPerToken(int tokens, int packsPerRow, int multiprocessors)
    {
        if (OneBlockPerToken || tokens <= 0)
            return 1;
        long wanted = ((long)BlocksPerSm * Math.Max(1, multiprocessors) + tokens - 1) / tokens;
        int most = Math.Max(1, (packsPerRow + Threads - 1) / Threads);
        return (int)Math.Clamp(wanted, 1, most);
    }

    private static readonly Lazy<KernelSource> Source = new(() => KernelSource.FromResource(typeof(Combine).Assembly, "combine.cu"));

    /// <summary>
    /// Combines <paramref name="tokens"/> tokens. <paramref name="expertOutput"/> holds expertOutput.Length / hiddenSize
    /// rows; <paramref name="output"/> and <paramref name="residual"/> (optional) have expertOutput's dtype.
    /// </summary>
    public static void Run(MemoryBuffer expertOutput, MemoryBuffer<int> rowOfSlot, MemoryBuffer<float> weights,
        int tokens, int topK, int hiddenSize, MemoryBuffer output, MemoryBuffer? residual = null, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(expertOutput);
        var accelerator = expertOutput.Accelerator;
        expertOutput.ThrowIfDisposed();
        HostRows.CheckDataType(expertOutput, nameof(expertOutput));
        if (tokens < 0)
            throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "tokens must be >= 0");
        if (topK < 1)
            throw new ArgumentOutOfRangeException(nameof(topK), topK, "topK must be >= 1");
        if (hiddenSize < 1)
            throw new ArgumentOutOfRangeException(nameof(hiddenSize), hiddenSize, "hiddenSize must be >= 1");
        long slots = (long)tokens * topK;
        HostRows.Check(rowOfSlot, accelerator, slots, nameof(rowOfSlot));
        HostRows.Check(weights, accelerator, slots, nameof(weights));
        HostRows.Check(output, accelerator, (long)tokens * hiddenSize, nameof(output));
        HostRows.CheckDType(output, expertOutput.DType, nameof(output));
        if (residual is not null)
        {
            HostRows.Check(residual, accelerator, (long)tokens * hiddenSize, nameof(residual));
            HostRows.CheckDType(residual, expertOutput.DType, nameof(residual));
        }
        var s = stream ?? accelerator.DefaultStream;
        if (!ReferenceEquals(s.Accelerator, accelerator))
            throw new ArgumentException($"stream of {s.Accelerator.Name} used with expertOutput on {accelerator.Name}", nameof(stream));
        long expertRows = expertOutput.Length / hiddenSize;

        if (accelerator is CudaAccelerator cuda)
        {
            int vector = 16 / expertOutput.ElementSize;
            bool vectorised = hiddenSize % vector == 0 && expertOutput.Pointer % 16 == 0 && output.Pointer % 16 == 0 &&
                (residual is null || residual.Pointer % 16 == 0);
            string entry = $"combine_{HostRows.Suffix(expertOutput.DType)}_{(vectorised ? "vec" : "scalar")}";
            if (tokens == 0)
                return;
            int chunks = ChunksPerToken(tokens, hiddenSize / (vectorised ? vector : 1), cuda.Info.MultiprocessorCount);
            cuda.LoadKernel(Source.Value, entry).Launch((CudaStream)s, new Dim3((uint)tokens, (uint)chunks, 1), new Dim3(Threads, 1, 1), 0,
                expertOutput, expertRows, rowOfSlot, weights, topK, hiddenSize, residual, output);
        }
        else
        {
            RunCpu(expertOutput, expertRows, rowOfSlot, weights, tokens, topK, hiddenSize, output, residual);
        }
    }
}
