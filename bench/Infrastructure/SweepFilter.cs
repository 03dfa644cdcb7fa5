namespace MoeRuntime.Benchmarks.Infrastructure;

/// <summary>
/// Narrows a sweep to some of its rows for quick A/B runs on the GPU machine, from the environment:
/// MOE_SWEEP_TOKENS="1,16" keeps those token counts, MOE_SWEEP_MODELS="deepseek-v3,mixtral" keeps models whose name
/// starts with one of the prefixes, MOE_SWEEP_CALLS="down" keeps one call's rows. Unset: everything. A value that keeps nothing is an error, not an empty table.
/// </summary>
internal static class SweepFilter
{
    public static int[] Tokens(int[] all) => Tokens(all, Environment.GetEnvironmentVariable("MOE_SWEEP_TOKENS"));

    /// <summary>MOE_SWEEP_TOKENS's counts as listed, any positive count (a sweep that runs any T: the layer); unset: <paramref name="defaults"/>.</summary>
    public static int[] TokensAsListed(int[] defaults) => TokensAsListed(defaults, Environment.GetEnvironmentVariable("MOE_SWEEP_TOKENS"));

    internal static int[] TokensAsListed(int[] defaults, string? value) =>
        string.IsNullOrWhiteSpace(value) ? defaults : [.. Listed(value).Distinct()];

    internal static int[] Tokens(int[] all, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return all;
        var wanted = Listed(value);
        var kept = all.Where(wanted.Contains).ToArray();
        return kept.Length > 0 ? kept
            : throw new ArgumentException($"MOE_SWEEP_TOKENS='{value}' keeps none of this sweep's token counts ({string.Join(", ", all)})");
    }

    /// <summary>The counts of a MOE_SWEEP_TOKENS value; a part that is not a positive count is the ArgumentException naming it.</summary>
    private static int[] Listed(string value) =>
        [.. value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(t => int.TryParse(t, out int n) && n > 0 ? n
                : throw new ArgumentException($"MOE_SWEEP_TOKENS='{value}': '{t}' is not a positive token count"))];

    /// <summary>
    /// MOE_SWEEP_CALLS="down" (or "gate_up,gate_up+silu", ...) keeps the rows of those calls, by the sweep's names for them
    /// (<paramref name="all"/>), so that one call runs in a process by itself; unset: every call. A name the sweep does
    /// not have is an error.
    /// </summary>
    public static Func<string, bool> Calls(string[] all) => Calls(all, Environment.GetEnvironmentVariable("MOE_SWEEP_CALLS"));

    internal static Func<string, bool> Calls(string[] all, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return _ => true;
        var wanted = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        foreach (string call in wanted)
            if (!all.Contains(call))
                throw new ArgumentException($"MOE_SWEEP_CALLS='{value}': '{call}' is not one of this sweep's calls ({string.Join(", ", all)})");
        return wanted.Contains;
    }

    public static T[] Models<T>(T[] all, Func<T, string> name) => Models(all, name, Environment.GetEnvironmentVariable("MOE_SWEEP_MODELS"));

    internal static T[] Models<T>(T[] all, Func<T, string> name, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
            return all;
        var prefixes = value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var kept = all.Where(m => prefixes.Any(p => name(m).StartsWith(p, StringComparison.OrdinalIgnoreCase))).ToArray();
        return kept.Length > 0 ? kept
            : throw new ArgumentException($"MOE_SWEEP_MODELS='{value}' keeps none of this sweep's models ({string.Join(", ", all.Select(name))})");
    }
}
