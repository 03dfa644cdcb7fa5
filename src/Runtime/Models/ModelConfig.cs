using System.Text.Json;

namespace MoeRuntime.Runtime.Models;

/// <summary>
/// What an MoE block needs from a Hugging Face config.json, for the families in <see cref="ModelFamily"/>.
/// Field names on disk differ per family:
/// <code>
///                     mixtral              qwen2_moe / qwen3_moe       deepseek_v3
/// experts             num_local_experts    num_experts (or num_local_experts, as transformers 5 saves it)   n_routed_experts
/// expert intermediate intermediate_size    moe_intermediate_size       moe_intermediate_size
/// shared experts      -                    shared_expert_intermediate  n_shared_experts x moe_intermediate_size
///                                          _size (qwen2_moe only)
/// MoE layers          all                  not in mlp_only_layers and  layer >= first_k_dense_replace and
///                                          (layer+1) % decoder_sparse_  layer % moe_layer_freq == 0
///                                          step == 0
/// routing             softmax, top-k,      softmax, top-k,             sigmoid + e_score_correction_bias,
///                     renormalised         norm_topk_prob              n_group/topk_group, norm_topk_prob,
///                                                                      x routed_scaling_factor
/// </code>
/// A field absent from the file takes the transformers class default (save_pretrained writes only the
/// fields that differ from those defaults).
/// </summary>
public sealed record ModelConfig
{
    public required ModelFamily Family { get; init; }
    public required int HiddenSize { get; init; }

    /// <summary>Intermediate size of one routed expert (I): its gate_up has 2I rows.</summary>
    public required int MoeIntermediateSize { get; init; }
    public required int NumExperts { get; init; }
    public required int TopK { get; init; }
    public required int NumHiddenLayers { get; init; }
    public required bool NormTopKProb { get; init; }
    public ScoringFunction ScoringFunction { get; init; } = ScoringFunction.Softmax;
    public int NumGroups { get; init; } = 1;
    public int TopKGroups { get; init; } = 1;
    public double RoutedScalingFactor { get; init; } = 1.0;

    /// <summary>Intermediate size of the shared expert(s) taken together; 0 when there is none.</summary>
    public int SharedIntermediateSize { get; init; }

    /// <summary>qwen2_moe: the shared expert's output is scaled by sigmoid(shared_expert_gate . x).</summary>
    public bool HasSharedExpertGate { get; init; }

    /// <summary>deepseek_v3: a per-expert bias added to the scores for choosing (not for weighting).</summary>
    public bool HasScoreCorrectionBias { get; init; }
    public int FirstKDenseReplace { get; init; }
    public int MoeLayerFrequency { get; init; } = 1;
    public int DecoderSparseStep { get; init; } = 1;
    public IReadOnlyList<int> MlpOnlyLayers { get; init; } = [];
    public string HiddenAct { get; init; } = "silu";

    /// <summary>Block edge [rows, cols] of FP8 weight scales from quantization_config, or null when unquantised.</summary>
    public int[]? WeightBlockSize { get; init; }

    public bool IsMoeLayer(int layer) =>
        layer >= 0 && layer < NumHiddenLayers && Family switch
        {
            ModelFamily.Mixtral => true,
            ModelFamily.Qwen2Moe or ModelFamily.Qwen3Moe =>
                !MlpOnlyLayers.Contains(layer) && NumExperts > 0 && (layer + 1) % DecoderSparseStep == 0,
            ModelFamily.DeepseekV3 => layer >= FirstKDenseReplace && layer % MoeLayerFrequency == 0,
            _ => false,
        };

    /// <summary>Throws a <see cref="ModelConfigException"/> saying why <paramref name="layer"/> is not an MoE layer.</summary>
    public void EnsureMoeLayer(int layer)
    {
        if (layer < 0 || layer >= NumHiddenLayers)
            throw new ModelConfigException($"layer {layer} is out of range: the model has {NumHiddenLayers} layers (0..{NumHiddenLayers - 1})");
        if (IsMoeLayer(layer))
            return;
        string why = Family switch
        {
            ModelFamily.DeepseekV3 when layer < FirstKDenseReplace => $"layers below first_k_dense_replace = {FirstKDenseReplace} are dense",
            ModelFamily.DeepseekV3 => $"only layers divisible by moe_layer_freq = {MoeLayerFrequency} are MoE",
            _ when MlpOnlyLayers.Contains(layer) => "it is listed in mlp_only_layers",
            _ => $"only layers with (layer + 1) % decoder_sparse_step ({DecoderSparseStep}) == 0 are MoE",
        };
        throw new ModelConfigException($"layer {layer} of this {ModelFamilies.ModelType(Family)} model is a dense MLP, not an MoE layer: {why}");
    }

