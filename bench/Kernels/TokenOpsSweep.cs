using MoeRuntime.Accelerators;
using MoeRuntime.Benchmarks.Infrastructure;
using MoeRuntime.Kernels.Activation;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Benchmarks.Kernels;

/// <summary>
/// The token-movement ops of an MoE layer against the copy floor (bytes read + written over the device's
/// copy bandwidth): top-k routing, permute (indices + gather) and combine as CUDA-graph replays (their kernels
/// are microseconds long, so eager launches would time the host), and SiLU-and-mul. The same rows as bench/reference/token_ops.py measures for PyTorch; with
/// <c>--reference token_ops-torch.json</c> (that script's output) the sweep also prints the speed-up per row.
/// On the CPU the shapes are smaller and there is no floor.
/// </summary>
internal static class TokenOpsSweep
{
    public static IReadOnlyList<SweepRow> Run(Accelerator accelerator) => Run(accelerator, routingOnly: false);

    /// <summary>The routing rows alone (sweep name "routing"): the same rows, inputs and A/B rows as in token_ops.</summary>
    public static IReadOnlyList<SweepRow> RunRouting(Accelerator accelerator) => Run(accelerator, routingOnly: true);

    private static IReadOnlyList<SweepRow> Run(Accelerator accelerator, bool routingOnly)
    {
        bool gpu = accelerator.Kind != AcceleratorKind.Cpu;
        double bandwidth = !gpu ? 0 : accelerator.Info.Name.Contains("H200", StringComparison.Ordinal) ? 4.2e12 : 3.0e12;
        double Floor(double bytes) => bandwidth > 0 ? bytes / bandwidth * 1e3 : 0;
        var random = new Random(1234);
        var rows = new List<SweepRow>();

        var routings = new (string Name, int Experts, int TopK, TopKRoutingOptions? Grouped)[]
        {
            ("routing softmax", 8, 2, null),
            ("routing softmax", 128, 8, null),
            ("routing deepseek grouped", 256, 8, new TopKRoutingOptions(RoutingKind.DeepSeekGrouped, 8, true, 8, 4, 2.5f)),
        };
        foreach (var (name, experts, topK, grouped) in routings)
            foreach (int tokens in gpu ? new[] { 1, 128, 1024, 2048, 4096, 8192 } : new[] { 1, 128, 1024 })
            {
                // 2048 and 4096 only for DeepSeek's rows (where the token teams cross over), with the teams/old A/B only.
                bool between = tokens is 2048 or 4096;
                if (between && grouped is null)
                    continue;
                using var logits = accelerator.Upload<float>(Uniform(random, tokens * experts, -4, 4));
                using var bias = accelerator.Upload<float>(Uniform(random, experts, -0.5f, 0.5f));
                using var ids = accelerator.Allocate<int>(tokens * topK);
                using var weights = accelerator.Allocate<float>(tokens * topK);
                using var counts = accelerator.Allocate<int>(experts);
                // Zero once; every routing leaves it zero (one launch per routing, no memset of the counts).
                using var workspace = accelerator.Upload<int>(new int[TopKRouting.WorkspaceElements(experts)]);
                var options = grouped is null ? TopKRoutingOptions.Softmax(topK) : grouped with { CorrectionBias = bias };
                double ms = DeviceTimer.MedianMs(accelerator, s => TopKRouting.Run(logits, tokens, experts, options, ids, weights, counts, s, workspace), useGraph: true);
                double bytes = 4.0 * tokens * experts + 8.0 * tokens * topK + 4.0 * experts;
                rows.Add(new SweepRow(name, $"T={tokens} E={experts} k={topK} f32", ms, bytes, 0, Floor(bytes), "graph"));
                if (gpu && grouped is null && experts <= TopKRouting.ThreadPerTokenMaxExperts && TopKRouting.ThreadPerTokenFrom <= tokens)
                {
                    // A/B in one session: the strided warp-per-token kernel that the token-per-thread kernel replaced
                    // (bit-identical results).
                    int savedThread = TopKRouting.ThreadPerTokenFrom;
                    TopKRouting.ThreadPerTokenFrom = int.MaxValue;
                    try
                    {
                        double warpMs = DeviceTimer.MedianMs(accelerator, s => TopKRouting.Run(logits, tokens, experts, options, ids, weights, counts, s, workspace), useGraph: true);
                        rows.Add(new SweepRow(name + " warp", $"T={tokens} E={experts} k={topK} f32", warpMs, bytes, 0, Floor(bytes), "graph"));
                    }
                    finally
                    {
                        TopKRouting.ThreadPerTokenFrom = savedThread;
                    }
                }
                if (gpu && grouped is not null && !between && !TopKRouting.SigmoidByDivision)
                {
                    // A/B in one session: the grouped scores by the plain division (a branch per expert), the previous build.
                    TopKRouting.SigmoidByDivision = true;
                    try
                    {
                        double divisionMs = DeviceTimer.MedianMs(accelerator, s => TopKRouting.Run(logits, tokens, experts, options, ids, weights, counts, s, workspace), useGraph: true);
                        rows.Add(new SweepRow(name + " division", $"T={tokens} E={experts} k={topK} f32", divisionMs, bytes, 0, Floor(bytes), "graph"));
                    }
                    finally
                    {
                        TopKRouting.SigmoidByDivision = false;
                    }
                }
                if (gpu && grouped is not null)
                {
                    // A/B in one session: the token-team kernel at every token count ("teams"; it takes T >=
                    // TopKRouting.TeamsFrom by default) and the kernels before it ("old": one token a warp, two from 1024).
                    int savedTeams = TopKRouting.TeamsFrom;
                    try
                    {
                        foreach (bool teams in new[] { true, false })
                        {
                            TopKRouting.TeamsFrom = teams ? 1 : int.MaxValue;
                            double abMs = DeviceTimer.MedianMs(accelerator, s => TopKRouting.Run(logits, tokens, experts, options, ids, weights, counts, s, workspace), useGraph: true);
                            rows.Add(new SweepRow(name + (teams ? " teams" : " old"), $"T={tokens} E={experts} k={topK} f32", abMs, bytes, 0, Floor(bytes), "graph"));
                        }
                    }
                    finally
                    {
                        TopKRouting.TeamsFrom = savedTeams;
                    }
                }
                if (gpu && experts >= 128 && tokens >= 1024 && !between)
                {
                    // A/B in one session: the persistent two-token path off (the one-pass kernel), and on with 1, 2
                    // and 4 pairs a warp at least (1: the one-pass grid staged through shared memory).
                    int savedFrom = TopKRouting.PersistentFrom, savedPairs = TopKRouting.PairsPerWarp, savedTeamsFrom = TopKRouting.TeamsFrom;
                    try
                    {
                        TopKRouting.TeamsFrom = int.MaxValue; // the token teams would take the DeepSeek rows
                        foreach (int pairs in new[] { 0, 1, 2, 4 })
                        {
                            TopKRouting.PersistentFrom = pairs == 0 ? int.MaxValue : 0;
                            TopKRouting.PairsPerWarp = Math.Max(pairs, 1);
                            double abMs = DeviceTimer.MedianMs(accelerator, s => TopKRouting.Run(logits, tokens, experts, options, ids, weights, counts, s, workspace), useGraph: true);
                            rows.Add(new SweepRow(name + (pairs == 0 ? " one-pass" : $" persistent p{pairs}"), $"T={tokens} E={experts} k={topK} f32", abMs, bytes, 0, Floor(bytes), "graph"));
                        }
                    }
                    finally
                    {
                        TopKRouting.PersistentFrom = savedFrom;
                        TopKRouting.PairsPerWarp = savedPairs;
                        TopKRouting.TeamsFrom = savedTeamsFrom;
                    }
                }
            }
        // What any one-kernel call costs as a graph node here: the routing rows at small T sit just above it.
        if (GraphNodeFloor.Measure(accelerator, threads: 256) is { } nodeFloor)
            rows.Add(nodeFloor);
        if (routingOnly)
            return rows;

        int bigTokens = gpu ? 8192 : 256;
        foreach (int hidden in new[] { 4096, 7168 })
            foreach (int topK in new[] { 2, 8 })
            {
                const int experts = 256;
                int slots = bigTokens * topK;
                using var ids = accelerator.Upload<int>(RandomIds(random, bigTokens, topK, experts));
                using var hiddenStates = accelerator.Allocate<BFloat16>((long)bigTokens * hidden);
                hiddenStates.FillBytes(0x3F);
                using var counts = accelerator.Allocate<int>(experts);
                using var offsets = accelerator.Allocate<int>(experts + 1);
                using var rowOfSlot = accelerator.Allocate<int>(slots);
                using var tokenOfRow = accelerator.Allocate<int>(slots);
                using var gathered = accelerator.Allocate<BFloat16>((long)slots * hidden);
                using var workspace = accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(bigTokens, topK, experts)));
                string shape = $"T={bigTokens} H={hidden} k={topK} bf16";

