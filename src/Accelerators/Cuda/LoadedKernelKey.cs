using System.Runtime.CompilerServices;
using MoeRuntime.Accelerators.Nvrtc;

namespace MoeRuntime.Accelerators.Cuda;

/// <summary>
/// What a <see cref="CudaAccelerator.LoadKernel"/> call asks for: the source (by reference: sources are cached per embedded
/// resource), the entry and the extra NVRTC options (by content). Looking a loaded kernel up by it allocates nothing, where
/// the module key (options list, joined string with the source's hash) is built anew on every call: every launch of every
/// op goes through LoadKernel, so that was host time per launch.
/// </summary>
internal readonly struct LoadedKernelKey(KernelSource source, string entry, IReadOnlyList<string>? extraOptions) : IEquatable<LoadedKernelKey>
{
    public KernelSource Source { get; } = source;
    public string Entry { get; } = entry;
    public IReadOnlyList<string>? ExtraOptions { get; } = extraOptions;

    /// <summary>The key with a copy of the options, to store (a caller may reuse or change its list).</summary>
    public LoadedKernelKey Stored() => new(Source, Entry, ExtraOptions is null ? null : [.. ExtraOptions]);

    public bool Equals(LoadedKernelKey other)
    {
        if (!ReferenceEquals(Source, other.Source) || !string.Equals(Entry, other.Entry, StringComparison.Ordinal))
            return false;
        int count = ExtraOptions?.Count ?? 0;
        if (count != (other.ExtraOptions?.Count ?? 0))
            return false;
        for (int i = 0; i < count; i++)
            if (!string.Equals(ExtraOptions![i], other.ExtraOptions![i], StringComparison.Ordinal))
                return false;
        return true;
    }

    public override bool Equals(object? obj) => obj is LoadedKernelKey other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(RuntimeHelpers.GetHashCode(Source), Entry, ExtraOptions?.Count ?? 0);
}
