using System.Collections.Concurrent;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace MoeRuntime.Accelerators.Nvrtc;

/// <summary>
/// CUDA C source of one compilation unit and the headers it may include (every <c>.cuh</c> embedded in
/// its assembly and in this one). A first-line-block comment <c>// requires: sm_90a</c> marks sources that
/// need an architecture-specific target.
/// </summary>
public sealed class KernelSource
{
    private static readonly ConcurrentDictionary<(Assembly, string), KernelSource> Cache = new();

    public KernelSource(string name, string text, IReadOnlyDictionary<string, string>? headers = null)
    {
        Name = name;
        Text = text;
        Headers = headers ?? new Dictionary<string, string>();
        ContentHash = Hash(text, Headers);
        RequiredArchitecture = ParseRequirement(text);
        WaitsForPriorGrid = HeaderLines(text).Any(line => line.StartsWith(DependentLaunchMarker, StringComparison.Ordinal));
        LaunchesPlainly = HeaderLines(text).Any(line => line.StartsWith(PlainLaunchMarker, StringComparison.Ordinal));
    }

    /// <summary>
    /// The header line (see HeaderLines) that marks a source whose every entry calls <c>moe_wait_prior_grid()</c> first:
    /// its kernels may be launched to overlap the kernel before them (programmatic dependent launch).
    /// </summary>
    public const string DependentLaunchMarker = "// dependent-launch";

    public string Name { get; }
    public string Text { get; }
    public IReadOnlyDictionary<string, string> Headers { get; }
    public string ContentHash { get; }

    /// <summary>
    /// The header line of a source whose kernels are launched plainly although they wait for the prior grid (marked
    /// <see cref="DependentLaunchMarker"/> too): overlapping the kernel before them was measured to cost more than it saves
    /// (the line says where). MOE_PDL_OVERLAP names such sources to overlap anyway, for A/B runs.
    /// </summary>
    public const string PlainLaunchMarker = "// plain-launch";

    /// <summary>The source is marked <see cref="DependentLaunchMarker"/>.</summary>
    public bool WaitsForPriorGrid { get; }

    /// <summary>The source is marked <see cref="PlainLaunchMarker"/>.</summary>
    public bool LaunchesPlainly { get; }

    /// <summary>An architecture the source needs beyond the device's plain one (e.g. <c>sm_90a</c>), or null.</summary>
    public string? RequiredArchitecture { get; }

    /// <summary>The embedded resource <paramref name="resourceName"/> of <paramref name="assembly"/> (e.g. <c>topk_routing.cu</c>).</summary>
    public static KernelSource FromResource(Assembly assembly, string resourceName) =>
        Cache.GetOrAdd((assembly, resourceName), key =>
        {
            string text = ReadResource(key.Item1, key.Item2)
                ?? throw new ArgumentException($"{key.Item1.GetName().Name} has no embedded kernel source '{key.Item2}' (is it an EmbeddedResource with LogicalName %(Filename)%(Extension)?)", nameof(resourceName));
            var headers = new Dictionary<string, string>();
            foreach (var asm in new[] { typeof(KernelSource).Assembly, key.Item1 }.Distinct())
                foreach (var header in asm.GetManifestResourceNames().Where(n => n.EndsWith(".cuh", StringComparison.Ordinal)))
                    headers[header] = ReadResource(asm, header)!;
            return new KernelSource(key.Item2, text, headers);
        });

    /// <summary>Every embedded <c>.cu</c> source of <paramref name="assembly"/>.</summary>
    public static IEnumerable<KernelSource> AllIn(Assembly assembly) =>
        assembly.GetManifestResourceNames().Where(n => n.EndsWith(".cu", StringComparison.Ordinal)).Order()
            .Select(n => FromResource(assembly, n));

    private static string? ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name);
        if (stream is null)
            return null;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    private static string Hash(string text, IReadOnlyDictionary<string, string> headers)
    {
        var sb = new StringBuilder(text);
        foreach (var (name, body) in headers.OrderBy(h => h.Key, StringComparer.Ordinal))
            sb.Append('\0').Append(name).Append('\0').Append(body);
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..32];
    }

    // The leading block of comments, blank lines and preprocessor lines, where a source declares what it needs.
    private static IEnumerable<string> HeaderLines(string text) =>
        text.Split('\n').Select(line => line.Trim()).TakeWhile(line => line.Length == 0 || line.StartsWith("//", StringComparison.Ordinal) || line.StartsWith('#'));

    private static string? ParseRequirement(string text)
    {
        foreach (var trimmed in HeaderLines(text))
        {
            const string marker = "// requires:";
            if (trimmed.StartsWith(marker, StringComparison.Ordinal))
                return trimmed[marker.Length..].Trim();
        }
        return null;
    }
}
