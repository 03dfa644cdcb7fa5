using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Tests.Runtime;

/// <summary>config.json parsing per family: field names, defaults, MoE-layer rules and errors.</summary>
public sealed class ModelConfigTests
{
    [Fact]
    public void MixtralUsesItsOwnFieldNames()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"mixtral","hidden_size":64,"intermediate_size":32,"num_local_experts":8,
             "num_experts_per_tok":2,"num_hidden_layers":2,"hidden_act":"silu"}
            """);
        Assert.Equal(ModelFamily.Mixtral, config.Family);
        Assert.Equal((64, 32, 8, 2, 2), (config.HiddenSize, config.MoeIntermediateSize, config.NumExperts, config.TopK, config.NumHiddenLayers));
        Assert.True(config.NormTopKProb);
        Assert.Equal(0, config.SharedIntermediateSize);
        Assert.True(config.IsMoeLayer(0) && config.IsMoeLayer(1));
    }

    [Fact]
    public void Qwen2MoeHasAGatedSharedExpertAndSparseSteps()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"qwen2_moe","hidden_size":64,"moe_intermediate_size":16,"shared_expert_intermediate_size":48,
             "num_experts":8,"num_experts_per_tok":2,"num_hidden_layers":6,"decoder_sparse_step":2,"mlp_only_layers":[3]}
            """);
        Assert.Equal(48, config.SharedIntermediateSize);
        Assert.True(config.HasSharedExpertGate);
        Assert.False(config.NormTopKProb); // transformers' default for qwen2_moe
        Assert.Equal([false, true, false, false, false, true], Enumerable.Range(0, 6).Select(config.IsMoeLayer).ToArray());
        var error = Assert.Throws<ModelConfigException>(() => config.EnsureMoeLayer(3));
        Assert.Contains("mlp_only_layers", error.Message);
        Assert.Contains("decoder_sparse_step", Assert.Throws<ModelConfigException>(() => config.EnsureMoeLayer(2)).Message);
    }

    [Fact]
    public void Qwen3MoeReadsNormTopKProb()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"qwen3_moe","hidden_size":32,"moe_intermediate_size":16,"num_experts":4,
             "num_experts_per_tok":2,"num_hidden_layers":1,"norm_topk_prob":true}
            """);
        Assert.True(config.NormTopKProb);
        Assert.Equal(0, config.SharedIntermediateSize);
        Assert.Equal(ScoringFunction.Softmax, config.ScoringFunction);
    }

    [Fact]
    public void DeepseekV3ReadsGroupedSigmoidRoutingAndDenseLayers()
    {
        var config = ModelConfig.Parse("""
            {"model_type":"deepseek_v3","hidden_size":64,"moe_intermediate_size":16,"n_routed_experts":16,
             "n_shared_experts":2,"num_experts_per_tok":4,"n_group":4,"topk_group":2,"routed_scaling_factor":2.5,
             "scoring_func":"sigmoid","norm_topk_prob":true,"first_k_dense_replace":1,"num_hidden_layers":3}
            """);
        Assert.Equal(ScoringFunction.Sigmoid, config.ScoringFunction);
        Assert.Equal((4, 2, 2.5), (config.NumGroups, config.TopKGroups, config.RoutedScalingFactor));
        Assert.Equal(32, config.SharedIntermediateSize);
        Assert.True(config.HasScoreCorrectionBias);
        Assert.False(config.IsMoeLayer(0));
        Assert.True(config.IsMoeLayer(1));
        var error = Assert.Throws<ModelConfigException>(() => config.EnsureMoeLayer(0));
        Assert.Contains("first_k_dense_replace", error.Message);
    }

    [Fact]
    public void AbsentFieldsTakeTheTransformersDefaults()
    {
        var config = ModelConfig.Parse("""{"model_type":"deepseek_v3"}""");
        Assert.Equal((7168, 2048, 256, 8, 8, 4, 3, 61), (config.HiddenSize, config.MoeIntermediateSize, config.NumExperts,
            config.TopK, config.NumGroups, config.TopKGroups, config.FirstKDenseReplace, config.NumHiddenLayers));
        Assert.Equal(2.5, config.RoutedScalingFactor);
    }

    [Fact]
    public void UnknownFamilyIsAClearError()
    {
        var error = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("""{"model_type":"llama","hidden_size":64}""", "x/config.json"));
        Assert.Contains("unknown model_type 'llama'", error.Message);
        Assert.Contains("x/config.json", error.Message);
        Assert.Contains("mixtral", error.Message);
    }

    [Fact]
    public void MissingModelTypeIsAClearError() =>
        Assert.Contains("no model_type", Assert.Throws<ModelConfigException>(() => ModelConfig.Parse("""{"hidden_size":64}""")).Message);

    [Fact]
    public void LayerOutOfRangeIsAClearError()
    {
        var config = ModelConfig.Parse("""{"model_type":"mixtral","num_hidden_layers":2}""");
        Assert.Contains("out of range", Assert.Throws<ModelConfigException>(() => config.EnsureMoeLayer(2)).Message);
        Assert.Contains("out of range", Assert.Throws<ModelConfigException>(() => config.EnsureMoeLayer(-1)).Message);
    }

    [Theory]
    [InlineData("""{"model_type":"mixtral","hidden_size":"big"}""", "hidden_size is not an integer")]
    [InlineData("""{"model_type":"mixtral","num_local_experts":4,"num_experts_per_tok":5}""", "exceeds the 4 experts")]
    [InlineData("""{"model_type":"deepseek_v3","n_routed_experts":10,"n_group":4}""", "equal groups")]
    [InlineData("""{"model_type":"mixtral","hidden_act":"tanhshrink"}""", "hidden_act")]
    [InlineData("""{"model_type":"deepseek_v3","scoring_func":"relu"}""", "scoring_func")]
    [InlineData("""[1,2]""", "not a JSON object")]
    public void BadFieldsAreNamed(string json, string fragment) =>
        Assert.Contains(fragment, Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json)).Message);
}
