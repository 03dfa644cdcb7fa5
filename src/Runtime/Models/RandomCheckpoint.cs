using System.Text.Json;
using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Runtime.Models;

/// <summary>Shape and storage of a random checkpoint; defaults give a tiny model (H 64, I 32, 8 experts, top-2, 2 layers).</summary>
public sealed record RandomCheckpointOptions
{
    public int HiddenSize { get; init; } = 64;
    public int IntermediateSize { get; init; } = 32;
    public int NumExperts { get; init; } = 8;
    public int TopK { get; init; } = 2;
    public int NumLayers { get; init; } = 2;
    public bool NormTopKProb { get; init; } = true;

    /// <summary>Weight dtype on disk: F32, BF16, F16, or F8_E4M3 (with 128 x 128 block scales).</summary>
    public SafetensorsDType WeightDType { get; init; } = SafetensorsDType.F32;

    /// <summary>1: a single model.safetensors; more: that many shards and a model.safetensors.index.json.</summary>
    public int Shards { get; init; } = 1;

    /// <summary>Experts stored fused (transformers 5: experts.gate_up_proj [E, 2I, H], experts.down_proj [E, H, I]).</summary>
    public bool FusedExperts { get; init; }

    /// <summary>deepseek_v3: n_group, topk_group, first_k_dense_replace, n_shared_experts, routed_scaling_factor.</summary>
    public int NumGroups { get; init; } = 4;
    public int TopKGroups { get; init; } = 2;
    public int FirstKDenseReplace { get; init; } = 1;
    public int NumSharedExperts { get; init; } = 1;
    public double RoutedScalingFactor { get; init; } = 2.5;

    /// <summary>qwen2_moe: the shared expert's intermediate size.</summary>
    public int SharedExpertIntermediateSize { get; init; } = 48;
}

