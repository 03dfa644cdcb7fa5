using System.Diagnostics;
using MoeRuntime.Accelerators;
using MoeRuntime.Accelerators.Cuda;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Bench;

/// <summary>One row of <c>moe bench layer</c>: eager and CUDA-graph times against the weight-streaming floor.</summary>
internal sealed record LayerBenchRow(
    string Preset, string Device, string DType, int Tokens, double EagerMs, double? GraphMs,
    double TokensPerSecond, long ActiveWeightBytes, double FloorMs, double FloorRatio, string Note);

/// <summary>
/// <c>moe bench layer</c>: one MoE layer at a real model's shapes with random weights made on the device
/// (<see cref="DeviceMoeWeights.CreateRandom"/>), timed per token count as the median of event-timed forwards,
/// and for T &lt;= 128 on CUDA also replayed from a captured CUDA graph. The floor is the bytes of the weights
/// the tokens touch (router, the distinct experts hit, shared experts) over the copy bandwidth.
/// </summary>
internal sealed class LayerBench(Accelerator accelerator, DType dtype, int warmup, int samples)
{
    public static ModelConfig Preset(string name) => LayerPresets.Get(name);

    /// <summary>Copy bandwidth ceiling (bytes read + written per second) by device name.</summary>
    public static double CopyBandwidth(Accelerator accelerator) => accelerator.Kind != AcceleratorKind.Cuda
        ? 50e9
        : accelerator.Info.Name.Contains("H200", StringComparison.OrdinalIgnoreCase) ? 4.2e12 : 3.0e12;

    public static long ActiveWeightBytes(ModelConfig c, int tokens, DType dtype) => LayerPresets.ActiveWeightBytes(c, tokens, dtype);

    public IEnumerable<LayerBenchRow> Run(string preset, DeviceMoeWeights weights, IEnumerable<int> tokenCounts) =>
        Run(preset, [weights], tokenCounts);

    /// <summary>
    /// As above with several layers of the same shapes (<c>--layers</c>): a timed step is a forward of each in turn (a graph
    /// of them all), its time divided by their count, so each layer's weights come back to L2 from DRAM as in a model's decode.
    /// </summary>
    public IEnumerable<LayerBenchRow> Run(string preset, IReadOnlyList<DeviceMoeWeights> layerWeights, IEnumerable<int> tokenCounts)
    {
        var layers = layerWeights.Select(w => new MoeLayer(w)).ToArray();
        var config = layerWeights[0].Config;
        foreach (int tokens in tokenCounts)
        {
            var workspaces = layerWeights.Select(w => new MoeWorkspace(w, tokens)).ToArray();
            try
            {
                using var hidden = accelerator.Allocate(dtype, (long)tokens * config.HiddenSize);
                using var output = accelerator.Allocate<float>((long)tokens * config.HiddenSize);
                FillRandom(accelerator, dtype, hidden, tokens);
                void Forward(AcceleratorStream stream)
                {
                    for (int l = 0; l < layers.Length; l++)
                        layers[l].Forward(hidden, output, workspaces[l], stream);
                }
                var (eagerMs, graphMs, graphError) = Time(Forward, withGraph: accelerator is CudaAccelerator && tokens <= 128);
                double eager = eagerMs / layers.Length;
                double? graph = graphMs / layers.Length;
                string note = layers.Length > 1 ? $"{layers.Length} layers cycled" : "";
                if (graphError is not null)
                    note = (note.Length > 0 ? note + "; " : "") + "graph capture failed: " + graphError;
                double best = Math.Min(eager, graph ?? double.MaxValue);
                // The floor counts the experts this routing really hit (random routers are not uniform), averaged over the layers.
                var active = workspaces.Select(w => w.RoutedCounts.ToArray().Count(c => c > 0)).ToArray();
                long bytes = (long)active.Average(a => LayerPresets.ActiveWeightBytes(config, (double)a, dtype));
                WriteRoutedCounts(preset, tokens, workspaces[0].RoutedCounts);
                WriteRouting(preset, tokens, layerWeights, active, hidden);
                double floorMs = bytes / CopyBandwidth(accelerator) * 1e3;
                yield return new LayerBenchRow(preset, accelerator.Info.Name, DTypes.Name(dtype), tokens, eager, graph,
                    best > 0 ? tokens / (best / 1e3) : 0, bytes, floorMs, best / floorMs, note);
            }
            finally
            {
                foreach (var workspace in workspaces)
                    workspace.Dispose();
            }
        }
    }

