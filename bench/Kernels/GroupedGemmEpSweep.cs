using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// Sweep <c>grouped_gemm_ep</c>: the expert GEMMs one GPU of an EP group runs, bf16, against (experts held on the GPU, rows
/// per expert), for each model: DeepSeek-V3 (H 7168, I 2048; E = 4 .. 128, EP64 .. EP2 of 256 experts) and Qwen3-30B-A3B
/// (H 2048, I 768; E = 2 .. 64, EP64 .. EP2 of 128 experts); m = 1 .. 512 rows for every held expert.
/// One row = what an EP rank's <c>ReceivedRowsWorkspace.Run</c> runs between its permute and un-permute: gate_up with the
/// fused SiLU-and-mul epilogue, then down into F32 rows, both with a split-K workspace sized as the layer sizes it;
/// timed together (CUDA-graph replays up to 2048 rows). Floor: the larger of E expert weights / copy bandwidth and
/// flops / 799 TFLOP/s. Name "&lt;model&gt; ep experts", shape "E=.. m=.. rows=.. active=..": <c>moe simulate --calibrate</c>
/// fits the grouped GEMM model from these rows (one fit per model shape, and one over all).
/// MOE_SWEEP_MODELS="qwen3" keeps the models whose name starts with a prefix given (<see cref="SweepFilter"/>).
/// On the CPU: the tiny preset's shapes (H 64, I 96), E = 2 .. 8, m = 1 .. 16.
/// </summary>
internal static class GroupedGemmEpSweep
{
    private sealed record Model(string Name, int Hidden, int Intermediate, int[] ExpertsPerGpu, int[] RowsPerExpert);

    private static readonly int[] GpuRows = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

    private static readonly Model[] GpuModels =
    [
        new("deepseek-v3", 7168, 2048, [4, 8, 16, 32, 64, 128], GpuRows),
        new("qwen3-30b-a3b", 2048, 768, [2, 4, 8, 16, 32, 64], GpuRows),
    ];

    private static readonly Model[] CpuModels = [new("tiny", 64, 96, [2, 4, 8], [1, 4, 16])];

    private const double DenseBf16Flops = 799e12;

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        var rows = new List<SweepRow>();
        foreach (var model in SweepFilter.Models(cpu ? CpuModels : GpuModels, m => m.Name))
            RunModel(accelerator, model, rows);
        return rows;
    }

    private static void RunModel(Accelerator accelerator, Model model, List<SweepRow> rows)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        int h = model.Hidden, i = model.Intermediate;
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        int maxExperts = model.ExpertsPerGpu.Max(), maxRows = maxExperts * model.RowsPerExpert.Max();
        using var gateUpAll = accelerator.Allocate<BFloat16>((long)maxExperts * 2 * i * h);
        using var downAll = accelerator.Allocate<BFloat16>((long)maxExperts * h * i);
        gateUpAll.Fill((BFloat16)0.01f);
        downAll.Fill((BFloat16)(-0.02f));
        using var hidden = accelerator.Allocate<BFloat16>((long)maxRows * h);
        hidden.Fill((BFloat16)0.5f);
        using var activation = accelerator.Allocate<BFloat16>((long)maxRows * i);
        using var output = accelerator.Allocate<float>((long)maxRows * h);
        foreach (int experts in model.ExpertsPerGpu)
        {
            var gateUp = gateUpAll.Slice(0, (long)experts * 2 * i * h);
            var down = downAll.Slice(0, (long)experts * h * i);
            foreach (int m in model.RowsPerExpert)
            {
                int total = experts * m;
                using var offsets = accelerator.Upload<int>(Enumerable.Range(0, experts + 1).Select(x => x * m).ToArray());
                var x = hidden.Slice(0, (long)total * h);
                var act = activation.Slice(0, (long)total * i);
                var y = output.Slice(0, (long)total * h);
                // As ReceivedRowsWorkspace: one split-K workspace sized for both calls of this row count.
                using var splitK = GroupedGemmWorkspace.For(accelerator,
                    new GroupedGemmShape(total, 2 * i, h, experts, Fused: true), new GroupedGemmShape(total, h, i, experts));
                var fused = new GroupedGemmOptions { ValidateOffsets = false, FusedSiluAndMul = true, SplitKWorkspace = splitK };
                var plain = new GroupedGemmOptions { ValidateOffsets = false, SplitKWorkspace = splitK };
                void Enqueue(AcceleratorStream s)
                {
                    GroupedGemm.Run(accelerator, x, gateUp, offsets, act, 2 * i, h, fused, s);
                    GroupedGemm.Run(accelerator, act, down, offsets, y, h, i, plain, s);
                }
                bool graph = !cpu && total <= 2048;
                double ms = cpu
                    ? DeviceTimer.MedianMs(accelerator, Enqueue, warmup: 1, samples: 3, inner: 1)
                    : DeviceTimer.MedianMs(accelerator, Enqueue, warmup: 3, samples: 15, inner: graph ? 10 : 3, useGraph: graph);
                double weightBytes = 3.0 * experts * h * i * 2;
                double flops = 2.0 * total * 3.0 * h * i;
                // Reads: weights, input rows, the activation; writes: the activation (bf16), the F32 output.
                double bytes = weightBytes + 2.0 * total * (h + 2.0 * i) + 4.0 * total * h;
                double floorMs = Math.Max(weightBytes / bandwidth, flops / DenseBf16Flops) * 1e3;
                string tile = GroupedGemmWgmma.ChoiceName(accelerator, DType.BF16, total, experts);
                rows.Add(new SweepRow($"{model.Name} ep experts", $"E={experts} m={m} rows={total} active={experts}", ms, bytes, flops, cpu ? 0 : floorMs,
                    cpu ? "cpu" : $"tile {tile}{(graph ? ", graph" : "")}"));
            }
        }
    }
}
