using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Models;
using MoeRuntime.Tests.Infrastructure;

namespace MoeRuntime.Tests.Runtime;

/// <summary>Loading MoE layers from random checkpoints in every layout: single file, shards, fused experts, FP8.</summary>
public sealed class MoeLayerLoadTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private string Folder(string name) => Path.Combine(_folder.Path, name);

    public static TheoryData<ModelFamily> Families => [.. Enum.GetValues<ModelFamily>()];

    [Theory]
    [MemberData(nameof(Families))]
    public void LoadedTensorsHaveTheConfigShapesAndTheStoredValues(ModelFamily family)
    {
        string dir = Folder("ckpt");
        var config = RandomCheckpoint.Write(dir, family, new RandomCheckpointOptions(), seed: 11);
        int layer = config.NumHiddenLayers - 1;
        var weights = MoeLayerWeights.Load(dir, layer, DType.F32);
        int e = config.NumExperts, h = config.HiddenSize, i = config.MoeIntermediateSize;
        Assert.Equal([e, h], weights.RouterGate.Shape);
        Assert.Equal([e, 2 * i, h], weights.ExpertGateUp.Shape);
        Assert.Equal([e, h, i], weights.ExpertDown.Shape);
        Assert.Equal(config.SharedIntermediateSize > 0, weights.SharedGateUp is not null);
        Assert.Equal(family == ModelFamily.Qwen2Moe, weights.SharedExpertGate is not null);
        Assert.Equal(family == ModelFamily.DeepseekV3, weights.ScoreCorrectionBias is not null);

        // Expert 3's up rows are stored as their own tensor (per-expert layout): compare directly with the file.
        var names = new MoeTensorNames(family, MoeTensorNames.CandidatePrefixes(family, layer)[0]);
        using var file = SafetensorsFile.Open(Path.Combine(dir, CheckpointDirectory.SingleFileName));
        var up = new float[i * h];
        TensorDecoding.ToFloat(SafetensorsDType.F32, file.ReadBytes(names.ExpertUp(3)), up);
        var loaded = weights.ExpertGateUp.As<float>().AsSpan((3 * 2 * i + i) * h, i * h);
        Compare.Exact<float>(up, loaded.ToArray(), "expert 3 up rows");
        var down = new float[h * i];
        TensorDecoding.ToFloat(SafetensorsDType.F32, file.ReadBytes(names.ExpertDown(5)), down);
        Compare.Exact<float>(down, weights.ExpertDown.As<float>().AsSpan(5 * h * i, h * i).ToArray(), "expert 5 down");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ShardedAndFusedCheckpointsLoadTheSameAsOneFile(ModelFamily family)
    {
        var single = RandomCheckpoint.Write(Folder("single"), family, new RandomCheckpointOptions(), seed: 5);
        RandomCheckpoint.Write(Folder("sharded"), family, new RandomCheckpointOptions { Shards = 3 }, seed: 5);
        int layer = single.NumHiddenLayers - 1;
        var reference = MoeLayerWeights.Load(Folder("single"), layer, DType.F32);
        var sharded = MoeLayerWeights.Load(Folder("sharded"), layer, DType.F32);
        AssertSameWeights(reference, sharded);
        Assert.True(File.Exists(Path.Combine(Folder("sharded"), CheckpointDirectory.IndexFileName)));

        // Fused layout from the same generator draws different numbers; check instead that each expert's slice is the stored one.
        RandomCheckpoint.Write(Folder("fused"), family, new RandomCheckpointOptions { FusedExperts = true }, seed: 5);
        var fused = MoeLayerWeights.Load(Folder("fused"), layer, DType.F32);
        var names = new MoeTensorNames(family, MoeTensorNames.CandidatePrefixes(family, layer)[0]);
        using var file = SafetensorsFile.Open(Path.Combine(Folder("fused"), CheckpointDirectory.SingleFileName));
        var stored = new float[file.GetInfo(names.FusedGateUp).ElementCount];
        TensorDecoding.ToFloat(SafetensorsDType.F32, file.ReadBytes(names.FusedGateUp), stored);
        Compare.Exact<float>(stored, fused.ExpertGateUp.As<float>(), "fused gate_up");
    }

    [Fact]
    public void ShardedLoadOpensOnlyTheShardsHoldingTheLayer()
    {
        string dir = Folder("sharded");
        RandomCheckpoint.Write(dir, ModelFamily.Mixtral, new RandomCheckpointOptions { NumLayers = 4, Shards = 4 }, seed: 1);
        // Corrupt the shard holding layer 0 only: loading layer 3 must not touch it.
        string firstShard = Path.Combine(dir, "model-00001-of-00004.safetensors");
        File.WriteAllBytes(firstShard, [1, 2, 3]);
        var weights = MoeLayerWeights.Load(dir, 3, DType.F32);
        Assert.Equal(3, weights.Layer);
        var error = Assert.Throws<CheckpointFormatException>(() => MoeLayerWeights.Load(dir, 0, DType.F32));
        Assert.Contains("model-00001-of-00004.safetensors", error.Message);
    }

    [Fact]
    public void IndexPointingOutsideTheFolderIsRejected()
    {
        string dir = Folder("evil");
        RandomCheckpoint.Write(dir, ModelFamily.Mixtral, new RandomCheckpointOptions { Shards = 2 }, seed: 1);
        File.WriteAllText(Path.Combine(dir, CheckpointDirectory.IndexFileName),
            """{"weight_map":{"model.layers.0.block_sparse_moe.gate.weight":"../outside.safetensors"}}""");
        var error = Assert.Throws<CheckpointFormatException>(() => MoeLayerWeights.Load(dir, 0, DType.F32));
        Assert.Contains("not a file in this folder", error.Message);
    }

    [Fact]
    public void MissingTensorNamesTheTensorAndTheFilesSearched()
    {
        string source = Folder("full");
        RandomCheckpoint.Write(source, ModelFamily.Qwen3Moe, new RandomCheckpointOptions(), seed: 2);
        string dir = Folder("missing");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));
        const string dropped = "model.layers.1.mlp.experts.6.down_proj.weight";
        var writer = new SafetensorsWriter();
        using (var file = SafetensorsFile.Open(Path.Combine(source, CheckpointDirectory.SingleFileName)))
            foreach (var info in file.Tensors.Where(t => t.Name != dropped))
                writer.Add(info.Name, info.DType, info.Shape, file.ReadBytes(info.Name));
        writer.Write(Path.Combine(dir, CheckpointDirectory.SingleFileName));

        var error = Assert.Throws<CheckpointFormatException>(() => MoeLayerWeights.Load(dir, 1, DType.F32));
        Assert.Equal(dropped, error.TensorName);
        Assert.Contains(Path.Combine(dir, CheckpointDirectory.SingleFileName), error.Message);
        MoeLayerWeights.Load(dir, 0, DType.F32); // the other layer is whole
    }

    [Fact]
    public void ShapeThatContradictsTheConfigIsRejected()
    {
        string dir = Folder("lying");
        RandomCheckpoint.Write(dir, ModelFamily.Mixtral, new RandomCheckpointOptions(), seed: 3);
        string configPath = Path.Combine(dir, "config.json");
        File.WriteAllText(configPath, File.ReadAllText(configPath).Replace("\"intermediate_size\": 32", "\"intermediate_size\": 40"));
        var error = Assert.Throws<CheckpointFormatException>(() => MoeLayerWeights.Load(dir, 0, DType.F32));
        Assert.Contains("does not match the config", error.Message);
    }

    [Fact]
    public void NonMoeLayerAndUnknownFamilyAreClearErrors()
    {
        string dir = Folder("deepseek");
        RandomCheckpoint.Write(dir, ModelFamily.DeepseekV3, new RandomCheckpointOptions(), seed: 4);
        Assert.Contains("first_k_dense_replace", Assert.Throws<ModelConfigException>(() => MoeLayerWeights.Load(dir, 0, DType.F32)).Message);
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_type":"gpt2"}""");
        Assert.Contains("unknown model_type 'gpt2'", Assert.Throws<ModelConfigException>(() => MoeLayerWeights.Load(dir, 1, DType.F32)).Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Fp8WeightsAreDequantisedWithTheirBlockScales(bool fused)
    {
        string dir = Folder("fp8");
        // I = 136 and H = 200: neither a multiple of 128, so edge blocks are partial.
        var options = new RandomCheckpointOptions { WeightDType = SafetensorsDType.F8_E4M3, HiddenSize = 200, IntermediateSize = 136, NumExperts = 4, TopK = 2, NumGroups = 2, TopKGroups = 1, FusedExperts = fused };
        var config = RandomCheckpoint.Write(dir, ModelFamily.DeepseekV3, options, seed: 9);
        var weights = MoeLayerWeights.Load(dir, 1, DType.F32);
        int h = config.HiddenSize, i = config.MoeIntermediateSize;
        var names = new MoeTensorNames(ModelFamily.DeepseekV3, "model.layers.1.mlp");
        using var file = SafetensorsFile.Open(Path.Combine(dir, CheckpointDirectory.SingleFileName));

        // Expert 2, down [H, I], element (r, c) = code x scale[r / 128, c / 128], computed here by hand.
        const int expert = 2;
        string downName = fused ? names.FusedDown : names.ExpertDown(expert);
        byte[] codes = file.ReadBytes(downName);
        var scaleBytes = file.ReadBytes(MoeTensorNames.ScaleOf(downName));
        var scales = new float[scaleBytes.Length / 4];
        TensorDecoding.ToFloat(SafetensorsDType.F32, scaleBytes, scales);
        int scaleCols = (i + 127) / 128, scaleRows = (h + 127) / 128;
        long codeBase = fused ? (long)expert * h * i : 0, scaleBase = fused ? (long)expert * scaleRows * scaleCols : 0;
        var loaded = weights.ExpertDown.As<float>();
        foreach (var (r, c) in new[] { (0, 0), (5, 130), (127, 135), (128, 0), (199, 135), (150, 64) })
        {
            float expected = Float8E4M3.ToFloat(codes[codeBase + r * i + c]) * scales[scaleBase + r / 128 * scaleCols + c / 128];
            Assert.Equal(expected, loaded[(long)expert * h * i + r * i + c]);
        }

        // BF16 target: the same values rounded once.
        var bf16 = MoeLayerWeights.Load(dir, 1, DType.BF16);
        Assert.Equal(DType.BF16, bf16.ExpertDown.DType);
        var rounded = bf16.ExpertDown.ToFloats();
        for (int k = 0; k < loaded.Length; k += 97)
            Assert.Equal((float)(BFloat16)loaded[k], rounded[k]);
    }

    [Fact]
    public void ProgressReportsEveryExpert()
    {
        string dir = Folder("progress");
        RandomCheckpoint.Write(dir, ModelFamily.Qwen2Moe, new RandomCheckpointOptions(), seed: 6);
        var reports = new List<LoadProgress>();
        MoeLayerWeights.Load(dir, 0, DType.F16, new SynchronousProgress(reports.Add));
        Assert.Equal(Enumerable.Range(1, 8), reports.Where(r => r.Stage == "experts").Select(r => r.Done));
        Assert.Contains(reports, r => r.Stage == "shared expert");
        Assert.True(reports[^1].BytesRead > 0);
        Assert.Equal(reports.Select(r => r.BytesRead).Order(), reports.Select(r => r.BytesRead));
    }

    [Fact]
    public void StreamingSinkCanUploadEachExpertToAnAccelerator()
    {
        string dir = Folder("upload");
        var config = RandomCheckpoint.Write(dir, ModelFamily.Mixtral, new RandomCheckpointOptions(), seed: 8);
        var accelerator = TestDevices.Get("cpu");
        int gateUpSize = 2 * config.MoeIntermediateSize * config.HiddenSize;
        using var gateUp = accelerator.Allocate<float>((long)config.NumExperts * gateUpSize);
        TestData.Poison(gateUp);
        MoeLayerLoader.Load(dir, 1, DType.F32, new UploadSink(gateUp, gateUpSize));
        var host = MoeLayerWeights.Load(dir, 1, DType.F32);
        Compare.Exact<float>(host.ExpertGateUp.As<float>(), gateUp.ToArray(), "uploaded gate_up");
    }

    private static void AssertSameWeights(MoeLayerWeights expected, MoeLayerWeights actual)
    {
        Compare.Exact<float>(expected.RouterGate.ToFloats(), actual.RouterGate.ToFloats(), "router");
        Compare.Exact<float>(expected.ExpertGateUp.ToFloats(), actual.ExpertGateUp.ToFloats(), "gate_up");
        Compare.Exact<float>(expected.ExpertDown.ToFloats(), actual.ExpertDown.ToFloats(), "down");
        if (expected.SharedGateUp is not null)
            Compare.Exact<float>(expected.SharedGateUp.ToFloats(), actual.SharedGateUp!.ToFloats(), "shared gate_up");
        if (expected.ScoreCorrectionBias is not null)
            Compare.Exact<float>(expected.ScoreCorrectionBias, actual.ScoreCorrectionBias!, "bias");
    }

    private sealed class SynchronousProgress(Action<LoadProgress> report) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) => report(value);
    }

    private sealed class UploadSink(MemoryBuffer<float> gateUp, int gateUpSize) : IMoeLayerWeightSink
    {
        public void RouterGate(HostTensor gate) { }
        public void ScoreCorrectionBias(float[] bias) { }
        public void Expert(int expert, HostTensor expertGateUp, HostTensor down) =>
            gateUp.Slice((long)expert * gateUpSize, gateUpSize).CopyFrom(expertGateUp.As<float>());
        public void SharedExpert(HostTensor sharedGateUp, HostTensor down, HostTensor? gate) { }
    }
}
