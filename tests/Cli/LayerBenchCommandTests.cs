using System.Text.Json.Nodes;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Cli;

/// <summary><c>moe bench layer</c> on the tiny preset, its floor arithmetic, and the random device weights it runs on.</summary>
public sealed class LayerBenchCommandTests
{
    [Fact]
    public void TinyPresetPrintsOneRowPerTokenCountAndWritesJson()
    {
        string json = Path.Combine(Path.GetTempPath(), $"layer-bench-{Guid.NewGuid():N}.json");
        try
        {
            var output = new StringWriter();
            var errors = new StringWriter();
            int code = LayerBenchCommand.Run("tiny", "1,5,33", "cpu", "bf16", warmup: 1, samples: 2, json, output, errors);
            Assert.True(code == 0, errors.ToString());
            var rows = JsonNode.Parse(File.ReadAllText(json))!["rows"]!.AsArray();
            Assert.Equal([1, 5, 33], rows.Select(r => r!["Tokens"]!.GetValue<int>()));
            Assert.All(rows, r => Assert.True(r!["EagerMs"]!.GetValue<double>() > 0));
            Assert.Equal(3, output.ToString().Split('\n').Count(l => l.StartsWith("tiny ", StringComparison.Ordinal)));
        }
        finally
        {
            File.Delete(json);
        }
    }

    /// <summary>--layers N: the header says the layers are cycled, the JSON says how many, a row per token count.</summary>
    [Fact]
    public void SeveralLayersAreCycledAndNamed()
    {
        string json = Path.Combine(Path.GetTempPath(), $"layer-bench-{Guid.NewGuid():N}.json");
        try
        {
            var output = new StringWriter();
            var errors = new StringWriter();
            int code = LayerBenchCommand.Run("tiny", "1,9", "cpu", "bf16", warmup: 1, samples: 2, json, output, errors, layerCount: 3);
            Assert.True(code == 0, errors.ToString());
            Assert.Contains("3 layers cycled", output.ToString());
            var document = JsonNode.Parse(File.ReadAllText(json))!;
            Assert.Equal(3, document["layers"]!.GetValue<int>());
            Assert.Equal([1, 9], document["rows"]!.AsArray().Select(r => r!["Tokens"]!.GetValue<int>()));
        }
        finally
        {
            File.Delete(json);
        }
    }

