using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Accelerators.Nvrtc;
using MoeRuntime.Benchmarks.Infrastructure;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// The "read floor" rows of <c>sweep grouped_gemm</c> (<c>read_floor.cu</c>): the time to read exactly the active
/// experts' W of a call (the same experts, from the same offsets) with plain 16-byte loads, replayed like the call (a
/// graph of the same number of calls, same timer): the practical floor of a read of that size here, beside the
/// bandwidth-based floor of the table.
/// </summary>
internal static class ReadFloor
{
    private static readonly KernelSource Source = KernelSource.FromResource(typeof(ReadFloor).Assembly, "read_floor.cu");
    private const int Threads = 256;
    private const int DefaultBlocksPerSm = 4; // 1024 threads an SM, 4 x 16 bytes in flight each

    /// <summary>
    /// MOE_SWEEP_READ_FLOOR_BLOCKS=1..8 (default 4): the read's blocks an SM, to set it beside a GEMV grid of fewer warps
    /// (the 1-row entry's Qwen3-30B-A3B gate_up holds 3 an SM).
    /// </summary>
    private static int BlocksPerSm => Knob("MOE_SWEEP_READ_FLOOR_BLOCKS", 1, 8, "blocks an SM") ?? DefaultBlocksPerSm;

    /// <summary>
    /// The row for <paramref name="offsetSets"/> (one set: every call reads its experts; several: calls cycle over them,
    /// as the cold rows do), or null off CUDA. <paramref name="expertElements"/>: N x K of one expert (bf16).
    /// </summary>
    public static SweepRow? Measure(Accelerator accelerator, string name, string shape, MemoryBuffer<BFloat16> w, IReadOnlyList<int[]> offsetSets,
                                    long expertElements, double bandwidth, string note)
    {
        if (accelerator is not CudaAccelerator cuda || expertElements * 2 % 16 != 0)
            return null;
        var expertSets = offsetSets.Select(ActiveExperts).ToList();
        int active = expertSets[0].Length;
        if (active == 0 || expertSets.Any(s => s.Length != active))
            return null;
        long expertChunks = expertElements * 2 / 16;
        var buffers = expertSets.Select(s => accelerator.Upload<int>(s)).ToList();
        try
        {
            using var sink = accelerator.Allocate<uint>(1);
            var kernel = cuda.LoadKernel(Source, "read_floor", Traced ? ["-DREAD_FLOOR_TRACE"] : null);
            int sms = accelerator.Info.MultiprocessorCount;
            long perExpert = PerExpert ?? Math.Max(1, Math.Min((BlocksPerSm * (long)sms + active - 1) / active, (expertChunks + Threads - 1) / Threads));
            var grid = new Dim3((uint)perExpert, (uint)active, 1);
            int sharedBytes = SharedKb * 1024;
            using var trace = Traced ? cuda.Allocate<long>(grid.X * grid.Y * StampNames.Length) : null;
            int next = 0;
            void Launch(AcceleratorStream s, MemoryBuffer<int> experts)
            {
                if (trace is null)
                    kernel.Launch((CudaStream)s, grid, new Dim3(Threads, 1, 1), sharedBytes, w, experts, expertChunks, 0, sink);
                else
                    kernel.Launch((CudaStream)s, grid, new Dim3(Threads, 1, 1), sharedBytes, w, experts, expertChunks, 0, sink, trace);
            }
            double ms = DeviceTimer.MedianMs(accelerator, s => Launch(s, buffers[next++ % buffers.Count]), warmup: 3, samples: 20, inner: 20, useGraph: true);
            if (trace is not null)
            {
                // One more eager call after the replays: its stamps, as the GEMV trace prints them.
                var stream = cuda.DefaultStream;
                trace.Clear(stream);
                Launch(stream, buffers[0]);
                int blocks = (int)(grid.X * grid.Y);
                StampTable.Print($"read floor trace {name}: {blocks} blocks; us from the earliest block past its wait (globaltimer)",
                    trace.ToArray(stream), blocks, StampNames, Enumerable.Range(0, blocks).ToList());
            }
            double bytes = (double)active * expertElements * 2;
            return new SweepRow(name, shape, ms, bytes, 0, bytes / bandwidth * 1e3,
                $"{note}, {perExpert}x{active} blocks{(sharedBytes > 0 ? $", {SharedKb} KB shared" : "")}, graph{(kernel.LaunchesDependent ? ", dependent launch" : "")}");
        }
        finally
        {
            foreach (var buffer in buffers)
                buffer.Dispose();
        }
    }

    /// <summary>MOE_SWEEP_READ_FLOOR_TRACE=1: the traced build (READ_FLOOR_TRACE), and one more eager call's stamps printed.</summary>
    private static bool Traced => Environment.GetEnvironmentVariable("MOE_SWEEP_READ_FLOOR_TRACE") is "1";

    /// <summary>MOE_SWEEP_READ_FLOOR_PER_EXPERT=1..4096: blocks an expert (default: BlocksPerSm x SMs over the experts).</summary>
    private static int? PerExpert => Knob("MOE_SWEEP_READ_FLOOR_PER_EXPERT", 1, 4096, "blocks an expert");

    /// <summary>
    /// MOE_SWEEP_READ_FLOOR_SHARED_KB=0..227: dynamic shared memory a block asks for and does not use, to hold the read to
    /// as few blocks an SM as the decode GEMV's 1-row entry (whose cap works the same way), so that the next call's blocks
    /// cannot be placed beside them either.
    /// </summary>
    private static int SharedKb => Knob("MOE_SWEEP_READ_FLOOR_SHARED_KB", 0, 227, "KB") ?? 0;

    /// <summary>The integer in environment variable <paramref name="name"/> (null when unset), or an error naming it.</summary>
    private static int? Knob(string name, int min, int max, string unit) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value
        ? int.TryParse(value, out int n) && n >= min && n <= max ? n
          : throw new ArgumentException($"{name}='{value}': expected {min} to {max} {unit}")
        : null;

    private static readonly string[] StampNames = ["after wait", "expert found", "first W arrived", "loop end", "block's end"];

    /// <summary>The experts with rows, in order.</summary>
    internal static int[] ActiveExperts(int[] offsets) =>
        Enumerable.Range(0, offsets.Length - 1).Where(e => offsets[e + 1] > offsets[e]).ToArray();
}
