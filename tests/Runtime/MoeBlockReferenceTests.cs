using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Runtime.Reference;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>The F64 MoE block against hand-worked routing and expert outputs, and routing invariants.</summary>
public sealed class MoeBlockReferenceTests
{
    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>
    /// H = 2, I = 1, token x = [1, 0]: logits[e] = routerColumn0[e]; every expert has gate [1, 0], up [2, 0]
    /// (so its activation is silu(1) * 2) and down [[e + 1], [-(e + 1)]], which tells experts apart.
    /// </summary>
    private static MoeLayerWeights HandWeights(string configJson, double[] logits, float[]? bias = null,
        float[]? sharedGateUp = null, float[]? sharedDown = null, float[]? sharedGate = null, bool zeroExperts = false)
    {
        var config = ModelConfig.Parse(configJson);
        int e = config.NumExperts;
        var router = new float[e * 2];
        for (int k = 0; k < e; k++)
            router[k * 2] = (float)logits[k];
        var gateUp = new float[e * 2 * 2];
        var down = new float[e * 2];
        for (int k = 0; k < e; k++)
        {
            gateUp[k * 4 + 0] = 1;      // gate row [1, 0]
            gateUp[k * 4 + 2] = 2;      // up row [2, 0]
            down[k * 2 + 0] = zeroExperts ? 0 : k + 1;
            down[k * 2 + 1] = zeroExperts ? 0 : -(k + 1);
        }
        return new MoeLayerWeights
        {
            Config = config,
            Layer = 0,
            DType = DType.F32,
            RouterGate = HostTensor.FromFloats(router, [e, 2], DType.F32),
            ExpertGateUp = HostTensor.FromFloats(gateUp, [e, 2, 2], DType.F32),
            ExpertDown = HostTensor.FromFloats(down, [e, 2, 1], DType.F32),
            ScoreCorrectionBias = bias,
            SharedGateUp = sharedGateUp is null ? null : HostTensor.FromFloats(sharedGateUp, [sharedGateUp.Length / 2, 2], DType.F32),
            SharedDown = sharedDown is null ? null : HostTensor.FromFloats(sharedDown, [2, sharedDown.Length / 2], DType.F32),
            SharedExpertGate = sharedGate is null ? null : HostTensor.FromFloats(sharedGate, [1, 2], DType.F32),
        };
    }

    private static readonly double SiluOne = 1 / (1 + Math.Exp(-1));

    // Probabilities 0.1, 0.2, 0.3, 0.4 need logits ln 1..ln 4 (float-rounded, so compare with a loose-enough bound).
    private static readonly double[] SoftmaxLogits = [Math.Log(1), Math.Log(2), Math.Log(3), Math.Log(4)];

    [Fact]
    public void MixtralRoutesSoftmaxTopKRenormalised()
    {
        var reference = new MoeBlockReference(HandWeights(
            """{"model_type":"mixtral","hidden_size":2,"intermediate_size":1,"num_local_experts":4,"num_experts_per_tok":2,"num_hidden_layers":1}""",
            SoftmaxLogits));
        var (ids, weights) = reference.Route([1.0, 0.0]);
        Assert.Equal([3, 2], ids);
        Assert.Equal(4.0 / 7, weights[0], 6);
        Assert.Equal(3.0 / 7, weights[1], 6);

        // y = sum_j w_j (id_j + 1) silu(1) 2 in column 0, its negative in column 1.
        var output = reference.Forward(new double[] { 1.0, 0.0 });
        double expected = (4.0 / 7 * 4 + 3.0 / 7 * 3) * SiluOne * 2;
        Assert.Equal(expected, output[0], 6);
        Assert.Equal(-expected, output[1], 6);
    }

    [Fact]
    public void Qwen3WithoutNormTopKProbKeepsSoftmaxWeights()
    {
        var reference = new MoeBlockReference(HandWeights(
            """{"model_type":"qwen3_moe","hidden_size":2,"moe_intermediate_size":1,"num_experts":4,"num_experts_per_tok":2,"num_hidden_layers":1,"norm_topk_prob":false}""",
            SoftmaxLogits));
        var (ids, weights) = reference.Route([1.0, 0.0]);
        Assert.Equal([3, 2], ids);
        Assert.Equal(0.4, weights[0], 6);
        Assert.Equal(0.3, weights[1], 6);
    }

    private const string DeepseekHand = """
        {"model_type":"deepseek_v3","hidden_size":2,"moe_intermediate_size":1,"n_routed_experts":8,"n_shared_experts":0,
         "num_experts_per_tok":2,"n_group":4,"topk_group":2,"routed_scaling_factor":2.5,"norm_topk_prob":true,
         "first_k_dense_replace":0,"num_hidden_layers":1}
        """;

