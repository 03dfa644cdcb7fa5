using MoeRuntime.Accelerators;
using MoeRuntime.Kernels.GroupedGemm;
using MoeRuntime.Kernels.Permute;
using MoeRuntime.Kernels.Routing;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// The intermediate buffers of one forward of <see cref="MoeLayer"/> for a fixed token count, allocated
/// once and reused, so a forward allocates nothing and can be captured in a CUDA graph.
/// </summary>
public sealed class MoeWorkspace : IDisposable
{
    private readonly List<MemoryBuffer> _owned = [];

    public MoeWorkspace(DeviceMoeWeights weights, int tokens)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var a = weights.Accelerator;
        var c = weights.Config;
        Tokens = tokens;
        int e = c.NumExperts, k = c.TopK, h = c.HiddenSize;
        long slots = (long)tokens * k;
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
            Gathered = Own(a.Allocate(weights.DType, slots * h));
            Activation = Own(a.Allocate(weights.DType, slots * weights.Intermediate));
            ExpertOutput = Own(a.Allocate<float>(slots * h));
            if (weights.SharedGateUp is not null)
            {
                SharedActivation = Own(a.Allocate(weights.DType, (long)tokens * weights.SharedIntermediate));
                SharedOutput = Own(a.Allocate<float>((long)tokens * h));
                if (weights.SharedGate is not null)
                    SharedGateScale = Own(a.Allocate<float>(tokens));
            }
            int ih = weights.Intermediate, ish = weights.SharedIntermediate;
            var gemms = new List<GroupedGemmShape>
            {
                new(tokens, e, h, 1),                      // router
                new((int)slots, 2 * ih, h, e, Fused: true), // experts gate_up + SiLU-and-mul
                new((int)slots, h, ih, e),                 // experts down
            };
            if (weights.SharedGateUp is not null)
                gemms.AddRange([new(tokens, 2 * ish, h, 1, Fused: true), new(tokens, h, ish, 1), new(tokens, 1, h, 1)]);
            SplitK = GroupedGemmWorkspace.For(a, [.. gemms]);
        }
        catch
        {
            Dispose();
            throw;
        }
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
    public MemoryBuffer Gathered { get; } = null!;
    public MemoryBuffer Activation { get; } = null!;
    public MemoryBuffer<float> ExpertOutput { get; } = null!;
    public MemoryBuffer? SharedActivation { get; }
    public MemoryBuffer<float>? SharedOutput { get; }
    public MemoryBuffer<float>? SharedGateScale { get; }

    /// <summary>Split-K scratch of the layer's grouped GEMMs (one at a time, all on the forward's stream).</summary>
    public GroupedGemmWorkspace? SplitK { get; }

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
        SplitK?.Dispose();
    }
}
