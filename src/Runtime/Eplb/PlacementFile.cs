using System.Text.Json;

namespace MoeRuntime.Runtime.Eplb;

/// <summary>
/// Static EPLB: a saved load profile, a JSON array of per-expert token counts for one layer
/// (e.g. <c>[812, 40, 0, 97]</c>), and the placement planned from it before the run.
/// </summary>
public static class PlacementFile
{
    /// <summary>Reads the per-expert token counts of <paramref name="path"/>; throws <see cref="FormatException"/> naming the file and what is wrong.</summary>
    public static long[] ReadLoads(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new FileNotFoundException($"cannot read load profile {path}: {e.Message}", path, e);
        }
        return ParseLoads(text, path);
    }

    /// <summary>Parses a load profile; <paramref name="source"/> names it in errors.</summary>
    public static long[] ParseLoads(string json, string source = "load profile")
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: not valid JSON ({e.Message})", e);
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Array)
                throw new FormatException($"{source}: expected a JSON array of per-expert token counts, found a {root.ValueKind.ToString().ToLowerInvariant()}");
            int count = root.GetArrayLength();
            if (count == 0)
                throw new FormatException($"{source}: the array is empty; it needs one token count per expert");
            var loads = new long[count];
            int e = 0;
            foreach (var item in root.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Number)
                    throw new FormatException($"{source}: element {e} is a {item.ValueKind.ToString().ToLowerInvariant()}, not a token count");
                if (!item.TryGetInt64(out long value))
                    throw new FormatException($"{source}: element {e} ({item.GetRawText()}) is not an integer token count");
                if (value < 0)
                    throw new FormatException($"{source}: element {e} is {value}; token counts cannot be negative");
                loads[e++] = value;
            }
            return loads;
        }
    }

    /// <summary>The placement planned from the profile at <paramref name="path"/>.</summary>
    public static Placement Plan(string path, int gpus, int slotsPerGpu, int groups = 1) =>
        EplbPlanner.Plan(ReadLoads(path), gpus, slotsPerGpu, groups);
}
