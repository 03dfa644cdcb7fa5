using System.Runtime.InteropServices;
using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Checkpoints;

namespace MoeRuntime.Runtime.Models;

/// <summary>
/// Reads one MoE layer of a Hugging Face checkpoint folder (config.json + safetensors, single or sharded)
/// and hands its tensors to an <see cref="IMoeLayerWeightSink"/> in the target dtype. Only the tensors of
/// the requested layer are read, and only the shards that hold them are opened. Each tensor's shape is
/// checked against the config; F8_E4M3 weights are decoded and multiplied by their 128 x 128 block scales.
/// </summary>
public static class MoeLayerLoader
{
    public static ModelConfig Load(string directory, int layer, DType targetDtype, IMoeLayerWeightSink sink,
        IProgress<LoadProgress>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(sink);
        if (!HostTensor.IsSupported(targetDtype))
            throw new ArgumentException($"target dtype must be f32, bf16 or f16, not {DTypes.Name(targetDtype)}", nameof(targetDtype));
        var config = ModelConfig.Load(directory);
        config.EnsureMoeLayer(layer);
        if (config.WeightBlockSize is { } block && (block[0] != TensorDecoding.ScaleBlock || block[1] != TensorDecoding.ScaleBlock))
            throw new ModelConfigException($"{directory}: weight_block_size [{block[0]}, {block[1]}] is not supported (only [128, 128])");

        using var checkpoint = CheckpointDirectory.Open(directory);
        var reader = new Reader(checkpoint, targetDtype);
        var names = FindNames(checkpoint, config, layer);
        int e = config.NumExperts, h = config.HiddenSize, i = config.MoeIntermediateSize;

        sink.RouterGate(reader.Matrix(names.RouterGate, e, h));
        if (config.HasScoreCorrectionBias)
            sink.ScoreCorrectionBias(reader.Vector(names.ScoreCorrectionBias, e));

        bool fused = checkpoint.Contains(names.FusedGateUp);
        for (int expert = 0; expert < e; expert++)
        {
            HostTensor gateUp, down;
            if (fused)
            {
                gateUp = reader.ExpertSlice(names.FusedGateUp, expert, e, 2 * i, h);
                down = reader.ExpertSlice(names.FusedDown, expert, e, h, i);
            }
            else
            {
                var gate = reader.Floats(names.ExpertGate(expert), i, h);
                var up = reader.Floats(names.ExpertUp(expert), i, h);
                gateUp = HostTensor.FromFloats([.. gate, .. up], [2 * i, h], targetDtype);
                down = reader.Matrix(names.ExpertDown(expert), h, i);
            }
            sink.Expert(expert, gateUp, down);
            progress?.Report(new LoadProgress("experts", expert + 1, e, reader.BytesRead));
        }

        if (config.SharedIntermediateSize > 0)
        {
            int s = config.SharedIntermediateSize;
            var sharedGate = reader.Floats(names.SharedGate, s, h);
            var sharedUp = reader.Floats(names.SharedUp, s, h);
            var sharedGateUp = HostTensor.FromFloats([.. sharedGate, .. sharedUp], [2 * s, h], targetDtype);
            var sharedDown = reader.Matrix(names.SharedDown, h, s);
            var sharedExpertGate = config.HasSharedExpertGate ? reader.Matrix(names.SharedExpertGate, 1, h) : null;
            sink.SharedExpert(sharedGateUp, sharedDown, sharedExpertGate);
            progress?.Report(new LoadProgress("shared expert", 1, 1, reader.BytesRead));
        }
        return config;
    }

    private static MoeTensorNames FindNames(CheckpointDirectory checkpoint, ModelConfig config, int layer)
    {
        var candidates = MoeTensorNames.CandidatePrefixes(config.Family, layer);
        foreach (string prefix in candidates)
        {
            var names = new MoeTensorNames(config.Family, prefix);
            if (checkpoint.Contains(names.RouterGate))
                return names;
        }
        var first = new MoeTensorNames(config.Family, candidates[0]);
        string tried = string.Join(", ", candidates.Select(p => new MoeTensorNames(config.Family, p).RouterGate));
        throw new CheckpointFormatException(checkpoint.DescribeSearched(first.RouterGate), first.RouterGate,
            $"router gate of layer {layer} not found (tried {tried})");
    }

