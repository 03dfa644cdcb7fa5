namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Interconnects the model can place an EP group on. The fitted link (latency, bandwidth) is scaled by the ratio of
/// public nominal per-direction bandwidths; these figures are the only typed-in constants of the model:
/// <list type="bullet">
/// <item>H200 NVLink 4 (HGX H200, NVSwitch): 18 links x 25 GB/s = 450 GB/s per direction per GPU (NVIDIA H200 datasheet: 900 GB/s bidirectional).</item>
/// <item>GB200 NVL72 NVLink 5: 18 links x 50 GB/s = 900 GB/s per direction per GPU, all 72 GPUs one NVLink domain (NVIDIA GB200 NVL72: 1.8 TB/s per GPU bidirectional).</item>
/// <item>InfiniBand NDR 400 Gb/s (ConnectX-7), one NIC per GPU: 50 GB/s per direction; nodes of 8 GPUs on NVLink 4 inside.
/// Its latency is taken as twice the fitted NVLink latency (an assumption: a NIC and PCIe on each side of the
/// switch hop), not a measurement.</item>
/// </list>
/// </summary>
public sealed record LinkPreset(string Name, double NominalGBs, double LatencyScale, int NodeGpus, double InterNodeGBs, double InterNodeLatencyScale)
{
    public const double H200NvlinkGBs = 450;
    public const double Nvl72GBs = 900;
    public const double Ib400GBs = 50;

    public static readonly LinkPreset H200Nvlink = new("h200-nvlink", H200NvlinkGBs, 1, 8, H200NvlinkGBs, 1);
    public static readonly LinkPreset Nvl72 = new("nvl72", Nvl72GBs, 1, 72, Nvl72GBs, 1);
    public static readonly LinkPreset Ib400 = new("ib400", H200NvlinkGBs, 1, 8, Ib400GBs, 2);

    public static readonly string[] Names = ["nvl72", "h200-nvlink", "ib400"];

    public static LinkPreset Get(string name) => name.Trim().ToLowerInvariant() switch
    {
        "nvl72" => Nvl72,
        "h200-nvlink" => H200Nvlink,
        "ib400" => Ib400,
        _ => throw new ArgumentException($"--link {name}: {string.Join(", ", Names)}", nameof(name)),
    };

    /// <summary>
    /// Microseconds of one all-to-allv in an EP group of <paramref name="ranks"/> GPUs where the busiest GPU sends or
    /// receives <paramref name="peerBytes"/> to or from other GPUs (spread evenly over them).
    /// Inside a node of <see cref="NodeGpus"/>: fitted latency + bytes / (fitted bandwidth * nominal / calibration nominal).
    /// Across nodes, the intra- and inter-node shares go in parallel and the slower sets the time.
    /// </summary>
    /// <paramref name="f32"/>: the rows are F32 (the combine): priced with <see cref="ScaleParams.LinkF32"/> when measured.
    public double AllToAllUs(ScaleParams p, int ranks, double peerBytes, bool f32 = false)
    {
        var fit = p.LinkFor(f32);
        double efficiency = fit.GBs / p.LinkNominalGBs;
        double intraGBs = efficiency * NominalGBs;
        if (ranks <= NodeGpus || ranks <= 1)
            return fit.LatencyUs * LatencyScale + peerBytes / (intraGBs * 1e9) * 1e6;
        double interShare = (double)(ranks - NodeGpus) / (ranks - 1);
        double intraUs = (1 - interShare) * peerBytes / (intraGBs * 1e9) * 1e6;
        double interUs = interShare * peerBytes / (efficiency * InterNodeGBs * 1e9) * 1e6;
        return fit.LatencyUs * InterNodeLatencyScale + Math.Max(intraUs, interUs);
    }
}
