using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The layer on CUDA gives the same bits run after run, with fresh workspaces, at every stage it writes: the router's
/// logits, the routing, the permutation, the activation, the expert rows and the output. A failure names the first stage
/// that differs, so that a nondeterministic kernel is found where it is, not at the output.
/// </summary>
public sealed class MoeLayerDeterminismTests
{
    [Theory]
    [InlineData("qwen3_moe", 128, false)]
    [InlineData("qwen3_moe", 128, true)]
    [InlineData("deepseek_v3", 16, true)]
    [InlineData("mixtral", 16, true)]
    public void EveryStageGivesTheSameBitsRunAfterRun(string family, int experts, bool prefetch)
    {
        var gpu = TestDevices.Get("cuda:0");
        for (int round = 0; round < 4; round++)
        {
            var random = TestData.NewRandom(out int seed);
            using var folder = new TempFolder();
            var (config, layer) = MoeLayerFixtures.Write(folder.Path, family, experts, seed);
            var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
            using var device = DeviceMoeWeights.Upload(gpu, weights);
            foreach (int tokens in new[] { 1, 3, 8 })
            {
                var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
                var first = Run(device, hidden, tokens, prefetch);
                for (int repeat = 0; repeat < 3; repeat++)
                {
                    var again = Run(device, hidden, tokens, prefetch);
                    for (int i = 0; i < first.Count; i++)
                    {
                        var (stage, bits) = first[i];
                        int at = FirstDifference(bits, again[i].Bits);
                        if (at >= 0)
                            Assert.Fail($"{family} E={experts} T={tokens} prefetch={prefetch} seed {seed}, repeat {repeat}: stage '{stage}' " +
                            $"differs first at word {at} ({Hex(bits, at)} then {Hex(again[i].Bits, at)})");
                    }
                }
            }
        }
    }

    /// <summary>The down GEMV's prefetch (a hint) changes no stage's bits, over many seeds (MoeLayerGemvPrefetchTests checks the output once).</summary>
    [Fact]
    public void ThePrefetchChangesNoStage()
    {
        var gpu = TestDevices.Get("cuda:0");
        for (int round = 0; round < 8; round++)
        {
            var random = TestData.NewRandom(out int seed);
            using var folder = new TempFolder();
            var (config, layer) = MoeLayerFixtures.Write(folder.Path, "qwen3_moe", 128, seed);
            var weights = MoeLayerWeights.Load(folder.Path, layer, DType.BF16);
            using var device = DeviceMoeWeights.Upload(gpu, weights);
            foreach (int tokens in new[] { 1, 3 })
            {
                var hidden = MoeLayerFixtures.RoundTo(TestData.Uniform(random, tokens * config.HiddenSize), DType.BF16);
                var off = Run(device, hidden, tokens, false);
                var on = Run(device, hidden, tokens, true);
                for (int i = 0; i < off.Count; i++)
                {
                    int at = FirstDifference(off[i].Bits, on[i].Bits);
                    if (at >= 0)
                        Assert.Fail($"qwen3_moe T={tokens} seed {seed}: stage '{off[i].Stage}' differs first at word {at} " +
                        $"({Hex(off[i].Bits, at)} without the prefetch, {Hex(on[i].Bits, at)} with it)");
                }
            }
        }
    }

    private static string Hex(int[] bits, int at) => at < bits.Length ? $"0x{bits[at]:x8}" : "past the end";

    private static int FirstDifference(int[] a, int[] b)
    {
        for (int i = 0; i < Math.Min(a.Length, b.Length); i++)
            if (a[i] != b[i])
                return i;
        return a.Length == b.Length ? -1 : Math.Min(a.Length, b.Length);
    }

    /// <summary>One forward with a fresh workspace; each stage's buffer as 32-bit words, in the order the layer writes them.</summary>
    private static List<(string Stage, int[] Bits)> Run(DeviceMoeWeights device, float[] hidden, int tokens, bool prefetch)
    {
        var accelerator = device.Accelerator;
        var layer = new MoeLayer(device);
        using var workspace = new MoeWorkspace(device, tokens, gemvTileMap: true, gemvPrefetch: prefetch, fusedDecodeMaxTokens: 0); // the chain's stages
        using var input = DeviceMoeWeights.UploadFloats(accelerator, hidden, device.DType);
        using var output = accelerator.Allocate<float>((long)tokens * device.Config.HiddenSize);
        TestData.Poison(output);
        layer.Forward(input, output, workspace);
        accelerator.Synchronize();
        int rows = tokens * device.Config.TopK;
        return
        [
            ("router logits", Words(workspace.Logits, workspace.Logits.LengthBytes)),
            ("routing ids", Words(workspace.Ids, rows * 4L)),
            ("routing weights", Words(workspace.RoutingWeights, rows * 4L)),
            ("expert offsets", Words(workspace.ExpertOffsets, (device.Config.NumExperts + 1) * 4L)),
            ("row of slot", Words(workspace.RowOfSlot, rows * 4L)),
            ("activation", Words(workspace.Activation, workspace.Activation.LengthBytes)),
            ("expert output", Words(workspace.ExpertOutput, workspace.ExpertOutput.LengthBytes)),
            ("output", Words(output, output.LengthBytes)),
        ];
    }

    /// <summary>The first <paramref name="bytes"/> of a device buffer as 32-bit words (the tail of an odd length zero-padded).</summary>
    private static int[] Words(MemoryBuffer buffer, long bytes)
    {
        using var words = buffer.Accelerator.Allocate<int>((bytes + 3) / 4);
        words.Clear();
        MemoryBuffer.CopyBytes(buffer, 0, words, 0, bytes);
        return words.ToArray();
    }
}
