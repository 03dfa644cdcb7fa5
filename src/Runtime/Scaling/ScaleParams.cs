using System.Text.Json;
using System.Text.Json.Serialization;

namespace MoeRuntime.Runtime.Scaling;

/// <summary>
/// Grouped GEMM time of one call group on one GPU: <c>launch + max(weightBytes / bandwidth, flops / rate)</c>.
/// Weight bytes are those of the experts the rows really hit; flops = 2 * rows * N * K summed over the GEMMs.
/// </summary>
public sealed record GemmParams(double LaunchUs, double WeightGBs, double MatrixTflops)
{
    public double Us(double weightBytes, double flops) =>
        LaunchUs + Math.Max(weightBytes / (WeightGBs * 1e9), flops / (MatrixTflops * 1e12)) * 1e6;
}

/// <summary>A latency + bytes / bandwidth cost: <c>LatencyUs + bytes / (GBs * 1e9)</c> seconds, in microseconds.</summary>
public sealed record LinearCost(double LatencyUs, double GBs)
{
    public double Us(double bytes) => LatencyUs + bytes / (GBs * 1e9) * 1e6;
}

/// <summary>
/// The fitted parameters of the scale model (see docs/SCALING.md), saved by <c>moe simulate --calibrate --save</c>.
/// <list type="bullet">
/// <item><see cref="Gemm"/>: the expert GEMMs (gate_up with fused SiLU, then down), fitted from grouped GEMM sweeps.</item>
/// <item><see cref="Link"/>: all-to-allv per rank: latency + bytes sent to peers / bandwidth, fitted from
/// <c>moe bench alltoall</c> (or, failing that, a 2-rank AllReduce: each rank sends its whole message to the peer).</item>
/// <item><see cref="Routing"/> and <see cref="Movement"/>: token ops (top-k routing; permute/gather and combine),
/// latency + bytes / bandwidth, fitted from the token_ops sweep.</item>
/// <item><see cref="Host"/> (optional): host enqueue cost per launch, copy, event and collective, from the host_launch sweep.</item>
/// </list>
/// </summary>
public sealed record ScaleParams
{
    public required GemmParams Gemm { get; init; }
    public required LinearCost Link { get; init; }
    public required LinearCost Routing { get; init; }

    /// <summary>
    /// All-to-allv of F32 rows (the combine's payload: ExpertParallelMoe returns expert rows in F32), fitted from the F32 rows
    /// of <c>moe bench alltoall --dtype f32</c> of the same algorithm as <see cref="Link"/>; null (files before it, or no F32
    /// run): F32 bytes move at <see cref="Link"/>'s rate, which is measured on bf16 rows.
    /// </summary>
    public LinearCost? LinkF32 { get; init; }

    /// <summary>The link fit for rows of F32 (<paramref name="f32"/>) or of the compute dtype.</summary>
    public LinearCost LinkFor(bool f32) => f32 ? LinkF32 ?? Link : Link;
    public required LinearCost Movement { get; init; }

    /// <summary>
    /// Expert-GEMM fits of one model shape each, keyed by <see cref="ShapeKey"/> ("H=2048 I=768"), from the sweep rows of
    /// that shape alone: the kernels reach different rates at different (H, I) (short K, narrow N), which one fit over
    /// all shapes averages away. A shape not listed uses <see cref="Gemm"/>.
    /// </summary>
    public Dictionary<string, GemmParams> GemmByShape { get; init; } = new();

    /// <summary>
    /// Expert-GEMM fits of the decode GEMV's calls, keyed by <see cref="ShapeKey"/>: from the sweep rows of that shape with
    /// fewer than <see cref="Calibration.GemvMaxRows"/> rows and no more rows than experts, the calls the runtime gives the
    /// GEMV. Its cost has a small fixed part (no 128-row tile to compute whole), which one fit over the tile kernels'
    /// points prices like theirs. A shape not listed (files before it) uses <see cref="GemmFor"/> for these calls too.
    /// </summary>
    public Dictionary<string, GemmParams> GemvByShape { get; init; } = new();

