using System.Collections.Concurrent;
using MoeRuntime.Accelerators;

namespace MoeRuntime.Kernels;

/// <summary>
/// Compile options that build only one dtype's entries of a source whose instantiations are guarded by macros: a first
/// use on a machine then compiles a fraction of a source's entries, not all of them (NVRTC takes seconds a source).
/// Each array is made once. Sources without the macros build every entry, as the compile tests need.
/// </summary>
internal static class DTypeBuilds
{
    private static readonly ConcurrentDictionary<(string Prefix, DType Operands, DType? Output), string[]> s_builds = new();
    private static readonly ConcurrentDictionary<(string Prefix, DType? DType, string Group, string? Extra), string[]> s_groupBuilds = new();

    /// <summary><c>-D{prefix}_ONE_DTYPE -D{prefix}_DTYPE_{f32|bf16|f16}</c> (routing's ROUTING, the skinny GEMM's SK).</summary>
    public static string[] One(string prefix, DType dtype) =>
        s_builds.GetOrAdd((prefix, dtype, null), key => [$"-D{key.Prefix}_ONE_DTYPE", $"-D{key.Prefix}_DTYPE_{HostRows.Suffix(key.Operands)}"]);

    /// <summary>
    /// One group of a source's entries (of one dtype where <paramref name="dtype"/> is given): <see cref="One"/>'s options,
    /// then <c>-D{prefix}_ONE_GROUP -D{prefix}_GROUP_{group}</c>, then <paramref name="extra"/> if any (routing's groups,
    /// the skinny GEMM's tiles and reduce, permute's one-kernel entries and chain).
    /// </summary>
    public static string[] Group(string prefix, DType? dtype, string group, string? extra = null) =>
        s_groupBuilds.GetOrAdd((prefix, dtype, group, extra), key =>
            [.. key.DType is { } d ? One(key.Prefix, d) : [], $"-D{key.Prefix}_ONE_GROUP", $"-D{key.Prefix}_GROUP_{key.Group}",
             .. key.Extra is { } e ? [e] : Array.Empty<string>()]);

    /// <summary>
    /// <c>-D{prefix}_ONE_PAIR -D{prefix}_PAIR_{in}_{out}</c>, or <c>..._PAIR_f32</c> for F32 operands (grouped_gemm.cu's GG,
    /// the GEMV's GV, the wgmma kernel's GW).
    /// </summary>
    public static string[] Pair(string prefix, DType operands, DType output) =>
        s_builds.GetOrAdd((prefix, operands, output), key =>
            [$"-D{key.Prefix}_ONE_PAIR", $"-D{key.Prefix}_PAIR_{(key.Operands == DType.F32 ? "f32" : $"{HostRows.Suffix(key.Operands)}_{HostRows.Suffix(key.Output!.Value)}")}"]);
}
