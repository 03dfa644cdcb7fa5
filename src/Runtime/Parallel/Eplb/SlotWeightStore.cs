using MoeRuntime.Accelerators;
using MoeRuntime.Runtime.Layers;
using MoeRuntime.Runtime.Models;

namespace MoeRuntime.Runtime.Parallel.Eplb;

/// <summary>
/// The expert weights of one device's S slots under an EPLB placement:
/// <code>
/// GateUp [S, 2I, H]   slot s holds the gate_up rows of expert Experts[s]
/// Down   [S, H, I]    and its down projection
/// </code>
/// exactly the layout <see cref="MoeLayer.RunExperts(MemoryBuffer, MemoryBuffer, MemoryBuffer, MemoryBuffer{int}, MemoryBuffer, MemoryBuffer{float}, AcceleratorStream?)"/>
/// takes with offsets [S + 1]. <see cref="Experts"/> is the host's record of what each slot holds; a slot copy
/// (<see cref="CopySlot"/>) updates it when the copy is enqueued, so the record is only true once the copy stream has
/// been waited for.
/// </summary>
public sealed class SlotWeightStore : IDisposable
{
    private readonly int[] _experts;

    private SlotWeightStore(Accelerator accelerator, ModelConfig config, DType dtype, int[] experts, MemoryBuffer gateUp, MemoryBuffer down)
    {
        Accelerator = accelerator;
        Config = config;
        DType = dtype;
        _experts = experts;
        GateUp = gateUp;
        Down = down;
    }

    public Accelerator Accelerator { get; }
    public ModelConfig Config { get; }
    public DType DType { get; }
    public int Slots => _experts.Length;
    public MemoryBuffer GateUp { get; }
    public MemoryBuffer Down { get; }

    /// <summary>Logical expert held by each slot.</summary>
    public ReadOnlySpan<int> Experts => _experts;

    private long GateUpSlotBytes => GateUp.LengthBytes / Slots;
    private long DownSlotBytes => Down.LengthBytes / Slots;

    /// <summary>Bytes of one slot (gate_up and down of one expert).</summary>
    public long SlotBytes => GateUpSlotBytes + DownSlotBytes;

    /// <summary>Uploads the experts <paramref name="experts"/>[s] of host <paramref name="weights"/> into slots s.</summary>
    public static SlotWeightStore Upload(Accelerator accelerator, MoeLayerWeights weights, ReadOnlySpan<int> experts)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(weights);
        var c = weights.Config;
        var ids = Validate(c, experts);
        int h = c.HiddenSize, i = c.MoeIntermediateSize;
        var gateUpAll = weights.ExpertGateUp.ToFloats();
        var downAll = weights.ExpertDown.ToFloats();
        long gateUpExpert = 2L * i * h, downExpert = (long)h * i;
        var gateUp = new float[ids.Length * gateUpExpert];
        var down = new float[ids.Length * downExpert];
        for (int s = 0; s < ids.Length; s++)
        {
            Array.Copy(gateUpAll, ids[s] * gateUpExpert, gateUp, s * gateUpExpert, gateUpExpert);
            Array.Copy(downAll, ids[s] * downExpert, down, s * downExpert, downExpert);
        }
        var gateUpBuffer = DeviceMoeWeights.UploadFloats(accelerator, gateUp, weights.DType);
        try
        {
            return new SlotWeightStore(accelerator, c, weights.DType, ids, gateUpBuffer, DeviceMoeWeights.UploadFloats(accelerator, down, weights.DType));
        }
        catch
        {
            gateUpBuffer.Dispose();
            throw;
        }
    }

    /// <summary>Slots filled with the random experts of <see cref="DeviceMoeWeights.CreateRandom(Accelerator, ModelConfig, DType, int)"/> of the same seed.</summary>
    public static SlotWeightStore CreateRandom(Accelerator accelerator, ModelConfig config, DType dtype, int seed, ReadOnlySpan<int> experts)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(config);
        var ids = Validate(config, experts);
        var (gateUp, down) = DeviceMoeWeights.RandomExperts(accelerator, config, dtype, seed, ids);
        return new SlotWeightStore(accelerator, config, dtype, ids, gateUp, down);
    }

    /// <summary>A store of the same shape on the same accelerator holding the same experts (a copy of every slot).</summary>
    public SlotWeightStore Clone(AcceleratorStream? stream = null)
    {
        var gateUp = Accelerator.Allocate(DType, GateUp.Length);
        try
        {
            var down = Accelerator.Allocate(DType, Down.Length);
            gateUp.CopyFrom(GateUp, stream);
            down.CopyFrom(Down, stream);
            return new SlotWeightStore(Accelerator, Config, DType, _experts.ToArray(), gateUp, down);
        }
        catch
        {
            gateUp.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies the expert in <paramref name="source"/>'s slot <paramref name="sourceSlot"/> into slot <paramref name="slot"/>,
    /// ordered on <paramref name="stream"/> (a stream of this store's accelerator; a peer copy when the source is another
    /// GPU). Neither slot may be read or written by other work until the stream has passed the copy.
    /// </summary>
    public void CopySlot(int slot, SlotWeightStore source, int sourceSlot, AcceleratorStream? stream = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if ((uint)slot >= (uint)Slots)
            throw new ArgumentOutOfRangeException(nameof(slot), slot, $"this store has {Slots} slots");
        if ((uint)sourceSlot >= (uint)source.Slots)
            throw new ArgumentOutOfRangeException(nameof(sourceSlot), sourceSlot, $"the source store has {source.Slots} slots");
        if (source.DType != DType || source.GateUpSlotBytes != GateUpSlotBytes || source.DownSlotBytes != DownSlotBytes)
            throw new ArgumentException($"source slots ({DTypes.Name(source.DType)}, {source.SlotBytes} bytes) differ from these ({DTypes.Name(DType)}, {SlotBytes} bytes)", nameof(source));
        if (ReferenceEquals(source, this) && slot == sourceSlot)
            return;
        MemoryBuffer.CopyBytes(source.GateUp, sourceSlot * GateUpSlotBytes, GateUp, slot * GateUpSlotBytes, GateUpSlotBytes, stream);
        MemoryBuffer.CopyBytes(source.Down, sourceSlot * DownSlotBytes, Down, slot * DownSlotBytes, DownSlotBytes, stream);
        _experts[slot] = source._experts[sourceSlot];
    }

    private static int[] Validate(ModelConfig config, ReadOnlySpan<int> experts)
    {
        if (experts.Length == 0)
            throw new ArgumentException("a slot store needs at least one slot", nameof(experts));
        for (int s = 0; s < experts.Length; s++)
            if ((uint)experts[s] >= (uint)config.NumExperts)
                throw new ArgumentException($"slot {s} holds expert {experts[s]}, outside [0, {config.NumExperts})", nameof(experts));
        return experts.ToArray();
    }

    public void Dispose()
    {
        GateUp.Dispose();
        Down.Dispose();
    }
}
