using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.GroupedGemm;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// Sweep <c>grouped_gemm_ep</c>: the expert GEMMs one GPU of an EP group runs, at DeepSeek-V3 shapes (H 7168, I 2048), bf16,
/// against (experts held on the GPU, rows per expert): E = 4 .. 128 (EP64 .. EP2 of 256 experts), m = 1 .. 512 rows for
/// every held expert. One row = gate_up with the fused SiLU-and-mul epilogue, then down with the routing-weight row scale
/// (the two GEMMs of <c>MoeLayer.RunExperts</c>), timed together (CUDA-graph replays up to 2048 rows).
/// Floor: the larger of E expert weights / copy bandwidth and flops / 799 TFLOP/s. Name "deepseek-v3 ep experts",
/// shape "E=.. m=.. rows=.. active=..": <c>moe simulate --calibrate</c> fits the grouped GEMM model from these rows.
/// On the CPU: the tiny preset's shapes (H 64, I 96), E = 2 .. 8, m = 1 .. 16.
/// </summary>
internal static class GroupedGemmEpSweep
{
    private const double DenseBf16Flops = 799e12;

    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator)
    {
        bool cpu = accelerator.Kind == AcceleratorKind.Cpu;
        var (name, h, i) = cpu ? ("tiny", 64, 96) : ("deepseek-v3", 7168, 2048);
        int[] expertCounts = cpu ? [2, 4, 8] : [4, 8, 16, 32, 64, 128];
        int[] rowsPerExpert = cpu ? [1, 4, 16] : [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
        double bandwidth = accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        int maxExperts = expertCounts.Max(), maxRows = maxExperts * rowsPerExpert.Max();
        using var gateUpAll = accelerator.Allocate<BFloat16>((long)maxExperts * 2 * i * h);
        using var downAll = accelerator.Allocate<BFloat16>((long)maxExperts * h * i);
        gateUpAll.Fill((BFloat16)0.01f);
        downAll.Fill((BFloat16)(-0.02f));
        using var hidden = accelerator.Allocate<BFloat16>((long)maxRows * h);
        hidden.Fill((BFloat16)0.5f);
        using var activation = accelerator.Allocate<BFloat16>((long)maxRows * i);
        using var output = accelerator.Allocate<BFloat16>((long)maxRows * h);
        using var scales = accelerator.Allocate<float>(maxRows);
        scales.Fill(0.25f);
        var rows = new List<SweepRow>();
        foreach (int experts in expertCounts)
        {
            var gateUp = gateUpAll.Slice(0, (long)experts * 2 * i * h);
            var down = downAll.Slice(0, (long)experts * h * i);
            foreach (int m in rowsPerExpert)
            {
                int total = experts * m;
                using var offsets = accelerator.Upload<int>(Enumerable.Range(0, experts + 1).Select(x => x * m).ToArray());
                var x = hidden.Slice(0, (long)total * h);
                var act = activation.Slice(0, (long)total * i);
                var y = output.Slice(0, (long)total * h);
                var rowScale = scales.Slice(0, total);
                var fused = new GroupedGemmOptions { ValidateOffsets = false, FusedSiluAndMul = true };
                var scaled = new GroupedGemmOptions { ValidateOffsets = false, RowScale = rowScale };
                void Enqueue(AcceleratorStream s)
                {
                    GroupedGemm.Run(accelerator, x, gateUp, offsets, act, 2 * i, h, fused, s);
                    GroupedGemm.Run(accelerator, act, down, offsets, y, h, i, scaled, s);
                }
                bool graph = !cpu && total <= 2048;
                double ms = cpu
                    ? DeviceTimer.MedianMs(accelerator, Enqueue, warmup: 1, samples: 3, inner: 1)
                    : DeviceTimer.MedianMs(accelerator, Enqueue, warmup: 3, samples: 15, inner: graph ? 10 : 3, useGraph: graph);
                double weightBytes = 3.0 * experts * h * i * 2;
                double flops = 2.0 * total * 3.0 * h * i;
                double bytes = weightBytes + 2.0 * total * (2.0 * h + 2.0 * i);
                double floorMs = Math.Max(weightBytes / bandwidth, flops / DenseBf16Flops) * 1e3;
                string tile = GroupedGemmWgmma.ChoiceName(accelerator, DType.BF16, total, experts);
                rows.Add(new SweepRow($"{name} ep experts", $"E={experts} m={m} rows={total} active={experts}", ms, bytes, flops, cpu ? 0 : floorMs,
                    cpu ? "cpu" : $"tile {tile}{(graph ? ", graph" : "")}"));
            }
        }
        return rows;
    }
}