    /// <summary>Reads tensors as floats with their shapes checked, dequantising FP8 with block scales.</summary>
    private sealed class Reader(CheckpointDirectory checkpoint, DType targetDtype)
    {
        public long BytesRead { get; private set; }

        public HostTensor Matrix(string name, int rows, int cols) =>
            HostTensor.FromFloats(Floats(name, rows, cols), [rows, cols], targetDtype);

        public float[] Vector(string name, int length)
        {
            var file = checkpoint.FileOf(name);
            var info = file.GetInfo(name);
            CheckShape(file, info, [length]);
            return Decode(file, info, 0, length);
        }

        /// <summary>A [rows, cols] weight, dequantised when stored as FP8.</summary>
        public float[] Floats(string name, int rows, int cols)
        {
            var file = checkpoint.FileOf(name);
            var info = file.GetInfo(name);
            CheckShape(file, info, [rows, cols]);
            var values = Decode(file, info, 0, (long)rows * cols);
            if (info.DType == SafetensorsDType.F8_E4M3)
                ApplyScales(name, values, rows, cols, expert: null, experts: 0);
            return values;
        }

        /// <summary>Expert <paramref name="expert"/>'s [rows, cols] slice of a fused [experts, rows, cols] tensor.</summary>
        public HostTensor ExpertSlice(string name, int expert, int experts, int rows, int cols)
        {
            var file = checkpoint.FileOf(name);
            var info = file.GetInfo(name);
            CheckShape(file, info, [experts, rows, cols]);
            long count = (long)rows * cols;
            var values = Decode(file, info, expert * count, count);
            if (info.DType == SafetensorsDType.F8_E4M3)
                ApplyScales(name, values, rows, cols, expert, experts);
            return HostTensor.FromFloats(values, [rows, cols], targetDtype);
        }

        private void ApplyScales(string weightName, float[] values, int rows, int cols, int? expert, int experts)
        {
            string scaleName = MoeTensorNames.ScaleOf(weightName);
            if (!checkpoint.Contains(scaleName))
                throw new CheckpointFormatException(checkpoint.DescribeSearched(scaleName), scaleName,
                    $"'{weightName}' is F8_E4M3 but its block scales are missing");
            var file = checkpoint.FileOf(scaleName);
            var info = file.GetInfo(scaleName);
            int scaleRows = (rows + TensorDecoding.ScaleBlock - 1) / TensorDecoding.ScaleBlock;
            int scaleCols = (cols + TensorDecoding.ScaleBlock - 1) / TensorDecoding.ScaleBlock;
            long[] expected = expert is null ? [scaleRows, scaleCols] : [experts, scaleRows, scaleCols];
            CheckShape(file, info, expected);
            long count = (long)scaleRows * scaleCols;
            var scales = Decode(file, info, (expert ?? 0) * count, count);
            TensorDecoding.ApplyBlockScales(values, rows, cols, scales);
        }

        private float[] Decode(SafetensorsFile file, SafetensorsTensorInfo info, long firstElement, long count)
        {
            if (!TensorDecoding.IsFloatingPoint(info.DType))
                throw new CheckpointFormatException(file.FilePath, info.Name, $"dtype {info.DType} is not a floating-point weight type");
            if (count > Array.MaxLength)
                throw new CheckpointFormatException(file.FilePath, info.Name, $"{count} elements do not fit one host array");
            int width = SafetensorsDTypes.SizeOf(info.DType);
            var bytes = new byte[count * width];
            file.ReadBytes(info.Name, firstElement * width, bytes);
            BytesRead += bytes.LongLength;
            var values = new float[count];
            TensorDecoding.ToFloat(info.DType, bytes, values);
            return values;
        }

        private static void CheckShape(SafetensorsFile file, SafetensorsTensorInfo info, long[] expected)
        {
            if (!info.Shape.AsSpan().SequenceEqual(expected))
                throw new CheckpointFormatException(file.FilePath, info.Name,
                    $"shape {info.ShapeText} does not match the config, which implies [{string.Join(", ", expected)}]");
        }
    }
}
