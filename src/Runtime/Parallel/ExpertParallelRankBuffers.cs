using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Runtime.Layers;

namespace MoeRuntime.Runtime.Parallel;

/// <summary>
/// What one rank of an <see cref="ExpertParallelMoe"/> forward needs, kept across forwards so that a forward of at most
/// as many tokens as an earlier one allocates nothing (cuMemAlloc/cuMemFree are slow and cuMemFree waits for the device):
/// the layer workspace, input and output rows at the largest token share seen, the received-rows buffers at twice the most rows
/// received (at most every (token, choice) pair of the batch), the EPLB slot path's routing buffers, and host stages for the
/// copies (page-locked on CUDA, so they run asynchronously).
/// </summary>
internal sealed class ExpertParallelRankBuffers : IDisposable
{
    private readonly DeviceMoeWeights _weights;
    private readonly int _slotCount;
    private MoeWorkspace? _whole;
    private GroupedGemmWorkspace? _splitK;
    private MemoryBuffer? _input;
    private MemoryBuffer<float>? _output;
    private MemoryBuffer<int>? _physical, _slotPermute;
    private int _routerOffsetsTokens = -1; // the T that RouterOffsets = [0, T] was last set to (stream-ordered before any later use)

    /// <param name="weights">the rank's weights</param>
    /// <param name="heldExperts">experts (or slots) the rank runs received rows through</param>
    /// <param name="slotCount">physical slots of the whole EPLB placement (0 without EPLB)</param>
    public ExpertParallelRankBuffers(DeviceMoeWeights weights, int heldExperts, int slotCount)
    {
        _weights = weights;
        _slotCount = slotCount;
        var a = weights.Accelerator;
        RouterOffsets = a.Allocate<int>(2);
        Input = new HostInputStage(a);
        Offsets = new HostStage<int>(a);
        Output = new HostStage<float>(a);
        Received = new ReceivedRowsWorkspace(weights, heldExperts);
        if (slotCount > 0)
        {
            SlotCounts = a.Allocate<int>(slotCount);
            SlotOffsets = a.Allocate<int>(slotCount + 1);
        }
    }

    public MemoryBuffer<int> RouterOffsets { get; }
    public HostInputStage Input { get; }
    /// <summary>Host copy of the rank's expert (or slot) offsets: the dispatch sizes.</summary>
    public HostStage<int> Offsets { get; }
    public HostStage<float> Output { get; }
    public ReceivedRowsWorkspace Received { get; }
    public MemoryBuffer<int>? SlotCounts { get; }
    public MemoryBuffer<int>? SlotOffsets { get; }

    /// <summary>
    /// This forward's views at <paramref name="tokens"/> tokens: layer workspace, input rows [T, H] (compute dtype),
    /// output rows [T, H] F32; grows the kept buffers first if they are too small.
    /// </summary>
    public (MoeWorkspace Workspace, MemoryBuffer Input, MemoryBuffer<float> Output) ForTokens(int tokens)
    {
        var a = _weights.Accelerator;
        int h = _weights.Config.HiddenSize, k = _weights.Config.TopK;
        if (_whole is null || !_whole.Fits(tokens) || !SlotPathFits(tokens))
            Grow(tokens);
        var required = GroupedGemmWorkspace.Required(a, MoeWorkspace.GemmShapes(_weights, tokens, fusedSilu: true));
        if (_splitK is null || !_splitK.Holds(required))
        {
            long partials = Math.Max(required.PartialFloats, _splitK?.PartialCapacity ?? 0), counters = Math.Max(required.Counters, _splitK?.CounterCapacity ?? 0);
            _splitK?.Dispose();
            _splitK = null;
            _splitK = GroupedGemmWorkspace.WithCapacities(a, partials, counters);
        }
        var workspace = _whole!.Prefix(tokens, RouterOffsets, _splitK, routerOffsetsHoldTokens: tokens == _routerOffsetsTokens);
        _routerOffsetsTokens = tokens;
        long cells = (long)tokens * h;
        return (workspace, BufferPrefix.Of(_input!, cells), _output!.Slice(0, cells));
    }

    /// <summary>The slot path's physical slot ids [T*k] and permute scratch at <paramref name="tokens"/> (after ForTokens).</summary>
    public (MemoryBuffer<int> Physical, MemoryBuffer<int> PermuteWorkspace) SlotViews(int tokens)
    {
        int k = _weights.Config.TopK;
        return (_physical!.Slice(0, (long)tokens * k), _slotPermute!.Slice(0, Math.Max(1, Permute.WorkspaceElements(tokens, k, _slotCount))));
    }

    private bool SlotPathFits(int tokens) =>
        _slotCount == 0 || (_physical is not null && _physical.Length >= (long)tokens * _weights.Config.TopK
                            && _slotPermute!.Length >= Math.Max(1, Permute.WorkspaceElements(tokens, _weights.Config.TopK, _slotCount)));

    private void Grow(int tokens)
    {
        var a = _weights.Accelerator;
        int h = _weights.Config.HiddenSize, k = _weights.Config.TopK;
        FreeTokenBuffers();
        _whole = new MoeWorkspace(_weights, tokens);
        _input = a.Allocate(_weights.DType, (long)tokens * h);
        _output = a.Allocate<float>((long)tokens * h);
        if (_slotCount > 0)
        {
            _physical = a.Allocate<int>((long)tokens * k);
            _slotPermute = a.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(tokens, k, _slotCount)));
        }
    }

    private void FreeTokenBuffers()
    {
        _whole?.Dispose();
        _input?.Dispose();
        _output?.Dispose();
        _physical?.Dispose();
        _slotPermute?.Dispose();
        (_whole, _input, _output, _physical, _slotPermute) = (null, null, null, null, null);
    }

    public void Dispose()
    {
        FreeTokenBuffers();
        _splitK?.Dispose();
        RouterOffsets.Dispose();
        Input.Dispose();
        Offsets.Dispose();
        Output.Dispose();
        Received.Dispose();
        SlotCounts?.Dispose();
        SlotOffsets?.Dispose();
    }
}
