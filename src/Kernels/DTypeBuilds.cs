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

    /// <summary><c>-D{prefix}_ONE_DTYPE -D{prefix}_DTYPE_{f32|bf16|f16}</c> (routing's ROUTING, the skinny GEMM's SK).</summary>
    public static string[] One(string prefix, DType dtype) =>
        s_builds.GetOrAdd((prefix, dtype, null), key => [$"-D{key.Prefix}_ONE_DTYPE", $"-D{key.Prefix}_DTYPE_{HostRows.Suffix(key.Operands)}"]);

    /// <summary>
    /// <c>-D{prefix}_ONE_PAIR -D{prefix}_PAIR_{in}_{out}</c>, or <c>..._PAIR_f32</c> for F32 operands (grouped_gemm.cu's GG,
    /// the GEMV's GV, the wgmma kernel's GW).
    /// </summary>
    public static string[] Pair(string prefix, DType operands, DType output) =>
        s_builds.GetOrAdd((prefix, operands, output), key =>
            [$"-D{key.Prefix}_ONE_PAIR", $"-D{key.Prefix}_PAIR_{(key.Operands == DType.F32 ? "f32" : $"{HostRows.Suffix(key.Operands)}_{HostRows.Suffix(key.Output!.Value)}")}"]);
}