    /// <summary>
    /// Median ms of one call of <paramref name="forward"/>, eager and (when asked, on CUDA) replayed from a CUDA graph of it,
    /// with CUDA events around each; a stopwatch on the CPU. The eager and graph samples alternate, so both see the same
    /// clock: timed one after the other, the second ran under the board's power cap that the first had raised (H200,
    /// twenty-ninth session: DeepSeek-V3 T = 128's graph read 3.48-3.58 ms after its eager samples, 3.24 alone).
    /// A capture that fails leaves the eager median and the capture's error.
    /// </summary>
    private (double Eager, double? Graph, string? GraphError) Time(Action<AcceleratorStream> forward, bool withGraph)
    {
        var eager = new double[samples];
        if (accelerator is not CudaAccelerator cuda)
        {
            var stream = accelerator.DefaultStream;
            for (int i = 0; i < warmup; i++)
                forward(stream);
            accelerator.Synchronize();
            for (int s = 0; s < samples; s++)
            {
                long t0 = Stopwatch.GetTimestamp();
                forward(stream);
                accelerator.Synchronize();
                eager[s] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
            return (Median(eager), null, null);
        }

        using var cudaStream = (CudaStream)cuda.CreateStream();
        for (int i = 0; i < warmup; i++)
            forward(cudaStream);
        cudaStream.Synchronize();
        string? graphError = null;
        using var graph = withGraph ? Capture(forward, cudaStream, out graphError) : null;
        var replayed = graph is null ? null : new double[samples];
        using var start = accelerator.CreateEvent();
        using var end = accelerator.CreateEvent();
        double Sample(Action launch)
        {
            start.Record(cudaStream);
            launch();
            end.Record(cudaStream);
            end.Synchronize();
            return end.ElapsedMillisecondsSince(start);
        }
        for (int s = 0; s < samples; s++)
        {
            eager[s] = Sample(() => forward(cudaStream));
            if (graph is not null)
                replayed![s] = Sample(() => graph.Launch(cudaStream));
        }
        return (Median(eager), replayed is null ? null : Median(replayed), graphError);
    }

    /// <summary>A CUDA graph of one forward, launched once (its first replay uploads it); null and the error if capture fails.</summary>
    private static CudaGraph? Capture(Action<AcceleratorStream> forward, CudaStream stream, out string? error)
    {
        error = null;
        stream.BeginCapture();
        try
        {
            forward(stream);
        }
        catch (Exception e)
        {
            // End the broken capture so the stream is usable again; the forward's error is the one to report.
            try
            {
                stream.EndCapture().Dispose();
            }
            catch (CudaException)
            {
            }
            if (e is not (CudaException or InvalidOperationException))
                throw;
            error = e.Message.Split('\n')[0];
            return null;
        }
        CudaGraph? graph = null;
        try
        {
            graph = stream.EndCapture();
            graph.Launch(stream);
            stream.Synchronize();
            return graph;
        }
        catch (CudaException e)
        {
            graph?.Dispose();
            error = e.Message.Split('\n')[0];
            return null;
        }
    }

    private static double Median(double[] times)
    {
        Array.Sort(times);
        return times[times.Length / 2];
    }

    /// <summary>
    /// Where the first layer's rows an expert from its router go, one line of counts a file (FOLDER/PRESET-T{tokens}-counts.txt),
    /// so <c>sweep grouped_gemm</c> can time the expert GEMMs on this routing (MOE_SWEEP_COUNTS); null: nowhere. Default
    /// MOE_BENCH_LAYER_COUNTS. Random routers are not uniform: DeepSeek-V3's left 8 of 256 experts empty at T = 8192.
    /// </summary>
    public string? CountsFolder { get; init; } = Environment.GetEnvironmentVariable("MOE_BENCH_LAYER_COUNTS") is { Length: > 0 } folder ? folder : null;

    private void WriteRoutedCounts(string preset, int tokens, MemoryBuffer<int> counts)
    {
        if (CountsFolder is null)
            return;
        Directory.CreateDirectory(CountsFolder);
        File.WriteAllText(Path.Combine(CountsFolder, $"{preset}-T{tokens}-counts.txt"), string.Join(' ', counts.ToArray()) + "\n");
    }

    /// <summary>
    /// Where to write what decides this bench's routing, one safetensors file a preset and token count
    /// (FOLDER/PRESET-T{tokens}-routing.safetensors): <c>hidden</c> [T, H], and for each layer l <c>layers.l.router</c> [E, H],
    /// <c>layers.l.bias</c> [E] F32 (DeepSeek-V3) and <c>layers.l.active</c> [1] I32, the experts its routing hit. The PyTorch
    /// composite (bench/reference/moe_layer.py, MOE_LAYER_ROUTING=FOLDER) routes the same hidden states with the same
    /// routers, so both sides stream the same experts: two random draws differ by up to 9% in bytes (thirty-second
    /// session, DeepSeek-V3 T = 16). Null: nowhere. Default MOE_BENCH_LAYER_ROUTING.
    /// </summary>
    public string? RoutingFolder { get; init; } = Environment.GetEnvironmentVariable("MOE_BENCH_LAYER_ROUTING") is { Length: > 0 } folder ? folder : null;

    private void WriteRouting(string preset, int tokens, IReadOnlyList<DeviceMoeWeights> layerWeights, int[] activeExperts, MemoryBuffer hidden)
    {
        if (RoutingFolder is null)
            return;
        var config = layerWeights[0].Config;
        var writer = new SafetensorsWriter();
        AddBuffer(writer, "hidden", hidden, [tokens, config.HiddenSize]);
        for (int l = 0; l < layerWeights.Count; l++)
        {
            AddBuffer(writer, $"layers.{l}.router", layerWeights[l].RouterGate, [config.NumExperts, config.HiddenSize]);
            if (layerWeights[l].Bias is { } bias)
                AddBuffer(writer, $"layers.{l}.bias", bias, [config.NumExperts]);
            writer.Add($"layers.{l}.active", [activeExperts[l]], 1);
        }
        Directory.CreateDirectory(RoutingFolder);
        writer.Write(Path.Combine(RoutingFolder, $"{preset}-T{tokens}-routing.safetensors"));
    }

    /// <summary>Adds a device buffer's values (copied to the host) as a tensor of <paramref name="shape"/>.</summary>
    private static void AddBuffer(SafetensorsWriter writer, string name, MemoryBuffer buffer, long[] shape)
    {
        switch (buffer)
        {
            case MemoryBuffer<float> f: writer.Add(name, f.ToArray(), shape); break;
            case MemoryBuffer<BFloat16> b: writer.Add(name, b.ToArray(), shape); break;
            case MemoryBuffer<Half> h: writer.Add(name, h.ToArray(), shape); break;
            default: throw new ArgumentException($"{name}: no safetensors tensor for {buffer.Describe()}", nameof(buffer));
        }
    }

    /// <summary>Uniform [-1, 1) values seeded by the token count, in <paramref name="dtype"/>.</summary>
    internal static void FillRandom(Accelerator accelerator, DType dtype, MemoryBuffer hidden, int tokens)
    {
        var random = new Random(tokens);
        var values = new float[hidden.Length];
        for (int i = 0; i < values.Length; i++)
            values[i] = 2 * random.NextSingle() - 1;
        using var upload = DeviceMoeWeights.UploadFloats(accelerator, values, dtype);
        hidden.CopyFrom(upload);
    }
}
