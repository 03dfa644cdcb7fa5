using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.Decode;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// The intermediate buffers of one forward of <see cref="MoeLayer"/> for a fixed token count, allocated
/// once and reused, so a forward allocates nothing and can be captured in a CUDA graph.
/// <see cref="Prefix"/> gives a workspace for fewer tokens made of views of this one (callers that see varying
/// token counts keep one workspace at the largest count).
/// </summary>
public sealed class MoeWorkspace : IDisposable
{
    private readonly List<MemoryBuffer> _owned = [];
    private readonly bool _ownsSplitK = true;
    private readonly int _topK, _experts, _hidden, _intermediate, _sharedIntermediate;

    /// <param name="sharedExpertStream">Run the shared experts on a second stream (<see cref="SharedExpertStream"/>): null = the
    /// default (MOE_LAYER_SHARED_STREAM), false = on the forward's stream. Only on CUDA and for layers with shared experts.</param>
    /// <param name="fusedSilu">SiLU-and-mul in the gate_up GEMM's epilogue (true) or as its own kernel (false); null = <see cref="FusedSiluRule"/>.</param>
    /// <param name="gemvTileMap">Allocate the m-tile map (<see cref="TileMap"/>) the routed experts' decode GEMVs read their tiles
    /// from: null = the default (MOE_GEMV_TILE_MAP, <see cref="GemvTileMapSwitch"/>). Only on CUDA.</param>
    /// <param name="gemvPrefetch">The down call's decode GEMV prefetches W before waiting for gate_up (<see cref="GemvPrefetch"/>):
    /// null = the default (MOE_GEMV_PREFETCH, <see cref="GemvPrefetchSwitch"/>). Only with the tile map.</param>
    /// <param name="fusedDecodeMaxTokens">Forwards of at most this many tokens run the routed experts as the one-launch decode kernel
    /// (<see cref="MoeDecode"/>; 0 = never, at most <see cref="MoeDecode.MaxTokens"/>): null = the default (MOE_DECODE_FUSED, or
    /// by the layer's size: <see cref="MoeDecodeSwitch.MaxTokensFor"/>), on CUDA only; 0 whatever is asked where the kernel
    /// does not take the layer's shapes.</param>
    /// <param name="tensorParallelRank">The layer is one tensor-parallel rank's slice: the default limit is then
    /// MOE_DECODE_FUSED_TP's (or the size rule on the slice) instead of MOE_DECODE_FUSED's.</param>
    public MoeWorkspace(DeviceMoeWeights weights, int tokens, bool? sharedExpertStream = null, bool? fusedSilu = null, bool? gemvTileMap = null,
                        bool? gemvPrefetch = null, int? fusedDecodeMaxTokens = null, bool tensorParallelRank = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var a = weights.Accelerator;
        var c = weights.Config;
        Tokens = tokens;
        int e = c.NumExperts, k = c.TopK, h = c.HiddenSize;
        long slots = (long)tokens * k;
        (_topK, _experts, _hidden, _intermediate, _sharedIntermediate) = (k, e, h, weights.Intermediate, weights.SharedIntermediate);
        try
        {
            RouterOffsets = Own(a.Upload<int>([0, tokens]));
            Logits = Own(a.Allocate<float>((long)tokens * e));
            Ids = Own(a.Allocate<int>(slots));
            RoutingWeights = Own(a.Allocate<float>(slots));
            RoutedCounts = Own(a.Allocate<int>(e));
            RoutingWorkspace = Own(a.Upload<int>(new int[TopKRouting.WorkspaceElements(e)])); // zero; routing leaves it zero
            PermutedCounts = Own(a.Allocate<int>(e));
            ExpertOffsets = Own(a.Allocate<int>(e + 1));
            RowOfSlot = Own(a.Allocate<int>(slots));
            TokenOfRow = Own(a.Allocate<int>(slots));
            PermuteWorkspace = Own(a.Allocate<int>(Math.Max(1, Permute.WorkspaceElements(tokens, k, e))));
            if (a.Kind == AcceleratorKind.Cuda && (gemvTileMap ?? GemvTileMapSwitch.EnabledByDefault))
                TileMap = Own(a.Allocate<int>(Math.Max(3, Permute.TileMapElements(checked((int)slots), e))));
            GemvPrefetch = TileMap is not null && (gemvPrefetch ?? GemvPrefetchSwitch.EnabledByDefault);
            Gathered = Own(a.Allocate(weights.DType, slots * h));
            Activation = Own(a.Allocate(weights.DType, slots * weights.Intermediate));
            bool fused = fusedSilu ?? FusedSiluRule.Fuses(weights, tokens);
            if (!fused)
                GateUpOutput = Own(a.Allocate(weights.DType, slots * 2 * weights.Intermediate));
            ExpertOutput = Own(a.Allocate<float>(slots * h));
            if (weights.SharedGateUp is not null)
            {
                SharedActivation = Own(a.Allocate(weights.DType, (long)tokens * weights.SharedIntermediate));
                SharedOutput = Own(a.Allocate<float>((long)tokens * h));
                if (weights.SharedGate is not null)
                    SharedGateScale = Own(a.Allocate<float>(tokens));
            }
            SplitK = GroupedGemmWorkspace.For(a, GemmShapes(weights, tokens, fused));
            CheckFusedDecodeMaxTokens(fusedDecodeMaxTokens);
            // 0 where the kernel does not take the layer's shapes (dtype, experts, top-k, sizes): decided here, once, not per forward.
            bool takesShapes = MoeDecode.Unsupported(weights.DType, 1, e, k, h, weights.Intermediate) is null;
            int byDefault = a.Kind != AcceleratorKind.Cuda ? 0
                : MoeDecodeSwitch.MaxTokensFor(MoeDecodeSwitch.ActiveBytes(k, h, weights.Intermediate, weights.DType), tensorParallelRank);
            FusedDecodeMaxTokens = takesShapes ? fusedDecodeMaxTokens ?? byDefault : 0;
            if (FusedDecodeMaxTokens > 0)
                DecodeBarrier = Own(a.Upload<int>([0])); // the kernel leaves it zero
            if (sharedExpertStream ?? SharedExpertStream.EnabledByDefault)
                SharedStream = SharedExpertStream.For(weights, tokens);
            // The routed GEMMs run beside the shared experts' stream: the wgmma kernel's blocks may start late.
            SplitK.SharesDevice = SharedStream is not null;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The grouped GEMMs of a forward at <paramref name="tokens"/> tokens (what the split-K workspace is sized for).</summary>
    public static GroupedGemmShape[] GemmShapes(DeviceMoeWeights weights, int tokens, bool? fusedSilu = null)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var c = weights.Config;
        int e = c.NumExperts, h = c.HiddenSize, ih = weights.Intermediate, ish = weights.SharedIntermediate;
        int slots = checked(tokens * c.TopK);
        var gemms = new List<GroupedGemmShape>
        {
            new(tokens, e, h, 1),                // router
            new(slots, 2 * ih, h, e, Fused: fusedSilu ?? FusedSiluRule.Fuses(weights, tokens)), // experts gate_up (+ SiLU-and-mul when fused)
            new(slots, h, ih, e),                // experts down
        };
        if (weights.SharedGateUp is not null)
            gemms.AddRange([new(tokens, 2 * ish, h, 1, Fused: true), new(tokens, h, ish, 1), new(tokens, 1, h, 1)]);
        return [.. gemms];
    }

    /// <summary>Whether <see cref="Prefix"/> can serve <paramref name="tokens"/> tokens from this workspace's buffers.</summary>
    public bool Fits(int tokens) =>
        tokens >= 0 && tokens <= Tokens
        && Math.Max(1, Permute.WorkspaceElements(tokens, _topK, _experts)) <= PermuteWorkspace.Length;

    /// <summary>
    /// A workspace for <paramref name="tokens"/> (<see cref="Fits"/>) whose buffers are views of the first elements of this
    /// one's, so it allocates nothing; it is valid while this one lives, and only one view is used at a time.
    /// <paramref name="routerOffsets"/> (2 ints, the caller's) is set to [0, tokens] on <paramref name="stream"/>, unless
    /// <paramref name="routerOffsetsHoldTokens"/> says the caller's last Prefix set them to these tokens already (two host
    /// enqueues fewer a forward for a caller that keeps the buffer); <paramref name="splitK"/> (the caller's, sized for
    /// <see cref="GemmShapes"/> at these tokens) serves its GEMMs.
    /// </summary>
    public MoeWorkspace Prefix(int tokens, MemoryBuffer<int> routerOffsets, GroupedGemmWorkspace? splitK, AcceleratorStream? stream = null,
                               bool routerOffsetsHoldTokens = false)
    {
        ArgumentNullException.ThrowIfNull(routerOffsets);
        if (!Fits(tokens))
            throw new ArgumentOutOfRangeException(nameof(tokens), $"a workspace of {Tokens} tokens cannot serve {tokens}");
        if (routerOffsets.Length != 2)
            throw new ArgumentException($"router offsets are [0, T]: 2 ints; got {routerOffsets.Describe()}", nameof(routerOffsets));
        if (!routerOffsetsHoldTokens)
        {
            routerOffsets.Slice(0, 1).Fill(0, stream);
            routerOffsets.Slice(1, 1).Fill(tokens, stream);
        }
        return new MoeWorkspace(this, tokens, routerOffsets, splitK);
    }

    private MoeWorkspace(MoeWorkspace whole, int tokens, MemoryBuffer<int> routerOffsets, GroupedGemmWorkspace? splitK)
    {
        _ownsSplitK = false;
        (_topK, _experts, _hidden, _intermediate, _sharedIntermediate) = (whole._topK, whole._experts, whole._hidden, whole._intermediate, whole._sharedIntermediate);
        Tokens = tokens;
        long slots = (long)tokens * _topK;
        RouterOffsets = routerOffsets;
        Logits = whole.Logits.Slice(0, (long)tokens * _experts);
        Ids = whole.Ids.Slice(0, slots);
        RoutingWeights = whole.RoutingWeights.Slice(0, slots);
        RoutedCounts = whole.RoutedCounts;
        RoutingWorkspace = whole.RoutingWorkspace;
        PermutedCounts = whole.PermutedCounts;
        ExpertOffsets = whole.ExpertOffsets;
        RowOfSlot = whole.RowOfSlot.Slice(0, slots);
        TokenOfRow = whole.TokenOfRow.Slice(0, slots);
        PermuteWorkspace = whole.PermuteWorkspace.Slice(0, Math.Max(1, Permute.WorkspaceElements(tokens, _topK, _experts)));
        TileMap = whole.TileMap?.Slice(0, Math.Max(3, Permute.TileMapElements((int)slots, _experts)));
        GemvPrefetch = whole.GemvPrefetch;
        Gathered = BufferPrefix.Of(whole.Gathered, slots * _hidden);
        Activation = BufferPrefix.Of(whole.Activation, slots * _intermediate);
        if (whole.GateUpOutput is not null)
            GateUpOutput = BufferPrefix.Of(whole.GateUpOutput, slots * 2 * _intermediate);
        ExpertOutput = whole.ExpertOutput.Slice(0, slots * _hidden);
        if (whole.SharedActivation is not null)
        {
            SharedActivation = BufferPrefix.Of(whole.SharedActivation, (long)tokens * _sharedIntermediate);
            SharedOutput = whole.SharedOutput!.Slice(0, (long)tokens * _hidden);
            if (whole.SharedGateScale is not null)
                SharedGateScale = whole.SharedGateScale.Slice(0, tokens);
        }
        SplitK = splitK;
        SharedStream = whole.SharedStream;
        if (splitK is not null && SharedStream is not null)
            splitK.SharesDevice = true;
        FusedDecodeMaxTokens = whole.FusedDecodeMaxTokens;
        DecodeBarrier = whole.DecodeBarrier;
    }

    public int Tokens { get; }
    public MemoryBuffer<int> RouterOffsets { get; } = null!;
    public MemoryBuffer<float> Logits { get; } = null!;
    public MemoryBuffer<int> Ids { get; } = null!;
    public MemoryBuffer<float> RoutingWeights { get; } = null!;
    public MemoryBuffer<int> RoutedCounts { get; } = null!;
    public MemoryBuffer<int> RoutingWorkspace { get; } = null!;
    public MemoryBuffer<int> PermutedCounts { get; } = null!;
    public MemoryBuffer<int> ExpertOffsets { get; } = null!;
    public MemoryBuffer<int> RowOfSlot { get; } = null!;
    public MemoryBuffer<int> TokenOfRow { get; } = null!;
    public MemoryBuffer<int> PermuteWorkspace { get; } = null!;

    /// <summary>
    /// The m-tile map of <see cref="ExpertOffsets"/> at 4 rows a tile (Permute writes it, the routed experts' decode GEMVs
    /// read it: GroupedGemmOptions.TileMap), or null: the switch is off or the accelerator is not CUDA.
    /// </summary>
    public MemoryBuffer<int>? TileMap { get; }

    /// <summary>
    /// Whether the routed experts' down GEMV, reading <see cref="TileMap"/>, prefetches its W rows into L2 before it waits
    /// for the gate_up kernel (GroupedGemmOptions.PrefetchBeforeWait): the map is Permute's, two kernels back.
    /// </summary>
    public bool GemvPrefetch { get; }
    public MemoryBuffer Gathered { get; } = null!;
    public MemoryBuffer Activation { get; } = null!;

    /// <summary>The routed experts' gate | up [T*k, 2I] when SiLU-and-mul runs as its own kernel (<see cref="FusedSiluRule"/>), else null.</summary>
    public MemoryBuffer? GateUpOutput { get; }
    public MemoryBuffer<float> ExpertOutput { get; } = null!;
    public MemoryBuffer? SharedActivation { get; }
    public MemoryBuffer<float>? SharedOutput { get; }
    public MemoryBuffer<float>? SharedGateScale { get; }

    /// <summary>Split-K scratch of the layer's grouped GEMMs (one at a time, all on the forward's stream).</summary>
    public GroupedGemmWorkspace? SplitK { get; }

    /// <summary>A fused decode limit outside 0..<see cref="MoeDecode.MaxTokens"/> (null: the default) is the error naming the parameter.</summary>
    public static void CheckFusedDecodeMaxTokens(int? fusedDecodeMaxTokens)
    {
        if (fusedDecodeMaxTokens is < 0 or > MoeDecode.MaxTokens)
            throw new ArgumentOutOfRangeException(nameof(fusedDecodeMaxTokens), fusedDecodeMaxTokens, $"the fused decode kernel takes 0 (never) to {MoeDecode.MaxTokens} tokens");
    }

    /// <summary>Forwards of at most this many tokens may run the one-launch decode kernel (<see cref="MoeDecode"/>); 0 = never.</summary>
    public int FusedDecodeMaxTokens { get; }

    /// <summary>The decode kernel's grid barrier word (one int, zero between launches); null when <see cref="FusedDecodeMaxTokens"/> is 0.</summary>
    public MemoryBuffer<int>? DecodeBarrier { get; }

    /// <summary>The shared experts' own stream, events and split-K scratch; null: they run on the forward's stream.</summary>
    public SharedExpertStream? SharedStream { get; }

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
        if (_ownsSplitK)
        {
            SplitK?.Dispose();
            SharedStream?.Dispose();
        }
    }
}