                if (hidden == 4096)
                {
                    // The index phase alone (counts, offsets, row of each slot: two small kernels, or three for many
                    // chunks), to show the fixed part of the permute rows.
                    double indexMs = DeviceTimer.MedianMs(accelerator, s => Permute.Run(ids, bigTokens, topK, experts, 1, counts, offsets, rowOfSlot,
                        tokenOfRow, workspace: workspace, stream: s), inner: 5, useGraph: true);
                    double indexBytes = 4.0 * (slots * 3);
                    rows.Add(new SweepRow("permute indices only", $"T={bigTokens} k={topK} E={experts}", indexMs, indexBytes, 0, Floor(indexBytes)));
                }
                double permuteMs = DeviceTimer.MedianMs(accelerator, s => Permute.Run(ids, bigTokens, topK, experts, 1, counts, offsets, rowOfSlot,
                    tokenOfRow, hiddenStates, hidden, gathered, workspace, s), inner: 5, useGraph: true);
                double permuteBytes = 2.0 * 2 * slots * hidden + 4.0 * (slots * 3);
                rows.Add(new SweepRow("permute (indices + gather)", shape, permuteMs, permuteBytes, 0, Floor(permuteBytes)));
                // A/B in one session: the index-only and the whole permute again with one switch flipped.
                void AddPermuteRows(string indexName, string wholeName, Action<bool> flip)
                {
                    flip(true);
                    try
                    {
                        double indexMs = DeviceTimer.MedianMs(accelerator, s => Permute.Run(ids, bigTokens, topK, experts, 1, counts, offsets, rowOfSlot,
                            tokenOfRow, workspace: workspace, stream: s), inner: 5, useGraph: true);
                        double indexBytes = 4.0 * (slots * 3);
                        rows.Add(new SweepRow(indexName, $"T={bigTokens} k={topK} E={experts}", indexMs, indexBytes, 0, Floor(indexBytes)));
                        double wholeMs = DeviceTimer.MedianMs(accelerator, s => Permute.Run(ids, bigTokens, topK, experts, 1, counts, offsets, rowOfSlot,
                            tokenOfRow, hiddenStates, hidden, gathered, workspace, s), inner: 5, useGraph: true);
                        rows.Add(new SweepRow(wholeName, shape, wholeMs, permuteBytes, 0, Floor(permuteBytes)));
                    }
                    finally
                    {
                        flip(false);
                    }
                }
                // The three-kernel index path (separate offsets kernel), where the fused one runs.
                if (hidden == 4096 && Permute.UsesFusedPlacement(Permute.WorkspaceElements(bigTokens, topK, experts) / experts, experts))
                    AddPermuteRows("permute indices only 3-kernel", "permute 3-kernel (idx + gather)", on => Permute.ForceThreeKernels = on);
                // The scatter's same-expert masks by the match.any instruction (the previous build).
                if (hidden == 4096 && !Permute.MatchInstruction)
                    AddPermuteRows("permute indices only match.any", "permute match.any (idx + gather)", on => Permute.MatchInstruction = on);