    /// <summary>
    /// The expert-GEMM fit for a call of <paramref name="rows"/> rows over <paramref name="heldExperts"/> experts: the GEMV's
    /// when the runtime would run the GEMV (<see cref="Calibration.TakesGemv"/>) and the params have one for the shape, else
    /// <see cref="GemmFor"/>.
    /// </summary>
    public GemmParams ExpertGemmFor(int hidden, int intermediate, double rows, double heldExperts) =>
        Calibration.TakesGemv(rows, heldExperts) && GemvByShape.TryGetValue(ShapeKey(hidden, intermediate), out var gemv) ? gemv : GemmFor(hidden, intermediate);

    /// <summary>
    /// Single-matrix GEMM calls (router, shared expert) measured by the <c>dense_gemm</c> sweep, keyed by
    /// <see cref="DenseGemmCurve.Key"/>; a call shape not listed is priced by the grouped fit, as before.
    /// </summary>
    public Dictionary<string, DenseGemmCurve> DenseGemm { get; init; } = new();

    /// <summary>Microseconds of a single-matrix call [rows, K] x [N, K]^T from its measured curve, or null when not measured.</summary>
    /// Past the curve's last row count it grows as <paramref name="fit"/> (the grouped fit's time of the call) does.
    public double? DenseGemmUs(int n, int k, bool fused, double rows, Func<double, double>? fit = null) =>
        rows > 0 && DenseGemm.TryGetValue(DenseGemmCurve.Key(n, k, fused), out var curve) ? curve.At(rows, fit) : null;

    /// <summary>The key of an expert shape in <see cref="GemmByShape"/>.</summary>
    public static string ShapeKey(int hidden, int intermediate) => $"H={hidden} I={intermediate}";

    /// <summary>The expert-GEMM fit for experts of hidden size H and intermediate size I: its own shape's, else the overall one.</summary>
    public GemmParams GemmFor(int hidden, int intermediate) => GemmByShape.GetValueOrDefault(ShapeKey(hidden, intermediate)) ?? Gemm;

    /// <summary>
    /// Host enqueue costs (<see cref="HostParams"/>), from the <c>host_launch</c> sweep; null in params files written before
    /// it existed: then the model has no host term (every phase is its device time, as before).
    /// </summary>
    public HostParams? Host { get; init; }

    /// <summary>Nominal per-direction bandwidth (GB/s) of the link the <see cref="Link"/> fit was measured on; presets scale from it.</summary>
    public double LinkNominalGBs { get; init; } = LinkPreset.H200NvlinkGBs;

    /// <summary>Where each part came from: file names, devices, point counts and fit errors.</summary>
    public Dictionary<string, string> Sources { get; init; } = new();

    private static readonly JsonSerializerOptions Options = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never };

    public string ToJson() => JsonSerializer.Serialize(this, Options);

    public static ScaleParams FromJson(string json) =>
        JsonSerializer.Deserialize<ScaleParams>(json, Options) ?? throw new InvalidDataException("scale params: empty JSON");

    public static ScaleParams Load(string path)
    {
        try
        {
            return FromJson(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not a scale params file ({e.Message})", e);
        }
    }
}

/// <summary>The parameters shipped with the runtime (src/Runtime/Scaling/default-params.json, embedded).</summary>
public static class DefaultScaleParams
{
    public const string Name = "built-in default (src/Runtime/Scaling/default-params.json)";

    public static ScaleParams Load()
    {
        using var stream = typeof(DefaultScaleParams).Assembly.GetManifestResourceStream("default-params.json")
            ?? throw new InvalidOperationException("the default scale params resource is missing from MoeRuntime.Runtime");
        using var reader = new StreamReader(stream);
        return ScaleParams.FromJson(reader.ReadToEnd());
    }
}
