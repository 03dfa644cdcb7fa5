using System.Diagnostics;
using System.Globalization;
using MoeRuntime.Accelerators;
using MoeRuntime.Cli.Commands;
using MoeRuntime.Cli.Layers;
using MoeRuntime.Cli.Progress;
using MoeRuntime.Collectives.Distributed;
using MoeRuntime.Runtime.Checkpoints;
using MoeRuntime.Runtime.Distributed;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Cli.Distributed;

/// <summary>
/// <c>moe run --parallel tp|ep</c> as one rank of a multi-process run (WORLD_SIZE > 1, from torchrun, mpirun or
/// <c>moe launch</c>): this rank takes cuda:LOCAL_RANK, joins the NCCL group, loads the layer, runs its share
/// (<see cref="RankTensorParallelMoe"/> or <see cref="RankExpertParallelMoe"/>) on the same hidden states as every
/// other rank; rank 0 prints the summary and writes --output, which matches a one-process run over the same GPUs.
/// </summary>
internal static class RankRun
{
    public static int Execute(RunArguments a, LaunchEnvironment launch, LayerMode mode, DType dtype, ModelConfig config, float[] hidden, int tokens, TextWriter output, TextWriter errors)
    {
        try
        {
            return ExecuteCore(a, launch, mode, dtype, config, hidden, tokens, output);
        }
        catch (Exception e) when (RankDevice.IsGroupFailure(e))
        {
            errors.WriteLine($"moe run: rank {launch.Rank} of {launch.WorldSize}: {e.Message}");
            return 1;
        }
    }

    private static int ExecuteCore(RunArguments a, LaunchEnvironment launch, LayerMode mode, DType dtype, ModelConfig config, float[] hidden, int tokens, TextWriter output)
    {
        int h = config.HiddenSize;
        using var accelerator = RankDevice.Open(launch);
        using var group = NcclProcessGroup.Create(launch, accelerator, launch.RendezvousTimeout);
        bool lead = launch.Rank == 0;
        var weights = a.ShowProgress && lead
            ? LoadProgressDisplay.Run($"layer {a.Layer}", progress => MoeLayerWeights.Load(a.Model, a.Layer, dtype, progress))
            : MoeLayerWeights.Load(a.Model, a.Layer, dtype);
        using RankTensorParallelMoe? tp = mode == LayerMode.TensorParallel ? new RankTensorParallelMoe(group, weights) : null;
        using RankExpertParallelMoe? ep = mode == LayerMode.ExpertParallel ? new RankExpertParallelMoe(group, weights) : null;
        float[] Forward() => tp is not null ? tp.Forward(hidden, tokens) : ep!.Forward(hidden, tokens);

        var result = Forward();
        var times = new double[a.Repeats];
        for (int i = 0; i < a.Repeats; i++)
        {
            long start = Stopwatch.GetTimestamp();
            Forward();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }
        Array.Sort(times);
        double ms = times[a.Repeats / 2];
        if (!lead)
            return 0;

        HiddenStatesFile.Write(a.Output, result, tokens, h);
        string modeText = mode == LayerMode.TensorParallel ? "tp" : "ep";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{ModelFamilies.ModelType(config.Family)} layer {a.Layer}: T={tokens} H={h} E={config.NumExperts} k={config.TopK}, {DTypes.Name(dtype)}, {modeText} over {launch.WorldSize} processes (NCCL {Collectives.Nccl.NcclLibrary.Version}), rank 0 on {accelerator.Name} ({accelerator.Info.Name})"));
        double tokensPerSecond = ms > 0 ? tokens / (ms / 1e3) : 0;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"time: {ms:F3} ms (host-to-host forward on rank 0, median of {a.Repeats} after a warm-up), {tokensPerSecond:F0} tokens/s"));
        if (tp is not null && tokens > 0)
            output.WriteLine("allreduce: Nccl");
        if (ep is not null)
            for (int r = 0; r < launch.WorldSize; r++)
                output.WriteLine($"  rank {r}: {ep.LastTokensPerRank[r]} tokens, {ep.LastRowsPerRank[r]} expert rows");
        output.WriteLine($"wrote {a.Output}");
        return 0;
    }
}
