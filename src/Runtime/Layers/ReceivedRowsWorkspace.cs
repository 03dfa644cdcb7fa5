using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;

namespace MoeRuntime.Runtime.Layers;

/// <summary>The steps of <see cref="ReceivedRowsWorkspace.Run"/>, in the order each rank's stream runs them.</summary>
public enum ReceivedRowsStep
{
    /// <summary>Local expert ids up to the device, then the received rows sorted by local expert (1, 3 or 4 launches).</summary>
    PermuteByLocalExpert,
    /// <summary>Grouped GEMM gate_up with SiLU-and-mul in its epilogue.</summary>
    GateUp,
    /// <summary>Grouped GEMM down into F32 rows.</summary>
    Down,
    /// <summary>The rows back in received order (Combine with weight 1).</summary>
    Unpermute,
}

/// <summary>
/// One expert-parallel rank's buffers for the rows other ranks send it, kept across forwards and grown on demand:
/// <code>
/// received rows [R, H] (the dispatch's receive buffer) + local expert id per row (host, uploaded)
///   --Permute by local expert--> sorted [R, H] --grouped GEMMs--> expert output [R, H] F32
///   --Combine with weight 1 (un-permute)--> returned [R, H] F32 in received order (the combine's send buffer)
/// </code>
/// Used by the in-process <see cref="Parallel.ExpertParallelMoe"/> (contiguous and EPLB-slot paths) and the
/// one-process-per-GPU <see cref="Distributed.RankExpertParallelMoe"/>. Views handed out are valid until the next Reserve.
/// </summary>
public sealed class ReceivedRowsWorkspace : IDisposable
{
    private readonly Accelerator _accelerator;
    private readonly DType _dtype;
    private readonly int _hidden, _intermediate, _experts;
    private readonly HostStage<int> _idsStage;
    private readonly List<MemoryBuffer> _owned = [];
    private MemoryBuffer _received = null!, _sorted = null!, _activation = null!;
    private MemoryBuffer<float> _returned = null!, _expertOut = null!, _ones = null!;
    private MemoryBuffer<int> _ids = null!, _counts = null!, _offsets = null!, _rowOfSlot = null!, _tokenOfRow = null!, _permute = null!;
    private GroupedGemmWorkspace? _splitK;
    private GroupedGemmWorkspace? _stepSplitK; // the gate_up step's scratch, for the down step (sized once per Run, as before the split)
    private int _stepMaxRows; // the most rows a local expert received (the permute step counts them for the GEMMs)
    private int[] _expertRows = [];