/// <summary>
/// Writes a small random checkpoint in the Hugging Face layout (config.json + model.safetensors, or shards
/// with an index) for any family: the MoE layers' tensors with the family's names, nothing else (no
/// attention or embeddings). Weights are uniform in +-1/sqrt(fan_in), so outputs stay near unit scale.
/// Used by <c>moe demo</c> and the tests.
/// </summary>
public static class RandomCheckpoint
{
    public static ModelConfig Write(string directory, ModelFamily family, RandomCheckpointOptions options, int seed)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(options);
        if (options.WeightDType is not (SafetensorsDType.F32 or SafetensorsDType.BF16 or SafetensorsDType.F16 or SafetensorsDType.F8_E4M3))
            throw new ArgumentException($"weight dtype {options.WeightDType} is not F32, BF16, F16 or F8_E4M3", nameof(options));
        if (options.Shards < 1)
            throw new ArgumentException($"shards = {options.Shards} must be at least 1", nameof(options));
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), ConfigJson(family, options));
        var config = ModelConfig.Load(directory);

        var random = new Random(seed);
        var tensors = new List<(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)>();
        int h = config.HiddenSize, i = config.MoeIntermediateSize, e = config.NumExperts;
        for (int layer = 0; layer < config.NumHiddenLayers; layer++)
        {
            if (!config.IsMoeLayer(layer))
                continue;
            var names = new MoeTensorNames(family, MoeTensorNames.CandidatePrefixes(family, layer)[0]);
            // Router and bias stay F32 whatever the weights are, as in DeepSeek-V3's FP8 release.
            var routerDType = options.WeightDType == SafetensorsDType.F8_E4M3 ? SafetensorsDType.F32 : options.WeightDType;
            tensors.Add(Dense(names.RouterGate, routerDType, [e, h], random, h));
            if (config.HasScoreCorrectionBias)
                tensors.Add(Dense(names.ScoreCorrectionBias, SafetensorsDType.F32, [e], random, 100));
            if (options.FusedExperts)
            {
                tensors.AddRange(Weight(names.FusedGateUp, options.WeightDType, [e, 2 * i, h], random, h));
                tensors.AddRange(Weight(names.FusedDown, options.WeightDType, [e, h, i], random, i));
            }
            else
            {
                for (int expert = 0; expert < e; expert++)
                {
                    tensors.AddRange(Weight(names.ExpertGate(expert), options.WeightDType, [i, h], random, h));
                    tensors.AddRange(Weight(names.ExpertUp(expert), options.WeightDType, [i, h], random, h));
                    tensors.AddRange(Weight(names.ExpertDown(expert), options.WeightDType, [h, i], random, i));
                }
            }
            if (config.SharedIntermediateSize > 0)
            {
                int s = config.SharedIntermediateSize;
                tensors.AddRange(Weight(names.SharedGate, options.WeightDType, [s, h], random, h));
                tensors.AddRange(Weight(names.SharedUp, options.WeightDType, [s, h], random, h));
                tensors.AddRange(Weight(names.SharedDown, options.WeightDType, [h, s], random, s));
                if (config.HasSharedExpertGate)
                    tensors.Add(Dense(names.SharedExpertGate, routerDType, [1, h], random, h));
            }
        }
        WriteFiles(directory, tensors, options.Shards);
        return config;
    }

    private static void WriteFiles(string directory, List<(string Name, SafetensorsDType DType, long[] Shape, byte[] Data)> tensors, int shards)
    {
        if (shards == 1)
        {
            var writer = new SafetensorsWriter();
            writer.Metadata["format"] = "pt";
            foreach (var t in tensors)
                writer.Add(t.Name, t.DType, t.Shape, t.Data);
            writer.Write(Path.Combine(directory, CheckpointDirectory.SingleFileName));
            return;
        }
        // Contiguous runs of tensors per shard, as save_pretrained does; a weight and its scale share a shard.
        var writers = Enumerable.Range(0, shards).Select(_ => new SafetensorsWriter()).ToArray();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long totalSize = 0;
        int perShard = (tensors.Count + shards - 1) / shards;
        int shard = 0;
        for (int index = 0; index < tensors.Count; index++)
        {
            var t = tensors[index];
            bool isScale = t.Name.EndsWith("_scale_inv", StringComparison.Ordinal);
            if (!isScale && writers[shard].Count >= perShard && shard < shards - 1)
                shard++;
            string file = $"model-{shard + 1:D5}-of-{shards:D5}.safetensors";
            writers[shard].Add(t.Name, t.DType, t.Shape, t.Data);
            weightMap[t.Name] = file;
            totalSize += t.Data.LongLength;
        }
        for (int s = 0; s < shards; s++)
        {
            writers[s].Metadata["format"] = "pt";
            writers[s].Write(Path.Combine(directory, $"model-{s + 1:D5}-of-{shards:D5}.safetensors"));
        }
        using var stream = File.Create(Path.Combine(directory, CheckpointDirectory.IndexFileName));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", totalSize);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (name, file) in weightMap)
            json.WriteString(name, file);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>A plain tensor of uniform values in +-1/sqrt(fanIn), stored as <paramref name="dtype"/>.</summary>
    private static (string, SafetensorsDType, long[], byte[]) Dense(string name, SafetensorsDType dtype, long[] shape, Random random, int fanIn)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        float bound = 1f / MathF.Sqrt(fanIn);
        var values = new float[count];
        for (long k = 0; k < count; k++)
            values[k] = bound * (2 * random.NextSingle() - 1);
        return (name, dtype, shape, Encode(values, dtype));
    }

    /// <summary>A weight; for F8_E4M3 random codes of moderate magnitude plus a weight_scale_inv grid.</summary>
    private static IEnumerable<(string, SafetensorsDType, long[], byte[])> Weight(string name, SafetensorsDType dtype, long[] shape, Random random, int fanIn)
    {
        if (dtype != SafetensorsDType.F8_E4M3)
        {
            yield return Dense(name, dtype, shape, random, fanIn);
            yield break;
        }
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var codes = new byte[count];
        for (long k = 0; k < count; k++)
        {
            // exponent field 1..8 (magnitudes 2^-6 .. 3.75): no NaN codes, a spread of binades.
            int exponent = 1 + random.Next(8), mantissa = random.Next(8), sign = random.Next(2);
            codes[k] = (byte)(sign << 7 | exponent << 3 | mantissa);
        }
        yield return (name, dtype, shape, codes);
        long rows = shape[^2], cols = shape[^1];
        long[] scaleShape = [.. shape[..^2], (rows + 127) / 128, (cols + 127) / 128];
        long scaleCount = scaleShape.Aggregate(1L, (a, b) => a * b);
        var scales = new float[scaleCount];
        for (long k = 0; k < scaleCount; k++)
            scales[k] = (0.5f + random.NextSingle()) / (2 * MathF.Sqrt(fanIn));
        yield return (MoeTensorNames.ScaleOf(name), SafetensorsDType.F32, scaleShape, Encode(scales, SafetensorsDType.F32));
    }

    private static byte[] Encode(float[] values, SafetensorsDType dtype)
    {
        var tensor = HostTensor.FromFloats(values, [values.LongLength], dtype switch
        {
            SafetensorsDType.F32 => DType.F32,
            SafetensorsDType.BF16 => DType.BF16,
            SafetensorsDType.F16 => DType.F16,
            _ => throw new ArgumentException($"cannot encode {dtype}", nameof(dtype)),
        });
        return tensor.Data switch
        {
            float[] f32 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(f32.AsSpan()).ToArray(),
            BFloat16[] bf16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(bf16.AsSpan()).ToArray(),
            Half[] f16 => System.Runtime.InteropServices.MemoryMarshal.AsBytes(f16.AsSpan()).ToArray(),
            _ => throw new InvalidOperationException("unexpected host tensor storage"),
        };
    }

    /// <summary>config.json with each family's own field names (all fields written, no reliance on defaults).</summary>
    public static string ConfigJson(ModelFamily family, RandomCheckpointOptions o)
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("model_type", ModelFamilies.ModelType(family));
            json.WriteNumber("hidden_size", o.HiddenSize);
            json.WriteNumber("num_hidden_layers", o.NumLayers);
            json.WriteNumber("num_experts_per_tok", o.TopK);
            json.WriteString("hidden_act", "silu");
            json.WriteString("torch_dtype", o.WeightDType switch
            {
                SafetensorsDType.BF16 or SafetensorsDType.F8_E4M3 => "bfloat16",
                SafetensorsDType.F16 => "float16",
                _ => "float32",
            });
            switch (family)
            {
                case ModelFamily.Mixtral:
                    json.WriteStartArray("architectures");
                    json.WriteStringValue("MixtralForCausalLM");
                    json.WriteEndArray();
                    json.WriteNumber("intermediate_size", o.IntermediateSize);
                    json.WriteNumber("num_local_experts", o.NumExperts);
                    break;
                case ModelFamily.Qwen2Moe:
                case ModelFamily.Qwen3Moe:
                    json.WriteNumber("moe_intermediate_size", o.IntermediateSize);
                    json.WriteNumber("intermediate_size", 4 * o.IntermediateSize);
                    json.WriteNumber("num_experts", o.NumExperts);
                    json.WriteBoolean("norm_topk_prob", o.NormTopKProb);
                    json.WriteNumber("decoder_sparse_step", 1);
                    json.WriteStartArray("mlp_only_layers");
                    json.WriteEndArray();
                    if (family == ModelFamily.Qwen2Moe)
                        json.WriteNumber("shared_expert_intermediate_size", o.SharedExpertIntermediateSize);
                    break;
                case ModelFamily.DeepseekV3:
                    json.WriteNumber("moe_intermediate_size", o.IntermediateSize);
                    json.WriteNumber("intermediate_size", 4 * o.IntermediateSize);
                    json.WriteNumber("n_routed_experts", o.NumExperts);
                    json.WriteNumber("n_shared_experts", o.NumSharedExperts);
                    json.WriteNumber("n_group", o.NumGroups);
                    json.WriteNumber("topk_group", o.TopKGroups);
                    json.WriteNumber("routed_scaling_factor", o.RoutedScalingFactor);
                    json.WriteString("scoring_func", "sigmoid");
                    json.WriteString("topk_method", "noaux_tc");
                    json.WriteBoolean("norm_topk_prob", o.NormTopKProb);
                    json.WriteNumber("first_k_dense_replace", o.FirstKDenseReplace);
                    json.WriteNumber("moe_layer_freq", 1);
                    if (o.WeightDType == SafetensorsDType.F8_E4M3)
                    {
                        json.WriteStartObject("quantization_config");
                        json.WriteString("quant_method", "fp8");
                        json.WriteString("fmt", "e4m3");
                        json.WriteStartArray("weight_block_size");
                        json.WriteNumberValue(128);
                        json.WriteNumberValue(128);
                        json.WriteEndArray();
                        json.WriteEndObject();
                    }
                    break;
            }
            json.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(stream.ToArray());
    }
}
