namespace MoeRuntime.Accelerators;

/// <summary>
/// The name of an accelerator everywhere (CLI, logs, tests): <c>cpu:N</c> or <c>cuda:N</c>.
/// <c>cpu</c> alone means <c>cpu:0</c>; <c>cuda</c> alone means <c>cuda:0</c>.
/// </summary>
public readonly record struct AcceleratorId(AcceleratorKind Kind, int Index)
{
    public override string ToString() => $"{(Kind == AcceleratorKind.Cpu ? "cpu" : "cuda")}:{Index}";

    public static AcceleratorId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string trimmed = text.Trim().ToLowerInvariant();
        int colon = trimmed.IndexOf(':');
        string kindText = colon < 0 ? trimmed : trimmed[..colon];
        AcceleratorKind kind = kindText switch
        {
            "cpu" => AcceleratorKind.Cpu,
            "cuda" or "gpu" => AcceleratorKind.Cuda,
            _ => throw new ArgumentException($"unknown accelerator '{text}' (expected cpu, cpu:N, cuda:N)", nameof(text)),
        };
        int index = 0;
        if (colon >= 0 && (!int.TryParse(trimmed[(colon + 1)..], out index) || index < 0))
            throw new ArgumentException($"bad accelerator index in '{text}' (expected a number >= 0 after ':')", nameof(text));
        return new AcceleratorId(kind, index);
    }

    /// <summary>Parses a comma-separated list such as <c>cuda:0,cuda:1</c> or <c>cpu:0,cpu:1,cpu:2</c>.</summary>
    public static IReadOnlyList<AcceleratorId> ParseList(string text)
    {
        var ids = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Parse).ToList();
        if (ids.Count == 0)
            throw new ArgumentException("no accelerators named", nameof(text));
        var duplicate = ids.GroupBy(i => i).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"accelerator {duplicate.Key} named twice in '{text}'", nameof(text));
        return ids;
    }
}