    /// <param name="weights">the rank's layer weights (shapes and dtype)</param>
    /// <param name="experts">experts (or EPLB slots) the rank holds: the local ids run over [0, experts)</param>
    public ReceivedRowsWorkspace(DeviceMoeWeights weights, int experts)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentOutOfRangeException.ThrowIfLessThan(experts, 1);
        _accelerator = weights.Accelerator;
        _dtype = weights.DType;
        _hidden = weights.Config.HiddenSize;
        _intermediate = weights.Intermediate;
        _experts = experts;
        _idsStage = new HostStage<int>(_accelerator);
        _counts = Own(_accelerator.Allocate<int>(experts));
        _offsets = Own(_accelerator.Allocate<int>(experts + 1));
        Allocate(0);
    }

    /// <summary>Rows the buffers hold now.</summary>
    public int CapacityRows { get; private set; } = -1;

    /// <summary>
    /// Makes room for <paramref name="rows"/> rows. When it must grow it takes twice what is asked, up to
    /// <paramref name="maxRows"/> (every (token, choice) pair of the batch: the most a rank can receive), so routing that
    /// shifts rows between ranks from one forward to the next does not allocate again.
    /// </summary>
    public void Reserve(int rows, int maxRows)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        if (rows > CapacityRows || Math.Max(1, Permute.WorkspaceElements(rows, 1, _experts)) > _permute.Length)
            Allocate((int)Math.Max(rows, Math.Min(maxRows, 2L * rows)));
    }

    /// <summary>The dispatch's receive buffer for <paramref name="rows"/> rows ([max(1, R), H]; Reserve first).</summary>
    public MemoryBuffer Received(int rows) => BufferPrefix.Of(_received, Math.Max(1, rows) * (long)_hidden);

    /// <summary>The combine's send buffer: [max(1, R), H] F32 rows in received order.</summary>
    public MemoryBuffer<float> Returned(int rows) => _returned.Slice(0, Math.Max(1, rows) * (long)_hidden);

    /// <summary>Host memory for the local expert id of each received row, in received order (fill it, then <see cref="Run"/>).</summary>
    public Span<int> LocalIds(int rows) => _idsStage.Reserve(rows);

    /// <summary>
    /// Runs the rank's experts <paramref name="gateUp"/> [n, 2Ih, H] and <paramref name="down"/> [n, H, Ih] on the
    /// <paramref name="rows"/> received rows (local ids from <see cref="LocalIds"/>) into <see cref="Returned"/>, all
    /// enqueued on the accelerator's default stream: every <see cref="ReceivedRowsStep"/> in order.
    /// </summary>
    public void Run(MoeLayer layer, MemoryBuffer gateUp, MemoryBuffer down, int rows)
    {
        foreach (var step in Steps)
            RunStep(step, layer, gateUp, down, rows);
    }

    /// <summary>
    /// The most rows any local expert of <paramref name="experts"/> has among <paramref name="localIds"/> (at least 1): the
    /// bound the GEMMs take (GroupedGemmOptions.MaxRowsPerExpert; 1 runs the decode GEMV's 1-row entry, as at T = 1, where a
    /// rank receives at most one row an expert). Ids outside the range are not counted (Permute refuses them).
    /// <paramref name="counts"/> is scratch, grown to <paramref name="experts"/>.
    /// </summary>
    internal static int MaxRowsPerExpert(ReadOnlySpan<int> localIds, int experts, ref int[] counts)
    {
        if (counts.Length < experts)
            counts = new int[experts];
        var perExpert = counts.AsSpan(0, experts);
        perExpert.Clear();
        int most = 1;
        foreach (int id in localIds)
            if ((uint)id < (uint)experts)
                most = Math.Max(most, ++perExpert[id]);
        return most;
    }

    /// <summary>Every <see cref="ReceivedRowsStep"/>, in the order a rank's stream must run them.</summary>
    public static IReadOnlyList<ReceivedRowsStep> Steps { get; } = Enum.GetValues<ReceivedRowsStep>();

    /// <summary>
    /// One step of <see cref="Run"/>. The steps must be enqueued in order, all with the same arguments; between two steps
    /// of this rank the host may enqueue other ranks' work (each rank's stream keeps its own order, so the results are the
    /// same bits as <see cref="Run"/>).
    /// </summary>
    public void RunStep(ReceivedRowsStep step, MoeLayer layer, MemoryBuffer gateUp, MemoryBuffer down, int rows)
    {
        ArgumentNullException.ThrowIfNull(layer);
        if (rows < 1 || rows > CapacityRows)
            throw new ArgumentOutOfRangeException(nameof(rows), $"{rows} rows; the workspace holds {CapacityRows} (Reserve first)");
        var rowOfSlot = _rowOfSlot.Slice(0, rows);
        var sorted = BufferPrefix.Of(_sorted, (long)rows * _hidden);
        var activation = BufferPrefix.Of(_activation, (long)rows * _intermediate);
        var expertOut = _expertOut.Slice(0, (long)rows * _hidden);
        switch (step)
        {
            case ReceivedRowsStep.PermuteByLocalExpert:
                var ids = _ids.Slice(0, rows);
                _stepMaxRows = MaxRowsPerExpert(_idsStage.Reserve(rows), _experts, ref _expertRows);
                _idsStage.Upload(ids);
                Permute.Run(ids, rows, 1, _experts, 1, _counts, _offsets, rowOfSlot, _tokenOfRow.Slice(0, rows), Received(rows), _hidden, sorted,
                    _permute.Slice(0, Math.Max(1, Permute.WorkspaceElements(rows, 1, _experts))));
                break;
            case ReceivedRowsStep.GateUp:
                _stepSplitK = SplitKFor(rows);
                layer.RunExpertsGateUp(gateUp, sorted, _offsets, activation, null, _stepSplitK, maxRowsPerExpert: _stepMaxRows);
                break;
            case ReceivedRowsStep.Down:
                layer.RunExpertsDown(down, activation, _offsets, expertOut, null, _stepSplitK ?? SplitKFor(rows), maxRowsPerExpert: _stepMaxRows);
                _stepSplitK = null;
                break;
            case ReceivedRowsStep.Unpermute:
                Combine.Run(expertOut, rowOfSlot, _ones.Slice(0, rows), rows, 1, _hidden, Returned(rows));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(step), step, "not a step of the received rows' experts");
        }
    }

    /// <summary>The split-K scratch for this row count's GEMMs, grown (to the larger of old and new) when it falls short.</summary>
    private GroupedGemmWorkspace SplitKFor(int rows)
    {
        var required = GroupedGemmWorkspace.Required(_accelerator,
            new GroupedGemmShape(rows, 2 * _intermediate, _hidden, _experts, Fused: true), new GroupedGemmShape(rows, _hidden, _intermediate, _experts));
        if (_splitK is null || !_splitK.Holds(required))
        {
            long partials = Math.Max(required.PartialFloats, _splitK?.PartialCapacity ?? 0), counters = Math.Max(required.Counters, _splitK?.CounterCapacity ?? 0);
            _splitK?.Dispose();
            _splitK = null;
            _splitK = GroupedGemmWorkspace.WithCapacities(_accelerator, partials, counters);
        }
        return _splitK;
    }

    private void Allocate(int rows)
    {
        FreeRows();
        long cells = Math.Max(1, rows) * (long)_hidden;
        _received = Own(_accelerator.Allocate(_dtype, cells));
        _returned = Own(_accelerator.Allocate<float>(cells));
        _ids = Own(_accelerator.Allocate<int>(rows));
        _rowOfSlot = Own(_accelerator.Allocate<int>(rows));
        _tokenOfRow = Own(_accelerator.Allocate<int>(rows));
        _sorted = Own(_accelerator.Allocate(_dtype, (long)rows * _hidden));
        _activation = Own(_accelerator.Allocate(_dtype, (long)rows * _intermediate));
        _expertOut = Own(_accelerator.Allocate<float>((long)rows * _hidden));
        _ones = Own(_accelerator.Allocate<float>(rows));
        _ones.Fill(1f);
        _permute = Own(_accelerator.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(rows, 1, _experts))));
        CapacityRows = rows;
    }

    private void FreeRows()
    {
        foreach (var buffer in _owned.Where(b => !ReferenceEquals(b, _counts) && !ReferenceEquals(b, _offsets)).ToList())
        {
            buffer.Dispose();
            _owned.Remove(buffer);
        }
    }

    private T Own<T>(T buffer) where T : MemoryBuffer
    {
        _owned.Add(buffer);
        return buffer;
    }

    public void Dispose()
    {
        foreach (var buffer in _owned)
            buffer.Dispose();
        _owned.Clear();
        _splitK?.Dispose();
        _idsStage.Dispose();
    }
}