                using var weights = accelerator.Upload<float>(Uniform(random, slots, 0, 1));
                using var output = accelerator.Allocate<BFloat16>((long)bigTokens * hidden);
                double combineMs = DeviceTimer.MedianMs(accelerator, s => Combine.Run(gathered, rowOfSlot, weights, bigTokens, topK, hidden, output, null, s), inner: 5, useGraph: true);
                double combineBytes = 2.0 * slots * hidden + 2.0 * bigTokens * hidden + 8.0 * slots;
                rows.Add(new SweepRow("combine (un-permute)", shape, combineMs, combineBytes, 0, Floor(combineBytes)));
            }

        // The layer's combine at decode sizes (F32 expert rows, as MoeLayer runs it), rows spread over blocks and, for
        // A/B, one block per token (the launch before Combine.ChunksPerToken).
        foreach (int tokens in gpu ? new[] { 16, 128 } : new[] { 16 })
        {
            const int hidden = 7168, topK = 8;
            int slots = tokens * topK;
            using var expertRows = accelerator.Allocate<float>((long)slots * hidden);
            expertRows.FillBytes(0x3F);
            using var rowOfSlot = accelerator.Upload<int>(Enumerable.Range(0, slots).OrderBy(_ => random.Next()).ToArray());
            using var weights = accelerator.Upload<float>(Uniform(random, slots, 0, 1));
            using var residual = accelerator.Allocate<float>((long)tokens * hidden);
            using var output = accelerator.Allocate<float>((long)tokens * hidden);
            double bytes = 4.0 * slots * hidden + 8.0 * tokens * hidden + 8.0 * slots;
            string shape = $"T={tokens} H={hidden} k={topK} f32 +residual";
            {
                // The layer's permute at the same size (bf16 hidden states, 256 experts): index kernels + gather.
                const int experts = 256;
                using var ids = accelerator.Upload<int>(RandomIds(random, tokens, topK, experts));
                using var hiddenStates = accelerator.Allocate<BFloat16>((long)tokens * hidden);
                hiddenStates.FillBytes(0x3F);
                using var counts = accelerator.Allocate<int>(experts);
                using var offsets = accelerator.Allocate<int>(experts + 1);
                using var permRowOfSlot = accelerator.Allocate<int>(slots);
                using var tokenOfRow = accelerator.Allocate<int>(slots);
                using var gathered = accelerator.Allocate<BFloat16>((long)slots * hidden);
                using var workspace = accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(tokens, topK, experts)));
                double permuteMs = DeviceTimer.MedianMs(accelerator, s => Permute.Run(ids, tokens, topK, experts, 1, counts, offsets, permRowOfSlot,
                    tokenOfRow, hiddenStates, hidden, gathered, workspace, s), inner: 20, useGraph: gpu);
                double permuteBytes = 2.0 * 2 * slots * hidden + 4.0 * (slots * 3);
                rows.Add(new SweepRow("permute layer (decode)", $"T={tokens} H={hidden} k={topK} bf16", permuteMs, permuteBytes, 0, Floor(permuteBytes), gpu ? "graph" : ""));
            }
            bool saved = Combine.OneBlockPerToken;
            foreach (bool oneBlock in new[] { false, true })
            {
                Combine.OneBlockPerToken = oneBlock;
                try
                {
                    double ms = DeviceTimer.MedianMs(accelerator, s => Combine.Run(expertRows, rowOfSlot, weights, tokens, topK, hidden, output, residual, s), inner: 20, useGraph: gpu);
                    rows.Add(new SweepRow(oneBlock ? "combine layer, block per token" : "combine layer (decode)", shape, ms, bytes, 0, Floor(bytes), gpu ? "graph" : ""));
                }
                finally
                {
                    Combine.OneBlockPerToken = saved;
                }
            }
        }

        foreach (var (activationRows, intermediate, label) in gpu
                     ? new[] { (16384, 14336, "Mixtral T=8192 k=2"), (65536, 2048, "DeepSeek-V3 T=8192 k=8") }
                     : new[] { (512, 14336, "Mixtral T=256 k=2"), (2048, 2048, "DeepSeek-V3 T=256 k=8") })
        {
            using var gateUp = accelerator.Allocate<BFloat16>((long)activationRows * 2 * intermediate);
            gateUp.FillBytes(0x3F);
            using var output = accelerator.Allocate<BFloat16>((long)activationRows * intermediate);
            double ms = DeviceTimer.MedianMs(accelerator, s => GatedActivation.Run(GatedActivationKind.Silu, gateUp, activationRows, intermediate, output, s), inner: 5);
            double bytes = 2.0 * 3 * activationRows * intermediate;
            rows.Add(new SweepRow("silu_and_mul", $"M={activationRows} I={intermediate} bf16", ms, bytes, 0, Floor(bytes), label));
        }
        return rows;
    }

    private static float[] Uniform(Random random, int length, float low, float high) =>
        Enumerable.Range(0, length).Select(_ => low + (high - low) * random.NextSingle()).ToArray();

    /// <summary>Distinct uniform experts per token, as a router gives.</summary>
    private static int[] RandomIds(Random random, int tokens, int topK, int experts)
    {
        var ids = new int[tokens * topK];
        for (int t = 0; t < tokens; t++)
        {
            var chosen = new HashSet<int>();
            while (chosen.Count < topK)
                chosen.Add(random.Next(experts));
            chosen.ToArray().CopyTo(ids, t * topK);
        }
        return ids;
    }
}
