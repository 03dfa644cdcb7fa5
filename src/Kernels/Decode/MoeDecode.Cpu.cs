using System.Numerics.Tensors;
using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Kernels.Decode;

/// <summary>
/// The CPU twin of <see cref="MoeDecode"/>: the same steps as plain loops over host memory. Router logits (F32 dot
/// products), TopKRouting's own CPU twin, then per slot SiLU(gate . x) * (up . x) rounded to the activation's dtype, and
/// per token the residual plus the weighted down rows in slot order. Not the CUDA kernel's bits (its sums are ordered
/// per lane); within the dtype's tolerance of it.
/// </summary>
internal static class MoeDecodeCpu
{
    public static void Run(MemoryBuffer hidden, MemoryBuffer router, MemoryBuffer gateUp, MemoryBuffer down, MemoryBuffer<float>? residual,
        int tokens, int hiddenSize, int intermediate, int experts, TopKRoutingOptions routing, MemoryBuffer<float> logits, MemoryBuffer<int> ids,
        MemoryBuffer<float> weights, MemoryBuffer<int> counts, MemoryBuffer activation, MemoryBuffer<float> output)
    {
        int k = routing.TopK, slots = tokens * k;
        var x = new float[tokens * hiddenSize];
        HostRows.Read(hidden, 0, x);

        var logitRows = new float[tokens * experts];
        Parallel.For(0, experts, e =>
        {
            var w = new float[hiddenSize];
            HostRows.Read(router, (long)e * hiddenSize, w);
            for (int t = 0; t < tokens; t++)
                logitRows[t * experts + e] = TensorPrimitives.Dot(x.AsSpan(t * hiddenSize, hiddenSize), w);
        });
        HostRows.Write(logitRows, logits, 0);
        TopKRouting.Run(logits, tokens, experts, routing, ids, weights, counts);
        var chosen = ids.AsSpan()[..slots].ToArray();
        var scale = weights.AsSpan()[..slots].ToArray();

        // Activation rows, rounded to the dtype as the GPU stores them, then read back.
        var act = new float[slots * intermediate];
        Parallel.For(0, slots, s =>
        {
            var xt = x.AsSpan(s / k * hiddenSize, hiddenSize);
            var gate = new float[hiddenSize];
            var up = new float[hiddenSize];
            var row = new float[intermediate];
            long expertRows = (long)chosen[s] * 2 * intermediate;
            for (int j = 0; j < intermediate; j++)
            {
                HostRows.Read(gateUp, (expertRows + j) * hiddenSize, gate);
                HostRows.Read(gateUp, (expertRows + intermediate + j) * hiddenSize, up);
                float g = TensorPrimitives.Dot(xt, gate), u = TensorPrimitives.Dot(xt, up);
                row[j] = g / (1f + MathF.Exp(-g)) * u;
            }
            HostRows.Write(row, activation, (long)s * intermediate);
            HostRows.Read(activation, (long)s * intermediate, act.AsSpan(s * intermediate, intermediate));
        });

        var result = new float[tokens * hiddenSize];
        if (residual is not null)
            HostRows.Read(residual, 0, result);
        Parallel.For(0, tokens * hiddenSize, () => new float[intermediate], (i, _, w) =>
        {
            int t = i / hiddenSize, c = i % hiddenSize;
            float total = result[i];
            for (int j = 0; j < k; j++)
            {
                int s = t * k + j;
                HostRows.Read(down, ((long)chosen[s] * hiddenSize + c) * intermediate, w);
                total += scale[s] * TensorPrimitives.Dot(act.AsSpan(s * intermediate, intermediate), w);
            }
            result[i] = total;
            return w;
        }, _ => { });
        HostRows.Write(result, output, 0);
    }
}
