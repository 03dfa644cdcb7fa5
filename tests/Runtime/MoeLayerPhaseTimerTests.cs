using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Bench;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>The single-accelerator layer's phase hook: every phase marked once, in order, on the forward's stream; and the event timer built on it.</summary>
public sealed class MoeLayerPhaseTimerTests
{
    private sealed class RecordingTimer : IMoeLayerPhaseTimer
    {
        public List<(string Mark, MoeLayerPhase Phase, AcceleratorStream Stream)> Marks { get; } = [];
        public void Begin(MoeLayerPhase phase, AcceleratorStream stream) => Marks.Add(("begin", phase, stream));
        public void End(MoeLayerPhase phase, AcceleratorStream stream) => Marks.Add(("end", phase, stream));
    }

    [Fact]
    public void ForwardMarksEveryPhaseOnceInOrderOnItsStream()
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, LayerBench.Preset("tiny"), DType.F32, seed: 11);
        Assert.NotNull(weights.SharedGateUp);
        var layer = new MoeLayer(weights) { PhaseTimer = new RecordingTimer() };
        var timer = (RecordingTimer)layer.PhaseTimer;
        using var workspace = new MoeWorkspace(weights, 7);
        using var hidden = accelerator.Upload<float>(TestData.Uniform(TestData.NewRandom(out _), 7 * weights.Config.HiddenSize));
        using var output = accelerator.Allocate<float>(7 * weights.Config.HiddenSize);
        using var stream = accelerator.CreateStream();
        layer.Forward(hidden, output, workspace, stream);

        var expected = Enum.GetValues<MoeLayerPhase>().SelectMany(p => new[] { ("begin", p), ("end", p) });
        Assert.Equal(expected, timer.Marks.Select(m => (m.Mark, m.Phase)));
        Assert.All(timer.Marks, m => Assert.Same(stream, m.Stream));

        // Without a stream the marks go to the default one; without a timer the forward gives the same output.
        timer.Marks.Clear();
        layer.Forward(hidden, output, workspace);
        Assert.All(timer.Marks, m => Assert.Same(accelerator.DefaultStream, m.Stream));
        var withTimer = output.ToArray();
        layer.PhaseTimer = null;
        TestData.Poison(output);
        layer.Forward(hidden, output, workspace);
        Assert.Equal(withTimer, output.ToArray());
    }

    [Fact]
    public void PhaseBenchGivesEveryPhaseAndTheirSumWithinTheTotal()
    {
        var accelerator = TestDevices.Get("cpu");
        using var weights = DeviceMoeWeights.CreateRandom(accelerator, LayerBench.Preset("tiny"), DType.BF16, seed: 2026);
        var rows = new LayerPhaseBench(accelerator, DType.BF16, warmup: 2, samples: 5).Run("tiny", weights, [5, 33]).ToList();
        Assert.Equal([5, 33], rows.Select(r => r.Tokens));
        foreach (var row in rows)
        {
            Assert.Equal(Enum.GetNames<MoeLayerPhase>().Order(), row.PhaseUs.Keys.Order());
            Assert.All(row.PhaseUs, p => Assert.True(p.Value > 0, $"T={row.Tokens} {p.Key}: {p.Value} us"));
            // Each forward's phases lie inside its total; the gaps between them are host work only (argument checks).
            Assert.InRange(row.PhaseSumUs, 0.5 * row.TotalUs, row.TotalUs);
            Assert.True(row.ActiveExperts > 0 && row.FloorUs > 0);
            Assert.True(row.EnqueueUs > 0, $"T={row.Tokens}: enqueue {row.EnqueueUs} us");
        }
    }

    /// <summary>Three layers cycled: every layer ran (its routing counted experts), and the row's active experts are their mean.</summary>
    [Fact]
    public void PhaseBenchCyclesThroughEveryLayer()
    {
        var accelerator = TestDevices.Get("cpu");
        var config = LayerBench.Preset("tiny");
        var weights = Enumerable.Range(0, 3).Select(l => DeviceMoeWeights.CreateRandom(accelerator, config, DType.BF16, seed: 2026 + l)).ToList();
        try
        {
            var row = new LayerPhaseBench(accelerator, DType.BF16, warmup: 0, samples: 3).Run("tiny", weights, [9]).Single();
            Assert.Equal(3, row.ActivePerLayer.Length);
            Assert.All(row.ActivePerLayer, a => Assert.True(a > 0, $"a layer's routing counted no expert: {string.Join(", ", row.ActivePerLayer)}"));
            Assert.Equal((int)Math.Round(row.ActivePerLayer.Average()), row.ActiveExperts);
        }
        finally
        {
            weights.ForEach(w => w.Dispose());
        }
    }

    [Fact]
    public void PhasesCommandPrintsARowPerTokenCount()
    {
        var output = new StringWriter();
        var errors = new StringWriter();
        int code = MoeRuntime.Cli.Commands.LayerBenchCommand.RunPhases("tiny", "1,9", "cpu", "bf16", warmup: 1, samples: 2, null, output, errors);
        Assert.True(code == 0, errors.ToString());
        string text = output.ToString();
        Assert.Contains("RouterGemm", text);
        // A phase row and a plain (eager) row per token count.
        Assert.Equal(4, text.Split('\n').Count(l => l.StartsWith("tiny ", StringComparison.Ordinal)));
    }
}
