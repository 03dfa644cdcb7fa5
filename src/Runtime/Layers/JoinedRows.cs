using MoeRuntime.Accelerators;

namespace MoeRuntime.Runtime.Layers;

/// <summary>
/// A forward's routed rows with the shared expert's rows after them (<see cref="SharedExpertJoin"/>), for T tokens and k
/// choices: rows [0, T*k) are the routed slots sorted by expert, rows [T*k, T*k + T) are the T tokens in order, which
/// the offsets' last expert (E, the shared one) covers:
/// <code>
/// Offsets      [E + 2]            Permute writes [0, E]; the forward sets Offsets[E + 1] = T*k + T
/// Gathered     [T*k + T, H]       compute dtype: the permuted hidden rows, then the hidden states
/// Activation   [T*k + T, I]
/// GateUpOutput [T*k + T, 2I]      only where SiLU-and-mul runs as its own kernel
/// ExpertOutput [T*k + T, H] F32   the combine reads rows [0, T*k) by slot and adds rows [T*k, T*k + T) as the residual
/// </code>
/// Owns nothing: the workspace owns the buffers.
/// </summary>
public sealed class JoinedRows(MemoryBuffer<int> offsets, MemoryBuffer gathered, MemoryBuffer activation, MemoryBuffer? gateUpOutput, MemoryBuffer<float> expertOutput)
{
    public MemoryBuffer<int> Offsets { get; } = offsets;
    public MemoryBuffer Gathered { get; } = gathered;
    public MemoryBuffer Activation { get; } = activation;
    public MemoryBuffer? GateUpOutput { get; } = gateUpOutput;
    public MemoryBuffer<float> ExpertOutput { get; } = expertOutput;

    /// <summary>Views of the first <paramref name="rows"/> rows (a workspace for fewer tokens: T'*k + T' rows).</summary>
    public JoinedRows Prefix(long rows, int hidden, int intermediate) => new(
        Offsets,
        BufferPrefix.Of(Gathered, rows * hidden),
        BufferPrefix.Of(Activation, rows * intermediate),
        GateUpOutput is null ? null : BufferPrefix.Of(GateUpOutput, rows * 2 * intermediate),
        ExpertOutput.Slice(0, rows * hidden));
}