    public static ModelConfig Load(string configPathOrDirectory)
    {
        string path = Directory.Exists(configPathOrDirectory) ? Path.Combine(configPathOrDirectory, "config.json") : configPathOrDirectory;
        if (!File.Exists(path))
            throw new FileNotFoundException($"model config not found: {path}", path);
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses config.json text; <paramref name="source"/> names it in errors.</summary>
    public static ModelConfig Parse(string json, string source = "config.json")
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ModelConfigException($"{source}: not valid JSON: {e.Message}", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new ModelConfigException($"{source}: not a JSON object");
            var fields = new Fields(root, source);
            string modelType = fields.String("model_type", null)
                ?? throw new ModelConfigException($"{source}: no model_type (known: {ModelFamilies.Known})");
            var family = ModelFamilies.TryParse(modelType)
                ?? throw new ModelConfigException($"{source}: unknown model_type '{modelType}' (known: {ModelFamilies.Known})");
            var config = family switch
            {
                ModelFamily.Mixtral => new ModelConfig
                {
                    Family = family,
                    HiddenSize = fields.Int("hidden_size", 4096),
                    MoeIntermediateSize = fields.Int("intermediate_size", 14336),
                    NumExperts = fields.Int("num_local_experts", 8),
                    TopK = fields.Int("num_experts_per_tok", 2),
                    NumHiddenLayers = fields.Int("num_hidden_layers", 32),
                    NormTopKProb = true,
                    HiddenAct = fields.String("hidden_act", "silu")!,
                },
                ModelFamily.Qwen2Moe => new ModelConfig
                {
                    Family = family,
                    HiddenSize = fields.Int("hidden_size", 2048),
                    MoeIntermediateSize = fields.Int("moe_intermediate_size", 1408),
                    NumExperts = fields.Int("num_experts", fields.Int("num_local_experts", 60)),
                    TopK = fields.Int("num_experts_per_tok", 4),
                    NumHiddenLayers = fields.Int("num_hidden_layers", 24),
                    NormTopKProb = fields.Bool("norm_topk_prob", false),
                    SharedIntermediateSize = fields.Int("shared_expert_intermediate_size", 5632),
                    HasSharedExpertGate = true,
                    DecoderSparseStep = fields.Int("decoder_sparse_step", 1),
                    MlpOnlyLayers = fields.IntList("mlp_only_layers"),
                    HiddenAct = fields.String("hidden_act", "silu")!,
                },
                ModelFamily.Qwen3Moe => new ModelConfig
                {
                    Family = family,
                    HiddenSize = fields.Int("hidden_size", 2048),
                    MoeIntermediateSize = fields.Int("moe_intermediate_size", 768),
                    NumExperts = fields.Int("num_experts", fields.Int("num_local_experts", 128)),
                    TopK = fields.Int("num_experts_per_tok", 8),
                    NumHiddenLayers = fields.Int("num_hidden_layers", 24),
                    NormTopKProb = fields.Bool("norm_topk_prob", false),
                    DecoderSparseStep = fields.Int("decoder_sparse_step", 1),
                    MlpOnlyLayers = fields.IntList("mlp_only_layers"),
                    HiddenAct = fields.String("hidden_act", "silu")!,
                },
                _ => ParseDeepseek(fields),
            };
            config = config with { WeightBlockSize = ReadBlockSize(root, source) };
            config.Validate(source);
            return config;
        }
    }

    private static ModelConfig ParseDeepseek(Fields fields)
    {
        int moeIntermediate = fields.Int("moe_intermediate_size", 2048);
        string scoring = fields.String("scoring_func", "sigmoid")!;
        return new ModelConfig
        {
            Family = ModelFamily.DeepseekV3,
            HiddenSize = fields.Int("hidden_size", 7168),
            MoeIntermediateSize = moeIntermediate,
            NumExperts = fields.Int("n_routed_experts", 256),
            TopK = fields.Int("num_experts_per_tok", 8),
            NumHiddenLayers = fields.Int("num_hidden_layers", 61),
            NormTopKProb = fields.Bool("norm_topk_prob", true),
            ScoringFunction = scoring switch
            {
                "sigmoid" => ScoringFunction.Sigmoid,
                "softmax" => ScoringFunction.Softmax,
                _ => throw new ModelConfigException($"{fields.Source}: scoring_func '{scoring}' is not sigmoid or softmax"),
            },
            NumGroups = fields.Int("n_group", 8),
            TopKGroups = fields.Int("topk_group", 4),
            RoutedScalingFactor = fields.Double("routed_scaling_factor", 2.5),
            SharedIntermediateSize = fields.Int("n_shared_experts", 1) * moeIntermediate,
            HasScoreCorrectionBias = true,
            FirstKDenseReplace = fields.Int("first_k_dense_replace", 3),
            MoeLayerFrequency = fields.Int("moe_layer_freq", 1),
            HiddenAct = fields.String("hidden_act", "silu")!,
        };
    }

