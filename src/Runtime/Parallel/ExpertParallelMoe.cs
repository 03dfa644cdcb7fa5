using MoeRuntime.Accelerators;
using MoeRuntime.Collectives;
using MoeRuntime.Collectives.AllReduce;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// Expert parallelism: rank r holds experts [r*E/N, (r+1)*E/N) and a 1/N share of the tokens.
/// <code>
/// rank r: route + permute its tokens by global expert -> rows sorted by expert are sorted by owning rank
///   --all-to-allv dispatch--> rank d receives [source rank][its local expert] rows
///   --permute by local expert--> grouped GEMMs --un-permute--> rows back in received order
///   --all-to-allv combine--> rank r gets its rows back in its own expert order
///   --Combine with the routing weights (+ shared experts, computed for its own tokens)--> output rows of rank r
/// </code>
/// The dispatch sizes go through the host (each rank's expert offsets are read back), as they must for
/// all-to-allv; everything else stays on the devices.
/// With EPLB (<see cref="WithEplb"/>, ExpertParallelMoe.Slots.cs) ranks hold slots of a placement instead of a block.
/// </summary>
public sealed partial class ExpertParallelMoe : IDisposable
{
    private readonly DeviceMoeWeights[] _weights;
    private readonly MoeLayer[] _layers;
    private readonly Communicator _communicator;
    private readonly bool _ownsCommunicator;

    /// <summary>
    /// Staging a communicator needs for this layer's all-to-all at up to <paramref name="maxTokens"/> tokens: the most a
    /// rank can send or receive is every (token, slot) row of the batch, as F32 [T*k, H] (the combine's payload).
    /// Pass a communicator of this capacity when T*k*H*4 exceeds the default (64 MB).
    /// </summary>
    public static long CommunicatorCapacity(ModelConfig config, int maxTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        long bytes = (long)Math.Max(1, maxTokens) * config.TopK * config.HiddenSize * sizeof(float);
        return Math.Max(new CommunicatorOptions().CapacityBytes, (bytes + 15) / 16 * 16);
    }