    // Groups (0,1) (2,3) (4,5) (6,7). Expert 0 has the best single score, but its group sums to exactly 1.
    private static readonly double[] DeepseekLogits = [2, -2, 0.5, 0.4, 1.5, 1.4, -1, 3];

    [Fact]
    public void DeepseekChoosesWithinTheBestGroupsAndScales()
    {
        // bias[7] = -0.9 sinks group 3: group sums 1.0, 1.221, 1.620, 0.321 -> groups 2 and 1 kept; best there: 4, 5.
        float[] bias = [0, 0, 0, 0, 0, 0, 0, -0.9f];
        var reference = new MoeBlockReference(HandWeights(DeepseekHand, DeepseekLogits, bias));
        var (ids, weights) = reference.Route([1.0, 0.0]);
        Assert.Equal([4, 5], ids);
        double p4 = Sigmoid(1.5), p5 = Sigmoid(1.4);
        Assert.Equal(2.5 * p4 / (p4 + p5), weights[0], 6);
        Assert.Equal(2.5 * p5 / (p4 + p5), weights[1], 6);
    }

    [Fact]
    public void DeepseekBiasSteersTheChoiceButNotTheWeights()
    {
        // bias[3] = +0.5 lifts expert 3's choice score to 1.099 and its group (1) to the top; weights still use sigmoid(0.4).
        float[] bias = [0, 0, 0, 0.5f, 0, 0, 0, -0.9f];
        var reference = new MoeBlockReference(HandWeights(DeepseekHand, DeepseekLogits, bias));
        var (ids, weights) = reference.Route([1.0, 0.0]);
        Assert.Equal([3, 4], ids);
        double p3 = Sigmoid(0.4), p4 = Sigmoid(1.5);
        Assert.Equal(2.5 * p3 / (p3 + p4), weights[0], 6);
        Assert.Equal(2.5 * p4 / (p3 + p4), weights[1], 6);
    }

    [Fact]
    public void Qwen2SharedExpertIsScaledBySigmoidOfItsGate()
    {
        // Routed experts output zero; the shared expert (Is = 1, gate [1, 0], up [2, 0], down [[1], [1]]) gives
        // sigmoid(0.7) x silu(1) x 2 in both columns.
        var reference = new MoeBlockReference(HandWeights(
            """{"model_type":"qwen2_moe","hidden_size":2,"moe_intermediate_size":1,"shared_expert_intermediate_size":1,"num_experts":4,"num_experts_per_tok":2,"num_hidden_layers":1}""",
            SoftmaxLogits, sharedGateUp: [1, 0, 2, 0], sharedDown: [1, 1], sharedGate: [0.7f, 0], zeroExperts: true));
        var output = reference.Forward(new double[] { 1.0, 0.0 });
        double expected = Sigmoid((float)0.7) * SiluOne * 2;
        Assert.Equal(expected, output[0], 12);
        Assert.Equal(expected, output[1], 12);
    }

    [Fact]
    public void TopKBreaksTiesToTheLowerIndex() =>
        Assert.Equal([1, 3, 0], MoeBlockReference.TopK([0.5, 0.9, 0.1, 0.9], 3));

    [Theory]
    [InlineData(ModelFamily.Mixtral)]
    [InlineData(ModelFamily.Qwen3Moe)]
    [InlineData(ModelFamily.DeepseekV3)]
    public void RoutingInvariantsHoldOnRandomTokens(ModelFamily family)
    {
        using var folder = new TempFolder();
        var config = RandomCheckpoint.Write(folder.Path, family, new RandomCheckpointOptions { NumExperts = 16, TopK = 4 }, seed: 21);
        var reference = new MoeBlockReference(MoeLayerWeights.Load(folder.Path, 1, DType.F32));
        var random = TestData.NewRandom(out int seed);
        int groupSize = config.NumExperts / config.NumGroups;
        for (int t = 0; t < 20; t++)
        {
            var token = TestData.Uniform(random, config.HiddenSize).Select(v => (double)v).ToArray();
            var (ids, weights) = reference.Route(token);
            Assert.Equal(config.TopK, ids.Distinct().Count());
            Assert.All(weights, w => Assert.True(w > 0, $"weight {w} (seed {seed})"));
            Assert.Equal(config.NormTopKProb ? config.RoutedScalingFactor : weights.Sum(), weights.Sum(), 9);
            if (config.NumGroups > 1)
                Assert.True(ids.Select(id => id / groupSize).Distinct().Count() <= config.TopKGroups, $"experts from too many groups (seed {seed})");
        }
    }
}
