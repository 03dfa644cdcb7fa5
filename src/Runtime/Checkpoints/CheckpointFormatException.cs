namespace MoeRuntime.Runtime.Checkpoints;

/// <summary>
/// A checkpoint file that is malformed, truncated or lies about its contents, or a tensor that is
/// missing from it. The message names the file and, where one is involved, the tensor.
/// </summary>
public sealed class CheckpointFormatException : Exception
{
    public CheckpointFormatException(string filePath, string? tensorName, string problem, Exception? inner = null)
        : base(Compose(filePath, tensorName, problem), inner)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file (or, for a missing tensor, the files searched) the problem was found in.</summary>
    public string FilePath { get; }

    /// <summary>The tensor concerned, or null when the problem is with the file as a whole.</summary>
    public string? TensorName { get; }

    private static string Compose(string filePath, string? tensorName, string problem) =>
        tensorName is null ? $"{filePath}: {problem}" : $"{filePath}: tensor '{tensorName}': {problem}";
}
