using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Kernels;
using MoeRuntime.Kernels.Routing;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Kernels;

/// <summary>
/// The fused decode kernel on CUDA against its CPU twin, on fresh random inputs with poisoned outputs, at shapes where its
/// dot products split over warps (the layer tests' H = 64 never does): gate_up raised to split 2 (a TP rank's slice of
/// Qwen3-30B-A3B) and to 8, the chain's split 2 of K = 4096 (Mixtral's H), down split 2 (I = 4096), and two tokens. The router is
/// built so the top-k is unambiguous (logits 0.25 apart), so the ids must be the same; logits, weights and outputs within
/// the bf16 bound (the twin's sums run in another order, and the activation is rounded to bf16 on both).
/// </summary>
public sealed class MoeDecodeTwinTests
{
    [Theory]
    [InlineData(1, 2048, 384, 128, 8, 2)]   // Qwen3 slice: 192 gate_up items at split 1 -> raised to 2
    [InlineData(1, 4096, 2048, 4, 2, 2)]    // gate_up at the chain's split 2 (K = 4096; 512 items, not raised)
    [InlineData(1, 4096, 512, 16, 2, 8)]    // the same K with 128 items at split 2: raised to 8 (a warp's share 512)
    [InlineData(2, 1024, 4096, 8, 2, 1)]    // down at split 2 (K = I = 4096), two tokens
    public void CudaMatchesTheCpuTwin(int tokens, int hidden, int inter, int experts, int k, int expectedGateUpSplit)
    {
        var gpu = TestDevices.Get("cuda:0");
        var cpu = TestDevices.Get("cpu");
        var random = TestData.NewRandom(out int seed);
        string what = $"T={tokens} H={hidden} I={inter} E={experts} k={k}, seed {seed}";
        var routing = TopKRoutingOptions.Softmax(k, renormalize: true);

        // x[0] random; router row e = c_e x[0] / |x[0]|^2 with the c_e a shuffle of 0.25 e, so token 0's logits are the c_e;
        // token 1 (if any) is -x[0], whose logits are -c_e: both orders unambiguous.
        var x = TestData.Uniform(random, hidden);
        var xs = tokens == 1 ? x : [.. x, .. x.Select(v => -v)];
        double norm = x.Sum(v => (double)v * v);
        var c = Enumerable.Range(0, experts).Select(e => 0.25f * e).OrderBy(_ => random.Next()).ToArray();
        var router = new float[experts * hidden];
        for (int e = 0; e < experts; e++)
            for (int i = 0; i < hidden; i++)
                router[e * hidden + i] = (float)(c[e] * x[i] / norm);
        var gateUp = TestData.Uniform(random, experts * 2 * inter * hidden).Select(v => v * 0.1f).ToArray();
        var down = TestData.Uniform(random, experts * hidden * inter).Select(v => v * 0.1f).ToArray();
        var residual = TestData.Uniform(random, tokens * hidden);

        var onCpu = Run(cpu, cpu, tokens, hidden, inter, experts, routing, xs, router, gateUp, down, residual);
        var onGpu = Run(gpu, cpu, tokens, hidden, inter, experts, routing, xs, router, gateUp, down, residual);
        if (MoeDecodeSwitch.RaiseGateUpSplit)
            Assert.Equal(expectedGateUpSplit, MoeDecode.LastPlan!.Value.GateUpSplit);
        Compare.Close(onCpu.Logits, onGpu.Logits, Compare.ToleranceFor(DType.BF16), "logits, " + what);
        Compare.Exact<int>(onCpu.Ids, onGpu.Ids, "ids, " + what);
        Compare.Exact<int>(onCpu.Counts, onGpu.Counts, "counts, " + what);
        Compare.Close(onCpu.Weights, onGpu.Weights, Compare.ToleranceFor(DType.BF16), "weights, " + what);
        Compare.Close(onCpu.Output, onGpu.Output, Compare.ToleranceFor(DType.BF16), "output, " + what);
    }

    private sealed record Result(float[] Logits, int[] Ids, float[] Weights, int[] Counts, float[] Output);

    /// <summary>One launch on <paramref name="a"/>; the inputs are rounded to bf16 on <paramref name="host"/> and copied over, the outputs poisoned first.</summary>
    private static Result Run(Accelerator a, Accelerator host, int tokens, int hidden, int inter, int experts, TopKRoutingOptions routing,
        float[] x, float[] router, float[] gateUp, float[] down, float[] residual)
    {
        int k = routing.TopK;
        MemoryBuffer Bf16(float[] values)
        {
            using var staged = host.Allocate(DType.BF16, values.Length);
            HostRows.Write(values, staged, 0);
            var buffer = a.Allocate(DType.BF16, values.Length);
            buffer.CopyFrom(staged);
            return buffer;
        }
        using var xBuffer = Bf16(x);
        using var routerBuffer = Bf16(router);
        using var gateUpBuffer = Bf16(gateUp);
        using var downBuffer = Bf16(down);
        using var residualBuffer = a.Upload<float>(residual);
        using var logits = a.Upload<float>(Enumerable.Repeat(float.NaN, tokens * experts).ToArray());
        using var ids = a.Upload<int>(Enumerable.Repeat(-1, tokens * k).ToArray());
        using var weights = a.Upload<float>(Enumerable.Repeat(float.NaN, tokens * k).ToArray());
        using var counts = a.Upload<int>(Enumerable.Repeat(-1, experts).ToArray());
        using var act = a.Allocate(DType.BF16, tokens * k * inter);
        act.FillBytes(0xFF);   // bf16 NaN
        using var output = a.Upload<float>(Enumerable.Repeat(float.NaN, tokens * hidden).ToArray());
        using var barrier = a.Upload<int>([0]);
        MoeDecode.Run(xBuffer, routerBuffer, gateUpBuffer, downBuffer, tokens, hidden, inter, experts, routing, logits, ids, weights, counts, act, output, barrier, residualBuffer);
        a.Synchronize();
        Assert.Equal(0, barrier.ToArray()[0]);
        return new Result(logits.ToArray(), ids.ToArray(), weights.ToArray(), counts.ToArray(), output.ToArray());
    }
}
