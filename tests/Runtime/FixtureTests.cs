using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>
/// The F64 reference against Hugging Face transformers: tests/Fixtures/&lt;family&gt;/ holds a tiny random model
/// saved by save_pretrained, input.safetensors and expected.safetensors (hidden_states [5, H], layer 1's
/// MoE block run by transformers in float32), made by tools/fixtures/make_fixtures.py.
/// Bound: 1e-5 relative, the F32 tolerance (transformers computes in F32, we in F64).
/// </summary>
public sealed class FixtureTests
{
    public static TheoryData<string> Families => ["mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v3"];

    [Theory]
    [MemberData(nameof(Families))]
    public void ReferenceMatchesTransformers(string family)
    {
        string folder = Path.Combine(AppContext.BaseDirectory, "Fixtures", family);
        if (!File.Exists(Path.Combine(folder, "expected.safetensors")))
            Assert.Skip($"no fixture in {folder}: run tools/fixtures/make_fixtures.py where torch and transformers are installed");

        var weights = MoeLayerWeights.Load(folder, 1, DType.F32);
        Assert.Equal(family, ModelFamilies.ModelType(weights.Config.Family));
        var (input, tokens, hidden) = HiddenStatesFile.Read(Path.Combine(folder, "input.safetensors"));
        var (expected, expectedTokens, expectedHidden) = HiddenStatesFile.Read(Path.Combine(folder, "expected.safetensors"));
        Assert.Equal((tokens, hidden), (expectedTokens, expectedHidden));
        Assert.Equal(weights.Config.HiddenSize, hidden);

        var output = new MoeBlockReference(weights).Forward(input);
        Compare.Close(Compare.ToDouble(expected), output, Compare.F32Tolerance, $"{family} layer 1 MoE block vs transformers");
    }
}