    /// <summary>
    /// A cycled step runs every layer: the floor of two layers cycled is the mean of each one's floor alone (a layer left out
    /// would add the floor of a routing that hit no expert).
    /// </summary>
    [Fact]
    public void TheFloorOfCycledLayersIsTheirMean()
    {
        var accelerator = TestDevices.Get("cpu");
        var config = LayerBench.Preset("tiny");
        using var first = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2026);
        using var second = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2027);
        var bench = new LayerBench(accelerator, DType.BF16, warmup: 1, samples: 1);
        long alone0 = bench.Run("tiny", first, [7]).Single().ActiveWeightBytes;
        long alone1 = bench.Run("tiny", second, [7]).Single().ActiveWeightBytes;
        var both = bench.Run("tiny", [first, second], [7]).Single();
        Assert.Equal((long)((alone0 + alone1) / 2.0), both.ActiveWeightBytes);
        Assert.Contains("2 layers cycled", both.Note);
    }

    /// <summary>
    /// On a GPU a row of T &lt;= 128 gives both medians from the alternating eager and graph samples (no capture error); above
    /// 128 tokens the row is eager only. On the CPU no row has a graph time.
    /// </summary>
    [Theory]
    [InlineData("cpu")]
    [InlineData("cuda")]
    public void GraphTimesComeWithEagerOnesUpTo128Tokens(string kind)
    {
        var accelerator = TestDevices.Get(kind);
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, LayerBench.Preset("tiny"), DType.BF16, seed: 2029);
        var rows = new LayerBench(accelerator, DType.BF16, warmup: 1, samples: 3).Run("tiny", weights, [1, 128, 129]).ToList();
        Assert.All(rows, r => Assert.True(r.EagerMs > 0));
        Assert.All(rows, r => Assert.DoesNotContain("graph capture failed", r.Note));
        if (kind == "cuda")
            Assert.All(rows.Take(2), r => Assert.True(r.GraphMs > 0, $"T = {r.Tokens}: no graph time"));
        else
            Assert.Null(rows[0].GraphMs);
        Assert.Null(rows[2].GraphMs);
    }

    /// <summary>
    /// With a counts folder the bench writes its router's rows an expert per token count: one count per expert, k rows a
    /// token in all (what <c>sweep grouped_gemm</c> reads back through MOE_SWEEP_COUNTS). Without one it writes nothing.
    /// </summary>
    [Fact]
    public void TheRoutersCountsAreWrittenWhereAsked()
    {
        var accelerator = TestDevices.Get("cpu");
        var config = LayerBench.Preset("tiny");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2028);
        string folder = Path.Combine(Path.GetTempPath(), $"moe-counts-{Guid.NewGuid():N}");
        try
        {
            _ = new LayerBench(accelerator, DType.BF16, warmup: 1, samples: 1) { CountsFolder = folder }.Run("tiny", weights, [3, 11]).ToList();
            foreach (int tokens in new[] { 3, 11 })
            {
                var counts = File.ReadAllText(Path.Combine(folder, $"tiny-T{tokens}-counts.txt")).Split(' ').Select(int.Parse).ToArray();
                Assert.Equal(config.NumExperts, counts.Length);
                Assert.All(counts, c => Assert.InRange(c, 0, tokens));
                Assert.Equal(tokens * config.TopK, counts.Sum());
            }
            Directory.Delete(folder, recursive: true);
            _ = new LayerBench(accelerator, DType.BF16, warmup: 1, samples: 1) { CountsFolder = null }.Run("tiny", weights, [3]).ToList();
            Assert.False(Directory.Exists(folder));
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// With a routing folder the bench writes what decides its routing (the hidden states, each layer's router and bias) and
    /// the experts each layer's routing hit, so the PyTorch composite can route the same tokens to the same experts: the
    /// file's router on the file's hidden states hits the written experts.
    /// </summary>
    [Fact]
    public void TheRoutingIsWrittenWhereAsked()
    {
        var accelerator = TestDevices.Get("cpu");
        var config = LayerBench.Preset("tiny");
        using var first = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2029);
        using var second = DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2030);
        string folder = Path.Combine(Path.GetTempPath(), $"moe-routing-{Guid.NewGuid():N}");
        try
        {
            const int Tokens = 5;
            _ = new LayerBench(accelerator, DType.BF16, warmup: 1, samples: 1) { RoutingFolder = folder }.Run("tiny", [first, second], [Tokens]).ToList();
            using var file = SafetensorsFile.Open(Path.Combine(folder, $"tiny-T{Tokens}-routing.safetensors"));
            Assert.Equal([Tokens, config.HiddenSize], file.GetInfo("hidden").Shape);
            var hiddenBits = file.ReadBytes("hidden");
            using var hidden = accelerator.Allocate<BFloat16>((long)Tokens * config.HiddenSize);
            hidden.CopyFrom(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BFloat16>(hiddenBits));
            using var expectedHidden = accelerator.Allocate<BFloat16>((long)Tokens * config.HiddenSize);
            LayerBench.FillRandom(accelerator, DType.BF16, expectedHidden, Tokens);
            Assert.Equal(expectedHidden.ToArray(), hidden.ToArray());
            foreach (var (weights, l) in new[] { (first, 0), (second, 1) })
            {
                Assert.Equal(SafetensorsDType.BF16, file.GetInfo($"layers.{l}.router").DType);
                Assert.Equal(((MemoryBuffer<BFloat16>)weights.RouterGate).ToArray(),
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, BFloat16>(file.ReadBytes($"layers.{l}.router")).ToArray());
                Assert.Equal(weights.Bias!.ToArray(), System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(file.ReadBytes($"layers.{l}.bias")).ToArray());
                int active = BitConverter.ToInt32(file.ReadBytes($"layers.{l}.active"));
                using var workspace = new MoeWorkspace(weights, Tokens);
                new MoeLayer(weights).Route(hidden, workspace, null);
                Assert.Equal(workspace.RoutedCounts.ToArray().Count(c => c > 0), active);
                Assert.InRange(active, config.TopK, config.NumExperts);
            }
        }
        finally
        {
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(17)]
    public void ALayerCountOutside1To16IsRefused(int layers)
    {
        foreach (bool phases in new[] { false, true })
        {
            var errors = new StringWriter();
            int code = phases
                ? LayerBenchCommand.RunPhases("tiny", "1", "cpu", "bf16", 1, 1, null, new StringWriter(), errors, layers)
                : LayerBenchCommand.Run("tiny", "1", "cpu", "bf16", 1, 1, null, new StringWriter(), errors, layers);
            Assert.Equal(2, code);
            Assert.Contains($"--layers {layers}: 1 to 16 layers", errors.ToString());
        }
    }

    [Theory]
    [InlineData("mixtral-7b", "preset 'mixtral-7b'")]
    [InlineData("tiny", "--tokens: '0'")]
    public void BadArgumentsExitWithCode2(string preset, string message)
    {
        var errors = new StringWriter();
        int code = LayerBenchCommand.Run(preset, "0", "cpu", "bf16", 1, 1, null, new StringWriter(), errors);
        Assert.Equal(2, code);
        Assert.Contains(message, errors.ToString());
    }

    /// <summary>One token touches exactly k experts: router + k experts + shared, by hand for DeepSeek-V3 in bf16.</summary>
    [Fact]
    public void ActiveWeightBytesOfOneTokenAreTheRouterKExpertsAndTheSharedExpert()
    {
        var config = LayerBench.Preset("deepseek-v3");
        long expected = 256L * 7168 * 2 + 8 * 3L * 7168 * 2048 * 2 + 3L * 7168 * 2048 * 2;
        Assert.Equal(expected, LayerBench.ActiveWeightBytes(config, 1, DType.BF16), 1.0);
        // Many tokens hit every expert.
        long all = 256L * 7168 * 2 + 256 * 3L * 7168 * 2048 * 2 + 3L * 7168 * 2048 * 2;
        Assert.Equal(all, LayerBench.ActiveWeightBytes(config, 8192, DType.BF16), 1.0);
    }

    [Theory]
    [MemberData(nameof(TestDevices.Names), MemberType = typeof(TestDevices))]
    public void RandomDeviceWeightsAreBoundedReproducibleAndRun(string device)
    {
        var accelerator = TestDevices.Get(device);
        var config = LayerBench.Preset("tiny");
        using var a = DeviceMoeWeights.CreateRandom(accelerator, config, DType.F32, seed: 7);
        using var b = DeviceMoeWeights.CreateRandom(accelerator, config, DType.F32, seed: 7);
        using var c = DeviceMoeWeights.CreateRandom(accelerator, config, DType.F32, seed: 8);
        var gateUp = ((MemoryBuffer<float>)a.GateUp).ToArray();
        Assert.Equal(16L * 2 * 96 * 64, gateUp.Length);
        float bound = 1f / MathF.Sqrt(64);
        Assert.All(gateUp, v => Assert.InRange(v, -bound, bound));
        Assert.True(gateUp.Distinct().Count() > gateUp.Length / 2, "values should be spread, not repeated");
        Assert.Equal(gateUp, ((MemoryBuffer<float>)b.GateUp).ToArray());
        Assert.NotEqual(gateUp, ((MemoryBuffer<float>)c.GateUp).ToArray());
        Assert.Equal(16, a.Bias!.Length);
        Assert.NotNull(a.SharedGateUp);

        var layer = new MoeLayer(a);
        using var workspace = new MoeWorkspace(a, 5);
        using var hidden = accelerator.Upload<float>(TestData.Uniform(TestData.NewRandom(out _), 5 * 64));
        using var output = accelerator.Allocate<float>(5 * 64);
        TestData.Poison(output);
        layer.Forward(hidden, output, workspace);
        accelerator.Synchronize();
        Assert.All(output.ToArray(), v => Assert.True(float.IsFinite(v)));
    }
}
