using System.Text;

namespace MoeRuntime.Accelerators.Nvrtc;

/// <summary>A failed NVRTC call or compile: the kernel source, the options and the compiler's log.</summary>
public sealed class NvrtcException : AcceleratorException
{
    public NvrtcException(string call, int code, string errorText, string sourceName, IReadOnlyList<string> options, string log, string source)
        : base($"{call} failed for {sourceName}: {errorText} ({code}); options: {string.Join(' ', options)}" +
               (log.Length > 0 ? $"\n--- NVRTC log ---\n{log.TrimEnd()}" : ""))
    {
        Call = call;
        Code = code;
        SourceName = sourceName;
        Log = log;
        Source = source;
    }

    public string Call { get; }
    public int Code { get; }
    public string SourceName { get; }
    public string Log { get; }
    public new string Source { get; }

    /// <summary>The source with line numbers, to read beside the log's line references.</summary>
    public string NumberedSource()
    {
        var sb = new StringBuilder();
        var lines = Source.Split('\n');
        for (int i = 0; i < lines.Length; i++)
            sb.Append((i + 1).ToString().PadLeft(5)).Append(": ").AppendLine(lines[i]);
        return sb.ToString();
    }
}