    private static int[]? ReadBlockSize(JsonElement root, string source)
    {
        if (!root.TryGetProperty("quantization_config", out var quantization) || quantization.ValueKind != JsonValueKind.Object
            || !quantization.TryGetProperty("weight_block_size", out var block))
            return null;
        if (block.ValueKind != JsonValueKind.Array || block.GetArrayLength() != 2
            || block.EnumerateArray().Any(v => v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int b) || b <= 0))
            throw new ModelConfigException($"{source}: quantization_config.weight_block_size is not [rows, cols]");
        return [block[0].GetInt32(), block[1].GetInt32()];
    }

    private void Validate(string source)
    {
        void Positive(int value, string field)
        {
            if (value <= 0)
                throw new ModelConfigException($"{source}: {field} = {value} must be positive");
        }
        Positive(HiddenSize, "hidden_size");
        Positive(MoeIntermediateSize, "the expert intermediate size");
        Positive(NumExperts, "the number of experts");
        Positive(TopK, "num_experts_per_tok");
        Positive(NumHiddenLayers, "num_hidden_layers");
        Positive(NumGroups, "n_group");
        Positive(TopKGroups, "topk_group");
        Positive(MoeLayerFrequency, "moe_layer_freq");
        Positive(DecoderSparseStep, "decoder_sparse_step");
        if (TopK > NumExperts)
            throw new ModelConfigException($"{source}: num_experts_per_tok = {TopK} exceeds the {NumExperts} experts");
        if (NumExperts % NumGroups != 0)
            throw new ModelConfigException($"{source}: {NumExperts} experts do not split into n_group = {NumGroups} equal groups");
        if (TopKGroups > NumGroups)
            throw new ModelConfigException($"{source}: topk_group = {TopKGroups} exceeds n_group = {NumGroups}");
        if (NumGroups > 1 && TopK > TopKGroups * (NumExperts / NumGroups))
            throw new ModelConfigException($"{source}: top-{TopK} cannot be chosen from {TopKGroups} groups of {NumExperts / NumGroups} experts");
        if (SharedIntermediateSize < 0)
            throw new ModelConfigException($"{source}: shared expert intermediate size {SharedIntermediateSize} is negative");
        if (!Activations.IsKnown(HiddenAct))
            throw new ModelConfigException($"{source}: hidden_act '{HiddenAct}' is not supported ({Activations.Known})");
    }

    /// <summary>Typed reads of optional fields with defaults; wrong types are errors naming the field.</summary>
    private readonly struct Fields(JsonElement root, string source)
    {
        public string Source => source;

        private JsonElement? Get(string name) =>
            root.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

        public int Int(string name, int fallback)
        {
            if (Get(name) is not { } value)
                return fallback;
            return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result)
                ? result
                : throw new ModelConfigException($"{source}: {name} is not an integer");
        }

        public double Double(string name, double fallback)
        {
            if (Get(name) is not { } value)
                return fallback;
            return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw new ModelConfigException($"{source}: {name} is not a number");
        }

        public bool Bool(string name, bool fallback)
        {
            if (Get(name) is not { } value)
                return fallback;
            return value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ModelConfigException($"{source}: {name} is not true or false"),
            };
        }

        public string? String(string name, string? fallback)
        {
            if (Get(name) is not { } value)
                return fallback;
            return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new ModelConfigException($"{source}: {name} is not a string");
        }

        public int[] IntList(string name)
        {
            if (Get(name) is not { } value)
                return [];
            if (value.ValueKind != JsonValueKind.Array)
                throw new ModelConfigException($"{source}: {name} is not a list of integers");
            var result = new List<int>();
            foreach (var item in value.EnumerateArray())
                result.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int layer)
                    ? layer
                    : throw new ModelConfigException($"{source}: {name} is not a list of integers"));
            return [.. result];
        }
    }
}