    public ExpertParallelMoe(IReadOnlyList<Accelerator> ranks, MoeLayerWeights weights, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(ranks);
        ArgumentNullException.ThrowIfNull(weights);
        int n = ranks.Count, e = weights.Config.NumExperts;
        if (n < 1)
            throw new ArgumentException("expert parallelism needs at least one accelerator", nameof(ranks));
        if (e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} accelerators", nameof(ranks));
        ExpertsPerRank = e / n;
        _weights = new DeviceMoeWeights[n];
        try
        {
            for (int r = 0; r < n; r++)
                _weights[r] = DeviceMoeWeights.Upload(ranks[r], weights, firstExpert: r * ExpertsPerRank, expertCount: ExpertsPerRank);
            _layers = _weights.Select(w => new MoeLayer(w)).ToArray();
            _ownsCommunicator = communicator is null;
            _communicator = communicator ?? Communicator.Create(ranks);
        }
        catch
        {
            foreach (var w in _weights)
                w?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes per-rank weights already on the devices (rank r holds experts [r*E/N, (r+1)*E/N), e.g. from
    /// <see cref="DeviceMoeWeights.CreateRandom(Accelerator, ModelConfig, DType, int, int, int)"/>, so a layer too large
    /// for one host is never built whole); the layer owns and disposes them.
    /// </summary>
    public ExpertParallelMoe(IReadOnlyList<DeviceMoeWeights> perRankWeights, Communicator? communicator = null)
    {
        ArgumentNullException.ThrowIfNull(perRankWeights);
        int n = perRankWeights.Count;
        if (n < 1)
            throw new ArgumentException("expert parallelism needs at least one rank", nameof(perRankWeights));
        var config = perRankWeights[0].Config;
        int e = config.NumExperts;
        if (e % n != 0)
            throw new ArgumentException($"{e} experts do not split evenly over {n} ranks", nameof(perRankWeights));
        ExpertsPerRank = e / n;
        for (int r = 0; r < n; r++)
        {
            var w = perRankWeights[r];
            if (w.FirstExpert != r * ExpertsPerRank || w.ExpertCount != ExpertsPerRank || w.Intermediate != config.MoeIntermediateSize
                || w.Config.HiddenSize != config.HiddenSize || w.Config.NumExperts != e || w.DType != perRankWeights[0].DType)
                throw new ArgumentException($"rank {r} holds experts [{w.FirstExpert}, {w.FirstExpert + w.ExpertCount}) (I {w.Intermediate}, {DTypes.Name(w.DType)});"
                    + $" expert parallelism over {n} ranks needs [{r * ExpertsPerRank}, {(r + 1) * ExpertsPerRank}), no TP slice, one dtype", nameof(perRankWeights));
        }
        _weights = perRankWeights.ToArray();
        _layers = _weights.Select(w => new MoeLayer(w)).ToArray();
        _ownsCommunicator = communicator is null;
        _communicator = communicator ?? Communicator.Create(_weights.Select(w => w.Accelerator).ToList());
    }

    /// <summary>
    /// Optional: told where each phase of <see cref="Forward"/> starts and ends on each rank (benchmarks record
    /// device events there). Null (the default) costs nothing.
    /// </summary>
    public IExpertParallelPhaseTimer? PhaseTimer { get; set; }

    public int Ranks => _layers.Length;
    /// <summary>Experts (slots, with EPLB) each rank holds.</summary>
    public int ExpertsPerRank { get; }
    public ModelConfig Config => _weights[0].Config;

    /// <summary>Tokens each rank processed in the last forward (its share of the input).</summary>
    public int[] LastTokensPerRank { get; private set; } = [];

    /// <summary>Expert rows each rank computed in the last forward (what the routing sent it).</summary>
    public long[] LastRowsPerRank { get; private set; } = [];

    /// <summary>Held experts each rank ran rows through in the last forward (the experts the routing hit there).</summary>
    public int[] LastActiveExpertsPerRank { get; private set; } = [];

    /// <summary>
    /// Rank <paramref name="d"/>'s experts on the <paramref name="rows"/> rows it received, laid out as [source rank][local
    /// expert] blocks of <paramref name="rowsPerLocal"/>[r, d * perRank + local] rows: sorted by local expert, run
    /// through <paramref name="gateUp"/> and <paramref name="down"/> ([perRank, ...]), and written back in received order
    /// as F32 into <paramref name="returned"/>. Scratch joins <paramref name="owned"/>, freed after the forward.
    /// </summary>
    private void RunReceivedRows(int d, int rows, MemoryBuffer received, long[,] rowsPerLocal, int perRank,
                                 MemoryBuffer gateUp, MemoryBuffer down, MemoryBuffer<float> returned, List<IDisposable> owned)
    {
        T Own<T>(T item) where T : IDisposable
        {
            owned.Add(item);
            return item;
        }
        var a = _weights[d].Accelerator;
        var dtype = _weights[d].DType;
        int h = Config.HiddenSize, ih = _weights[d].Intermediate, sources = rowsPerLocal.GetLength(0);
        var localIds = new int[rows];
        int at = 0;
        for (int r = 0; r < sources; r++)
            for (int local = 0; local < perRank; local++)
                for (long c = rowsPerLocal[r, d * perRank + local]; c > 0; c--)
                    localIds[at++] = local;
        var ids = Own(a.Upload<int>(localIds));
        var counts = Own(a.Allocate<int>(perRank));
        var offsets = Own(a.Allocate<int>(perRank + 1));
        var rowOfSlot = Own(a.Allocate<int>(rows));
        var tokenOfRow = Own(a.Allocate<int>(rows));
        var sorted = Own(a.Allocate(dtype, (long)rows * h));
        var activation = Own(a.Allocate(dtype, (long)rows * ih));
        var expertOut = Own(a.Allocate<float>((long)rows * h));
        var ones = Own(a.Allocate<float>(rows));
        ones.Fill(1f);
        var workspace = Own(a.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(rows, 1, perRank))));
        Permute.Run(ids, rows, 1, perRank, 1, counts, offsets, rowOfSlot, tokenOfRow, received, h, sorted, workspace);
        var splitK = Own(GroupedGemmWorkspace.For(a, new GroupedGemmShape(rows, 2 * ih, h, perRank, Fused: true), new GroupedGemmShape(rows, h, ih, perRank)));
        _layers[d].RunExperts(gateUp, down, sorted, offsets, activation, expertOut, null, splitK);
        Combine.Run(expertOut, rowOfSlot, ones, rows, 1, h, returned);
    }

    /// <summary>First token of rank r's share: tokens are split as evenly as possible, in order.</summary>
    public static int TokenStart(int tokens, int ranks, int rank) => (int)((long)tokens * rank / ranks);

    /// <summary>Runs the block on host hidden states [T, H]; returns [T, H] F32.</summary>
    public float[] Forward(ReadOnlySpan<float> hidden, int tokens)
    {
        if (_slots is not null)
            return ForwardOverSlots(hidden, tokens, null);
        int n = Ranks, h = Config.HiddenSize, k = Config.TopK, e = Config.NumExperts, eh = ExpertsPerRank;
        if (hidden.Length != (long)tokens * h)
            throw new ArgumentException($"hidden has {hidden.Length} values; [T={tokens}, H={h}] needs {(long)tokens * h}", nameof(hidden));
        var result = new float[(long)tokens * h];
        var owned = new List<IDisposable>();
        T Own<T>(T d) where T : IDisposable
        {
            owned.Add(d);
            return d;
        }
        try
        {
            var share = Enumerable.Range(0, n).Select(r => TokenStart(tokens, n, r + 1) - TokenStart(tokens, n, r)).ToArray();
            var workspaces = new MoeWorkspace[n];
            var inputs = new MemoryBuffer[n];
            var host = hidden.ToArray();
            // 1. Route and permute each rank's own tokens by global expert.
            for (int r = 0; r < n; r++)
            {
                var a = _weights[r].Accelerator;
                int start = TokenStart(tokens, n, r);
                inputs[r] = Own(DeviceMoeWeights.UploadFloats(a, host[(start * h)..((start + share[r]) * h)], _weights[r].DType));
                workspaces[r] = Own(new MoeWorkspace(_weights[r], share[r]));
            }
            for (int r = 0; r < n; r++)
            {
                PhaseTimer?.Begin(ExpertParallelPhase.RouteAndPermute, r);
                if (share[r] > 0)
                    _layers[r].RouteAndPermute(inputs[r], workspaces[r], null);
                PhaseTimer?.End(ExpertParallelPhase.RouteAndPermute, r);
            }
            // 2. Dispatch sizes: rows of rank r for expert g, from r's expert offsets.
            var rowsPerExpert = new long[n, e];
            for (int r = 0; r < n; r++)
            {
                if (share[r] == 0)
                    continue;
                var offsets = workspaces[r].ExpertOffsets.ToArray();
                for (int g = 0; g < e; g++)
                    rowsPerExpert[r, g] = offsets[g + 1] - offsets[g];
            }
            var sendRows = new long[n, n];
            for (int r = 0; r < n; r++)
                for (int g = 0; g < e; g++)
                    sendRows[r, g / eh] += rowsPerExpert[r, g];
            var received = Enumerable.Range(0, n).Select(d => Enumerable.Range(0, n).Sum(r => sendRows[r, d])).ToArray();
            LastTokensPerRank = share;
            LastRowsPerRank = received;
            LastActiveExpertsPerRank = Enumerable.Range(0, n).Select(d => Enumerable.Range(d * eh, eh)
                .Count(g => Enumerable.Range(0, n).Any(r => rowsPerExpert[r, g] > 0))).ToArray();
            var dtype = _weights[0].DType;
            var sendElements = Scale(sendRows, h);
            var receiveRows = new MemoryBuffer[n];
            var gatheredViews = new MemoryBuffer[n];
            for (int d = 0; d < n; d++)
            {
                var a = _weights[d].Accelerator;
                receiveRows[d] = Own(a.Allocate(dtype, Math.Max(1, received[d]) * h));
                gatheredViews[d] = workspaces[d].Gathered;
            }
            // 3. Dispatch: rank d receives [source rank][local expert] rows.
            Mark(ExpertParallelPhase.Dispatch, begin: true);
            _communicator.AllToAllV(gatheredViews, sendElements, receiveRows);
            Mark(ExpertParallelPhase.Dispatch, begin: false);
            // 4. Each rank: sort the received rows by local expert, run its experts, put the rows back in received order.
            var returned = new MemoryBuffer<float>[n];
            for (int d = 0; d < n; d++)
            {
                var a = _weights[d].Accelerator;
                int rows = checked((int)received[d]);
                returned[d] = Own(a.Allocate<float>(Math.Max(1, rows) * (long)h));
                if (rows == 0)
                    continue;
                PhaseTimer?.Begin(ExpertParallelPhase.Experts, d);
                RunReceivedRows(d, rows, receiveRows[d], rowsPerExpert, eh, _weights[d].GateUp, _weights[d].Down, returned[d], owned);
                PhaseTimer?.End(ExpertParallelPhase.Experts, d);
            }
            // 5. Combine back: rank r gets its rows in its own expert order (the order of its gathered rows).
            var expertOutputs = new MemoryBuffer[n];
            for (int r = 0; r < n; r++)
                expertOutputs[r] = workspaces[r].ExpertOutput;
            Mark(ExpertParallelPhase.Combine, begin: true);
            _communicator.AllToAllV(returned, Scale(Transpose(sendRows), h), expertOutputs);
            Mark(ExpertParallelPhase.Combine, begin: false);
            // 6. Each rank: weighted sum over its tokens' k choices, plus its shared experts.
            for (int r = 0; r < n; r++)
            {
                if (share[r] == 0)
                    continue;
                var ws = workspaces[r];
                var output = Own(_weights[r].Accelerator.Allocate<float>((long)share[r] * h));
                PhaseTimer?.Begin(ExpertParallelPhase.SharedAndUnpermute, r);
                var residual = _layers[r].RunSharedExperts(inputs[r], ws, null);
                Combine.Run(ws.ExpertOutput, ws.RowOfSlot, ws.RoutingWeights, share[r], k, h, output, residual);
                PhaseTimer?.End(ExpertParallelPhase.SharedAndUnpermute, r);
                output.CopyTo(result.AsSpan(TokenStart(tokens, n, r) * h, share[r] * h));
            }
            return result;
        }
        finally
        {
            for (int i = owned.Count - 1; i >= 0; i--)
                owned[i].Dispose();
        }
    }

    private void Mark(ExpertParallelPhase phase, bool begin)
    {
        if (PhaseTimer is not { } timer)
            return;
        for (int r = 0; r < Ranks; r++)
        {
            if (begin)
                timer.Begin(phase, r);
            else
                timer.End(phase, r);
        }
    }

    private static long[,] Scale(long[,] rows, int hidden)
    {
        int n = rows.GetLength(0);
        var result = new long[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                result[i, j] = rows[i, j] * hidden;
        return result;
    }

    private static long[,] Transpose(long[,] m)
    {
        int n = m.GetLength(0);
        var t = new long[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                t[j, i] = m[i, j];
        return t;
    }

    public void Dispose()
    {
        _slots?.Dispose();
        if (_ownsCommunicator)
            _communicator.Dispose();
        foreach (var w in _weights)
            w.Dispose();
    }
}
